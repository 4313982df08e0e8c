"""Compiled mass-action kinetics (numba): rates, Jacobian, and a stiff integrator.

**Rates.** For concentrations ``x (n, S)``, rate constants ``k (n, P)``, reactant orders
``A (P, S)`` and net stoichiometry ``net (P, S)`` of ``P`` directed reactions,
:func:`mass_action_rates_jacobian` returns the rates ``r = k ∏_j x_j^A_pj``, ``f = r @ net``
and ``J = ∂f/∂x`` (:func:`sample_rates_jacobian`: one sample, in place).
:meth:`rdlab.discover.trajectory_fit.KineticModel.rates_jacobian` and
:func:`~rdlab.discover.trajectory_fit.mean_monomials` (rates at k = 1) call it; the tests
compare ``r`` with the mass-action formula and ``J`` with finite differences of ``f``.
Conventions: ``x^0 = 1`` (also at ``x = 0``); a whole order is a product, so negative solver
excursions enter the polynomial as they are; the slope of a fractional order below 1, infinite
at ``x = 0``, is taken as ``a`` there.

**Integrator.** :func:`integrate_sample` integrates one sample's concentrations and ``B``
forward-sensitivity blocks ``s_b`` (``ds_b/dt = J s_b + w_b r_{d_b} ν_{d_b}``, or ``J s_b`` for
a block without a source, e.g. ``∂x/∂ln x0``) and reports both at given times. The trajectory
fit calls it for every sample of every evaluation; SciPy's BDF in Python (``block_bdf.py``,
kept as the reference) spent about 300 µs of interpreter time a step there, 248 of the 300 s
of a noise-free GRI-3.0 fit. Method: the numerical differentiation formulas of orders 1–5 on a
backward-difference array, with step-size and order control (Shampine & Reichelt, *The MATLAB
ODE suite*, 1997, as in SciPy's BDF), where

* the **state** is solved by a simplified Newton iteration with the matrix ``I − c J``
  (``c = h/α_k``) of the last Jacobian;
* the **sensitivities** are linear in themselves, so once the state has converged they are
  solved exactly with ``I − c J(x_{n+1})`` (the *staggered direct* method of CVODES): no
  Newton iteration and no second derivatives; the new state's Jacobian and factorisation
  are reused by the next step's Newton iteration;
* the **error test** covers states and sensitivities (RMS of the local error over all
  ``(1 + B) S`` components, each scaled by ``atol_s + rtol |y|``), as SciPy's did on the
  stacked system, but each sample takes its own steps.

The tests compare states and sensitivities with exact solutions, with SciPy's BDF on the
stacked system and with finite differences of the states.

Everything compiled here is cached on disk by numba (12 s to compile the integrator, 0.6 s
to load it). Numba keys a cache on its own source file only, which is why the integrator
lives in the same file as the rates it calls: an edit of either invalidates both.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["FAILED_STEPS", "FAILED_STEP_SIZE", "SUCCESS", "integrate_sample",
           "mass_action_rates_jacobian", "sample_rates_jacobian"]


@numba.njit(inline="always", cache=True)
def _power(x: float, a: float) -> float:
    """``x^a`` with ``x^0 = 1``; whole orders up to 8 by products."""
    if a <= 0.0:
        return 1.0
    if a <= 8.0 and a == np.floor(a):
        out = x
        for _ in range(int(a) - 1):
            out *= x
        return out
    return x ** a


@numba.njit(inline="always", cache=True)
def _power_derivative(x: float, a: float) -> float:
    """``d(x^a)/dx / a = x^(a − 1)``; an order below 1 at ``x ≤ 0`` (infinite slope) gives 1."""
    if a < 1.0 and x <= 0.0:
        return 1.0
    if a < 1.0:
        return x ** (a - 1.0)
    return _power(x, a - 1.0)


@numba.njit(cache=True, error_model="numpy")
def sample_rates_jacobian(x: np.ndarray, k: np.ndarray, A: np.ndarray, net: np.ndarray,
                          clip: bool, r: np.ndarray, f: np.ndarray, J: np.ndarray,
                          with_jacobian: bool = True) -> None:
    """Write one sample's ``r (P,)``, ``f (S,)`` and ``J (S, S)`` for ``x (S,)``, ``k (P,)``.

    With ``clip``, negative concentrations are read as 0 (fractional orders, whose powers
    are not defined there); without ``with_jacobian``, ``J`` is left as it was.
    """
    S = x.shape[0]
    P = A.shape[0]
    f[:] = 0.0
    if with_jacobian:
        J[:, :] = 0.0
    for p in range(P):
        m = 1.0
        for j in range(S):
            if A[p, j] != 0.0:
                m *= _power(max(x[j], 0.0) if clip else x[j], A[p, j])
        rate = k[p] * m
        r[p] = rate
        for s in range(S):
            if net[p, s] != 0.0:
                f[s] += rate * net[p, s]
        if not with_jacobian:
            continue
        for j in range(S):
            a = A[p, j]
            if a == 0.0:
                continue
            d = k[p] * a * _power_derivative(max(x[j], 0.0) if clip else x[j], a)
            for q in range(S):
                if q != j and A[p, q] != 0.0:
                    d *= _power(max(x[q], 0.0) if clip else x[q], A[p, q])
            for s in range(S):
                if net[p, s] != 0.0:
                    J[s, j] += net[p, s] * d


@numba.njit(cache=True, error_model="numpy")
def mass_action_rates_jacobian(x: np.ndarray, k: np.ndarray, A: np.ndarray, net: np.ndarray,
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``r (n, P)``, ``f (n, S)`` and ``J (n, S, S)`` (see the module's docstring)."""
    n, S = x.shape
    P = A.shape[0]
    r = np.empty((n, P))
    f = np.zeros((n, S))
    J = np.zeros((n, S, S))
    for i in range(n):
        sample_rates_jacobian(x[i], k[i], A, net, False, r[i], f[i], J[i])
    return r, f, J


