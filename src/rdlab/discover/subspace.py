"""Structure candidates from concentrations alone: integer rows in the data's reaction subspace.

Every change of concentration is a combination of reaction rows, ``c(t) − c(t_0) = ξ(t) V``,
so the increments of all samples span the **stoichiometric subspace** of the true mechanism
(its conservation laws are the complement). That subspace is read off the data exactly —
from 11 samples per trajectory, without a single derivative and however fast a reaction is —
by the SVD of the stacked increments (species scaled to their largest value; the rank is the
largest gap of the singular values, at least :data:`MIN_GAP`).

Candidate reactions are the small integer vectors inside it (coefficients within
``±max_coefficient``, at most ``max_order`` molecules on either side, sign-normalised), found
by enumerating integer values on ``rank`` pivot species and keeping the vectors that come out
integer. Candidate mechanisms are the sets of ``n_reactions`` such rows that span the whole
subspace. Each is judged by what it must do in the end — reproduce the trajectories: its rates
(started from the weak-form NNLS fit, :func:`~rdlab.discover.weak_form.fit_rates_weak`) are
fitted through the stiff solver on a few samples with a few evaluations
(:func:`~rdlab.discover.trajectory_fit.fit_trajectories`), and the sets are ranked by that
trajectory error. The caller refits and verifies the best ones on all the data.

Limits: subspaces of rank above :data:`MAX_RANK` are not enumerated (``5**rank`` pivot
values), and at most ``max_sets`` sets are screened (fewest and smallest coefficients first),
so networks with many more reactions than independent directions are left to the other
proposals.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg

from rdlab.discover.data import ReactionData
from rdlab.discover.elements import known_balances
from rdlab.discover.library import monomial_exponents
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.trajectory_fit import (
    PRUNE_NFEV,
    REVIVE_SHARE,
    FitTimeout,
    TrajectoryFit,
    acceptance_threshold,
    fit_trajectories,
    mean_monomials,
    trajectory_errors,
)
from rdlab.discover.weak_form import fit_rates_weak, weak_form_system
from rdlab.errors import NetworkError, ParameterError

__all__ = ["ALL_ROWS_MAX", "CATALYTIC_MAX", "EQUILIBRIUM_SPEED", "EQUILIBRIUM_SPEEDUPS",
           "EQUILIBRIUM_TOLERANCE", "EXHAUSTED_SHARE", "MAX_RANK", "MIN_GAP", "STUCK_RESIDUAL",
           "SubspaceSearch", "candidate_sets", "catalytic_rows", "equilibrated",
           "equilibrium_mechanism", "exhausted_species", "fit_all_rows", "integer_rows",
           "neutral_rates", "reaction_count", "screen_subspace", "stoichiometric_subspace",
           "subsample", "without_minor_directions"]

#: Largest subspace rank whose integer rows are enumerated.
MAX_RANK = 7
#: Smallest ratio of consecutive singular values taken as the rank gap; below it the
#: increments are taken to span every species.
MIN_GAP = 30.0
#: Largest ratio of the change after the second time to the first interval's change that
#: :func:`equilibrated` reads as data at equilibrium.
EQUILIBRIUM_TOLERANCE = 0.02
#: Flux of each row of :func:`equilibrium_mechanism`, in mean concentrations per first
#: interval: fast enough to equilibrate (e^-30) before the second time, no stiffer.
EQUILIBRIUM_SPEED = 30.0
#: Most ×10 speed-ups of :func:`equilibrium_mechanism`'s rates while they lower its error.
EQUILIBRIUM_SPEEDUPS = 3
#: Largest ratio of a species' later to initial mean concentration that
#: :func:`exhausted_species` reads as used up within the first interval.
EXHAUSTED_SHARE = 1e-3
#: Most integer rows fitted all together by :func:`fit_all_rows`.
ALL_ROWS_MAX = 16
#: Most catalytic directions (:func:`catalytic_rows`) fitted together.
CATALYTIC_MAX = 128
#: Relative residual above which an unpruned catalytic fit is stuck: it holds every
#: direction, the true ones among them, so it should reach the noise (autocatalytic seed 3
#: from the neutral start: 0.49, then 237 s of pruning that reached nothing).
STUCK_RESIDUAL = 0.02
#: Singular values below this share of the largest are rounding zeros: an inert species
#: (exactly no change) must not read as the largest gap.
_ZERO_SINGULAR = 1e-13
#: Largest distance of a pivot-built vector from its integer rounding (data noise).
_INTEGER_TOL = 2e-2


def stoichiometric_subspace(data: ReactionData, min_gap: float = MIN_GAP, *,
                            element_balances: bool = True) -> np.ndarray:
    """Return a basis of the span of the concentration increments ``c(t) − c(t_0)``.

    Parameters
    ----------
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations.
    min_gap : float, default MIN_GAP
        Smallest singular-value ratio read as the rank gap.
    element_balances : bool, default True
        When every species name is a chemical formula and the data conserve its elements
        (:func:`~rdlab.discover.elements.known_balances`), search only inside their null
        space: the element balances then hold exactly instead of to the data's noise.

    Returns
    -------
    numpy.ndarray
        ``(r, n_s)`` orthonormal rows spanning the subspace (``r`` its rank; ``(0, n_s)``
        when nothing changes).
    """
    c = np.asarray(data.concentrations, dtype=float)
    D = (c[:, 1:] - c[:, :1]).reshape(-1, c.shape[2])
    scale = np.max(np.abs(c), axis=(0, 1))
    scale = np.where(scale > 0, scale, 1.0)
    Y = D / scale
    known = known_balances(data) if element_balances else None
    E = None if known is None else known[1]
    if E is not None:  # project onto the balances' null space, in the scaled coordinates
        N = scipy.linalg.null_space(E * scale)
        Y = (Y @ N) @ N.T
    _, s, Wt = np.linalg.svd(Y, full_matrices=False)
    if E is not None:  # the balances' directions are zeros by construction, not a gap
        s = s[:N.shape[1]]
    if s.size == 0 or s[0] <= 0:
        return np.zeros((0, c.shape[2]))
    ratios = s[:-1] / np.maximum(s[1:], _ZERO_SINGULAR * s[0])
    r = int(np.argmax(ratios)) + 1 if ratios.size and ratios.max() >= min_gap else s.size
    q, _ = np.linalg.qr((Wt[:r] * scale).T)
    return q.T


def integer_rows(basis: np.ndarray, max_coefficient: int = 2, max_order: int = 2
                 ) -> np.ndarray:
    """Return the small integer reaction rows inside the subspace spanned by ``basis``.

    Parameters
    ----------
    basis : numpy.ndarray
        ``(r, n_s)`` orthonormal rows (:func:`stoichiometric_subspace`).
    max_coefficient : int, default 2
        Largest ``|ν_s|``.
    max_order : int, default 2
        Most molecules on either side of a row (its forward and reverse orders).

    Returns
    -------
    numpy.ndarray
        ``(n_rows, n_s)`` distinct rows, each with its first non-zero entry negative, sorted
        by ``Σ|ν|``.

    Raises
    ------
    ParameterError
        A rank above :data:`MAX_RANK` or bounds below 1.
    """
    r, S = basis.shape
    if r > MAX_RANK or max_coefficient < 1 or max_order < 1:
        raise ParameterError(f"need rank ≤ {MAX_RANK}, max_coefficient ≥ 1 and max_order ≥ 1; "
                             f"got {r}, {max_coefficient}, {max_order}")
    if r == 0:
        return np.zeros((0, S))
    piv = scipy.linalg.qr(basis, pivoting=True)[2][:r]
    grid = np.array(list(itertools.product(range(-max_coefficient, max_coefficient + 1),
                                           repeat=r)), dtype=float)
    V = np.linalg.solve(basis[:, piv].T, grid.T).T @ basis  # values ``grid`` on the pivots
    Vr = np.round(V) + 0.0  # no -0.0
    ok = np.all(np.abs(V - Vr) <= _INTEGER_TOL, axis=1) & np.any(Vr != 0, axis=1)
    ok &= np.all(np.abs(Vr) <= max_coefficient, axis=1)
    ok &= (np.sum(np.maximum(-Vr, 0), axis=1) <= max_order)
    ok &= (np.sum(np.maximum(Vr, 0), axis=1) <= max_order)
    rows = Vr[ok]
    first = rows[np.arange(len(rows)), np.argmax(rows != 0, axis=1)]
    rows = np.unique(rows[first < 0], axis=0)
    return rows[np.lexsort((np.arange(len(rows)), np.abs(rows).sum(axis=1)))]


def candidate_sets(rows: np.ndarray, n_reactions: int, rank: int, max_sets: int = 24
                   ) -> list[np.ndarray]:
    """Return up to ``max_sets`` sets of ``n_reactions`` rows that span a rank-``rank`` space.

    Sets with the fewest and smallest coefficients (``Σ|ν|``) come first.

    Parameters
    ----------
    rows : numpy.ndarray
        ``(n_rows, n_s)`` candidate rows (:func:`integer_rows`).
    n_reactions : int
        Rows per set.
    rank : int
        The subspace rank each set must reach.
    max_sets : int, default 24
        Most sets returned.

    Returns
    -------
    list of numpy.ndarray
        ``(n_reactions, n_s)`` each; empty when ``n_reactions < rank`` or there are too many
        combinations to list (more than 200 000).
    """
    n = len(rows)
    if n_reactions < rank or n_reactions > n or math.comb(n, n_reactions) > 200_000:
        return []
    size = np.abs(rows).sum(axis=1)
    sets = [list(c) for c in itertools.combinations(range(n), n_reactions)
            if np.linalg.matrix_rank(rows[list(c)], tol=1e-8) == rank]
    sets.sort(key=lambda c: (float(size[c].sum()), c))
    return [rows[c] for c in sets[:max_sets]]


def subsample(data: ReactionData, n: int) -> ReactionData:
    """Return ``n`` samples of ``data`` spread evenly over its samples (all if fewer).

    Parameters
    ----------
    data : ReactionData
        The data.
    n : int
        Samples wanted.

    Returns
    -------
    ReactionData
        The subset (no derivatives).
    """
    if data.n_samples <= n:
        return data
    idx = np.unique(np.linspace(0, data.n_samples - 1, n).round().astype(int))
    times = data.times if np.ndim(data.times) == 1 else np.asarray(data.times)[idx]
    T = None if data.temperatures is None else np.asarray(data.temperatures)[idx]
    return ReactionData(data.species, times, data.concentrations[idx], None, T)


@dataclass
class SubspaceSearch:
    """What :func:`screen_subspace` found.

    Attributes
    ----------
    rank : int
        Rank of the stoichiometric subspace.
    rows : int
        Integer rows found in it.
    ranked : list of TrajectoryFit
        The screened sets' fits on the subset, best (smallest error) first.
    seconds : float
        Wall time.
    """

    rank: int = 0
    rows: int = 0
    ranked: list[TrajectoryFit] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        """Return a JSON-ready dict: rank, rows, sets screened, their errors, seconds.

        Returns
        -------
        dict
            The summary.
        """
        return {"rank": self.rank, "rows": self.rows, "screened": len(self.ranked),
                "errors": [f.error for f in self.ranked], "seconds": self.seconds}


def _start_mechanism(V: np.ndarray, data: ReactionData, weak: tuple,
                     orders: np.ndarray | None = None) -> Mechanism | None:
    """Return the set ``V`` with rates from the weak-form NNLS fit (``None``: not valid).

    ``orders``: catalytic form (irreversible directions).
    """
    G, b, E = weak
    try:
        kf, kr, _ = fit_rates_weak(V, orders, G, b, E)
    except ParameterError:
        return None
    positive = np.concatenate([kf[kf > 0], kr[kr > 0]])
    typical = float(np.exp(np.mean(np.log(positive)))) if positive.size else 1.0
    kf = np.where(kf > 0, kf, 1e-3 * typical)  # a direction NNLS dropped may still be needed
    try:
        return Mechanism(data.species, V, kf, kr, orders)
    except (NetworkError, ParameterError):
        return None


def _neutral_flux(data: ReactionData) -> tuple[np.ndarray, float]:
    """Return the concentrations ``(N, n_s)`` (≥ 0) and the neutral flux ``c̄ / t_span``."""
    c = np.maximum(np.asarray(data.concentrations, float), 0.0).reshape(-1, len(data.species))
    times = np.asarray(data.sample_times, float)
    span = float(np.max(times[:, -1] - times[:, 0]))
    return c, float(np.mean(c)) / max(span, 1e-300)


def neutral_rates(rows: np.ndarray, data: ReactionData) -> np.ndarray:
    """Return ``(n_rows, 2)`` start rates giving every direction the flux ``c̄ / t_span``.

    ``c̄`` is the mean concentration and ``t_span`` the longest sample's duration: a
    dimensionally neutral start, whatever units the data use.
    """
    c, target = _neutral_flux(data)
    rates = np.empty((len(rows), 2))
    for d, orders in enumerate((np.maximum(-rows, 0), np.maximum(rows, 0))):
        mono = mean_monomials(c, orders)
        rates[:, d] = target / np.maximum(mono, 1e-300)
    return np.clip(rates, 1e-12, 1e12)


def catalytic_rows(rows: np.ndarray, max_order: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Return every direction of ``rows``, plain and with one catalyst, in catalytic form.

    A catalyst takes part without being used up (``X + C -> Y + C``): its order is 1 while
    its net stoichiometry is that of the row. Each row gives two directions (``v`` and
    ``−v``), each plain (orders = its reactants) and with each species as catalyst, as long
    as the total order stays at most ``max_order``; of two directions with the same orders
    and opposite stoichiometry (``X + Y -> 2Y``, ``X + Y -> 2X``) only the first is kept,
    as only their net rate would be determined.

    Parameters
    ----------
    rows : numpy.ndarray
        ``(n_rows, n_s)`` integer net stoichiometry.
    max_order : int, default 3
        Largest sum of reactant orders of a direction.

    Returns
    -------
    V, orders : numpy.ndarray
        ``(n_directions, n_s)`` net stoichiometry and reactant orders, irreversible.
    """
    rows = np.asarray(rows, float)
    n_s = rows.shape[1]
    V, orders, taken = [], [], set()
    for v in np.vstack([rows, -rows]):
        base = np.maximum(-v, 0.0)
        for extra in [np.zeros(n_s)] + list(np.eye(n_s)):
            a = base + extra
            # (−v, a) beside (v, a): one rate, the net, is all the data can see
            if a.sum() <= max_order and (tuple(-v), tuple(a)) not in taken:
                taken.add((tuple(v), tuple(a)))
                V.append(v)
                orders.append(a)
    return np.array(V), np.array(orders)


