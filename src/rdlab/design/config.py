"""An inverse-design experiment as a config file (YAML or TOML), in sections.

Every setting of a run lives in one :class:`DesignConfig`, a :class:`rdlab.settings.Settings`
(types checked from the annotations, unknown keys refused with the known ones listed,
``to_dict``/``from_dict``/YAML round trips, dotted overrides). Its sections:

- ``model`` (:class:`ModelSettings`) — the reaction–diffusion system that is designed: the
  ``network`` family and its ``species``, the grid ``size``, the Euler step ``dt``,
  clipping, ``fixed`` parameter groups, the initial ``flow`` and the noisy drive
  ``flow_noise``;
- ``generator`` (:class:`GeneratorSettings`) — G(z): its ``patch`` size, ``z_bits`` and
  the ``batch`` of samples per step;
- ``optimiser`` (:class:`OptimiserSettings`) — Adam, its schedules, the staged horizons,
  early stopping, checkpoints and the time budget;
- ``evaluation`` (:class:`EvaluationSettings`) — what the report measures afterwards;
- at the top: ``name``, ``seed``, ``device``, ``deterministic``, ``dtype``, the ``loss``
  terms and the start values (``init_from``, ``initial``).

``rdlab design CONFIG`` reads one; the bundled ones (:func:`bundled_configs`) reproduce the
paper's figures and have a ``-quick`` variant for a laptop. ``--set optimiser.lr=1e-4``
overrides one setting.

Old flat configs keep working: a key of a section may be given alone at the top
(``steps: 200``, ``--set steps=200``) and is moved into its section (:data:`FLAT_KEYS`; the
evaluation keys keep their old ``eval_`` names there: ``eval_factor`` is
``evaluation.factor``). The network names are the presets' (``kitchen-sink``, ``dense-gs``,
``dense``); the old design names ``gs`` and ``paper`` are read as ``dense-gs`` and
``dense``. So a run folder written by a flat config is compared with today's config in the
normalised form (:func:`normalised`) and resumes.

The loss is a mapping ``{term kind: options}`` (see :mod:`rdlab.design.objectives`). The
target term's ``image`` is a path (relative paths resolve against the config file) or
``bundled:NAME`` for an image shipped with rdlab (:func:`bundled_target`). The ``hold`` term
(:class:`~rdlab.design.objectives.Hold`) keeps that target after the optimised window:
``hold: {weight, factor, every, grad_steps, metric}`` — every ``every``-th step a roll-out
continues to a time drawn up to ``factor``·T and the last ``grad_steps`` steps are compared
with the target (the bundled fig2a config has it on). ``information_hold: {weight, factor,
every, grad_steps}`` (:class:`~rdlab.design.objectives.InformationHold`) does the same for
the information term's bits, read with its encoder at the continued roll-out's end.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from rdlab.checks import torch_device
from rdlab.chemistry import dense
from rdlab.errors import ParameterError, RdlabError
from rdlab.settings import Settings, apply_overrides, parse_overrides, read_mapping

__all__ = ["FLAT_KEYS", "SECTIONS", "DesignConfig", "EvaluationSettings", "GeneratorSettings",
           "ModelSettings", "OptimiserSettings", "bundled_configs", "bundled_target",
           "load_config", "normalised", "parse_overrides", "reaction_count"]

#: The design networks, named as the presets (:mod:`rdlab.chemistry.presets`).
NETWORKS = ("kitchen-sink", "dense-gs", "dense")
#: Old design network names, still read: → the preset name.
OLD_NETWORK_NAMES = {"gs": "dense-gs", "paper": "dense"}
#: The sections of a design config (each a :class:`rdlab.settings.Settings`).
SECTIONS = ("model", "generator", "optimiser", "evaluation")
PER_STAGE = ("lr", "steps")  # optimiser settings that may list one value per stage
#: The most reactions a design network may have (kitchen-sink: 37 species); the matrices
#: and the per-cell rates of more would not fit a laptop, and enumerating them would hang.
MAX_REACTIONS = 50_000
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def reaction_count(network: str, species: int) -> int:
    """Return the number of reactions of the ``network`` enumeration over ``species`` species.

    Counted without building the network: kitchen-sink N²(N − 1), dense-gs 2N(N − 1), dense
    N(N − 1)(N + 1).

    Parameters
    ----------
    network : {"kitchen-sink", "dense-gs", "dense"}
        The design network.
    species : int
        Number of species N.

    Returns
    -------
    int
        The number of reactions.
    """
    return dense.reaction_count(OLD_NETWORK_NAMES.get(network, network), species)


#: Largest count (steps, horizons, controls, batch, ...): a larger one is a typo, not a plan.
MAX_COUNT = 10**9


def _at_least(value: int, low: int, name: str, what: str | None = None,
              high: int | None = MAX_COUNT) -> None:
    if value < low:
        raise ParameterError(f"{name} must be {what or f'a whole number ≥ {low}'}, got "
                             f"{value!r}")
    if high is not None and value > high:
        raise ParameterError(f"{name} must be at most {high:,}, got {value!r}")


def _positive(value: float, name: str, unit: str = "") -> None:
    if not value > 0:
        raise ParameterError(f"{name} must be positive{unit}, got {value!r}")


def _memory_of(device: str) -> int | None:
    """Return the bytes of memory of ``device`` (RAM for the CPU), or None if unknown."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# ---------------------------------------------------------------------------- sections
