"""Every registered engine, through the one front door: agreement with the NumPy reference
(the exact solution for the ODE solver), refusals generated from the capability flags, and
trackers that see the same run on every engine and can stop samples."""

import numpy as np
import pytest

from rdlab import initial
from rdlab.chemistry import ReactionNetwork, gray_scott_network
from rdlab.errors import ParameterError, SimulationError, StabilityError
from rdlab.simulate import (
    CallbackTracker,
    RunawayGuard,
    Tracker,
    available_engines,
    get_engine,
    register_engine,
    simulate,
)
from rdlab.simulate.engines import engine_help
from rdlab.simulate.result import CONCENTRATION
from rdlab.system import FlowNoise, Grid, System

ENGINES = available_engines()
GRID = [e for e in ENGINES if get_engine(e).capabilities.grid]
WELL_MIXED = [e for e in ENGINES if get_engine(e).capabilities.well_mixed]
STEPPING = [e for e in ENGINES if get_engine(e).capabilities.stepping]


def gray_scott(n_samples=3):
    base = System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=0.04, feed=[1, 0],
                        grid=Grid(10, 8, 1.0, "9-point"))
    return base.samples(k=np.linspace(0.055, 0.065, n_samples))


def gray_scott_start(system, seed=0):
    return initial.with_squares(system, np.random.default_rng(seed),
                                square={"U": 0.5, "V": 0.25}, size=3, noise=0.05)


def decay():
    """A → B at k per sample: A(t) = exp(−k t) exactly; forward Euler gives (1 − k dt)^n."""
    net = ReactionNetwork.from_text(["A -> B : k = 0.5"])
    return System.build(net).samples(k=[0.2, 0.5, 1.5])


def test_the_registry_holds_the_four_engines_and_refuses_unknown_names():
    assert {"fast", "numpy", "torch", "ode"} <= set(ENGINES)
    system = gray_scott()
    with pytest.raises(ParameterError) as info:
        simulate(system, gray_scott_start(system), dt=0.5, n_steps=1, engine="cuda")
    for name in ENGINES:  # the message lists every registered engine
        assert repr(name) in str(info.value)
    for name in ENGINES:  # so does the CLI help
        assert f"{name}: " in engine_help()
    with pytest.raises(ValueError, match="already registered"):
        @register_engine
        class Impostor(get_engine("numpy")):
            name = "fast"


@pytest.mark.parametrize("engine", GRID)
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_grid_engines_agree_with_the_reference(engine, dtype, tol):
    system = gray_scott()
    x0 = gray_scott_start(system)
    ref = simulate(system, x0, dt=0.5, n_steps=120, snapshot_every=40, engine="numpy",
                   progress=False)[CONCENTRATION].values
    out = simulate(system, x0, dt=0.5, n_steps=120, snapshot_every=40, engine=engine,
                   dtype=dtype, progress=False)[CONCENTRATION].values
    assert out.dtype == np.dtype(dtype)
    assert np.abs(ref[:, -1] - ref[:, 0]).max() > 1e-2  # the run did move
    assert np.abs(out - ref).max() / np.abs(ref).max() <= tol


@pytest.mark.parametrize("engine", WELL_MIXED)
def test_well_mixed_decay(engine):
    system = decay()
    k, dt, n = np.array([0.2, 0.5, 1.5]), 0.1, 30
    options = {"rtol": 1e-10, "atol": 1e-12} if engine == "ode" else {}
    ds = simulate(system, np.array([1.0, 0.0]), dt=dt, n_steps=n, snapshot_every=10,
                  engine=engine, progress=False, **options)
    a = ds[CONCENTRATION].sel(species="A").values  # (sample, time)
    steps = ds["step"].values
    if get_engine(engine).capabilities.stepping:  # forward Euler, exactly
        expected = (1 - k[:, None] * dt) ** steps[None, :]
        np.testing.assert_allclose(a, expected, rtol=1e-12)
    else:
        np.testing.assert_allclose(a, np.exp(-np.outer(k, steps * dt)), rtol=1e-7)
    np.testing.assert_allclose(ds[CONCENTRATION].sum("species").values, 1.0, rtol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_refuse_what_they_cannot_do(engine):
    cls = get_engine(engine)
    caps = cls.capabilities
    grid = gray_scott()
    mixed = decay()
    if not caps.grid:
        with pytest.raises(ParameterError, match=f"the {engine} engine integrates a well-mixed"
                                                 f".*'{GRID[0]}'"):
            simulate(grid, gray_scott_start(grid), dt=0.5, n_steps=2, engine=engine,
                     progress=False)
    noisy = System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=0.04, feed=[1, 0],
                         grid=Grid(6, 6), noise=FlowNoise(0.01))
    if not caps.noise and caps.grid:  # (noise needs a grid)
        able = [e for e in ENGINES if get_engine(e).capabilities.noise]
        with pytest.raises(ParameterError, match=f"does not support flow noise; use engine "
                                                 f"'{able[0]}'"):
            simulate(noisy, np.ones(noisy.state_shape()), dt=0.5, n_steps=2, engine=engine,
                     progress=False)
    with pytest.raises(ParameterError, match=f"engine '{engine}' takes no option 'colour'"):
        simulate(mixed, np.array([1.0, 0.0]), dt=0.1, n_steps=2, engine=engine,
                 progress=False, colour="red")
    with pytest.raises(ParameterError, match="unknown dtype 'float16'"):
        simulate(mixed, np.array([1.0, 0.0]), dt=0.1, n_steps=2, engine=engine,
                 dtype="float16", progress=False)
    if not caps.drop_blow_ups:
        with pytest.raises(ParameterError, match="cannot drop samples"):
            simulate(mixed, np.array([1.0, 0.0]), dt=0.1, n_steps=2, engine=engine,
                     progress=False, trackers=[RunawayGuard(on_blow_up="drop")])
    if caps.stepping:  # an unstable explicit step is refused before anything runs
        with pytest.raises(StabilityError, match="unstable.*use dt ≤ 2.5"):
            simulate(grid, gray_scott_start(grid), dt=10.0, n_steps=2, engine=engine,
                     progress=False)


