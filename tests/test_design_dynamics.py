"""Design dynamics and parameters: the fused step against the model's one definition.

The fused step against the one differentiable definition of the model
(rdlab.simulate.torch_model), values and gradients; closed-form diffusion and drive, the
bounds and the paper's initialisation (appendix D.1).
"""

import copy

import numpy as np
import pytest
import torch

from rdlab.chemistry import (
    ReactionNetwork,
    brusselator_network,
    dense_gs_network,
    dense_network,
    kitchen_sink_network,
)
from rdlab.chemistry.presets import preset_network
from rdlab.design.config import NETWORKS as FAMILIES
from rdlab.design.dynamics import FusedStep, MonomialPlan, noisy_flow, rollout
from rdlab.design.parameters import DesignParameters, autocatalytic_reactions
from rdlab.errors import ParameterError, StabilityError
from rdlab.simulate import torch_model as tm
from rdlab.system import STENCILS, FlowNoise, Grid, stencil_eigenvalue

F64 = torch.float64

NETWORKS = {
    "kitchen-sink": lambda: kitchen_sink_network(4),
    "dense": lambda: dense_network(3),
    "dense-gs": lambda: dense_gs_network(5),
    "brusselator": brusselator_network,  # zero-order and 2X + Y reactions
}


def random_parameters(network, seed=0, dtype=F64, k_max=0.6) -> DesignParameters:
    """Return design parameters of ``network`` drawn uniformly (rates up to ``k_max``)."""
    g = np.random.default_rng(seed)
    return DesignParameters(network, g.uniform(0.0, k_max, network.n_reactions),
                            g.uniform(0.05, 0.2, network.n_species), g.uniform(0.02, 0.1),
                            g.uniform(0.0, 1.0, network.n_species), dtype=dtype)


def random_state(shape, seed=1, high=1.5, dtype=F64) -> torch.Tensor:
    """Return a uniform random state in ``[0, high)`` of ``shape``."""
    g = torch.Generator().manual_seed(seed)
    return high * torch.rand(shape, generator=g, dtype=dtype)


def random_fields(n, shape, seed=2, dtype=F64) -> list[torch.Tensor]:
    """Return ``n`` uniform random flow fields in ``[0, 0.3)`` of ``shape``."""
    g = torch.Generator().manual_seed(seed)
    return [0.3 * torch.rand(shape, generator=g, dtype=dtype) for _ in range(n)]


def engine_states(p, X0, n_steps, dt=1.0, flow_fields=None, clip=True, c_max=10.0):
    """Return the definition's states: torch_model's step (plain autograd), shared loop."""
    net = tm.NetworkTensors.from_network(p.network, Grid(*X0.shape[2:]), X0.dtype)
    step = tm.model_step(net, p.as_torch_parameters(X0.shape[0]), dt, c_max if clip else None)
    fields = None if flow_fields is None else flow_fields.__getitem__
    return [X0, *(x for x, _ in tm.euler_iterates(step, X0, n_steps, fields))]


def _scale(t: torch.Tensor) -> float:
    return float(t.detach().abs().max())


def with_tensors(p: DesignParameters, **values) -> DesignParameters:
    """Return a copy of ``p`` whose groups are the given (differentiable) tensors."""
    q = copy.deepcopy(p)
    for name, v in values.items():
        delattr(q, name)
        setattr(q, name, v)
    return q


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("clip", [False, True])
def test_rollout_matches_the_definition(name, clip):
    """Check the fused roll-out's states against the definition's, with and without clip."""
    p = random_parameters(NETWORKS[name](), k_max=0.6 if clip else 0.2)
    X0 = random_state((2, p.n_species, 5, 7), high=1.5 if clip else 1.0)
    traj = rollout(p, X0, 12, 0.5, clip=clip, c_max=1.3)
    expected = engine_states(p, X0, 12, 0.5, clip=clip, c_max=1.3)
    assert traj.n_steps == 12 and len(traj.states) == 13 and traj.states[0] is X0
    for got, want in zip(traj.states, expected):
        assert bool(torch.isfinite(want).all())
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * _scale(want))
    if clip:  # the clip was active
        stacked = torch.stack(traj.states[1:])
        assert bool((stacked == 1.3).any())
        assert bool((stacked == 0).any()) or name == "brusselator"


