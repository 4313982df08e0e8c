"""The NumPy reference against closed forms: it is the definition the engines are tested on."""

import numpy as np
import pytest

from rdlab.chemistry import ReactionNetwork, gray_scott_network
from rdlab.errors import SimulationError
from rdlab.simulate import reference
from rdlab.system import FlowNoise, Grid, System, stencil_eigenvalue


@pytest.mark.parametrize("stencil", ["5-point", "9-point"])
@pytest.mark.parametrize("dx", [1.0, 0.4])
def test_laplacian_of_fourier_mode(stencil, dx):
    ny, nx, my, mx = 12, 16, 2, 3
    y, x = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ky, kx = 2 * np.pi * my / ny, 2 * np.pi * mx / nx
    mode = np.cos(ky * y + kx * x)
    lam = stencil_eigenvalue(stencil, np.array(ky), np.array(kx))
    np.testing.assert_allclose(reference.laplacian(mode, stencil, dx), lam / dx**2 * mode,
                               atol=1e-12)


def test_gray_scott_rhs_is_paper_equations(rng):
    f, k, du, dv = 0.037, 0.06, 0.2, 0.1
    s = System.build(gray_scott_network(k), diffusion=[du, dv], flow=f, feed=[1, 0],
                     grid=Grid(8, 8))
    x = rng.uniform(0, 1, size=(1, 2, 8, 8))
    u, v = x[0]
    lap = reference.laplacian
    du_dt = du * lap(u) - u * v**2 + f * (1 - u)
    dv_dt = dv * lap(v) + u * v**2 - (f + k) * v
    out = reference.rhs(s, x)
    np.testing.assert_allclose(out[0, 0], du_dt, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(out[0, 1], dv_dt, rtol=1e-13, atol=1e-15)


def test_fourier_mode_decays_at_eigenvalue_rate():
    net = ReactionNetwork.from_text("A -> B : 0.0")
    g = Grid(16, 16, dx=1.0, stencil="9-point")
    s = System.build(net, diffusion=[0.3, 0.0], grid=g)
    y, x = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    ky, kx = 2 * np.pi / 16, 2 * np.pi * 2 / 16
    mode = np.sin(ky * y + kx * x)
    x0 = np.stack([1.0 + 0.1 * mode, np.zeros_like(mode)])[None]
    dt, n = 0.5, 40
    out = reference.run(s, x0, dt, n, [n])
    growth = (1 + dt * 0.3 * stencil_eigenvalue("9-point", np.array(ky), np.array(kx))) ** n
    np.testing.assert_allclose(out[-1, 0, 0] - 1.0, 0.1 * growth * mode, atol=1e-13)


def test_forward_euler_converges_at_order_one():
    net = ReactionNetwork.from_text(["A -> B : 1.3"])
    s = System.build(net)
    x0 = np.array([[1.0, 0.0]])
    T = 2.0
    errors = []
    dts = [0.1, 0.05, 0.025, 0.0125]
    for dt in dts:
        n = round(T / dt)
        out = reference.run(s, x0, dt, n, [n])
        errors.append(abs(out[-1, 0, 0] - np.exp(-1.3 * T)))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.05)


def test_closed_network_conserves_totals(rng):
    net = ReactionNetwork.from_text(["E + S <-> ES : 5.0, 1.0", "ES -> E + P : 2.0"])
    s = System.build(net, diffusion=[0.1, 0.2, 0.05, 0.15], grid=Grid(10, 10))
    x0 = rng.uniform(0, 1, size=(1, 4, 10, 10))
    out = reference.run(s, x0, 0.05, 200, [0, 200])
    W = net.conservation_laws()
    totals = np.einsum("ls,tbsyx->tl", W, out)
    np.testing.assert_allclose(totals[1], totals[0], rtol=1e-12)


def test_blow_up_is_named():
    s = System.build(gray_scott_network(), rates=[[1.0, 0.06], [1e7, 0.06]],
                     diffusion=[0.2, 0.1], flow=0.04, feed=[1, 0], grid=Grid(8, 8))
    x0 = np.full((2, 2, 8, 8), 0.5)
    with pytest.raises(SimulationError, match="sample 1 at step"):
        reference.run_checked(s, x0, 0.25, 200, [200], check_every=8)


def test_noisy_flow_is_smoothed_and_nonnegative(rng):
    from rdlab.simulate import flow_noise

    noise = FlowNoise(amplitude=0.8, sigma=3.0)
    flow = np.array([0.03, 0.5])
    raw = flow_noise.raw_noise(rng, noise, (2, 5, 32, 32))
    assert raw.shape == (2, 1, 32, 32)  # one field shared by all species
    field = flow_noise.flow_field(flow, noise, raw)
    assert field.min() >= 0
    # smoothing preserves the spatial mean of max(f + eps, 0) (periodic filter)
    np.testing.assert_allclose(field.mean(axis=(-2, -1)),
                               np.maximum(flow[:, None, None, None] + raw, 0).mean(axis=(-2, -1)),
                               rtol=1e-12)
    assert np.all(field.std(axis=(-2, -1)) < raw.std(axis=(-2, -1)) / 3)
