"""Rows of a fit that the data cannot tell from a row with fewer molecules.

A row ``v`` whose products are passed on at once by a fast row ``f`` (or whose reactants
are made at once by one) moves the slow dynamics as ``v ± f`` does: on noisy simplified
GRI-3.0 the search kept OH + C2H4 → 2H + CH3 + CO for OH + C2H4 → CH3 + H2 + CO (H2 → 2H
runs at 4.9e3 s⁻¹ against a sampling interval of 0.1), and both refit to the same residual
within 0.1 σ². Which of the two the search lands on is chance; the data say only that they
are equally good.

Rule (:func:`simpler_forms`): for every irreversible row whose rate the data do not
determine (the identifiability analysis), the rows ``v ± f (± g)`` over the fit's other
rows that have no more molecules (reactants plus products, each side within the fit's own
largest) are scored against the row itself by the score test of
:func:`~rdlab.discover.completion.pooled_scores`: each row's energy explained, on every
sample and species, in the fit with ``v`` taken out. Of the rows within
:data:`~rdlab.discover.alternatives.EQUIVALENT_CHI2` σ² of the best score, the one with
the fewest molecules is chosen; among equally many, the fit's own row, else the highest
score. The caller refits the swapped mechanism and keeps it only when it reproduces the
data as well; the replaced rows are then reported as an equally good alternative, never
dropped silently.

The score linearises the row's effect around the fit without it, which says nothing of a
fast row: one that relaxes more than
:data:`~rdlab.discover.alternatives.RESTART_RELAXATIONS` times per first sampling
interval (:func:`~rdlab.discover.alternatives.relaxation_rate` at the first later
states) saturates, and is left as it is (on noisy GRI-3.0, seed 7, the true
H + H2O2 → H2 + HO2 relaxes about 5 000 times per interval; it scored 7.9e6 σ² against
1.8e7 for OH + H2O2 → H2O + HO2). Of the slower rows, one whose own first-order response
explains less than :data:`~rdlab.discover.balances.MIN_CHI2` σ² (a row barely used) is
only replaced by a row with fewer molecules that explains more than ``EQUIVALENT_CHI2`` σ²
beyond it: the score says little about such a row's own form.

With ``makers``, a row that alone changes some species is also set against that species'
best makers with no more molecules (:func:`~rdlab.discover.completion.orphan_makers` in
the fit without the row). A wrong maker of a weakly changing species need not be a sum of
the fit's rows: on noisy GRI-3.0, seed 7, C2H6 + C2H2 + H2O2 → CH4 + 2CH3 + CO2 (54.6 σ²)
against H + OH + CO → H2 + CO2 (412.4 σ², the next maker 405.8).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rdlab.discover.alternatives import EQUIVALENT_CHI2, RESTART_RELAXATIONS, relaxation_rate
from rdlab.discover.balances import MIN_CHI2, screened_rows
from rdlab.discover.completion import (
    live_directions,
    live_rows,
    orphan_makers,
    pooled_scores,
)
from rdlab.discover.data import ReactionData
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.subspace import stoichiometric_subspace
from rdlab.discover.trajectory_fit import TrajectoryFit

__all__ = ["COMBINED_ROWS", "SimplerForm", "molecules", "redundant_rows", "simpler_candidates",
           "simpler_forms", "swapped"]

#: Most other rows of the fit combined with a row into a simpler form (the twin of seed 8
#: of noisy GRI-3.0 passes through two fast rows: H + OH → H2O and H2 → 2H).
COMBINED_ROWS = 2


def _determined(fit: TrajectoryFit) -> set[str]:
    """Return the names of the rates (``kf_1`` …) that ``fit``'s data determine alone."""
    ident = fit.identifiability
    return {n for n, ok in zip(ident.names, ident.identifiable) if ok}


def molecules(row: np.ndarray) -> int:
    """Return the molecules a row moves: reactants plus products of integer ``(n_s,)``."""
    row = np.asarray(row)
    return int(-row[row < 0].sum() + row[row > 0].sum())