@pytest.mark.parametrize("per_species", [False, True])
def test_noisy_flow_fields_match_the_definition(per_species):
    """Check given flow fields (list or callable) drive the fused step as the definition."""
    p = random_parameters(kitchen_sink_network(4))
    X0 = random_state((2, 4, 6, 5))
    fields = random_fields(8, (2, 4 if per_species else 1, 6, 5))
    traj = rollout(p, X0, 8, flow_fields=fields)
    expected = engine_states(p, X0, 8, flow_fields=fields)
    for got, want in zip(traj.states, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * _scale(want))
    assert traj.flow_fields is not None and len(traj.flow_fields) == 8
    # a callable gives the same as the list
    again = rollout(p, X0, 8, flow_fields=lambda t: fields[t])
    torch.testing.assert_close(again.states[-1], traj.states[-1], rtol=0, atol=0)


def test_noisy_flow_helper_is_the_definitions_flow_field():
    """Check noisy_flow draws the definition's noisy flow field from the generator."""
    p = random_parameters(dense_gs_network(3))
    noise = FlowNoise(amplitude=0.8, sigma=1.5)
    field = noisy_flow(p, noise, (2, 3, 8, 8), torch.Generator().manual_seed(3))
    ff = field(0)
    raw = tm.raw_noise(torch.Generator().manual_seed(3), noise, (2, 3, 8, 8), F64)
    torch.testing.assert_close(ff, tm.flow_field(p.flow.expand(2), noise, raw))
    assert ff.shape == (2, 1, 8, 8) and ff.requires_grad


def test_float32_close_to_float64():
    """Check a float32 roll-out stays within 1e-4 of the float64 one."""
    p64 = random_parameters(kitchen_sink_network(5))
    p32 = copy.deepcopy(p64).to(torch.float32)
    X0 = random_state((1, 5, 8, 8), high=1.0)
    a = rollout(p64, X0, 10).states[-1]
    b = rollout(p32, X0.float(), 10).states[-1]
    torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-5)


def test_fused_step_is_the_definitions_step_for_each_stencil():
    """Check one fused step equals torch_model.euler_step for each stencil, clip and field."""
    p = random_parameters(dense_network(3))
    X0 = random_state((1, 3, 4, 6))
    ff = random_fields(1, (1, 1, 4, 6))[0]
    for stencil in STENCILS:
        net = tm.NetworkTensors.from_network(p.network, Grid(4, 6, stencil=stencil), F64)
        tp = p.as_torch_parameters(1)
        for c_max, field in ((None, None), (0.9, ff)):
            fused = FusedStep(p, 0.5, X0.shape, c_max=c_max, stencil=stencil)
            torch.testing.assert_close(fused(X0, field),
                                       tm.euler_step(net, tp, X0, 0.5, field, c_max),
                                       rtol=1e-13, atol=1e-13)
        got = rollout(p, X0, 3, 0.5, stencil=stencil).states[-1]
        x = X0
        for _ in range(3):
            x = tm.euler_step(net, tp, x, 0.5).clamp(0, 10)
        torch.testing.assert_close(got, x, rtol=1e-12, atol=1e-13)


def test_threads_option_does_not_change_results():
    """Check the threads option and no_grad leave the values unchanged."""
    p = random_parameters(kitchen_sink_network(4))
    X0 = random_state((1, 4, 6, 6))
    ref = rollout(p, X0, 5, threads=None).states[-1]
    for threads in ("auto", 1, 2):
        torch.testing.assert_close(rollout(p, X0, 5, threads=threads).states[-1], ref,
                                   rtol=1e-14, atol=1e-14)
    tracked = rollout(p, X0, 5, c_max=0.8).states[-1]
    assert tracked.requires_grad
    with torch.no_grad():  # no clip mask kept, same values
        untracked = rollout(p, X0, 5, c_max=0.8).states[-1]
    assert not untracked.requires_grad
    torch.testing.assert_close(untracked, tracked.detach(), rtol=0, atol=0)
    with pytest.raises(ParameterError, match="threads"):
        rollout(p, X0, 1, threads=0)


