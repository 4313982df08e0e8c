"""BlockBDF: BDF whose Newton systems are solved block by block, against the exact solution."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from rdlab.discover.block_bdf import BlockBDF, BlockJacobian

# A → B (k1), B → C (k2), stiff: k2 / k1 = 1e4; two samples with different rates
RATES = np.array([[1.0, 1.0e4], [3.0, 2.0e3]])
N, S, NB = 2, 3, 3  # samples, species, blocks (state + ∂/∂ln k1 + ∂/∂ln k2)
TIMES = np.linspace(0.0, 1.0, 11)


def _matrix(k: np.ndarray) -> np.ndarray:
    k1, k2 = k
    return np.array([[-k1, 0.0, 0.0], [k1, -k2, 0.0], [0.0, k2, 0.0]])


def _source_matrices(k: np.ndarray) -> np.ndarray:
    """``(2, S, S)``: ∂f/∂ln k_b = M_b x, with M_b = k_b ∂A/∂k_b."""
    k1, k2 = k
    m1 = k1 * np.array([[-1.0, 0, 0], [1, 0, 0], [0, 0, 0]])
    m2 = k2 * np.array([[0.0, 0, 0], [0, -1, 0], [0, 1, 0]])
    return np.stack([m1, m2])


def _rhs(_t, y):
    Y = y.reshape(N, NB, S)
    out = np.empty_like(Y)
    for i, k in enumerate(RATES):
        A, M = _matrix(k), _source_matrices(k)
        out[i, 0] = A @ Y[i, 0]
        out[i, 1:] = Y[i, 1:] @ A.T + np.einsum("bij,j->bi", M, Y[i, 0])
    return out.reshape(-1)


def _block_jac(_t, _y) -> BlockJacobian:
    return BlockJacobian(np.stack([_matrix(k) for k in RATES]),
                         np.stack([_source_matrices(k) for k in RATES]))


def _full_jac(t, y) -> sp.csc_matrix:
    """The same Jacobian as one sparse matrix: what SciPy's own BDF factorises."""
    jac = _block_jac(t, y)
    rows = []
    for i in range(N):
        blocks = [[None] * NB for _ in range(NB)]
        for b in range(NB):
            blocks[b][b] = jac.diagonal[i]
        for b in range(1, NB):
            blocks[b][0] = jac.coupling[i, b - 1]
        rows.append(sp.bmat(blocks))
    return sp.block_diag(rows, format="csc")


def _exact(k: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States ``(S, n_t)`` and ``∂x/∂ln k`` ``(2, S, n_t)`` of the chain from (1, 0, 0)."""
    k1, k2 = k
    e1, e2 = np.exp(-k1 * t), np.exp(-k2 * t)
    a = e1
    b = k1 / (k2 - k1) * (e1 - e2)
    x = np.stack([a, b, 1.0 - a - b])
    da1 = -k1 * t * e1
    db1 = k1 * (k2 / (k2 - k1) ** 2 * (e1 - e2) - k1 / (k2 - k1) * t * e1)
    db2 = k2 * (-k1 / (k2 - k1) ** 2 * (e1 - e2) + k1 / (k2 - k1) * t * e2)
    sens = np.stack([np.stack([da1, db1, -da1 - db1]),
                     np.stack([0 * t, db2, -db2])])
    return x, sens


def _initial() -> np.ndarray:
    y0 = np.zeros((N, NB, S))
    y0[:, 0, 0] = 1.0
    return y0.reshape(-1)


def test_states_and_sensitivities_match_the_exact_solution_of_a_stiff_chain():
    sol = solve_ivp(_rhs, (0.0, 1.0), _initial(), method=BlockBDF, t_eval=TIMES,
                    block_jac=_block_jac, blocks=(N, NB, S), rtol=1e-9, atol=1e-13)
    assert sol.success
    Y = sol.y.reshape(N, NB, S, TIMES.size)
    for i, k in enumerate(RATES):
        x, sens = _exact(k, TIMES)
        np.testing.assert_allclose(Y[i, 0], x, rtol=0, atol=1e-7)
        np.testing.assert_allclose(Y[i, 1:], sens, rtol=0, atol=1e-6)


def test_block_solve_takes_the_same_steps_as_scipy_bdf_on_the_whole_matrix():
    """The block substitution is an exact solve: same Newton iterates, same steps."""
    ours = solve_ivp(_rhs, (0.0, 1.0), _initial(), method=BlockBDF, t_eval=TIMES,
                     block_jac=_block_jac, blocks=(N, NB, S), rtol=1e-7, atol=1e-12)
    theirs = solve_ivp(_rhs, (0.0, 1.0), _initial(), method="BDF", t_eval=TIMES,
                       jac=_full_jac, rtol=1e-7, atol=1e-12)
    assert ours.nfev == theirs.nfev and ours.nlu == theirs.nlu
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-9, atol=1e-14)


def test_states_that_do_not_fill_the_blocks_and_a_plain_jacobian_are_refused():
    with pytest.raises(ValueError, match="blocks"):
        solve_ivp(_rhs, (0.0, 1.0), _initial()[:-1], method=BlockBDF,
                  block_jac=_block_jac, blocks=(N, NB, S))
    with pytest.raises(ValueError, match="block_jac"):
        solve_ivp(_rhs, (0.0, 1.0), _initial(), method=BlockBDF, jac=_full_jac,
                  block_jac=_block_jac, blocks=(N, NB, S))
