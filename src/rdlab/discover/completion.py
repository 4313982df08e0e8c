"""Complete a fitted mechanism with the rows its residual asks for (a score test).

A search can end one row short and still look noise-limited: on noisy hydrogen oxidation
(seed 2 of the benchmark) the all-rows fit pruned H2 + O → H2O and the rates of
H + OH → H2 + O and H + OH → H2O took over its flux, leaving a residual noise of 1.16× the
level the element balances measure. Given an independent noise level σ, the missing row
shows in the residual: :func:`~rdlab.discover.balances.residual_screen` sets every small
integer row of the stoichiometric subspace against what the fit misses (the part a refit of
its own rates and of the noisy starts explains projected out) and picks the row explaining
the most energy, if that is at least :data:`~rdlab.discover.balances.MIN_CHI2` σ².
:func:`completed_mechanism` returns the fit's live rows plus the picks, in the free slots
of the mechanism; the caller refits and judges it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rdlab.discover.balances import (
    MIN_CHI2,
    candidate_responses,
    interval_grid,
    orthonormal_span,
    residual_screen,
    screened_rows,
)
from rdlab.discover.data import ReactionData
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.subspace import (
    MAX_RANK,
    integer_rows,
    neutral_rates,
    stoichiometric_subspace,
    subsample,
)
from rdlab.discover.trajectory_fit import (
    RESIDUAL_FLOOR,
    KineticModel,
    TrajectoryFit,
    relative_residuals,
    simulate,
)

__all__ = ["COMPLETION_SAMPLES", "OrphanMaker", "completed_mechanism", "live_directions",
           "live_rows", "orphan_completion", "orphan_makers", "pooled_scores"]

#: Samples the residual screen of a completion reads (spread over the data, as
#: :func:`~rdlab.discover.subspace.subsample` picks them): a row carrying a few per cent of
#: a flux is below the noise on 5 samples and well above it on 20.
COMPLETION_SAMPLES = 20


def live_rows(fit: TrajectoryFit) -> np.ndarray:
    """Return the indices of ``fit``'s rows with a direction that was neither pruned nor 0."""
    m = fit.mechanism
    pruned = set(fit.pruned)
    kf, kr = np.asarray(m.kf, float), np.asarray(m.kr, float)
    return np.array([i for i in range(m.n_reactions)
                     if (kf[i] > 0 and f"kf_{i + 1}" not in pruned)
                     or (kr[i] > 0 and f"kr_{i + 1}" not in pruned)], dtype=int)


def live_directions(fit: TrajectoryFit, live: np.ndarray):
    """Return ``fit``'s live rows ``V`` (rounded), ``kf``, ``kr``, directions and their rates.

    The directions are the rows as irreversible ones (the screens read one per direction).
    """
    m = fit.mechanism
    V = np.round(np.asarray(m.V, float))[live] + 0.0
    kf, kr = np.asarray(m.kf, float)[live], np.asarray(m.kr, float)[live]
    return (V, kf, kr, np.vstack([V[kf > 0], -V[kr > 0]]),
            np.concatenate([kf[kf > 0], kr[kr > 0]]))


def _irreversible_model(species, directions: np.ndarray, rates: np.ndarray) -> KineticModel:
    """Return the directions as a model of irreversible rows at ``rates``."""
    return KineticModel.from_mechanism(
        Mechanism(species, directions, rates, np.zeros(len(rates))),
        np.zeros(len(rates), bool))


