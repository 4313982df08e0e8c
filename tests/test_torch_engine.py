"""The torch model and the torch engine against the NumPy reference, and their gradients.

The torch definition of the model (rdlab.simulate.torch_model) and the engine that steps it
(rdlab.simulate.torch_engine), against the NumPy reference (the definition).
"""

import numpy as np
import pytest
import torch

from rdlab.chemistry import (
    ReactionNetwork,
    brusselator_network,
    gray_scott_network,
    kitchen_sink_network,
)
from rdlab.chemistry.kinetics import mass_action_jacobian
from rdlab.errors import ParameterError, SimulationError, StabilityError
from rdlab.simulate import flow_noise, reference
from rdlab.simulate import torch_engine as te
from rdlab.simulate import torch_model as tm
from rdlab.smoothing import smooth_periodic
from rdlab.system import FlowNoise, Grid, System

NETWORKS = {
    "gray-scott": gray_scott_network,
    "kitchen-sink": lambda: kitchen_sink_network(5),
    "brusselator": brusselator_network,
}


def make_system(name, rng, grid=None, noise=None, batch=2):
    """Return a batch of samples with differing rates, diffusion, flow and feed."""
    net = NETWORKS[name]()
    base = np.array(net.default_rates if name != "kitchen-sink"
                    else [0.05] * net.n_reactions, dtype=float)
    rates = base * rng.uniform(0.7, 1.3, size=(batch, net.n_reactions))
    diffusion = rng.uniform(0.05, 0.2, size=(batch, net.n_species))
    flow = rng.uniform(0.02, 0.06, size=batch)
    feed = rng.uniform(0.0, 1.0, size=(batch, net.n_species))
    return System.build(net, rates, diffusion, flow, feed, grid=grid, noise=noise)


def make_state(system, rng, zeros=False):
    """Return a uniform random state of ``system`` (30 % exact zeros when ``zeros``)."""
    x = rng.uniform(0.0, 1.0, size=system.state_shape())
    if zeros:
        x[rng.uniform(size=x.shape) < 0.3] = 0.0
    return x


GRIDS = [Grid(6, 7, dx=0.8, stencil="5-point"), Grid(7, 5, dx=1.3, stencil="9-point"), None]
GRID_IDS = ["5-point", "9-point", "well-mixed"]


@pytest.mark.parametrize("grid", GRIDS, ids=GRID_IDS)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_rhs_matches_reference(name, grid, rng):
    """Check the torch right-hand side against the NumPy reference (grids, well mixed)."""
    s = make_system(name, rng, grid)
    x = make_state(s, rng, zeros=True)
    expected = reference.rhs(s, x)
    scale = np.abs(expected).max()
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        net = tm.NetworkTensors.from_system(s, dtype)
        params = tm.TorchParameters.from_system(s, dtype)
        got = tm.rhs(net, params, torch.tensor(x, dtype=dtype)).double().numpy()
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("stencil", ["5-point", "9-point"])
@pytest.mark.parametrize("dx", [1.0, 0.7])
def test_laplacian_matches_reference(stencil, dx, rng):
    """Check the periodic Laplacian against the reference for each stencil and spacing."""
    field = rng.uniform(size=(2, 3, 6, 7))
    got = tm.periodic_laplacian(torch.tensor(field), stencil, dx).numpy()
    np.testing.assert_allclose(got, reference.laplacian(field, stencil, dx), rtol=1e-13,
                               atol=1e-13)
    with pytest.raises(ParameterError, match="unknown stencil"):
        tm.periodic_laplacian(torch.tensor(field), "7-point")


def test_euler_step_clip_is_the_reference_step_clipped(rng):
    """Check the clipped Euler step is the reference step clipped to ``[0, c_max]``."""
    s = make_system("kitchen-sink", rng, Grid(5, 6))
    x = make_state(s, rng) * 4.0
    net, params = tm.NetworkTensors.from_system(s), tm.TorchParameters.from_system(s)
    want = reference.euler_step(s, x, 0.5)
    assert want.min() < 0 < 1.2 < want.max()  # both bounds act
    got = tm.euler_step(net, params, torch.tensor(x), 0.5, c_max=1.2).numpy()
    np.testing.assert_allclose(got, np.clip(want, 0.0, 1.2), rtol=1e-12, atol=1e-13)
    plain = tm.euler_step(net, params, torch.tensor(x), 0.5).numpy()
    np.testing.assert_allclose(plain, want, rtol=1e-12, atol=1e-13)


