"""An inverse-design experiment as a config file (YAML or TOML).

Every setting of a run lives in one :class:`DesignConfig`: the model (network, grid, drive),
the generator, the loss terms, the optimiser and its schedules, the staged horizons and what
to evaluate afterwards. ``rdlab design CONFIG`` reads one; the bundled ones
(:func:`bundled_configs`) reproduce the paper's figures and have a ``-quick`` variant for a
laptop. Unknown keys are errors (a typo must not silently fall back to a default).

The loss is a mapping ``{term kind: options}`` (see :mod:`rdlab.design.objectives`). The
target term's ``image`` is a path (relative paths resolve against the config file) or
``bundled:NAME`` for an image shipped with rdlab (:func:`bundled_target`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rdlab.checks import torch_device
from rdlab.chemistry import dense
from rdlab.errors import DataError, ParameterError

__all__ = ["DesignConfig", "bundled_configs", "bundled_target", "load_config",
           "parse_overrides", "reaction_count"]

NETWORKS = ("kitchen-sink", "gs", "paper")
PER_STAGE = ("lr", "steps")  # settings that may list one value per stage
#: The most reactions a design network may have (kitchen-sink: 37 species); the matrices
#: and the per-cell rates of more would not fit a laptop, and enumerating them would hang.
MAX_REACTIONS = 50_000
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


#: The chemistry family (:mod:`rdlab.chemistry.dense`) behind each design network name.
FAMILIES = {"kitchen-sink": "kitchen-sink", "gs": "dense-gs", "paper": "dense"}


def reaction_count(network: str, species: int) -> int:
    """Reactions of the ``network`` enumeration over ``species`` species, without building
    it (kitchen-sink N²(N − 1), gs 2N(N − 1), paper N(N − 1)(N + 1))."""
    return dense.reaction_count(FAMILIES[network], species)


class _Loader(yaml.SafeLoader):
    """YAML as rdlab reads it: like ``yaml.safe_load``, but ``1e-4`` is a number (YAML 1.2)
    rather than the text YAML 1.1 makes of an exponent without a decimal point."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where."""
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{what} (line {mark.line + 1}, column {mark.column + 1})" if mark else what


def parse_overrides(pairs: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """``["steps=200", "size=[32, 32]"]`` → ``{"steps": 200, "size": [32, 32]}`` (each VALUE
    read as YAML); a pair without ``=``, an empty key or unreadable YAML is refused by name."""
    out: dict[str, Any] = {}
    for text in pairs or []:
        key, eq, value = text.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ParameterError(f"--set takes KEY=VALUE (VALUE in YAML), got {text!r}")
        try:
            out[key] = yaml.load(value, Loader=_Loader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as err:
            raise ParameterError(f"--set {text!r}: the value is not valid YAML: "
                                 f"{_yaml_problem(err)}") from None
    return out


def _at_least(value: int, low: int, name: str, what: str | None = None) -> None:
    if value < low:
        raise ParameterError(f"{name} must be {what or f'a whole number ≥ {low}'}, got "
                             f"{value!r}")


def _positive(value: float, name: str, unit: str = "") -> None:
    if not value > 0:
        raise ParameterError(f"{name} must be positive{unit}, got {value!r}")


def _memory_of(device: str) -> int | None:
    """Bytes of memory of ``device`` (the machine's RAM for the CPU), or None if unknown."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# ---------------------------------------------------------------------------- field types
def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as YAML/TOML gives it: lists for tuples) has the type ``hint``."""
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value))
    if hint is str:
        return isinstance(value, str)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    raise TypeError(f"no type check for {hint!r}")  # a new field type: teach _fits


_PLURAL = {"a whole number": "whole numbers", "a finite number": "finite numbers",
           "text": "texts", "true or false": "true/false values", "a mapping": "mappings"}


