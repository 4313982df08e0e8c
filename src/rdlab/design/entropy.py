"""Local entropy production rates of the reaction–diffusion model (Dense-RDN appendix C).

Two differentiable torch functions, each with a per-cell map variant:

* reactions (eq. 18), per cell ``σ_R = k_B Σ_pairs (v⁺ − v⁻) ln(v⁺/v⁻)`` over the network's
  reverse pairs, with every rate replaced by ``max(v, floor)`` (``floor = 1e-5``, as the
  paper and the authors' code) so the logarithm stays finite;
* diffusion (eq. 19), per cell ``σ_D = k_B Σ_i D_i |∇X_i|² / (X_i + offset)`` with the
  paper's stabiliser ``offset = 0.1`` in the denominator.

The scalar versions average the map over the cells of each sample: they return the mean
*rate per cell*, ``(batch,)``. Units: ``k_B`` × concentration/time (``k_B = 1`` gives σ in
units of k_B). Neither is multiplied by ``dt``: these are rates (the authors' code multiplies
σ_D, but not σ_R, by ``Δt = 1``).

Gradients for σ_D (``gradient=``) on a grid of spacing ``dx``:

``"central"`` (default)
    periodic central differences ``(X[i+1] − X[i−1]) / 2dx``: second-order accurate and
    consistent with the periodic domain the model lives on;
``"forward"``
    periodic forward differences ``(X[i+1] − X[i]) / dx``;
``"reference"``
    the authors' ``tf.image.image_gradients``: non-periodic forward differences whose last
    row (for ∂y) and last column (for ∂x) are zero. Offered for parity with their numbers
    only: it ignores the wrap-around edge of a periodic domain. It equals ``"forward"``
    everywhere except in the last row and the last column.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from rdlab.chemistry.network import ReactionNetwork
from rdlab.errors import ParameterError
from rdlab.simulate.torch_engine import NetworkTensors, reaction_rates

__all__ = [
    "GRADIENTS",
    "diffusion_entropy_production",
    "diffusion_entropy_production_map",
    "reaction_entropy_production",
    "reaction_entropy_production_map",
    "spatial_gradients",
]

GRADIENTS = ("central", "forward", "reference")


# ---------------------------------------------------------------------------- helpers
def _check_state(X: torch.Tensor, n_species: int | None = None) -> None:
    if not isinstance(X, torch.Tensor) or X.ndim != 4:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ParameterError(f"state has shape {shape}; expected (batch, species, y, x)")
    if n_species is not None and X.shape[1] != n_species:
        raise ParameterError(
            f"state has {X.shape[1]} species (shape {tuple(X.shape)}); the network has "
            f"{n_species}"
        )


def _per_batch(values: torch.Tensor, batch: int, length: int, what: str) -> torch.Tensor:
    """Broadcast ``(length,)`` or ``(batch, length)`` to ``(batch, length)``."""
    if values.ndim == 1 and values.shape[0] == length:
        return values.unsqueeze(0).expand(batch, length)
    if values.ndim == 2 and values.shape == (batch, length):
        return values
    raise ParameterError(
        f"{what} has shape {tuple(values.shape)}; expected ({length},) or ({batch}, {length})"
    )


def _pairs_from_matrices(R: np.ndarray, P: np.ndarray) -> list[tuple[int, int]]:
    """Return reverse pairs by matching reactants to products.

    The rule of :meth:`ReactionNetwork.reverse_pairs`.
    """
    used: set[int] = set()
    pairs = []
    for a in range(R.shape[1]):
        if a in used:
            continue
        for b in range(a + 1, R.shape[1]):
            if b not in used and np.array_equal(R[:, a], P[:, b]) and np.array_equal(
                P[:, a], R[:, b]
            ):
                pairs.append((a, b))
                used.update((a, b))
                break
    return pairs


@functools.lru_cache(maxsize=64)
def _structure(network_or_tensors, dtype: torch.dtype, device: torch.device):
    """Return ``(NetworkTensors, forward indices, reverse indices)`` on ``dtype``/``device``.

    Memoised, so a roll-out of many steps matches the pairs once.
    """
    if isinstance(network_or_tensors, ReactionNetwork):
        net = NetworkTensors.from_network(network_or_tensors, None, dtype, device)
        pairs = network_or_tensors.reverse_pairs()
    elif isinstance(network_or_tensors, NetworkTensors):
        net = network_or_tensors.to(dtype=dtype, device=device)
        factors = net.factors.cpu().numpy()
        n_s, n_r = net.n_species, net.n_reactions
        R = np.zeros((n_s, n_r), dtype=np.int64)
        for j in range(factors.shape[0]):
            for r in range(n_r):
                if factors[j, r] < n_s:
                    R[factors[j, r], r] += 1
        P = R + np.rint(net.stoichiometry.cpu().numpy()).astype(np.int64)
        pairs = _pairs_from_matrices(R, P)
    else:
        raise ParameterError(
            f"expected a ReactionNetwork or NetworkTensors, got {type(network_or_tensors).__name__}"
        )
    fwd = torch.tensor([a for a, _ in pairs], dtype=torch.long, device=device)
    rev = torch.tensor([b for _, b in pairs], dtype=torch.long, device=device)
    return net, fwd, rev


# ---------------------------------------------------------------------------- reactions
def reaction_entropy_production_map(
    network_or_tensors: ReactionNetwork | NetworkTensors,
    rates: torch.Tensor,
    X: torch.Tensor,
    floor: float = 1e-5,
    k_B: float = 1.0,
) -> torch.Tensor:
    """Compute the per-cell reaction entropy production (eq. 18).

    Parameters
    ----------
    network_or_tensors : ReactionNetwork or NetworkTensors
        The network (its reverse pairs define ``v⁺``/``v⁻``); reactions without a reverse
        partner produce no term.
    rates : torch.Tensor
        Rate constants ``(R,)`` or ``(batch, R)``.
    X : torch.Tensor
        Concentrations ``(batch, species, y, x)``.
    floor : float, default 1e-5
        Each mass-action rate ``v`` is replaced by ``max(v, floor)``; > 0.
    k_B : float, default 1.0
        Boltzmann's constant (1 → σ in units of k_B).

    Returns
    -------
    torch.Tensor
        ``k_B Σ_pairs (v⁺ − v⁻) ln(v⁺/v⁻)`` in each cell, ``(batch, y, x)``, ≥ 0
        (k_B × concentration/time).

    Raises
    ------
    ParameterError
        For ``floor`` ≤ 0, a state that is not ``(batch, species, y, x)`` with the network's
        species, or rates of the wrong shape.
    """
    if floor <= 0:
        raise ParameterError(f"floor must be > 0 (the logarithm needs it), got {floor}")
    if not isinstance(rates, torch.Tensor):
        rates = torch.as_tensor(rates, dtype=X.dtype, device=X.device)
    net, fwd, rev = _structure(network_or_tensors, X.dtype, X.device)
    _check_state(X, net.n_species)
    rates = _per_batch(rates.to(X.dtype), X.shape[0], net.n_reactions, "rates")
    if fwd.numel() == 0:
        return X.new_zeros((X.shape[0], *X.shape[2:]))
    v = reaction_rates(net, rates, X).clamp(min=floor)
    v_plus, v_minus = v.index_select(1, fwd), v.index_select(1, rev)
    terms = (v_plus - v_minus) * (torch.log(v_plus) - torch.log(v_minus))
    return k_B * terms.sum(dim=1)


def reaction_entropy_production(
    network_or_tensors: ReactionNetwork | NetworkTensors,
    rates: torch.Tensor,
    X: torch.Tensor,
    floor: float = 1e-5,
    k_B: float = 1.0,
) -> torch.Tensor:
    """Return the mean over cells of :func:`reaction_entropy_production_map`.

    Parameters
    ----------
    network_or_tensors : ReactionNetwork or NetworkTensors
        The network.
    rates : torch.Tensor
        Rate constants ``(R,)`` or ``(batch, R)``.
    X : torch.Tensor
        Concentrations ``(batch, species, y, x)``.
    floor : float, default 1e-5
        Floor of each mass-action rate.
    k_B : float, default 1.0
        Boltzmann's constant.

    Returns
    -------
    torch.Tensor
        ``(batch,)``.
    """
    return reaction_entropy_production_map(network_or_tensors, rates, X, floor, k_B).mean(
        dim=(-2, -1)
    )


# ---------------------------------------------------------------------------- diffusion
def spatial_gradients(
    X: torch.Tensor, gradient: str = "central", dx: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(∂X/∂y, ∂X/∂x)`` of ``X`` by the rule ``gradient``.

    Parameters
    ----------
    X : torch.Tensor
        Fields ``(..., y, x)``.
    gradient : {"central", "forward", "reference"}
        The difference rule (see the module docstring).
    dx : float, default 1.0
        Grid spacing, > 0.

    Returns
    -------
    dy, dx : torch.Tensor
        Each the shape of ``X``.

    Raises
    ------
    ParameterError
        For ``dx`` ≤ 0 or an unknown rule.
    """
    if dx <= 0:
        raise ParameterError(f"grid spacing dx must be > 0, got {dx}")
    if gradient == "central":
        gy = (torch.roll(X, -1, dims=-2) - torch.roll(X, 1, dims=-2)) / (2 * dx)
        gx = (torch.roll(X, -1, dims=-1) - torch.roll(X, 1, dims=-1)) / (2 * dx)
    elif gradient == "forward":
        gy = (torch.roll(X, -1, dims=-2) - X) / dx
        gx = (torch.roll(X, -1, dims=-1) - X) / dx
    elif gradient == "reference":
        dy = X[..., 1:, :] - X[..., :-1, :]
        dxx = X[..., :, 1:] - X[..., :, :-1]
        gy = torch.cat([dy, torch.zeros_like(X[..., :1, :])], dim=-2) / dx
        gx = torch.cat([dxx, torch.zeros_like(X[..., :, :1])], dim=-1) / dx
    else:
        raise ParameterError(f"unknown gradient {gradient!r}; choose one of {list(GRADIENTS)}")
    return gy, gx


