"""What the system *is*: species, reactions, stoichiometry, rate laws, presets."""

from rdlab.chemistry.dense import dense_gs_network, dense_network, kitchen_sink_network
from rdlab.chemistry.kinetics import arrhenius, mass_action_rates
from rdlab.chemistry.network import ReactionNetwork
from rdlab.chemistry.presets import (
    brusselator_network,
    coupled_gray_scott_network,
    gray_scott_network,
    preset_network,
)

__all__ = [
    "ReactionNetwork",
    "arrhenius",
    "brusselator_network",
    "coupled_gray_scott_network",
    "dense_gs_network",
    "dense_network",
    "gray_scott_network",
    "kitchen_sink_network",
    "mass_action_rates",
    "preset_network",
]