def fit_all_rows(data: ReactionData, *, deadline: float = math.inf, samples: int = 10,
                 max_rows: int = ALL_ROWS_MAX, max_nfev: int = 60, max_coefficient: int = 2,
                 max_order: int = 2, noise: float | None = None,
                 n_reactions: int | None = None, catalytic: bool = False
                 ) -> TrajectoryFit | None:
    """Fit every integer row of the subspace at once, both directions, and prune.

    The true mechanism is a subset of the rows, so the full set reproduces the data; the
    pruning of :func:`~rdlab.discover.trajectory_fit.fit_trajectories` then removes the
    directions the data do not need. This is sparse regression done on the trajectories
    instead of on derivative estimates. Rates start from :func:`neutral_rates`; when that
    fit neither reproduces the data nor leaves noise-like residuals, once more from the
    weak-form NNLS rates of all rows, and the better fit is returned.

    Parameters
    ----------
    data : ReactionData
        Concentrations ``(n, n_t, n_s)`` (with temperatures: Arrhenius parameters too).
    deadline : float, default inf
        ``time.perf_counter()`` time at which to stop.
    samples : int, default 10
        Samples fitted (:func:`subsample`).
    max_rows : int, default ALL_ROWS_MAX
        Most rows fitted together; with more, ``None`` is returned.
    max_nfev : int, default 60
        Least-squares iterations of each fit.
    max_coefficient, max_order : int, default 2
        Bounds of the rows (:func:`integer_rows`).
    noise : float or None, optional
        Concentration noise level, when known.
    n_reactions : int or None, optional
        Rows the mechanism has, when known: pruning tries every row until that many remain
        (``max_rows`` of :func:`~rdlab.discover.trajectory_fit.fit_trajectories`); in
        catalytic form, until twice that many directions remain (a reversible reaction is
        two).
    catalytic : bool, default False
        Fit the directions of :func:`catalytic_rows` (each row plain and with each species
        as catalyst, irreversible) from the same two starts, the weak-form one first (on
        the autocatalytic example the neutral one can stall); ``None`` when the better
        unpruned fit stays above :data:`STUCK_RESIDUAL`.

    Returns
    -------
    TrajectoryFit or None
        The pruned fit on the subset; ``None`` when the subspace is empty or too large, or
        the fit ran out of time.
    """
    basis = stoichiometric_subspace(data)
    if not 0 < basis.shape[0] <= MAX_RANK:
        return None
    rows = integer_rows(basis, max_coefficient, max_order)
    if not 0 < len(rows) <= max_rows:
        return None
    rates = neutral_rates(rows, data)
    sub = subsample(data, samples)
    if catalytic:
        return _fit_catalytic_rows(rows, data, sub, deadline=deadline, max_nfev=max_nfev,
                                   noise=noise, n_reactions=n_reactions)
    best = None
    for start in ("neutral", "weak"):
        if start == "neutral":
            mech = Mechanism(data.species, rows, rates[:, 0], rates[:, 1])
        else:  # the neutral start can end in a poor local minimum: start from the integrals
            E = monomial_exponents(len(data.species), max_order)
            G, b = weak_form_system(data.times, data.concentrations, exponents=E,
                                    kind="intervals", quadrature="simpson")
            mech = _start_mechanism(rows, data, (G, b, E))
            if mech is None:
                break
        try:
            fit = fit_trajectories(mech, sub, noise=noise, max_nfev=max_nfev, prune=False,
                                   revive=False, deadline=deadline, drop_negligible=False)
        except (NetworkError, ParameterError, FitTimeout):
            break
        if fit.timed_out:
            break
        if best is None or fit.error < best.error:
            best = fit
        if fit.accepted or fit.noise_like:
            break
    if best is None:
        return None
    try:  # from the better start's optimum: restart stuck rates, then prune
        fit = fit_trajectories(best.mechanism, sub, noise=noise,
                               max_nfev=min(max_nfev, PRUNE_NFEV), deadline=deadline,
                               max_rows=n_reactions)
    except (NetworkError, ParameterError, FitTimeout):
        return None
    return None if fit.timed_out else fit


