"""What an objective sees: one differentiable roll-out of the model.

A :class:`Trajectory` is the hand-over point between the dynamics (:mod:`.dynamics`) and the
loss terms (:mod:`.objectives`): the states after every Euler step, the step size and the
parameters that produced them. Everything is a torch tensor in concentration units, so every
loss term is differentiable with respect to the parameters and the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rdlab.chemistry.network import ReactionNetwork


@dataclass(eq=False)
class Trajectory:
    """A roll-out ``X_0 … X_T`` of the reaction–diffusion model.

    Attributes
    ----------
        states: ``T + 1`` tensors ``(batch, species, y, x)``: ``states[t]`` is the state after
            ``t`` steps of ``dt`` (``states[0]`` is the initial state ``X_0``).
        dt: time step (s).
        rates: rate constants ``(n_reactions,)`` in the order of ``network``.
        diffusion: diffusion coefficients ``(species,)`` (cells²/s).
        flow: flow rate, a 0-d tensor (1/s).
        feed: feed concentrations ``(species,)``.
        network: the (dense) reaction network; its reverse pairs define the reaction
            entropy production.
        z: the generator's input bits ``(batch, n_bits)`` in {0, 1}, or ``None``.
        flow_fields: per-step flow ``(batch, 1, y, x)`` when the drive is noisy, else ``None``
            (``flow_fields[t]`` drove the step from ``states[t]`` to ``states[t + 1]``).
    """

    states: list[torch.Tensor]
    dt: float
    rates: torch.Tensor
    diffusion: torch.Tensor
    flow: torch.Tensor
    feed: torch.Tensor
    network: ReactionNetwork
    z: torch.Tensor | None = None
    flow_fields: list[torch.Tensor] | None = None

    @property
    def n_steps(self) -> int:
        return len(self.states) - 1

    def steps(self) -> list[torch.Tensor]:
        """The state changes ``ΔX_t = X_{t+1} − X_t``, ``T`` tensors ``(batch, species, y, x)``."""
        return [b - a for a, b in zip(self.states[:-1], self.states[1:])]