def diffusion_entropy_production_map(
    diffusion: torch.Tensor,
    X: torch.Tensor,
    offset: float = 0.1,
    gradient: str = "central",
    k_B: float = 1.0,
    dx: float = 1.0,
) -> torch.Tensor:
    """Compute the per-cell diffusion entropy production (eq. 19).

    Parameters
    ----------
    diffusion : torch.Tensor
        Diffusion coefficients ``(S,)`` or ``(batch, S)`` (cells²/s for dx = 1).
    X : torch.Tensor
        Concentrations ``(batch, species, y, x)``.
    offset : float, default 0.1
        Stabiliser added to ``X_i`` in the denominator (paper: 0.1); must keep
        ``X_i + offset > 0``.
    gradient : {"central", "forward", "reference"}
        The difference rule (see the module docstring).
    k_B : float, default 1.0
        Boltzmann's constant.
    dx : float, default 1.0
        Grid spacing.

    Returns
    -------
    torch.Tensor
        ``k_B Σ_i D_i |∇X_i|² / (X_i + offset)`` in each cell, ``(batch, y, x)``.

    Raises
    ------
    ParameterError
        For a negative ``offset``, a state that is not ``(batch, species, y, x)``, or
        coefficients of the wrong shape.
    """
    _check_state(X)
    if offset < 0:
        raise ParameterError(f"offset must be ≥ 0, got {offset}")
    if not isinstance(diffusion, torch.Tensor):
        diffusion = torch.as_tensor(diffusion, dtype=X.dtype, device=X.device)
    D = _per_batch(diffusion.to(X.dtype), X.shape[0], X.shape[1], "diffusion")
    gy, gx = spatial_gradients(X, gradient, dx)
    per_species = (gy * gy + gx * gx) / (X + offset)
    return k_B * (D[:, :, None, None] * per_species).sum(dim=1)


def diffusion_entropy_production(
    diffusion: torch.Tensor,
    X: torch.Tensor,
    offset: float = 0.1,
    gradient: str = "central",
    k_B: float = 1.0,
    dx: float = 1.0,
) -> torch.Tensor:
    """Return the mean over cells of :func:`diffusion_entropy_production_map`.

    Parameters
    ----------
    diffusion : torch.Tensor
        Diffusion coefficients ``(S,)`` or ``(batch, S)``.
    X : torch.Tensor
        Concentrations ``(batch, species, y, x)``.
    offset : float, default 0.1
        Stabiliser added to ``X_i`` in the denominator.
    gradient : {"central", "forward", "reference"}
        The difference rule.
    k_B : float, default 1.0
        Boltzmann's constant.
    dx : float, default 1.0
        Grid spacing.

    Returns
    -------
    torch.Tensor
        ``(batch,)``.
    """
    return diffusion_entropy_production_map(diffusion, X, offset, gradient, k_B, dx).mean(
        dim=(-2, -1)
    )