def _fit_catalytic_rows(rows: np.ndarray, data: ReactionData, sub: ReactionData, *,
                        deadline: float, max_nfev: int, noise: float | None,
                        n_reactions: int | None) -> TrajectoryFit | None:
    """Fit the catalytic directions of ``rows`` on ``sub`` and prune (see fit_all_rows)."""
    V, orders = catalytic_rows(rows)
    if len(V) > CATALYTIC_MAX:
        return None
    c, target = _neutral_flux(data)
    k = np.clip(target / np.maximum(mean_monomials(c, orders), 1e-300), 1e-12, 1e12)
    E = monomial_exponents(len(data.species), int(orders.sum(axis=1).max()))
    G, b = weak_form_system(data.times, data.concentrations, exponents=E, kind="intervals",
                            quadrature="simpson")
    # first the integrals' NNLS rates, then the neutral start
    starts = [m for m in (_start_mechanism(V, data, (G, b, E), orders),
                          Mechanism(data.species, V, k, np.zeros(len(V)), orders))
              if m is not None]
    irreversible = np.zeros(len(V), bool)
    try:
        fit = None
        for mech in starts:
            got = fit_trajectories(mech, sub, noise=noise, max_nfev=max_nfev, prune=False,
                                   revive=False, deadline=deadline, drop_negligible=False,
                                   reversible=irreversible)
            if got.timed_out:
                return None
            if fit is None or got.error < fit.error:
                fit = got
            if fit.accepted or fit.noise_like:
                break
        if fit.noise_estimate > STUCK_RESIDUAL:  # pruning from there would spend the budget
            return None
        # prune; then, while more reactions than asked remain, one row fewer, as long as
        # the pruning can remove one within its residual bound
        limit = None if n_reactions is None else 2 * n_reactions
        while True:
            fit = fit_trajectories(fit.mechanism, sub, noise=noise, max_rows=limit,
                                   reversible=np.zeros(fit.mechanism.n_reactions, bool),
                                   max_nfev=min(max_nfev, PRUNE_NFEV), deadline=deadline)
            if fit.timed_out:
                return None
            m = fit.mechanism
            kept = np.flatnonzero(np.asarray(m.kf) > 0)
            if (n_reactions is None or len(kept) <= n_reactions
                    or reaction_count(m.V[kept], m.orders[kept]) <= n_reactions
                    or (limit is not None and len(kept) > limit)):  # the data need them
                return without_minor_directions(fit, sub, noise, deadline)
            limit = len(kept) - 1
            fit = replace(fit, mechanism=m.subset(kept))
    except (NetworkError, ParameterError, FitTimeout):
        return None