#: Return codes of :func:`integrate_sample`.
SUCCESS, FAILED_STEP_SIZE, FAILED_STEPS = 0, 1, 2

MAX_ORDER = 5
NEWTON_MAXITER = 4
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
# Klopfenstein–Shampine NDF coefficients κ_k (order 1–5; κ_0 unused), as in the paper
_KAPPA = np.array([0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0])
_GAMMA = np.concatenate((np.zeros(1), np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))))
_ALPHA = (1.0 - _KAPPA) * _GAMMA
_ERROR_CONST = _KAPPA * _GAMMA + 1.0 / np.arange(1, MAX_ORDER + 2)


@numba.njit(cache=True)
def _difference_rescaling(order: int, factor: float) -> np.ndarray:
    """``(order+1, order+1)`` matrix taking backward differences at step h to step factor·h."""
    out = np.zeros((order + 1, order + 1))
    out[0, :] = 1.0
    for j in range(1, order + 1):
        value = 1.0
        for i in range(1, order + 1):
            value *= (i - 1.0 - factor * j) / i
            out[i, j] = value
    return out


@numba.njit(cache=True)
def _rescale_differences(D: np.ndarray, order: int, factor: float) -> None:
    """Rewrite ``D[:order+1]`` (``(K, N)``) in place for a step size changed by ``factor``."""
    RU = _difference_rescaling(order, factor) @ _difference_rescaling(order, 1.0)
    old = D[:order + 1].copy()
    for i in range(order + 1):
        D[i, :] = 0.0
        for m in range(order + 1):
            if RU[m, i] != 0.0:
                D[i, :] += RU[m, i] * old[m, :]