def test_the_engine_re_exports_the_one_definition():
    """Check the engine's model names are torch_model's objects, not copies."""
    for name in ("NetworkTensors", "TorchParameters", "euler_step", "flow_field", "laplacian",
                 "raw_noise", "reaction_rates", "rhs", "rollout", "smooth_periodic",
                 "torch_dtype"):
        assert getattr(te, name) is getattr(tm, name)


def test_reaction_rates_are_the_reference_rates_exactly(rng):
    """Check the mass-action rates equal the reference's bit for bit."""
    s = make_system("kitchen-sink", rng, Grid(4, 5))
    x = make_state(s, rng, zeros=True)
    net = tm.NetworkTensors.from_system(s)
    got = tm.reaction_rates(net, torch.tensor(s.rates), torch.tensor(x)).numpy()
    from rdlab.chemistry.kinetics import mass_action_rates

    np.testing.assert_array_equal(got, mass_action_rates(s.network.reactant_matrix, x, s.rates))


def test_zero_order_only_network():
    """Check a network of zero-order reactions only."""
    net = ReactionNetwork.from_text(["0 -> A : 0.5"])
    s = System.build(net, rates=[[0.5], [2.0]], flow=0.1, feed=[1.0])
    x = np.array([[0.2], [0.0]])
    got = tm.rhs(tm.NetworkTensors.from_system(s), tm.TorchParameters.from_system(s),
                 torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, reference.rhs(s, x), rtol=1e-15)


@pytest.mark.parametrize("grid", GRIDS, ids=GRID_IDS)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_run_matches_reference(name, grid, rng):
    """Check the engine's run against the reference in float64 and float32."""
    s = make_system(name, rng, grid)
    x = make_state(s, rng)
    steps = [0, 3, 20]
    expected = reference.run(s, x, 0.1, 20, steps)
    scale = np.abs(expected).max()
    got = te.run(s, x, 0.1, 20, steps)
    assert got.shape == (3, *x.shape) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * scale)
    got32 = te.run(s, x, 0.1, 20, steps, dtype=np.float32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, expected, rtol=1e-5, atol=1e-5 * scale)


def test_rollout_matches_reference(rng):
    """Check the differentiable roll-out's snapshots against the reference."""
    s = make_system("gray-scott", rng, Grid(8, 8, stencil="9-point"))
    x = make_state(s, rng)
    net = tm.NetworkTensors.from_system(s)
    params = tm.TorchParameters.from_system(s)
    out = tm.rollout(net, params, torch.tensor(x), 0.2, 15, [0, 7, 15])
    np.testing.assert_allclose(out.numpy(), reference.run(s, x, 0.2, 15, [0, 7, 15]),
                               rtol=1e-12, atol=1e-14)
    last = tm.rollout(net, params, torch.tensor(x), 0.2, 15)
    assert last.shape == (1, *x.shape)
    np.testing.assert_array_equal(last[0].numpy(), out[-1].numpy())


