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
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rdlab.checks import torch_device
from rdlab.errors import ParameterError

__all__ = ["DesignConfig", "bundled_configs", "bundled_target", "load_config"]

NETWORKS = ("kitchen-sink", "gs", "paper")
PER_STAGE = ("lr", "steps")  # settings that may list one value per stage


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
        for name in ("size", "fixed", "stages", "halve_at", "eval_dt_divisors", "eval_times"):
            setattr(self, name, tuple(getattr(self, name)))
        for name in PER_STAGE:
            if isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        if self.network not in NETWORKS:
            raise ParameterError(f"network must be one of {NETWORKS}, got {self.network!r}")
        for name, v in (*((n, getattr(self, n)) for n in (
                "seed", "species", "batch", "z_bits", "checkpoint_every", "eval_factor",
                "controls")), *(("steps", x) for x in self._listed("steps"))):
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name in (
                    "seed", "controls") else 1):
                raise ParameterError(f"{name} must be a whole number ≥ 1, got {v!r}")
        if self.species < 2:
            raise ParameterError(f"species must be ≥ 2, got {self.species}")
        if len(self.size) != 2 or any(not isinstance(n, int) or n < 4 for n in self.size):
            raise ParameterError(f"size must be (ny, nx) with at least 4 cells each, got "
                                 f"{self.size!r}")
        if not self.stages or any(not isinstance(t, int) or t < 1 for t in self.stages):
            raise ParameterError(f"stages must be horizons ≥ 1 step, got {self.stages!r}")
        for name in PER_STAGE:
            values = getattr(self, name)
            if isinstance(values, tuple) and len(values) != len(self.stages):
                raise ParameterError(f"{name} lists {len(values)} values for "
                                     f"{len(self.stages)} stages")
        for name, v in (("dt", self.dt), ("clip_norm", self.clip_norm), ("eps", self.eps),
                        *(("lr", x) for x in self._listed("lr"))):
            if not isinstance(v, (int, float)) or not v > 0:
                raise ParameterError(f"{name} must be positive, got {v!r}")
        for name in ("beta1", "beta2", "min_lr_ratio"):
            v = getattr(self, name)
            if not 0 < v <= 1 or (name != "min_lr_ratio" and v >= 1):
                raise ParameterError(f"{name} must lie in (0, 1), got {v!r}")
        patch = self.patch_size
        if patch & (patch - 1) or patch < 4 or patch > min(self.size):
            raise ParameterError(f"patch must be a power of two ≥ 4 and fit the domain "
                                 f"{self.size}, got {patch}")
        if not isinstance(self.loss, dict) or not self.loss:
            raise ParameterError("loss must be a mapping {term kind: options} with at least "
                                 "one term")
        if self.flow_noise is not None:
            unknown = set(self.flow_noise) - {"amplitude", "sigma"}
            if unknown or "amplitude" not in self.flow_noise:
                raise ParameterError(f"flow_noise needs 'amplitude' (and optionally 'sigma'), "
                                     f"got {self.flow_noise!r}")
        if self.initial is not None:
            if not isinstance(self.initial, dict):
                raise ParameterError(f"initial must be a mapping (rates, other_rates, "
                                     f"diffusion, feed), got {self.initial!r}")
            if self.init_from is not None:
                raise ParameterError("initial and init_from both set start values; use one")
        if self.dtype not in ("float32", "float64"):
            raise ParameterError(f"dtype must be float32 or float64, got {self.dtype!r}")
        torch_device(self.device, "device")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ParameterError(f"time_budget must be positive seconds, got "
                                 f"{self.time_budget!r}")

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"unknown config key(s) {unknown}; known keys are "
                                 f"{sorted(known - {'source'})}")
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
    if not path.is_file():
        raise ParameterError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ParameterError(f"cannot parse config {str(path)!r}: {err}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"config {str(path)!r} must be a mapping of settings")
    return data


def bundled_configs() -> dict[str, Path]:
    """The configs shipped with rdlab, name → path (e.g. ``fig2a``, ``fig2a-quick``)."""
    folder = resources.files("rdlab.design") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir()
            if str(p).endswith((".yaml", ".toml"))}


def load_config(source: str | Path, **overrides: Any) -> DesignConfig:
    """A config from a file path or a bundled name, with ``overrides`` applied."""
    bundled = bundled_configs()
    path = bundled[str(source)] if str(source) in bundled else Path(source)
    if not path.is_file():
        raise ParameterError(f"no config file {str(source)!r} and no bundled config of that "
                             f"name; bundled configs: {sorted(bundled)}")
    data = _read(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return DesignConfig.from_dict(data, source=path)


def bundled_target(name: str) -> Path:
    """Path of a target image shipped with rdlab (``portrait``: a portrait drawn by
    :mod:`rdlab.design.target_image`, not a photograph)."""
    path = Path(str(resources.files("rdlab.design") / "data" / f"{name}.png"))
    if not path.is_file():
        raise ParameterError(f"no bundled target image {name!r}")
    return path
