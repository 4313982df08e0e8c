"""Compiled mass-action rates, right-hand side and Jacobian (numba).

One job: for concentrations ``x (n, S)``, rate constants ``k (n, P)``, reactant orders
``A (P, S)`` and net stoichiometry ``net (P, S)`` of ``P`` directed reactions, return the
rates ``r = k ∏_j x_j^A_pj``, ``f = r @ net`` and ``J = ∂f/∂x``. The stiff solver of the
trajectory fit calls this hundreds of thousands of times on small arrays (simplified
GRI-3.0: 5 samples, 24 directions, 16 species), where numpy's per-call overhead was most of
the cost. :meth:`rdlab.discover.trajectory_fit.KineticModel.rates_jacobian` and
:func:`~rdlab.discover.trajectory_fit.mean_monomials` (rates at k = 1) call it; the tests
compare ``r`` with the mass-action formula and ``J`` with finite differences of ``f``.

Conventions: ``x^0 = 1`` (also at ``x = 0``); a whole order is a product, so negative solver
excursions enter the polynomial as they are; the slope of a fractional order below 1, infinite
at ``x = 0``, is taken as ``a`` there (the numpy code this replaces used ``a`` for every ``x``,
which made the sensitivities of such orders wrong). Nothing is cached on disk.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["mass_action_rates_jacobian"]


@numba.njit(inline="always", cache=False)
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


@numba.njit(inline="always", cache=False)
def _power_derivative(x: float, a: float) -> float:
    """``d(x^a)/dx / a = x^(a − 1)``; an order below 1 at ``x ≤ 0`` (infinite slope) gives 1."""
    if a < 1.0 and x <= 0.0:
        return 1.0
    if a < 1.0:
        return x ** (a - 1.0)
    return _power(x, a - 1.0)


@numba.njit(cache=False, error_model="numpy")
def mass_action_rates_jacobian(x: np.ndarray, k: np.ndarray, A: np.ndarray, net: np.ndarray,
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``r (n, P)``, ``f (n, S)`` and ``J (n, S, S)`` (see the module's docstring)."""
    n, S = x.shape
    P = A.shape[0]
    r = np.empty((n, P))
    f = np.zeros((n, S))
    J = np.zeros((n, S, S))
    for i in range(n):
        for p in range(P):
            m = 1.0
            for j in range(S):
                if A[p, j] != 0.0:
                    m *= _power(x[i, j], A[p, j])
            rate = k[i, p] * m
            r[i, p] = rate
            for s in range(S):
                if net[p, s] != 0.0:
                    f[i, s] += rate * net[p, s]
            for j in range(S):
                a = A[p, j]
                if a == 0.0:
                    continue
                d = k[i, p] * a * _power_derivative(x[i, j], a)
                for q in range(S):
                    if q != j and A[p, q] != 0.0:
                        d *= _power(x[i, q], A[p, q])
                for s in range(S):
                    if net[p, s] != 0.0:
                        J[i, s, j] += net[p, s] * d
    return r, f, J
