"""The stiff well-mixed ODE engine against closed forms, conservation laws and the reference."""

import numpy as np
import pytest

from rdlab.chemistry import (
    ReactionNetwork,
    brusselator_network,
    gray_scott_network,
    kitchen_sink_network,
)
from rdlab.errors import ParameterError, SimulationError
from rdlab.simulate import ode, reference
from rdlab.system import FlowNoise, Grid, System


@pytest.mark.parametrize("method", ode.METHODS)
def test_first_order_decay_is_exponential(method):
    net = ReactionNetwork.from_text(["A -> B : 1.0"])
    k = np.array([0.5, 1.3, 4.0])
    s = System.build(net, rates=k[:, None])
    t = np.linspace(0.0, 2.0, 11)
    X, dX = ode.solve(s, [1.0, 0.0], t, method=method, rtol=1e-10, atol=1e-14)
    assert X.shape == dX.shape == (11, 3, 2)
    exact = np.exp(-np.outer(t, k))
    np.testing.assert_allclose(X[:, :, 0], exact, rtol=1e-7)
    np.testing.assert_allclose(X[:, :, 1], 1 - exact, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(dX[:, :, 0], -k * X[:, :, 0], rtol=1e-14)


def test_reversible_reaction_reaches_equilibrium_ratio():
    kf, kr = np.array([2.0, 0.3]), np.array([0.5, 0.9])
    s = System.build(ReactionNetwork.from_text(["A <-> B"]), rates=np.stack([kf, kr], axis=1))
    X, dX = ode.solve(s, [[1.0, 0.0], [0.2, 0.7]], [0.0, 40.0])
    np.testing.assert_allclose(X[-1, :, 1] / X[-1, :, 0], kf / kr, rtol=1e-8)
    np.testing.assert_allclose(X[-1].sum(axis=1), [1.0, 0.9], rtol=1e-12)
    np.testing.assert_allclose(dX[-1], 0.0, atol=1e-9)


@pytest.mark.parametrize("method", ode.METHODS)
@pytest.mark.parametrize(
    "lines",
    [["2H + 2OH -> 2H2 + O2 : 3.0"],
     ["E + S <-> ES : 5.0, 1.0", "ES -> E + P : 2.0"]],
    ids=["hydrogen", "michaelis-menten"],
)
def test_closed_network_conserves_totals(lines, method, rng):
    net = ReactionNetwork.from_text(lines)
    W = net.conservation_laws()
    assert W.shape[0] >= 2
    s = System.build(net, rates=np.array(net.default_rates) * rng.uniform(0.5, 2, (3, 1)))
    x0 = rng.uniform(0.1, 1.0, size=(3, net.n_species))
    X, dX = ode.solve(s, x0, np.linspace(0, 20, 21), method=method)
    totals = np.einsum("ls,tbs->tbl", W, X)
    np.testing.assert_allclose(totals, np.broadcast_to(totals[0], totals.shape), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(np.einsum("ls,tbs->tbl", W, dX), 0.0, atol=1e-12)
    assert np.ptp(X[:, :, 0], axis=0).min() > 0.01  # something actually happened


@pytest.mark.parametrize("name", ["kitchen-sink", "brusselator", "gray-scott"])
def test_analytic_jacobian_matches_finite_differences(name, rng):
    net = {"kitchen-sink": lambda: kitchen_sink_network(4),
           "brusselator": brusselator_network, "gray-scott": gray_scott_network}[name]()
    rates = rng.uniform(0.1, 2.0, size=(2, net.n_reactions))
    s = System.build(net, rates=rates, flow=[0.04, 0.2], feed=rng.uniform(0, 1, net.n_species))
    x = rng.uniform(0.0, 1.5, size=(2, net.n_species))
    x[0, 0] = 0.0  # exact at zero concentrations too
    J = ode.jacobian(s, x)
    h = 1e-6
    fd = np.empty_like(J)
    for j in range(net.n_species):
        up, down = x.copy(), x.copy()
        up[:, j] += h
        down[:, j] -= h
        # the model is polynomial, so it extends to the slightly negative state
        fd[:, :, j] = (reference.rhs(s, up) - reference.rhs(s, down)) / (2 * h)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-6)


def test_returned_derivatives_are_the_model_rhs(rng):
    net = kitchen_sink_network(5)
    s = System.build(net, rates=rng.uniform(0, 0.1, (2, net.n_reactions)), flow=[0.03, 0.05],
                     feed=rng.uniform(0, 1, (2, 5)))
    X, dX = ode.solve(s, rng.uniform(0, 1, (2, 5)), np.linspace(0, 30, 7))
    for t in range(X.shape[0]):
        np.testing.assert_allclose(dX[t], reference.rhs(s, X[t]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ode.rhs(s, X[-1]), dX[-1], rtol=1e-13, atol=1e-16)


def test_gray_scott_reactor_relaxes_to_the_trivial_state():
    s = System.build(gray_scott_network(0.06), flow=[0.02, 0.04, 0.06], feed=[1.0, 0.0])
    X, dX = ode.solve(s, [0.5, 0.02], [0.0, 1000.0])
    np.testing.assert_allclose(X[-1], [[1.0, 0.0]] * 3, atol=1e-8)
    np.testing.assert_allclose(dX[-1], 0.0, atol=1e-9)


def test_brusselator_spirals_into_its_fixed_point():
    a, b = 1.0, 1.5  # stable: b < 1 + a²
    s = System.build(brusselator_network(a, b))
    X, _ = ode.solve(s, [0.5, 0.5], [0.0, 200.0], method="BDF")
    np.testing.assert_allclose(X[-1, 0], [a, b / a], rtol=1e-7)


def test_forward_euler_converges_to_the_ode_solution_at_order_one():
    s = System.build(brusselator_network(1.0, 2.5))
    x0 = np.array([[1.2, 0.8]])
    T = 2.0
    exact, _ = ode.solve(s, x0, [T], rtol=1e-12, atol=1e-14)
    dts = [0.02, 0.01, 0.005, 0.0025]
    errors = []
    for dt in dts:
        n = round(T / dt)
        out = reference.run(s, x0, dt, n, [n])
        errors.append(np.abs(out[-1] - exact[-1]).max())
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)
    assert errors[-1] < 1e-2


def test_duplicate_and_zero_times():
    s = System.build(ReactionNetwork.from_text(["A -> B : 1.0"]))
    X, dX = ode.solve(s, [1.0, 0.0], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(X[0, 0], [1.0, 0.0])
    np.testing.assert_array_equal(X[1], X[2])
    X0, _ = ode.solve(s, [1.0, 0.0], [0.0, 0.0])
    np.testing.assert_array_equal(X0, [[[1.0, 0.0]], [[1.0, 0.0]]])


def test_bad_input_is_named():
    net = ReactionNetwork.from_text(["A -> B : 1.0"])
    s = System.build(net)
    x0 = [1.0, 0.0]
    with pytest.raises(ParameterError, match="sorted"):
        ode.solve(s, x0, [0.0, 2.0, 1.0])
    with pytest.raises(ParameterError, match="negative"):
        ode.solve(s, x0, [-1.0, 1.0])
    with pytest.raises(ParameterError, match="nan"):
        ode.solve(s, x0, [0.0, np.nan])
    with pytest.raises(ParameterError, match="non-empty"):
        ode.solve(s, x0, [])
    with pytest.raises(ParameterError, match="'RK45'"):
        ode.solve(s, x0, [1.0], method="RK45")
    with pytest.raises(ParameterError, match="rtol"):
        ode.solve(s, x0, [1.0], rtol=-1.0)
    with pytest.raises(ParameterError, match="finite"):
        ode.solve(s, [np.inf, 0.0], [1.0])
    gridded = System.build(net, grid=Grid(8, 8))
    with pytest.raises(ParameterError, match="8×8 grid"):
        ode.solve(gridded, np.ones((1, 2, 8, 8)), [1.0])
    with pytest.raises(ParameterError, match="noise"):
        ode.solve(System.build(net, noise=FlowNoise(0.1)), x0, [1.0])


@pytest.mark.parametrize("method", ode.METHODS)
def test_solver_failure_names_the_sample(method):
    # dA/dt = k A²: blows up at t = 1/(k A0) — 1.0 for sample 0, 0.1 for sample 1
    s = System.build(ReactionNetwork.from_text(["2A -> 3A : 1.0"]), rates=[[0.5], [10.0]])
    with pytest.raises(SimulationError, match="sample 1"):
        ode.solve(s, [1.0], [0.0, 0.5], method=method)


def test_progress_counts_samples():
    s = System.build(ReactionNetwork.from_text(["A -> B : 1.0"]), rates=[[1.0], [2.0], [3.0]])
    ticks = []
    ode.solve(s, [1.0, 0.0], [1.0], progress=ticks.append)
    assert ticks == [1, 1, 1]