def without_minor_directions(fit: TrajectoryFit, data: ReactionData, noise: float | None,
                             deadline: float = math.inf) -> TrajectoryFit:
    """Drop the directions whose mean flux is under REVIVE_SHARE of the largest, if allowed.

    For catalytic-form fits (``fit.mechanism.orders`` set; others are returned as they are).

    A catalytic copy of a row (``2A -> A + B`` beside ``A -> B``) differs from it only by
    the catalyst's level, and can survive the pruning at a flux 1e-5 of its row's. All such
    directions are removed together and the rest refitted; the removal stands when every
    species' RMS residual stays within ``max(1.05 ×, the noise)`` of the fit's.
    """
    m = fit.mechanism
    if m.orders is None:
        return fit
    c = np.maximum(np.asarray(data.concentrations, float), 0.0).reshape(-1, m.n_species)
    flux = np.asarray(m.kf) * mean_monomials(c, m.orders)
    minor = (flux > 0) & (flux < REVIVE_SHARE * flux.max())
    if not minor.any():
        return fit
    kept = np.flatnonzero((flux > 0) & ~minor)
    try:
        new = fit_trajectories(m.subset(kept), data, noise=noise, prune=False,
                               reversible=np.zeros(kept.size, bool), deadline=deadline)
    except (NetworkError, ParameterError, FitTimeout):
        return fit
    bound = np.maximum(1.05 * np.asarray(fit.species_rms), noise or 0.0)
    return new if not new.timed_out and np.all(new.species_rms <= bound) else fit