def completed_mechanism(fit: TrajectoryFit, data: ReactionData, n_reactions: int,
                        noise: float, *, samples: int = COMPLETION_SAMPLES,
                        deadline: float = math.inf) -> tuple[Mechanism, list[int]] | None:
    """Return ``fit``'s live rows plus the rows the residual screen picks, and where they are.

    Parameters
    ----------
    fit : TrajectoryFit
        A trajectory fit of a mechanism in V form (no reactant orders, no Arrhenius
        parameters) to ``data``.
    data : ReactionData
        The measured concentrations ``(n, n_t, n_s)``.
    n_reactions : int
        Rows the mechanism may have (a reversible pair counts as one); the picks fill the
        slots left by pruned rows.
    noise : float
        Multiplicative noise level σ of the concentrations, measured independently of the
        fit (e.g. :func:`~rdlab.discover.elements.balance_noise`).
    samples : int, default COMPLETION_SAMPLES
        Samples the screen reads.
    deadline : float, default inf
        ``time.perf_counter()`` time after which
        :class:`~rdlab.discover.trajectory_fit.FitTimeout` is raised.

    Returns
    -------
    (Mechanism, list of int) or None
        The completed mechanism (live rows at their fitted rates, added rows, reversible, at
        :func:`~rdlab.discover.subspace.neutral_rates`) and the indices of the added rows;
        ``None`` when there is no free slot, the subspace is too large to enumerate
        (rank above :data:`~rdlab.discover.subspace.MAX_RANK`), or nothing explains the
        residual beyond the noise.
    """
    m = fit.mechanism
    if m.orders is not None or m.arrhenius is not None or noise <= 0:
        return None
    live = live_rows(fit)
    free = n_reactions - live.size
    basis = stoichiometric_subspace(data)
    if free <= 0 or not 0 < basis.shape[0] <= MAX_RANK:
        return None
    V, kf, kr, directions, rates = live_directions(fit, live)
    if not len(directions):
        return None
    present = {tuple(r) for r in np.vstack([V, -V])}
    rows = integer_rows(basis)
    candidates = np.array([r for r in np.vstack([rows, -rows]) if tuple(r) not in present])
    if not len(candidates):
        return None
    screened = Mechanism(m.species, directions, rates, np.zeros(len(rates)))
    picks = residual_screen(screened, candidates, subsample(data, samples),
                            deadline=deadline, noise=noise)
    added: list[np.ndarray] = []
    for j, _, _ in picks:  # both directions of one row count once
        row = candidates[j]
        if not any(np.array_equal(row, a) or np.array_equal(row, -a) for a in added):
            added.append(row)
    added = added[:free]
    if not added:
        return None
    new = np.asarray(added)
    start = neutral_rates(new, data)
    completed = Mechanism(m.species, np.vstack([V, new]), np.concatenate([kf, start[:, 0]]),
                          np.concatenate([kr, start[:, 1]]))
    return completed, list(range(len(live), len(live) + len(added)))


#: Quadrature points towards each end of every sampling interval for the monomials'
#: integrals of :func:`orphan_makers` (log-spaced: the first interval's transients).
ORPHAN_GRID_POINTS = 50
#: Makers per orphan species that :func:`orphan_makers` returns (then scored on every
#: species by :func:`pooled_scores`).
ORPHAN_SHORTLIST = 40


@dataclass
class OrphanMaker:
    """The best row making a species that no row of a fit changes (:func:`orphan_makers`)."""

    species: str
    row: np.ndarray  # (n_s,) integer row
    chi2: float  # energy of the species' residual the row explains, in σ²
    rate: float  # its rate fitted to that residual alone, in the data's units

    def to_dict(self, species: tuple[str, ...]) -> dict:
        """Return a JSON-ready dict (the row as a reaction line)."""
        line = Mechanism(species, self.row[None].astype(float), [1.0], [0.0]).reaction_lines()[0]
        return {"species": self.species, "reaction": line, "chi2": self.chi2,
                "rate": self.rate}


