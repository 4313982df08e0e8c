"""Candidate reactions of networks too large to enumerate: species balances and residual screens.

:func:`~rdlab.discover.subspace.fit_all_rows` fits every small integer row of the data's
stoichiometric subspace at once, which is affordable up to rank
:data:`~rdlab.discover.subspace.MAX_RANK`. Simplified GRI-3.0 has rank 12, thousands of
such rows, quasi-steady radicals (so that merged rows such as CH4 → CH3 + H are as valid
generators of the subspace as the true ones) and species used up within the first sampling
interval. Here the candidates come from the kinetics instead, in stages:

1. **Balances** (:func:`balance_rows`). After the first interval the trajectories are smooth,
   and the rate of change of each *trace* species (its later mean at most :data:`TRACE` of
   its initial one: a quasi-steady intermediate) is a non-negative combination of production
   monomials without it and consumption monomials with it. A non-negative least-squares fit
   of that balance (derivatives from cubic splines of ``ln c``, residuals relative to the
   species) names the reactant sets that make or use it; every product multiset (at most
   :data:`MAX_MOLECULES` molecules) that keeps the row inside the subspace, with the sign the
   balance asked for, makes a candidate row.
2. **Start rates** (:func:`start_rates`): non-negative least squares of all species' later
   derivatives on the rows.
3. **Exhausted species** (:func:`screen_exhausted`): a species used up within the first
   interval leaves no later data; rows consuming it (order ≤ 2) are screened by simulating
   the first interval with the stage-2 model plus each row at rates on a grid.
4. **Quick fit** of the union through the stiff solver, without pruning.
5. **Residual screen** (:func:`residual_screen`): a score test of every row of order ≤
   :data:`SCREEN_ORDER`, and of every row with an exhausted reactant up to order
   :data:`MAX_MOLECULES`. Each row's linear response at the later times
   (:func:`linear_responses`: adjoint solves, interval by interval) is set against the
   quick fit's residual, with the part that a refit of the present rates explains
   projected out; rows that explain most of what is left are added greedily.
6. **Final fit** with pruning (:func:`~rdlab.discover.trajectory_fit.fit_trajectories`) on
   a few samples, from the quick fit's rates (the added rows at neutral rates).
7. **Refinement** (:data:`REFINE_ROUNDS` rounds): while the fit leaves more than the
   solver's residual, the residual screen runs again on the fit and its picks are fitted
   in with pruning; a round is kept when it lowers the worst species' residual. This
   repairs a true row that the fit replaced by a near twin (on GRI: C2H4 + OH → CH3 + CO +
   H2 by C2H4 + OH → CH3 + CO + 2H, the difference being the fast H2 → 2H). A species the
   data show changing but no row of the fit changes (on GRI: CO2, whose one maker
   H + OH + CO → H2 + CO2 carries 2e-4 of the OH flux) gets its best maker scored on its
   own residual.

The caller verifies the survivors on every sample.

Derivative estimates only *propose* here; what is accepted is decided on the trajectories.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.interpolate import CubicSpline
from scipy.optimize import nnls

from rdlab.discover.data import ReactionData
from rdlab.discover.elements import element_noise
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.subspace import neutral_rates, subsample
from rdlab.discover.trajectory_fit import (
    RESIDUAL_FLOOR,
    FitTimeout,
    KineticModel,
    TrajectoryFit,
    fit_trajectories,
    relative_residuals,
    simulate,
)
from rdlab.errors import NetworkError, ParameterError

__all__ = ["ADD_SHARE", "DEEP_FLOOR", "EXHAUSTED", "MAX_ADDED", "MAX_MOLECULES", "MIN_CHI2",
           "REFINE_ROUNDS", "ROWS_PER_RANK", "SCREEN_ORDER", "SHARE", "SOLVER_RESIDUAL", "TRACE",
           "BalanceSearch", "ProductTable", "balance_rows", "fit_balance_rows",
           "late_derivatives", "linear_responses", "residual_screen", "screen_exhausted",
           "start_rates"]

#: A species whose later mean concentration is at most this share of its initial mean is a
#: trace (quasi-steady) species, whose balance is regressed.
TRACE = 1e-3
#: Balance terms kept: flux at least this share of the balance's largest term.
SHARE = 1e-4
#: A species whose median ``c(t_1)/c(t_0)`` is below this is used up in the first interval.
EXHAUSTED = 1e-3
#: Most molecules on either side of a candidate row, and largest coefficient.
MAX_MOLECULES = 4
MAX_COEFFICIENT = 2
#: Most balance rows per rank of the subspace. Noise-free simplified GRI-3.0 (rank 12) gives
#: 18–22; with 0.1 % noise the spline slopes of the trace species (OH at 1e-10) scatter,
#: hundreds of terms pass :data:`SHARE` and the reactant sets expand to 76 629 rows (a
#: 9 GiB start-rate system). Rows are taken from the terms of largest share down until
#: this many per rank are reached.
ROWS_PER_RANK = 5
#: Rates (per unit time) of the first-interval screen of rows consuming an exhausted species.
RATE_GRID = (1e2, 1e3, 1e4, 1e5)
#: Of those, how many (best at the first rate) are tried on the whole grid, and the error
#: ratio to the best within which a row is kept.
SCREEN_REFINE = 8
SCREEN_FACTOR = 2.0
#: The residual screen adds a row while it leaves at most this share of the (projected)
#: residual, at most :data:`MAX_ADDED` rows.
ADD_SHARE = 0.5
MAX_ADDED = 4
#: On noisy data a residual-screen pick must explain at least this many σ² of weighted
#: residual energy: the best of a thousand candidates fitted to pure noise explains about
#: 2 ln 1000 ≈ 14 σ².
MIN_CHI2 = 25.0
#: Largest order of every reactant set whose rows the residual screen scores (rows with an
#: exhausted reactant go up to :data:`MAX_MOLECULES`).
SCREEN_ORDER = 3
#: Rounds of residual screen and refit after the final fit, while the fit leaves a residual
#: above the solver's and a round improves it.
REFINE_ROUNDS = 3
#: A relative residual whose RMS is at most this is the solver's (tolerance 1e-7), not a
#: missing row's: the residual screen picks nothing. (A true row replaced by a near twin,
#: on simplified GRI-3.0, leaves 2–3e-6; the true mechanism about 2e-7.)
SOLVER_RESIDUAL = 1e-6
#: Samples the screens and the fits on a subset use (noise-free data).
SAMPLES = 5
#: Samples the screens and the fits on a subset use when the data carry noise (above
#: :data:`SOLVER_RESIDUAL`). With the starts free to move, the rows that carry 2–3e-4 of
#: a flux on simplified GRI-3.0 explain a few σ² on 5 samples, under :data:`MIN_CHI2`, and
#: 20–50 σ² on 20: at 0.1 % noise, seeds 1 and 2 end with 10 of the 12 true rows on 20
#: samples (accepted, in 234 s and 110 s), against 9 and 8 on 5 (not accepted, 300 s).
NOISY_SAMPLES = 20
#: Relative floor ``δ_s / max x_s`` of the residual weights for a second search when the
#: first, at :data:`~rdlab.discover.trajectory_fit.RESIDUAL_FLOOR`, is not accepted.
#: Scaling every consumer of a quasi-steady species by λ scales its level by 1/λ and leaves
#: every flux, so every other species, as it was: only the species' own late level fixes
#: that scale. On simplified GRI-3.0 OH settles at about 2.5e-10 of its largest value; under
#: a floor of 1e-4 a 20-fold error there costs 1e-4 of residual, and the fits of seeds 4 and
#: 6 settled with H + OH → H2O 20–40× too fast and stand-ins for three true rows. 1e-6 finds
#: them; it is not the first floor because it leads seeds 2, 7 and 9 to wrong structures.
DEEP_FLOOR = 1e-6


def _multisets(species: list[int], most: int, fewest: int = 1):
    """Yield ``{species: power}`` of every multiset of ``fewest … most`` members (powers ≤ 2)."""
    for k in range(fewest, most + 1):
        for combo in itertools.combinations_with_replacement(species, k):
            e = {i: combo.count(i) for i in set(combo)}
            if max(e.values(), default=0) <= MAX_COEFFICIENT:
                yield e


def _vector(e: dict, n_s: int) -> np.ndarray:
    v = np.zeros(n_s, int)
    for i, p in e.items():
        v[i] = p
    return v


@dataclass(frozen=True)
class ProductTable:
    """Every product multiset of the changing species and its image under the conservation laws.

    Attributes
    ----------
    products : numpy.ndarray
        ``(m, n_s)`` multisets of at most :data:`MAX_MOLECULES` molecules.
    laws : numpy.ndarray
        ``(n_s − rank, n_s)`` orthonormal conservation laws (the subspace's complement).
    images : numpy.ndarray
        ``(m, n_s − rank)`` ``products @ laws.T``.
    """

    products: np.ndarray
    laws: np.ndarray
    images: np.ndarray

    @classmethod
    def build(cls, basis: np.ndarray, changing: list[int]) -> ProductTable:
        """Return the table of the subspace spanned by ``basis`` ``(rank, n_s)`` rows."""
        n_s = basis.shape[1]
        laws = np.linalg.svd(basis, full_matrices=True)[2][basis.shape[0]:]
        M = np.array([v for k in range(1, MAX_MOLECULES + 1)
                      for combo in itertools.combinations_with_replacement(changing, k)
                      for v in [np.bincount(combo, minlength=n_s)] if v.max() <= MAX_COEFFICIENT]
                     ).reshape(-1, n_s)
        return cls(M, laws, M @ laws.T)

    def rows_for(self, reactants: np.ndarray) -> np.ndarray:
        """Return the rows ``p − r`` inside the subspace, ``p`` sharing no species with ``r``."""
        same = np.all(np.abs(self.images - reactants @ self.laws.T) < 1e-6, axis=1)
        apart = ~np.any((self.products > 0) & (reactants > 0), axis=1)
        return self.products[same & apart] - reactants


def late_derivatives(data: ReactionData) -> tuple[np.ndarray, np.ndarray]:
    """Return the concentrations and spline derivatives at every time after the first.

    Parameters
    ----------
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations, ``n_t ≥ 4``.

    Returns
    -------
    C, D : numpy.ndarray
        ``(n·(n_t − 1), n_s)`` concentrations and ``dc/dt`` at ``t_1 … t_{n_t − 1}``: cubic
        splines of ``ln c`` (of ``c`` where it is not positive throughout).
    """
    c = np.asarray(data.concentrations, float)[:, 1:]
    t = np.asarray(data.sample_times, float)[:, 1:]
    D = np.zeros_like(c)
    for n in range(c.shape[0]):
        for i in range(c.shape[2]):
            y = c[n, :, i]
            if np.all(y > 0):
                D[n, :, i] = CubicSpline(t[n], np.log(y))(t[n], 1) * y
            elif np.ptp(y) > 0:
                D[n, :, i] = CubicSpline(t[n], y)(t[n], 1)
    n_s = c.shape[2]
    return c.reshape(-1, n_s), D.reshape(-1, n_s)


def _balance_terms(X: int, C: np.ndarray, dX: np.ndarray, others: list[int]) -> list[tuple]:
    """Fit the balance of species ``X``; return ``(exponents, ±1, flux share)`` per term.

    ``w (Σ k_p m_p − Σ a k_c m_c − s dX/dt) = 0`` with ``w = 1/X``, every ``k`` and ``s ≥ 0``,
    production monomials of order ≤ 2 without ``X``, consumption monomials ``X^a m``
    (``a`` 1 or 2, ``m`` of order ≤ 2), and the mean weighted production held at 1 by a
    heavy extra row: the scale ``s`` of ``dX/dt`` is free, so that a quasi-steady balance
    (``dX/dt ≈ 0``) is found as well as a net rate.
    """
    prod = list(_multisets(others, 2))
    cons = [{**e, X: a} for a in (1, 2) for e in _multisets(others, 2, 0)]
    logC = np.log(np.maximum(C, 1e-300))

    def mono(e):
        return np.exp(sum(p * logC[:, i] for i, p in e.items()))

    Mp = np.array([mono(e) for e in prod]).T
    Mc = np.array([mono(e) * e[X] for e in cons]).T
    w = 1.0 / np.maximum(C[:, X], 1e-300)
    A = np.hstack([Mp, -Mc]) * w[:, None]
    norms = np.linalg.norm(A, axis=0)
    A = A / np.where(norms > 0, norms, 1.0)
    y = dX * w
    full = np.hstack([A, -(y / max(float(np.linalg.norm(y)), 1e-300))[:, None]])
    scale_row = np.concatenate([np.abs(A[:, :len(prod)]).mean(0), np.zeros(len(cons) + 1)])
    lam = math.sqrt(len(C)) * 10.0 / max(float(scale_row.max()), 1e-300)
    full = np.vstack([full, lam * scale_row])
    b = np.zeros(len(full))
    b[-1] = lam
    k, _ = nnls(full, b, maxiter=30 * full.shape[1])
    flux = k[:-1] * np.abs(A).mean(0)
    if not np.any(flux > 0):
        return []
    terms = prod + cons
    top = float(flux.max())
    return [(terms[j], 1 if j < len(prod) else -1, flux[j] / top)
            for j in np.argsort(-flux) if flux[j] > 0]


@dataclass
class _Facts:
    """What the stages share: the subspace, the species' roles, the later data."""

    table: ProductTable
    changing: list[int]
    present: list[int]
    trace: list[int]
    exhausted: list[int]
    C: np.ndarray
    D: np.ndarray
    noise: float = 0.0  # the concentrations' multiplicative noise level (given or estimated)

    @property
    def rank(self) -> int:
        return self.table.laws.shape[1] - self.table.laws.shape[0]


def _facts(data: ReactionData, basis: np.ndarray) -> _Facts:
    c = np.asarray(data.concentrations, float)
    changing = [i for i in range(c.shape[2]) if np.max(np.ptp(c[:, :, i], axis=1)) > 0]
    start, later = c[:, 0].mean(0), c[:, 1:].mean((0, 1))
    rel = np.median(c[:, 1:] / np.maximum(c[:, :1], 1e-300), axis=(0, 1))
    present = [i for i in changing if rel[i] > 1e-15]
    trace = [X for X in present if later[X] <= TRACE * start[X]]
    first = np.median(c[:, 1] / np.maximum(c[:, 0], 1e-300), axis=0)
    exhausted = [i for i in changing if first[i] < EXHAUSTED]
    C, D = late_derivatives(data)
    return _Facts(ProductTable.build(basis, changing), changing, present, trace, exhausted, C, D)


def balance_rows(data: ReactionData, basis: np.ndarray) -> np.ndarray:
    """Candidate rows from the balances of the trace species (stage 1 of the module).

    Parameters
    ----------
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations.
    basis : numpy.ndarray
        ``(rank, n_s)`` the stoichiometric subspace
        (:func:`~rdlab.discover.subspace.stoichiometric_subspace`).

    Returns
    -------
    numpy.ndarray
        ``(m, n_s)`` integer rows (possibly ``m = 0``).
    """
    return _balance_rows(_facts(data, basis))


def _balance_rows(f: _Facts, share: float = SHARE) -> np.ndarray:
    """Rows of the balance terms of at least ``share``, largest first, to ROWS_PER_RANK per rank.

    On noisy data ``share`` is the noise level: a term below it is the spline slopes' scatter.
    """
    n_s = f.C.shape[1]
    found: dict[tuple, set] = {}
    best: dict[tuple, float] = {}
    for X in f.trace:
        others = [i for i in f.present if i != X]
        if not others:
            continue
        for e, sign, term_share in _balance_terms(X, f.C, f.D[:, X], others):
            if term_share >= share:
                key = tuple(_vector(e, n_s))
                found.setdefault(key, set()).add((X, sign))
                best[key] = max(best.get(key, 0.0), term_share)
    most = ROWS_PER_RANK * max(f.rank, 1)
    rows: dict[tuple, None] = {}  # in order of share, without repeats
    for key in sorted(found, key=lambda e: -best[e]):
        r = np.array(key)
        if r.max() > MAX_COEFFICIENT or r.sum() > MAX_MOLECULES:
            continue
        for v in f.table.rows_for(r):
            if any(np.sign(v[X]) == s for X, s in found[key]):
                rows.setdefault(tuple(int(x) for x in v), None)
        if len(rows) >= most:
            break
    return np.unique(np.array(list(rows)[:most], int).reshape(-1, n_s), axis=0)


def start_rates(rows: np.ndarray, C: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rates of ``rows`` from the later derivatives (stage 2), and start rates for a fit.

    Non-negative least squares of every species' ``dc/dt`` (weights ``1/c``) on the rows'
    mass-action columns. The later data cannot split one reactant set's total rate among
    its rows, so the start rates share it equally; a set without rate starts at 1e-3 of the
    typical flux.

    Returns
    -------
    rates, start : numpy.ndarray
        ``(m,)`` each.
    """
    orders = np.maximum(-rows, 0)
    m = np.exp(np.log(np.maximum(C, 1e-300)) @ orders.T)
    w = 1.0 / np.maximum(C, 1e-300)
    A = ((m[:, None, :] * rows.T[None]) * w[:, :, None]).reshape(-1, len(rows))
    norms = np.linalg.norm(A, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    k, _ = nnls(A / norms, (D * w).reshape(-1), maxiter=50 * len(rows))
    k = k / norms
    mean = m.mean(0)
    flux = k * mean
    typical = float(np.exp(np.mean(np.log(flux[flux > 0])))) if np.any(flux > 0) else 1.0
    start = np.empty_like(k)
    _, group = np.unique(orders, axis=0, return_inverse=True)
    for g in np.unique(group):
        idx = np.flatnonzero(group == g)
        total = k[idx].sum()
        start[idx] = total / len(idx) if total > 0 else 1e-3 * typical / max(mean[idx[0]], 1e-300)
    return k, start


def _rows_of_sets(f: _Facts, max_order: int, exclude: np.ndarray, *,
                  exhausted_only: bool) -> np.ndarray:
    """Return the rows of every reactant set of order ≤ ``max_order``, except ``exclude``.

    With ``exhausted_only``, only sets holding an exhausted species.
    """
    n_s = f.C.shape[1]
    rows = [v for e in _multisets(f.changing, max_order)
            if not exhausted_only or any(i in f.exhausted for i in e)
            for v in f.table.rows_for(_vector(e, n_s))]
    rows = np.unique(np.array(rows, int).reshape(-1, n_s), axis=0)
    if len(exclude) and len(rows):
        keep = ~np.any(np.all(rows[:, None, :] == np.asarray(exclude)[None], axis=2), axis=1)
        rows = rows[keep]
    return rows


def _exhausted_rows(f: _Facts, max_order: int, exclude: np.ndarray) -> np.ndarray:
    """Rows consuming an exhausted species (order ≤ ``max_order``), except those of ``exclude``."""
    return _rows_of_sets(f, max_order, exclude, exhausted_only=True)


def screened_rows(data: ReactionData, basis: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Return the rows the residual screens of the search consider, except ``exclude``.

    Every row of the subspace ``basis`` with a reactant set of order ≤
    :data:`SCREEN_ORDER` (products from the subspace), and those consuming a species the
    data exhaust within the first interval, up to :data:`MAX_MOLECULES` reactants:
    ``(m, n_s)`` integer rows.
    """
    return _screened_rows(_facts(data, basis), np.asarray(exclude, int).reshape(-1, basis.shape[1]))


def _screened_rows(f: _Facts, exclude: np.ndarray) -> np.ndarray:
    """Return the residual screen's candidates, except ``exclude``.

    Every row of order ≤ :data:`SCREEN_ORDER`, and those consuming an exhausted species up
    to :data:`MAX_MOLECULES`.
    """
    rows = np.vstack([_rows_of_sets(f, SCREEN_ORDER, exclude, exhausted_only=False),
                      _exhausted_rows(f, MAX_MOLECULES, exclude)])
    return np.unique(rows, axis=0) if len(rows) else rows


def _first_interval_error(rows: np.ndarray, k: np.ndarray, sub: ReactionData,
                          rtol: float = 1e-6, skip: list[int] | tuple = (),
                          floor: float = RESIDUAL_FLOOR, deadline: float | None = None) -> float:
    """Relative RMS error at ``t_1`` of ``rows`` at rates ``k`` simulated from ``t_0``.

    Species ``skip`` (indices) are left out of the mean; ``floor`` as in
    :func:`~rdlab.discover.trajectory_fit.relative_residuals`. Raises
    :class:`~rdlab.discover.trajectory_fit.FitTimeout` once ``deadline`` has passed.
    """
    c = np.asarray(sub.concentrations, float)
    mech = Mechanism(sub.species, rows, np.maximum(k, 1e-30), np.zeros(len(rows)))
    model = KineticModel.from_mechanism(mech, np.zeros(len(rows), bool))
    t = np.asarray(sub.sample_times, float)[0, :2]
    x, _, ok = simulate(model, np.log(np.maximum(k, 1e-30)), c[:, 0], t, sensitivities=False,
                        rtol=rtol, deadline=deadline)
    if not ok:
        return math.inf
    delta = floor * np.maximum(np.max(np.abs(c), axis=(0, 1)), 1e-300)
    r = (x[:, 1] - c[:, 1]) / (np.abs(c[:, 1]) + delta)
    scored = np.setdiff1d(np.arange(r.shape[1]), np.asarray(skip, int))
    return float(np.sqrt(np.mean(r[:, scored] ** 2)))


def screen_exhausted(rows: np.ndarray, k: np.ndarray, candidates: np.ndarray,
                     sub: ReactionData, skip: list[int] | tuple = (),
                     floor: float = RESIDUAL_FLOOR, deadline: float | None = None
                     ) -> list[tuple[np.ndarray, float]]:
    """Keep the candidates that best explain the first interval (stage 3).

    Each candidate joins ``rows`` (rates ``k``), first at :data:`RATE_GRID`'s 1e4 with a
    loose tolerance; the best :data:`SCREEN_REFINE` are tried at every grid rate, and those
    within :data:`SCREEN_FACTOR` of the best error are returned with their best rate.
    ``floor`` weighs the residuals as in
    :func:`~rdlab.discover.trajectory_fit.relative_residuals`. Raises
    :class:`~rdlab.discover.trajectory_fit.FitTimeout` once ``deadline`` has passed (on
    noisy GRI-3.0, whose measured subspace is the whole space, the candidates run to
    thousands).
    """
    if not len(candidates):
        return []
    first = [_first_interval_error(np.vstack([rows, v]), np.append(k, 1e4), sub, rtol=1e-4,
                                   skip=skip, floor=floor, deadline=deadline)
             for v in candidates]
    tried = []
    for j in np.argsort(first)[:SCREEN_REFINE]:
        err, rate = min((_first_interval_error(np.vstack([rows, candidates[j]]),
                                               np.append(k, g), sub, skip=skip,
                                               floor=floor, deadline=deadline), g)
                        for g in RATE_GRID)
        tried.append((err, rate, int(j)))
    tried.sort()
    if not math.isfinite(tried[0][0]):
        return []
    return [(candidates[j], rate) for err, rate, j in tried if err <= SCREEN_FACTOR * tried[0][0]]


def interval_grid(t0: float, t1: float, points: int) -> np.ndarray:
    """Return ascending times of ``[t0, t1]``, log-spaced towards both ends."""
    span = t1 - t0
    d = np.logspace(math.log10(span) - 7, math.log10(span), points)
    return np.unique(np.concatenate([[t0, t1], t0 + d, t1 - d]).clip(t0, t1))


def _trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    gaps = np.diff(grid)
    return np.concatenate([[gaps[0] / 2], (gaps[1:] + gaps[:-1]) / 2, [gaps[-1] / 2]])


def linear_responses(model: KineticModel, k: np.ndarray, x0: np.ndarray, times: np.ndarray,
                     monomials: np.ndarray, grid_points: int = 150) -> np.ndarray | None:
    """Return how one sample's later states respond to rows added at small rates.

    ``R[i − 1, m] @ v`` is the linear response of ``c(t_i)`` to a row ``v`` of unit rate
    and monomial ``m``: ``∫_{t_0}^{t_i} Φ(t_i, s) v m(c(s)) ds``, with Φ the state
    transition matrix of the model linearised along its solution. Per interval an adjoint
    solve backwards from ``t_j`` gives ``Ψ_j(s) = Φ(t_j, s)`` on a grid dense towards both
    ends (the first interval's transient; the stiff decay of Ψ next to ``t_j``), so that
    ``W_{j,m} = ∫ Ψ_j(s) m(c(s)) ds`` and ``R_j = Ψ_j(t_{j−1}) R_{j−1} + W_j``.

    Parameters
    ----------
    model : KineticModel
        The mechanism, linearised along its own solution.
    k : numpy.ndarray
        ``(n_directions,)`` its rates.
    x0 : numpy.ndarray
        ``(S,)`` the sample's first state.
    times : numpy.ndarray
        ``(n_t,)`` its times.
    monomials : numpy.ndarray
        ``(n_mono, S)`` reactant orders of the rows to score.
    grid_points : int, default 150
        Quadrature points towards each end of every interval.

    Returns
    -------
    numpy.ndarray or None
        ``R (n_t − 1, n_mono, S, S)``; ``None`` when a solve failed.
    """
    S = x0.size
    kk = k[None]

    def jac(y):
        return model.rates_jacobian(y[None], kk)[2][0]

    eye = np.eye(S)
    R = np.zeros((times.size - 1, len(monomials), S, S))
    try:
        with np.errstate(all="ignore"):
            fwd = solve_ivp(lambda _t, y: model.rates_jacobian(y[None], kk)[1][0],
                            (times[0], times[-1]), x0, method="LSODA",
                            jac=lambda _t, y: jac(y), rtol=1e-10, atol=1e-15,
                            dense_output=True)
            if not fwd.success:
                return None
            for j in range(1, times.size):
                grid = interval_grid(times[j - 1], times[j], grid_points)
                back = solve_ivp(lambda s, p: -(p.reshape(S, S) @ jac(fwd.sol(s))).reshape(-1),
                                 (times[j], times[j - 1]), eye.reshape(-1), method="LSODA",
                                 jac=lambda s, p: -np.kron(eye, jac(fwd.sol(s)).T),
                                 rtol=1e-7, atol=1e-12, t_eval=grid[::-1])
                if not back.success or back.y.shape[1] != grid.size:
                    return None
                psi = back.y.T[::-1].reshape(-1, S * S)
                Mg = np.exp(np.log(np.maximum(fwd.sol(grid).T, 1e-300)) @ monomials.T)
                W = ((Mg * _trapezoid_weights(grid)[:, None]).T @ psi).reshape(-1, S, S)
                R[j - 1] = W if j == 1 else np.einsum("ij,mjk->mik", psi[0].reshape(S, S),
                                                      R[j - 2]) + W
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        return None
    return R


def candidate_responses(model: KineticModel, k: np.ndarray, c: np.ndarray, times: np.ndarray,
                        candidates: np.ndarray, starts: bool, deadline: float | None,
                        method: str = "adjoint",
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the model's solution, its sensitivities and the candidates' responses.

    ``c (n, n_t, S)`` measured (the solution starts from ``c[:, 0]``) at ``times (n, n_t)``
    (the first sample's are the integration's);
    ``starts``: also the sensitivities to ``ln x0``. ``method``: ``"adjoint"``, per sample
    by :func:`linear_responses` (a quadrature of the adjoint's transition matrices);
    ``"forward"``, every candidate a probe of
    :func:`~rdlab.discover.trajectory_fit.simulate` (its exact forward sensitivity
    ``∂x/∂k`` at ``k = 0``, error-controlled with the rest; one compiled integration for
    all). Returns ``x (n, n_t, S)``, ``sens (n, n_t, S, n_θ)``, the responses
    ``E (n, n_t − 1, n_candidates, S)`` and ``bad (n,)``, the samples whose integration
    failed (zeroed).
    """
    if method not in ("adjoint", "forward"):
        raise ValueError(f"method must be 'adjoint' or 'forward', got {method!r}")
    forward = method == "forward"
    x, sens, _ = simulate(model, np.log(k), c[:, 0], times[0], sensitivities=True,
                          deadline=deadline, state_sensitivities=starts,
                          probes=candidates if forward else None)
    bad = ~np.all(np.isfinite(x), axis=(1, 2)) | ~np.all(np.isfinite(sens), axis=(1, 2, 3))
    x, sens = np.nan_to_num(x), np.nan_to_num(sens)
    if forward:
        m = len(candidates)
        E = np.transpose(sens[:, 1:, :, sens.shape[3] - m:], (0, 1, 3, 2)).copy()
        E[bad] = 0.0
        return x, sens[..., :sens.shape[3] - m], E, bad
    monomials, which = np.unique(np.maximum(-candidates, 0), axis=0, return_inverse=True)
    E = np.zeros((c.shape[0], c.shape[1] - 1, len(candidates), c.shape[2]))
    for n in range(c.shape[0]):
        if deadline is not None and time.perf_counter() > deadline:
            raise FitTimeout("the residual screen ran past its deadline")
        got = None if bad[n] else linear_responses(model, k, c[n, 0], times[n], monomials)
        if got is None:
            bad[n] = True
            continue
        for i, Ri in enumerate(got):
            E[n, i] = np.einsum("cij,cj->ci", Ri[which], candidates)
    return x, sens, E, bad


def residual_screen(mechanism: Mechanism, candidates: np.ndarray, sub: ReactionData, *,
                    orphans: bool = False, floor: float = RESIDUAL_FLOOR,
                    deadline: float | None = None, noise: float = 0.0,
                    responses: str = "adjoint") -> list[tuple[int, float, float]]:
    """Pick candidates that explain what a fitted mechanism misses (stage 5, a score test).

    The residual of ``mechanism`` at every later time (weighted as the trajectory fit
    weights it), with the part that refitting its own ``ln k`` explains projected out
    (the span of its sensitivities), against each candidate's response
    (:func:`linear_responses`: its effect at every later time), projected alike. Greedy
    (orthogonal matching pursuit, rates ≥ 0): the candidate leaving the smallest share of
    the residual is picked while that share is at most :data:`ADD_SHARE`, up to
    :data:`MAX_ADDED`. With ``orphans`` (the refinement rounds), each species that no row
    of ``mechanism`` or of those picks changes, but the data do, also gets the candidate
    that best explains its own residual (:func:`_orphan_picks`). ``floor`` weighs the
    residuals as in :func:`~rdlab.discover.trajectory_fit.relative_residuals`; past
    ``deadline`` :class:`~rdlab.discover.trajectory_fit.FitTimeout` is raised.

    ``noise`` (multiplicative level σ of the measured concentrations): each sample starts
    from its measured, noisy state, whose error every later point inherits; so what a change
    of the starts explains (their sensitivities ``∂x/∂ln x0``) is projected out too. The
    residual's expected noise energy ``σ² Σ (w c)²`` (less the projected share) is no
    candidate's to explain: the greedy (and orphan) pick is the candidate explaining the
    most residual energy, while that is at least :data:`MIN_CHI2` σ², and the share it
    reports is of the residual's excess over the noise energy.

    ``responses`` says how the candidates' responses are computed
    (:func:`candidate_responses`): ``"adjoint"`` (the search's) or ``"forward"``.

    Returns
    -------
    list of (int, float, float)
        ``(candidate index, share of the residual left, coefficient)`` of each pick; the
        coefficient of the projected response ranks, it is no estimate of the row's rate
        (the projection removes what the present rates could take over).
    """
    if not len(candidates):
        return []
    model = KineticModel.from_mechanism(mechanism, np.zeros(mechanism.n_reactions, bool))
    k = np.maximum(np.asarray(mechanism.kf, float), 1e-30)[[i for i, _ in model.directions]]
    c = np.asarray(sub.concentrations, float)
    x, sens, E, bad = candidate_responses(model, k, c, np.asarray(sub.sample_times, float),
                                          candidates, noise > 0, deadline, responses)
    _, w = relative_residuals(x, c, floor)
    E *= w[:, 1:, None, :]
    w[bad] = 0.0
    E[bad] = 0.0
    later = ((c - x) * w)[:, 1:]
    r = later.reshape(-1)
    if not r.size or math.sqrt(float(np.mean(r ** 2))) <= SOLVER_RESIDUAL:
        return []
    spread = (noise * c * w) ** 2  # each point's expected noise energy
    A = _explained_columns(sens * w[..., None], k.size)
    B = E.transpose(2, 0, 1, 3).reshape(len(candidates), -1).T
    ties = A.shape[0] - r.size  # the starts' ties to their measurements: residual 0
    picks = _greedy_picks(np.concatenate([r, np.zeros(ties)]), A,
                          np.vstack([B, np.zeros((ties, B.shape[1]))]),
                          float(spread[:, 1:].sum() + (spread[:, 0].sum() if ties else 0.0)),
                          noise ** 2)
    if not orphans:
        return picks
    return picks + _orphan_picks(mechanism, candidates, later, E, {j for j, _, _ in picks},
                                 spread[:, 1:].sum(axis=(0, 1)), noise ** 2)


def _explained_columns(sens: np.ndarray, n_rates: int) -> np.ndarray:
    """Return the weighted sensitivities as the columns of what a refit explains.

    ``sens (n, n_t, S, n_rates [+ S])``: the rates' columns at the later times, shared by
    the samples. The optional columns of each sample's start (``∂x/∂ln x0``) act on that
    sample alone, so they become ``n·S`` block columns; ``n·S`` rows appended below the
    later times tie each start to its measurement (their weighted values at the first time).
    """
    later = sens[:, 1:]
    n, m, S, cols = later.shape
    rates = later[..., :n_rates].reshape(-1, n_rates)
    if cols == n_rates:
        return rates
    starts = np.zeros((n, m, S, n, cols - n_rates))
    ties = np.zeros((n, S, n, cols - n_rates))
    for i in range(n):
        starts[i, :, :, i] = later[i, ..., n_rates:]
        ties[i, :, i] = sens[i, 0, :, n_rates:]
    return np.vstack([np.hstack([rates, starts.reshape(n * m * S, -1)]),
                      np.hstack([np.zeros((n * S, n_rates)), ties.reshape(n * S, -1)])])


def orthonormal_span(A: np.ndarray) -> np.ndarray:
    """Return orthonormal columns spanning ``A``'s columns (singular values > 1e-8 × largest)."""
    U, sv, _ = np.linalg.svd(A, full_matrices=False)
    return U[:, sv > 1e-8 * sv[0]] if sv.size and sv[0] > 0 else U[:, :0]


def _greedy_picks(r: np.ndarray, A: np.ndarray, B: np.ndarray, noise_energy: float = 0.0,
                  variance: float = 0.0) -> list[tuple[int, float, float]]:
    """Orthogonal matching pursuit of the residual ``r`` on the responses ``B``.

    ``A`` holds the present rates' sensitivities (projected out of ``r`` and ``B`` first);
    ``noise_energy`` is the part of ``r @ r`` expected from the data's noise, ``variance``
    its σ²; see :func:`residual_screen`.
    """
    Q = orthonormal_span(A)
    r = r - Q @ (Q.T @ r)
    B = B - Q @ (Q.T @ B)
    noise_energy *= 1.0 - Q.shape[1] / max(r.size, 1)  # what the projection left of it
    picks = []
    for _ in range(MAX_ADDED):
        if float(r @ r) <= noise_energy:
            break
        share, rate, size = _shares(r, B, noise_energy)
        if variance > 0:  # noisy: the most explained, while it is significant
            j = int(np.argmax(rate ** 2 * size))
            if rate[j] ** 2 * size[j] < MIN_CHI2 * variance:
                break
        else:
            j = int(np.argmin(share))
            if share[j] > ADD_SHARE:
                break
        picks.append((j, float(share[j]), float(rate[j])))
        q = B[:, j] / math.sqrt(size[j])
        r = r - q * (q @ r)
        B = B - np.outer(q, q @ B)
    return picks


def _shares(r: np.ndarray, B: np.ndarray, noise_energy: float = 0.0
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``r (m,)`` by each column of ``B (m, n)`` alone at a rate ≥ 0.

    Returns the share of ``r``'s excess over ``noise_energy`` (its norm when 0) each leaves,
    the rates and the columns' squared norms (the excess must be positive).
    """
    size = np.maximum(np.sum(B ** 2, axis=0), 1e-300)
    rate = np.maximum((B.T @ r) / size, 0.0)
    total = float(r @ r) - noise_energy
    return np.sqrt(np.maximum(total - rate ** 2 * size, 0.0) / total), rate, size


def _orphan_picks(mechanism: Mechanism, candidates: np.ndarray, r: np.ndarray, E: np.ndarray,
                  taken: set[int], noise_energy: np.ndarray | None = None,
                  variance: float = 0.0) -> list[tuple[int, float, float]]:
    """Pick, for each species that changes in the data but in no row, its best maker.

    A species that no row of ``mechanism`` changes stays at its first value in the model,
    so its residual is all of its measured change, however small next to the others' (on
    GRI: CO2, made only by H + OH + CO → H2 + CO2, changes by about 1e-4 of itself). The
    greedy score on the whole residual ranks rows by what they explain in every species
    and can pass such a species by. Here each one is scored alone: the candidate changing
    it whose response fits its residual best (rate ≥ 0) is picked when it leaves at most
    :data:`ADD_SHARE` of that residual.

    ``r`` is the weighted residual ``(n, n_t − 1, S)``, ``E`` the weighted responses
    ``(n, n_t − 1, n_candidates, S)``, ``noise_energy`` each species' expected noise
    energy ``(S,)`` and ``variance`` σ²; returns picks as :func:`residual_screen` does.
    """
    rows = np.vstack([np.round(np.asarray(mechanism.V))[np.asarray(mechanism.kf) > 0],
                      candidates[sorted(taken)].reshape(-1, r.shape[-1])])
    moved = np.any(rows != 0, axis=0)
    picks = []
    for i in np.flatnonzero(~moved):
        ri = r[..., i].reshape(-1)
        total = float(ri @ ri)
        noise_i = 0.0 if noise_energy is None else float(noise_energy[i])
        if math.sqrt(total / max(ri.size, 1)) <= SOLVER_RESIDUAL or total <= noise_i:
            continue
        share, rate, size = _shares(
            ri, E[..., i].transpose(2, 0, 1).reshape(len(candidates), -1).T, noise_i)
        explained = rate ** 2 * size
        share[candidates[:, i] == 0] = np.inf
        share[sorted(taken)] = np.inf
        explained[np.isinf(share)] = 0.0
        j = int(np.argmax(explained) if variance > 0 else np.argmin(share))
        if (explained[j] >= MIN_CHI2 * variance) if variance > 0 else share[j] <= ADD_SHARE:
            picks.append((j, float(share[j]), float(rate[j])))
            taken = taken | {j}
    return picks


@dataclass
class BalanceSearch:
    """What :func:`fit_balance_rows` did: rows per stage, and the seconds of each."""

    balance_rows: int = 0
    exhausted_kept: int = 0
    added: int = 0
    rows_fitted: int = 0
    refined: int = 0
    share: float = SHARE
    seconds: dict | None = None

    def summary(self) -> dict:
        """Return a JSON-ready dict of the counts and times."""
        return {"share": self.share, "balance_rows": self.balance_rows,
                "exhausted_kept": self.exhausted_kept,
                "residual_added": self.added, "rows_fitted": self.rows_fitted,
                "refinement_added": self.refined,
                "seconds": dict(self.seconds or {})}


def _with_rows(mech: Mechanism, rows: np.ndarray, data: ReactionData) -> Mechanism:
    """Return ``mech`` (irreversible) with ``rows`` appended at neutral rates."""
    if not len(rows):
        return mech
    return Mechanism(mech.species, np.vstack([np.round(mech.V), rows]),
                     np.concatenate([mech.kf, neutral_rates(rows, data)[:, 0]]),
                     np.zeros(mech.n_reactions + len(rows)))


def fit_balance_rows(data: ReactionData, basis: np.ndarray, *, deadline: float = math.inf,
                     samples: int | None = None, noise: float | None = None,
                     n_reactions: int | None = None, log: BalanceSearch | None = None,
                     floor: float = RESIDUAL_FLOOR) -> TrajectoryFit | None:
    """Propose rows by the stages of this module, fit them together and prune.

    Parameters
    ----------
    data : ReactionData
        Concentrations ``(n, n_t, n_s)`` at times shared by the samples, ``n_t ≥ 4``.
    basis : numpy.ndarray
        ``(rank, n_s)`` stoichiometric subspace.
    deadline : float, default inf
        ``time.perf_counter()`` time at which to stop.
    samples : int or None, optional
        Samples the screens and fits use (default :data:`SAMPLES`, or
        :data:`NOISY_SAMPLES` for data with noise, given or measured from the element
        balances).
    noise : float or None, optional
        Concentration noise level, when known.
    n_reactions : int or None, optional
        Rows the mechanism has, when known (default: the rank).
    log : BalanceSearch or None, optional
        Filled with the stages' counts and times.
    floor : float, default RESIDUAL_FLOOR
        Relative floor of the residual weights of every screen and fit
        (:func:`~rdlab.discover.trajectory_fit.relative_residuals`): below 1e-4 the late
        levels of quasi-steady species count (:data:`DEEP_FLOOR`).

    Returns
    -------
    TrajectoryFit or None
        The pruned fit on the subset; ``None`` when no row was proposed, the data are not
        on shared times, a fit failed or the time ran out.
    """
    log = log if log is not None else BalanceSearch()
    log.seconds = {}
    times = np.asarray(data.sample_times, float)
    if times.shape[1] < 4 or np.ptp(times, axis=0).max() > 0 or data.temperatures is not None:
        return None
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        log.seconds[name] = now - clock
        clock = now

    facts = _facts(data, basis)
    level = (noise if noise is not None else element_noise(data)) or 0.0
    facts.noise = level if level > SOLVER_RESIDUAL else 0.0  # below it: the solver's error
    log.share = max(SHARE, facts.noise)
    rows = _balance_rows(facts, log.share)
    log.balance_rows = len(rows)
    lap("balances")
    if not len(rows) or time.perf_counter() > deadline:
        return None
    rates, _ = start_rates(rows, facts.C, facts.D)
    if samples is None:
        samples = NOISY_SAMPLES if facts.noise > 0 else SAMPLES
    sub = subsample(data, samples)
    live = rates > 0
    try:
        kept = screen_exhausted(rows[live], rates[live], _exhausted_rows(facts, 2, rows), sub,
                                skip=facts.trace, floor=floor, deadline=deadline)
    except FitTimeout:
        return None
    log.exhausted_kept = len(kept)
    lap("exhausted species")
    if kept:
        rows = np.vstack([rows] + [v[None] for v, _ in kept])
    k = neutral_rates(rows, data)[:, 0]
    k[:live.size][live] = rates[live]  # the balances' own rates where they have one
    try:
        quick = fit_trajectories(Mechanism(data.species, rows, k, np.zeros(len(rows))), sub,
                                 noise=noise, floor=floor,
                                 reversible=np.zeros(len(rows), bool), max_nfev=30,
                                 prune=False, revive=False, drop_negligible=False,
                                 deadline=deadline)
    except (NetworkError, ParameterError, FitTimeout):
        return None
    lap("quick fit")
    if quick.timed_out:
        return None
    max_rows = n_reactions or facts.rank
    # from the quick fit's rates: a neutral start of every row lands far off
    log.added, fit = _screen_and_fit(quick.mechanism, facts, sub, data, noise, max_rows,
                                     deadline, fit_without_picks=True, floor=floor)
    log.rows_fitted = quick.mechanism.n_reactions + log.added
    lap("residual screen and final fit")
    if fit is None or fit.timed_out:
        return None
    for _ in range(REFINE_ROUNDS):
        if time.perf_counter() > deadline:
            break
        kept = fit.mechanism.subset(np.flatnonzero(np.asarray(fit.mechanism.kf) > 0))
        added, refit = _screen_and_fit(kept, facts, sub, data, noise, max_rows, deadline,
                                       fit_without_picks=False, floor=floor)
        if refit is None or refit.timed_out or refit.error >= fit.error:
            break
        log.refined += added
        fit = refit
    lap("refinement")
    return fit


def _screen_and_fit(mech: Mechanism, facts: _Facts, sub: ReactionData, data: ReactionData,
                    noise: float | None, max_rows: int, deadline: float, *,
                    fit_without_picks: bool, floor: float = RESIDUAL_FLOOR
                    ) -> tuple[int, TrajectoryFit | None]:
    """Add the residual screen's picks to ``mech`` and fit with pruning.

    ``mech``'s rows (irreversible) start at its rates, the picks of :func:`residual_screen`
    at neutral rates. Returns the number of picks and the fit; the fit is ``None`` when it
    failed, and when nothing was picked unless ``fit_without_picks``.
    """
    candidates = _screened_rows(facts, np.asarray(np.round(mech.V), int))
    # the refinement rounds (not the first screen, on the quick fit) also pick orphans' makers
    try:
        picks = residual_screen(mech, candidates, sub, orphans=not fit_without_picks,
                                floor=floor, deadline=deadline, noise=facts.noise)
    except FitTimeout:
        return 0, None
    if not picks and not fit_without_picks:
        return 0, None
    start = _with_rows(mech, np.array([candidates[j] for j, _, _ in picks]), data)
    try:
        return len(picks), fit_trajectories(start, sub, noise=noise, floor=floor,
                                            reversible=np.zeros(start.n_reactions, bool),
                                            max_nfev=60, max_rows=max_rows,
                                            deadline=deadline)
    except (NetworkError, ParameterError, FitTimeout):
        return len(picks), None