# ---------------------------------------------------------------------------- flow noise
@pytest.mark.parametrize("sigma", [0.0, 0.7, 2.0, 4.0])  # 4.0: window wider than the grid
@pytest.mark.parametrize("per_species", [False, True])
def test_flow_field_matches_numpy(sigma, per_species, rng):
    """Check the noisy flow field and its smoothing against the NumPy ones."""
    noise = FlowNoise(amplitude=0.6, sigma=sigma, per_species=per_species)
    flow = np.array([0.03, 0.5])
    raw = flow_noise.raw_noise(rng, noise, (2, 3, 9, 11))
    expected = flow_noise.flow_field(flow, noise, raw)
    got = tm.flow_field(torch.tensor(flow), noise, torch.tensor(raw)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    field = rng.uniform(size=(2, 1, 6, 13))
    np.testing.assert_allclose(tm.smooth_periodic(torch.tensor(field), sigma).numpy(),
                               smooth_periodic(field, sigma), rtol=1e-12, atol=1e-15)


def test_raw_noise_shape_range_and_seeding():
    """Check the raw noise's shape, range and seeding."""
    noise = FlowNoise(amplitude=0.3, sigma=1.0)
    g = torch.Generator().manual_seed(5)
    a = tm.raw_noise(g, noise, (3, 4, 16, 16))
    assert a.shape == (3, 1, 16, 16) and a.dtype == torch.float64
    assert -0.3 <= float(a.min()) < -0.25 and 0.25 < float(a.max()) <= 0.3
    b = tm.raw_noise(torch.Generator().manual_seed(5), noise, (3, 4, 16, 16))
    assert torch.equal(a, b)
    per = tm.raw_noise(g, FlowNoise(0.3, 1.0, per_species=True), (3, 4, 16, 16))
    assert per.shape == (3, 4, 16, 16)


def test_noisy_rollout_matches_reference_given_the_same_draws(rng):
    """Check a noisy roll-out against the reference given the same draws."""
    noise = FlowNoise(amplitude=0.05, sigma=1.5)
    s = make_system("gray-scott", rng, Grid(8, 9, stencil="5-point"), noise=noise)
    x = make_state(s, rng)
    n = 12
    draws = [flow_noise.raw_noise(rng, noise, x.shape) for _ in range(n)]
    expected = reference.run(s, x, 0.2, n, [0, 5, n],
                             flow_fields=lambda k: flow_noise.flow_field(s.flow, noise, draws[k]))
    out = tm.rollout(tm.NetworkTensors.from_system(s), tm.TorchParameters.from_system(s),
                     torch.tensor(x), 0.2, n, [0, 5, n], noise=noise,
                     raw_noise_fn=lambda k: draws[k])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_noisy_run_is_seeded(rng):
    """Check a noisy run is reproducible by its seed and differs by seed."""
    s = make_system("gray-scott", rng, Grid(8, 8), noise=FlowNoise(0.05, 1.0))
    x = make_state(s, rng)
    a = te.run(s, x, 0.2, 10, [10], seed=3)
    b = te.run(s, x, 0.2, 10, [10], seed=3)
    c = te.run(s, x, 0.2, 10, [10], seed=4)
    quiet = te.run(System.build(s.network, s.rates, s.diffusion, s.flow, s.feed, s.grid), x,
                   0.2, 10, [10])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, quiet)


# ---------------------------------------------------------------------------- gradients
def _loss_fn(net, s, n_steps, dt, noise=None, draws=None, checkpoint_every=None):
    weights = torch.linspace(0.5, 1.5, int(np.prod(s.state_shape())), dtype=torch.float64)
    weights = weights.reshape(s.state_shape())

    def loss(rates, diffusion, flow, feed, x0):
        params = tm.TorchParameters(rates, diffusion, flow, feed)
        out = tm.rollout(net, params, x0, dt, n_steps, noise=noise,
                         raw_noise_fn=None if draws is None else (lambda k: draws[k]),
                         checkpoint_every=checkpoint_every)
        return (weights * out[-1] ** 2).sum()

    return loss


def _inputs(s, x):
    p = tm.TorchParameters.from_system(s, requires_grad=True)
    return (*p.tensors(), torch.tensor(x, requires_grad=True))