def orphan_makers(directions: np.ndarray, rates: np.ndarray, data: ReactionData,
                  candidates: np.ndarray, noise: float, *, floor: float = RESIDUAL_FLOOR,
                  ) -> list[OrphanMaker]:
    """Score, on every sample, makers of the species that no direction of a fit changes.

    Such a species stays at its first measured value in the model, and nothing feeds back
    on it, so the first-order response of its concentration to a row ``v`` added at rate
    ``k`` is exactly ``k v_i ∫_{t_0}^t m_v(x(s)) ds`` (``m_v`` the row's monomial along the
    fit's solution ``x``). The integrals come from the solution reported on a grid dense
    towards both ends of every sampling interval (trapezoid rule), for all candidates at
    once. Each sample's start of species ``i`` may move (its measurement is noisy), so the
    residual and responses are projected off that constant, as in
    :func:`~rdlab.discover.balances.residual_screen`; the score is the residual energy a
    row explains at a rate ≥ 0, pooled over the samples, in units of ``σ²``. A search on
    a subset of the samples can miss such a row: on noisy GRI-3.0, CO2 is made by
    H + OH + CO → H2 + CO2 alone and changes by more than the noise in a few of 100
    samples.

    Parameters
    ----------
    directions : numpy.ndarray
        ``(P, n_s)`` the fit's live directions (irreversible rows), at ``rates (P,)``.
    data : ReactionData
        The measured concentrations ``(n, n_t, n_s)`` on shared times.
    candidates : numpy.ndarray
        ``(m, n_s)`` integer rows to score.
    noise : float
        Multiplicative noise level σ of the concentrations (independent of the fit).
    floor : float, default RESIDUAL_FLOOR
        Residual weights as in the trajectory fit.

    Returns
    -------
    list of OrphanMaker
        For each orphan species, its makers explaining at least
        :data:`~rdlab.discover.balances.MIN_CHI2` σ², best first (of equal scores, i.e.
        rows of one monomial, the fewest molecules first), at most
        :data:`ORPHAN_SHORTLIST` each.
    """
    c = np.asarray(data.concentrations, float)
    times = np.asarray(data.sample_times, float)
    if noise <= 0 or not len(candidates) or np.ptp(times, axis=0).max() > 0:
        return []
    moved = np.any(np.asarray(directions) != 0, axis=0)
    orphans = [i for i in np.flatnonzero(~moved) if np.any(candidates[:, i] != 0)]
    if not orphans:
        return []
    t = times[0]
    grid = np.unique(np.concatenate([interval_grid(a, b, ORPHAN_GRID_POINTS)
                                     for a, b in zip(t[:-1], t[1:])]))
    at = np.searchsorted(grid, t)
    # trapezoid weights of each grid point in each sampling interval: ∫ over interval j
    # is m(grid) @ Q[:, j]
    gaps = np.diff(grid)
    Q = np.zeros((grid.size, t.size - 1))
    for j in range(t.size - 1):
        Q[at[j]:at[j + 1], j] += gaps[at[j]:at[j + 1]] / 2
        Q[at[j] + 1:at[j + 1] + 1, j] += gaps[at[j]:at[j + 1]] / 2
    model = _irreversible_model(data.species, directions, rates)
    x, _, _ = simulate(model, np.log(np.maximum(rates, 1e-300)), c[:, 0], grid,
                       sensitivities=False)
    good = np.all(np.isfinite(x), axis=(1, 2))
    if not good.any():
        return []
    _, w = relative_residuals(x[:, at], c, floor)
    logx = np.log(np.maximum(x[good], 1e-300))
    found = []
    for i in orphans:
        rows = candidates[candidates[:, i] != 0]
        monomials, which = np.unique(np.maximum(-rows, 0), axis=0, return_inverse=True)
        cum = np.zeros((logx.shape[0], t.size, len(monomials)))
        for n, ln in enumerate(logx):  # (G, n_mono) per sample keeps memory small
            cum[n, 1:] = np.cumsum(Q.T @ np.exp(ln @ monomials.T.astype(float)), axis=0)
        wi = w[good, :, i]
        r = (c[good, :, i] - c[good, :1, i]) * wi  # the model keeps the first value
        a = wi * c[good, :1, i]  # ∂x_i/∂ln x0_i, the start's column
        B = cum * wi[..., None]
        aa = np.maximum(np.sum(a * a, axis=1), 1e-300)
        r = r - a * (np.sum(a * r, axis=1) / aa)[:, None]
        B = B - a[..., None] * (np.einsum("nt,ntm->nm", a, B) / aa[:, None])[:, None]
        g = np.einsum("nt,ntm->m", r, B)
        h = np.maximum(np.einsum("ntm,ntm->m", B, B), 1e-300)
        v = rows[:, i].astype(float)
        rate = np.maximum(np.sign(v) * g[which], 0.0) / (h[which] * np.abs(v))  # k ≥ 0
        chi2 = (rate * v) ** 2 * h[which] / noise ** 2
        # best first; of equal scores (one monomial) the fewest molecules
        order = sorted(np.flatnonzero(chi2 >= MIN_CHI2),
                       key=lambda q: (-round(float(chi2[q]), 6), int(np.abs(rows[q]).sum()), q))
        found += [OrphanMaker(data.species[i], rows[q].astype(int), float(chi2[q]),
                              float(rate[q])) for q in order[:ORPHAN_SHORTLIST]]
    return found