@dataclass
class ModelSettings(Settings):
    """The designed reaction–diffusion model. Times in s (model units), lengths in cells.

    Parameters
    ----------
    network : str, default "kitchen-sink"
        ``kitchen-sink`` / ``dense-gs`` (the public code's enumerations) or ``dense``
        (eq. 17); ``gs`` and ``paper``, the old names, are read as ``dense-gs`` and
        ``dense``.
    species : int, default 4
        How many species (≥ 2).
    size : tuple of int, default (64, 64)
        The domain ``(ny, nx)``, at least 4 cells each.
    dt : float, default 1.0
        The Euler step.
    clip : bool, default True
        Clip the state to [0, 10] after each step (the authors' code).
    fixed : tuple of str, default ()
        Parameter groups kept at their start values (``rates``, ``diffusion``, ``flow``,
        ``feed``).
    flow : float or None, optional
        The initial flow.
    flow_noise : dict or None, optional
        ``{amplitude, sigma}``: drive with a noisy flow (eq. 12).
    engine : {"fused", "compiled", "auto"}, default "auto"
        What runs the roll-out and its gradient: ``fused``, the fused torch step
        (:func:`rdlab.design.dynamics.rollout`; CPU or CUDA); ``compiled``, the generated
        numba forward and discrete adjoint
        (:func:`rdlab.design.compiled_rollout.compiled_rollout`; CPU only); ``auto``,
        compiled on the CPU and fused elsewhere. Both give the same values and gradients
        to rounding; a run may be resumed on the other engine. The compiled engine
        compiles its kernels on a network structure's first use (seconds), then loads
        them from the disk cache (``RDLAB_KERNEL_CACHE``).

    Raises
    ------
    ParameterError
        For an unknown network or parameter group, fewer than 2 species or more reactions
        than :data:`MAX_REACTIONS`, a domain below 4 cells, a non-positive ``dt``, a ``flow``
        outside the optimisation's bounds, or bad ``flow_noise``.
    """

    network: str = "kitchen-sink"
    species: int = 4
    size: tuple[int, int] = (64, 64)
    dt: float = 1.0
    clip: bool = True
    fixed: tuple[str, ...] = ()
    flow: float | None = None
    flow_noise: dict | None = None
    engine: Literal["fused", "compiled", "auto"] = "auto"

    _what = "design config model"

    def __post_init__(self) -> None:
        """Check the fields and map old network names to the presets'."""
        self.check_types()
        self.network = OLD_NETWORK_NAMES.get(self.network, self.network)
        if self.network not in NETWORKS:
            raise ParameterError(f"network must be one of {NETWORKS} (the presets' names; "
                                 f"the old 'gs' and 'paper' are read as 'dense-gs' and "
                                 f"'dense'), got {self.network!r}")
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
                if isinstance(v, bool) or not isinstance(v, int | float) \
                        or not math.isfinite(v) or v < 0:
                    raise ParameterError(f"flow_noise {key} must be a finite number ≥ 0, "
                                         f"got {v!r}")


