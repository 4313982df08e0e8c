"""The fast (generated numba) engine against the NumPy reference, closed forms and guards."""

import numba
import numpy as np
import pytest

from rdlab.chemistry import (
    ReactionNetwork,
    brusselator_network,
    gray_scott_network,
    kitchen_sink_network,
)
from rdlab.errors import ParameterError, SimulationError, StabilityError
from rdlab.simulate import fast, fast_codegen, reference
from rdlab.system import FlowNoise, Grid, System, stencil_eigenvalue

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def assert_close(out, ref, dtype):
    """Agreement relative to each species' scale (max |X| over the run)."""
    assert out.dtype == np.dtype(dtype)
    scale = np.abs(ref).max(axis=(0, 1, 3, 4) if ref.ndim == 5 else (0, 1))
    scale = scale.reshape((1, 1, -1) + (1,) * (ref.ndim - 3))
    err = np.abs(out.astype(np.float64) - ref) / np.maximum(scale, 1e-300)
    assert err.max() <= TOL[dtype], f"relative error {err.max():.3g}"


def gray_scott(ny=12, nx=10, dx=0.8, stencil="9-point"):
    return System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=0.04, feed=[1, 0],
                        grid=Grid(ny, nx, dx=dx, stencil=stencil)).samples(
        f=[0.025, 0.04, 0.06], k=[0.06, 0.055, 0.065])


def random_state(system, rng, low=0.0, high=1.0):
    return rng.uniform(low, high, size=system.state_shape())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("stencil", ["9-point", "5-point"])
def test_gray_scott_matches_reference(stencil, dtype, rng):
    system = gray_scott(stencil=stencil)
    x0 = random_state(system, rng)
    steps = [0, 1, 17, 40]
    out = fast.run(system, x0, 0.5, 40, steps, dtype=dtype)
    ref = reference.run(system, x0, 0.5, 40, steps)
    assert out.shape == (4, 3, 2, 12, 10)
    np.testing.assert_array_equal(out[0], x0.astype(dtype))  # step 0 is the initial state
    assert_close(out, ref, dtype)
    assert not np.allclose(ref[1], ref[-1])  # the states did evolve


@pytest.mark.parametrize(("stencil", "dtype"), [("9-point", np.float64),
                                                ("5-point", np.float32)])
def test_kitchen_sink_matches_reference(stencil, dtype, rng):
    net = kitchen_sink_network(5)
    rates = rng.uniform(0.0, 0.05, size=(3, net.n_reactions))
    system = System.build(net, rates=rates, diffusion=rng.uniform(0.05, 0.2, size=(3, 5)),
                          flow=[0.01, 0.03, 0.05], feed=rng.uniform(0, 1, size=(3, 5)),
                          grid=Grid(12, 10, dx=1.3, stencil=stencil))
    x0 = random_state(system, rng)
    out = fast.run(system, x0, 0.5, 30, [0, 30], dtype=dtype)
    assert_close(out, reference.run(system, x0, 0.5, 30, [0, 30]), dtype)


@pytest.mark.parametrize(("stencil", "dtype"), [("5-point", np.float64),
                                                ("9-point", np.float32)])
def test_brusselator_matches_reference(stencil, dtype, rng):
    system = System.build(brusselator_network(), diffusion=[0.05, 0.3],
                          grid=Grid(12, 10, dx=0.7, stencil=stencil)).samples(
        a=[1.0, 1.5, 2.0], b=[3.0, 2.5, 1.0])
    x0 = random_state(system, rng, 0.5, 1.5)
    out = fast.run(system, x0, 0.01, 50, [0, 25, 50], dtype=dtype)
    assert_close(out, reference.run(system, x0, 0.01, 50, [0, 25, 50]), dtype)


def test_well_mixed_matches_reference(rng):
    system = System.build(brusselator_network(), flow=[0.0, 0.1], feed=[0.5, 0.2])
    x0 = random_state(system, rng, 0.5, 1.5)
    out = fast.run(system, x0, 0.01, 100, [0, 10, 100])
    assert out.shape == (3, 2, 2)
    assert_close(out, reference.run(system, x0, 0.01, 100, [0, 10, 100]), np.float64)


