"""Named networks and ready-made systems.

Gray–Scott in the (f, k) form of the Gray–Scott CNN paper::

    ∂u/∂t = Du∇²u − uv² + f(1 − u)         ∂v/∂t = Dv∇²v + uv² − (f + k)v

is the network U + 2V → 3V (rate 1), V → 0 (rate k) in a flow reactor with flow f and
feed (1, 0).
"""

from __future__ import annotations

from collections.abc import Callable

from rdlab.chemistry.dense import (
    dense_gs_network,
    dense_network,
    kitchen_sink_network,
    reaction_count,
)
from rdlab.chemistry.network import MAX_REACTIONS, ReactionNetwork
from rdlab.errors import NetworkError


def gray_scott_network(k: float = 0.06) -> ReactionNetwork:
    """U + 2V → 3V (rate 1), V → 0 (rate ``k``, named ``k``)."""
    return ReactionNetwork.from_text(["U + 2V -> 3V : 1.0", f"V -> 0 : k = {float(k)!r}"])


def coupled_gray_scott_network(k1: float = 0.06, k2: float = 0.06,
                               interconversion: float = 0.01) -> ReactionNetwork:
    """Two Gray–Scott systems linked by interconversion of the autocatalysts (Dense-RDN
    Fig. 1, appendix B.1): U1 + 2V1 → 3V1, V1 → 0, V2 → 0, U2 + 2V2 → 3V2, V1 ⇌ V2.

    The decays come second and third so that their labels ``k1`` and ``k2`` are also their
    index names (a label may not be another reaction's index name)."""
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
    """The Brusselator with the pool species A and B folded into rates:
    0 → X (rate a), 2X + Y → 3X (1), X → Y (rate b), X → 0 (1), so that
    dx/dt = a − (b + 1)x + x²y and dy/dt = bx − x²y."""
    return ReactionNetwork.from_text(
        [f"0 -> X : a = {float(a)!r}", "2X + Y -> 3X : 1.0", f"X -> Y : b = {float(b)!r}",
         "X -> 0 : 1.0"]
    )


NETWORKS: dict[str, Callable[..., ReactionNetwork]] = {
    "gray-scott": gray_scott_network,
    "coupled-gray-scott": coupled_gray_scott_network,
    "brusselator": brusselator_network,
    "dense": dense_network,
    "dense-gs": dense_gs_network,
    "kitchen-sink": kitchen_sink_network,
}


def preset_network(name: str, n_species: int | None = None) -> ReactionNetwork:
    """A preset by name; the dense families take ``n_species`` (default 5)."""
    if name not in NETWORKS:
        raise NetworkError(f"unknown preset {name!r}; presets are {sorted(NETWORKS)}")
    if name in ("dense", "dense-gs", "kitchen-sink"):
        n = 5 if n_species is None else n_species
        count = reaction_count(name, n)
        if count > MAX_REACTIONS:
            raise NetworkError(
                f"preset {name!r} with {n} species has {count:,} reactions, more than the "
                f"limit of {MAX_REACTIONS:,} (rdlab.chemistry.network.MAX_REACTIONS); use "
                "fewer species")
        return NETWORKS[name](n)
    if n_species is not None:
        raise NetworkError(f"preset {name!r} has a fixed number of species")
    return NETWORKS[name]()