# ---------------------------------------------------------------------------- closed forms
def test_pure_diffusion_of_a_fourier_mode_decays_by_the_stencil_symbol():
    """Check pure diffusion damps each Fourier mode by ``(1 + dt·D·λ)`` per step."""
    net = kitchen_sink_network(3)
    D = np.array([0.05, 0.12, 0.2])
    p = DesignParameters(net, np.zeros(net.n_reactions), D, 0.0, np.zeros(3), dtype=F64)
    ny, nx, dt, n = 8, 12, 0.9, 25
    modes = [(1, 2), (4, 6), (3, 1)]  # (4, 6) is the checkerboard: λ = −4
    y, x = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    X0 = np.empty((1, 3, ny, nx))
    expected = np.empty_like(X0)
    for s, (my, mx) in enumerate(modes):
        ky, kx = 2 * np.pi * my / ny, 2 * np.pi * mx / nx
        wave = np.cos(ky * y + kx * x)
        lam = stencil_eigenvalue("9-point", ky, kx)
        X0[0, s] = 1.0 + 0.5 * wave
        expected[0, s] = 1.0 + 0.5 * (1.0 + dt * D[s] * lam) ** n * wave
    got = rollout(p, torch.tensor(X0), n, dt).states[-1].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert abs(stencil_eigenvalue("9-point", np.pi, np.pi) + 4.0) < 1e-12


def test_uniform_state_relaxes_to_the_feed_by_the_flow():
    """Check a uniform state relaxes to the feed at the rate ``(1 − f·dt)`` per step."""
    net = dense_gs_network(3)
    feed = np.array([1.0, 0.25, 0.0625])
    p = DesignParameters(net, np.zeros(net.n_reactions), [0.1] * 3, 0.03, feed, dtype=F64)
    X0 = torch.full((1, 3, 4, 4), 2.0, dtype=F64)
    got = rollout(p, X0, 40, 2.0).states[-1][0, :, 0, 0].detach().numpy()
    np.testing.assert_allclose(got, feed + (2.0 - feed) * (1 - 0.03 * 2.0) ** 40, rtol=1e-13)


# ---------------------------------------------------------------------------- gradients
def _weighted_sum(states, seed=7):
    g = torch.Generator().manual_seed(seed)
    return sum((torch.randn(s.shape, generator=g, dtype=s.dtype) * s).sum() for s in states)