@dataclass
class SimplerForm:
    """A row of a fit and the row with fewer molecules that explains as much.

    Attributes
    ----------
    row : int
        0-based row of the fit's mechanism.
    old, new : numpy.ndarray
        ``(n_s,)`` integer rows: the fit's and the simpler one.
    chi2_old, chi2_new : float
        Residual energy each explains in the fit without ``row``, in units of σ²
        (:func:`~rdlab.discover.completion.pooled_scores`).
    """

    row: int
    old: np.ndarray
    new: np.ndarray
    chi2_old: float
    chi2_new: float

    def to_dict(self, species: tuple[str, ...]) -> dict:
        """Return a JSON-ready dict (rows as reaction lines)."""
        lines = Mechanism(species, np.vstack([self.old, self.new]).astype(float), [1.0, 1.0],
                          [0.0, 0.0]).reaction_lines()
        return {"replaced": lines[0], "by": lines[1], "chi2_replaced": self.chi2_old,
                "chi2_by": self.chi2_new}


def simpler_candidates(rows: np.ndarray, a: int, *, terms: int = COMBINED_ROWS,
                       max_reactants: int | None = None, max_products: int | None = None,
                       ) -> np.ndarray:
    """Return the rows ``rows[a] ± rows[j] (± rows[k] …)`` with no more molecules.

    Parameters
    ----------
    rows : numpy.ndarray
        ``(P, n_s)`` integer rows (a fit's directions).
    a : int
        The row to simplify.
    terms : int, default COMBINED_ROWS
        Most other rows combined with it (each with coefficient ±1).
    max_reactants, max_products : int or None
        Most molecules on each side; default the largest of ``rows``.

    Returns
    -------
    numpy.ndarray
        ``(m, n_s)`` integer rows, not in ``rows`` up to sign, fewest molecules first
        (as many as ``rows[a]`` included).
    """
    rows = np.round(np.asarray(rows, float)).astype(int)
    if max_reactants is None:
        max_reactants = max(int(-r[r < 0].sum()) for r in rows)
    if max_products is None:
        max_products = max(int(r[r > 0].sum()) for r in rows)
    seen = {tuple(r) for r in rows} | {tuple(-r) for r in rows}
    found = {}
    others = [j for j in range(len(rows)) if j != a]
    for n in range(1, terms + 1):
        for js in itertools.combinations(others, n):
            for signs in itertools.product((1, -1), repeat=n):
                r = rows[a] + sum(s * rows[j] for s, j in zip(signs, js))
                key = tuple(int(x) for x in r)
                if (key in seen or key in found or not np.any(r)
                        or molecules(r) > molecules(rows[a])
                        or -r[r < 0].sum() > max_reactants or r[r > 0].sum() > max_products):
                    continue
                found[key] = r
    out = sorted(found.values(), key=lambda r: (molecules(r), tuple(-r)))
    return np.array(out, int).reshape(-1, rows.shape[1])


def _sole_makers(directions: np.ndarray, rates: np.ndarray, a: int, data: ReactionData,
                 noise: float, basis: np.ndarray) -> np.ndarray:
    """Return makers of the species only direction ``a`` changes, with no more molecules.

    The shortlist of :func:`~rdlab.discover.completion.orphan_makers` for those species in
    the fit without ``a`` (candidates: the search's screened rows of ``basis``), limited to
    the molecules of ``a`` and the fit's largest sides: ``(m, n_s)`` integer rows.
    """
    keep = np.arange(len(directions)) != a
    others = directions[keep]
    sole = {data.species[j] for j in range(directions.shape[1])
            if directions[a, j] and not np.any(others[:, j])}
    if not sole:
        return np.zeros((0, directions.shape[1]), int)
    pool = screened_rows(data, basis, np.vstack([others, -others]).astype(int))
    most_in = max(int(-r[r < 0].sum()) for r in directions)
    most_out = max(int(r[r > 0].sum()) for r in directions)
    rows = [o.row for o in orphan_makers(others, rates[keep], data, pool, noise)
            if o.species in sole and molecules(o.row) <= molecules(directions[a])
            and -o.row[o.row < 0].sum() <= most_in and o.row[o.row > 0].sum() <= most_out
            and not np.array_equal(o.row, directions[a])]
    return np.array(rows, int).reshape(-1, directions.shape[1])


