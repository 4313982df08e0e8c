import numpy as np
import pytest

from rdlab.errors import ParameterError
from rdlab.simulation_spec import SimulationSpec, parse_grid, parse_values


def test_parse_values():
    np.testing.assert_allclose(parse_values("f", "0.02:0.06:9"), np.linspace(0.02, 0.06, 9))
    np.testing.assert_allclose(parse_values("f", "0.1,0.2"), [0.1, 0.2])
    np.testing.assert_allclose(parse_values("f", 0.04), [0.04])
    with pytest.raises(ParameterError, match=r"value 'abc' of parameter 'f'"):
        parse_values("f", "abc")
    with pytest.raises(ParameterError, match="non-finite"):
        parse_values("f", "nan")


def test_parse_grid():
    assert parse_grid("128x96") == (128, 96)
    assert parse_grid("64") == (64, 64)
    assert parse_grid("none") is None
    with pytest.raises(ParameterError, match="'12y3'"):
        parse_grid("12y3")


def test_gray_scott_sweep_resolves_to_a_batch():
    spec = SimulationSpec(parameters={"f": "0.02:0.06:9", "k": "0.04:0.07:7"}, grid="16x16")
    system, x0 = spec.resolve()
    assert system.batch_size == 63 and x0.shape == (63, 2, 16, 16)
    assert set(system.coords) == {"f", "k"}
    np.testing.assert_allclose(system.feed[0], [1.0, 0.0])
    np.testing.assert_allclose(system.diffusion[0], [0.2, 0.1])


def test_config_reruns_identically():
    spec = SimulationSpec(preset="dense-gs", grid="8x8", seed=3)
    system, x0 = spec.resolve()
    again = SimulationSpec.from_dict(spec.to_dict())
    system2, x02 = again.resolve()
    for name in ("rates", "diffusion", "flow", "feed"):
        np.testing.assert_array_equal(getattr(system, name), getattr(system2, name))
    np.testing.assert_array_equal(x0, x02)
    assert system2.network == system.network


def test_unknown_parameter_and_key_named():
    with pytest.raises(ParameterError, match="unknown parameter 'q'"):
        SimulationSpec(parameters={"q": 1.0}).resolve()
    with pytest.raises(ParameterError, match=r"unknown config keys \['colour'\]"):
        SimulationSpec.from_dict({"colour": "red"})


def test_negative_rate_in_sweep_named():
    with pytest.raises(ParameterError, match=r"rate constant is negative \(-0.01\)"):
        SimulationSpec(parameters={"k": "-0.01,0.05"}, grid="8").resolve()
