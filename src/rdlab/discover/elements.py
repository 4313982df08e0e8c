"""Element balances: conservation laws read from species names that are chemical formulas.

A kineticist's species are usually molecules (``CH4``, ``H2O2``, ``N2``), and every
elementary reaction conserves atoms. When every species name parses as a formula, the element
counts ``E (n_elements, n_species)`` are conservation laws known before any fit: the
stoichiometric subspace lies in the null space of ``E``. Measured concentrations carry those
laws only up to their noise — with 0.1 % noise on simplified GRI-3.0 the four element
balances (C, H, O, N) sink below the noise of the large species and the measured subspace is
the whole space — so :func:`~rdlab.discover.subspace.stoichiometric_subspace` takes them from
the names instead, when the data agree with them (:func:`consistent_balances`).

Names are read strictly: element symbols of the periodic table, each followed by an optional
count, with optional parenthesised groups (``Ca(OH)2``). Abstract names (``A``, ``ES``,
``X``) are not formulas, and a network whose names all happen to be symbols (``C``, ``N``)
is caught by the consistency check: its element totals change with the data.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["DRIFT_SHARE", "ELEMENTS", "LEVEL_SHARE", "composition", "consistent_balances",
           "balance_noise", "element_changes", "element_matrix", "element_noise",
           "known_balances", "unbalanced_reactions"]

#: Symbols of the elements 1–118.
ELEMENTS = frozenset("""
H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb
Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm
Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og""".split())
#: A species conserves its elements in the data when each element total drifts by at most
#: this share of the element's turnover (the sum of its atoms' absolute changes) ...
DRIFT_SHARE = 0.1
#: ... or by at most this share of the element's total (an element held by species that do
#: not react, such as inert N2, whose total moves only by the noise: 2 % noise gives about
#: 4 % as the largest of ten changes).
LEVEL_SHARE = 0.05

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*)|(\()|(\))(\d*)")


def composition(name: str) -> dict[str, int] | None:
    """Return the atoms of formula ``name`` (``"C2H6"`` → ``{"C": 2, "H": 6}``), else None.

    Parameters
    ----------
    name : str
        A species name.

    Returns
    -------
    dict or None
        Element symbol → count; None when ``name`` is not a formula of known elements.
    """
    stack: list[dict[str, int]] = [{}]
    pos = 0
    while pos < len(name):
        m = _TOKEN.match(name, pos)
        if m is None:
            return None
        pos = m.end()
        symbol, count, opening, closing, group_count = m.groups()
        if symbol is not None:
            if symbol not in ELEMENTS:
                return None
            stack[-1][symbol] = stack[-1].get(symbol, 0) + int(count or 1)
        elif opening:
            stack.append({})
        else:
            if len(stack) == 1 or not stack[-1]:
                return None
            group = stack.pop()
            for el, n in group.items():
                stack[-1][el] = stack[-1].get(el, 0) + n * int(group_count or 1)
    if len(stack) != 1 or not stack[0]:
        return None
    return stack[0]


def element_matrix(species) -> tuple[tuple[str, ...], np.ndarray] | None:
    """Return ``(elements, E)`` with ``E[e, s]`` atoms of element ``e`` in species ``s``.

    Parameters
    ----------
    species : sequence of str
        Species names.

    Returns
    -------
    tuple or None
        The elements in order of first appearance and the ``(n_elements, n_species)``
        counts; None unless every name is a formula.
    """
    comps = [composition(s) for s in species]
    if not comps or any(c is None for c in comps):
        return None
    elements = tuple(dict.fromkeys(el for c in comps for el in c))
    E = np.array([[c.get(el, 0) for c in comps] for el in elements], dtype=float)
    return elements, E


def element_changes(V: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Return ``(n_reactions, n_elements)`` atoms each row creates (+) or destroys (−).

    Entries within 1e-9 of zero are set to 0, so ``np.any(.., axis=1)`` marks the rows that
    break a balance.

    Parameters
    ----------
    V : numpy.ndarray
        ``(n_reactions, n_species)`` net stoichiometry.
    E : numpy.ndarray
        ``(n_elements, n_species)`` atoms per species (:func:`element_matrix`).
    """
    change = np.asarray(V, float) @ np.asarray(E, float).T
    change[np.abs(change) <= 1e-9] = 0.0
    return change


