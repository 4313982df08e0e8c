import numpy as np
import pytest

from rdlab.errors import ParameterError
from rdlab.simulate_job.spec import SimulationSpec, parse_grid, parse_values


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


@pytest.mark.parametrize("spec, fragment", [
    ("0.06:0.02:0", r"asks for 0 value\(s\): the count"),
    ("0.06:0.02:1", r"asks for 1 value\(s\): the count"),
    ("0.02:0.06:x", r"the count 'x' .* not a whole number"),
    ("0.02:0.06:2.0", r"the count '2.0' .* not a whole number"),
    ("0.02:0.06:200000", r"at most 100,000"),
    ("1:2:3:4", r"cannot read the value"),
    ("-1e308:1e308:3", r"non-finite"),
    ([], r"empty list"),
    ([0.1, "a"], r"cannot read the value"),
    ([[0.1]], r"cannot read the value"),
    (True, r"cannot read the value"),
    (None, r"cannot read the value"),
    (10**400, r"cannot read the value"),
])
def test_parse_values_names_the_problem(spec, fragment):
    with pytest.raises(ParameterError, match=fragment):
        parse_values("f", spec)


def test_parse_grid_says_none_for_well_mixed():
    assert parse_grid(32) == (32, 32)
    assert parse_grid(" 8 X 9 ") == (8, 9)
    for bad in ("0", "0x5", "2", "5x2"):
        with pytest.raises(ParameterError, match=rf"grid '{bad}' is too small.*'none'"):
            parse_grid(bad)
    for bad in ("", "x", "8x", "1e3", "-8", "8x8x8", [8]):
        with pytest.raises(ParameterError, match="cannot read grid"):
            parse_grid(bad)


@pytest.mark.parametrize("key, value", [
    ("steps", "ten"), ("steps", 0), ("steps", 2.0), ("snapshots", 1), ("snapshots", -5),
    ("seed", -1), ("seed", True), ("dt", 0), ("dt", float("nan")), ("dx", -1), ("grid", [1]),
    ("parameters", [1, 2]), ("parameters", {1: 2}), ("movie", "avi"), ("engine", "cuda"),
    ("dtype", "float16"), ("stencil", "7-point"), ("initial", "spots"), ("n_species", 1),
    ("initial_options", "U=1"), ("runaway_limit", 0), ("runaway_limit", float("inf")),
    ("species", "AB"), ("network", 3),
])
def test_wrong_types_and_ranges_name_the_key(key, value):
    with pytest.raises(ParameterError, match=rf"'{key}' must be .*got"):
        SimulationSpec.from_dict({key: value})
    with pytest.raises(ParameterError, match=rf"'{key}' must be"):
        SimulationSpec(**{key: value}).resolve()


def test_config_files_are_named_in_errors(tmp_path):
    from rdlab.errors import DataError

    cases = {"list.yaml": ("- 1\n", DataError, "mapping"),
             "empty.yaml": ("", DataError, "empty"),
             "bad.yaml": ("a: [1\n", DataError, "not valid YAML"),
             "steps.yaml": ("steps: ten\n", ParameterError, "'steps'"),
             "keys.yaml": ("colour: red\n", ParameterError, r"unknown config keys \['colour'\]")}
    for name, (text, error, fragment) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(error, match=rf"config file '.*{name}'.*{fragment}"):
            SimulationSpec.from_file(tmp_path / name)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DataError, match=r"'.*bin.yaml' is not a text"):
        SimulationSpec.from_file(tmp_path / "bin.yaml")
    with pytest.raises(DataError, match="is a folder"):
        SimulationSpec.from_file(tmp_path)


def test_memory_and_reaction_count_are_checked_before_building(monkeypatch):
    from rdlab.errors import NetworkError
    from rdlab.simulate import budget

    with pytest.raises(ParameterError, match=r"needs about .* memory .*10,000,000,000 cells"):
        SimulationSpec(grid="100000x100000").resolve()
    # a limit of 1 MiB: a 64² float64 run with 40 snapshots (2.8 MiB) is refused
    monkeypatch.setattr(budget, "memory_limit", lambda: 2**20)
    with pytest.raises(ParameterError, match=r"about 2.8 MiB .* limit of 1.0 MiB"):
        SimulationSpec(grid="64", steps=100).resolve()
    SimulationSpec(grid="64", steps=100, snapshots=2, dtype="float32").resolve()
    with pytest.raises(NetworkError, match=r"26,100 reactions"):
        SimulationSpec(preset="kitchen-sink", n_species=30).resolve()


def test_user_values_replace_preset_defaults_by_any_name():
    system, _ = SimulationSpec(grid="8", parameters={"k1": 0.05}).resolve()
    np.testing.assert_allclose(system.rates[0], [1.0, 0.05])
    spec = SimulationSpec(preset="coupled-gray-scott", grid="8", parameters={"k2": 0.07})
    system, _ = spec.resolve()
    np.testing.assert_allclose(system.parameter("k2"), [0.07])
    np.testing.assert_allclose(system.rates[0, 3], 1.0)  # U2 + 2V2 -> 3V2 keeps its rate


def test_uniform_initial_state_takes_base_or_values():
    system, x0 = SimulationSpec(grid="8", initial="uniform",
                                initial_options={"base": {"U": 0.5, "V": 0.25}}).resolve()
    np.testing.assert_allclose(x0[0, :, 3, 3], [0.5, 0.25])
    with pytest.raises(ParameterError, match="'uniform' takes one option"):
        SimulationSpec(grid="8", initial="uniform",
                       initial_options={"square": {"U": 1.0}}).resolve()
    _, x0 = SimulationSpec(grid="none", engine="ode", initial="uniform",
                           initial_options={"values": [0.5, 0.25]}).resolve()
    np.testing.assert_allclose(x0, [[0.5, 0.25]])
