"""Named networks and ready-made systems: the preset registry.

Every preset is one :class:`Preset` entry in :data:`PRESETS`: how its network is built,
whether it is a family taking a number of species, the run defaults of ``rdlab simulate``
(:class:`RunDefaults`: parameters, time step, steps, grid, initial state) and a one-line
description. :func:`preset_network`, :class:`~rdlab.simulate_job.spec.SimulationSpec`, the
``--preset``/``--n-species`` help and the unknown-preset error all read it, so adding a
preset is one entry here (or :func:`register_preset` at run time).

Gray–Scott in the (f, k) form of the Gray–Scott CNN paper::

    ∂u/∂t = Du∇²u − uv² + f(1 − u)         ∂v/∂t = Dv∇²v + uv² − (f + k)v

is the network U + 2V → 3V (rate 1), V → 0 (rate k) in a flow reactor with flow f and
feed (1, 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

import numpy as np

from rdlab.chemistry.dense import (
    dense_code_initial_parameters,
    dense_gs_network,
    dense_network,
    kitchen_sink_network,
    reaction_count,
)
from rdlab.chemistry.network import MAX_REACTIONS, ReactionNetwork
from rdlab.errors import NetworkError
from rdlab.registry import Registry

__all__ = ["GENERIC_DEFAULTS", "PRESETS", "Preset", "RunDefaults", "brusselator_network",
           "coupled_gray_scott_network", "get_preset", "gray_scott_network",
           "n_species_help", "preset_help", "preset_network", "register_preset"]


def gray_scott_network(k: float = 0.06) -> ReactionNetwork:
    """Return the Gray–Scott network: U + 2V → 3V (rate 1), V → 0 (rate ``k``).

    Parameters
    ----------
    k : float, default 0.06
        Rate constant of V → 0, labelled ``k``; 1/time.

    Returns
    -------
    ReactionNetwork
        Species U, V; two directed reactions.
    """
    return ReactionNetwork.from_text(["U + 2V -> 3V : 1.0", f"V -> 0 : k = {float(k)!r}"])


def coupled_gray_scott_network(k1: float = 0.06, k2: float = 0.06,
                               interconversion: float = 0.01) -> ReactionNetwork:
    """Return two Gray–Scott systems linked by interconversion of the autocatalysts.

    Dense-RDN Fig. 1, appendix B.1: U1 + 2V1 → 3V1, V1 → 0, V2 → 0, U2 + 2V2 → 3V2,
    V1 ⇌ V2. The decays come second and third so that their labels ``k1`` and ``k2`` are
    also their index names (a label may not be another reaction's index name).

    Parameters
    ----------
    k1, k2 : float, default 0.06
        Rate constants of V1 → 0 and V2 → 0, labelled ``k1`` and ``k2``.
    interconversion : float, default 0.01
        Rate constant of both V1 → V2 and V2 → V1, labelled ``c12`` and ``c21``.

    Returns
    -------
    ReactionNetwork
        Species U1, V1, U2, V2; six directed reactions.
    """
    c = float(interconversion)
    return ReactionNetwork.from_text(
        [
            "U1 + 2V1 -> 3V1 : 1.0",
            f"V1 -> 0 : k1 = {float(k1)!r}",
            f"V2 -> 0 : k2 = {float(k2)!r}",
            "U2 + 2V2 -> 3V2 : 1.0",
            f"V1 <-> V2 : c12 = {c!r}, c21 = {c!r}",
        ],
        species=["U1", "V1", "U2", "V2"],
    )


def brusselator_network(a: float = 1.0, b: float = 3.0) -> ReactionNetwork:
    """Return the Brusselator with the pool species A and B folded into rates.

    0 → X (rate a), 2X + Y → 3X (1), X → Y (rate b), X → 0 (1), so that
    dx/dt = a − (b + 1)x + x²y and dy/dt = bx − x²y.

    Parameters
    ----------
    a : float, default 1.0
        Rate constant of 0 → X, labelled ``a``.
    b : float, default 3.0
        Rate constant of X → Y, labelled ``b``.

    Returns
    -------
    ReactionNetwork
        Species X, Y; four directed reactions.
    """
    return ReactionNetwork.from_text(
        [f"0 -> X : a = {float(a)!r}", "2X + Y -> 3X : 1.0", f"X -> Y : b = {float(b)!r}",
         "X -> 0 : 1.0"]
    )


def _frozen(mapping: Mapping) -> Mapping:
    """Return a read-only copy of ``mapping``."""
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class RunDefaults:
    """What ``rdlab simulate`` takes for a network when the spec does not say.

    Parameters
    ----------
    dt : float
        Time step (time units).
    steps : int
        Number of steps.
    grid : str
        ``"NYxNX"`` or ``"none"``.
    initial : str
        The initial state, one of ``squares``, ``random``, ``uniform``.
    initial_options : Mapping of str to Any, default {}
        Keyword options of that initial state (see :mod:`rdlab.initial`); stored read-only.
    parameters : Mapping of str to float, default {}
        Name → value (a rate's label or index name, ``D_<species>`` in length²/time, ``f``
        in 1/time, ``feed_<species>`` in concentration); stored read-only.
    """

    dt: float
    steps: int
    grid: str
    initial: str
    initial_options: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Freeze the mappings."""
        object.__setattr__(self, "parameters", _frozen(self.parameters))
        object.__setattr__(self, "initial_options", _frozen(self.initial_options))


#: Defaults for a network given as reaction lines or a file (not a preset).
GENERIC_DEFAULTS = RunDefaults(dt=0.1, steps=1000, grid="64x64", initial="random",
                               initial_options={"low": 0.0, "high": 1.0, "smooth": 2.0})


@dataclass(frozen=True)
class Preset:
    """One named network with everything a run of it needs.

    Parameters
    ----------
    name : str
        The name ``--preset`` takes.
    build : callable
        The network builder, called with no argument, or with the number of species for a
        family.
    description : str
        One line for help texts.
    defaults : RunDefaults
        The run defaults.
    n_species : int, optional
        A family's default number of species (``None`` for a network of fixed species).
    count_reactions : callable, optional
        A family's number of reactions for N species, computed without building it (so
        that a huge request is refused at once).
    draw_parameters : callable, optional
        ``(network, rng) → {"rates", "diffusion", "flow", "feed"}`` arrays, for presets
        whose parameters are drawn per run (the Dense-RDN code's initialisation) rather
        than listed in ``defaults.parameters``.
    """

    name: str
    build: Callable[..., ReactionNetwork]
    description: str
    defaults: RunDefaults
    n_species: int | None = None
    count_reactions: Callable[[int], int] | None = None
    draw_parameters: Callable[[ReactionNetwork, np.random.Generator],
                              dict[str, np.ndarray]] | None = None

    @property
    def family(self) -> bool:
        """Whether the preset is a family of networks taking ``n_species``."""
        return self.n_species is not None

    def network(self, n_species: int | None = None) -> ReactionNetwork:
        """Build the preset's network.

        Parameters
        ----------
        n_species : int, optional
            Number of species of a family (default :attr:`n_species`); must be ``None``
            for a network of fixed species.

        Returns
        -------
        ReactionNetwork
            The network.

        Raises
        ------
        NetworkError
            If ``n_species`` is given to a fixed network, or the family would have more than
            :data:`~rdlab.chemistry.network.MAX_REACTIONS` reactions.
        """
        if not self.family:
            if n_species is not None:
                raise NetworkError(f"preset {self.name!r} has a fixed number of species")
            return self.build()
        n = self.n_species if n_species is None else n_species
        if self.count_reactions is not None:
            count = self.count_reactions(n)
            if count > MAX_REACTIONS:
                raise NetworkError(
                    f"preset {self.name!r} with {n} species has {count:,} reactions, more "
                    f"than the limit of {MAX_REACTIONS:,} "
                    "(rdlab.chemistry.network.MAX_REACTIONS); use fewer species")
        return self.build(n)


_GS_SQUARES = {"square": {"U": 0.5, "V": 0.25}, "n_squares": 3}
_DENSE_DEFAULTS = RunDefaults(dt=1.0, steps=2000, grid="64x64", initial="random",
                              initial_options={"low": 0.0, "high": 1.0, "smooth": 2.0})


def _dense_family(name: str, build: Callable[[int], ReactionNetwork],
                  description: str) -> Preset:
    """Return a Dense-RDN family preset of N species (default 5).

    Rates, D, f and feed are drawn as the public Dense-RDN code initialises them.
    """
    return Preset(name, build, description, _DENSE_DEFAULTS, n_species=5,
                  count_reactions=partial(reaction_count, name),
                  draw_parameters=dense_code_initial_parameters)


#: The presets by name, in the order help texts list them.
PRESETS: Registry[Preset] = Registry("preset", NetworkError, ((p.name, p) for p in (
    Preset("gray-scott", gray_scott_network,
           "Gray–Scott, U + 2V → 3V and V → 0 with flow f and feed (1, 0)",
           RunDefaults(parameters={"f": 0.04, "k": 0.06, "D_U": 0.2, "D_V": 0.1, "feed_U": 1.0},
                       dt=0.25, steps=20000, grid="128x128", initial="squares",
                       initial_options=_GS_SQUARES)),
    Preset("coupled-gray-scott", coupled_gray_scott_network,
           "two Gray–Scott systems linked by V1 ⇌ V2 (Dense-RDN Fig. 1)",
           RunDefaults(parameters={"f": 0.04, "k1": 0.06, "k2": 0.062, "c12": 0.01,
                                   "c21": 0.01, "D_U1": 0.2, "D_V1": 0.1, "D_U2": 0.2,
                                   "D_V2": 0.1, "feed_U1": 1.0, "feed_U2": 1.0},
                       dt=0.25, steps=20000, grid="128x128", initial="squares",
                       initial_options={"square": {"U1": 0.5, "V1": 0.25, "U2": 0.5,
                                                   "V2": 0.25},
                                        "n_squares": 3})),
    Preset("brusselator", brusselator_network,
           "the Brusselator, dx/dt = a − (b + 1)x + x²y, dy/dt = bx − x²y",
           RunDefaults(parameters={"a": 4.5, "b": 7.5, "D_X": 0.04, "D_Y": 0.32},
                       dt=0.02, steps=20000, grid="64x64", initial="random",
                       initial_options={"low": 1.0, "high": 2.0})),
    _dense_family("dense", dense_network,
                  "the Dense-RDN paper's prototype sets R3.1–R3.3 among N species"),
    _dense_family("dense-gs", dense_gs_network,
                  "the public Dense-RDN code's Gray–Scott-like family, 4·C(N, 2) reactions"),
    _dense_family("kitchen-sink", kitchen_sink_network,
                  "the public Dense-RDN code's kitchen sink, N²(N − 1) reactions"),
)))


def register_preset(preset: Preset) -> Preset:
    """Add ``preset`` to :data:`PRESETS`.

    Parameters
    ----------
    preset : Preset
        The preset, registered under its name.

    Returns
    -------
    Preset
        The preset.

    Raises
    ------
    ValueError
        If a different preset of the same name is registered.
    """
    return PRESETS.add(preset.name, preset)


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``.

    Parameters
    ----------
    name : str
        A name of :data:`PRESETS`.

    Returns
    -------
    Preset
        The preset.

    Raises
    ------
    NetworkError
        If the name is unknown (the presets are listed).
    """
    return PRESETS.lookup(name)


def preset_network(name: str, n_species: int | None = None) -> ReactionNetwork:
    """Return a preset's network by name.

    Parameters
    ----------
    name : str
        A name of :data:`PRESETS`.
    n_species : int, optional
        Number of species of a family (default: its own).

    Returns
    -------
    ReactionNetwork
        The network.

    Raises
    ------
    NetworkError
        If the name is unknown, or ``n_species`` does not suit the preset.
    """
    return get_preset(name).network(n_species)


def preset_help() -> str:
    """Return one entry per preset for help texts: ``name: description``."""
    return "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())


def n_species_help() -> str:
    """Return which presets take a number of species, and their defaults, for help texts."""
    families = [p for p in PRESETS.values() if p.family]
    return ("Species of a family preset: "
            + ", ".join(f"{p.name} (default {p.n_species})" for p in families) + ".")