@numba.njit(cache=True)
def _newton_matrix(c: float, J: np.ndarray, lu: np.ndarray, piv: np.ndarray) -> None:
    """Factorise ``I − c J`` (``(S, S)``) into ``lu`` and ``piv`` (partial pivoting, in place).

    A zero pivot is left as it is; the solves then give non-finite values, which the step
    treats as a failed Newton iteration.
    """
    S = J.shape[0]
    for i in range(S):
        for j in range(S):
            lu[i, j] = -c * J[i, j]
        lu[i, i] += 1.0
    for col in range(S):
        best = col
        for i in range(col + 1, S):
            if abs(lu[i, col]) > abs(lu[best, col]):
                best = i
        piv[col] = best
        if best != col:
            for j in range(S):
                lu[col, j], lu[best, j] = lu[best, j], lu[col, j]
        pivot = lu[col, col]
        if pivot == 0.0:
            continue
        for i in range(col + 1, S):
            m = lu[i, col] / pivot
            lu[i, col] = m
            if m != 0.0:
                for j in range(col + 1, S):
                    lu[i, j] -= m * lu[col, j]


@numba.njit(cache=True)
def _solve(lu: np.ndarray, piv: np.ndarray, b: np.ndarray) -> None:
    """Overwrite ``b`` (``(S,)``) with the solution of ``lu``'s system."""
    S = b.size
    for i in range(S):
        p = piv[i]
        if p != i:
            b[i], b[p] = b[p], b[i]
    for i in range(S):
        acc = b[i]
        for j in range(i):
            acc -= lu[i, j] * b[j]
        b[i] = acc
    for i in range(S - 1, -1, -1):
        acc = b[i]
        for j in range(i + 1, S):
            acc -= lu[i, j] * b[j]
        b[i] = acc / lu[i, i]


@numba.njit(cache=True)
def _rms(values: np.ndarray, scale: np.ndarray) -> float:
    total = 0.0
    for i in range(values.size):
        q = values[i] / scale[i]
        total += q * q
    return np.sqrt(total / values.size)


@numba.njit(cache=True)
def _sensitivity_rhs(Y: np.ndarray, J: np.ndarray, r: np.ndarray, net: np.ndarray,
                     src_dir: np.ndarray, src_w: np.ndarray, out: np.ndarray) -> None:
    """``out[1+b] = J s_b + w_b r_{d_b} ν_{d_b}`` for every block (``Y``, ``out``: ``(1+B, S)``)."""
    B = src_dir.size
    for b in range(B):
        out[1 + b] = J @ Y[1 + b]
        d = src_dir[b]
        if d >= 0:
            out[1 + b] += src_w[b] * r[d] * net[d]


@numba.njit(cache=True, error_model="numpy")
def _full_rhs(Y: np.ndarray, k: np.ndarray, A: np.ndarray, net: np.ndarray, clip: bool,
              src_dir: np.ndarray, src_w: np.ndarray, F: np.ndarray, J: np.ndarray) -> None:
    """Write ``F = dY/dt`` (``(1+B, S)``: states, then sensitivities) and ``J`` at ``Y``."""
    r = np.empty(k.size)
    f = np.empty(Y.shape[1])
    sample_rates_jacobian(Y[0], k, A, net, clip, r, f, J)
    F[0] = f
    _sensitivity_rhs(Y, J, r, net, src_dir, src_w, F)


@numba.njit(cache=True, error_model="numpy")
def _first_step(Y: np.ndarray, F: np.ndarray, span: float, rtol: float, atol: np.ndarray,
                k: np.ndarray, A: np.ndarray, net: np.ndarray, clip: bool,
                src_dir: np.ndarray, src_w: np.ndarray) -> float:
    """Return the first step size (Hairer, Nørsett & Wanner's heuristic, order 1)."""
    N = Y.size
    y, f = Y.reshape(N), F.reshape(N)
    scale = atol + rtol * np.abs(y)
    d0, d1 = _rms(y, scale), _rms(f, scale)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, span)
    F1 = np.empty_like(F)
    S = Y.shape[1]
    _full_rhs(Y + h0 * F, k, A, net, clip, src_dir, src_w, F1, np.empty((S, S)))
    d2 = _rms((F1 - F).reshape(N), scale) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** 0.5
    return min(100.0 * h0, h1, span)