def reaction_count(V: np.ndarray, orders: np.ndarray) -> int:
    """Count the reactions of irreversible directions, a direction and its reverse as one.

    The reverse of ``(v, a)`` is ``(−v, a + v)``: the same catalysts, the products as
    reactants.

    Parameters
    ----------
    V, orders : numpy.ndarray
        ``(n_directions, n_s)`` net stoichiometry and reactant orders.

    Returns
    -------
    int
        The number of distinct reactions.
    """
    seen = set()
    for v, a in zip(np.round(V).astype(int), np.round(orders).astype(int)):
        ends = sorted([(tuple(v), tuple(a)), (tuple(-v), tuple(a + v))])
        seen.add(tuple(ends))
    return len(seen)


def equilibrated(data: ReactionData, tolerance: float = EQUILIBRIUM_TOLERANCE) -> bool:
    """Say whether every sample is at rest from its second measured time on.

    The RMS change after the second time, relative to the RMS change over the first
    interval (species scaled to their largest value), is at most ``tolerance``.

    Parameters
    ----------
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations.
    tolerance : float, default EQUILIBRIUM_TOLERANCE
        Largest ratio.

    Returns
    -------
    bool
        ``True`` for data that only show equilibria (at least 3 times needed).
    """
    c = np.asarray(data.concentrations, float)
    if c.shape[1] < 3:
        return False
    scale = np.max(np.abs(c), axis=(0, 1))
    c = c / np.where(scale > 0, scale, 1.0)
    jump = float(np.sqrt(np.mean((c[:, 1] - c[:, 0]) ** 2)))
    later = float(np.sqrt(np.mean((c[:, 2:] - c[:, 1:2]) ** 2)))
    return jump > 0 and later <= tolerance * jump