@pytest.mark.parametrize("depth", [2, 3])
def test_temporal_blocking_matches_reference(depth, rng):
    # several steps per sweep (the wavefront used for grids too big for the cache), on a
    # width that is not a whole number of SIMD vectors, with checks not aligned to the depth
    system = gray_scott(ny=24, nx=21, dx=1.1)
    x0 = random_state(system, rng)
    steps = [0, 5, 31]
    out = fast._run(system, x0, 0.5, 31, steps, depth=depth, check_every=7)
    assert_close(out, reference.run(system, x0, 0.5, 31, steps), np.float64)


@pytest.mark.parametrize("stencil", ["5-point", "9-point"])
def test_fourier_mode_decays_by_stencil_eigenvalue(stencil):
    net = ReactionNetwork.from_text("A -> B : 0.0")
    ny, nx, dx, dt = 12, 16, 1.5, 0.4
    D = np.array([[0.9, 0.3], [0.5, 0.05]])
    system = System.build(net, diffusion=D, grid=Grid(ny, nx, dx=dx, stencil=stencil))
    y, x = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ky, kx = 2 * np.pi * 1 / ny, 2 * np.pi * 3 / nx
    mode = np.sin(ky * y + kx * x)
    x0 = np.empty(system.state_shape())
    x0[:] = 1.0 + 0.2 * mode
    n = 25
    out = fast.run(system, x0, dt, n, list(range(n + 1)))
    lam = float(stencil_eigenvalue(stencil, np.array(ky), np.array(kx)))
    growth = 1.0 + dt * D * lam / dx**2  # (batch, species)
    expected = 1.0 + 0.2 * growth[None, :, :, None, None] ** np.arange(n + 1)[
        :, None, None, None, None] * mode
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-13)


def test_snapshots_progress_and_chunks(monkeypatch, rng):
    system = gray_scott(stencil="9-point")
    x0 = random_state(system, rng)
    whole = fast.run(system, x0, 0.5, 37, [37])
    monkeypatch.setattr(fast, "CHUNK_CELL_UPDATES", 5 * 3 * 12 * 10)  # 5 steps a chunk
    calls = []
    out = fast.run(system, x0, 0.5, 37, [0, 3, 12, 37], progress=calls.append)
    assert sum(calls) == 37 and len(calls) >= 8
    np.testing.assert_array_equal(out[-1], whole[0])
    part = fast.run(system, x0, 0.5, 12, [3, 12])
    np.testing.assert_array_equal(out[1:3], part)


def test_threads_do_not_change_results(rng):
    system = gray_scott(stencil="9-point")
    x0 = random_state(system, rng)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fast.run(system, x0, 0.5, 20, [20])
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(one, fast.run(system, x0, 0.5, 20, [20]))


def growth_system(a, b):
    net = ReactionNetwork.from_text(["A -> 2A : a = 0.0", "2A -> 3A : b = 0.0"])
    return System.build(net, grid=Grid(6, 9)).samples(a=a, b=b)


@pytest.mark.parametrize("check_every, snapshots", [(8, [0, 100]), (64, [0, 20, 100]),
                                                    (1, [100])])
def test_runaway_names_the_first_bad_step_sample_and_parameters(check_every, snapshots):
    # sample 1 grows ×1.5 per step: 1.5^34 < 1e6 < 1.5^35, so step 35 is the first bad one,
    # whichever check point finds it
    system = growth_system(a=[0.0, 1.0, 0.0], b=[0.0, 0.0, 0.0])
    x0 = np.ones(system.state_shape())
    with pytest.raises(SimulationError, match=r"sample 1 at step 35 \(the first bad step\)"
                       ) as info:
        fast.run(system, x0, 0.5, 100, snapshots, check_every=check_every)
    message = str(info.value)
    assert "runaway" in message and "a=1" in message and "1.46e+06" in message


