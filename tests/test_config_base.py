"""The one config vocabulary (:mod:`rdlab.settings`): the walker over dataclass annotations
on a small example, and every config that adopts it (round trips, a wrong type per field)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

import pytest

from rdlab.errors import DataError, ParameterError
from rdlab.settings import Settings, describe, parse_overrides, read_mapping


@dataclass
class Optimiser(Settings):
    lr: float = 1e-3
    steps: int | tuple[int, ...] = 10
    mode: Literal["adam", "sgd"] = "adam"
    patience: int | None = None


@dataclass
class Example(Settings):
    _aliases = {"lr": "optimiser.lr", "steps": "optimiser.steps"}
    _internal = frozenset({"source"})

    name: str = "x"
    clip: bool = True
    size: tuple[int, int] = (4, 4)
    times: tuple[float, ...] = ()
    tags: list[str] = field(default_factory=list)
    extra: dict | None = None
    optimiser: Optimiser = field(default_factory=Optimiser)
    backup: Optimiser | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        self.check_types()
        if self.optimiser.lr <= 0:
            raise ParameterError(f"optimiser.lr must be positive, got {self.optimiser.lr}")


def test_every_type_case_is_read_and_normalised():
    ex = Example.from_dict({"name": "a", "clip": False, "size": [3, 5], "times": [1, 2.5],
                            "tags": ["u"], "extra": {"k": 1},
                            "optimiser": {"lr": 1, "steps": [1, 2], "mode": "sgd"},
                            "backup": {"patience": 3}})
    assert ex.size == (3, 5) and ex.times == (1.0, 2.5) and ex.tags == ["u"]
    assert isinstance(ex.optimiser.lr, float) and ex.optimiser.lr == 1.0  # int → float
    assert ex.optimiser.steps == (1, 2) and ex.optimiser.mode == "sgd"
    assert ex.backup == Optimiser(patience=3)
    assert Example.from_dict({}) == Example()
    assert Example(optimiser={"lr": 2}).optimiser == Optimiser(lr=2.0)  # built directly


@pytest.mark.parametrize("data, match", [
    ({"clip": "yes"}, r"'clip' must be true or false, got 'yes' \(text\)"),
    ({"clip": 1}, r"'clip' must be true or false, got 1"),
    ({"size": 4}, r"'size' must be a list of 2 whole numbers, got 4"),
    ({"size": [4, 4, 4]}, r"'size' must be a list of 2 whole numbers"),
    ({"size": [4, 4.5]}, r"'size' must be a list of 2 whole numbers"),
    ({"size": [True, 4]}, r"'size' must be"),
    ({"times": [1, "b"]}, r"'times' must be a list of finite numbers"),
    ({"tags": "u"}, r"'tags' must be a list of texts"),
    ({"name": 3}, r"'name' must be text, got 3 \(whole number\)"),
    ({"extra": [1]}, r"'extra' must be a mapping or null"),
    ({"optimiser": {"lr": True}}, r"'optimiser.lr' must be a finite number, got True"),
    ({"optimiser": {"lr": float("nan")}}, r"'optimiser.lr' must be a finite number, got nan"),
    ({"optimiser": {"lr": float("inf")}}, r"'optimiser.lr' must be a finite number, got inf"),
    ({"optimiser": {"lr": "1e-3"}}, r"'optimiser.lr' must be a finite number, got '1e-3'"),
    ({"optimiser": {"steps": 2.0}}, r"'optimiser.steps' must be a whole number or a list"),
    ({"optimiser": {"mode": "rmsprop"}},
     r"'optimiser.mode' must be one of \['adam', 'sgd'\], got 'rmsprop'"),
    ({"optimiser": {"patience": False}}, r"'optimiser.patience' must be a whole number or "
                                         r"null, got False"),
    ({"optimiser": 3}, r"'optimiser' must be a mapping of Optimiser settings, got 3"),
    ({"backup": [1]}, r"'backup' must be a mapping of Optimiser settings or null"),
])
def test_a_wrong_type_names_source_key_value_and_type(data, match):
    with pytest.raises(ParameterError, match=r"^c\.yaml: " + match):
        Example.from_dict(data, source="c.yaml")


def test_unknown_keys_are_listed_with_a_suggestion():
    with pytest.raises(ParameterError, match=r"^x: unknown config keys \['nmae'\] \(did you "
                       r"mean 'name'\?\); known keys are \['backup', 'clip', 'extra', "
                       r"'name', 'optimiser', 'size', 'tags', 'times'\]"):
        Example.from_dict({"nmae": 1}, source="x")
    with pytest.raises(ParameterError, match=r"unknown config keys \['optimiser.lrr'\] \(did "
                       r"you mean 'optimiser.lr'\?\); known keys of optimiser are \['lr', "
                       r"'mode', 'patience', 'steps'\]"):
        Example.from_dict({"optimiser": {"lrr": 1}})
    with pytest.raises(ParameterError, match=r"unknown config keys \['source'\]"):
        Example.from_dict({"source": "here"})  # internal fields are not read
    with pytest.raises(ParameterError, match=r"must be a mapping of settings.*list"):
        Example.from_dict([1, 2])


def test_flat_aliases_map_into_their_section():
    assert Example.from_dict({"lr": 0.5, "steps": [1, 2]}) == Example(
        optimiser=Optimiser(lr=0.5, steps=(1, 2)))
    with pytest.raises(ParameterError, match=r"lr is given twice, alone and as optimiser.lr"):
        Example.from_dict({"lr": 0.5, "optimiser": {"lr": 0.1}})


def test_round_trips_through_dict_and_yaml(tmp_path):
    ex = Example(name="b", size=(5, 6), times=(0.5,), tags=["t"], extra={"a": [1, 2]},
                 optimiser=Optimiser(lr=0.25, steps=(3, 4), mode="sgd"),
                 backup=Optimiser(patience=2), source="kept out")
    d = ex.to_dict()
    assert "source" not in d and d["size"] == [5, 6] and d["optimiser"]["steps"] == [3, 4]
    assert Example.from_dict(d) == dataclasses.replace(ex, source=None)
    text = ex.to_yaml(tmp_path / "c.yaml")
    assert (tmp_path / "c.yaml").read_text() == text
    assert Example.from_yaml(tmp_path / "c.yaml") == dataclasses.replace(ex, source=None)


def test_replace_and_dotted_overrides():
    ex = Example(source="file")
    new = ex.replace(**{"optimiser.lr": 0.1, "steps": [2, 3], "name": "n"})
    assert new.optimiser == Optimiser(lr=0.1, steps=(2, 3)) and new.name == "n"
    assert new.source == "file" and ex.optimiser.lr == 1e-3  # a copy; internal fields kept
    assert ex.with_overrides(["optimiser.mode=sgd", "size=[8, 9]"]) == Example(
        size=(8, 9), optimiser=Optimiser(mode="sgd"), source="file")
    with pytest.raises(ParameterError, match=r"^--set: 'optimiser.lr' must be a finite number, "
                       r"got 'abc'"):
        ex.with_overrides(["optimiser.lr=abc"])
    with pytest.raises(ParameterError, match=r"optimiser.lr must be positive, got -1"):
        ex.with_overrides(["optimiser.lr=-1"])  # the config's own range check
    with pytest.raises(ParameterError, match=r"'extra.a': extra is not a section"):
        ex.replace(**{"extra.a": 1})
    with pytest.raises(ParameterError, match=r"unknown config keys \['optimiser.bogus'\]"):
        ex.replace(**{"optimiser.bogus": 1})
    with pytest.raises(ParameterError, match=r"unknown config keys \['optimizer'\] \(did you "
                       r"mean 'optimiser'\?\)"):
        ex.replace(**{"optimizer.lr": 1})


def test_override_pairs_are_read_as_yaml():
    assert parse_overrides(["a.b=1e-4", "c=[1, 2]", "d=text", "e="]) == {
        "a.b": 1e-4, "c": [1, 2], "d": "text", "e": None}
    for bad, match in (("steps", r"KEY=VALUE.*'steps'"), ("=3", r"KEY=VALUE.*'=3'"),
                       ("a=[1,", r"'a=\[1,'.*not valid YAML")):
        with pytest.raises(ParameterError, match=match):
            parse_overrides([bad])


@pytest.mark.parametrize("name, content, match", [
    ("missing.yaml", None, r"config file '.*missing.yaml' does not exist"),
    ("folder", "DIR", r"config file '.*folder' is a folder"),
    ("bin.yaml", b"\xff\xfe\x00\x01", r"config file '.*bin.yaml' is not a text file"),
    ("nul.yaml", b"a: 1\x00", r"config file '.*nul.yaml' is not a text file"),
    ("bad.yaml", "a: [1\n", r"config file '.*bad.yaml' is not valid YAML: .*line"),
    ("bad.toml", "a = \n", r"config file '.*bad.toml' is not valid TOML"),
    ("empty.yaml", "", r"config file '.*empty.yaml' is empty"),
    ("comment.yaml", "# nothing\n", r"config file '.*comment.yaml' is empty"),
    ("list.yaml", "- 1\n", r"config file '.*list.yaml' must be a mapping.*got a list \[1\]"),
    ("scalar.yaml", "fig2a\n", r"config file '.*scalar.yaml' must be a mapping.*got text"),
])
def test_files_that_are_not_a_mapping_are_refused_by_name(tmp_path, name, content, match):
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_mapping(path)
    with pytest.raises(DataError, match=match):
        Example.from_yaml(path)


def test_yaml_and_toml_read_numbers_as_numbers(tmp_path):
    (tmp_path / "a.yaml").write_text("lr: 1e-4\nsize: [2, 3]\n")
    (tmp_path / "a.toml").write_text("lr = 1e-4\nsize = [2, 3]\n")
    assert read_mapping(tmp_path / "a.yaml") == read_mapping(tmp_path / "a.toml") == {
        "lr": 1e-4, "size": [2, 3]}
    with pytest.raises(ParameterError, match=r"config file '.*a.yaml': 'size' must be a list "
                       r"of 2 whole numbers, got \[2, 3, 4\]"):
        (tmp_path / "a.yaml").write_text("size: [2, 3, 4]\n")
        Example.from_yaml(tmp_path / "a.yaml")


def test_describe_words():
    assert describe(int | None) == "a whole number or null"
    assert describe(tuple[float, ...]) == "a list of finite numbers"
    assert describe(Literal["a", "b"]) == "one of ['a', 'b']"


# ------------------------------------------------------------------ the adopted configs
def _configs():
    from rdlab.classify.augment import AugmentConfig
    from rdlab.classify.training import TrainConfig
    from rdlab.discover.workflow import DiscoverSettings
    from rdlab.simulate_job.spec import SimulationSpec

    return [
        AugmentConfig(rotation=10.0, legacy_shift=True),
        TrainConfig(epochs=3, schedule="plateau", augment=AugmentConfig(zoom=0.1),
                    dropout=0.2, time_budget_s=5.0),
        DiscoverSettings(n_reactions=3, sweep=(1, 2), noise=0.01, derivatives="fd",
                         estimator={"seed": 2}),
        SimulationSpec(preset="brusselator", parameters={"a": "1:2:3"}, grid="8x8", dt=0.01,
                       steps=10, seed=3, initial="random", initial_options={"low": 0.5}),
    ]


@pytest.mark.parametrize("config", _configs(), ids=lambda c: type(c).__name__)
def test_each_config_round_trips_through_dict_and_yaml(config, tmp_path):
    cls = type(config)
    assert cls.from_dict(config.to_dict()) == config
    config.to_yaml(tmp_path / "c.yaml")
    assert cls.from_yaml(tmp_path / "c.yaml") == config


def _wrong_value(hint):
    """A value of another kind than ``hint`` allows."""
    args = typing.get_args(hint)
    if hint is str or str in args:
        return {"a": 1} if not (dict in args or hint is dict) else 3.5
    return "wrong-kind"


@pytest.mark.parametrize("config", _configs(), ids=lambda c: type(c).__name__)
def test_each_config_refuses_a_wrong_type_in_every_field(config):
    cls = type(config)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is typing.Any or typing.get_origin(hint) is dict and typing.get_args(
                hint)[1] is typing.Any:
            continue  # the parameters mapping: its values are read by parse_values
        wrong = _wrong_value(hint)
        with pytest.raises(ParameterError, match=rf"'{f.name}' must be .*{wrong!r}"):
            cls.from_dict({**config.to_dict(), f.name: wrong}, source="c.yaml")


# ------------------------------------------------------------------ the design config
OLD_FIG4_BISTABLE_QUICK = """\
name: fig4-bistable-quick
seed: 1
species: 5
network: gs
size: [32, 32]
z_bits: 16
batch: 8
flow: 0.01
flow_noise: {amplitude: 0.8, sigma: 3.0}
initial:
  rates: {"A + 2B -> 3B": 2.0, "B -> A": 0.24}
  other_rates: 0.0
  diffusion: 0.05
  feed: [1, 0, 0, 0, 0]