@pytest.mark.parametrize("name", ["kitchen-sink", "dense", "brusselator"])
@pytest.mark.parametrize("noisy", [False, True])
def test_gradients_match_autograd_through_the_definition(name, noisy):
    """Check gradients, also to the flow fields, against autograd through the definition."""
    p = random_parameters(NETWORKS[name]())
    X0 = random_state((2, p.n_species, 4, 5)).requires_grad_(True)
    fields = [f.requires_grad_(True) for f in random_fields(6, (2, 1, 4, 5))] if noisy else None
    inputs = [X0, *(getattr(p, n) for n in ("rates", "diffusion", "flow", "feed"))]
    inputs += fields or []
    ours = torch.autograd.grad(_weighted_sum(rollout(p, X0, 6, flow_fields=fields,
                                                     c_max=1.2).states), inputs,
                               allow_unused=True)
    ref = torch.autograd.grad(_weighted_sum(engine_states(p, X0, 6, flow_fields=fields,
                                                          c_max=1.2)), inputs,
                              allow_unused=True)
    if noisy:  # the flow enters only through the fields
        assert ours[3] is None and ref[3] is None
        ours, ref = ours[:3] + ours[4:], ref[:3] + ref[4:]
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * _scale(b))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("noisy", [False, True], ids=["flow", "noisy-flow"])
@pytest.mark.parametrize("clip", [False, True], ids=["no-clip", "clip"])
def test_fused_rollout_is_the_definition_values_and_gradients(family, noisy, clip):
    """Check design's fused roll-out against plain autograd through the one definition.

    torch_model.rollout (its step, its noisy flow, its clip), float64: every state and the
    gradients with respect to X0, rates, D, flow and feed; the noise of both comes from the
    same seed, so the flow's gradient runs through the noisy fields too.
    """
    p = random_parameters(preset_network(family, 4), seed=5, k_max=0.6 if clip else 0.3)
    X0 = random_state((2, 4, 5, 6), high=1.5 if clip else 1.0).requires_grad_(True)
    n, dt, c_max = 6, 0.8, 1.2
    noise = FlowNoise(amplitude=0.05, sigma=1.0) if noisy else None
    fields = noisy_flow(p, noise, X0.shape, torch.Generator().manual_seed(4)) if noisy else None
    ours = rollout(p, X0, n, dt, flow_fields=fields, clip=clip, c_max=c_max).states
    net = tm.NetworkTensors.from_network(p.network, Grid(5, 6), F64)
    ref = tm.rollout(net, p.as_torch_parameters(2), X0, dt, n, range(n + 1), noise=noise,
                     generator=torch.Generator().manual_seed(4) if noisy else None,
                     c_max=c_max if clip else None)
    for got, want in zip(ours, ref):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * _scale(want))
    if clip:  # the clip acted (both bounds): its zero gradients are part of the check
        assert bool((ref == c_max).any()) and bool((ref[1:] == 0).any())
    inputs = [X0, p.rates, p.diffusion, p.flow, p.feed]
    g_ours = torch.autograd.grad(_weighted_sum(ours), inputs)
    g_ref = torch.autograd.grad(_weighted_sum(list(ref)), inputs)
    for a, b in zip(g_ours, g_ref):
        assert float(b.abs().max()) > 0
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * _scale(b))


def test_gradients_with_one_sample_and_exact_zeros():
    """Check batch 1 (the matrix-product path) and states at exactly 0.

    There the mass-action partials must be the exact polynomials (no 1e-10 substitution,
    no NaN).
    """
    p = random_parameters(kitchen_sink_network(5), seed=3)
    X0 = random_state((1, 5, 5, 4))
    X0[X0 < 0.4] = 0.0
    X0.requires_grad_(True)
    inputs = [X0, p.rates, p.diffusion, p.flow, p.feed]
    ours = torch.autograd.grad(_weighted_sum(rollout(p, X0, 5).states), inputs)
    ref = torch.autograd.grad(_weighted_sum(engine_states(p, X0, 5)), inputs)
    for a, b in zip(ours, ref):
        assert bool(torch.isfinite(a).all())
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * _scale(b))


@pytest.mark.parametrize("batch", [1, 2])
def test_gradcheck(batch):
    """Check the analytic backward against finite differences (torch.autograd.gradcheck)."""
    p = random_parameters(kitchen_sink_network(3), seed=4)
    X0 = random_state((batch, 3, 3, 4), high=1.0).requires_grad_(True)
    fields = [f.requires_grad_(True) for f in random_fields(3, (batch, 1, 3, 4))]
    leaves = [getattr(p, n).detach().clone().requires_grad_(True)
              for n in ("rates", "diffusion", "flow", "feed")]

    def run(X0, rates, diffusion, flow, feed, *ffs):
        q = with_tensors(p, rates=rates, diffusion=diffusion, flow=flow, feed=feed)
        clean = torch.stack(rollout(q, X0, 3, c_max=0.9).states)
        noisy = torch.stack(rollout(q, X0, 3, flow_fields=list(ffs), clip=False).states)
        return clean, noisy

    assert torch.autograd.gradcheck(run, (X0, *leaves, *fields), eps=1e-6, atol=1e-8)