@pytest.mark.parametrize(
    ("name", "grid"),
    [("gray-scott", Grid(4, 3, dx=0.9, stencil="9-point")),
     ("brusselator", Grid(3, 4, stencil="5-point")),
     ("kitchen-sink", None)],
    ids=["gray-scott-9pt", "brusselator-5pt", "kitchen-sink-well-mixed"],
)
def test_gradients_match_finite_differences(name, grid, rng):
    """Check gradients of a roll-out against finite differences (gradcheck)."""
    s = make_system(name, rng, grid)
    x = make_state(s, rng, zeros=True)  # exact zeros: products must stay differentiable
    assert (x == 0).any()
    loss = _loss_fn(tm.NetworkTensors.from_system(s), s, n_steps=10, dt=0.1)
    assert torch.autograd.gradcheck(loss, _inputs(s, x), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradient_at_zero_concentration_is_the_analytic_jacobian(rng):
    """Check the state Jacobian at zero concentrations is the analytic one."""
    s = make_system("kitchen-sink", rng)
    x = make_state(s, rng)
    x[0, :2] = 0.0
    x[1, 3] = 0.0
    net = tm.NetworkTensors.from_system(s)
    params = tm.TorchParameters.from_system(s)

    def f(state):
        return tm.rhs(net, params, state)

    J = torch.autograd.functional.jacobian(f, torch.tensor(x))  # (B, S, B, S)
    J = torch.stack([J[b, :, b] for b in range(s.batch_size)]).numpy()
    dv = mass_action_jacobian(s.network.reactant_matrix, x, s.rates)
    expected = (np.einsum("sr,brj->bsj", s.network.stoichiometry, dv)
                - s.flow[:, None, None] * np.eye(s.n_species))
    assert np.all(np.isfinite(J))
    np.testing.assert_allclose(J, expected, rtol=1e-12, atol=1e-14)


def test_gradients_through_noisy_flow(rng):
    """Check gradients through the noisy flow against finite differences."""
    noise = FlowNoise(amplitude=0.01, sigma=1.0)
    s = make_system("gray-scott", rng, Grid(3, 4), noise=noise)
    x = make_state(s, rng)
    draws = [flow_noise.raw_noise(rng, noise, x.shape) for _ in range(6)]
    loss = _loss_fn(tm.NetworkTensors.from_system(s), s, 6, 0.1, noise, draws)
    assert torch.autograd.gradcheck(loss, _inputs(s, x), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_checkpointing_gives_the_same_values_and_gradients(rng):
    """Check checkpointed roll-outs give the same values and gradients."""
    noise = FlowNoise(amplitude=0.01, sigma=1.0)
    s = make_system("gray-scott", rng, Grid(5, 6), noise=noise)
    x = make_state(s, rng)
    draws = [flow_noise.raw_noise(rng, noise, x.shape) for _ in range(25)]
    net = tm.NetworkTensors.from_system(s)
    results = []
    for every in (None, 4, 100):
        inputs = _inputs(s, x)
        value = _loss_fn(net, s, 25, 0.1, noise, draws, checkpoint_every=every)(*inputs)
        grads = torch.autograd.grad(value, inputs)
        results.append((value.item(), [g.numpy() for g in grads]))
    for value, grads in results[1:]:
        assert value == pytest.approx(results[0][0], rel=1e-14)
        for g, g0 in zip(grads, results[0][1]):
            np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-15)


def test_checkpointed_rollout_with_generator_replays_its_draws(rng):
    """Check checkpointing replays a generator's noise draws."""
    noise = FlowNoise(amplitude=0.01, sigma=1.0)
    s = make_system("gray-scott", rng, Grid(5, 5), noise=noise)
    x = make_state(s, rng)
    net = tm.NetworkTensors.from_system(s)
    grads = []
    for every in (None, 3):
        params = tm.TorchParameters.from_system(s, requires_grad=["flow", "rates"])
        out = tm.rollout(net, params, torch.tensor(x), 0.1, 10, noise=noise,
                         generator=torch.Generator().manual_seed(9), checkpoint_every=every)
        grads.append([g.numpy() for g in torch.autograd.grad(out.sum(),
                                                             [params.flow, params.rates])])
    for g, g0 in zip(grads[1], grads[0]):
        np.testing.assert_allclose(g, g0, rtol=1e-12)


def test_parameters_container(rng):
    """Check the parameter container's tracking, dtype and copies."""
    s = make_system("gray-scott", rng, Grid(4, 4))
    p = tm.TorchParameters.from_system(s, torch.float32, requires_grad=["rates", "feed"])
    assert p.rates.requires_grad and p.feed.requires_grad
    assert not p.flow.requires_grad and not p.diffusion.requires_grad
    assert p.rates.dtype == torch.float32 and p.batch_size == 2
    assert p.to(dtype=torch.float64).flow.dtype == torch.float64
    assert not p.detach().rates.requires_grad
    with pytest.raises(ParameterError, match="unknown parameters"):
        tm.TorchParameters.from_system(s, requires_grad=["speed"])


# ---------------------------------------------------------------------------- run guards
def test_run_names_the_blown_up_sample():
    """Check a blow-up is reported naming the sample and step."""
    s = System.build(gray_scott_network(), rates=[[1.0, 0.06], [1e7, 0.06]],
                     diffusion=[0.2, 0.1], flow=0.04, feed=[1, 0], grid=Grid(8, 8))
    x0 = np.full((2, 2, 8, 8), 0.5)
    with pytest.raises(SimulationError, match="sample 1 at step"):
        te.run(s, x0, 0.25, 200, [200], check_every=8)


def test_run_reports_progress_and_checks_inputs(rng):
    """Check progress reports and the refusal of bad inputs."""
    s = make_system("gray-scott", rng, Grid(6, 6))
    x = make_state(s, rng)
    ticks = []
    te.run(s, x, 0.1, 50, [0, 10, 50], check_every=16, progress=ticks.append)
    assert sum(ticks) == 50 and len(ticks) > 1
    one = te.run(s, x[0], 0.1, 5, [5])  # one sample broadcast over the batch
    assert one.shape == (1, 2, 2, 6, 6)
    with pytest.raises(ParameterError, match="outside"):
        te.run(s, x, 0.1, 5, [0, 6])
    with pytest.raises(ParameterError, match="whole numbers"):
        te.run(s, x, 0.1, 5, [0.5])
    with pytest.raises(ParameterError, match="expected"):
        te.run(s, x[:, :1], 0.1, 5, [5])
    with pytest.raises(ParameterError, match="finite"):
        te.run(s, -x, 0.1, 5, [5])
    with pytest.raises(StabilityError):
        te.run(s, x, 100.0, 5, [5])
    with pytest.raises(ParameterError, match="float32 or float64"):
        te.run(s, x, 0.1, 5, [5], dtype=np.int32)


def test_noise_on_a_well_mixed_system_is_refused(rng):
    """Check flow noise on a well-mixed system is refused."""
    with pytest.raises(ParameterError, match="needs a grid"):
        make_system("gray-scott", rng, None, noise=FlowNoise(0.1, 1.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_matches_cpu(rng):
    """Check CUDA runs and gradients against the CPU ones."""
    s = make_system("kitchen-sink", rng, Grid(16, 16), noise=None)
    x = make_state(s, rng)
    cpu = te.run(s, x, 0.1, 30, [0, 30])
    gpu = te.run(s, x, 0.1, 30, [0, 30], device="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-12, atol=1e-14)
    gpu32 = te.run(s, x, 0.1, 30, [30], device="cuda", dtype=np.float32)
    np.testing.assert_allclose(gpu32[0], cpu[-1], rtol=1e-5, atol=1e-5)
    noisy = System.build(s.network, s.rates, s.diffusion, s.flow, s.feed, s.grid,
                         FlowNoise(0.01, 2.0))
    a = te.run(noisy, x, 0.1, 10, [10], device="cuda", seed=1)
    b = te.run(noisy, x, 0.1, 10, [10], device="cuda", seed=1)
    np.testing.assert_array_equal(a, b)
    # gradients on the GPU agree with those on the CPU
    grads = []
    for device in ("cpu", "cuda"):
        net = tm.NetworkTensors.from_system(s, device=device)
        params = tm.TorchParameters.from_system(s, device=device, requires_grad=True)
        x0 = torch.tensor(x, device=device, requires_grad=True)
        out = tm.rollout(net, params, x0, 0.1, 10, checkpoint_every=4)
        grads.append([g.cpu().numpy() for g in torch.autograd.grad(
            (out**2).sum(), [*params.tensors(), x0])])
    for g, g0 in zip(grads[1], grads[0]):
        np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-12)