@dataclass
class GeneratorSettings(Settings):
    """The generator G(z).

    Parameters
    ----------
    patch : int or None, optional
        Its output size: smaller than the domain = placed in its centre on zero
        concentration; ``None`` = the domain's smaller side.
    z_bits : int, default 64
        Random bits.
    batch : int, default 1
        Samples per optimisation step.
    background : bool, default False
        Optimise one concentration per species for the cells around the patch (the
        authors' learnable per-channel offset; in ``[0, c_max]``, starting at 0) instead of
        zero. Needs a patch smaller than the domain.

    Raises
    ------
    ParameterError
        When ``z_bits`` or ``batch`` is below 1.
    """

    patch: int | None = None
    z_bits: int = 64
    batch: int = 1
    background: bool = False

    _what = "design config generator"

    def __post_init__(self) -> None:
        """Check the field types and ranges."""
        self.check_types()
        for name in ("batch", "z_bits"):
            _at_least(getattr(self, name), 1, name)


@dataclass
class OptimiserSettings(Settings):
    """Adam, its schedules, the staged horizons, early stopping, checkpoints and the time budget.

    Parameters
    ----------
    stages : tuple of int, default (32,)
        The horizons (number of Euler steps), optimised in turn, parameters carried forward
        (appendix D.3).
    steps : int or tuple of int, default 2000
        At most this many steps per stage; may list one value per stage.
    lr : float or tuple of float, default 1e-3
        Adam's learning rate; may list one value per stage.
    beta1, beta2 : float, default 0.95, 0.999
        Adam's β, in (0, 1).
    eps : float, default 1e-2
        Adam's ε.
    clip_norm : float, default 0.5
        Gradient-norm clipping: of all gradients together, or of each tensor's.
    clip_per_tensor : bool, default False
        Clip each parameter tensor's gradient norm to ``clip_norm`` on its own (the
        authors' Keras ``clipnorm`` under TF 2.5) instead of the global norm.
    halve_at : tuple of int, or one tuple of int per stage, default ()
        Steps (of each stage, counted from its start) at which the LR is halved: one list
        for every stage, or one list per stage (the paper's Table 2 halves at other steps
        in each stage).
    plateau_patience : int or None, default 500
        The LR is also halved on a plateau of this many steps.
    early_stop_patience : int or None, default 1000
        Stop after this many steps without improvement.
    min_lr_ratio : float, default 0.01
        The LR is not halved below ``min_lr_ratio``·lr; in (0, 1].
    theta_lr_scale : float, default 1.0
        θΨ (rates, D, f, x_feed) learn at this multiple of ``lr`` (the generator and the
        encoder at ``lr``): the networks' layers may need a small step where the chemistry
        needs a large one.
    checkpoint_every : int, default 25
        A checkpoint every this many steps.
    time_budget_s : float or None, optional
        Seconds of optimisation at most (resumable; old configs' ``time_budget`` is read as
        this).

    Raises
    ------
    ParameterError
        For an empty ``stages``, per-stage lists of another length, or a value outside its
        range.
    """

    stages: tuple[int, ...] = (32,)
    steps: int | tuple[int, ...] = 2000
    lr: float | tuple[float, ...] = 1e-3
    beta1: float = 0.95
    beta2: float = 0.999
    eps: float = 1e-2
    clip_norm: float = 0.5
    clip_per_tensor: bool = False
    halve_at: tuple[int, ...] | tuple[tuple[int, ...], ...] = ()
    plateau_patience: int | None = 500
    early_stop_patience: int | None = 1000
    min_lr_ratio: float = 0.01
    theta_lr_scale: float = 1.0
    checkpoint_every: int = 25
    time_budget_s: float | None = None

    _what = "design config optimiser"

    def __post_init__(self) -> None:
        """Check the field types and ranges."""
        self.check_types()
        if not self.stages:
            raise ParameterError("stages must list at least one horizon")
        for t in self.stages:
            _at_least(t, 1, "stages", what="horizons ≥ 1 step")
        for name in PER_STAGE:
            values = getattr(self, name)
            if isinstance(values, tuple) and len(values) != len(self.stages):
                raise ParameterError(f"{name} lists {len(values)} values for "
                                     f"{len(self.stages)} stages")
        for v in self.listed("steps"):
            _at_least(v, 1, "steps")
        for name, v in (("clip_norm", self.clip_norm), ("eps", self.eps),
                        ("theta_lr_scale", self.theta_lr_scale),
                        *(("lr", x) for x in self.listed("lr"))):
            _positive(v, name)
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ParameterError(f"{name} must lie in (0, 1), got {v!r}")
        if not 0 < self.min_lr_ratio <= 1:
            raise ParameterError(f"min_lr_ratio must lie in (0, 1], got {self.min_lr_ratio!r}")
        if self._halvings_per_stage() and len(self.halve_at) != len(self.stages):
            raise ParameterError(f"halve_at lists {len(self.halve_at)} lists of steps for "
                                 f"{len(self.stages)} stages")
        for stage in range(len(self.stages)):
            for v in self.stage_halvings(stage):
                _at_least(v, 1, "halve_at", what="steps ≥ 1")
        if self.plateau_patience is not None:
            _at_least(self.plateau_patience, 0, "plateau_patience")
        if self.early_stop_patience is not None:
            _at_least(self.early_stop_patience, 1, "early_stop_patience")
        _at_least(self.checkpoint_every, 1, "checkpoint_every")
        if self.time_budget_s is not None:
            _positive(self.time_budget_s, "time_budget_s", unit=" seconds")

    def listed(self, name: str) -> tuple:
        """Return a per-stage setting as given: its list, or its single value as a 1-tuple.

        Parameters
        ----------
        name : {"lr", "steps"}
            The setting.

        Returns
        -------
        tuple
            The value(s).
        """
        value = getattr(self, name)
        return value if isinstance(value, tuple) else (value,)

    def stage_lr(self, stage: int) -> float:
        """Return the learning rate of a stage.

        Parameters
        ----------
        stage : int
            The stage, 0-based.

        Returns
        -------
        float
            Its learning rate.
        """
        return float(self.listed("lr")[stage] if isinstance(self.lr, tuple) else self.lr)

    def _halvings_per_stage(self) -> bool:
        """Whether ``halve_at`` lists one list of steps per stage."""
        return any(isinstance(v, tuple) for v in self.halve_at)

    def stage_halvings(self, stage: int) -> list[int]:
        """Return the steps of ``stage`` (0-based; counted from its start) that halve its LR."""
        if self._halvings_per_stage():
            return [int(v) for v in self.halve_at[stage]]
        return [int(v) for v in self.halve_at]

    def stage_steps(self, stage: int) -> int:
        """Return the most steps of a stage.

        Parameters
        ----------
        stage : int
            The stage, 0-based.

        Returns
        -------
        int
            Its step limit.
        """
        return int(self.steps[stage] if isinstance(self.steps, tuple) else self.steps)