def pooled_scores(directions: np.ndarray, rates: np.ndarray, data: ReactionData,
                  rows: np.ndarray, noise: float, *, floor: float = RESIDUAL_FLOOR,
                  deadline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the residual energy each row explains alone, on every sample and species.

    The score test of :func:`~rdlab.discover.balances.residual_screen` for a few rows on
    all the data: the fit's residual and each row's exact forward response
    (:func:`~rdlab.discover.balances.candidate_responses`, ``"forward"``) are projected off
    what a refit of the fit's rates and of every sample's start explains. The starts act on
    one sample each, so their projection is done sample by sample, and the rates' columns
    (projected alike) after it: the same projection as the stacked one, at the cost of
    small blocks.

    Parameters
    ----------
    directions, rates : numpy.ndarray
        ``(P, n_s)`` the fit's live directions and ``(P,)`` their rates.
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations on shared times.
    rows : numpy.ndarray
        ``(m, n_s)`` integer rows to score.
    noise : float
        Multiplicative noise level σ.
    floor : float, default RESIDUAL_FLOOR
        Residual weights as in the trajectory fit.
    deadline : float or None, optional
        ``time.perf_counter()`` time after which
        :class:`~rdlab.discover.trajectory_fit.FitTimeout` is raised.

    Returns
    -------
    chi2, coefficient : numpy.ndarray
        ``(m,)`` energy explained in units of σ² (0 for a row that only explains at a
        negative rate) and the projected coefficient (ranks; no rate estimate).
    """
    model = _irreversible_model(data.species, directions, rates)
    c = np.asarray(data.concentrations, float)
    x, sens, E, bad = candidate_responses(model, np.maximum(rates, 1e-300), c,
                                          np.asarray(data.sample_times, float), rows, True,
                                          deadline, "forward")
    _, w = relative_residuals(x, c, floor)
    w[bad] = 0.0
    P, S = len(rates), c.shape[2]
    sw = sens * w[..., None]  # (n, n_t, S, P + S)
    r_all, B_all, A_all = [], [], []
    for n in range(c.shape[0]):
        # rows: later times, then the start's tie to its measurement (residual 0)
        starts = np.vstack([sw[n, 1:, :, P:].reshape(-1, S), sw[n, 0, :, P:]])
        Q, _ = np.linalg.qr(starts)
        blocks = [np.concatenate([((c[n] - x[n]) * w[n])[1:].reshape(-1), np.zeros(S)]),
                  np.vstack([(E[n] * w[n, 1:, None, :]).transpose(0, 2, 1).reshape(-1, len(rows)),
                             np.zeros((S, len(rows)))]),
                  np.vstack([sw[n, 1:, :, :P].reshape(-1, P), np.zeros((S, P))])]
        r_n, B_n, A_n = (b - Q @ (Q.T @ b) for b in blocks)
        r_all.append(r_n)
        B_all.append(B_n)
        A_all.append(A_n)
    r, B, A = np.concatenate(r_all), np.vstack(B_all), np.vstack(A_all)
    U = orthonormal_span(A)
    r = r - U @ (U.T @ r)
    B = B - U @ (U.T @ B)
    size = np.maximum(np.sum(B ** 2, axis=0), 1e-300)
    coefficient = (B.T @ r) / size
    return np.maximum(coefficient, 0.0) ** 2 * size / noise ** 2, coefficient


def orphan_completion(fit: TrajectoryFit, data: ReactionData, noise: float, *,
                      deadline: float | None = None, basis: np.ndarray | None = None,
                      ) -> tuple[Mechanism, list[int], list[OrphanMaker]] | None:
    """Return ``fit``'s live rows plus makers of the species no row changes but the data do.

    The candidates are the rows the search's residual screens consider
    (:func:`~rdlab.discover.balances.screened_rows`); :func:`orphan_makers` shortlists
    them on each orphan species' residual, every sample, and :func:`pooled_scores` chooses
    among the shortlist by the energy each explains in all species. A pick must explain at
    least :data:`~rdlab.discover.balances.MIN_CHI2` σ² in both scores; it starts at the
    rate :func:`orphan_makers` fitted. The completed mechanism may hold more rows than the
    fit was allowed; the caller decides (the estimator reports such a fit as not
    converged).

    Parameters
    ----------
    fit : TrajectoryFit
        A trajectory fit in V form (no reactant orders, no Arrhenius parameters).
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations on shared times.
    noise : float
        Multiplicative noise level σ, measured independently of the fit (e.g.
        :func:`~rdlab.discover.elements.balance_noise`).
    deadline : float or None, optional
        ``time.perf_counter()`` time after which
        :class:`~rdlab.discover.trajectory_fit.FitTimeout` is raised.
    basis : numpy.ndarray or None, optional
        ``(rank, n_s)`` stoichiometric subspace the candidates come from; default
        :func:`~rdlab.discover.subspace.stoichiometric_subspace` of ``data`` (which holds
        a weakly changing species only when known conservation laws, such as element
        balances, put it there: estimated from noisy data alone, a change of a few tenths
        of a per cent is below the rank threshold).

    Returns
    -------
    (Mechanism, list of int, list of OrphanMaker) or None
        The completed mechanism, the indices of the added rows and the picks (their
        ``chi2`` is the all-species score); ``None`` when no species is an orphan with a
        maker that explains its change beyond the noise.
    """
    m = fit.mechanism
    if m.orders is not None or m.arrhenius is not None or noise <= 0:
        return None
    live = live_rows(fit)
    V, kf, kr, directions, rates = live_directions(fit, live)
    basis = stoichiometric_subspace(data) if basis is None else np.asarray(basis, float)
    if not len(directions) or not basis.shape[0]:
        return None
    candidates = screened_rows(data, basis, np.vstack([V, -V]).astype(int))
    shortlist = orphan_makers(directions, rates, data, candidates, noise)
    if not shortlist:
        return None
    chi2, _ = pooled_scores(directions, rates, data, np.array([o.row for o in shortlist]),
                            noise, deadline=deadline)
    picks = []
    for name in dict.fromkeys(o.species for o in shortlist):
        mine = [q for q, o in enumerate(shortlist) if o.species == name]
        q = max(mine, key=lambda q: (chi2[q], -mine.index(q)))
        if chi2[q] >= MIN_CHI2 and not any(np.array_equal(shortlist[q].row, o.row)
                                           for o in picks):
            o = shortlist[q]
            picks.append(OrphanMaker(o.species, o.row, float(chi2[q]), o.rate))
    if not picks:
        return None
    new = np.array([o.row for o in picks], float)
    completed = Mechanism(m.species, np.vstack([V, new]),
                          np.concatenate([kf, [o.rate for o in picks]]),
                          np.concatenate([kr, np.zeros(len(picks))]))
    return completed, list(range(len(live), len(live) + len(picks))), picks
