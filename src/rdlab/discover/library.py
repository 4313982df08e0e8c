"""A structure proposal by sparse regression on mass-action monomials (a warm start for PPF).

Mass action makes every species' derivative a sparse sum of monomials of the concentrations::

    du_s/dt = Σ_m W[m, s] · ∏_j u_j^{a_mj}

with one monomial ``a_m`` per reaction direction (its reactant orders) and ``W[m] = k_m ν_m``
(rate constant × net stoichiometry). Orthogonal matching pursuit (a greedy sparse regression)
on a library of all monomials up to ``max_order`` finds, species by species, which monomials
are present; one joint least-squares fit then gives ``W`` for the selected ones, and
``ν_m = W[m]/k_m`` must come out integer. In V form ``k_m`` follows from the reactants
(a reactant of order ``a`` is consumed ``a`` times: ``ν_mj = −a_mj``); forward/reverse pairs
(``ν`` and ``−ν`` with the reverse monomial the product side) merge into one reversible row.

This is a proposal, not the answer: :class:`~rdlab.discover.estimator.ReactionDiscovery`
accepts it only if the rates fitted to the integer structure pass its validation test, and
otherwise seeds one CRNN candidate with it and carries on with Algorithm 1. It fails by
construction where two reactions share a reactant monomial (their ``W`` add up), and when a
monomial is missing from the library (order above ``max_order``).

Residuals are weighted point by point (:func:`~rdlab.discover.rate_fit.point_weights`), so
data spanning many orders of magnitude (the Zeldovich example: |du| from 1e-10 to 1e10) count
every point as a relative error.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rdlab.discover.rate_fit import point_weights
from rdlab.errors import ParameterError

__all__ = ["LibraryProposal", "monomial_exponents", "propose_from_features", "propose_structure",
           "reactions_from_coefficients", "sparse_support"]


def monomial_exponents(n_species: int, max_order: int) -> np.ndarray:
    """Return all exponent vectors of total order 1…``max_order``.

    Parameters
    ----------
    n_species : int
        Number of species.
    max_order : int
        Highest total order, ≥ 1.

    Returns
    -------
    numpy.ndarray
        ``(n_monomials, n_species)`` exponents, ordered by total order, then
        lexicographically.

    Raises
    ------
    ParameterError
        ``max_order`` < 1.
    """
    if max_order < 1:
        raise ParameterError(f"max_order must be ≥ 1, got {max_order!r}")
    rows = []
    for order in range(1, max_order + 1):
        for combo in itertools.combinations_with_replacement(range(n_species), order):
            e = np.zeros(n_species)
            for j in combo:
                e[j] += 1
            rows.append(e)
    return np.array(rows)


def _thresholded_fit(A: np.ndarray, y: np.ndarray, cols: np.ndarray, threshold: float
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit by sequentially thresholded least squares on columns ``cols`` of ``A``.

    ``A`` is column-normalised: fit, drop columns contributing less than
    ``threshold``·‖y‖, refit until stable. Returns ``(support, coefficients, relative
    residual)``.
    """
    y_norm = float(np.linalg.norm(y))
    support = cols
    coef = np.zeros(0)
    for _ in range(20):
        coef, *_ = np.linalg.lstsq(A[:, support], y, rcond=None)
        keep = np.abs(coef) > threshold * y_norm
        if keep.all():
            break
        support, coef = support[keep], coef[keep]
    residual = float(np.linalg.norm(y - A[:, support] @ coef)) / y_norm
    return support, coef, residual


