"""The front door :func:`rdlab.simulate.simulate`: every engine through one call, the dataset
it returns, and runs that fail leave nothing that looks like a result."""

import json

import numpy as np
import pytest

from rdlab import initial
from rdlab.chemistry import ReactionNetwork, gray_scott_network
from rdlab.errors import ParameterError, SimulationError
from rdlab.simulate import simulate
from rdlab.simulate.result import CONCENTRATION
from rdlab.simulate_job.run import run_simulation
from rdlab.simulate_job.spec import SimulationSpec
from rdlab.system import FlowNoise, Grid, System


def gray_scott_sweep():
    base = System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=0.04, feed=[1, 0],
                        grid=Grid(16, 12, 1.0, "9-point"))
    return base.sweep(f=[0.03, 0.05], k=[0.055, 0.06, 0.065])


def test_dataset_layout_coords_and_attributes(rng):
    system = gray_scott_sweep()
    x0 = initial.with_squares(system, rng, square={"U": 0.5, "V": 0.25}, size=4)
    ds = simulate(system, x0, dt=0.25, n_steps=30, snapshot_every=10, seed=3, progress=False)
    c = ds[CONCENTRATION]
    assert c.dims == ("sample", "time", "species", "y", "x")
    assert c.shape == (6, 4, 2, 16, 12)
    assert ds["step"].values.tolist() == [0, 10, 20, 30]
    np.testing.assert_allclose(ds["time"].values, [0, 2.5, 5, 7.5])
    np.testing.assert_allclose(ds["f"].values, np.repeat([0.03, 0.05], 3))
    np.testing.assert_allclose(ds["k"].values, [0.055, 0.06, 0.065] * 2)
    np.testing.assert_allclose(ds["x"].values, np.arange(12) + 0.5)
    assert ds.attrs["seed"] == 3
    assert json.loads(ds.attrs["config"])["n_steps"] == 30
    assert json.loads(ds.attrs["system"])["network"]
    np.testing.assert_array_equal(c.isel(time=0).values, x0)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_grid_engines_agree_through_the_front_door(dtype, tol, rng):
    system = gray_scott_sweep()
    x0 = initial.with_squares(system, rng, square={"U": 0.5, "V": 0.25}, size=5, noise=0.05)
    runs = {engine: simulate(system, x0, dt=0.5, n_steps=200, snapshot_every=50,
                             engine=engine, dtype=dtype, progress=False)[CONCENTRATION].values
            for engine in ("numpy", "fast", "torch")}
    ref = simulate(system, x0, dt=0.5, n_steps=200, snapshot_every=50, engine="numpy",
                   dtype="float64", progress=False)[CONCENTRATION].values
    for engine, out in runs.items():
        assert out.dtype == np.dtype(dtype), engine
        err = np.abs(out - ref).max() / np.abs(ref).max()
        assert err <= tol, f"{engine} {dtype}: relative error {err:.3g}"


def test_ode_engine_through_the_front_door_is_exact_exponential_decay():
    net = ReactionNetwork.from_text(["A -> B : k = 0.7"])
    system = System.build(net).sweep(k=[0.3, 0.7, 2.0])
    ds = simulate(system, np.array([1.0, 0.0]), dt=0.1, n_steps=20, snapshot_every=5,
                  engine="ode", progress=False, rtol=1e-10, atol=1e-12)
    assert ds[CONCENTRATION].dims == ("sample", "time", "species")
    t = ds["time"].values
    expected = np.exp(-np.outer([0.3, 0.7, 2.0], t))
    np.testing.assert_allclose(ds[CONCENTRATION].sel(species="A").values, expected, rtol=1e-7)
    np.testing.assert_allclose(ds[CONCENTRATION].sum("species").values, 1.0, rtol=1e-9)


def test_bad_front_door_arguments_are_named(rng):
    system = gray_scott_sweep()
    x0 = np.ones(system.state_shape())
    with pytest.raises(ParameterError, match="unknown engine 'cuda'"):
        simulate(system, x0, dt=0.1, n_steps=1, engine="cuda")
    with pytest.raises(ParameterError, match="unknown dtype 'float16'"):
        simulate(system, x0, dt=0.1, n_steps=1, dtype="float16")
    with pytest.raises(ParameterError, match="snapshot step 9 is outside 0..5"):
        simulate(system, x0, dt=0.1, n_steps=5, snapshot_steps=[0, 9])
    well_mixed = System.build(gray_scott_network(), flow=0.04, feed=[1, 0])
    with pytest.raises(ParameterError, match="dt must be a positive number"):
        simulate(well_mixed, np.array([1.0, 0.1]), dt=-1, n_steps=3, engine="ode")
    with pytest.raises(ParameterError, match="needs a grid"):
        System.build(gray_scott_network(), flow=0.04, feed=[1, 0],
                     noise=FlowNoise(amplitude=0.01))


