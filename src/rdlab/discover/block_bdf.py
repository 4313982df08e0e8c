"""SciPy's BDF integrator with the Newton systems of a stacked sensitivity system solved by blocks.

The reference of the trajectory fit's compiled integrator
(:func:`rdlab.discover.mass_action_kernel.integrate_sample`, tested against it; selected by
``trajectory_fit.simulate(..., solver="scipy")``), and its solver until stop 45. It
integrates ``n`` samples at once, each as one state block ``x`` (``S`` species) followed by
``B`` forward-sensitivity blocks ``s_b`` (``ds_b/dt = J s_b + ∂f/∂θ_b``). Its Jacobian is,
per sample, block lower-triangular:

.. code-block:: text

    [ J    0   …   0 ]        J   = ∂f/∂x                  (S, S)
    [ C_1  J   …   0 ]        C_b = ∂(J s_b + ∂f/∂θ_b)/∂x  (S, S)
    [ …          …   ]
    [ C_B  0   …   J ]

so BDF's Newton matrix ``I − c·Jac`` has the same ``(S, S)`` block ``D = I − c J`` on its
whole diagonal. It is solved by inverting the ``n`` small blocks ``D`` once per factorisation
and substituting forward (``y_0 = D⁻¹ r_0``, ``y_b = D⁻¹ (r_b + c C_b y_0)``): ``O(n (B+1) S²)``
a solve, against a sparse LU (SuperLU) of the whole ``n (B+1) S`` system, which dominated
the cost of a fit on GRI-3.0. Step-size and order control, error estimates and the Newton
iteration are SciPy's own (:class:`scipy.integrate.BDF`); only ``I``, the Jacobian callback
and the ``lu``/``solve_lu`` pair it uses are replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.integrate import BDF

__all__ = ["BlockBDF", "BlockJacobian"]


@dataclass(frozen=True)
class BlockJacobian:
    """The Jacobian of ``n`` stacked samples, each ``1 + B`` blocks of ``S`` unknowns.

    Attributes
    ----------
    diagonal : numpy.ndarray
        ``(n, S, S)`` ``J = ∂f/∂x`` of each sample, on every diagonal block.
    coupling : numpy.ndarray or None
        ``(n, B, S, S)`` ``C_b``, the dependence of sensitivity block ``b`` on the state;
        None when there are no sensitivity blocks.
    """

    diagonal: np.ndarray
    coupling: np.ndarray | None = None

    __array_ufunc__ = None  # ``numpy.float64 * jac`` defers to __rmul__

    def __rmul__(self, c: float) -> _ScaledJacobian:
        """Return ``c · self``, kept as the pair ``(c, self)`` for the block factorisation."""
        return _ScaledJacobian(float(c), self)

    __mul__ = __rmul__


@dataclass(frozen=True)
class _ScaledJacobian:
    c: float
    jac: BlockJacobian


class _BlockIdentity:
    """Stands for BDF's identity: ``I − c·Jac`` becomes the pair the block factorisation needs."""

    def __sub__(self, scaled: _ScaledJacobian) -> _ScaledJacobian:
        return scaled


@dataclass(frozen=True)
class _BlockFactor:
    c: float
    inverse: np.ndarray  # (n, S, S) (I − c J)⁻¹
    coupling: np.ndarray | None


class BlockBDF(BDF):
    """:class:`scipy.integrate.BDF` for ``n`` samples of ``(1 + B)`` blocks of ``S`` unknowns.

    Use as ``solve_ivp(fun, span, y0, method=BlockBDF, block_jac=..., blocks=(n, 1 + B, S))``.

    Parameters
    ----------
    fun, t0, y0, t_bound
        As for :class:`scipy.integrate.BDF`; ``y0`` is laid out ``(n, 1 + B, S)``, flattened.
    block_jac : callable
        ``block_jac(t, y) -> BlockJacobian``.
    blocks : tuple of int
        ``(n, 1 + B, S)``.
    **options
        Passed to :class:`scipy.integrate.BDF` (``rtol``, ``atol``, ``max_step``, …; not
        ``jac``).
    """

    def __init__(self, fun: Callable, t0: float, y0: np.ndarray, t_bound: float, *,
                 block_jac: Callable[[float, np.ndarray], BlockJacobian],
                 blocks: tuple[int, int, int], **options) -> None:
        size = int(np.prod(blocks))
        if np.size(y0) != size:
            raise ValueError(f"y0 has {np.size(y0)} values, blocks {blocks} need {size}")
        if "jac" in options or "jac_sparsity" in options:
            raise ValueError("BlockBDF takes its Jacobian as block_jac=..., not jac")
        # a sparse placeholder selects BDF's sparse set-up (no dense n × n identity); the real
        # Jacobian, identity and factorisation are installed below
        super().__init__(fun, t0, y0, t_bound, jac=lambda _t, _y: sp.csc_matrix((size, size)),
                         **options)
        self._blocks = tuple(int(b) for b in blocks)
        self._block_jac = block_jac
        self.jac = self._evaluate_jacobian
        self.J = self._evaluate_jacobian(self.t, self.y)
        self.I = _BlockIdentity()
        self.lu = self._factor
        self.solve_lu = self._solve

    def _evaluate_jacobian(self, t: float, y: np.ndarray) -> BlockJacobian:
        self.njev += 1
        return self._block_jac(t, y)

    def _factor(self, newton: _ScaledJacobian) -> _BlockFactor:
        self.nlu += 1
        jac = newton.jac
        S = jac.diagonal.shape[-1]
        inverse = np.linalg.inv(np.eye(S) - newton.c * jac.diagonal)
        return _BlockFactor(newton.c, inverse, jac.coupling)

    def _solve(self, factor: _BlockFactor, rhs: np.ndarray) -> np.ndarray:
        n, nb, S = self._blocks
        R = rhs.reshape(n, nb, S)
        out = np.empty_like(R)
        out[:, 0] = np.einsum("nij,nj->ni", factor.inverse, R[:, 0])
        if nb > 1:
            # y_b = D⁻¹ (r_b + c C_b y_0), all b at once
            forced = R[:, 1:] + factor.c * np.einsum("nbij,nj->nbi", factor.coupling, out[:, 0])
            out[:, 1:] = np.matmul(forced, np.transpose(factor.inverse, (0, 2, 1)))
        return out.reshape(-1)