def exhausted_species(data: ReactionData, share: float = EXHAUSTED_SHARE) -> list[str]:
    """Return the species used up within the first sampling interval.

    A species whose mean concentration over the later times is at most ``share`` of its
    mean initial concentration is consumed by reactions that finish before the second
    measured time: the data bound those reactions' rates from below only.

    Parameters
    ----------
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations.
    share : float, default EXHAUSTED_SHARE
        Largest ratio of later to initial mean concentration.

    Returns
    -------
    list of str
        The species' names (empty with fewer than 2 times).
    """
    c = np.asarray(data.concentrations, float)
    if c.shape[1] < 2:
        return []
    start = np.mean(c[:, 0], axis=0)
    later = np.mean(c[:, 1:], axis=(0, 1))
    return [name for name, a, b in zip(data.species, start, later) if a > 0 and b <= share * a]


def equilibrium_mechanism(data: ReactionData, n_reactions: int, max_coefficient: int = 2,
                          max_order: int = 2) -> Mechanism | None:
    """Return the simplest spanning rows with rates that equilibrate in the first interval.

    For data at equilibrium (:func:`equilibrated`) only the stoichiometric subspace and one
    equilibrium constant per independent direction are measured. The rows are the first
    set of :func:`candidate_sets` (smallest coefficients); each row's ``K = kf/kr`` is the
    mean reaction quotient ``∏ c^ν`` of the measured equilibria, and ``kf`` gives a flux
    of :data:`EQUILIBRIUM_SPEED` × the mean concentration per first interval, raised ×10
    while that brings the trajectories closer to the data (a sample may need more), so the
    fit starts equilibrated.

    Parameters
    ----------
    data : ReactionData
        Equilibrium data.
    n_reactions : int
        Rows wanted (at least the subspace rank).
    max_coefficient, max_order : int, default 2
        Bounds of the rows (:func:`integer_rows`).

    Returns
    -------
    Mechanism or None
        ``None`` when no spanning set exists or a reacting species is never positive.
    """
    basis = stoichiometric_subspace(data)
    if not 0 < basis.shape[0] <= MAX_RANK:
        return None
    rows = integer_rows(basis, max_coefficient, max_order)
    sets = candidate_sets(rows, n_reactions, basis.shape[0], max_sets=1)
    if not sets:
        return None
    V = sets[0]
    c = np.asarray(data.concentrations, float)
    eq = c[:, 1:].reshape(-1, c.shape[2])
    if np.any(np.min(eq[:, np.any(V != 0, axis=0)], axis=0) <= 0):
        return None
    log_q = np.log(eq) @ V.T  # (points, n_r)
    K = np.exp(np.mean(log_q, axis=0))
    dt = float(np.min(np.diff(np.asarray(data.sample_times, float)[:, :2], axis=1)))
    mono_f = mean_monomials(eq, np.maximum(-V, 0))
    kf = EQUILIBRIUM_SPEED * float(np.mean(eq)) / max(dt, 1e-300) / mono_f
    try:
        return _equilibrating(Mechanism(data.species, V, kf, kf / K), data)
    except (NetworkError, ParameterError):
        return None