def test_fixed_groups_get_no_gradient():
    """Check fixed parameter groups receive no gradient."""
    p = random_parameters(dense_gs_network(3)).set_fixed(["flow", "rates"])
    X0 = random_state((1, 3, 4, 4))
    rollout(p, X0, 3).states[-1].sum().backward()
    assert p.rates.grad is None and p.flow.grad is None
    assert p.diffusion.grad is not None and p.feed.grad is not None


# ---------------------------------------------------------------------------- monomials
def test_monomial_plan_kitchen_sink_5():
    """Check the monomial plan's counts for the 5-species kitchen sink and a zero-order reaction."""
    plan = MonomialPlan.from_reactant_matrix(kitchen_sink_network(5).reactant_matrix)
    # 1, 5 species, 15 products X_i X_j, 10 X Y² and 4 Y³
    assert plan.n_monomials == 1 + 5 + 15 + 14
    assert [b - a for a, b, _, _ in plan.blocks] == [15, 14]
    net = brusselator_network()  # 0 -> X uses the constant slot
    plan = MonomialPlan.from_reactant_matrix(net.reactant_matrix)
    assert plan.reaction_monomial[0] == 0


# ---------------------------------------------------------------------------- input checks
def test_bad_inputs_are_refused():
    """Check bad states, steps, dt, flow fields and stencils are refused naming the value."""
    p = random_parameters(dense_gs_network(3))
    X0 = random_state((1, 3, 4, 4))
    with pytest.raises(ParameterError, match=r"expected \(batch, 3, y, x\)"):
        rollout(p, X0[:, :2], 2)
    with pytest.raises(ParameterError, match="float32"):
        rollout(p, X0.float(), 2)
    with pytest.raises(ParameterError, match="-1"):
        rollout(p, X0, -1)
    with pytest.raises(ParameterError, match="dt"):
        rollout(p, X0, 2, dt=0.0)
    with pytest.raises(StabilityError, match="0.5"):
        rollout(p, X0, 2, dt=4.0)
    with pytest.raises(ParameterError, match="2 flow fields for 3 steps"):
        rollout(p, X0, 3, flow_fields=random_fields(2, (1, 1, 4, 4)))
    with pytest.raises(ParameterError, match=r"\(1, 1, 5, 4\)"):
        rollout(p, X0, 1, flow_fields=random_fields(1, (1, 1, 5, 4)))
    with pytest.raises(ParameterError, match="stencil"):
        rollout(p, X0, 1, stencil="7-point")


# ---------------------------------------------------------------------------- parameters
def test_project_enforces_each_bound():
    """Check the projection enforces each parameter bound."""
    net = dense_gs_network(3)
    p = DesignParameters(net, np.linspace(-1, 1, net.n_reactions), [0.0, 0.1, 0.9], 5.0,
                         [-0.5, 0.2, 3.0], dtype=F64)
    p.project_()
    assert float(p.rates.detach().min()) == 0.0 and float(p.rates.detach().max()) == 1.0
    assert p.diffusion.tolist() == [0.05, 0.1, 0.2]
    assert p.flow.item() == 1.0
    assert p.feed.tolist() == [0.0, 0.2, 3.0]
    p.load_values({"flow": 0.0})
    assert p.project_().flow.item() == 0.01
    q = DesignParameters(net, np.ones(net.n_reactions), [0.3] * 3, 0.5, [1.0] * 3,
                         diffusion_bounds=(0.01, 0.25), flow_bounds=(0.02, 0.04)).project_()
    assert q.diffusion.tolist() == pytest.approx([0.25] * 3)
    assert q.flow.item() == pytest.approx(0.04)