@dataclass
class EvaluationSettings(Settings):
    """What the report measures.

    Parameters
    ----------
    factor : int, default 10
        Roll-outs run to ``factor`` × the last horizon.
    dt_divisors : tuple of int, default (10,)
        Also roll out at ``dt`` divided by each of these.
    controls : int, default 32
        Randomisations per control condition.
    times : tuple of float, default ()
        Bit accuracy is read at these times (s) when the design has an encoder.

    Raises
    ------
    ParameterError
        For a value below 1 or a non-positive time.
    """

    factor: int = 10
    dt_divisors: tuple[int, ...] = (10,)
    controls: int = 32
    times: tuple[float, ...] = ()

    _what = "design config evaluation"

    def __post_init__(self) -> None:
        """Check the field types and ranges."""
        self.check_types()
        _at_least(self.factor, 1, "eval_factor")
        _at_least(self.controls, 1, "controls")
        for v in self.dt_divisors:
            _at_least(v, 1, "eval_dt_divisors", what="whole numbers ≥ 1")
        for v in self.times:
            _positive(v, "eval_times", unit=" s")


def _flat_keys() -> dict[str, str]:
    """Return the flat keys of old configs → their place in a section."""
    keys = {}
    for section, cls in (("model", ModelSettings), ("generator", GeneratorSettings),
                         ("optimiser", OptimiserSettings)):
        keys.update({k: f"{section}.{k}" for k in cls.known_keys()})
    keys.update({"eval_factor": "evaluation.factor", "eval_dt_divisors": "evaluation.dt_divisors",
                 "controls": "evaluation.controls", "eval_times": "evaluation.times"})
    return keys