def test_a_run_that_blows_up_writes_nothing_and_names_the_first_bad_step(tmp_path):
    spec = SimulationSpec(preset="gray-scott", parameters={"f": 0.04, "k": 0.06}, grid="8",
                          steps=50, dt=0.25, engine="numpy", initial="uniform",
                          initial_options={"values": [1e3, 1e3]})
    with pytest.raises(SimulationError, match=r"sample 0 at step (\d+) \(the first bad step\)"
                       ) as info:
        run_simulation(spec, tmp_path / "run", progress=False)
    assert "k=0.06" in str(info.value)
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith((".lock", ".owner"))] == []


def test_well_mixed_run_folder_has_a_time_series_plot(tmp_path):
    spec = SimulationSpec(preset="brusselator", grid="none", steps=200, dt=0.05,
                          engine="ode", snapshots=41)
    metrics = run_simulation(spec, tmp_path / "run", progress=False)
    assert metrics["figures"] == ["time_series.png"]
    assert (tmp_path / "run" / "time_series.png").stat().st_size > 1000


@pytest.mark.parametrize("engine", ["fast", "numpy", "torch"])
def test_every_grid_engine_names_the_first_bad_step(engine):
    # sample 2 grows ×1.5 per step (A -> 2A at rate 1, dt 0.5): first beyond 1e6 at step
    # 35, first beyond 1e8 at step 46; the checks run every 64 steps
    net = ReactionNetwork.from_text(["A -> 2A : a = 0.0"])
    system = System.build(net, grid=Grid(4, 5)).samples(a=[0.0, 0.0, 1.0])
    x0 = np.ones(system.state_shape())
    with pytest.raises(SimulationError, match=r"sample 2 at step 35 \(the first bad step\); "
                                              r"parameters f=0, a=1"):
        simulate(system, x0, dt=0.5, n_steps=100, engine=engine, progress=False)
    with pytest.raises(SimulationError, match=r"sample 2 at step 46 \(the first bad step\)"):
        simulate(system, x0, dt=0.5, n_steps=100, engine=engine, progress=False,
                 runaway_limit=1e8)
    ds = simulate(system, x0, dt=0.5, n_steps=40, engine=engine, progress=False,
                  runaway_limit=1e8)
    np.testing.assert_allclose(ds[CONCENTRATION].values[2, -1], 1.5**40, rtol=1e-10)


def test_ode_engine_names_the_first_bad_time_and_takes_the_limit():
    net = ReactionNetwork.from_text(["A -> 2A : a = 1.0"])
    system = System.build(net)
    with pytest.raises(SimulationError, match=r"sample 0 blew up .* at t = 14, the first"):
        simulate(system, np.ones((1, 1)), dt=1.0, n_steps=20, snapshot_every=1,
                 engine="ode", progress=False)  # e^13 < 1e6 < e^14
    ds = simulate(system, np.ones((1, 1)), dt=1.0, n_steps=20, engine="ode", progress=False,
                  runaway_limit=1e9)
    np.testing.assert_allclose(ds[CONCENTRATION].values[0, -1, 0], np.exp(20), rtol=1e-6)


def test_runaway_limit_is_a_config_key(tmp_path):
    spec = SimulationSpec(network=["A -> 2A : a = 1.0"], grid="4", steps=40, dt=0.5,
                          engine="numpy", initial="uniform", initial_options={"values": [1.0]},
                          movie="none")
    with pytest.raises(SimulationError, match=r"step 35 \(the first bad step\)"):
        run_simulation(spec, tmp_path / "run", progress=False)
    spec = SimulationSpec.from_dict({**SimulationSpec(**{**spec.to_dict()}).to_dict(),
                                     "runaway_limit": 1e8})
    metrics = run_simulation(spec, tmp_path / "run", progress=False)
    assert metrics["final_mean"]["A"] == pytest.approx(1.5**40)
    assert "runaway_limit: 100000000.0" in (tmp_path / "run" / "config.yaml").read_text()