def _sparsest_fit(A: np.ndarray, y: np.ndarray, cols: np.ndarray, threshold: float,
                  tolerance: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Return the sparsest :func:`_thresholded_fit` within ``tolerance``, else the best.

    Thresholds ``threshold``, 10×, 100×, … up to 1e-2 are tried: the sparsest support whose
    residual is within ``tolerance`` wins (a nearly collinear library otherwise keeps small
    spurious terms at the lowest threshold).
    """
    best = fit = _thresholded_fit(A, y, cols, threshold)
    t = threshold * 10.0
    while t <= 1e-2 * (1 + 1e-9):
        fit = _thresholded_fit(A, y, fit[0], t)  # a higher threshold only removes columns
        if fit[2] > tolerance:
            break
        if fit[0].size < best[0].size:
            best = fit
        t *= 10.0
    return best


def sparse_support(A: np.ndarray, y: np.ndarray, base: np.ndarray, extra: np.ndarray,
                   tolerance: float, threshold: float = 1e-6, max_extra: int = 4
                   ) -> tuple[list[int], float]:
    """Return the columns of ``A (N, M)`` that explain ``y (N,)`` sparsely.

    All ``base`` columns (the low-order monomials, fewer than the points) are fitted at once
    and thresholded (sequentially thresholded least squares: exact for noise-free data when
    the columns are independent), keeping the sparsest fit within ``tolerance``. If the
    relative residual stays above ``tolerance``, columns from ``extra`` (higher orders, too
    many to fit at once) are added one at a time, the one most correlated with the residual
    first (matching pursuit), and the fit is repeated, at most ``max_extra`` times.

    Parameters
    ----------
    A : numpy.ndarray
        ``(N, M)`` candidate columns.
    y : numpy.ndarray
        ``(N,)`` values to explain.
    base : numpy.ndarray
        Indices of the columns fitted at once.
    extra : numpy.ndarray
        Indices of the columns added one at a time.
    tolerance : float
        Relative residual to reach.
    threshold : float, optional
        Columns contributing less than this fraction of ‖y‖ are dropped (default 1e-6).
    max_extra : int, optional
        Most columns added from ``extra`` (default 4).

    Returns
    -------
    columns : list of int
        The selected column indices (none when ``y`` is zero).
    residual : float
        The relative residual of their fit.
    """
    y_norm = float(np.linalg.norm(y))
    if y_norm == 0.0:
        return [], 0.0
    norms = np.linalg.norm(A, axis=0)
    An = A / np.where(norms > 0, norms, 1.0)
    base = base[norms[base] > 0]
    extra = extra[norms[extra] > 0]
    chosen: list[int] = []
    best = None
    for _ in range(max_extra + 1):
        cols = np.concatenate([base, np.array(chosen, dtype=int)])
        support, coef, residual = _sparsest_fit(An, y, cols, threshold, tolerance)
        if best is None or residual < best[1]:
            best = (support, residual)
        if residual <= tolerance or extra.size == 0:
            break
        r = y - An[:, support] @ coef
        score = np.abs(An[:, extra].T @ r)
        score[np.isin(extra, chosen)] = -1.0
        chosen.append(int(extra[int(np.argmax(score))]))
    return [int(c) for c in best[0]], float(best[1])


@dataclass(frozen=True)
class LibraryProposal:
    """An integer structure read off the sparse regression.

    Attributes
    ----------
    V : numpy.ndarray
        ``(n_r, n_s)`` rows.
    orders : numpy.ndarray or None
        ``(n_r, n_s)`` reactant orders in catalytic form, else ``None`` (V form: forward
        orders ``max(0, −V)``, reverse ``max(0, V)``).
    max_deviation : float
        The largest distance of a stoichiometric coefficient from its integer before
        rounding (near 0 when the proposal is right).
    monomials : int
        Number of monomials selected.
    skipped : int
        How many of them did not read as reactions (left out of the proposal).
    kf, kr : numpy.ndarray or None
        ``(n_r,)`` rate guesses read off the coefficients (``k`` of each direction; ``kr``
        is 0 for a reaction without its reverse, and always in catalytic form), or ``None``.
    """

    V: np.ndarray
    orders: np.ndarray | None
    max_deviation: float
    monomials: int
    skipped: int = 0
    kf: np.ndarray | None = None
    kr: np.ndarray | None = None


def _decompose(w: np.ndarray, exponents: np.ndarray, catalytic: bool, rel_tol: float,
               coef_tol: float = 1e-3) -> list[tuple[np.ndarray, float]] | None:
    """Return the reactions ``(ν, k)`` behind one monomial's coefficients ``w = Σ_j k_j ν_j``.

    Catalytic form: one reaction, ``k`` = the smallest non-zero |w| (ν is then integer when
    the proposal is right). V form: the reactants (``exponents``) are consumed ``a`` times in
    every reaction of this monomial, so ``Σ k_j = −w_i/a_i`` for each reactant ``i``; the
    rest ``w + (Σ k_j)·a`` is the products' part. If it is an integer multiple of ``Σ k_j``
    there is one reaction; otherwise product species with equal coefficients are grouped
    into one reaction each (e.g. H2 + O → H + OH and H2 + O → H2O share the monomial
    H2·O), species made at rate ``Σ k_j`` join every group (ES → E + S and ES → E + P), and
    the groups' rates must add up to ``Σ k_j``. "Equal" means within ``coef_tol``
    (relative), which must grow with the noise of the data.
    """
    scale = float(np.max(np.abs(w)))
    if scale == 0.0:
        return []
    if catalytic:
        mags = np.abs(w[np.abs(w) > rel_tol * scale])
        k = float(np.min(mags))
        return [(w / k, k)]
    reactants = exponents > 0
    ks = -w[reactants] / exponents[reactants]
    if ks.size == 0 or np.any(ks <= 0) or np.ptp(ks) > coef_tol * np.max(ks):
        return None
    k_total = float(np.mean(ks))
    products = w + k_total * exponents
    products[np.abs(products) < coef_tol * k_total] = 0.0
    if np.any(products < 0):
        return None
    single = products / k_total
    if np.all(np.abs(single - np.round(single)) < 2 * coef_tol):
        return [(single - exponents, k_total)]
    # species made in every reaction of this monomial carry Σ k_j (or a multiple of it)
    common = np.zeros_like(w)
    ratio = products / k_total
    in_all = ((products > 0) & (np.abs(ratio - np.round(ratio)) < coef_tol)
              & (np.round(ratio) >= 1))
    common[in_all] = np.round(ratio[in_all])
    out: list[tuple[np.ndarray, float]] = []
    left = list(np.flatnonzero((products > 0) & ~in_all))
    while left:
        c = products[left[0]]
        group = [i for i in left if abs(products[i] - c) <= coef_tol * c]
        p = common.copy()
        p[group] = 1.0
        out.append((p - exponents, float(c)))
        left = [i for i in left if i not in group]
    if abs(sum(k for _, k in out) - k_total) > coef_tol * k_total:
        return None
    return out


def propose_structure(log_u: np.ndarray, du: np.ndarray, *, max_order: int = 4,
                      base_order: int = 2, catalytic: bool = False,
                      tolerance: float = 1e-6, threshold: float = 1e-6,
                      max_extra: int = 4) -> LibraryProposal | None:
    """Propose reactions from log concentrations and derivatives.

    Monomials whose coefficients do not read as reactions are left out (counted in
    ``skipped``).

    Parameters
    ----------
    log_u : numpy.ndarray
        ``(N, n_s)`` log concentrations.
    du : numpy.ndarray
        ``(N, n_s)`` derivatives.
    max_order : int, optional
        Highest monomial order (default 4); orders above ``base_order`` are tried one at a
        time (:func:`sparse_support`).
    base_order : int, optional
        Monomials up to this order (default 2) are all fitted at once (their number must
        stay below the number of points).
    catalytic : bool, optional
        Read the reactions in catalytic form (reactant orders apart from stoichiometry)
        instead of V form (default ``False``).
    tolerance : float, optional
        Relative weighted residual a species' fit must reach (about the relative noise of
        the derivatives; default 1e-6 for clean data).
    threshold : float, optional
        Coefficients contributing less than this fraction of a species' weighted derivative
        are dropped (default 1e-6).
    max_extra : int, optional
        Higher-order monomials added one at a time, at most (default 4).

    Returns
    -------
    LibraryProposal or None
        The proposal; ``None`` when nothing is left.

    Raises
    ------
    ParameterError
        ``log_u`` and ``du`` not both ``(n_points, n_species)``, or not
        ``1 ≤ base_order ≤ max_order``.
    """
    log_u = np.asarray(log_u, dtype=float)
    du = np.asarray(du, dtype=float)
    if log_u.shape != du.shape or log_u.ndim != 2:
        raise ParameterError(f"log_u {log_u.shape} and du {du.shape} must both be "
                             f"(n_points, n_species)")
    if not 1 <= base_order <= max_order:
        raise ParameterError(f"need 1 ≤ base_order ≤ max_order, got {base_order}, {max_order}")
    E = monomial_exponents(du.shape[1], max_order)
    with np.errstate(over="ignore", under="ignore"):
        M = np.exp(log_u @ E.T)  # (N, n_monomials)
    M = np.where(np.isfinite(M), M, 0.0)
    return propose_from_features(M, du, E, base_order=base_order, catalytic=catalytic,
                                 tolerance=tolerance, threshold=threshold, max_extra=max_extra)


def propose_from_features(features: np.ndarray, targets: np.ndarray, exponents: np.ndarray,
                          *, base_order: int = 2, catalytic: bool = False,
                          tolerance: float = 1e-6, threshold: float = 1e-6,
                          max_extra: int = 4, weights: np.ndarray | None = None
                          ) -> LibraryProposal | None:
    """Propose reactions from any linear features of the monomials (derivative-free entry).

    The same sparse regression as :func:`propose_structure`, on ``targets ≈ features · W``
    instead of ``du ≈ monomials · W``: any linear functional of the mass-action ODE keeps
    its coefficients ``W``, so ``features`` may be monomials integrated against test
    functions and ``targets`` the matching integrals of the concentrations
    (:mod:`rdlab.discover.weak_form`), or monomials and derivatives at points.

    Parameters
    ----------
    features : numpy.ndarray
        ``(N, n_monomials)``: row ``r``, column ``m`` is the functional ``r`` of monomial
        ``m``.
    targets : numpy.ndarray
        ``(N, n_s)``: the same functional of each species' time derivative.
    exponents : numpy.ndarray
        ``(n_monomials, n_s)`` reactant orders of the columns, ordered by total order
        (:func:`monomial_exponents`).
    base_order : int, optional
        Monomials up to this order are fitted at once (default 2).
    catalytic : bool, optional
        Read the reactions in catalytic form (default ``False``: V form).
    tolerance : float, optional
        Relative weighted residual a species' fit must reach (default 1e-6); it must cover
        the error of the features (quadrature, noise).
    threshold : float, optional
        Coefficients contributing less than this fraction of a species' weighted target are
        dropped (default 1e-6).
    max_extra : int, optional
        Higher-order monomials added one at a time, at most (default 4).
    weights : numpy.ndarray or None, optional
        ``(N, n_s)`` row weights; default :func:`~rdlab.discover.rate_fit.point_weights`
        of ``targets`` (relative errors row by row).

    Returns
    -------
    LibraryProposal or None
        The proposal, with rate guesses ``kf, kr``; ``None`` when nothing is left.

    Raises
    ------
    ParameterError
        For inconsistent shapes, or ``base_order`` < 1.
    """
    M = np.asarray(features, dtype=float)
    y = np.asarray(targets, dtype=float)
    E = np.asarray(exponents, dtype=float)
    if M.ndim != 2 or y.ndim != 2 or M.shape[0] != y.shape[0] or E.shape != (M.shape[1],
                                                                            y.shape[1]):
        raise ParameterError(f"features {M.shape}, targets {y.shape} and exponents {E.shape} "
                             f"must be (N, n_monomials), (N, n_s), (n_monomials, n_s)")
    if base_order < 1:
        raise ParameterError(f"base_order must be ≥ 1, got {base_order!r}")
    w = point_weights(y) if weights is None else np.broadcast_to(weights, y.shape)
    fits = _species_supports(M, w, y, E, base_order, tolerance, threshold, max_extra)
    W = _monomial_coefficients(M, w, y, fits)
    return _proposal(W, E, catalytic, threshold, tolerance)


def reactions_from_coefficients(coefficients: np.ndarray, exponents: np.ndarray, *,
                                catalytic: bool = False, threshold: float = 1e-6,
                                tolerance: float = 1e-6) -> LibraryProposal | None:
    """Read reactions off a monomial coefficient matrix (any sparse regression's result).

    The rule :func:`propose_structure` applies to its own fit: every non-zero row ``W[m]``
    (the coefficients of monomial ``m`` in each species' derivative) is decomposed into
    reactions ``k ν`` whose reactants are the monomial's exponents (V form: a reactant of
    order ``a`` is consumed ``a`` times; catalytic form: ``k`` = the smallest coefficient
    above ``threshold`` of the row's largest), ``ν`` is rounded to integers (its largest
    distance from them is ``max_deviation``), rows that do not read as reactions are
    ``skipped``, and ``ν``/``−ν`` pairs merge into reversible reactions.

    Parameters
    ----------
    coefficients : numpy.ndarray
        ``(n_monomials, n_s)`` coefficients ``W``.
    exponents : numpy.ndarray
        ``(n_monomials, n_s)`` the monomials' exponents.
    catalytic : bool, optional
        Catalytic instead of V form (default ``False``).
    threshold : float, optional
        Relative size below which a coefficient of a row counts as zero (default 1e-6).
    tolerance : float, optional
        Relative noise of the coefficients; equal-coefficient tests use
        ``max(1e-3, 10·tolerance)`` (default 1e-6).

    Returns
    -------
    LibraryProposal or None
        The reactions with rate guesses; ``None`` when no row reads as a reaction.

    Raises
    ------
    ParameterError
        When the two arrays differ in shape.
    """
    C = np.asarray(coefficients, dtype=float)
    E = np.asarray(exponents, dtype=float)
    if C.shape != E.shape or C.ndim != 2:
        raise ParameterError(f"coefficients {C.shape} and exponents {E.shape} must both be "
                             f"(n_monomials, n_s)")
    W = {m: C[m].copy() for m in range(C.shape[0]) if np.any(C[m] != 0)}
    return _proposal(W, E, catalytic, threshold, tolerance)


def _proposal(W: dict[int, np.ndarray], E: np.ndarray, catalytic: bool, threshold: float,
              tolerance: float) -> LibraryProposal | None:
    """Return the :class:`LibraryProposal` read off the monomial coefficients ``W``."""
    if not W:
        return None
    rows, exps, ks, deviation, skipped = _reactions(W, E, catalytic, threshold, tolerance)
    if not rows:
        return None
    if catalytic:
        k = np.array(ks)
        return LibraryProposal(np.array(rows), np.array(exps), deviation, len(W), skipped,
                               k, np.zeros_like(k))
    V, kf, kr = _reversible_rows(rows, ks)
    return LibraryProposal(np.array(V), None, deviation, len(W), skipped, np.array(kf),
                           np.array(kr))


def _species_supports(M: np.ndarray, w: np.ndarray, du: np.ndarray, E: np.ndarray,
                      base_order: int, tolerance: float, threshold: float, max_extra: int
                      ) -> list[tuple[list[int], float]]:
    """Return each species' selected monomials and the relative residual of their fit."""
    order = E.sum(axis=1)
    base = np.flatnonzero(order <= base_order)
    extra = np.flatnonzero(order > base_order)
    # pass 1: low orders only; pass 2, for the species left unexplained: higher-order
    # monomials made of those species only (a reactant is always consumed, so a monomial
    # missing from pass 1 involves unexplained species), all at once if the points allow
    fits = []
    for s in range(du.shape[1]):
        A = M * w[:, s:s + 1]
        fits.append(sparse_support(A, du[:, s] * w[:, s], base, extra[:0], tolerance,
                                   threshold))
    unexplained = np.array([r > tolerance for _, r in fits])
    if unexplained.any() and extra.size:
        cand = extra[~np.any(E[extra][:, ~unexplained] > 0, axis=1)]
        together = base.size + cand.size < du.shape[0]
        for s in np.flatnonzero(unexplained):
            A = M * w[:, s:s + 1]
            y = du[:, s] * w[:, s]
            if together:
                fit = sparse_support(A, y, np.concatenate([base, cand]), extra[:0],
                                     tolerance, threshold)
            else:
                fit = sparse_support(A, y, base, cand, tolerance, threshold, max_extra)
            if fit[1] < fits[s][1]:
                fits[s] = fit
    return fits


def _monomial_coefficients(M: np.ndarray, w: np.ndarray, du: np.ndarray,
                           fits: list[tuple[list[int], float]]) -> dict[int, np.ndarray]:
    """Return ``W[m]`` (one coefficient per species) of every selected monomial ``m``."""
    W: dict[int, np.ndarray] = {}
    for s, (support, _) in enumerate(fits):
        if not support:
            continue
        A = M[:, support] * w[:, s:s + 1]
        coef, *_ = np.linalg.lstsq(A, du[:, s] * w[:, s], rcond=None)
        for m, c in zip(support, coef):
            W.setdefault(m, np.zeros(du.shape[1]))[s] = c
    return W


def _reactions(W: dict[int, np.ndarray], E: np.ndarray, catalytic: bool, threshold: float,
               tolerance: float
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[float], float, int]:
    """Return the rounded reactions read off ``W``, their monomials, rates, deviation, skips."""
    rows, exps, ks, deviation, skipped = [], [], [], 0.0, 0
    for m in sorted(W):
        parts = _decompose(W[m], E[m], catalytic, threshold, max(1e-3, 10.0 * tolerance))
        if parts is None:  # e.g. a tiny spurious term of a nearly collinear library
            skipped += 1
            continue
        for nu, k in parts:
            deviation = max(deviation, float(np.max(np.abs(nu - np.round(nu)))))
            rows.append(np.round(nu))
            exps.append(E[m])
            ks.append(float(k))
    return rows, exps, ks, deviation, skipped


def _reversible_rows(rows: list[np.ndarray], ks: list[float]
                     ) -> tuple[list[np.ndarray], list[float], list[float]]:
    """Return the V-form rows, kf and kr: each ``ν`` paired with its reverse ``−ν`` into one."""
    V_rows: list[np.ndarray] = []
    kf: list[float] = []
    kr: list[float] = []
    used = [False] * len(rows)
    for i, nu in enumerate(rows):
        if used[i]:
            continue
        used[i] = True
        reverse = 0.0
        for j in range(i + 1, len(rows)):
            if not used[j] and np.array_equal(rows[j], -nu):
                used[j] = True
                reverse = ks[j]
                break
        V_rows.append(nu)
        kf.append(ks[i])
        kr.append(reverse)
    return V_rows, kf, kr