@numba.njit(cache=True, error_model="numpy")
def _newton(x: np.ndarray, psi: np.ndarray, d: np.ndarray, c: float, lu: np.ndarray,
            piv: np.ndarray, x_scale: np.ndarray, tol: float, k: np.ndarray, A: np.ndarray,
            net: np.ndarray, clip: bool) -> tuple[bool, int]:
    """Simplified Newton iteration on the state: ``x`` (from the prediction) and ``d[:S]``.

    Solves ``d = c f(x_pred + d) − ψ`` with the factorised ``I − c J``; returns whether it
    converged (by the rate test of Shampine & Reichelt) and the iterations taken.
    """
    S = x.size
    r = np.empty(k.size)
    f = np.empty(S)
    J = np.empty((S, S))
    dy = np.empty(S)
    d[:S] = 0.0
    old = -1.0
    for it in range(NEWTON_MAXITER):
        sample_rates_jacobian(x, k, A, net, clip, r, f, J, False)
        if not np.all(np.isfinite(f)):
            return False, it + 1
        for j in range(S):
            dy[j] = c * f[j] - psi[j] - d[j]
        _solve(lu, piv, dy)
        norm = _rms(dy, x_scale)
        if not np.isfinite(norm):
            return False, it + 1
        rate = norm / old if old >= 0.0 else -1.0
        if rate >= 0.0 and (rate >= 1.0
                            or rate ** (NEWTON_MAXITER - it) / (1.0 - rate) * norm > tol):
            return False, it + 1
        x += dy
        d[:S] += dy
        if norm == 0.0 or (rate >= 0.0 and rate / (1.0 - rate) * norm < tol):
            return True, it + 1
        old = norm
    return False, NEWTON_MAXITER


@numba.njit(cache=True, error_model="numpy")
def _sensitivity_corrections(y_pred: np.ndarray, psi: np.ndarray, d: np.ndarray, c: float,
                             J: np.ndarray, r: np.ndarray, net: np.ndarray,
                             src_dir: np.ndarray, src_w: np.ndarray, lu: np.ndarray,
                             piv: np.ndarray) -> None:
    """Write ``d[S:]``: ``(I − cJ) d_b = c (J s_pred_b + source_b) − ψ_b`` for every block."""
    S = J.shape[0]
    rhs = np.empty(S)
    for b in range(src_dir.size):
        base = S * (1 + b)
        dd = src_dir[b]
        for i in range(S):
            acc = 0.0
            for j in range(S):
                acc += J[i, j] * y_pred[base + j]
            if dd >= 0:
                acc += src_w[b] * r[dd] * net[dd, i]
            rhs[i] = c * acc - psi[base + i]
        _solve(lu, piv, rhs)
        d[base:base + S] = rhs


@numba.njit(cache=True)
def _report(D: np.ndarray, order: int, h: float, t: float, times: np.ndarray, next_out: int,
            out: np.ndarray) -> int:
    """Write the reporting times up to ``t`` from the step's polynomial; return the next."""
    N = D.shape[1]
    while next_out < times.size and times[next_out] <= t:
        te = times[next_out]
        row = out[next_out].reshape(N)
        row[:] = D[0]
        if te != t:
            p = 1.0
            for j in range(order):
                p *= (te - (t - h * j)) / (h * (j + 1))
                row += p * D[j + 1]
        next_out += 1
    return next_out