def test_runaway_limit_is_an_option():
    system = growth_system(a=[1.0], b=[0.0])
    x0 = np.ones(system.state_shape())
    out = fast.run(system, x0, 0.5, 40, [40], runaway_limit=1e8)  # 1.5^40 ≈ 1.1e7: fine
    np.testing.assert_allclose(out[-1], 1.5**40, rtol=1e-12)
    with pytest.raises(SimulationError, match=r"at step 46 \(the first bad step\)"):
        fast.run(system, x0, 0.5, 100, [100], runaway_limit=1e8)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ParameterError, match="runaway limit"):
            fast.run(system, x0, 0.5, 10, [10], runaway_limit=bad)
    with pytest.raises(SimulationError, match=r"at step 0 \(the first bad step\)"):
        fast.run(system, x0 * 1e9, 0.5, 10, [10])


def test_overflow_to_inf_or_nan_is_caught(rng):
    system = growth_system(a=[0.0, 0.0], b=[0.0, 1e3])
    x0 = rng.uniform(1.0, 2.0, size=system.state_shape())
    for dtype in (np.float64, np.float32):
        with pytest.raises(SimulationError, match=r"NaN/Inf in sample 1 at step \d+ \(the "
                                                  r"first bad step\)"):
            fast.run(system, x0, 0.5, 200, [200], dtype=dtype, runaway_limit=1e300)


def test_unstable_time_step_names_the_limit(rng):
    system = gray_scott(stencil="9-point", dx=0.5)  # limit dt ≤ 0.5·0.25/0.2 = 0.625
    with pytest.raises(StabilityError, match=r"limit 0\.5.*dt ≤ 0\.625"):
        fast.run(system, random_state(system, rng), 0.7, 10, [10])
    with pytest.raises(StabilityError, match="limit 2"):
        fast.run(System.build(brusselator_network(), flow=30.0), np.ones((1, 2)), 0.1, 1, [1])


def test_flow_noise_is_refused(rng):
    system = System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=0.04,
                          feed=[1, 0], grid=Grid(8, 8), noise=FlowNoise(0.01))
    with pytest.raises(ParameterError, match="does not support flow noise.*'numpy' or 'torch'"):
        fast.run(system, random_state(system, rng), 0.5, 1, [1])


def test_kernels_are_memoised_per_structure():
    a = fast_codegen.compile_kernel(gray_scott_network(0.05), "9-point")
    b = fast_codegen.compile_kernel(gray_scott_network(0.07), "9-point")
    assert a[1] is b[1]
    assert fast_codegen.compile_kernel(gray_scott_network(), "5-point")[1] is not a[1]


def test_plan_of_gray_scott():
    plan = fast_codegen.KernelPlan.from_network(gray_scott_network())
    assert plan.monomials == ((1, 2),)  # U·V² shared by U and V
    assert plan.monomial_terms == ((0, 0), (1, 0))
    assert plan.linear_terms == () and plan.zero_order == ()
    assert plan.first_order == ((1, 1),)  # V -> 0 folds into V's own coefficient


SIMD_CHECK = """
import numpy as np
from rdlab.chemistry import gray_scott_network, kitchen_sink_network
from rdlab.simulate import fast, fast_codegen, reference
from rdlab.system import Grid, System
assert fast_codegen.VECTOR_BYTES == {width}
rng = np.random.default_rng(0)
for net, n in ((gray_scott_network(), 2), (kitchen_sink_network(3), 3)):
    s = System.build(net, rates=rng.uniform(0.01, 0.2, net.n_reactions),
                     diffusion=rng.uniform(0.05, 0.2, n), flow=0.04, feed=np.ones(n),
                     grid=Grid(7, 13, stencil="9-point"))
    x = rng.uniform(0, 1, s.state_shape())
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        out = fast.run(s, x, 0.2, 40, [40], dtype=dtype)
        ref = reference.run(s, x, 0.2, 40, [40])
        err = np.abs(out - ref).max() / np.abs(ref).max()
        assert err < tol, (net.n_reactions, dtype, err)
print("ok")
"""


@pytest.mark.parametrize("width", [16, 32])
def test_narrower_simd_paths_match_reference(width):
    """The kernels written for SSE (16-byte) and AVX2 (32-byte) vectors, forced on this host,
    agree with the reference (odd grid widths exercise the row padding)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, fast_codegen.SIMD_BYTES_ENV: str(width)}
    done = subprocess.run([sys.executable, "-c", SIMD_CHECK.format(width=width)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