#: The flat keys of old configs (and ``--set KEY=...``) → their place in a section.
FLAT_KEYS: dict[str, str] = _flat_keys()


@dataclass
class DesignConfig(Settings):
    """One experiment.

    Its sections are ``model``, ``generator``, ``optimiser`` and ``evaluation`` (see the
    module docstring). A flat key of an old config (``steps``, ``species``, ``eval_factor``,
    ...) is accepted at the top and moved into its section (:data:`FLAT_KEYS`).

    Parameters
    ----------
    name : str, default "design"
        The run's name (a folder name).
    seed : int, default 1
        Seeds θΨ's initialisation and every draw.
    device : str, default "cpu"
        Where the optimisation runs (``"cpu"``, ``"cuda"``, ...; the random draws then come
        from a generator on that device, so a seed gives device-specific results);
        evaluation and reports always run on the CPU.
    deterministic : bool, default False
        Use torch's deterministic kernels (:mod:`rdlab.torch_determinism`), so that a run on
        a GPU is reproducible to the bit and an interrupted one resumes to exactly the
        uninterrupted result (slower there; the CPU is deterministic either way).
    dtype : {"float32", "float64"}
        Precision of the optimisation.
    model : ModelSettings
        The designed model.
    generator : GeneratorSettings
        The generator G(z).
    loss : dict
        ``{kind: options}`` (see :mod:`rdlab.design.objectives`); default a target term with
        the bundled portrait.
    optimiser : OptimiserSettings
        The optimisation.
    evaluation : EvaluationSettings
        What the report measures.
    init_from : str or None, optional
        A finished run folder (or its ``model.pt``) whose θΨ, generator and encoder start this
        run instead of the paper's initialisation — to add longer stages to an optimised
        design; the models must have the same shapes.
    initial : dict or None, optional
        Start values that replace parts of the paper's initialisation of θΨ — ``rates``
        ``{reaction text: k}``, ``other_rates``, ``diffusion``, ``feed`` (see
        :meth:`~rdlab.design.parameters.DesignParameters.override_`) — to start from a known
        mechanism; not together with ``init_from``.
    source : str or None, optional
        The config file (set by :func:`load_config`, not read from a file).

    Raises
    ------
    ParameterError
        For a bad name, seed, dtype, patch size or loss, ``initial`` together with
        ``init_from``, or a step that would not fit the device's memory.
    """

    name: str = "design"
    seed: int = 1
    device: str = "cpu"
    deterministic: bool = False
    dtype: str = "float32"
    model: ModelSettings = field(default_factory=ModelSettings)
    generator: GeneratorSettings = field(default_factory=GeneratorSettings)
    loss: dict = field(default_factory=lambda: {"target": {"image": "bundled:portrait"}})
    optimiser: OptimiserSettings = field(default_factory=OptimiserSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    init_from: str | None = None
    initial: dict | None = None
    source: str | None = None

    _what = "design config"
    _internal = frozenset({"source"})
    _aliases = {**FLAT_KEYS, "time_budget": "optimiser.time_budget_s"}  # and an old name

    #: Old names of keys inside a section → today's (the flat old names are in FLAT_KEYS).
    SECTION_ALIASES: ClassVar[dict[str, dict[str, str]]] = {
        "optimiser": {"time_budget": "time_budget_s"}}

    @classmethod
    def _normalise(cls, data: dict[str, Any], origin: str) -> dict[str, Any]:
        """Move the base's flat keys into their sections, then rename old keys inside a section.

        For example ``optimiser.time_budget`` → ``optimiser.time_budget_s``.
        """
        data = super()._normalise(data, origin)
        for section, renames in cls.SECTION_ALIASES.items():
            sub = data.get(section)
            if not isinstance(sub, Mapping) or not set(renames) & set(sub):
                continue
            sub = dict(sub)
            for old, new in renames.items():
                if old in sub:
                    if new in sub:
                        raise ParameterError(f"{origin}: {section}.{old} is the old name of "
                                             f"{section}.{new}; give one")
                    sub[new] = sub.pop(old)
            data = {**data, section: sub}
        return data

    def __post_init__(self) -> None:
        """Check the fields, the loss and the memory one step needs."""
        self.check_types()
        if not NAME_PATTERN.fullmatch(self.name):
            raise ParameterError(f"name must be a folder name (letters, digits, '.', '_', "
                                 f"'-', not starting with '.' or '-'), got {self.name!r}")
        _at_least(self.seed, 0, "seed", high=None)
        if self.seed >= 2**63:
            raise ParameterError(f"seed must be below 2**63, got {self.seed}")
        patch = self.patch_size
        if patch & (patch - 1) or patch < 4 or patch > min(self.model.size):
            raise ParameterError(f"patch must be a power of two ≥ 4 and fit the domain "
                                 f"{list(self.model.size)}, got {patch}")
        if self.generator.background and self.patch_fills_domain:
            raise ParameterError(f"generator.background needs a patch smaller than the domain "
                                 f"{list(self.model.size)}; the {patch}² patch fills it")
        self._check_loss()
        if self.initial is not None and self.init_from is not None:
            raise ParameterError("initial and init_from both set start values; use one")
        if self.dtype not in ("float32", "float64"):
            raise ParameterError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.model.engine == "compiled" and not self.device.startswith("cpu"):
            raise ParameterError(f"model.engine 'compiled' runs on the CPU only, but device is "
                                 f"{self.device!r}; use model.engine 'fused' (or 'auto') there")
        torch_device(self.device, "device")
        self._check_memory()

    def _check_loss(self) -> None:
        """Check the loss terms and their options."""
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
        if "hold" in self.loss:
            from rdlab.design.objectives import check_hold_options

            if "target" not in self.loss:
                raise ParameterError("loss: the hold term keeps the target term's image; add a "
                                     "target term")
            check_hold_options(self.loss["hold"] or {})
        if "information_hold" in self.loss:
            from rdlab.design.objectives import check_hold_options

            if "information" not in self.loss:
                raise ParameterError("loss: the information_hold term reads the bits with the "
                                     "information term's encoder; add an information term")
            check_hold_options(self.loss["information_hold"] or {}, "information_hold")
        if "hold" in self.loss and "information_hold" in self.loss:
            raise ParameterError("loss: hold and information_hold each continue the roll-out "
                                 "past the window; use one of them")
        target = self.loss.get("target") or {}
        species = target.get("species", 1)
        n = self.model.species
        if isinstance(species, int) and not isinstance(species, bool) \
                and not 0 <= species < n:
            raise ParameterError(f"loss: target species {species} is not one of the "
                                 f"{n} species (0 … {n - 1})")
        if not isinstance(target.get("image", ""), str):
            raise ParameterError(f"loss: target image must be a file path or bundled:NAME, "
                                 f"got {target['image']!r}")

    def rollout_bytes(self) -> int:
        """Return the memory one optimisation step needs, roughly.

        Every state of the longest horizon is kept for the backward pass, with as much again
        for gradients and work space.

        Returns
        -------
        int
            Bytes.
        """
        itemsize = 8 if self.dtype == "float64" else 4
        ny, nx = self.model.size
        return (2 * self.generator.batch * self.model.species * ny * nx
                * (max(self.optimiser.stages) + 1) * itemsize)

    def _check_memory(self) -> None:
        """Refuse a config whose optimisation step would not fit the device's memory."""
        need = self.rollout_bytes()
        have = _memory_of(self.device)
        if have is not None and need > have:
            ny, nx = self.model.size
            raise ParameterError(
                f"one optimisation step needs about {need / 2**30:.1f} GiB (batch "
                f"{self.generator.batch} × {self.model.species} species × {ny}×{nx} cells × "
                f"{max(self.optimiser.stages) + 1} states); {self.device} has "
                f"{have / 2**30:.1f} GiB")

    @property
    def rollout_engine(self) -> str:
        """The engine a roll-out runs on: ``model.engine`` with ``auto`` resolved.

        ``auto`` is ``compiled`` on the CPU and ``fused`` on any other device.
        """
        engine = self.model.engine
        if engine == "auto":
            return "compiled" if self.device.startswith("cpu") else "fused"
        return engine

    @property
    def patch_size(self) -> int:
        """The generator's output size: ``generator.patch``, else the domain's smaller side."""
        patch = self.generator.patch
        return patch if patch is not None else min(self.model.size)

    @property
    def patch_fills_domain(self) -> bool:
        """Whether the generator's patch is the whole domain (no surroundings to pad)."""
        return (self.patch_size,) * 2 == tuple(self.model.size)

    def resolve_path(self, value: str) -> str:
        """Resolve a relative path in the config against the config file's folder.

        Parameters
        ----------
        value : str
            A path, or ``bundled:NAME`` (returned as it is).

        Returns
        -------
        str
            The resolved path (unchanged when the config has no source file).
        """
        if value.startswith("bundled:") or self.source is None:
            return value
        p = Path(value)
        return str(p if p.is_absolute() else Path(self.source).parent / p)


def normalised(data: dict[str, Any]) -> dict[str, Any]:
    """Return a stored config in today's complete form, as :meth:`DesignConfig.to_dict` writes it.

    The stored config may be flat or in sections, with old or new network names and
    defaults left out; the result is for comparing the config of a run folder with the one
    asked for. The device is kept as stored but not checked (a run may have been made on
    another machine).

    Parameters
    ----------
    data : dict
        The stored config.

    Returns
    -------
    dict
        The complete config; a config that no longer reads is returned as it is (and so
        differs).
    """
    given = {k: v for k, v in data.items() if k != "source"}
    try:
        out = DesignConfig.from_dict({**given, "device": "cpu"}).to_dict()
    except RdlabError:
        return given
    if "device" in given:
        out["device"] = given["device"]
    return out


def bundled_configs() -> dict[str, Path]:
    """Return the configs shipped with rdlab.

    Returns
    -------
    dict of str to Path
        Name → path (e.g. ``fig2a``, ``fig2a-quick``).
    """
    folder = resources.files("rdlab.design") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir()
            if str(p).endswith((".yaml", ".toml"))}


