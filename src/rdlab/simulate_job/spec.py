"""What to simulate, as plain data: the content of a run's ``config.yaml``.

A :class:`SimulationSpec` names a network (preset, or a YAML, SBML or Antimony file),
parameter values or sweeps, the grid, time stepping, initial condition and engine.
``resolve()`` turns it into a :class:`~rdlab.system.System` and an initial state;
``to_dict()`` writes everything needed to rerun (the network text itself is stored, so the
network file need not exist later). An SBML/Antimony model without an initial state given
starts from its own initial concentrations (a ``uniform`` state, stored in the config too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rdlab import initial
from rdlab.checks import parse_float
from rdlab.chemistry.network import ReactionNetwork
from rdlab.chemistry.presets import GENERIC_DEFAULTS, PRESETS, RunDefaults, preset_network
from rdlab.chemistry.sbml_import import MODEL_SUFFIXES, read_model
from rdlab.errors import ParameterError
from rdlab.settings import Settings
from rdlab.simulate.api import DTYPES, ENGINES
from rdlab.simulate.budget import RunSize, check_memory
from rdlab.simulate.guard import RUNAWAY_LIMIT
from rdlab.system import MAX_DX, MIN_DX, STENCILS, Grid, System, locate_parameters

#: Most values one sweep ``start:stop:count`` may have (the product of all sweeps is then
#: bounded by the memory check).
MAX_SWEEP_COUNT = 100_000
MOVIES = ("gif", "mp4", "none")
INITIAL_STATES = ("squares", "random", "uniform")
#: Largest seed (numpy and torch both take it).
MAX_SEED = 2**63 - 1
#: Most time steps of one run (step numbers stay exact 64-bit integers).
MAX_STEPS = 10**12

_FORMS = "use a number, 'start:stop:count' or 'v1,v2,...'"


def _number(value, name: str, spec) -> float:
    """Return one value of parameter ``name`` as a float, or raise a ParameterError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParameterError(f"cannot read the value {spec!r} of parameter {name!r}: {_FORMS}")
    try:
        return parse_float(value)
    except (ValueError, OverflowError):
        raise ParameterError(
            f"cannot read the value {spec!r} of parameter {name!r}: {_FORMS}") from None


def _sweep(name: str, spec: str, start: str, stop: str, count: str) -> np.ndarray:
    """Return the values of a sweep ``start:stop:count``."""
    count = count.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", count):
        raise ParameterError(f"the count {count!r} of sweep {name}={spec!r} is not a whole "
                             "number (the form is 'start:stop:count')")
    n = int(count) if len(count) < 12 else MAX_SWEEP_COUNT + 1
    if n < 2:
        raise ParameterError(
            f"sweep {name}={spec!r} asks for {n} value(s): the count (its last number) must "
            "be at least 2; for a single value give just the number")
    if n > MAX_SWEEP_COUNT:
        raise ParameterError(f"sweep {name}={spec!r} asks for {count} values; at most "
                             f"{MAX_SWEEP_COUNT:,} per parameter")
    lo, hi = _number(start.strip(), name, spec), _number(stop.strip(), name, spec)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.linspace(lo, hi, n)


def parse_values(name: str, spec: str | float | int | list) -> np.ndarray:
    """Return the values a parameter takes.

    Parameters
    ----------
    name : str
        The parameter, for messages.
    spec : str, float, int or list
        ``0.04`` gives [0.04]; ``"0.02:0.06:9"`` 9 evenly spaced values including both ends
        (count ≥ 2, at most :data:`MAX_SWEEP_COUNT`); ``"0.1,0.2,0.5"`` or a list those
        values.

    Returns
    -------
    numpy.ndarray
        The values, all finite.

    Raises
    ------
    ParameterError
        Naming the parameter, for anything else.
    """
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ParameterError(f"parameter {name!r} has an empty list of values")
        if len(spec) > MAX_SWEEP_COUNT:
            raise ParameterError(f"parameter {name!r} has {len(spec):,} values; at most "
                                 f"{MAX_SWEEP_COUNT:,}")
        values = np.array([_number(v, name, spec) for v in spec])
    elif isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) == 3:
            values = _sweep(name, spec, *parts)
        elif len(parts) == 1:
            items = spec.split(",")
            if len(items) > MAX_SWEEP_COUNT:
                raise ParameterError(f"parameter {name!r} has {len(items):,} values; at most "
                                     f"{MAX_SWEEP_COUNT:,}")
            values = np.array([_number(v, name, spec) for v in items])
        else:
            raise ParameterError(f"cannot read the value {spec!r} of parameter {name!r}: "
                                 f"{_FORMS}")
    else:
        values = np.array([_number(spec, name, spec)])
    if not np.all(np.isfinite(values)):
        raise ParameterError(f"parameter {name!r} has a non-finite value in {spec!r}")
    return values


