"""A derivative-free structure proposal: the mass-action ODE in weak (integral) form.

Mass action makes each species' derivative a sparse sum of monomials, ``du/dt = Θ(u) W``
(:mod:`rdlab.discover.library`). Derivatives estimated from 11 samples are poor, but any
*linear functional* of this identity keeps the same coefficients ``W``:

``"test-functions"`` (weak form)
    multiply by a smooth test function ``φ_k(t)`` that vanishes at both ends of its window
    ``[a_k, b_k]`` and integrate by parts: ``−∫ φ_k' u dt = ∫ φ_k Θ(u) dt · W``. Here
    ``φ_k = ((t − a)(b − t))^p`` (scaled to peak 1) on windows of ``width`` sample
    intervals sliding one sample at a time. Because ``φ`` and its first ``p − 1``
    derivatives vanish at the ends, the trapezoid rule on the samples is accurate to high
    order (Euler–Maclaurin: error ``O(Δt^{p+1})`` or better) — no derivative is ever formed.
``"intervals"`` (integral form)
    ``u(t_j) − u(t_i) = ∫_{t_i}^{t_j} Θ(u) dt · W`` between samples ``span`` intervals apart.

Each trajectory gives one row per functional, all trajectories are stacked, and the
system ``b ≈ G W`` goes to the same sparse regression as the derivative library
(:func:`~rdlab.discover.library.propose_from_features`). Quadratures of ``Θ(u(t))``:
``"trapezoid"`` on the samples (order 2 for intervals), ``"simpson"`` (intervals:
pairs of intervals, order 4 on uniform samples; test functions: composite Simpson where
the window allows), or ``"spline"``: each concentration is interpolated by a cubic spline
(not-a-knot) and the monomials of the spline are integrated on a grid ``refine`` times
finer (order 4 from the interpolation).

What it cannot do: a reaction that equilibrates within the first sampling interval leaves
only its transient inside one interval, where no quadrature of 11 samples resolves it —
its rows carry a large error, and only the equilibrium (a ratio of rates) is seen in the
rest. This is a cheap first guess; the accepted mechanism must still reproduce the
trajectories.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.optimize import nnls

from rdlab.discover.data import CONCENTRATION_FLOOR, ReactionData
from rdlab.discover.library import LibraryProposal, monomial_exponents, propose_from_features
from rdlab.errors import ParameterError

__all__ = ["KINDS", "QUADRATURES", "fit_rates_weak", "propose_from_integrals",
           "weak_form_system"]

#: Functionals accepted by :func:`weak_form_system`.
KINDS = ("test-functions", "intervals")
#: Quadratures accepted by :func:`weak_form_system`.
QUADRATURES = ("trapezoid", "simpson", "spline")


def _trapezoid_weights(t: np.ndarray) -> np.ndarray:
    """Return weights ``q`` with ``∫ f dt ≈ q · f(t)`` (trapezoid rule on the points ``t``)."""
    q = np.zeros_like(t)
    dt = np.diff(t)
    q[:-1] += dt / 2
    q[1:] += dt / 2
    return q


def _simpson_weights(t: np.ndarray) -> np.ndarray:
    """Return composite-Simpson weights on ``t`` (trapezoid on a last odd interval).

    Non-uniform pairs use the exact weights of the quadratic through three points.
    """
    q = np.zeros_like(t)
    n = t.size - 1
    for i in range(0, n - 1, 2):
        h0, h1 = t[i + 1] - t[i], t[i + 2] - t[i + 1]
        s = h0 + h1
        q[i] += s * (2 * h0 - h1) / (6 * h0)
        q[i + 1] += s ** 3 / (6 * h0 * h1)
        q[i + 2] += s * (2 * h1 - h0) / (6 * h1)
    if n % 2:
        q[-2:] += (t[-1] - t[-2]) / 2
    return q


def _bump(t: np.ndarray, a: float, b: float, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``φ = ((t−a)(b−t))^p / ((b−a)/2)^{2p}`` and ``φ'`` on ``t`` (0 outside)."""
    inside = (t > a) & (t < b)
    x, y = np.where(inside, t - a, 0.0), np.where(inside, b - t, 0.0)
    scale = ((b - a) / 2.0) ** (2 * p)
    phi = (x * y) ** p / scale
    dphi = p * (x * y) ** (p - 1) * (y - x) / scale
    return np.where(inside, phi, 0.0), np.where(inside, dphi, 0.0)