def test_fixed_flow_and_groups():
    """Check fixed groups are not trainable and unknown group names are refused."""
    p = DesignParameters.initial(dense_gs_network(5), seed=1, fixed=("flow",), flow=0.03)
    assert p.fixed == ("flow",) and not p.flow.requires_grad and p.rates.requires_grad
    assert p.flow.item() == pytest.approx(0.03)
    assert [n for n, q in p.named_parameters() if q.requires_grad] == [
        "rates", "diffusion", "feed"]
    with pytest.raises(ParameterError, match="speed"):
        p.set_fixed(["speed"])


@pytest.mark.parametrize("build", [dense_gs_network, kitchen_sink_network])
def test_initial_reproduces_the_code_numbers(build):
    """Check the initialisation reproduces the public code's numbers (appendix D.1)."""
    net = build(5)
    p = DesignParameters.initial(net, seed=11)
    k = p.rates.detach().double().numpy()
    auto = np.arange(4)  # A + 2Y -> 3Y, Y = B..E
    others_auto = np.arange(4, 10)  # the other X + 2Y -> 3Y
    rest = np.arange(10, net.n_reactions)
    assert all(net.reactant_matrix[0, r] == 1 and net.product_matrix[r + 1, r] == 3
               for r in auto)
    np.testing.assert_allclose(k[auto], 1.0, atol=1e-4 + 1e-7)
    assert k[others_auto].min() >= 0.0 and k[others_auto].max() <= 1e-4 + 1e-7
    assert np.all(np.abs(k[rest] - 1e-3) <= 1e-4 + 1e-7)
    assert np.abs(k[rest] - 1e-3).max() > 5e-5  # the noise is there
    np.testing.assert_allclose(p.feed.detach().numpy(),
                               [1, .25, .0625, .015625, .00390625], rtol=1e-7)
    d = p.diffusion.detach().numpy()
    assert d.min() >= 0.1 and d.max() <= 0.2
    assert p.flow.item() == pytest.approx(0.03) and p.dtype == torch.float32
    same = DesignParameters.initial(net, seed=11)
    assert torch.equal(same.rates, p.rates)
    assert not torch.equal(DesignParameters.initial(net, seed=12).rates, p.rates)


def test_initial_paper_enumeration():
    """Check the initialisation of the paper's enumeration (eq. 17)."""
    net = dense_network(5)
    p = DesignParameters.initial(net, seed=0, dtype=F64)
    k = p.rates.detach().numpy()
    ones = np.flatnonzero(k == 1.0)
    assert len(ones) == 5
    chosen = {net.reaction_text(r, with_rate=False) for r in ones}
    assert chosen == {"2A + B -> 3A", "A + 2B -> 3B", "A + 2C -> 3C", "A + 2D -> 3D",
                      "A + 2E -> 3E"}
    others = np.delete(k, ones)
    assert np.all(np.abs(others - 1e-3) <= 1e-4)
    assert [len(r) for r in autocatalytic_reactions(net)] == [4] * 5
    np.testing.assert_allclose(p.feed.detach().numpy(), [4.0**-4] * 5)
    d = p.diffusion.detach().numpy()
    assert d.min() >= 0.05 and d.max() <= 0.2
    custom = DesignParameters.initial(net, seed=0, feed=[1, 0, 0, 0, 0], flow=0.05)
    assert custom.feed.tolist() == [1, 0, 0, 0, 0] and custom.flow.item() == pytest.approx(0.05)


