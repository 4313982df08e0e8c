"""Mechanisms that the data cannot tell apart from the fitted one.

A reversible reaction ``j`` that equilibrates far faster than the sampling leaves only its
equilibrium constant in the data (the identifiability analysis finds ``kf_j/kr_j`` but
neither ``kf_j`` nor ``kr_j``). Its species then move together, and another reaction ``i``
can often be written with either partner of that equilibrium: row ``V_i`` and row
``V_i ± V_j`` give the same slow dynamics. Example 4.1 (F ⇌ R, R ⇌ P at 1e3 s⁻¹ with K = 1)
under 0.1 % noise is fitted as well by F ⇌ P as by F ⇌ R.

Rule: each such substitution that stays an elementary step (integer, at most
``max_order`` molecules on each side, not already a row) is refitted on every sample, started
from the fitted rates (``K' = K_i K_j^{±1}``); a rival counts only when it too reproduces the
data. When the fast pair relaxes more than :data:`RESTART_RELAXATIONS` times within the first
sampling interval, the rival is also refitted from the pair slowed to that rate, and the
better fit is kept: the data prefer one placement of the slow row over the other only at a
finite fast rate, and the chosen fit's pair may have drifted far up the plateau where both
are the same (noisy Example 4.1, seed 9: F ⇌ P chosen with R ⇌ P at 9e8 instead of 1e3;
from there F ⇌ R refitted to the same residual, within 2e-4 σ², and was listed as equally
good instead of preferred).

Residual sums of squares are compared in units of the noise variance σ²: a rival lower by
more than :data:`EQUIVALENT_CHI2` replaces the search's choice (the data prefer it: on
noisy Example 4.1 F ⇌ R beats F ⇌ P by about 38 σ² although both fit to the noise), and every
candidate within :data:`EQUIVALENT_CHI2` of the chosen one is reported as **equally good** (a
difference the noise explains).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rdlab.discover.mass_action_kernel import mass_action_rates_jacobian
from rdlab.discover.mechanism import ArrheniusRates, Mechanism
from rdlab.discover.trajectory_fit import NOISE_FLOOR, TrajectoryFit
from rdlab.errors import NetworkError, ParameterError, SimulationError

__all__ = ["EQUIVALENT_CHI2", "RESTART_RELAXATIONS", "Alternative", "choose", "differing_rows",
           "fast_equilibria", "relaxation_rate", "residual_sum_of_squares", "rival_fits",
           "substitutions"]

#: Largest increase of the residual sum of squares, in units of σ², of an equally good fit.
EQUIVALENT_CHI2 = 4.0
#: A fast pair relaxing more often than this per first sampling interval is also restarted
#: at this rate for a rival's refit (the rest of its rates unchanged).
RESTART_RELAXATIONS = 10.0


@dataclass
class Alternative:
    """A mechanism that reproduces the data as well as the chosen one (:func:`choose`).

    Attributes
    ----------
    mechanism : Mechanism
        Its fitted rates (normalised form).
    replaced : str
        The chosen mechanism's reactions that it does not use (text, ``"; "``-joined).
    by : str
        The reactions it uses instead.
    fast : str
        The fast equilibrium that makes the two equivalent (text); empty for a row the
        data cannot tell from one with fewer molecules
        (:mod:`rdlab.discover.simpler_forms`).
    error : float
        Its worst species' RMS relative residual (:attr:`TrajectoryFit.error`).
    delta_chi2 : float
        Its residual sum of squares minus the chosen fit's, in units of ``σ²`` (negative: it
        fits slightly better, within the noise).
    """

    mechanism: Mechanism
    replaced: str
    by: str
    fast: str
    error: float
    delta_chi2: float

    def to_dict(self) -> dict:
        """Return a JSON-ready dict.

        Returns
        -------
        dict
            ``replaced``, ``by``, ``fast``, ``error``, ``delta_chi2`` and ``reactions``
            (every row of the alternative, text).
        """
        return {"replaced": self.replaced, "by": self.by, "fast": self.fast,
                "error": float(self.error), "delta_chi2": float(self.delta_chi2),
                "reactions": self.mechanism.reaction_lines()}


def fast_equilibria(fit: TrajectoryFit) -> list[int]:
    """Return the rows whose ratio ``kf/kr`` is identifiable but neither rate alone is.

    Parameters
    ----------
    fit : TrajectoryFit
        A fit with its identifiability analysis.

    Returns
    -------
    list of int
        0-based rows of ``fit.mechanism``.
    """
    ident = fit.identifiability
    alone = {n for n, ok in zip(ident.names, ident.identifiable) if ok}
    ratios = {c["name"] for c in ident.combinations}
    m = fit.mechanism
    out = []
    for j in range(m.n_reactions):
        kf, kr = f"kf_{j + 1}", f"kr_{j + 1}"
        if (m.kf[j] > 0 and m.kr[j] > 0 and kf not in alone and kr not in alone
                and (f"{kf}/{kr}" in ratios or f"{kr}/{kf}" in ratios)):
            out.append(j)
    return out


def substitutions(V: np.ndarray, fast: list[int], max_order: int = 2
                  ) -> list[tuple[int, int, int, np.ndarray]]:
    """Return each elementary row ``V_i + s V_j`` (``j`` fast, ``i ≠ j``, ``s = ±1``).

    Parameters
    ----------
    V : numpy.ndarray
        ``(n_r, n_s)`` integer stoichiometry (an all-zero row is skipped).
    fast : list of int
        Rows in fast equilibrium (:func:`fast_equilibria`).
    max_order : int, default 2
        Most molecules on either side of a substituted row.

    Returns
    -------
    list of (i, j, s, row)
        The substitutions; ``row`` is the new ``(n_s,)`` integer row ``i``.
    """
    V = np.round(np.asarray(V, float))
    existing = {tuple(r) for r in V} | {tuple(-r) for r in V}
    out = []
    for j in fast:
        for i in range(V.shape[0]):
            if i == j or not np.any(V[i]):
                continue
            for s in (1, -1):
                row = V[i] + s * V[j]
                key = tuple(row)
                if (not np.any(row) or key in existing or -row[row < 0].sum() > max_order
                        or row[row > 0].sum() > max_order):
                    continue
                existing |= {key, tuple(-row)}
                out.append((i, j, s, row))
    return out


def _substituted(m: Mechanism, i: int, j: int, s: int, row: np.ndarray) -> Mechanism:
    """Return ``m`` with row ``i`` replaced by ``row`` = ``V_i + s V_j``.

    Rates start at ``kf_i`` and ``K' = K_i K_j^s`` (activation energies likewise).
    """
    V, kf, kr = m.V.copy(), m.kf.copy(), m.kr.copy()
    V[i] = row
    K_j = m.kf[j] / m.kr[j]
    if m.kr[i] > 0:
        kr[i] = m.kr[i] * K_j ** (-s)
    arr = m.arrhenius
    if arr is not None and m.reference_temperature is not None:
        ef, er = arr.energy_f.copy(), arr.energy_r.copy()
        if m.kr[i] > 0:
            er[i] = arr.energy_r[i] - s * (arr.energy_f[j] - arr.energy_r[j])
        arr = ArrheniusRates.at_reference(kf, kr, ef, er, m.reference_temperature,
                                          arr.gas_constant)
    return Mechanism(m.species, V, kf, kr, None, arr, m.reference_temperature)


def relaxation_rate(m: Mechanism, j: int, states: np.ndarray) -> float:
    """Return how fast row ``j`` alone relaxes towards its equilibrium, at ``states``.

    The pair's Jacobian ``ν_j ⊗ ∇(r_f − r_r)`` has one non-zero eigenvalue, its trace; the
    rate is minus that, the median over ``states`` ``(n, n_s)`` (1 / time unit).
    """
    a, b = m.reactant_orders()
    x = np.ascontiguousarray(np.maximum(np.asarray(states, float), 0.0))
    k = np.broadcast_to([float(m.kf[j]), float(m.kr[j])], (x.shape[0], 2))
    net = np.stack([m.V[j], -m.V[j]]).astype(float)
    J = mass_action_rates_jacobian(x, np.ascontiguousarray(k),
                                   np.ascontiguousarray(np.stack([a[j], b[j]]), float),
                                   np.ascontiguousarray(net))[2]
    return float(np.median(-np.trace(J, axis1=1, axis2=2)))


def _slowed(m: Mechanism, j: int, factor: float) -> Mechanism:
    """Return ``m`` with both rates of row ``j`` divided by ``factor`` (its ratio kept)."""
    kf, kr = m.kf.copy(), m.kr.copy()
    kf[j] /= factor
    kr[j] /= factor
    arr = m.arrhenius
    if arr is not None and m.reference_temperature is not None:
        arr = ArrheniusRates.at_reference(kf, kr, arr.energy_f, arr.energy_r,
                                          m.reference_temperature, arr.gas_constant)
    return Mechanism(m.species, m.V, kf, kr, None, arr, m.reference_temperature)


def residual_sum_of_squares(fit: TrajectoryFit, per_species: int) -> float:
    """Return the residual sum of squares behind ``fit.species_rms``."""
    return per_species * float(np.sum(np.asarray(fit.species_rms) ** 2))


def differing_rows(chosen: Mechanism, other: Mechanism) -> tuple[str, str]:
    """Return the reactions of ``chosen`` that ``other`` lacks, and those it has instead.

    Text, ``"; "``-joined; rows are compared up to sign.
    """
    def rows(m: Mechanism) -> list[tuple]:
        return [tuple(np.round(r)) for r in m.V]

    mine, theirs = rows(chosen), rows(other)
    gone = [ln for r, ln in zip(mine, chosen.reaction_lines())
            if r not in theirs and tuple(-np.array(r)) not in theirs]
    new = [ln for r, ln in zip(theirs, other.reaction_lines())
           if r not in mine and tuple(-np.array(r)) not in mine]
    return "; ".join(gone), "; ".join(new)


def rival_fits(fit: TrajectoryFit, refit: Callable[[Mechanism], TrajectoryFit],
               reproduces: Callable[[TrajectoryFit], bool], *,
               states: np.ndarray | None = None, interval: float | None = None,
               ) -> list[tuple[TrajectoryFit, str]]:
    """Refit every substitution through ``fit``'s fast equilibria; keep those that fit.

    Parameters
    ----------
    fit : TrajectoryFit
        The chosen fit (converged, with identifiability).
    refit : callable
        Fits a mechanism's rates on every sample (the chosen fit's own settings); may raise
        :class:`~rdlab.errors.SimulationError` when out of time.
    reproduces : callable
        Says whether a fit reproduces the data (the acceptance rule the chosen fit passed).
    states : numpy.ndarray or None, optional
        ``(n, n_s)`` measured states at which a fast pair's relaxation rate is read
        (:func:`relaxation_rate`), e.g. the first later time of every sample.
    interval : float or None, optional
        The first sampling interval. With ``states``, a rival whose fast pair relaxes more
        than :data:`RESTART_RELAXATIONS` times in it is also refitted from the pair slowed
        to that rate; the fit with the smaller residual is kept.

    Returns
    -------
    list of (TrajectoryFit, str)
        Each rival's fit and the fast equilibrium (text) it was swapped through; empty when
        no row is in fast equilibrium or the mechanism is catalytic.
    """
    m = fit.mechanism
    if m.orders is not None:
        return []
    fast = fast_equilibria(fit)
    if not fast:
        return []
    V = np.where(((m.kf > 0) | (m.kr > 0))[:, None], np.round(m.V), 0.0)  # dropped rows: 0
    molecules = max(int(max(-r[r < 0].sum(), r[r > 0].sum())) for r in V)
    lines = m.reaction_lines()
    out = []
    for i, j, s, row in substitutions(V, fast, max(2, molecules)):
        start = _substituted(m, i, j, s, row)
        starts = [start]
        if states is not None and interval is not None and interval > 0:
            relaxations = relaxation_rate(start, j, states) * interval
            if relaxations > RESTART_RELAXATIONS:
                starts.append(_slowed(start, j, relaxations / RESTART_RELAXATIONS))
        kept = None
        for mech in starts:
            try:
                alt = refit(mech)
            except (NetworkError, ParameterError, SimulationError):
                continue
            if alt.timed_out or not alt.success or not reproduces(alt):
                continue
            new = alt.mechanism
            hit = np.flatnonzero(np.all(np.round(new.V) == row, axis=1)
                                 | np.all(np.round(new.V) == -row, axis=1))
            if not hit.size or (new.kf[hit[0]] == 0 and new.kr[hit[0]] == 0):
                continue  # the substituted reaction was dropped: a different mechanism
            if kept is None or residual_sum_of_squares(alt, 1) < residual_sum_of_squares(kept, 1):
                kept = alt
        if kept is not None:
            out.append((kept, lines[j]))
    return out


def choose(fit: TrajectoryFit, rivals: list[tuple[TrajectoryFit, str]], sigma: float,
           per_species: int) -> tuple[TrajectoryFit, list[Alternative]]:
    """Return the fit to report and the mechanisms that fit the data as well.

    ``fit`` stays chosen unless a rival's residual sum of squares is lower by more than
    :data:`EQUIVALENT_CHI2` ``σ²`` (the data prefer it); then the best rival is chosen.
    Every other candidate within :data:`EQUIVALENT_CHI2` ``σ²`` of the chosen one is
    equally good.

    Parameters
    ----------
    fit : TrajectoryFit
        The search's fit.
    rivals : list of (TrajectoryFit, str)
        :func:`rival_fits`.
    sigma : float
        Noise level of the relative residuals (floored at the solver's precision).
    per_species : int
        Residuals per species behind ``species_rms`` (samples × later times).

    Returns
    -------
    chosen : TrajectoryFit
        ``fit`` or the rival the data prefer.
    equally_good : list of Alternative
        Best first.
    """
    sigma2 = max(sigma, NOISE_FLOOR) ** 2
    rss = residual_sum_of_squares(fit, per_species)
    pool = [(fit, rivals[0][1] if rivals else "")] + list(rivals)
    best = min(range(len(pool)), key=lambda k: residual_sum_of_squares(pool[k][0], per_species))
    if (rss - residual_sum_of_squares(pool[best][0], per_species)) / sigma2 <= EQUIVALENT_CHI2:
        best = 0
    chosen = pool[best][0]
    base = residual_sum_of_squares(chosen, per_species)
    out = []
    for k, (alt, fast) in enumerate(pool):
        delta = (residual_sum_of_squares(alt, per_species) - base) / sigma2
        if k == best or delta > EQUIVALENT_CHI2:
            continue
        replaced, by = differing_rows(chosen.mechanism, alt.mechanism)
        out.append(Alternative(alt.mechanism.normalised(), replaced, by,
                               pool[best][1] if k == 0 else fast, alt.error, delta))
    return chosen, sorted(out, key=lambda a: a.delta_chi2)
