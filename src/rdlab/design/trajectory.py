"""What an objective sees: one differentiable roll-out of the model.

A :class:`Trajectory` is the hand-over point between the dynamics
(:mod:`rdlab.design.dynamics`) and the loss terms (:mod:`rdlab.design.objectives`): the
states after every Euler step, the step size and the parameters that produced them.
Everything is a torch tensor in concentration units, so every loss term is differentiable
with respect to the parameters and the generator.
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
    states : list of torch.Tensor
        ``T + 1`` tensors ``(batch, species, y, x)``: ``states[t]`` is the state after ``t``
        steps of ``dt`` (``states[0]`` is the initial state ``X_0``).
    dt : float
        Time step (s).
    rates : torch.Tensor
        Rate constants ``(n_reactions,)`` in the order of ``network``.
    diffusion : torch.Tensor
        Diffusion coefficients ``(species,)`` (cells²/s).
    flow : torch.Tensor
        Flow rate, a 0-d tensor (1/s).
    feed : torch.Tensor
        Feed concentrations ``(species,)``.
    network : rdlab.chemistry.network.ReactionNetwork
        The (dense) reaction network; its reverse pairs define the reaction entropy
        production.
    z : torch.Tensor or None
        The generator's input bits ``(batch, n_bits)`` in {0, 1}, or ``None``.
    flow_fields : list of torch.Tensor or None
        Per-step flow ``(batch, 1, y, x)`` when the drive is noisy, else ``None``
        (``flow_fields[t]`` drove the step from ``states[t]`` to ``states[t + 1]``).
    extension : Trajectory or None
        A roll-out past this one's end for the ``hold`` loss term
        (:class:`~rdlab.design.objectives.Hold`): the last steps up to a time drawn after the
        window, differentiable; ``None`` on steps without one.
    stacked_states : torch.Tensor or None
        The same states as one tensor ``(T + 1, batch, species, y, x)`` when the engine made
        them as one (the compiled engine), else ``None`` until :meth:`stacked` first stacks
        them. Loss terms over many states read this one tensor: one torch operation over all
        times instead of one per state, forward and backward.
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
    extension: Trajectory | None = None
    stacked_states: torch.Tensor | None = None

    @property
    def n_steps(self) -> int:
        """Number of Euler steps ``T``."""
        return len(self.states) - 1

    def stacked(self) -> torch.Tensor:
        """Return every state in one tensor (stacked once, then kept).

        Returns
        -------
        torch.Tensor
            ``(T + 1, batch, species, y, x)``, differentiable like :attr:`states`.
        """
        if self.stacked_states is None:
            self.stacked_states = torch.stack(self.states)
        return self.stacked_states

    def steps(self) -> torch.Tensor:
        """Return the state changes ``ΔX_t = X_{t+1} − X_t``.

        Returns
        -------
        torch.Tensor
            ``(T, batch, species, y, x)``; ``steps()[t]`` is ``ΔX_t``.
        """
        X = self.stacked()
        return X[1:] - X[:-1]
