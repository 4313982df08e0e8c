import numpy as np
import pytest

from rdlab.chemistry import gray_scott_network, kitchen_sink_network
from rdlab.errors import ParameterError, StabilityError
from rdlab.system import Grid, System, stencil_eigenvalue

GRID = Grid(16, 16)


def gs(grid=GRID, **kw):
    base = dict(diffusion=[0.2, 0.1], flow=0.04, feed=[1.0, 0.0], grid=grid)
    base.update(kw)
    return System.build(gray_scott_network(), **base)


def test_build_broadcasts_to_batch():
    s = gs()
    assert s.batch_size == 1
    assert s.rates.shape == (1, 2) and s.diffusion.shape == (1, 2)
    assert s.flow.shape == (1,) and s.feed.shape == (1, 2)
    s2 = gs(flow=[0.01, 0.02, 0.03])
    assert s2.batch_size == 3 and s2.rates.shape == (3, 2)


def test_rates_by_name_override_defaults():
    s = System.build(gray_scott_network(), rates={"k": 0.065})
    np.testing.assert_array_equal(s.rates, [[1.0, 0.065]])


def test_sweep_cartesian_product_first_slowest():
    s = gs().sweep(f=[0.02, 0.04], k=[0.05, 0.06, 0.07])
    assert s.batch_size == 6
    np.testing.assert_allclose(s.flow, [0.02] * 3 + [0.04] * 3)
    np.testing.assert_allclose(s.rates[:, 1], [0.05, 0.06, 0.07] * 2)
    np.testing.assert_allclose(s.coords["k"], s.parameter("k"))
    s3 = gs().sweep(D_V=[0.05, 0.1], feed_U=[0.5])
    np.testing.assert_allclose(s3.diffusion[:, 1], [0.05, 0.1])
    np.testing.assert_allclose(s3.feed[:, 0], [0.5, 0.5])


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(rates=[1.0]), r"rate constant has 1 entries; expected 2"),
    (dict(rates=[1.0, -0.1]), r"negative \(-0.1\) at sample 0, V -> 0"),
    (dict(diffusion=[0.2, -0.1]), r"diffusion coefficient is negative .* V"),
    (dict(flow=float("nan")), r"flow rate f is NaN"),
    (dict(feed={"W": 1.0}), r"unknown species 'W'"),
    (dict(feed=[1.0, np.inf]), r"feed concentration is infinite"),
    (dict(rates=np.ones((2, 2)), flow=[0.1, 0.2, 0.3]), "do not broadcast"),
])
def test_bad_parameters_named(kwargs, fragment):
    with pytest.raises(ParameterError, match=fragment):
        gs(**kwargs)


def test_unknown_sweep_parameter_lists_the_known_ones():
    with pytest.raises(ParameterError, match=r"unknown parameter 'q'.*'f', 'k0', 'k'"):
        gs().sweep(q=[1.0])


def test_missing_rates_named():
    from rdlab.chemistry import ReactionNetwork

    with pytest.raises(ParameterError, match=r"no rate constant given for reactions \['B -> A'\]"):
        System.build(ReactionNetwork.from_text("A <-> B : 1.0, kr"))


@pytest.mark.parametrize("stencil, lam_min, limit", [("5-point", -8.0, 0.25),
                                                     ("9-point", -4.0, 0.5)])
def test_stencil_limits(stencil, lam_min, limit):
    ky, kx = np.meshgrid(np.linspace(0, 2 * np.pi, 65), np.linspace(0, 2 * np.pi, 65))
    lam = stencil_eigenvalue(stencil, ky, kx)
    assert lam.max() == pytest.approx(0.0, abs=1e-12)
    assert lam.min() == pytest.approx(lam_min)
    g = Grid(8, 8, dx=0.5, stencil=stencil)
    assert g.diffusion_number_limit == limit
    s = gs(grid=g, diffusion=[0.2, 0.1])
    dt_max = limit * 0.25 / 0.2
    s.check_time_step(dt_max)  # exactly at the limit is fine
    with pytest.raises(StabilityError, match=f"{stencil} stencil's limit {limit:g}"):
        s.check_time_step(dt_max * 1.01)