def test_state_dict_description_and_value_round_trips(tmp_path):
    """Check state dict, description and value round trips."""
    p = DesignParameters.initial(kitchen_sink_network(4), seed=2, dtype=F64,
                                 diffusion_bounds=(0.06, 0.18), fixed=("feed",))
    torch.save(p.state_dict(), tmp_path / "theta.pt")
    q = DesignParameters.from_state_dict(p.network, torch.load(tmp_path / "theta.pt"))
    for name, v in p.clone_values().items():
        assert torch.equal(getattr(q, name), v)
    assert q.diffusion_bounds.tolist() == [0.06, 0.18] and q.dtype == F64
    d = p.describe()
    import json

    r = DesignParameters.from_description(json.loads(json.dumps(d)))
    assert r.network == p.network and r.fixed == ("feed",)
    for name, v in p.clone_values().items():
        assert torch.equal(getattr(r, name), v)
    snapshot = p.clone_values()
    p.load_values({"rates": torch.zeros(p.n_reactions), "diffusion": np.full(4, 0.1)})
    assert p.rates.abs().sum().item() == 0.0 and float(snapshot["rates"].abs().sum()) > 0
    p.load_values(snapshot)
    assert torch.equal(p.rates, snapshot["rates"])
    net = p.to_network()
    assert net.default_rates == tuple(snapshot["rates"].tolist())
    with pytest.raises(ParameterError, match=r"rates has shape \(3,\)"):
        p.load_values({"rates": [1.0, 2.0, 3.0]})


def test_bad_parameters_are_refused():
    """Check bad parameter shapes, values and bounds are refused."""
    net = ReactionNetwork.from_text(["A + 2B -> 3B", "B -> 0"])
    with pytest.raises(ParameterError, match=r"diffusion has shape \(3,\)"):
        DesignParameters(net, [1.0, 1.0], [0.1] * 3, 0.03, [1.0, 0.0])
    with pytest.raises(ParameterError, match="rates must be finite"):
        DesignParameters(net, [1.0, float("nan")], [0.1] * 2, 0.03, [1.0, 0.0])
    with pytest.raises(ParameterError, match="diffusion_bounds"):
        DesignParameters(net, [1.0, 1.0], [0.1] * 2, 0.03, [1.0, 0.0],
                         diffusion_bounds=(0.3, 0.1))
    # a generic network: its autocatalytic reaction at 1, feed 4^-N_ai
    p = DesignParameters.initial(net, seed=0, dtype=F64)
    assert p.rates[0].item() == 1.0 and p.feed.tolist() == [1.0, 0.25]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("noisy", [False, True])
def test_cuda_rollout_values_and_gradients_match_the_cpu(noisy):
    """The fused step and its hand-written backward on CUDA equal the CPU ones (float64)."""
    p = random_parameters(NETWORKS["kitchen-sink"]())
    X0 = random_state((2, p.n_species, 6, 5))
    fields = random_fields(6, (2, 1, 6, 5)) if noisy else None
    results = []
    for device in ("cpu", "cuda"):
        q = copy.deepcopy(p).to(device)
        x = X0.to(device).requires_grad_(True)
        ff = None if fields is None else [f.to(device) for f in fields]
        states = rollout(q, x, 6, flow_fields=ff, c_max=1.2).states
        g = torch.Generator().manual_seed(5)
        loss = sum((torch.randn(s.shape, generator=g, dtype=s.dtype).to(device) * s).sum()
                   for s in states)
        grads = torch.autograd.grad(loss, [x, q.rates, q.diffusion, q.feed])
        results.append([states[-1].detach().cpu(), *(t.cpu() for t in grads)])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * _scale(b))


# ---------------------------------------------------------------------------- bistable switch
def _switch(c: float, k1: float = 2.0, f: float = 0.2) -> DesignParameters:
    """Return the bistable switch A + 2B → 3B (k1), B → A (c − f), flow f, feed (1, 0).

    With A + B → 1 the well-mixed dB/dt = k1 B²(1 − B) − cB has the roots 0 and
    B± = (1 ± √(1 − 4c/k1))/2.
    """
    net = ReactionNetwork.from_text(["A + 2B -> 3B", "B -> A"])
    return DesignParameters(net, [k1, c - f], [0.05, 0.05], f, [1.0, 0.0], dtype=F64)


def _b_high(c: float, k1: float = 2.0) -> float:
    return (1 + np.sqrt(1 - 4 * c / k1)) / 2