def _describe(hint: Any) -> str:
    """``hint`` in words, as an error message says what a key must be."""
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    simple = {bool: "true or false", int: "a whole number", float: "a finite number",
              str: "text", dict: "a mapping"}
    if hint in simple or origin is dict:
        return simple.get(hint, "a mapping")
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        return f"a list of {_PLURAL[_describe(args[0])]}"
    return f"a list of {len(args)} {_PLURAL[_describe(args[0])]}"


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "whole number", float: "number", str: "text",
            list: "list", dict: "mapping", type(None): "null"}.get(type(value),
                                                                  type(value).__name__)


def check_types(data: dict[str, Any], origin: str) -> None:
    """Refuse the first value of ``data`` whose type does not fit its :class:`DesignConfig`
    field, naming ``origin`` (the file or ``--set``), the key, the value and what it must
    be. Unknown keys are left to :meth:`DesignConfig.from_dict`."""
    hints = typing.get_type_hints(DesignConfig)
    for key, value in data.items():
        if key in hints and not _fits(value, hints[key]):
            raise ParameterError(f"{origin}: {key} must be {_describe(hints[key])}, got "
                                 f"{value!r} ({_kind(value)})")


@dataclass
class DesignConfig:
    """One experiment. Times in s (model units), lengths in cells.

    Model: ``species`` and ``network`` (``kitchen-sink`` / ``gs``: the public code's
    enumerations; ``paper``: eq. 17), domain ``size = (ny, nx)``, Euler step ``dt``,
    ``clip`` the state to [0, 10] after each step (the authors' code), groups of
    ``fixed`` parameters (``rates``, ``diffusion``, ``flow``, ``feed``) and an initial
    ``flow``; ``flow_noise = {amplitude, sigma}`` drives with a noisy flow (eq. 12).
    Generator: ``patch`` (its output size; smaller than the domain = placed in its centre
    on zero concentration), ``z_bits`` random bits, ``batch`` samples per step.
    Loss: ``{kind: options}``. Optimiser: Adam (``lr``, ``beta1``, ``beta2``, ``eps``),
    global gradient-norm clipping ``clip_norm``, LR halved at ``halve_at`` steps and on a
    plateau of ``plateau_patience`` steps (not below ``min_lr_ratio``·lr), early stop after
    ``early_stop_patience`` steps without improvement, at most ``steps`` steps per stage.
    Stages: horizons ``stages`` (number of Euler steps), optimised in turn, parameters
    carried forward (appendix D.3); ``lr`` and ``steps`` may be lists with one value per
    stage.
    ``init_from``: a finished run folder (or its ``model.pt``) whose θΨ, generator and
    encoder start this run instead of the paper's initialisation — to add longer stages to
    an optimised design; the models must have the same shapes.
    ``initial``: start values that replace parts of the paper's initialisation of θΨ —
    ``rates`` ``{reaction text: k}``, ``other_rates``, ``diffusion``, ``feed`` (see
    :meth:`~rdlab.design.parameters.DesignParameters.override_`) — to start from a known
    mechanism; not together with ``init_from``.
    ``device``: where the optimisation runs (``"cpu"``, ``"cuda"``, ...; the random draws
    then come from a generator on that device, so a seed gives device-specific results);
    evaluation and reports always run on the CPU.
    Evaluation: roll-outs to ``eval_factor`` × the last horizon, also at ``dt`` divided by
    each of ``eval_dt_divisors``; ``controls`` randomisations per control condition.
    """

    name: str = "design"
    seed: int = 1
    species: int = 4
    network: str = "kitchen-sink"
    size: tuple[int, int] = (64, 64)
    dt: float = 1.0
    clip: bool = True
    fixed: tuple[str, ...] = ()
    flow: float | None = None
    flow_noise: dict | None = None
    patch: int | None = None
    z_bits: int = 64
    batch: int = 1
    loss: dict = field(default_factory=lambda: {"target": {"image": "bundled:portrait"}})
    stages: tuple[int, ...] = (32,)
    steps: int | tuple[int, ...] = 2000
    lr: float | tuple[float, ...] = 1e-3
    beta1: float = 0.95
    beta2: float = 0.999
    eps: float = 1e-2
    clip_norm: float = 0.5
    halve_at: tuple[int, ...] = ()
    plateau_patience: int | None = 500
    early_stop_patience: int | None = 1000
    min_lr_ratio: float = 0.01
    checkpoint_every: int = 25
    time_budget: float | None = None
    dtype: str = "float32"
    device: str = "cpu"
    eval_factor: int = 10
    eval_dt_divisors: tuple[int, ...] = (10,)
    controls: int = 32
    eval_times: tuple[float, ...] = ()
    init_from: str | None = None
    initial: dict | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        check_types({f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                    "design config")
        for name in ("size", "fixed", "stages", "halve_at", "eval_dt_divisors", "eval_times"):
            setattr(self, name, tuple(getattr(self, name)))
        for name in PER_STAGE:
            if isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        self._check_model()
        self._check_optimiser()
        self._check_evaluation()
        if self.dtype not in ("float32", "float64"):
            raise ParameterError(f"dtype must be float32 or float64, got {self.dtype!r}")
        torch_device(self.device, "device")
        self._check_memory()

    def _check_model(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ParameterError(f"name must be a folder name (letters, digits, '.', '_', "
                                 f"'-', not starting with '.' or '-'), got {self.name!r}")
        if self.network not in NETWORKS:
            raise ParameterError(f"network must be one of {NETWORKS}, got {self.network!r}")
        _at_least(self.seed, 0, "seed")
        if self.seed >= 2**63:
            raise ParameterError(f"seed must be below 2**63, got {self.seed}")
        for name in ("species", "batch", "z_bits"):
            _at_least(getattr(self, name), 1, name)
        if self.species < 2:
            raise ParameterError(f"species must be ≥ 2, got {self.species}")
        n_reactions = reaction_count(self.network, self.species)
        if n_reactions > MAX_REACTIONS:
            raise ParameterError(f"species {self.species} gives the {self.network} network "
                                 f"{n_reactions:,} reactions; rdlab design handles at most "
                                 f"{MAX_REACTIONS:,}")
        if any(n < 4 for n in self.size):
            raise ParameterError(f"size must be (ny, nx) with at least 4 cells each, got "
                                 f"{list(self.size)}")
        _positive(self.dt, "dt")
        patch = self.patch_size
        if patch & (patch - 1) or patch < 4 or patch > min(self.size):
            raise ParameterError(f"patch must be a power of two ≥ 4 and fit the domain "
                                 f"{list(self.size)}, got {patch}")
        from rdlab.design.parameters import DEFAULT_FLOW_BOUNDS, GROUPS

        unknown = sorted(set(self.fixed) - set(GROUPS))
        if unknown:
            raise ParameterError(f"fixed: unknown parameter group(s) {unknown}; choose from "
                                 f"{list(GROUPS)}")
        lo, hi = DEFAULT_FLOW_BOUNDS
        if self.flow is not None and not lo <= self.flow <= hi:
            raise ParameterError(f"flow must lie in [{lo:g}, {hi:g}] (the bounds the "
                                 f"optimisation keeps), got {self.flow!r}")
        if self.flow_noise is not None:
            unknown = set(self.flow_noise) - {"amplitude", "sigma"}
            if unknown or "amplitude" not in self.flow_noise:
                raise ParameterError(f"flow_noise needs 'amplitude' (and optionally 'sigma'), "
                                     f"got {self.flow_noise!r}")
            for key, v in self.flow_noise.items():
                if not _fits(v, float) or v < 0:
                    raise ParameterError(f"flow_noise {key} must be a finite number ≥ 0, "
                                         f"got {v!r}")
        self._check_loss()
        if self.initial is not None and self.init_from is not None:
            raise ParameterError("initial and init_from both set start values; use one")

    def _check_loss(self) -> None:
        from rdlab.design.objectives import TERM_TYPES

        if not self.loss:
            raise ParameterError("loss must be a mapping {term kind: options} with at least "
                                 "one term")
        for kind, options in self.loss.items():
            if kind not in TERM_TYPES:
                raise ParameterError(f"loss: unknown term {kind!r}; choose from "
                                     f"{sorted(TERM_TYPES)}")
            if options is not None and not isinstance(options, dict):
                raise ParameterError(f"loss: the options of {kind!r} must be a mapping "
                                     f"{{option: value}}, got {options!r}")
        target = self.loss.get("target") or {}
        species = target.get("species", 1)
        if _fits(species, int) and not 0 <= species < self.species:
            raise ParameterError(f"loss: target species {species} is not one of the "
                                 f"{self.species} species (0 … {self.species - 1})")
        if not isinstance(target.get("image", ""), str):
            raise ParameterError(f"loss: target image must be a file path or bundled:NAME, "
                                 f"got {target['image']!r}")

    def _check_optimiser(self) -> None:
        if not self.stages:
            raise ParameterError("stages must list at least one horizon")
        for t in self.stages:
            _at_least(t, 1, "stages", what="horizons ≥ 1 step")
        for name in PER_STAGE:
            values = getattr(self, name)
            if isinstance(values, tuple) and len(values) != len(self.stages):
                raise ParameterError(f"{name} lists {len(values)} values for "
                                     f"{len(self.stages)} stages")
        for v in self._listed("steps"):
            _at_least(v, 1, "steps")
        for name, v in (("clip_norm", self.clip_norm), ("eps", self.eps),
                        *(("lr", x) for x in self._listed("lr"))):
            _positive(v, name)
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ParameterError(f"{name} must lie in (0, 1), got {v!r}")
        if not 0 < self.min_lr_ratio <= 1:
            raise ParameterError(f"min_lr_ratio must lie in (0, 1], got {self.min_lr_ratio!r}")
        for v in self.halve_at:
            _at_least(v, 1, "halve_at", what="steps ≥ 1")
        if self.plateau_patience is not None:
            _at_least(self.plateau_patience, 0, "plateau_patience")
        if self.early_stop_patience is not None:
            _at_least(self.early_stop_patience, 1, "early_stop_patience")
        _at_least(self.checkpoint_every, 1, "checkpoint_every")
        if self.time_budget is not None:
            _positive(self.time_budget, "time_budget", unit=" seconds")

    def _check_evaluation(self) -> None:
        _at_least(self.eval_factor, 1, "eval_factor")
        _at_least(self.controls, 1, "controls")
        for v in self.eval_dt_divisors:
            _at_least(v, 1, "eval_dt_divisors", what="whole numbers ≥ 1")
        for v in self.eval_times:
            _positive(v, "eval_times", unit=" s")

    def rollout_bytes(self) -> int:
        """Memory one optimisation step needs, roughly: every state of the longest horizon
        is kept for the backward pass, with as much again for gradients and work space."""
        itemsize = 8 if self.dtype == "float64" else 4
        ny, nx = self.size
        return 2 * self.batch * self.species * ny * nx * (max(self.stages) + 1) * itemsize

    def _check_memory(self) -> None:
        need = self.rollout_bytes()
        have = _memory_of(self.device)
        if have is not None and need > have:
            ny, nx = self.size
            raise ParameterError(
                f"one optimisation step needs about {need / 2**30:.1f} GiB (batch "
                f"{self.batch} × {self.species} species × {ny}×{nx} cells × "
                f"{max(self.stages) + 1} states); {self.device} has {have / 2**30:.1f} GiB")

    @property
    def patch_size(self) -> int:
        return self.patch if self.patch is not None else min(self.size)

    def _listed(self, name: str) -> tuple:
        """A per-stage setting as given: its list, or its single value as a 1-tuple."""
        value = getattr(self, name)
        return value if isinstance(value, tuple) else (value,)

    def _at_stage(self, name: str, stage: int):
        value = getattr(self, name)
        return value[stage] if isinstance(value, tuple) else value

    def stage_lr(self, stage: int) -> float:
        return float(self._at_stage("lr", stage))

    def stage_steps(self, stage: int) -> int:
        return int(self._at_stage("steps", stage))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> DesignConfig:
        """A config from its settings; unknown keys and values of the wrong type are
        refused by name (``source``, the file they came from, is named in the message)."""
        origin = "design config" if source is None else f"config {str(source)!r}"
        if not isinstance(data, dict):
            raise ParameterError(f"{origin} must be a mapping of settings, got "
                                 f"{_kind(data)} {data!r:.60}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ParameterError(f"{origin}: unknown config key(s) {unknown}; known keys are "
                                 f"{sorted(known - {'source'})}")
        check_types(data, origin)
        data = dict(data)
        if source is not None:
            data["source"] = str(source)
        return cls(**data)

    def resolve_path(self, value: str) -> str:
        """A relative path in the config, resolved against the config file's folder."""
        if value.startswith("bundled:") or self.source is None:
            return value
        p = Path(value)
        return str(p if p.is_absolute() else Path(self.source).parent / p)


def _read(path: Path) -> dict:
    """The settings in a YAML or TOML file; anything else is refused naming the file."""
    name = str(path)
    if path.is_dir():
        raise DataError(f"config {name!r} is a folder, not a YAML or TOML file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read config {name!r}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"config {name!r} is not a text file (YAML or TOML)") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"cannot parse config {name!r} as TOML: {err}") from None
    except yaml.YAMLError as err:
        raise DataError(f"cannot parse config {name!r} as YAML: {_yaml_problem(err)}"
                        ) from None
    if data is None or data == {}:
        raise DataError(f"config {name!r} is empty; it must be a mapping of settings "
                        "(key: value)")
    if not isinstance(data, dict):
        raise DataError(f"config {name!r} must be a mapping of settings (key: value), got "
                        f"{_kind(data)} {data!r:.60}")
    return data


def bundled_configs() -> dict[str, Path]:
    """The configs shipped with rdlab, name → path (e.g. ``fig2a``, ``fig2a-quick``)."""
    folder = resources.files("rdlab.design") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir()
            if str(p).endswith((".yaml", ".toml"))}


def load_config(source: str | Path, **overrides: Any) -> DesignConfig:
    """A config from a file path or a bundled name, with ``overrides`` applied (``None``
    sets a key to null). Relative paths (the target ``image``, ``init_from``) are made
    absolute — the file's against its folder, the overrides' against the working folder —
    so the config saved in a run folder means the same from anywhere."""
    bundled = bundled_configs()
    path = bundled[str(source)] if str(source) in bundled else Path(source)
    if not path.exists():
        raise ParameterError(f"no config file {str(source)!r} and no bundled config of that "
                             f"name; bundled configs: {sorted(bundled)}")
    data = _read(path)
    known = {f.name for f in dataclasses.fields(DesignConfig)} - {"source"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ParameterError(f"--set: unknown config key(s) {unknown}; known keys are "
                             f"{sorted(known)}")
    check_types(overrides, "--set")
    data = _absolute_paths(data, path.parent)
    data.update(_absolute_paths(overrides, Path.cwd()))  # --set paths: from where we are
    return DesignConfig.from_dict(data, source=path)


def _absolute_paths(data: dict, folder: Path) -> dict:
    data = dict(data)
    loss = data.get("loss")
    target = loss.get("target") if isinstance(loss, dict) else None
    image = target.get("image") if isinstance(target, dict) else None
    if isinstance(image, str) and not image.startswith("bundled:"):
        data["loss"] = {**loss, "target": {**target, "image": _absolute(image, folder)}}
    if isinstance(data.get("init_from"), str):
        data["init_from"] = _absolute(data["init_from"], folder)
    return data


def _absolute(value: str, folder: Path) -> str:
    p = Path(value).expanduser()
    return str((p if p.is_absolute() else folder / p).resolve())


def bundled_target(name: str) -> Path:
    """Path of a target image shipped with rdlab (``portrait``: a portrait drawn by
    :mod:`rdlab.design.target_image`, not a photograph)."""
    path = Path(str(resources.files("rdlab.design") / "data" / f"{name}.png"))
    if not path.is_file():
        raise ParameterError(f"no bundled target image {name!r}")
    return path