class Recorder(Tracker):
    """Keeps (step, state) every ``interval`` steps."""

    def __init__(self, interval):
        self.interval = interval
        self.seen = []

    def visit(self, view):
        self.seen.append((view.step, view.state.copy()))


@pytest.mark.parametrize("engine", ENGINES)
def test_trackers_see_the_same_run_on_every_engine(engine):
    mixed = not get_engine(engine).capabilities.grid
    system = decay() if mixed else gray_scott()
    x0 = np.array([1.0, 0.0]) if mixed else gray_scott_start(system)
    options = {"rtol": 1e-11, "atol": 1e-13} if engine == "ode" else {}
    ref_engine = "ode" if mixed else "numpy"
    ref = Recorder(7)
    simulate(system, x0, dt=0.1, n_steps=30, engine=ref_engine, progress=False,
             trackers=[ref], **({"rtol": 1e-11, "atol": 1e-13} if mixed else {}))
    rec = Recorder(7)
    ds = simulate(system, x0, dt=0.1, n_steps=30, snapshot_steps=[0, 14, 30], engine=engine,
                  progress=False, trackers=[rec], **options)
    assert [s for s, _ in rec.seen] == [0, 7, 14, 21, 28] == [s for s, _ in ref.seen]
    for (_, got), (_, want) in zip(rec.seen, ref.seen):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # the tracker's state at step 14 is the stored snapshot
    np.testing.assert_array_equal(np.moveaxis(ds[CONCENTRATION].values, 0, 1)[1],
                                  rec.seen[2][1])
    assert ds["stopped_step"].values.tolist() == [-1] * system.batch_size


@pytest.mark.parametrize("engine", ENGINES)
def test_a_tracker_can_stop_samples_and_the_whole_run(engine):
    mixed = not get_engine(engine).capabilities.grid
    system = decay() if mixed else gray_scott()
    x0 = np.array([1.0, 0.0]) if mixed else gray_scott_start(system)

    def stop_second(view):
        if view.step == 10:
            return np.arange(system.batch_size) == 1

    ds = simulate(system, x0, dt=0.1, n_steps=30, snapshot_every=5, engine=engine,
                  progress=False, trackers=[CallbackTracker(stop_second, interval=5)])
    c = ds[CONCENTRATION].values  # (sample, time, ...)
    assert ds["stopped_step"].values.tolist() == [-1, 10, -1]
    for t in range(3, c.shape[1]):  # snapshots after the stop are the state at step 10
        np.testing.assert_array_equal(c[1, t], c[1, 2])
    assert not np.allclose(c[0, -1], c[0, 2])  # the others went on
    full = simulate(system, x0, dt=0.1, n_steps=30, snapshot_every=5, engine=engine,
                    progress=False)[CONCENTRATION].values
    np.testing.assert_array_equal(c[[0, 2]], full[[0, 2]])

    calls = []

    def stop_all(view):
        calls.append(view.step)
        return view.step >= 10

    ds = simulate(system, x0, dt=0.1, n_steps=30, snapshot_every=5, engine=engine,
                  progress=False, trackers=[CallbackTracker(stop_all, interval=5)])
    assert ds["stopped_step"].values.tolist() == [10] * system.batch_size
    np.testing.assert_array_equal(ds[CONCENTRATION].values[:, -1], full[:, 2])


@pytest.mark.parametrize("engine", [e for e in STEPPING
                                    if get_engine(e).capabilities.drop_blow_ups])
def test_the_guard_can_drop_only_the_samples_that_blow_up(engine):
    net = ReactionNetwork.from_text(["A -> 2A : a = 0.0"])
    system = System.build(net, grid=Grid(4, 5)).samples(a=[0.0, 1.0, 0.1])
    x0 = np.ones(system.state_shape())
    with pytest.raises(SimulationError, match=r"sample 1 at step 35 \(the first bad step\)"):
        simulate(system, x0, dt=0.5, n_steps=100, engine=engine, progress=False)
    ds = simulate(system, x0, dt=0.5, n_steps=100, snapshot_every=32, engine=engine,
                  progress=False, trackers=[RunawayGuard(check_every=16, on_blow_up="drop")])
    c = ds[CONCENTRATION].values
    # 1.5^35 > 1e6: found at the check at step 48, NaN from the next snapshot on
    assert ds["stopped_step"].values.tolist() == [-1, 48, -1]
    assert np.isfinite(c[1, :2]).all() and np.isnan(c[1, 2:]).all()
    np.testing.assert_allclose(c[2, -1], 1.05**100, rtol=1e-10)
    np.testing.assert_array_equal(c[0], 1.0)


def test_the_adjoint_engine_draws_the_reference_noise():
    """With a noisy flow and the same seed, the adjoint engine repeats the NumPy run."""
    system = System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=0.04, feed=[1, 0],
                          grid=Grid(10, 8, 1.0, "9-point"), noise=FlowNoise(0.02, sigma=1.0))
    system = system.samples(k=[0.055, 0.062])
    x0 = gray_scott_start(system)
    runs = [simulate(system, x0, dt=0.5, n_steps=90, snapshot_every=30, engine=engine,
                     seed=4, progress=False)[CONCENTRATION].values
            for engine in ("numpy", "adjoint")]
    assert np.abs(runs[0][:, -1] - runs[0][:, 0]).max() > 1e-2
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-12, atol=1e-12)