def simpler_forms(fit: TrajectoryFit, data: ReactionData, noise: float, *,
                  deadline: float | None = None, makers: bool = False) -> list[SimplerForm]:
    """Return the rows of ``fit`` that the data cannot tell from a simpler one.

    Parameters
    ----------
    fit : TrajectoryFit
        An accepted trajectory fit in V form (no reactant orders, no Arrhenius
        parameters) with its identifiability analysis.
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations on shared times.
    noise : float
        Multiplicative noise level σ, measured independently of the fit (e.g.
        :func:`~rdlab.discover.elements.balance_noise`).
    deadline : float or None, optional
        ``time.perf_counter()`` time after which
        :class:`~rdlab.discover.trajectory_fit.FitTimeout` is raised.
    makers : bool, default False
        Also score, for a row that alone changes some species, that species' best makers
        with no more molecules (:func:`~rdlab.discover.completion.orphan_makers` in the fit
        without the row): a wrong maker of a weakly changing species is no sum of the
        fit's rows.

    Returns
    -------
    list of SimplerForm
        One per row to swap (the module's rule); empty when none.
    """
    m = fit.mechanism
    if m.orders is not None or m.arrhenius is not None or noise <= 0 or fit.identifiability is None:
        return []
    determined = _determined(fit)
    live = live_rows(fit)
    _, kf_live, _, directions, rates = live_directions(fit, live)
    forward = [int(i) for i in live[kf_live > 0]]  # the first directions, in order
    kr = np.asarray(m.kr, float)
    basis = stoichiometric_subspace(data) if makers else None
    c = np.asarray(data.concentrations, float)
    times = np.asarray(data.sample_times, float)
    interval = float(np.min(times[:, 1] - times[:, 0]))
    out = []
    for a, i in enumerate(forward):
        if (kr[i] > 0 or f"kf_{i + 1}" in determined
                or relaxation_rate(m, i, c[:, 1]) * interval > RESTART_RELAXATIONS):
            continue
        cands = simpler_candidates(directions, a)
        if makers:
            cands = np.unique(np.vstack([cands, _sole_makers(directions, rates, a, data, noise,
                                                             basis)]), axis=0)
        if not len(cands):
            continue
        keep = np.arange(len(directions)) != a
        scored = np.vstack([directions[a][None], cands]).astype(int)
        chi2, _ = pooled_scores(directions[keep], rates[keep], data, scored, noise,
                                deadline=deadline)
        size = np.array([molecules(r) for r in scored])
        own = chi2[0]
        if own < MIN_CHI2:  # the score says little of this row: only clearly better
            chi2 = np.where(size < size[0], chi2, -np.inf)  # and smaller rows replace it
            chi2[0] = own
            if chi2.max() - own <= EQUIVALENT_CHI2:
                continue
        near = np.flatnonzero(chi2 >= chi2.max() - EQUIVALENT_CHI2)
        q = min(near, key=lambda q: (molecules(scored[q]), q > 0, -chi2[q], q))
        if q:
            out.append(SimplerForm(i, scored[0], scored[q], float(chi2[0]), float(chi2[q])))
    return out


def redundant_rows(fit: TrajectoryFit, *, terms: int = COMBINED_ROWS) -> list[int]:
    """Return the rows of ``fit`` that other rows of it add up to, with undetermined rates.

    A row ``v = ±f (± g)`` over one or two other live rows of the fit (coefficients ±1)
    carries no flux the others could not carry between them; when the data do not
    determine its rate either, it is a candidate to drop from a fit with more rows than
    allowed (noisy GRI-3.0, seed 2: H2O2 → H + HO2 beside H + H2O2 → H2 + HO2 and
    H2 → 2H). Only irreversible rows are returned.

    Parameters
    ----------
    fit : TrajectoryFit
        A trajectory fit in V form with its identifiability analysis.
    terms : int, default COMBINED_ROWS
        Most other rows in the sum.

    Returns
    -------
    list of int
        0-based rows of ``fit.mechanism``.
    """
    m = fit.mechanism
    if m.orders is not None or fit.identifiability is None:
        return []
    determined = _determined(fit)
    live = [int(i) for i in live_rows(fit)]
    V = np.round(np.asarray(m.V, float)).astype(int)
    out = []
    for i in live:
        if m.kr[i] > 0 or f"kf_{i + 1}" in determined:
            continue
        others = [j for j in live if j != i]
        if any(np.array_equal(V[i], sum(s * V[j] for s, j in zip(signs, js)))
               for n in range(1, terms + 1) for js in itertools.combinations(others, n)
               for signs in itertools.product((1, -1), repeat=n)):
            out.append(i)
    return out


def swapped(mechanism: Mechanism, forms: list[SimplerForm]) -> Mechanism:
    """Return ``mechanism`` with each form's row replaced by its simpler one, rates kept."""
    V = np.asarray(mechanism.V, float).copy()
    for f in forms:
        V[f.row] = f.new
    return Mechanism(mechanism.species, V, np.asarray(mechanism.kf, float).copy(),
                     np.asarray(mechanism.kr, float).copy())