def _equilibrating(mech: Mechanism, data: ReactionData) -> Mechanism:
    """Return ``mech`` with every rate ×10 as often as that lowers its trajectory error 2×.

    A sample whose equilibrium holds a species at 1e-9 of its start can need rates far above
    the typical flux (Zeldovich seed 2: ×10 takes the relative error from 22 to 2e-7).
    Speeding up stops once the data are matched to the noise-free acceptance threshold,
    after :data:`EQUILIBRIUM_SPEEDUPS` steps, when the error stops falling 2×, or when an
    integration takes 10× the first one (at least 5 s): stiffer rates cost time (a fit's
    sensitivities at ×100 took 280 s an evaluation there, against 13 s at ×10) and buy
    nothing once the data are matched.
    """
    t = time.perf_counter()
    err = trajectory_errors(mech, data)
    limit = max(10.0 * (time.perf_counter() - t), 5.0)
    for _ in range(EQUILIBRIUM_SPEEDUPS):
        if err is None or np.max(err) <= acceptance_threshold(None):
            break  # matched to the solver's reproduction limit: faster is only stiffer
        faster = Mechanism(mech.species, mech.V, 10.0 * mech.kf, 10.0 * mech.kr)
        new = trajectory_errors(faster, data, give_up_s=limit)
        if new is None or np.max(new) > 0.5 * np.max(err):
            break
        mech, err = faster, new
    return mech