def test_well_mixed_switch_settles_on_its_exact_steady_states():
    """Check a uniform state goes to B+ above the unstable root B−, below it to 0.

    c/k1 = 0.12: B− = 0.1394, B+ = 0.8606.
    """
    c = 0.24
    lo = (1 - np.sqrt(1 - 4 * c / 2.0)) / 2
    X0 = torch.zeros(2, 2, 4, 4, dtype=F64)
    X0[0, 1], X0[1, 1] = lo + 0.02, lo - 0.02
    X0[:, 0] = 1 - X0[:, 1]
    with torch.no_grad():
        end = rollout(_switch(c), X0, 400, 0.5).states[-1][:, :, 0, 0].numpy()
    np.testing.assert_allclose(end[0], [1 - _b_high(c), _b_high(c)], atol=1e-9)
    np.testing.assert_allclose(end[1], [1.0, 0.0], atol=1e-9)


@pytest.mark.parametrize(("c", "cells_on_after"), [(0.30, 32), (0.42, 16), (0.44, 16),
                                                   (0.50, 0)])
def test_fronts_of_the_switch_are_pinned_on_the_grid_near_the_maxwell_point(c, cells_on_after):
    """Check the propagation failure of a discrete bistable medium.

    D = 0.05 against a reaction rate ~1: near the Maxwell point c = 2k1/9 = 0.444 a
    straight front stays where it is for 1000 s; far from it one phase invades the other
    (the on phase for c = 0.30, the off phase for c = 0.50). This is what lets G(z) write
    bits that last (fig4-bistable).
    """
    bh = _b_high(c)
    X0 = torch.zeros(1, 2, 8, 32, dtype=F64)
    X0[0, 1, :, 8:24] = bh
    X0[0, 0] = 1 - X0[0, 1]
    with torch.no_grad():
        end = rollout(_switch(c), X0, 1000, 1.0).states[-1][0, 1]
    on = (end > bh / 2).sum(dim=1)  # on cells in each row
    np.testing.assert_array_equal(on.numpy(), cells_on_after)


def test_initial_overrides_replace_the_named_start_values():
    """Check start values named by reaction text replace only those values."""
    p = DesignParameters.initial(dense_gs_network(5), seed=0, dtype=F64)
    before = p.rates.detach().clone()
    p.override_({"rates": {"A+2B -> 3B": 2.0, "B -> A": 0.24}, "diffusion": 0.05,
                 "feed": [1, 0, 0, 0, 0]})
    i, j = p.reaction_index("A + 2B -> 3B"), p.reaction_index("B->A")
    assert (p.rates[i].item(), p.rates[j].item()) == (2.0, 0.24)
    others = [r for r in range(p.n_reactions) if r not in (i, j)]
    assert torch.equal(p.rates[others], before[others])  # unlisted rates keep their values
    assert p.diffusion.tolist() == [0.05] * 5 and p.feed.tolist() == [1, 0, 0, 0, 0]
    p.override_({"other_rates": 0.0, "rates": {"A + 2B -> 3B": 1.5}})
    assert p.rates.sum().item() == 1.5


@pytest.mark.parametrize(("start", "message"), [
    ({"rates": {"B + 2A -> 3A": 1.0}}, "not in this network"),
    ({"rates": {"A + 2B -> 3B": -1.0}}, "initial rate of 'A \\+ 2B -> 3B'.*≥ 0"),
    ({"rates": {"A + 2Q -> 3Q": 1.0}}, "reaction 'A \\+ 2Q -> 3Q'"),
    ({"other_rates": "fast"}, "other_rates must be a number"),
    ({"diffusion": 0.5}, "initial diffusion 0.5 lies outside"),
    ({"feed": [1, 0]}, "initial feed must be 5 values"),
    ({"flow": 0.1}, "unknown key\\(s\\) \\['flow'\\]"),
])
def test_bad_initial_overrides_are_refused(start, message):
    """Check bad start values are refused naming the reaction or key."""
    p = DesignParameters.initial(dense_gs_network(5), seed=0, dtype=F64)
    with pytest.raises(ParameterError, match=message):
        p.override_(start)