def _grid(t: np.ndarray, u: np.ndarray, quadrature: str, refine: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the quadrature points, the concentrations there and each sample's grid index.

    ``u`` is ``(n_t, n_s)``; for ``"spline"`` the points are ``refine`` per sample interval
    and the concentrations come from a not-a-knot cubic spline through the samples.
    """
    if quadrature != "spline":
        return t, u, np.arange(t.size)
    fine = np.concatenate([np.linspace(t[i], t[i + 1], refine + 1)[:-1]
                           for i in range(t.size - 1)] + [t[-1:]])
    uf = CubicSpline(t, u, axis=0)(fine)
    return fine, np.maximum(uf, CONCENTRATION_FLOOR), np.arange(t.size) * refine


def _weights(t: np.ndarray, quadrature: str) -> np.ndarray:
    """Return the quadrature weights on the points ``t`` (fine points for a spline)."""
    return _simpson_weights(t) if quadrature in ("simpson", "spline") else _trapezoid_weights(t)


def _rows_one(t: np.ndarray, u: np.ndarray, E: np.ndarray, kind: str, quadrature: str,
              width: tuple[int, ...], degree: int, span: int, refine: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(G, b)`` rows of one trajectory: ``t (n_t,)``, ``u (n_t, n_s)``."""
    tg, ug, at_sample = _grid(t, u, quadrature, refine)
    theta = np.exp(np.log(np.maximum(ug, CONCENTRATION_FLOOR)) @ E.T)  # (n_grid, n_mon)
    G, b = [], []
    if kind == "intervals":
        step = 2 if quadrature == "simpson" else span
        for i in range(0, t.size - step, step if quadrature == "simpson" else 1):
            lo, hi = at_sample[i], at_sample[i + step] + 1
            q = _weights(tg[lo:hi], quadrature)
            G.append(q @ theta[lo:hi])
            b.append(u[i + step] - u[i])
    else:
        for wd in width:
            for i in range(0, t.size - wd):
                lo, hi = at_sample[i], at_sample[i + wd] + 1
                phi, dphi = _bump(tg[lo:hi], t[i], t[i + wd], degree)
                q = _weights(tg[lo:hi], quadrature)
                G.append((q * phi) @ theta[lo:hi])
                b.append(-(q * dphi) @ ug[lo:hi])
    return np.array(G), np.array(b)


def weak_form_system(times: np.ndarray, conc: np.ndarray, *, max_order: int = 2,
                     exponents: np.ndarray | None = None, kind: str = "test-functions",
                     quadrature: str = "trapezoid",
                     width: int | tuple[int, ...] | None = None,
                     degree: int = 4, span: int = 1, refine: int = 8
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Return the linear system ``b ≈ G W`` of the mass-action ODE in weak form.

    Parameters
    ----------
    times : numpy.ndarray
        ``(n_t,)`` sample times shared by all trajectories, or ``(n_samples, n_t)``.
    conc : numpy.ndarray
        ``(n_samples, n_t, n_s)`` concentrations (> 0 after flooring at
        ``CONCENTRATION_FLOOR``).
    max_order : int, optional
        Highest total order of the monomial library (default 2); ignored when
        ``exponents`` is given.
    exponents : numpy.ndarray or None, optional
        ``(n_monomials, n_s)`` library exponents (default
        :func:`~rdlab.discover.library.monomial_exponents` up to ``max_order``).
    kind : {"test-functions", "intervals"}
        The functionals (module docstring).
    quadrature : {"trapezoid", "simpson", "spline"}
        How ``∫ Θ(u) dt`` is computed from the samples.
    width : int or tuple of int or None, optional
        Test-function windows, in sample intervals; several widths give one family of
        sliding windows each (default ``min(n_t − 1, 6)``).
    degree : int, optional
        ``p`` of the test functions ``((t−a)(b−t))^p`` (default 4; ≥ 1).
    span : int, optional
        Intervals between the two samples of an ``"intervals"`` row (default 1; Simpson
        always uses 2).
    refine : int, optional
        Spline quadrature points per sample interval (default 8).

    Returns
    -------
    G : numpy.ndarray
        ``(n_rows, n_monomials)``: each row one functional of every monomial; rows are
        trajectory-major.
    b : numpy.ndarray
        ``(n_rows, n_s)``: the same functional of each species' derivative.

    Raises
    ------
    ParameterError
        For bad shapes, an unknown kind or quadrature, or a window, degree or span that
        does not fit the samples.
    """
    c = np.asarray(conc, dtype=float)
    if c.ndim != 3:
        raise ParameterError(f"conc must be (n_samples, n_t, n_s), got shape {c.shape}")
    n, n_t, n_s = c.shape
    t = np.broadcast_to(np.asarray(times, dtype=float), (n, n_t)) \
        if np.ndim(times) == 1 and np.size(times) == n_t else np.asarray(times, dtype=float)
    if t.shape != (n, n_t):
        raise ParameterError(f"times must be ({n_t},) or ({n}, {n_t}), got {np.shape(times)}")
    if kind not in KINDS:
        raise ParameterError(f"kind must be one of {KINDS}, got {kind!r}")
    if quadrature not in QUADRATURES:
        raise ParameterError(f"quadrature must be one of {QUADRATURES}, got {quadrature!r}")
    widths = (min(n_t - 1, 6),) if width is None else tuple(np.atleast_1d(width).tolist())
    bad_width = not all(2 <= wd <= n_t - 1 for wd in widths)
    if bad_width or degree < 1 or not 1 <= span <= n_t - 1 or refine < 1:
        raise ParameterError(f"need 2 ≤ width ≤ {n_t - 1}, degree ≥ 1, 1 ≤ span ≤ {n_t - 1} "
                             f"and refine ≥ 1; got width {width}, degree {degree}, span "
                             f"{span}, refine {refine}")
    E = monomial_exponents(n_s, max_order) if exponents is None else np.asarray(exponents,
                                                                                 dtype=float)
    if E.ndim != 2 or E.shape[1] != n_s:
        raise ParameterError(f"exponents must be (n_monomials, {n_s}), got {E.shape}")
    parts = [_rows_one(t[s], c[s], E, kind, quadrature, widths, degree, span, refine)
             for s in range(n)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def fit_rates_weak(V: np.ndarray, orders: np.ndarray | None, G: np.ndarray, b: np.ndarray,
                   exponents: np.ndarray, weights: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit rates ``kf, kr ≥ 0`` of an integer structure to a weak system by NNLS.

    ``b ≈ Σ_i ν_i (kf_i G[:, m_f(i)] − kr_i G[:, m_r(i)])`` with ``m_f``, ``m_r`` the
    library columns of the forward orders (``orders``, else ``max(0, −ν)``) and reverse
    orders (``max(0, ν)``; none in catalytic form).

    Parameters
    ----------
    V : numpy.ndarray
        ``(n_r, n_s)`` integer stoichiometry.
    orders : numpy.ndarray or None
        ``(n_r, n_s)`` catalytic-form orders (irreversible), or ``None`` (V form).
    G, b : numpy.ndarray
        ``(n_rows, n_monomials)`` and ``(n_rows, n_s)`` from :func:`weak_form_system`.
    exponents : numpy.ndarray
        ``(n_monomials, n_s)`` the columns of ``G``.
    weights : numpy.ndarray or None, optional
        ``(n_rows, n_s)`` row weights (default 1).

    Returns
    -------
    kf, kr : numpy.ndarray
        ``(n_r,)``.
    residual : float
        Weighted residual relative to ‖w·b‖.

    Raises
    ------
    ParameterError
        When a forward order vector is not a column of the library (a reverse one that
        is not leaves the reaction irreversible).
    """
    E = np.asarray(exponents, dtype=float)
    w = np.ones_like(b) if weights is None else np.broadcast_to(weights, b.shape)
    cols, which = [], []
    for i, nu in enumerate(np.asarray(V, dtype=float)):
        dirs = [(0, orders[i] if orders is not None else np.maximum(0.0, -nu), 1.0)]
        if orders is None:
            dirs.append((1, np.maximum(0.0, nu), -1.0))
        for d, o, sign in dirs:
            m = np.flatnonzero(np.all(E == o, axis=1))
            if m.size == 0 and d == 1:  # a reverse outside the library: irreversible
                continue
            if m.size == 0:
                raise ParameterError(f"orders {o.tolist()} of reaction {i} are not in the "
                                     f"library (max order {int(E.sum(axis=1).max())})")
            cols.append((sign * G[:, m[0], None] * nu[None, :] * w).reshape(-1))
            which.append((i, d))
    y = (b * w).reshape(-1)
    A = np.stack(cols, axis=1)
    scale = np.where(np.linalg.norm(A, axis=0) > 0, np.linalg.norm(A, axis=0), 1.0)
    x, res = nnls(A / scale, y, maxiter=50 * A.shape[1])
    kf, kr = np.zeros(len(V)), np.zeros(len(V))
    for (i, d), value in zip(which, x / scale):
        (kf if d == 0 else kr)[i] = value
    return kf, kr, float(res) / max(float(np.linalg.norm(y)), 1e-300)


def propose_from_integrals(data: ReactionData, n_reactions: int | None = None, *,
                           max_order: int = 3, catalytic: bool = False,
                           tolerance: float = 1e-2, threshold: float = 1e-3,
                           kind: str = "intervals", quadrature: str = "simpson",
                           **system) -> LibraryProposal | None:
    """Propose a structure and rate guesses from concentrations alone (weak form).

    The weak system (:func:`weak_form_system`, options in ``system``) of all trajectories
    goes through the library's sparse regression
    (:func:`~rdlab.discover.library.propose_from_features`); the rates of the rounded
    structure are then refitted on the same system (:func:`fit_rates_weak`). With
    temperatures in the data, one set of rates is fitted across them (a guess at a typical
    temperature, not an Arrhenius fit).

    Parameters
    ----------
    data : ReactionData
        Concentrations; derivatives, if any, are not used.
    n_reactions : int or None, optional
        Keep at most this many reactions, the ones with the largest rate-weighted
        contributions (default: all proposed).
    max_order : int, optional
        Highest monomial order (default 3).
    catalytic : bool, optional
        Catalytic instead of V form (default ``False``).
    tolerance : float, optional
        Relative residual of a species' fit that counts as explained: the quadrature error
        plus noise (default 1e-2 for the paper's 11 samples).
    threshold : float, optional
        Relative size below which coefficients are dropped (default 1e-3).
    kind, quadrature : str, optional
        The functionals and quadrature (:func:`weak_form_system`); default Simpson
        between samples, the most often exact on the bundled examples at the paper's
        sampling (measured against test functions and splines, noise-free).
    **system
        Further options of :func:`weak_form_system` (``width``, ``degree``, …).

    Returns
    -------
    LibraryProposal or None
        ``V``, orders, ``kf``, ``kr`` (refitted), or ``None`` when nothing is proposed.

    Raises
    ------
    ParameterError
        For ``n_reactions`` < 1 or bad ``system`` options.
    """
    if n_reactions is not None and n_reactions < 1:
        raise ParameterError(f"n_reactions must be ≥ 1, got {n_reactions!r}")
    E = monomial_exponents(data.concentrations.shape[2], max_order)
    G, b = weak_form_system(data.times, data.concentrations, exponents=E, kind=kind,
                            quadrature=quadrature, **system)
    prop = propose_from_features(G, b, E, catalytic=catalytic, tolerance=tolerance,
                                 threshold=threshold)
    if prop is None:
        return None
    V, orders = prop.V, prop.orders
    kf, kr, _ = fit_rates_weak(V, orders, G, b, E)
    if n_reactions is not None and V.shape[0] > n_reactions:
        size = [np.linalg.norm(b - _without(i, V, orders, kf, kr, G, E)) for i in range(len(V))]
        keep = np.sort(np.argsort(size)[::-1][:n_reactions])
        V, kf, kr = V[keep], kf[keep], kr[keep]
        orders = None if orders is None else orders[keep]
    return LibraryProposal(V, orders, prop.max_deviation, prop.monomials, prop.skipped, kf, kr)


def _without(i: int, V: np.ndarray, orders: np.ndarray | None, kf: np.ndarray,
             kr: np.ndarray, G: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Return the weak-form prediction of all reactions but ``i`` (``(n_rows, n_s)``)."""
    pred = np.zeros((G.shape[0], V.shape[1]))
    for j, nu in enumerate(V):
        if j == i:
            continue
        of = orders[j] if orders is not None else np.maximum(0.0, -nu)
        pred += kf[j] * G[:, np.flatnonzero(np.all(E == of, axis=1))[0], None] * nu
        if orders is None and kr[j] > 0:  # kr > 0 only when its monomial is a column
            orr = np.maximum(0.0, nu)
            pred -= kr[j] * G[:, np.flatnonzero(np.all(E == orr, axis=1))[0], None] * nu
    return pred