def unbalanced_reactions(V: np.ndarray, elements: tuple[str, ...], E: np.ndarray,
                         lines: list[str]) -> list[str]:
    """Return, for each reaction that changes an element's total, what it changes.

    Parameters
    ----------
    V : numpy.ndarray
        ``(n_reactions, n_species)`` net stoichiometry.
    elements : tuple of str
        Element symbols, the rows of ``E``.
    E : numpy.ndarray
        ``(n_elements, n_species)`` atoms per species (:func:`element_matrix`).
    lines : list of str
        The reactions as text, one per row of ``V``.

    Returns
    -------
    list of str
        E.g. ``"reaction 2: NO3 + NO -> 3NO2 (N +1)"``; empty when every row conserves
        every element.
    """
    change = element_changes(V, E)
    out = []
    for i in np.flatnonzero(np.any(change, axis=1)):
        moved = ", ".join(f"{el} {change[i, e]:+g}" for e, el in enumerate(elements)
                          if change[i, e])
        out.append(f"reaction {i + 1}: {lines[i]} ({moved})")
    return out


def consistent_balances(concentrations: np.ndarray, E: np.ndarray) -> bool:
    """Whether the data conserve every element total of ``E`` to within their noise.

    Parameters
    ----------
    concentrations : numpy.ndarray
        ``(n, n_t, n_s)`` measured concentrations.
    E : numpy.ndarray
        ``(n_elements, n_s)`` element counts.

    Returns
    -------
    bool
        True when, for every element, the median over samples of the largest change of
        its total is at most :data:`DRIFT_SHARE` of its turnover or :data:`LEVEL_SHARE`
        of its total.
    """
    c = np.asarray(concentrations, dtype=float)
    totals = c @ E.T                                                # (n, n_t, n_e)
    drift = np.median(np.max(np.abs(totals - totals[:, :1]), axis=1), axis=0)
    turnover = np.median(np.max(np.abs(c - c[:, :1]) @ E.T, axis=1), axis=0)
    level = np.median(np.max(np.abs(totals), axis=1), axis=0)
    ok = (drift <= DRIFT_SHARE * turnover) | (drift <= LEVEL_SHARE * level)
    return bool(np.all(ok))


def known_balances(data) -> tuple[tuple[str, ...], np.ndarray] | None:
    """Return ``data``'s elements and their counts when they are conservation laws.

    Parameters
    ----------
    data : ReactionData
        Measured concentrations with species names.

    Returns
    -------
    tuple or None
        ``(elements, E)`` of :func:`element_matrix` when every name is a formula and the
        data conserve every element (:func:`consistent_balances`); else None.
    """
    parsed = element_matrix(data.species)
    if parsed is None or not consistent_balances(data.concentrations, parsed[1]):
        return None
    return parsed


def balance_noise(data, E: np.ndarray) -> float:
    """Estimate the multiplicative noise level of ``data`` from its element totals.

    The totals ``T_e = Σ_s E_es c_s`` of conserved elements stay constant, so their changes
    are noise alone: with ``c = x (1 + σ ξ)``, ``T_e(t) − T_e(t_0)`` has variance
    ``σ² Σ_s E_es² (x_s(t)² + x_s(t_0)²)``, and ``σ²`` is the ratio of the summed squares.

    Parameters
    ----------
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations that conserve ``E`` (:func:`known_balances`).
    E : numpy.ndarray
        ``(n_elements, n_s)`` element counts.

    Returns
    -------
    float
        The estimated σ (0 for data that conserve the totals exactly).
    """
    c = np.asarray(data.concentrations, dtype=float)
    totals = c @ E.T
    drift = totals[:, 1:] - totals[:, :1]
    spread = (c[:, 1:] ** 2 + c[:, :1] ** 2) @ (E ** 2).T
    return float(np.sqrt(np.sum(drift ** 2) / max(float(np.sum(spread)), 1e-300)))


def element_noise(data) -> float | None:
    """Return :func:`balance_noise` of ``data`` when its element balances are known, else None.

    Parameters
    ----------
    data : ReactionData
        Measured concentrations with species names.

    Returns
    -------
    float or None
        The estimated multiplicative noise level.
    """
    known = known_balances(data)
    return None if known is None else balance_noise(data, known[1])
