"""The compiled BDF (states and forward sensitivities) against exact solutions and SciPy's BDF."""

from __future__ import annotations

import numpy as np
import pytest

from rdlab.discover import trajectory_fit
from rdlab.discover.data import generate
from rdlab.discover.examples import example
from rdlab.discover.mass_action_kernel import FAILED_STEPS, SUCCESS, integrate_sample
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.trajectory_fit import (
    KineticModel,
    simulate,
    start_parameters,
    temperature_offsets,
)

TIMES = np.linspace(0.0, 1.0, 11)


def _chain_exact(k1: float, k2: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A → B → C from (1, 0, 0): states ``(n_t, 3)`` and ``∂x/∂ln k`` ``(n_t, 3, 2)``."""
    e1, e2 = np.exp(-k1 * t), np.exp(-k2 * t)
    g = k1 / (k2 - k1)
    a, b = e1, g * (e1 - e2)
    da1 = -k1 * t * e1
    db1 = k1 * (k2 / (k2 - k1) ** 2 * (e1 - e2) - g * t * e1)
    db2 = k2 * (-k1 / (k2 - k1) ** 2 * (e1 - e2) + g * t * e2)
    x = np.stack([a, b, 1.0 - a - b], axis=-1)
    sens = np.stack([np.stack([da1, db1, -da1 - db1], axis=-1),
                     np.stack([0 * t, db2, -db2], axis=-1)], axis=-1)
    return x, sens


def _chain_model() -> KineticModel:
    mech = Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": 1}, 1.0, 0.0),
                                                 ({"B": -1, "C": 1}, 1.0, 0.0)])
    return KineticModel.from_mechanism(mech, reversible=np.array([False, False]))


@pytest.mark.parametrize("rtol", [1e-5, 1e-7, 1e-9])
def test_stiff_chain_states_and_sensitivities_follow_the_exact_solution(rtol):
    """k2/k1 = 1e4: the global error of states and sensitivities falls with the tolerance."""
    model = _chain_model()
    k1, k2 = 1.0, 1.0e4
    x, S, ok = simulate(model, np.log([k1, k2]), np.array([[1.0, 0.0, 0.0]]), TIMES,
                        rtol=rtol, atol=1e-14)
    assert ok
    x_exact, s_exact = _chain_exact(k1, k2, TIMES)
    assert np.max(np.abs(x[0] - x_exact)) < 30 * rtol
    assert np.max(np.abs(S[0] - s_exact)) < 30 * rtol


def _agreement(name: str, n_samples: int = 4) -> tuple[float, float]:
    """Largest state and sensitivity differences, compiled against SciPy's BDF, on an example.

    States relative to each species' largest value; sensitivities relative to the largest
    value of their column (``∂x/∂θ_j`` and ``∂x/∂ln x0_j``).
    """
    ex = example(name)
    data = generate(ex.mechanism, n_samples=n_samples, seed=2,
                    temperature_range=ex.temperature_range)
    model = KineticModel.from_mechanism(ex.mechanism)
    T_ref, x_temp = temperature_offsets(data)
    theta = start_parameters(ex.mechanism, model, T_ref)
    c0 = data.concentrations[:, 0]
    runs = [simulate(model, theta, c0, TIMES, x_temp, state_sensitivities=True, rtol=1e-9,
                     solver=solver) for solver in ("compiled", "scipy")]
    (x1, s1, ok1), (x2, s2, ok2) = runs
    assert ok1 and ok2
    dx = np.max(np.abs(x1 - x2) / np.max(np.abs(x2), axis=(0, 1)))
    ds = np.max(np.abs(s1 - s2) / np.maximum(np.max(np.abs(s2), axis=(0, 1, 2)), 1e-300))
    return float(dx), float(ds)


@pytest.mark.parametrize("name", ["gri30-simplified", "michaelis-menten-arrhenius",
                                  "hydrogen-oxidation"])
def test_compiled_solver_agrees_with_scipy_bdf(name):
    """Same trajectories and sensitivities (rates, activation energies, initial states)."""
    dx, ds = _agreement(name)
    assert dx < 1e-6
    assert ds < 1e-4


def test_fractional_orders_follow_the_exact_solution_in_both_solvers():
    """An order-½ rate (A → B, dA/dt = −k √A): both solvers follow the exact solution."""
    mech = Mechanism.from_rows(["A", "B"], [({"A": -1, "B": 1}, 0.5, 0.0)])
    model = KineticModel.from_mechanism(mech, reversible=np.array([False]))
    model = KineticModel(model.species, model.reactants * 0.5, model.net, model.directions,
                         model.V)
    assert not model.whole_orders
    x0 = np.array([[1.0, 0.0], [0.3, 0.2]])
    x1, s1, ok1 = simulate(model, np.log([0.5]), x0, TIMES, rtol=1e-9)
    x2, s2, ok2 = simulate(model, np.log([0.5]), x0, TIMES, rtol=1e-9, solver="scipy")
    assert ok1 and ok2
    # exact: √A = √A0 − k t / 2 (A is not used up by t = 1)
    a_exact = (np.sqrt(x0[:, :1]) - 0.5 * TIMES / 2) ** 2
    np.testing.assert_allclose(x1[..., 0], a_exact, atol=1e-6)
    np.testing.assert_allclose(x1, x2, atol=1e-6)
    np.testing.assert_allclose(s1, s2, atol=1e-4)


def test_a_sample_past_its_step_limit_fails_and_reports_it(monkeypatch):
    """The kernel returns FAILED_STEPS; simulate() then reports ok False with NaN states."""
    model = _chain_model()
    A, net = model._reactants_c, model._net_c
    out = np.full((TIMES.size, 1, 3), np.nan)
    args = (np.array([1.0, 0.0, 0.0]), np.array([1.0, 1e4]), A, net, False,
            np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 3)), TIMES, 1e-7,
            np.full(3, 1e-12))
    status, steps = integrate_sample(*args, 10, out)
    assert status == FAILED_STEPS and steps == 11
    status, steps = integrate_sample(*args, 100_000, out)
    assert status == SUCCESS and steps > 10
    monkeypatch.setattr(trajectory_fit, "MAX_STEPS", 10)
    x, _, ok = simulate(model, np.log([1.0, 1e4]), np.array([[1.0, 0.0, 0.0]]), TIMES)
    assert not ok and np.isnan(x[0, -1]).all()
