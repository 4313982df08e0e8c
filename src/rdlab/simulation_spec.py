"""What to simulate, as plain data: the content of a run's ``config.yaml``.

A :class:`SimulationSpec` names a network (preset or YAML file), parameter values or sweeps,
the grid, time stepping, initial condition and engine. ``resolve()`` turns it into a
:class:`~rdlab.system.System` and an initial state; ``to_dict()`` writes everything needed to
rerun (the network text itself is stored, so the YAML file need not exist later).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from rdlab import initial
from rdlab.chemistry.dense import dense_code_initial_parameters
from rdlab.chemistry.network import ReactionNetwork
from rdlab.chemistry.presets import preset_network
from rdlab.errors import ParameterError
from rdlab.system import Grid, System

#: Defaults per preset: parameters (name → value), time step, steps, grid, initial state.
PRESET_DEFAULTS: dict[str, dict] = {
    "gray-scott": dict(
        parameters={"f": 0.04, "k": 0.06, "D_U": 0.2, "D_V": 0.1, "feed_U": 1.0},
        dt=0.25, steps=20000, grid="128x128", initial="squares",
        initial_options={"square": {"U": 0.5, "V": 0.25}, "n_squares": 3},
    ),
    "coupled-gray-scott": dict(
        parameters={"f": 0.04, "k1": 0.06, "k2": 0.062, "c12": 0.01, "c21": 0.01,
                    "D_U1": 0.2, "D_V1": 0.1, "D_U2": 0.2, "D_V2": 0.1,
                    "feed_U1": 1.0, "feed_U2": 1.0},
        dt=0.25, steps=20000, grid="128x128", initial="squares",
        initial_options={"square": {"U1": 0.5, "V1": 0.25, "U2": 0.5, "V2": 0.25},
                         "n_squares": 3},
    ),
    "brusselator": dict(
        parameters={"a": 4.5, "b": 7.5, "D_X": 0.04, "D_Y": 0.32},
        dt=0.02, steps=20000, grid="64x64", initial="random",
        initial_options={"low": 1.0, "high": 2.0},
    ),
    # dense families: rates, D, f and feed from the public Dense-RDN code's initialisation
    "dense-gs": dict(parameters={}, dt=1.0, steps=2000, grid="64x64", initial="random",
                     initial_options={"low": 0.0, "high": 1.0, "smooth": 2.0}),
    "kitchen-sink": dict(parameters={}, dt=1.0, steps=2000, grid="64x64", initial="random",
                         initial_options={"low": 0.0, "high": 1.0, "smooth": 2.0}),
    "dense": dict(parameters={}, dt=1.0, steps=2000, grid="64x64", initial="random",
                  initial_options={"low": 0.0, "high": 1.0, "smooth": 2.0}),
}
GENERIC_DEFAULTS = dict(parameters={}, dt=0.1, steps=1000, grid="64x64", initial="random",
                        initial_options={"low": 0.0, "high": 1.0, "smooth": 2.0})

_SWEEP = re.compile(r"^\s*([^:]+):([^:]+):(\d+)\s*$")


def parse_values(name: str, spec: str | float | int | list) -> np.ndarray:
    """``0.04`` → [0.04]; ``"0.02:0.06:9"`` → 9 evenly spaced values including both ends;
    ``"0.1,0.2,0.5"`` → a list."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        values = np.array([float(spec)])
    elif isinstance(spec, (list, tuple)):
        values = np.array([float(v) for v in spec])
    elif isinstance(spec, str):
        m = _SWEEP.match(spec)
        try:
            if m:
                n = int(m[3])
                if n < 1:
                    raise ParameterError(f"sweep {name}={spec!r} needs at least 1 value")
                values = np.linspace(float(m[1]), float(m[2]), n)
            else:
                values = np.array([float(v) for v in spec.split(",")])
        except ValueError:
            raise ParameterError(
                f"cannot read the value {spec!r} of parameter {name!r}: use a number, "
                "'start:stop:count' or 'v1,v2,...'"
            ) from None
    else:
        raise ParameterError(f"cannot read the value {spec!r} of parameter {name!r}")
    if not np.all(np.isfinite(values)):
        raise ParameterError(f"parameter {name!r} has a non-finite value in {spec!r}")
    return values


