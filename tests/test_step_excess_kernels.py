"""The step-size term on the numba kernels against its torch formula.

``StepSize`` (eq. 15) runs ``mean max(|X_{t+1} − X_t| − δ, 0)`` and its gradient
``s_{t−1} − s_t`` in one pass each on the CPU. The gradient must equal the torch formula to
the bit (it is a sum of ±c), the value to float64 rounding; the compiled engine's padded
states are read in place; a NaN must show in the value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdlab.design.objectives import _StepExcess
from rdlab.design.step_excess_kernels import excess_gradient, excess_sums


def _torch_formula(X: torch.Tensor, delta: float, grad: float):
    """Value and gradient of the term by autograd on the plain torch expression."""
    Y = X.detach().clone().requires_grad_()
    d = Y[1:] - Y[:-1]
    a = d.abs()
    value = (torch.relu(a - delta) if delta > 0 else a).mean()
    value.backward(torch.tensor(grad, dtype=X.dtype))
    return value.detach(), Y.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("delta", [0.0, 0.05])
@pytest.mark.parametrize("padded", [False, True])
def test_value_and_gradient_equal_the_torch_formula(dtype, delta, padded):
    """Random states (with steps of exactly δ and of 0): gradient identical to the bit,
    value to rounding, whether the states are contiguous or padded rows as the compiled
    engine keeps them."""
    g = torch.Generator().manual_seed(7)
    wide = torch.rand(9, 2, 3, 5, 11, generator=g, dtype=dtype)
    X = wide[..., 2:9] if padded else wide[..., :7].contiguous()
    X[4, 0, 1, 2, 3] = X[3, 0, 1, 2, 3] + delta  # |ΔX| = δ exactly: no gradient
    X[6, 1, 0, 0, 0] = X[5, 1, 0, 0, 0]  # ΔX = 0
    assert X.is_contiguous() is not padded
    value_ref, grad_ref = _torch_formula(X, delta, 2.5)
    Y = X.detach().clone() if not padded else wide.clone()[..., 2:9]
    Y.requires_grad_()
    value = _StepExcess.apply(Y, delta)
    value.backward(torch.tensor(2.5, dtype=dtype))
    assert torch.equal(Y.grad, grad_ref)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert abs(float(value.detach()) - float(value_ref)) <= tol * float(value_ref)


def test_sums_per_step_and_nan_shows():
    """Each step's sum is the exact sum of its excesses; a NaN anywhere makes its step's
    sum NaN (not silently 0) and so the term's value."""
    X = np.zeros((3, 2, 4))
    X[1] = 0.5
    X[2, 0, 0] = 0.25
    np.testing.assert_allclose(excess_sums(X, 0.1), [8 * 0.4, 7 * 0.4 + 0.15], rtol=1e-15)
    X[2, 1, 3] = np.nan
    s = excess_sums(X, 0.0)
    assert s[0] == 4.0 and np.isnan(s[1])
    traj_like = torch.from_numpy(X[:, None])
    assert torch.isnan(_StepExcess.apply(traj_like, 0.0))


def test_gradient_of_two_states_and_odd_layouts():
    """T = 1 (two states): ∂/∂X_0 = −sign, ∂/∂X_1 = +sign, times the scale; a transposed
    (non-row) layout is copied and gives the same numbers."""
    X = np.array([[[0.0, 1.0, 2.0]], [[1.0, 1.0, 1.0]]])
    np.testing.assert_array_equal(excess_gradient(X, 0.0, 0.5),
                                  [[[-0.5, 0.0, 0.5]], [[0.5, 0.0, -0.5]]])
    rng = np.random.default_rng(1)
    A = rng.random((5, 6, 4))
    T = np.ascontiguousarray(A.transpose(0, 2, 1)).transpose(0, 2, 1)  # columns of unit stride
    assert not T.flags.c_contiguous and T.strides[2] != T.itemsize
    np.testing.assert_array_equal(excess_gradient(T, 0.1, 1.0), excess_gradient(A, 0.1, 1.0))
    np.testing.assert_array_equal(excess_sums(T, 0.1), excess_sums(A, 0.1))


def test_layouts_the_kernels_do_not_take_run_the_torch_formula():
    """States whose last axis is not of unit stride run torch's formula (as on CUDA): the
    value and gradient are those of the kernels on the same numbers."""
    g = torch.Generator().manual_seed(3)
    X = torch.rand(6, 1, 2, 4, 5, generator=g, dtype=torch.float64)

    def run(Y):
        Y.requires_grad_()
        value = _StepExcess.apply(Y, 0.2)
        value.backward()
        return float(value.detach()), Y.grad

    v1, g1 = run(X.clone())
    v2, g2 = run(X.transpose(3, 4).contiguous().transpose(3, 4))
    assert abs(v1 - v2) <= 1e-15 and torch.equal(g1, g2)
