"""The step-size term's arithmetic on the CPU, one pass each way (numba).

The step-size term (:class:`rdlab.design.objectives.StepSize`, eq. 15) reads every state of
a roll-out: ``mean max(|X_{t+1} − X_t| − δ, 0)`` over ``(T + 1, …)`` states, and its
gradient ``∂L/∂X_t = s_{t−1} − s_t`` with ``s_t = sign(ΔX_t)·[|ΔX_t| > δ]/N``. In torch
that is six passes over the trajectory (difference, absolute value, mean; sign, mask,
assembly) and two trajectory-sized temporaries: about 1.4 ms of a 5 ms optimisation step at
64×64×5, T = 64. Here each direction is one parallel pass over the states, rows of the
state (one ``t``) shared out over numba's threads, nothing kept between the two.

The gradient is the same to the bit as the torch formula (``s_{t−1} − s_t`` of values
``±c`` or 0 is exact); the value is summed in float64 per state, then over states.
The two kernels compile on first use in a process (about 1.3 s for both dtypes' pair);
nothing is cached on disk, so nothing is written next to the package's source.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["excess_gradient", "excess_sums"]


@numba.njit(parallel=True, cache=False, fastmath={"reassoc"}, error_model="numpy")
def _sums(P, rows_t, R, n, T, delta, out):  # pragma: no cover - compiled
    for t in numba.prange(T):
        s = 0.0
        for r in range(R):
            a = P[t * rows_t + r, :n]
            b = P[(t + 1) * rows_t + r, :n]
            for i in range(n):
                e = abs(b[i] - a[i]) - delta
                # a step within δ adds 0, a NaN adds NaN (it must show)
                s += max(e, 0.0) if e == e else e
        out[t] = s


@numba.njit(parallel=True, cache=False, error_model="numpy")
def _gradient(P, rows_t, R, n, T, delta, scale, out):  # pragma: no cover - compiled
    for t in numba.prange(T + 1):
        tp = max(t - 1, 0)
        tn = min(t + 1, T)
        for r in range(R):
            x = P[t * rows_t + r, :n]
            xp = P[tp * rows_t + r, :n]
            xn = P[tn * rows_t + r, :n]
            o = out[t, r]
            for i in range(n):
                dp = x[i] - xp[i]  # 0 at t = 0
                dn = xn[i] - x[i]  # 0 at t = T
                g = np.sign(dp) * (abs(dp) > delta) - np.sign(dn) * (abs(dn) > delta)
                o[i] = g * scale


def _layout(X: np.ndarray) -> tuple[np.ndarray, int, int, int, int]:
    """Return ``(P, rows per state, R, n, T)`` locating ``X (T + 1, R, n)`` in rows ``P``.

    Row ``r`` of state ``t`` is ``P[t·rows_t + r, :n]``. ``P`` is a strided view starting at
    ``X``'s first cell, one row per (padded) row of cells: the compiled engine's states are
    ``n`` cells of rows ``n + 2`` wide, read in place. Only the first ``n`` entries of a
    row of ``P`` are ever read (its last row's padding may lie past ``X``'s memory). An
    ``X`` whose rows are not evenly spaced that way is copied first.
    """
    if X.ndim != 3:
        raise ValueError(f"expected states (T + 1, R, n), got shape {X.shape}")
    item = X.itemsize
    s0, s1, s2 = X.strides
    T1, R, n = X.shape
    if not (s2 == item and s1 >= n * item and s1 % item == 0 and s0 >= 0 and s0 % s1 == 0
            and (T1 == 1 or s0 >= R * s1)):
        X = np.ascontiguousarray(X)
        s0, s1 = X.strides[:2]
    rows_t = s0 // s1
    P = np.lib.stride_tricks.as_strided(X, shape=((T1 - 1) * rows_t + R, s1 // item),
                                        strides=(s1, item), writeable=False)
    return P, rows_t, R, n, T1 - 1


def excess_sums(X: np.ndarray, delta: float) -> np.ndarray:
    """Return ``Σ max(|X_{t+1} − X_t| − δ, 0)`` of each step.

    Parameters
    ----------
    X : numpy.ndarray
        The states ``(T + 1, R, n)``, float32 or float64: rows ``R`` of ``n`` cells each
        (any strides; unit stride along a row is what runs fast).
    delta : float
        δ ≥ 0.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64 sums, one per step.
    """
    P, rows_t, R, n, T = _layout(X)
    out = np.empty(max(T, 0))
    _sums(P, rows_t, R, n, T, X.dtype.type(delta), out)
    return out


def excess_gradient(X: np.ndarray, delta: float, scale: float) -> np.ndarray:
    """Return ``∂/∂X_t`` of ``scale · Σ_t Σ max(|X_{t+1} − X_t| − δ, 0)``.

    That is ``scale·(σ_{t−1} − σ_t)`` with ``σ_t = sign(ΔX_t)·[|ΔX_t| > δ]`` (and
    ``σ_{−1} = σ_T = 0``), the subgradient 0 at ``|ΔX_t| = δ`` as torch's.

    Parameters
    ----------
    X : numpy.ndarray
        The states ``(T + 1, R, n)``, float32 or float64 (any strides).
    delta : float
        δ ≥ 0.
    scale : float
        The factor (the incoming gradient over the number of entries, for a mean).

    Returns
    -------
    numpy.ndarray
        ``(T + 1, R, n)`` of ``X``'s dtype, C-contiguous.
    """
    P, rows_t, R, n, T = _layout(X)
    out = np.empty(X.shape, dtype=X.dtype)
    _gradient(P, rows_t, R, n, T, X.dtype.type(delta), X.dtype.type(scale), out)
    return out