def test_flow_stability_and_bad_dt():
    s = gs(flow=0.5, grid=None)
    with pytest.raises(StabilityError, match="f·dt = 2.05"):
        s.check_time_step(4.1)
    with pytest.raises(StabilityError, match="positive"):
        s.check_time_step(-1.0)


def test_check_state_names_bad_cell():
    s = gs(grid=Grid(4, 5))
    x = np.ones((2, 4, 5))
    x[1, 2, 3] = np.nan
    with pytest.raises(ParameterError, match=r"species V, position \(2, 3\)"):
        s.check_state(x)
    with pytest.raises(ParameterError, match=r"shape \(3, 4, 5\)"):
        s.check_state(np.ones((3, 4, 5)))


def test_describe_round_trip():
    s = System.build(kitchen_sink_network(4), rates=np.linspace(0, 1, 48), diffusion=0.1,
                     flow=0.03, feed=[1, 0.5, 0.25, 0.1], grid=Grid(8, 9, 0.5, "5-point"))
    s = s.sweep(f=[0.01, 0.02])
    back = System.from_description(s.describe())
    assert back.network == s.network and back.grid == s.grid
    for name in ("rates", "diffusion", "flow", "feed"):
        np.testing.assert_array_equal(getattr(back, name), getattr(s, name))
    np.testing.assert_array_equal(back.coords["f"], [0.01, 0.02])


def test_samples_zip_a_parameter_table():
    s = gs().samples(f=[0.015, 0.025, 0.05], k=[0.05, 0.055, 0.065])
    assert s.batch_size == 3
    np.testing.assert_allclose(s.flow, [0.015, 0.025, 0.05])
    np.testing.assert_allclose(s.rates[:, 1], [0.05, 0.055, 0.065])
    np.testing.assert_allclose(s.coords["k"], [0.05, 0.055, 0.065])
    with pytest.raises(ParameterError, match="equal length"):
        gs().samples(f=[0.1, 0.2], k=[0.05])
    with pytest.raises(ParameterError, match=r"flow rate f is negative"):
        gs().samples(f=[-0.1])


def test_two_names_of_one_parameter_are_refused():
    with pytest.raises(ParameterError, match=r"'k' and 'k1' name the same parameter .*'V -> 0'"):
        gs().sweep(k=[0.05, 0.06], k1=[0.07])
    with pytest.raises(ParameterError, match=r"'k1' and 'k' name the same parameter"):
        gs().samples(k1=[0.05], k=[0.06])
    with pytest.raises(ParameterError, match=r"'k' and 'k1' name the same parameter"):
        System.build(gray_scott_network(), rates={"k": 0.05, "k1": 0.06})
    with pytest.raises(ParameterError, match=r"'f' is not a rate constant"):
        System.build(gray_scott_network(), rates={"f": 0.05})


def test_no_reaction_runs_silently_at_rate_zero():
    """A label that is another reaction's index name used to take that reaction's value,
    leaving it at rate 0 (issue 15); now such a network is refused, and every reaction
    without a rate must be given one."""
    from rdlab.chemistry import ReactionNetwork
    from rdlab.errors import NetworkError
    from rdlab.simulate_job.spec import SimulationSpec

    with pytest.raises(NetworkError, match=r"'k2' .* index name of reaction 2"):
        SimulationSpec(network=["A -> B : k2", "B -> C : 1", "C -> A"], grid="8",
                       parameters={"k2": 1.0}).resolve()
    spec = SimulationSpec(network=["A -> B : kab", "B -> C : 1", "C -> A"], grid="8",
                          steps=2, parameters={"kab": 0.5})
    with pytest.raises(ParameterError, match=r"no rate constant given for reactions \['C -> A'\]"):
        spec.resolve()
    spec = SimulationSpec(network=["A -> B : kab", "B -> C : 1", "C -> A"], grid="8",
                          steps=2, parameters={"kab": 0.5, "k2": 0.25})
    system, _ = spec.resolve()
    np.testing.assert_array_equal(system.rates[0], [0.5, 1.0, 0.25])
    net = ReactionNetwork.from_text(["A -> B : kab", "B -> C : 1", "C -> A"])
    assert np.all(System.build(net, rates={"kab": 1, "k2": 2}).rates > 0)