@numba.njit(cache=True, error_model="numpy")
def _next_order(D: np.ndarray, order: int, error_norm: float, scale: np.ndarray,
                n_iter: int) -> tuple[int, float]:
    """Return the order (±1 or kept) allowing the largest next step, and the step factor."""
    safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
    f_m = 0.0
    f_p = 0.0
    if order > 1:
        e_m = _ERROR_CONST[order - 1] * _rms(D[order], scale)
        f_m = e_m ** (-1.0 / order) if e_m > 0.0 else np.inf
    if order < MAX_ORDER:
        e_p = _ERROR_CONST[order + 1] * _rms(D[order + 2], scale)
        f_p = e_p ** (-1.0 / (order + 2)) if e_p > 0.0 else np.inf
    best = error_norm ** (-1.0 / (order + 1)) if error_norm > 0.0 else np.inf
    delta = 0
    if f_m > best:
        best, delta = f_m, -1
    if f_p > best:
        best, delta = f_p, 1
    return order + delta, min(MAX_FACTOR, safety * best)


@numba.njit(cache=True)
def _predict(D: np.ndarray, order: int, y_pred: np.ndarray, psi: np.ndarray) -> None:
    """Write the predicted state ``Σ D_i`` and ``ψ = Σ γ_i D_i / α_k`` (``i ≥ 1``)."""
    y_pred[:] = D[0]
    psi[:] = 0.0
    for i in range(1, order + 1):
        y_pred += D[i]
        psi += _GAMMA[i] * D[i]
    psi /= _ALPHA[order]


@numba.njit(cache=True)
def _error_norm(y_pred: np.ndarray, d: np.ndarray, order: int, atol: np.ndarray, rtol: float,
                scale: np.ndarray) -> float:
    """Return the RMS local error of the step (``scale`` written: ``atol + rtol |y_new|``)."""
    scale[:] = atol + rtol * np.abs(y_pred + d)
    return _rms(_ERROR_CONST[order] * d, scale)


@numba.njit(cache=True)
def _accept_differences(D: np.ndarray, order: int, d: np.ndarray) -> None:
    """Update the backward differences with an accepted step's correction ``d``."""
    D[order + 2] = d - D[order + 1]
    D[order + 1] = d
    for i in range(order, -1, -1):
        D[i] += D[i + 1]


