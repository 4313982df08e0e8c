"""Entropy production (Dense-RDN appendix C) and the design loss terms (eqs. 7–15)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from rdlab.chemistry.network import ReactionNetwork
from rdlab.design.entropy import (
    diffusion_entropy_production,
    diffusion_entropy_production_map,
    reaction_entropy_production,
    reaction_entropy_production_map,
    spatial_gradients,
)
from rdlab.design.objectives import (
    CompositeLoss,
    Dissipation,
    Information,
    MeanDrift,
    Replication,
    StepSize,
    TargetPattern,
    bit_accuracy,
    build_loss,
    dissipation_series,
    load_target,
    make_term,
    normalise_target,
    parent_daughter_correlation,
    pearson_correlation,
    random_frame,
    stored_frame_indices,
)
from rdlab.design.trajectory import Trajectory
from rdlab.errors import ParameterError
from rdlab.simulate.torch_engine import NetworkTensors

DT = torch.float64
AB = ReactionNetwork.from_text("A <-> B : kf = 2, kr = 0.5")


def traj_of(states, network=AB, rates=None, diffusion=None, z=None) -> Trajectory:
    S = states[0].shape[1]
    rates = torch.tensor(network.default_rates, dtype=DT) if rates is None else rates
    diffusion = torch.full((S,), 0.1, dtype=DT) if diffusion is None else diffusion
    return Trajectory(states=list(states), dt=1.0, rates=rates, diffusion=diffusion,
                      flow=torch.tensor(0.03, dtype=DT), feed=torch.zeros(S, dtype=DT),
                      network=network, z=z)


def sine_state(a, b, L, rows=4, species=2, axis="x") -> torch.Tensor:
    """``c = a + b sin(2πx/L)`` in every species, ``(1, species, rows, L)`` (or transposed)."""
    theta = 2 * np.pi * np.arange(L) / L
    field = np.broadcast_to(a + b * np.sin(theta), (rows, L))
    if axis == "y":
        field = field.T
    return torch.tensor(np.broadcast_to(field, (1, species) + field.shape).copy(), dtype=DT)


def sine_sigma(D, a, b, L, offset=0.1) -> float:
    """Mean over cells of ``D (∂c)² / (c + offset)`` with central differences for the sine:
    ``∂c = b sin(2π/L) cos θ`` and ``⟨cos²θ / (A + b sin θ)⟩ = (A − √(A² − b²)) / b²``
    (A = a + offset; the grid average equals the integral up to O(r^L), r ≈ 0.4 here)."""
    A = a + offset
    return D * np.sin(2 * np.pi / L) ** 2 * (A - np.sqrt(A * A - b * b))


# ============================================================================ entropy
@pytest.mark.parametrize("axis", ["x", "y"])
def test_diffusion_entropy_of_a_sine_is_the_exact_central_difference_value(axis):
    L, a, b = 64, 1.0, 0.5
    X = sine_state(a, b, L, axis=axis)
    D = torch.tensor([0.13, 0.05], dtype=DT)
    got = diffusion_entropy_production(D, X)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(sine_sigma(0.18, a, b, L), rel=1e-12)
    # cell by cell: Σ_i D_i b² sin²(2π/L) cos²θ / (c + 0.1)
    theta = 2 * np.pi * np.arange(L) / L
    cell = 0.18 * (b * np.sin(2 * np.pi / L) * np.cos(theta)) ** 2 / (a + b * np.sin(theta) + .1)
    cmap = diffusion_entropy_production_map(D, X)[0].numpy()
    np.testing.assert_allclose(cmap if axis == "x" else cmap.T, np.broadcast_to(cell, (4, L)),
                               rtol=1e-12, atol=1e-16)


def test_diffusion_entropy_approaches_the_continuum_integral():
    L, a, b, D = 256, 1.0, 0.5, 0.1
    got = diffusion_entropy_production(torch.tensor([D], dtype=DT), sine_state(a, b, L,
                                                                               species=1))
    A = a + 0.1
    continuum = D * (2 * np.pi / L) ** 2 * (A - np.sqrt(A * A - b * b))  # ∫ D c'²/(c+.1)
    assert got.item() == pytest.approx(continuum, rel=3e-4)  # (2π/L)²/3 = 2e-4
    assert got.item() != pytest.approx(continuum, rel=1e-6)


@pytest.mark.parametrize("gradient", ["central", "forward", "reference"])
def test_diffusion_entropy_is_zero_for_uniform_fields(gradient):
    X = torch.full((2, 3, 5, 7), 0.7, dtype=DT)
    out = diffusion_entropy_production(torch.tensor([.1, .2, .05], dtype=DT), X,
                                       gradient=gradient)
    assert torch.equal(out, torch.zeros(2, dtype=DT))


def test_reference_gradient_differs_from_periodic_forward_only_on_the_last_row_and_column():
    X = torch.rand(2, 3, 6, 7, dtype=DT, generator=torch.Generator().manual_seed(1)) + 0.2
    D = torch.tensor([.1, .2, .15], dtype=DT)
    fwd = diffusion_entropy_production_map(D, X, gradient="forward")
    ref = diffusion_entropy_production_map(D, X, gradient="reference")
    torch.testing.assert_close(ref[:, :-1, :-1], fwd[:, :-1, :-1], rtol=0, atol=0)
    assert (ref[:, -1, :] != fwd[:, -1, :]).all() and (ref[:, :, -1] != fwd[:, :, -1]).all()
    gy, gx = spatial_gradients(X, "reference")
    assert torch.equal(gy[..., -1, :], torch.zeros_like(gy[..., -1, :]))
    assert torch.equal(gx[..., :, -1], torch.zeros_like(gx[..., :, -1]))
    torch.testing.assert_close(gx[..., :, :-1], X[..., :, 1:] - X[..., :, :-1])
    # periodic forward: the last column wraps to the first
    gy, gx = spatial_gradients(X, "forward", dx=0.5)
    torch.testing.assert_close(gx[..., :, -1], (X[..., :, 0] - X[..., :, -1]) / 0.5)


def test_diffusion_entropy_per_sample_coefficients_and_bad_input():
    X = sine_state(1.0, 0.5, 32, species=2).expand(2, 2, 4, 32)
    D = torch.tensor([[.1, .1], [.2, .2]], dtype=DT)
    out = diffusion_entropy_production(D, X, k_B=2.0)
    torch.testing.assert_close(out[1], 2 * out[0])
    assert out[0].item() == pytest.approx(2.0 * sine_sigma(0.2, 1.0, 0.5, 32), rel=1e-12)
    with pytest.raises(ParameterError, match=r"diffusion has shape \(3,\)"):
        diffusion_entropy_production(torch.ones(3, dtype=DT), X)
    with pytest.raises(ParameterError, match=r"\(2, 4, 32\)"):
        diffusion_entropy_production(torch.ones(2, dtype=DT), X[0])
    with pytest.raises(ParameterError, match="'sobel'"):
        diffusion_entropy_production(torch.ones(2, dtype=DT), X, gradient="sobel")


def test_reaction_entropy_is_zero_at_detailed_balance_and_the_hand_formula_off_it():
    rates = torch.tensor([2.0, 0.5], dtype=DT)
    eq = torch.tensor([1.0, 4.0], dtype=DT).reshape(1, 2, 1, 1).expand(1, 2, 3, 3)
    assert torch.equal(reaction_entropy_production(AB, rates, eq), torch.zeros(1, dtype=DT))
    g = torch.Generator().manual_seed(2)
    X = torch.rand(2, 2, 4, 5, dtype=DT, generator=g) + 0.1
    vp, vm = 2.0 * X[:, 0], 0.5 * X[:, 1]
    expected = (vp - vm) * torch.log(vp / vm)
    torch.testing.assert_close(reaction_entropy_production_map(AB, rates, X), expected)
    torch.testing.assert_close(reaction_entropy_production(AB, rates, X, k_B=3.0),
                               3 * expected.mean(dim=(-2, -1)))
    uniform = torch.ones(1, 2, 2, 2, dtype=DT)
    assert reaction_entropy_production(AB, rates, uniform).item() == pytest.approx(
        1.5 * math.log(4), rel=1e-14)


def test_reaction_entropy_floors_small_rates():
    rates = torch.tensor([2.0, 0.5], dtype=DT)
    X = torch.tensor([0.0, 3.0], dtype=DT).reshape(1, 2, 1, 1)
    vm = 1.5
    expected = (1e-5 - vm) * math.log(1e-5 / vm)
    assert reaction_entropy_production(AB, rates, X).item() == pytest.approx(expected, rel=1e-14)
    X = torch.tensor([0.0, 0.0], dtype=DT).reshape(1, 2, 1, 1)  # both floored: 0
    assert reaction_entropy_production(AB, rates, X).item() == 0.0
    with pytest.raises(ParameterError, match="floor"):
        reaction_entropy_production(AB, rates, X, floor=0.0)


def test_reaction_entropy_pairs_higher_order_reactions_and_skips_irreversible_ones():
    net = ReactionNetwork.from_text(["A + 2B <-> 3B : 1.5, 0.3", "A -> B : 7"])
    rates = torch.tensor(net.default_rates, dtype=DT)
    X = torch.rand(1, 2, 3, 4, dtype=DT, generator=torch.Generator().manual_seed(3)) + 0.5
    a, b = X[:, 0], X[:, 1]
    vp, vm = 1.5 * a * b * b, 0.3 * b**3
    expected = ((vp - vm) * torch.log(vp / vm)).mean(dim=(-2, -1))
    torch.testing.assert_close(reaction_entropy_production(net, rates, X), expected)
    tensors = NetworkTensors.from_network(net)
    torch.testing.assert_close(reaction_entropy_production(tensors, rates, X), expected)
    batch_rates = torch.stack([rates, 2 * rates])
    out = reaction_entropy_production(net, batch_rates, X.expand(2, 2, 3, 4))
    torch.testing.assert_close(out, torch.cat([expected, 2 * expected]))
    with pytest.raises(ParameterError, match=r"rates has shape \(2,\)"):
        reaction_entropy_production(net, rates[:2], X)
    with pytest.raises(ParameterError, match="3 species"):
        reaction_entropy_production(net, rates, torch.ones(1, 3, 2, 2, dtype=DT))


# ============================================================================ frames
def test_stored_frames_and_random_frame():
    assert stored_frame_indices(64) == list(range(0, 65, 2))
    assert stored_frame_indices(8) == list(range(9))
    assert stored_frame_indices(100) == [*range(0, 100, 3), 100]
    assert stored_frame_indices(0) == [0]
    states = [torch.full((5, 1, 2, 2), float(t), dtype=DT) for t in range(65)]
    traj = traj_of(states, network=ReactionNetwork.from_text("A -> 0 : 1"))
    picks = random_frame(traj, torch.Generator().manual_seed(7))[:, 0, 0, 0].tolist()
    assert all(p in stored_frame_indices(64) for p in picks)
    again = random_frame(traj, torch.Generator().manual_seed(7))[:, 0, 0, 0].tolist()
    assert picks == again


# ============================================================================ target
def test_normalise_target_zscores_and_clips(rng):
    img = rng.normal(size=(6, 6)) * 3 + 1
    z = (img - img.mean()) / img.std()
    assert (z < -1).any()
    np.testing.assert_allclose(normalise_target(img).numpy(), np.maximum(z, -1), rtol=1e-14)
    np.testing.assert_allclose(normalise_target(torch.tensor(img)).numpy(), np.maximum(z, -1))
    with pytest.raises(ParameterError, match="constant"):
        normalise_target(np.ones((3, 3)))
    with pytest.raises(ParameterError, match=r"\(3,\)"):
        normalise_target(np.ones(3))


def test_target_pattern_is_zero_at_the_target_and_the_offset_otherwise(rng):
    img = rng.normal(size=(8, 8))
    c = (normalise_target(img) + 1) / 2  # the state whose x = 2c − 1 is the target
    T, delta = 4, 0.03
    X0 = torch.rand(2, 3, 8, 8, dtype=DT, generator=torch.Generator().manual_seed(0))
    states = []
    for t in range(T + 1):
        X = X0.clone()
        X[:, 1] = c + t * delta / 2  # x = target + t·δ: RMSD t·δ
        states.append(X)
    for frames in ("random+last", "all", "last"):
        exact = TargetPattern(img, frames=frames)(traj_of([states[0]] * (T + 1)))
        assert exact.item() < 1e-15
    assert TargetPattern(img, frames="last")(traj_of(states)).item() == pytest.approx(T * delta)
    assert TargetPattern(img, frames="last", metric="mse")(traj_of(states)).item() == (
        pytest.approx((T * delta) ** 2))
    assert TargetPattern(img, frames="all")(traj_of(states)).item() == pytest.approx(
        np.mean(np.arange(T + 1)) * delta)
    # random+last: mean over the batch of (t_b δ + T δ)/2, t_b drawn from the stored frames
    g = torch.Generator().manual_seed(11)
    got = TargetPattern(img)(traj_of(states), g).item()
    t_b = torch.randint(T + 1, (2,), generator=torch.Generator().manual_seed(11)).to(DT)
    assert got == pytest.approx(float(((t_b + T) * delta / 2).mean()), rel=1e-12)
    corr = TargetPattern(img).correlation(traj_of(states))
    assert corr.shape == (T + 1, 2)
    torch.testing.assert_close(corr, torch.ones_like(corr))


def test_target_pattern_rejects_bad_shapes(rng):
    X = torch.rand(1, 2, 8, 8, dtype=DT)
    with pytest.raises(ParameterError, match=r"target has shape \(6, 6\)"):
        TargetPattern(rng.normal(size=(6, 6)))(traj_of([X, X]))
    with pytest.raises(ParameterError, match="species index 2"):
        TargetPattern(rng.normal(size=(8, 8)), species=2)(traj_of([X, X]))
    with pytest.raises(ParameterError, match="'middle'"):
        TargetPattern(rng.normal(size=(8, 8)), frames="middle")
    with pytest.raises(ParameterError, match=r"state 1 has shape \(1, 2, 8, 7\)"):
        TargetPattern(rng.normal(size=(8, 8)))(traj_of([X, X[..., :7]]))


def test_pearson_correlation(rng):
    b = torch.tensor(rng.normal(size=(5, 6)))
    a = torch.stack([3 * b + 2, -b, torch.tensor(rng.normal(size=(5, 6))), torch.ones(5, 6)])
    r = pearson_correlation(a, b)
    assert r[0].item() == pytest.approx(1.0, abs=1e-14)
    assert r[1].item() == pytest.approx(-1.0, abs=1e-14)
    assert r[2].item() == pytest.approx(np.corrcoef(a[2].ravel(), b.ravel())[0, 1], rel=1e-12)
    assert r[3].item() == 0.0
    torch.testing.assert_close(pearson_correlation(a, b.expand(4, 5, 6)), r)
    with pytest.raises(ParameterError, match=r"b \(6, 5\)"):
        pearson_correlation(a, b.T)


def test_load_target(tmp_path):
    ramp = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))  # 32×32, 0…248 along x
    Image.fromarray(np.stack([ramp] * 3, axis=-1)).save(tmp_path / "ramp.png")
    out = load_target(tmp_path / "ramp.png", 16)
    assert out.shape == (16, 16) and out.dtype == np.float64
    assert (np.diff(out, axis=1) > 0).all() and np.allclose(out, out[0])
    np.testing.assert_allclose(load_target(ramp.astype(float), 32), ramp, atol=1e-3)
    rgb = np.zeros((4, 4, 3))
    rgb[..., 1] = 100.0
    np.testing.assert_allclose(load_target(rgb, 4), 58.7, rtol=1e-6)
    with pytest.raises(ParameterError, match="missing.png"):
        load_target(tmp_path / "missing.png", 16)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ParameterError, match="text.png"):
        load_target(tmp_path / "text.png", 16)
    with pytest.raises(ParameterError, match="size"):
        load_target(ramp, 0)


# ============================================================================ step size
def test_step_size(rng):
    states = [torch.tensor(rng.normal(size=(2, 3, 4, 4))) for _ in range(4)]
    traj = traj_of(states)
    steps = np.stack([(b - a).numpy() for a, b in zip(states[:-1], states[1:])])
    assert StepSize()(traj).item() == pytest.approx(np.abs(steps).mean(), rel=1e-14)
    assert StepSize(0.3)(traj).item() == pytest.approx(
        np.maximum(np.abs(steps) - 0.3, 0).mean(), rel=1e-14)
    assert StepSize(100.0)(traj).item() == 0.0
    with pytest.raises(ParameterError, match="delta_max"):
        StepSize(-0.1)
    with pytest.raises(ParameterError, match="T = 0"):
        StepSize()(traj_of(states[:1]))


@pytest.mark.parametrize("delta_max", [0.0, 0.3])
def test_step_size_gradient(rng, delta_max):
    """The term's one-node backward is the derivative of its value (gradcheck, float64),
    for every state, the first and last included, and for T = 1."""
    for n in (4, 2):
        states = [torch.tensor(rng.normal(size=(2, 3, 4, 4)), requires_grad=True)
                  for _ in range(n)]
        assert torch.autograd.gradcheck(
            lambda *xs: StepSize(delta_max)(traj_of(xs)), tuple(states))


# ============================================================================ dissipation
def test_dissipation_of_a_steady_state_is_exp_minus_sigma():
    uniform = torch.full((1, 2, 4, 32), 0.8, dtype=DT)
    D = torch.tensor([0.1, 0.1], dtype=DT)
    assert Dissipation(variance_weight=3.0)(traj_of([uniform] * 4, diffusion=D)).item() == 1.0
    sine = sine_state(1.0, 0.5, 32)
    sigma = sine_sigma(0.2, 1.0, 0.5, 32)
    loss = Dissipation(variance_weight=5.0)(traj_of([sine] * 4, diffusion=D))
    assert loss.item() == pytest.approx(math.exp(-sigma), rel=1e-12)
    # reactions: A ⇌ B at a = b = 1 with kf = 2, kr = .5: σ_R = 1.5 ln 4, exp(−σ_R) = 1/8
    ones = torch.ones(1, 2, 3, 3, dtype=DT)
    react = Dissipation(terms=("reaction",), variance_weight=1.0)(traj_of([ones] * 3))
    assert react.item() == pytest.approx(0.125, rel=1e-13)


def test_dissipation_combines_parts_and_reduces_the_batch():
    D = torch.tensor([0.1, 0.2], dtype=DT)
    X = torch.cat([sine_state(1.0, 0.5, 16), sine_state(2.0, 0.3, 16)])  # (2, 2, 4, 16)
    traj = traj_of([X, X], diffusion=D)
    sd = diffusion_entropy_production(D, X)
    sr = reaction_entropy_production(AB, traj.rates, X)
    both = ("diffusion", "reaction")
    total = Dissipation(terms=both)(traj)
    torch.testing.assert_close(total, torch.exp(-(sd + sr)).mean())
    sep = Dissipation(terms=both, combine="separate")(traj)
    torch.testing.assert_close(sep, torch.exp(-sd).mean() + torch.exp(-sr).mean())
    ref = Dissipation(terms=both, batch="exp_mean")(traj)
    torch.testing.assert_close(ref, torch.exp(-(sd + sr).mean()))
    series = dissipation_series(traj, both)
    assert series.shape == (2, 2)
    torch.testing.assert_close(series[1], sd + sr)
    with pytest.raises(ParameterError, match="'heat'"):
        Dissipation(terms=("heat",))
    with pytest.raises(ParameterError, match="variance_weight"):
        Dissipation(variance_weight=-1)


def test_dissipation_spread_over_time():
    D = torch.tensor([0.1, 0.1], dtype=DT)
    uniform = torch.full((1, 2, 4, 64), 1.0, dtype=DT)
    sine = sine_state(1.0, 0.5, 64)
    strong = sine_state(1.0, 0.9, 64)
    traj = traj_of([uniform, sine, strong], diffusion=D)
    s1 = math.exp(-sine_sigma(0.2, 1.0, 0.5, 64))
    s2 = math.exp(-sine_sigma(0.2, 1.0, 0.9, 64))
    # on="start": states 0, 1 → s = (1, s1)
    var = Dissipation(variance_weight=2.0)(traj)
    assert var.item() == pytest.approx((1 + s1) / 2 + 2.0 * ((1 - s1) / 2) ** 2, rel=1e-12)
    mad = Dissipation(variance_weight=2.0, spread="mad")(traj)
    assert mad.item() == pytest.approx((1 + s1) / 2 + 2.0 * (1 - s1) / 2, rel=1e-12)
    end = Dissipation(variance_weight=2.0, spread="mad", on="end")(traj)
    assert end.item() == pytest.approx((s1 + s2) / 2 + 2.0 * abs(s1 - s2) / 2, rel=1e-12)


# ============================================================================ information
class MeanEncoder(nn.Module):
    """Spatial mean of each channel → linear → logits."""

    def __init__(self, species, bits):
        super().__init__()
        self.linear = nn.Linear(species, bits, dtype=DT)

    def forward(self, x):
        return self.linear(x.mean(dim=(-2, -1)))


class FixedLogits(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def _bce(logits, z):
    p = torch.sigmoid(logits)
    return float((-(z * torch.log(p) + (1 - z) * torch.log(1 - p))).mean())


def test_information_matches_binary_cross_entropy():
    torch.manual_seed(0)
    enc = MeanEncoder(2, 6)
    g = torch.Generator().manual_seed(5)
    z = torch.randint(2, (3, 6), generator=g).to(DT)
    X = torch.rand(3, 2, 4, 4, dtype=DT, generator=g)
    with torch.no_grad():
        bce = _bce(enc(2 * X - 1), z)
    term = Information(enc)
    assert term(traj_of([X] * 3, z=z)).item() == pytest.approx(2.4 * bce, rel=1e-12)
    # distinct frames: X_0, the drawn frame and X_T weighted 1, .4, 1
    states = [X * (t + 1) for t in range(5)]
    traj = traj_of(states, z=z)
    got = term(traj, torch.Generator().manual_seed(9)).item()
    Xr = random_frame(traj, torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = sum(w * F.binary_cross_entropy_with_logits(enc(2 * Y - 1), z).item()
                       for w, Y in zip((1, .4, 1), (states[0], Xr, states[-1])))
    assert got == pytest.approx(expected, rel=1e-12)
    assert list(CompositeLoss([term]).parameters()) == list(enc.parameters())


def test_bit_accuracy_and_information_errors():
    z = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=DT)
    X = torch.rand(1, 2, 4, 4, dtype=DT)
    assert bit_accuracy(FixedLogits(10 * (2 * z - 1)), X, z) == 1.0
    assert bit_accuracy(FixedLogits(-10 * (2 * z - 1)), X, z) == 0.0
    assert bit_accuracy(FixedLogits(torch.tensor([[1.0, 1.0, -1.0, 1.0]])), X, z) == 0.5
    with pytest.raises(ParameterError, match="z is None"):
        Information(MeanEncoder(2, 4))(traj_of([X, X]))
    with pytest.raises(ParameterError, match=r"encoder output has shape \(1, 3\)"):
        Information(MeanEncoder(2, 3))(traj_of([X, X], z=z))
    with pytest.raises(ParameterError, match="3 values"):
        Information(MeanEncoder(2, 4), frame_weights=(1, 1))


# ============================================================================ replication
def _replicating(rng, amplitude=2.0, H=8, W=16):
    """Parent in columns 4–11 of X_0; X_T holds it in columns 0–7 and 8–15."""
    parent = torch.tensor(rng.normal(size=(1, 2, H, H)) * amplitude + 5)
    X0 = torch.full((1, 2, H, W), 5.0, dtype=DT)
    X0[..., 4:12] = parent
    XT = torch.cat([parent, parent], dim=-1)
    return parent, X0, XT


def test_pooled_correlation_is_the_authors_over_species_and_cells(rng):
    """Pooled r is one Pearson r over (species, y, x) of each window, as the authors'
    pearson_corr; per-species r averages one r per species. A medium that keeps species 0
    at its feed (1) and species 1 at 0 while the parent sits on zero padding: per species
    about 0, pooled the level difference of the two species alone."""
    H, W = 8, 16
    X0 = torch.zeros((1, 2, H, W), dtype=DT)
    X0[0, 0, 2:6, 6:10] = 1.0  # the parent's patch: fed species at its feed level
    X0[0, 1, 3:5, 7:9] = torch.tensor(rng.uniform(0.1, 0.2, (2, 2)))
    XT = torch.zeros((1, 2, H, W), dtype=DT)
    XT[0, 0] = 1.0  # the fed medium everywhere, nothing else
    traj = traj_of([X0, XT])
    parent, daughters = Replication().windows(traj)
    p = parent.reshape(-1).numpy()
    expected = np.mean([np.corrcoef(p, d.reshape(-1).numpy())[0, 1] for d in daughters])
    assert parent_daughter_correlation(traj, pooled=True) == pytest.approx(expected, abs=1e-12)
    assert expected > 0.3  # from the two species' levels alone
    assert parent_daughter_correlation(traj) == 0.0  # both species constant in a daughter


def test_replication_is_zero_for_exact_daughters(rng):
    parent, X0, XT = _replicating(rng)
    assert (parent.std(dim=(-2, -1), unbiased=False) > 0.5).all()
    traj = traj_of([X0, X0, XT])
    term = Replication()
    assert term.geometry(8, 16) == ((0, 8, 4, 12), 4)
    assert term(traj).item() == 0.0
    assert Replication(std_on="state", std_weight=1.0)(traj).item() == 0.0
    assert term.correlation(traj) == pytest.approx(1.0, abs=1e-14)
    assert parent_daughter_correlation(traj) == pytest.approx(1.0, abs=1e-14)
    flipped = traj_of([X0, 2 * (10 - XT)])  # daughters −2·parent + 20
    assert parent_daughter_correlation(flipped) == pytest.approx(-1.0, abs=1e-14)
    assert parent_daughter_correlation(traj, pooled=True) == pytest.approx(1.0, abs=1e-14)
    # the same along y, with an explicit box and shift on a 16 × 8 domain
    ty = traj_of([X0.transpose(-1, -2), XT.transpose(-1, -2)])
    assert Replication(box=(4, 12, 0, 8), shift=4, axis="y")(ty).item() == 0.0
    assert Replication(axis="y")(ty).item() == 0.0


def test_replication_penalises_mismatch_and_flat_daughters(rng):
    parent, X0, XT = _replicating(rng)
    noise = torch.tensor(rng.normal(size=XT.shape)) * 0.1
    traj = traj_of([X0, XT + noise])
    expected = float((noise[..., :8] ** 2).mean() + (noise[..., 8:] ** 2).mean())
    assert Replication()(traj).item() == pytest.approx(expected, rel=1e-12)
    # flat-ish structure: every window has std 0.1·(its std), below β* = 0.5
    parent, X0, XT = _replicating(rng, amplitude=0.1)
    traj = traj_of([X0, XT])
    std = parent.std(dim=(-2, -1), unbiased=False)
    floor = float(((0.5 - std) ** 2).mean())
    assert Replication()(traj).item() == pytest.approx(0.5 * 2 * floor, rel=1e-12)
    whole = float(((0.5 - XT.std(dim=(-2, -1), unbiased=False)) ** 2).mean())
    got = Replication(std_on="state", std_weight=1.0, beta=0.5)(traj).item()
    assert got == pytest.approx(whole, rel=1e-12)
    with pytest.raises(ParameterError, match=r"box \(0, 9, 0, 8\)"):
        Replication(box=(0, 9, 0, 8))(traj)
    with pytest.raises(ParameterError, match="'z'"):
        Replication(axis="z")


def test_mean_drift():
    X0 = torch.zeros(2, 3, 4, 4, dtype=DT)
    XT = X0.clone()
    XT[:, 0] = 0.5
    XT[1, 2, 0, 0] = 1.6  # mean 0.1
    expected = (2 * 0.25 + 0.01) / 6
    assert MeanDrift()(traj_of([X0, XT])).item() == pytest.approx(expected, rel=1e-12)


# ============================================================================ gradients
def _differentiable_trajectory(T=3, H=8, W=16):
    g = torch.Generator().manual_seed(4)
    X0 = (torch.rand(2, 2, H, W, dtype=DT, generator=g) + 0.2).requires_grad_()
    rates = torch.tensor([2.0, 0.5], dtype=DT, requires_grad=True)
    D = torch.tensor([0.1, 0.15], dtype=DT, requires_grad=True)
    states = [X0]
    for _ in range(T):
        X = states[-1]
        lap = sum(torch.roll(X, s, d) for s in (1, -1) for d in (-2, -1)) - 4 * X
        net = rates[0] * X[:, :1] - rates[1] * X[:, 1:]
        states.append(X + 0.2 * D[:, None, None] * lap + 0.1 * torch.cat([-net, net], 1))
    z = torch.randint(2, (2, 5), generator=g).to(DT)
    return traj_of(states, rates=rates, diffusion=D, z=z), (X0, rates, D)


def _all_terms(rng, H=8, W=16):
    return [
        TargetPattern(rng.normal(size=(H, W))),
        StepSize(0.01),
        Dissipation(terms=("diffusion", "reaction"), variance_weight=1.0, spread="mad"),
        Information(MeanEncoder(2, 5)),
        Replication(),
        MeanDrift(),
    ]


def test_every_term_has_finite_gradients(rng):
    traj, leaves = _differentiable_trajectory()
    for term in _all_terms(rng):
        grads = torch.autograd.grad(term(traj, torch.Generator().manual_seed(0)), leaves,
                                    allow_unused=True, retain_graph=True)
        assert grads[0] is not None and torch.isfinite(grads[0]).all(), term.name
        assert grads[0].abs().sum() > 0, term.name
        for gr in grads[1:]:
            assert gr is None or torch.isfinite(gr).all(), term.name
    # at exact optima (zero RMSD, uniform daughters) the gradients stay finite too
    X = torch.full((1, 2, 8, 16), 0.6, dtype=DT, requires_grad=True)
    for term in (TargetPattern(np.arange(128.0).reshape(8, 16) % 3, species=0),
                 Replication(), Dissipation()):
        (grad,) = torch.autograd.grad(term(traj_of([X, X])), X)
        assert torch.isfinite(grad).all(), term.name


# ============================================================================ composite
def test_composite_loss_weights_and_logs(rng):
    traj, _ = _differentiable_trajectory()
    terms = _all_terms(rng)
    for w, t in zip((1.0, 1000.0, 0.04, 2.0, 0.1, 0.0), terms):
        t.weight = w
    loss = CompositeLoss(terms)
    total, values = loss(traj, torch.Generator().manual_seed(3))
    assert list(values) == ["target", "step_size", "dissipation", "information",
                            "replication", "mean_drift"]
    g = torch.Generator().manual_seed(3)  # same draws, same order
    expected = sum(t.weight * t(traj, g).item() for t in terms)
    assert total.item() == pytest.approx(expected, rel=1e-12)
    assert total.item() == pytest.approx(sum(loss.weights[n] * v for n, v in values.items()),
                                         rel=1e-12)
    assert loss["step_size"].weight == 1000.0
    total.backward()


def test_composite_loss_rejects_bad_configuration():
    with pytest.raises(ParameterError, match="-1"):
        StepSize(weight=-1)
    with pytest.raises(ParameterError, match="nan"):
        MeanDrift(weight=float("nan"))
    t = MeanDrift()
    with pytest.raises(ParameterError, match="-0.5"):
        t.weight = -0.5
    with pytest.raises(ParameterError, match="used twice"):
        CompositeLoss([StepSize(), StepSize(0.1)])
    CompositeLoss([StepSize(), StepSize(0.1, name="step_hinge")])
    with pytest.raises(ParameterError, match="at least one"):
        CompositeLoss([])
    with pytest.raises(ParameterError, match="not a loss term"):
        CompositeLoss([lambda traj, g: 0.0])
    with pytest.raises(ParameterError, match="'entropy'"):
        make_term("entropy")
    with pytest.raises(ParameterError, match="'delta'"):
        make_term("step_size", delta=0.1)
    loss = build_loss({"step_size": {"delta_max": 0.05, "weight": 1000},
                       "dissipation": {"weight": 1.0}})
    assert loss.weights == {"step_size": 1000.0, "dissipation": 1.0}
    with pytest.raises(ParameterError, match="no loss term called 'target'"):
        loss["target"]