loss:
  dissipation: {terms: [diffusion], weight: 0.04, variance_weight: 0.04, spread: mad}
  information: {weight: 1.0}
  mean_drift: {weight: 1.0}
  step_size: {delta_max: 0.3, weight: 10.0}
stages: [64, 128]
steps: [300, 300]
lr: 1.0e-4
beta1: 0.95
eps: 1.0e-7
plateau_patience: null
early_stop_patience: null
eval_dt_divisors: [10]
eval_times: [10, 100, 1000]
controls: 8
"""

OLD_NAMES = {"dense-gs": "gs", "dense": "paper"}


def flat(config: dict) -> dict:
    """A design config dump as the flat config of before the sections (old network names,
    ``eval_`` keys)."""
    from rdlab.design.config import FLAT_KEYS

    out = {k: v for k, v in config.items() if k not in ("model", "generator", "optimiser",
                                                         "evaluation")}
    for key, dotted in FLAT_KEYS.items():
        section, leaf = dotted.split(".")
        out[key] = config[section][leaf]
    out["network"] = OLD_NAMES.get(out["network"], out["network"])
    return out


def test_an_old_flat_design_config_equals_its_bundled_sectioned_one(tmp_path):
    from rdlab.design.config import load_config

    (tmp_path / "old.yaml").write_text(OLD_FIG4_BISTABLE_QUICK)
    old, new = load_config(tmp_path / "old.yaml"), load_config("fig4-bistable-quick")
    assert old.model.network == "dense-gs" and old.optimiser.steps == (300, 300)
    assert old.to_dict() == new.to_dict()


def test_every_bundled_design_config_reads_the_same_flat(tmp_path):
    from rdlab.design.config import DesignConfig, bundled_configs, load_config

    for name in bundled_configs():
        config = load_config(name)
        d = config.to_dict()
        assert set(d) == {"name", "seed", "device", "deterministic", "dtype", "model",
                          "generator", "loss",
                          "optimiser", "evaluation", "init_from", "initial"}
        assert DesignConfig.from_dict(flat(d)) == DesignConfig.from_dict(d)
        assert DesignConfig.from_dict(d).to_dict() == d  # the dict round trip
        config.to_yaml(tmp_path / f"{name}.yaml")  # and the YAML one (source aside)
        again = load_config(tmp_path / f"{name}.yaml")
        assert again.to_dict() == d and again.source == str(tmp_path / f"{name}.yaml")


def test_flat_and_dotted_overrides_agree():
    from rdlab.design.config import load_config, parse_overrides

    flat_set = load_config("fig2a-quick", **parse_overrides(["steps=200", "eval_factor=2",
                                                             "network=dense"]))
    dotted = load_config("fig2a-quick", **parse_overrides(
        ["optimiser.steps=200", "evaluation.factor=2", "model.network=paper"]))
    assert flat_set == dotted
    assert flat_set.optimiser.steps == 200 and flat_set.model.network == "dense"
    assert flat_set.source.endswith("fig2a-quick.yaml")
    with pytest.raises(ParameterError, match=r"^--set: unknown config keys \['specis'\] "
                       r"\(did you mean 'species'\?\)"):
        load_config("fig2a-quick", specis=4)
    with pytest.raises(ParameterError, match=r"^--set: 'model.species' must be a whole "
                       r"number, got 'four'"):
        load_config("fig2a-quick", species="four")


def test_design_networks_take_the_presets_names():
    from rdlab.design.config import DesignConfig

    for old, new in (("gs", "dense-gs"), ("paper", "dense"), ("kitchen-sink", "kitchen-sink")):
        a = DesignConfig.from_dict({"model": {"network": old, "species": 3}})
        b = DesignConfig.from_dict({"network": new, "species": 3})
        assert a == b and a.model.network == new


def test_a_run_folder_of_a_flat_config_resumes(tmp_path):
    """A folder written before the sections (flat config.yaml and checkpoint config, old
    network name) is the same run as today's config: it resumes and finishes; a changed
    setting is still refused, named by its dotted key."""
    import torch
    import yaml

    from rdlab.design.config import DesignConfig
    from rdlab.design.optimise import optimise, read_history, resume_point

    tiny = DesignConfig.from_dict({"name": "tiny", "species": 3, "network": "dense-gs",
                                   "size": [8, 8], "stages": [2], "steps": 3, "z_bits": 4,
                                   "checkpoint_every": 1, "controls": 1})
    optimise(tiny, tmp_path, progress=False, time_budget_s=1e-9)  # stopped after one step
    old = flat(tiny.to_dict())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    ck["config"] = old
    torch.save(ck, tmp_path / "checkpoint.pt")
    assert resume_point(tiny, tmp_path)["state"]["step"] == 1
    with pytest.raises(ParameterError, match=r"optimiser.steps: 3 there, 4 here"):
        resume_point(tiny.replace(steps=4), tmp_path)
    optimise(tiny, tmp_path, progress=False)
    assert len(read_history(tmp_path)) == 3