def load_config(source: str | Path, **overrides: Any) -> DesignConfig:
    """Read a config from a file path or a bundled name, with ``overrides`` applied.

    Relative paths (the target ``image``, ``init_from``) are made absolute — the file's
    against its folder, the overrides' against the working folder — so the config saved in a
    run folder means the same from anywhere.

    Parameters
    ----------
    source : str or Path
        A config file (YAML or TOML) or the name of a bundled config.
    **overrides
        Settings to override, by (dotted) key; ``None`` sets a key to null.

    Returns
    -------
    DesignConfig
        The config, with ``source`` set to the file.

    Raises
    ------
    ParameterError
        When there is no such file or bundled config, or the config is invalid.
    """
    bundled = bundled_configs()
    path = bundled[str(source)] if str(source) in bundled else Path(source)
    if not path.exists():
        raise ParameterError(f"no config file {str(source)!r} and no bundled config of that "
                             f"name; bundled configs: {sorted(bundled)}")
    data = read_mapping(path)
    origin = f"config {str(path)!r}"
    data = _absolute_paths(DesignConfig._normalise(data, origin), path.parent)
    # --set paths: from where we are
    data = apply_overrides(DesignConfig, data, _absolute_paths(overrides, Path.cwd()), "--set")
    config = DesignConfig.from_dict(data, source=origin)
    config.source = str(path)
    return config


def _absolute_paths(data: dict, folder: Path) -> dict:
    """Return ``data`` with the target image and ``init_from`` made absolute against ``folder``."""
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
    """Return ``value`` as an absolute path, resolved against ``folder`` when relative."""
    p = Path(value).expanduser()
    return str((p if p.is_absolute() else folder / p).resolve())


def bundled_target(name: str) -> Path:
    """Return the path of a target image shipped with rdlab.

    Parameters
    ----------
    name : str
        The image's name (``portrait``: a portrait drawn by :mod:`rdlab.design.target_image`,
        not a photograph).

    Returns
    -------
    Path
        The PNG file.

    Raises
    ------
    ParameterError
        When there is no such image.
    """
    path = Path(str(resources.files("rdlab.design") / "data" / f"{name}.png"))
    if not path.is_file():
        raise ParameterError(f"no bundled target image {name!r}")
    return path