def parse_grid(text: str | int) -> tuple[int, int] | None:
    """Return the grid shape a grid text gives.

    Parameters
    ----------
    text : str or int
        ``"128x96"`` gives (ny=128, nx=96); ``"128"`` (128, 128); ``"none"`` (or
        ``"well-mixed"``) None. Each side needs at least 3 cells; ``0`` is not a way to say
        well mixed.

    Returns
    -------
    tuple of (int, int) or None
        ``(ny, nx)``, or ``None`` for a well-mixed reactor.

    Raises
    ------
    ParameterError
        For text that is not a grid, or a side below 3 cells.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ParameterError(f"cannot read grid {text!r}: use e.g. '128x128', '64' or 'none'")
    if text.strip().lower() in ("none", "well-mixed"):
        return None
    m = re.fullmatch(r"\s*([0-9]{1,9})\s*(?:[xX×]\s*([0-9]{1,9}))?\s*", text)
    if not m:
        raise ParameterError(f"cannot read grid {text!r}: use e.g. '128x128', '64' or 'none'")
    ny = int(m[1])
    nx = int(m[2]) if m[2] else ny
    if min(ny, nx) < 3:
        raise ParameterError(f"grid {text!r} is too small: each side needs at least 3 cells "
                             "(for a well-mixed reactor write 'none')")
    return ny, nx


@dataclass
class SimulationSpec(Settings):
    """Everything ``rdlab simulate`` needs; ``None`` fields take the preset's default.

    Read and written as any rdlab config (:class:`rdlab.settings.Settings`): the types
    come from the annotations below, :meth:`validate` adds the ranges and choices.

    Parameters
    ----------
    preset : str or None, default "gray-scott"
        A name of :data:`~rdlab.chemistry.presets.PRESETS`.
    network_file : str or None, default None
        A network file: SBML ``.xml``/``.sbml``, Antimony ``.ant``/``.antimony``, YAML
        otherwise.
    network : list of str or str or None, default None
        Reaction lines; filled in on :meth:`resolve`.
    species : list of str or None, default None
        The species order of ``network``.
    n_species : int or None, default None
        Number of species of a family preset, ≥ 2.
    parameters : dict of str to Any, default {}
        Name → a number, ``'start:stop:count'``, ``'v1,v2,...'`` or a list (read by
        :func:`parse_values`).
    grid : str or int or None, default None
        ``"NYxNX"``, ``"N"`` or ``"none"`` (:func:`parse_grid`).
    dx : float, default 1.0
        Grid spacing, length units.
    stencil : str, default "9-point"
        A name of :data:`~rdlab.system.STENCILS`.
    dt : float or None, default None
        Time step, > 0.
    steps : int or None, default None
        Number of steps, 1 to :data:`MAX_STEPS`.
    snapshots : int, default 40
        Number of snapshots kept, ≥ 2.
    initial : str or None, default None
        One of :data:`INITIAL_STATES`.
    initial_options : dict, default {}
        Keyword options of that initial state (see :mod:`rdlab.initial`).
    seed : int, default 0
        Seed of the initial state, drawn parameters and flow noise, 0 to :data:`MAX_SEED`.
    engine : str, default "fast"
        A name of :data:`~rdlab.simulate.api.ENGINES`.
    dtype : str, default "float64"
        ``"float32"`` or ``"float64"``.
    movie : str, default "gif"
        One of :data:`MOVIES`.
    runaway_limit : float, default RUNAWAY_LIMIT
        A concentration beyond ±runaway_limit counts as a blow-up (NaN/Inf always do).
    """

    preset: str | None = "gray-scott"
    network_file: str | None = None
    network: list[str] | str | None = None  # reaction lines; filled in on resolve
    species: list[str] | None = None
    n_species: int | None = None
    #: name → a number, 'start:stop:count', 'v1,v2,...' or a list (read by parse_values)
    parameters: dict[str, Any] = field(default_factory=dict)
    grid: str | int | None = None
    dx: float = 1.0
    stencil: str = "9-point"
    dt: float | None = None
    steps: int | None = None
    snapshots: int = 40
    initial: str | None = None
    initial_options: dict = field(default_factory=dict)
    seed: int = 0
    engine: str = "fast"
    dtype: str = "float64"
    movie: str = "gif"
    #: A concentration beyond ±runaway_limit counts as a blow-up (NaN/Inf always do).
    runaway_limit: float = RUNAWAY_LIMIT

    _what = "simulation config"

    @classmethod
    def from_dict(cls, data: dict, *, source: str | Path | None = None) -> SimulationSpec:
        """Build a spec from a config mapping.

        Parameters
        ----------
        data : dict
            The config.
        source : str or pathlib.Path, optional
            Where it comes from, for messages.

        Returns
        -------
        SimulationSpec
            The spec, validated.

        Raises
        ------
        ParameterError
            For unknown keys and values of the wrong type or range, naming the key.
        """
        spec = super().from_dict(data, source=source)
        spec.validate()
        return spec

    @classmethod
    def from_file(cls, path: str | Path) -> SimulationSpec:
        """Read a spec from a YAML config file (a run's ``config.yaml``).

        Parameters
        ----------
        path : str or pathlib.Path
            The file.

        Returns
        -------
        SimulationSpec
            The spec, validated.

        Raises
        ------
        DataError
            If the file cannot be read as a mapping.
        ParameterError
            For unknown keys and bad values; every error names the file.
        """
        return cls.from_yaml(path)

    def validate(self) -> None:
        """Check the type and the range of every field.

        Types as :meth:`~rdlab.settings.Settings.check_types` checks them; ``grid`` is
        stored as text.

        Raises
        ------
        ParameterError
            Naming the key and the value.
        """
        self.check_types()

        def bad(key: str, want: str):
            """Raise the error for field ``key``, which must be ``want``."""
            raise ParameterError(f"{key!r} must be {want}, got {getattr(self, key)!r}")

        if self.n_species is not None and self.n_species < 2:
            bad("n_species", "a whole number ≥ 2")
        for name, value in self.parameters.items():
            parse_values(name, value)
        if self.grid is not None:
            self.grid = str(self.grid)
            parse_grid(self.grid)
        if not MIN_DX <= self.dx <= MAX_DX:
            bad("dx", f"a positive number between {MIN_DX:g} and {MAX_DX:g}")
        if self.stencil not in STENCILS:
            bad("stencil", f"one of {sorted(STENCILS)}")
        if self.dt is not None and not self.dt > 0:
            bad("dt", "a positive number")
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            bad("steps", f"a whole number ≥ 1 (at most {MAX_STEPS:,})")
        if self.snapshots < 2:
            bad("snapshots", "a whole number ≥ 2 (the first and the last state at least)")
        if self.initial is not None and self.initial not in INITIAL_STATES:
            bad("initial", f"one of {list(INITIAL_STATES)}")
        if not 0 <= self.seed <= MAX_SEED:
            bad("seed", "a whole number ≥ 0")
        if self.engine not in ENGINES:
            bad("engine", f"one of {list(ENGINES)}")
        if self.dtype not in DTYPES:
            bad("dtype", f"one of {list(DTYPES)}")
        if self.movie not in MOVIES:
            bad("movie", f"one of {list(MOVIES)}")
        if not self.runaway_limit > 0:
            bad("runaway_limit", "a positive finite number")

    def defaults(self) -> RunDefaults:
        """Return the run defaults.

        Returns
        -------
        RunDefaults
            The preset's (:data:`rdlab.chemistry.presets.PRESETS`), or
            :data:`~rdlab.chemistry.presets.GENERIC_DEFAULTS` for a network given as lines
            or a file (and for an unknown preset, refused when the network is loaded).
        """
        if self.network is not None or self.network_file is not None:
            return GENERIC_DEFAULTS
        preset = PRESETS.get(self.preset or "")
        return GENERIC_DEFAULTS if preset is None else preset.defaults

    def _draw_parameters(self):
        """Return the preset's parameter generator (Dense-RDN families), or None.

        Read even when the network lines are given: a resolved config keeps its preset's
        name, and its rerun draws again so that the random initial state that follows is
        the same.
        """
        preset = PRESETS.get(self.preset or "")
        return None if preset is None else preset.draw_parameters

    def load_network(self) -> ReactionNetwork:
        """Load the network.

        Returns
        -------
        ReactionNetwork
            From the reaction lines, the network file (by suffix: SBML ``.xml``/``.sbml``,
            Antimony ``.ant``/``.antimony``, YAML otherwise) or the preset.

        Raises
        ------
        ParameterError
            If neither a network nor a preset is given.
        NetworkError
            For an unknown preset or invalid reactions.
        DataError
            For a network file that cannot be read.
        """
        return self._load()[0]

    def _load(self) -> tuple[ReactionNetwork, dict[str, float] | None]:
        """Return the network, and the initial concentrations an SBML/Antimony file gives.

        The concentrations are None for other sources.
        """
        if self.network is not None:
            return ReactionNetwork.from_text(self.network, self.species), None
        if self.network_file is not None:
            if Path(self.network_file).suffix.lower() in MODEL_SUFFIXES:
                model = read_model(self.network_file)
                return model.network, model.initial
            return ReactionNetwork.from_yaml(self.network_file), None
        if self.preset is None:
            raise ParameterError("give a preset or a network file (YAML, SBML or Antimony)")
        return preset_network(self.preset, self.n_species), None

    def resolve(self) -> tuple[System, np.ndarray]:
        """Check the spec, fill in defaults, and build the system and the initial state.

        Sizes are checked before anything big is built: the reaction count
        (:data:`~rdlab.chemistry.network.MAX_REACTIONS`) and the run's memory
        (:func:`rdlab.simulate.budget.check_memory`). Mutates the spec so that
        ``to_dict()`` afterwards is a complete, explicit config.

        Returns
        -------
        tuple of (System, numpy.ndarray)
            The system (with its sweeps) and the initial state ``(batch, species, y, x)``
            (``(batch, species)`` well mixed).

        Raises
        ------
        ParameterError
            For invalid fields, unknown or doubly named parameters, missing rate constants,
            an initial state that does not suit the grid, or a run too big for memory.
        NetworkError
            For an unknown preset or invalid reactions.
        DataError
            For a network file that cannot be read.
        """
        self.validate()
        d = self.defaults()
        net, model_initial = self._load()
        self.network, self.species = net.to_lines(), list(net.species)
        self.network_file = None
        if model_initial is not None and self.initial is None and not self.initial_options:
            # an SBML/Antimony model starts from its own initial concentrations (stored in
            # the config, so a rerun needs no model file)
            self.initial, self.initial_options = "uniform", {"values": model_initial}
        self.grid = self.grid if self.grid is not None else d.grid
        self.dt = float(self.dt if self.dt is not None else d.dt)
        self.steps = int(self.steps if self.steps is not None else d.steps)
        if parse_grid(self.grid) is None and (self.initial or d.initial) == "squares":
            if self.initial == "squares":
                raise ParameterError("initial state 'squares' needs a grid; a well-mixed "
                                     "run starts from 'uniform' (the feed, or --base values) "
                                     "or 'random'")
            # the preset's squares have no meaning without a grid: say what is used instead
            base = self.initial_options.get("base")
            self.initial = "uniform"
            self.initial_options = {} if base is None else {"values": base}
        if self.initial is None or self.initial == d.initial:
            self.initial_options = {**d.initial_options, **self.initial_options}
        self.initial = self.initial or d.initial
        rng = np.random.default_rng(self.seed)
        defaults = dict(d.parameters)
        base: dict = {"rates": None, "diffusion": 0.0, "flow": 0.0, "feed": None}
        draw = self._draw_parameters()
        if draw is not None and all(r is None for r in net.default_rates):
            base.update(draw(net, rng))
            base["flow"] = float(base["flow"])
            # record the drawn values so the config reruns without the generator
            for r, value in enumerate(base.pop("rates")):
                defaults.setdefault(f"k{r}", float(value))
            for i, s in enumerate(net.species):
                defaults.setdefault(f"D_{s}", float(base["diffusion"][i]))
                defaults.setdefault(f"feed_{s}", float(base["feed"][i]))
            defaults.setdefault("f", base["flow"])
            base["rates"] = None
        shape = parse_grid(self.grid)
        if shape is not None and self.engine == "ode":
            raise ParameterError(f"engine 'ode' integrates a well-mixed reactor; grid "
                                 f"{self.grid!r} needs engine fast, numpy or torch (or use "
                                 "grid 'none')")
        grid = None if shape is None else Grid(shape[0], shape[1], float(self.dx), self.stencil)
        # the user's values replace the defaults of the same parameter, by whatever name
        # (a rate's label or its index name); unknown or doubly named parameters are refused
        given = {name: parse_values(name, spec) for name, spec in self.parameters.items()}
        overridden = set(locate_parameters(net, list(given)))
        kept = [n for n in defaults if locate_parameters(net, [n])[0] not in overridden]
        params = {**{n: defaults[n] for n in kept}, **self.parameters}
        values = {n: parse_values(n, defaults[n]) for n in kept} | given
        places = locate_parameters(net, list(values))
        rated = {col for attr, col in places if attr == "rates"}
        missing_rates = [net.reaction_text(r, with_rate=False) for r, v in
                         enumerate(net.default_rates) if v is None and r not in rated]
        if missing_rates:
            raise ParameterError(f"no rate constant given for reactions {missing_rates}")
        self._check_size(net, shape, values)
        # reactions without a default rate get theirs from the sweep just below
        rates = [v if v is not None else 0.0 for v in net.default_rates] \
            if base["rates"] is None else base["rates"]
        system = System.build(net, rates=rates, diffusion=base["diffusion"], flow=base["flow"],
                              feed=base["feed"], grid=grid)
        system = system.sweep(**values)
        swept = {n for n, v in values.items() if v.size > 1}
        system = system.with_coords({n: v for n, v in system.coords.items() if n in swept})
        self.parameters = {n: (float(v[0]) if v.size == 1 else params[n])
                           for n, v in values.items()}
        return system, self._initial_state(system, rng)

    def _check_size(self, net: ReactionNetwork, shape, values: dict) -> None:
        """Refuse a run whose memory estimate exceeds the limit."""
        samples = int(np.prod([v.size for v in values.values()], dtype=object) or 1)
        cells = 1 if shape is None else shape[0] * shape[1]
        snapshots = min(int(self.snapshots), int(self.steps) + 1)
        check_memory(RunSize(samples=samples, species=net.n_species, cells=cells,
                             snapshots=snapshots, itemsize=np.dtype(DTYPES[self.dtype]).itemsize,
                             reactions=net.n_reactions,
                             per_reaction=self.engine in ("numpy", "torch")))

    def _initial_state(self, system: System, rng: np.random.Generator) -> np.ndarray:
        """Build the initial state; bad options become a ParameterError naming them."""
        try:
            return self._build_initial_state(system, rng)
        except ParameterError:
            raise
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"bad options for initial state {self.initial!r} "
                                 f"{self.initial_options!r}: {exc}") from None

    def _build_initial_state(self, system: System, rng: np.random.Generator) -> np.ndarray:
        """Return the initial state.

        A well-mixed reactor starts from ``values``/``base`` (or the feed), or from
        U(low, high) for ``random``.
        """
        opts = dict(self.initial_options)
        if self.initial == "uniform":
            unknown = sorted(set(opts) - {"values", "base"})
            if unknown or len(opts) > 1:
                raise ParameterError(f"initial state 'uniform' takes one option, 'values' (or "
                                     f"'base'), got {sorted(opts)}")
            values = opts.get("values", opts.get("base"))
            if system.grid is None:
                return np.broadcast_to(
                    system.feed if values is None
                    else initial.species_vector(system, values, "uniform state"),
                    system.state_shape()).copy()
            return initial.uniform(system, values)
        if system.grid is None:
            if self.initial == "random":
                return rng.uniform(opts.get("low", 0.0), opts.get("high", 1.0),
                                   size=(system.batch_size, system.n_species))
            base = opts.get("base")
            return np.broadcast_to(
                system.feed if base is None
                else initial.species_vector(system, base, "base concentrations"),
                system.state_shape()).copy()
        if self.initial == "squares":
            return initial.with_squares(system, rng, **opts)
        return initial.random_uniform(system, rng, **opts)

    @property
    def name(self) -> str:
        """The run's name for titles: the network file's stem, the preset, or "network"."""
        if self.network_file:
            return Path(self.network_file).stem
        return self.preset or "network"