def screen_subspace(data: ReactionData, n_reactions: int, *, deadline: float = math.inf,
                    samples: int = 10, evaluations: int = 10, max_sets: int = 24,
                    max_coefficient: int = 2, max_order: int = 2) -> SubspaceSearch:
    """Rank the integer mechanisms of the data's stoichiometric subspace by trajectory error.

    Parameters
    ----------
    data : ReactionData
        Concentrations ``(n, n_t, n_s)``; with ``temperatures`` the sets are fitted with
        Arrhenius parameters (activation energies start at 0).
    n_reactions : int
        Rows per mechanism (a reversible pair counts as one).
    deadline : float, default inf
        ``time.perf_counter()`` time at which to stop screening.
    samples : int, default 10
        Samples the screening fits use (:func:`subsample`).
    evaluations : int, default 10
        Least-squares iterations of each screening fit.
    max_sets : int, default 24
        Most sets screened (:func:`candidate_sets`).
    max_coefficient, max_order : int, default 2
        Bounds of the rows (:func:`integer_rows`).

    Returns
    -------
    SubspaceSearch
        The rank, the rows found and the screened fits, best first; nothing screened when
        the rank exceeds :data:`MAX_RANK` or no set of ``n_reactions`` rows spans it.
    """
    t0 = time.perf_counter()
    basis = stoichiometric_subspace(data)
    out = SubspaceSearch(rank=basis.shape[0])
    if not 0 < out.rank <= MAX_RANK:
        return out
    rows = integer_rows(basis, max_coefficient, max_order)
    out.rows = len(rows)
    sets = candidate_sets(rows, n_reactions, out.rank, max_sets)
    E = monomial_exponents(len(data.species), max_order)
    G, b = weak_form_system(data.times, data.concentrations, exponents=E, kind="intervals",
                            quadrature="simpson")
    sub = subsample(data, samples)
    for V in sets:
        if time.perf_counter() > deadline:
            break
        mech = _start_mechanism(V, data, (G, b, E))
        if mech is None:
            continue
        try:
            fit = fit_trajectories(mech, sub, prune=False, revive=False, max_nfev=evaluations,
                                   deadline=deadline)
        except FitTimeout:
            break
        if not fit.timed_out:
            out.ranked.append(fit)
    out.ranked.sort(key=lambda f: f.error)
    out.seconds = time.perf_counter() - t0
    return out