@numba.njit(cache=True, error_model="numpy")
def integrate_sample(x0: np.ndarray, k: np.ndarray, A: np.ndarray, net: np.ndarray,
                     clip: bool, src_dir: np.ndarray, src_w: np.ndarray, s0: np.ndarray,
                     times: np.ndarray, rtol: float, atol: np.ndarray, max_steps: int,
                     out: np.ndarray) -> tuple[int, int]:
    """Integrate one sample with sensitivities; write ``out`` ``(n_t, 1 + B, S)``.

    Parameters
    ----------
    x0 : numpy.ndarray
        ``(S,)`` state at ``times[0]``.
    k : numpy.ndarray
        ``(P,)`` rate constants of the directions.
    A, net : numpy.ndarray
        ``(P, S)`` reactant orders and net stoichiometry.
    clip : bool
        Read negative concentrations as 0 in the rates (fractional orders).
    src_dir : numpy.ndarray
        ``(B,)`` int: the direction whose rate drives block ``b`` (``∂f/∂ln k_d = r_d ν_d``),
        or −1 for a block without a source.
    src_w : numpy.ndarray
        ``(B,)`` the source's weight (1 for ``ln k``; ``−(T_ref/T − 1)`` for ``ε``).
    s0 : numpy.ndarray
        ``(B, S)`` sensitivities at ``times[0]``.
    times : numpy.ndarray
        ``(n_t,)`` increasing reporting times.
    rtol : float
        Relative tolerance.
    atol : numpy.ndarray
        ``(S,)`` absolute tolerance of each species (also of its sensitivities).
    max_steps : int
        Steps after which the integration is abandoned.
    out : numpy.ndarray
        ``(n_t, 1 + B, S)``; rows not reached are left as they were (the caller fills NaN).

    Returns
    -------
    status, steps : int
        :data:`SUCCESS`, :data:`FAILED_STEP_SIZE` or :data:`FAILED_STEPS`; steps taken.
    """
    S, nb = x0.size, 1 + src_dir.size
    N = nb * S
    tol = max(10.0 * np.finfo(np.float64).eps / rtol, min(0.03, np.sqrt(rtol)))
    t, t_bound = times[0], times[-1]
    atol_flat = np.repeat(atol, nb).reshape(S, nb).T.copy().reshape(N)
    Y = np.empty((nb, S))
    Y[0] = x0
    Y[1:] = s0
    out[0] = Y
    if times.size == 1 or t_bound <= t:
        return SUCCESS, 0
    F, Jn = np.empty((nb, S)), np.empty((S, S))  # Jn: the Newton iteration's Jacobian
    _full_rhs(Y, k, A, net, clip, src_dir, src_w, F, Jn)
    h = _first_step(Y, F, t_bound - t, rtol, atol_flat, k, A, net, clip, src_dir, src_w)
    D = np.zeros((MAX_ORDER + 3, N))
    D[0] = Y.reshape(N)
    D[1] = F.reshape(N) * h
    order, n_equal, next_out, steps, c_M = 1, 0, 1, 0, -1.0  # c_M: c of lu (−1: none)
    lu, piv = np.empty((S, S)), np.empty(S, np.int64)
    lu_new, piv_new = np.empty((S, S)), np.empty(S, np.int64)
    y_pred, psi, d, scale = np.empty(N), np.empty(N), np.empty(N), np.empty(N)
    r, f, J = np.empty(k.size), np.empty(S), np.empty((S, S))
    while next_out < times.size:
        steps += 1
        if steps > max_steps:
            return FAILED_STEPS, steps
        jac_current, n_iter, error_norm, last = False, 0, np.inf, False
        while error_norm > 1.0:  # attempts at one step
            if h < 10.0 * (np.nextafter(t, np.inf) - t):
                return FAILED_STEP_SIZE, steps
            last = t + h >= t_bound
            if last:
                _rescale_differences(D, order, (t_bound - t) / h)
                h = t_bound - t
            _predict(D, order, y_pred, psi)
            c = h / _ALPHA[order]
            x = y_pred[:S].copy()
            while True:
                if c != c_M:
                    _newton_matrix(c, Jn, lu, piv)
                    c_M = c
                x[:] = y_pred[:S]
                converged, n_iter = _newton(x, psi, d, c, lu, piv,
                                            atol + rtol * np.abs(y_pred[:S]), tol, k, A, net, clip)
                if converged or jac_current:
                    break
                sample_rates_jacobian(y_pred[:S], k, A, net, clip, r, f, Jn)
                jac_current, c_M = True, -1.0
            if not converged:
                factor = 0.5
            else:  # the sensitivities, exactly, at the converged state; then the error test
                sample_rates_jacobian(x, k, A, net, clip, r, f, J)
                _newton_matrix(c, J, lu_new, piv_new)
                _sensitivity_corrections(y_pred, psi, d, c, J, r, net, src_dir, src_w,
                                         lu_new, piv_new)
                error_norm = _error_norm(y_pred, d, order, atol_flat, rtol, scale)
                if error_norm <= 1.0:
                    break
                safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
                factor = (max(MIN_FACTOR, safety * error_norm ** (-1.0 / (order + 1)))
                          if np.isfinite(error_norm) else MIN_FACTOR)
                error_norm = np.inf
            h *= factor
            _rescale_differences(D, order, factor)
        # the new state's Jacobian and factorisation serve the next Newton iteration
        Jn, J, lu, lu_new, piv, piv_new, c_M = J, Jn, lu_new, lu, piv_new, piv, c
        t = t_bound if last else t + h
        _accept_differences(D, order, d)
        next_out = _report(D, order, h, t, times, next_out, out)
        n_equal += 1
        if n_equal >= order + 1:
            order, factor = _next_order(D, order, error_norm, scale, n_iter)
            h *= factor
            _rescale_differences(D, order, factor)
            n_equal = 0
    return SUCCESS, steps