def parse_grid(text: str) -> tuple[int, int] | None:
    """``"128x96"`` → (ny=128, nx=96); ``"128"`` → (128, 128); ``"none"`` → None."""
    if text.strip().lower() in ("none", "well-mixed", "0"):
        return None
    m = re.match(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$", text)
    if not m:
        raise ParameterError(f"cannot read grid {text!r}: use e.g. '128x128', '64' or 'none'")
    ny = int(m[1])
    return ny, int(m[2]) if m[2] else ny


@dataclass
class SimulationSpec:
    """Everything ``rdlab simulate`` needs; ``None`` fields take the preset's default."""

    preset: str | None = "gray-scott"
    network_file: str | None = None
    network: list[str] | None = None  # reaction lines; filled in from preset/file on resolve
    species: list[str] | None = None
    n_species: int | None = None
    parameters: dict[str, float | str | list] = field(default_factory=dict)
    grid: str | None = None
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

    @classmethod
    def from_dict(cls, data: dict) -> SimulationSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def defaults(self) -> dict:
        if self.network is not None or self.network_file is not None:
            return GENERIC_DEFAULTS
        return PRESET_DEFAULTS.get(self.preset or "", GENERIC_DEFAULTS)

    def load_network(self) -> ReactionNetwork:
        if self.network is not None:
            return ReactionNetwork.from_text(self.network, self.species)
        if self.network_file is not None:
            return ReactionNetwork.from_yaml(self.network_file)
        if self.preset is None:
            raise ParameterError("give a preset or a network YAML file")
        return preset_network(self.preset, self.n_species)

    def resolve(self) -> tuple[System, np.ndarray]:
        """Fill in defaults, build the system (with sweeps) and the initial state.

        Mutates the spec so that ``to_dict()`` afterwards is a complete, explicit config."""
        d = self.defaults()
        net = self.load_network()
        self.network, self.species = net.to_lines(), list(net.species)
        self.network_file = None
        self.grid = self.grid if self.grid is not None else d["grid"]
        self.dt = float(self.dt if self.dt is not None else d["dt"])
        self.steps = int(self.steps if self.steps is not None else d["steps"])
        if self.initial is None or self.initial == d["initial"]:
            self.initial_options = {**d["initial_options"], **self.initial_options}
        self.initial = self.initial or d["initial"]
        params = {**d["parameters"], **self.parameters}
        rng = np.random.default_rng(self.seed)
        base: dict = {"rates": None, "diffusion": 0.0, "flow": 0.0, "feed": None}
        if self.preset in ("dense-gs", "kitchen-sink", "dense") \
                and all(r is None for r in net.default_rates):
            base.update(dense_code_initial_parameters(net, rng))
            base["flow"] = float(base["flow"])
            # record the drawn values so the config reruns without the generator
            for r, value in enumerate(base.pop("rates")):
                params.setdefault(f"k{r}", float(value))
            for i, s in enumerate(net.species):
                params.setdefault(f"D_{s}", float(base["diffusion"][i]))
                params.setdefault(f"feed_{s}", float(base["feed"][i]))
            params.setdefault("f", base["flow"])
            base["rates"] = None
        shape = parse_grid(self.grid)
        grid = None if shape is None else Grid(shape[0], shape[1], float(self.dx), self.stencil)
        rates = [v if v is not None else 0.0 for v in net.default_rates] \
            if base["rates"] is None else base["rates"]
        missing_rates = [net.reaction_text(r, with_rate=False) for r, v in
                         enumerate(net.default_rates) if v is None
                         and (net.rate_names[r] or f"k{r}") not in params
                         and f"k{r}" not in params]
        if missing_rates:
            raise ParameterError(f"no rate constant given for reactions {missing_rates}")
        system = System.build(net, rates=rates, diffusion=base["diffusion"], flow=base["flow"],
                              feed=base["feed"], grid=grid)
        values = {name: parse_values(name, spec) for name, spec in params.items()}
        for name in values:
            system._locate(name)  # raises a clear error for an unknown name
        system = system.sweep(**values)
        swept = {n for n, v in values.items() if v.size > 1}
        system = system.with_coords({n: v for n, v in system.coords.items() if n in swept})
        self.parameters = {n: (float(v[0]) if v.size == 1 else params[n])
                           for n, v in values.items()}
        return system, self._initial_state(system, rng)

    def _initial_state(self, system: System, rng: np.random.Generator) -> np.ndarray:
        opts = dict(self.initial_options)
        if system.grid is None:
            if self.initial == "random":
                return rng.uniform(opts.get("low", 0.0), opts.get("high", 1.0),
                                   size=(system.batch_size, system.n_species))
            return system.feed.copy()
        try:
            if self.initial == "squares":
                return initial.with_squares(system, rng, **opts)
            if self.initial == "random":
                return initial.random_uniform(system, rng, **opts)
            if self.initial == "uniform":
                return initial.uniform(system, opts.get("values"))
        except TypeError as exc:
            raise ParameterError(f"bad options for initial state {self.initial!r}: {exc}") \
                from None
        raise ParameterError(f"unknown initial state {self.initial!r}; choose squares, random "
                             "or uniform")

    @property
    def name(self) -> str:
        if self.network_file:
            return Path(self.network_file).stem
        return self.preset or "network"
