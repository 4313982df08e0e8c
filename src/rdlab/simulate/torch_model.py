"""The differentiable definition of the model in torch: right-hand side, Euler step, roll-out.

The same model as :mod:`rdlab.simulate.reference` (the NumPy definition)::

    dX/dt = S·v(X) + D∘∇²X + f·(x_feed − X)        v_r = k_r ∏_i X_i^{R_ir}

    X_{t+1} = X_t + dt·dX/dt, optionally clipped to [0, c_max]

written once with torch operations, so that gradients can be taken with respect to the rate
constants, diffusion coefficients, flow, feed and the initial state. Works on CPU and CUDA,
in float32 or float64. The torch engine (:mod:`rdlab.simulate.torch_engine`) steps it for
:func:`rdlab.simulate.simulate`; the design job steps it for its long checks and replaces
its step by a fused one with a hand-written backward (:mod:`rdlab.design.dynamics`), tested
value- and gradient-wise against this one.

Two containers hold what the functions need:

* :class:`NetworkTensors` — the fixed structure: which species multiply into each reaction
  rate, the stoichiometry ``S`` and the grid's stencil (``None`` well mixed).
* :class:`TorchParameters` — the per-sample parameters ``rates (B, R)``, ``diffusion (B, S)``,
  ``flow (B,)`` and ``feed (B, S)``, the tensors one differentiates with respect to.

Mass action is evaluated as a product of gathered factors: reaction ``r`` of order ``m``
multiplies ``k_r`` by its ``m`` reactant concentrations (a species with coefficient 2 appears
twice), in the same order as the reference, so the rates are bit-for-bit those of
:func:`rdlab.chemistry.kinetics.mass_action_rates` and their gradients are exact polynomials,
finite everywhere including ``X = 0``.

The optional clip to ``[0, c_max]`` (:data:`C_MAX` = 10 in the public Dense-RDN code, which
applies it after every step) is not in the paper's equations; its gradient is that of
:func:`torch.clamp`, zero where the unclipped value lies outside ``[0, c_max]``.

Stepping is written once too: a step is any ``(X, flow_field or None) → X_next``
(:func:`model_step` gives the definition's) and :func:`euler_iterates` drives it, drawing
one flow field per step when the drive is noisy (:func:`noisy_flow_field`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from rdlab.errors import ParameterError
from rdlab.system import C_MAX, STENCILS, FlowNoise, System

__all__ = [
    "C_MAX",
    "NetworkTensors",
    "StepFunction",
    "TorchParameters",
    "check_snapshot_steps",
    "euler_iterates",
    "euler_step",
    "flow_field",
    "intra_op_threads",
    "laplacian",
    "model_step",
    "noisy_flow_field",
    "periodic_laplacian",
    "raw_noise",
    "reaction_rates",
    "rhs",
    "rollout",
    "smooth_periodic",
    "stencil_weights",
    "torch_dtype",
]

StepFunction = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""One Euler step ``(X, flow_field or None) → X_next`` of a batch ``(B, S, ...)``."""

_PARAMETER_NAMES = ("rates", "diffusion", "flow", "feed")


def torch_dtype(dtype) -> torch.dtype:
    """Return the torch dtype for float32 or float64.

    Parameters
    ----------
    dtype : numpy.dtype, str or torch.dtype
        ``float32``/``float64`` as a NumPy dtype, a string or a torch dtype.

    Returns
    -------
    torch.dtype
        ``torch.float32`` or ``torch.float64``.

    Raises
    ------
    ParameterError
        For any other dtype.
    """
    if isinstance(dtype, torch.dtype):
        if dtype in (torch.float32, torch.float64):
            return dtype
        raise ParameterError(f"the torch engine runs in float32 or float64, not {dtype}")
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise ParameterError(f"unknown dtype {dtype!r}; choose float32 or float64") from None
    if np_dtype == np.float32:
        return torch.float32
    if np_dtype == np.float64:
        return torch.float64
    raise ParameterError(f"the torch engine runs in float32 or float64, not {np_dtype}")


@contextlib.contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the enclosed torch operations with ``n`` intra-op threads.

    Parameters
    ----------
    n : int or None
        Threads to use inside the block; ``None`` leaves torch's setting unchanged.

    Yields
    ------
    None
        Torch's previous setting is restored on leaving the block.
    """
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------------------- containers
@dataclass(frozen=True, eq=False)
class NetworkTensors:
    """The fixed (non-differentiable) structure of the model on one device and dtype.

    Attributes
    ----------
    factors : torch.Tensor
        ``(max_order, n_reactions)`` long tensor; ``factors[j, r]`` is the species index of
        the ``j``-th reactant factor of reaction ``r`` (species in index order, a coefficient
        ``c`` repeated ``c`` times), or ``n_species`` (a channel of ones) where the reaction
        has fewer than ``j + 1`` factors.
    stoichiometry : torch.Tensor
        ``S``, shape ``(n_species, n_reactions)``.
    n_species : int
        Number of species.
    stencil : str or None
        The grid's stencil, a name of :data:`rdlab.system.STENCILS`, or ``None`` for a
        well-mixed reactor.
    dx : float
        Grid spacing (the Laplacian is divided by ``dx²``).
    """

    factors: torch.Tensor
    stoichiometry: torch.Tensor
    n_species: int
    stencil: str | None = None
    dx: float = 1.0

    @classmethod
    def from_network(cls, network, grid=None, dtype=torch.float64,
                     device: str | torch.device = "cpu") -> NetworkTensors:
        """Build the structure of a network on a grid.

        Parameters
        ----------
        network : rdlab.chemistry.network.ReactionNetwork
            The reaction network.
        grid : rdlab.system.Grid or None
            The periodic grid; ``None`` for a well-mixed reactor.
        dtype : torch.dtype, numpy.dtype or str
            float32 or float64.
        device : str or torch.device
            Where the tensors live.

        Returns
        -------
        NetworkTensors
            The structure on ``device`` in ``dtype``.
        """
        dtype = torch_dtype(dtype)
        R = np.asarray(network.reactant_matrix)
        n_s, n_r = R.shape
        max_order = int(R.sum(axis=0).max(initial=0))
        factors = np.full((max_order, n_r), n_s, dtype=np.int64)
        for r in range(n_r):
            species = np.repeat(np.arange(n_s), R[:, r])  # index order, like the reference
            factors[: species.size, r] = species
        return cls(
            factors=torch.as_tensor(factors, device=device),
            stoichiometry=torch.as_tensor(network.stoichiometry, dtype=dtype, device=device),
            n_species=n_s,
            stencil=None if grid is None else _stencil_name(grid.stencil),
            dx=1.0 if grid is None else float(grid.dx),
        )

    @classmethod
    def from_system(cls, system: System, dtype=torch.float64,
                    device: str | torch.device = "cpu") -> NetworkTensors:
        """Build the structure of a system's network on its grid.

        Parameters
        ----------
        system : rdlab.system.System
            The system (its network and grid are used).
        dtype : torch.dtype, numpy.dtype or str
            float32 or float64.
        device : str or torch.device
            Where the tensors live.

        Returns
        -------
        NetworkTensors
            As :meth:`from_network`.
        """
        return cls.from_network(system.network, system.grid, dtype, device)

    @property
    def n_reactions(self) -> int:
        """Number of reactions."""
        return self.stoichiometry.shape[1]

    def to(self, dtype=None, device=None) -> NetworkTensors:
        """Return a copy in another dtype and/or on another device.

        Parameters
        ----------
        dtype : torch.dtype, numpy.dtype, str or None
            float32 or float64; ``None`` keeps the current one.
        device : str, torch.device or None
            The new device; ``None`` keeps the current one.

        Returns
        -------
        NetworkTensors
            The copy.
        """
        dtype = self.stoichiometry.dtype if dtype is None else torch_dtype(dtype)
        device = self.stoichiometry.device if device is None else device
        return NetworkTensors(self.factors.to(device=device),
                              self.stoichiometry.to(dtype=dtype, device=device),
                              self.n_species, self.stencil, self.dx)


@dataclass(eq=False)
class TorchParameters:
    """Per-sample parameters as tensors.

    Attributes
    ----------
    rates : torch.Tensor
        Rate constants ``(B, R)``.
    diffusion : torch.Tensor
        Diffusion coefficients ``(B, S)``.
    flow : torch.Tensor
        Flow rates ``(B,)``.
    feed : torch.Tensor
        Feed concentrations ``(B, S)``.
    """

    rates: torch.Tensor
    diffusion: torch.Tensor
    flow: torch.Tensor
    feed: torch.Tensor

    @classmethod
    def from_system(cls, system: System, dtype=torch.float64,
                    device: str | torch.device = "cpu",
                    requires_grad: bool | Iterable[str] = False) -> TorchParameters:
        """Copy a system's parameters into tensors.

        Parameters
        ----------
        system : rdlab.system.System
            The system whose ``rates``, ``diffusion``, ``flow`` and ``feed`` are copied.
        dtype : torch.dtype, numpy.dtype or str
            float32 or float64.
        device : str or torch.device
            Where the tensors live.
        requires_grad : bool or iterable of str
            ``True`` to track all four, or the names of those to track (``"rates"``,
            ``"diffusion"``, ``"flow"``, ``"feed"``).

        Returns
        -------
        TorchParameters
            The copies.

        Raises
        ------
        ParameterError
            For an unknown parameter name in ``requires_grad``.
        """
        dtype = torch_dtype(dtype)
        if isinstance(requires_grad, bool):
            tracked = set(_PARAMETER_NAMES) if requires_grad else set()
        else:
            tracked = set(requires_grad)
            unknown = tracked - set(_PARAMETER_NAMES)
            if unknown:
                raise ParameterError(f"unknown parameters {sorted(unknown)}; choose from "
                                     f"{list(_PARAMETER_NAMES)}")
        values = {}
        for name in _PARAMETER_NAMES:
            t = torch.tensor(np.asarray(getattr(system, name)), dtype=dtype, device=device)
            values[name] = t.requires_grad_(name in tracked)
        return cls(**values)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Return ``(rates, diffusion, flow, feed)``."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @property
    def batch_size(self) -> int:
        """Number of samples ``B``."""
        return self.rates.shape[0]

    def detach(self) -> TorchParameters:
        """Return the same values detached from the autograd graph."""
        return TorchParameters(*(t.detach() for t in self.tensors()))

    def to(self, dtype=None, device=None) -> TorchParameters:
        """Return a copy in another dtype and/or on another device.

        Parameters
        ----------
        dtype : torch.dtype, numpy.dtype, str or None
            float32 or float64; ``None`` keeps the current one.
        device : str, torch.device or None
            The new device; ``None`` keeps the current one.

        Returns
        -------
        TorchParameters
            The copy.
        """
        dtype = None if dtype is None else torch_dtype(dtype)
        return TorchParameters(*(t.to(dtype=dtype, device=device) for t in self.tensors()))


# ---------------------------------------------------------------------------- diffusion
def _stencil_name(stencil: str) -> str:
    """Return ``stencil`` if it names one of :data:`rdlab.system.STENCILS`, else refuse it."""
    if not isinstance(stencil, str) or stencil not in STENCILS:
        raise ParameterError(f"unknown stencil {stencil!r}; choose one of {sorted(STENCILS)}")
    return stencil


def stencil_weights(stencil: str) -> np.ndarray:
    """Return the 3×3 weights of a stencil (unit spacing).

    Parameters
    ----------
    stencil : str
        A name of :data:`rdlab.system.STENCILS`.

    Returns
    -------
    numpy.ndarray
        The weights ``(3, 3)``, a copy.

    Raises
    ------
    ParameterError
        For an unknown name, listing the known ones.
    """
    return np.array(STENCILS[_stencil_name(stencil)], dtype=float)


def _is_separable_9point(w: np.ndarray) -> bool:
    """Whether ``w`` is ``¼[1 2 1]ᵀ[1 2 1] − 4δ`` exactly."""
    sep = 0.25 * np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0])
    sep[1, 1] -= 4.0
    return bool(np.array_equal(w, sep))


def _separable_9point(X: torch.Tensor, scale: float) -> torch.Tensor:
    """Periodic ``[1 2 1]`` along y, then along x, minus 16·X, times ``scale``."""
    P = torch.cat([X[..., -1:, :], X, X[..., :1, :]], dim=-2)
    a = torch.add(P[..., :-2, :], P[..., 2:, :]).add_(X, alpha=2.0)
    Q = torch.cat([a[..., -1:], a, a[..., :1]], dim=-1)
    b = torch.add(Q[..., :-2], Q[..., 2:]).add_(a, alpha=2.0)
    return b.add_(X, alpha=-16.0).mul_(scale)


def _shifted_sum(X: torch.Tensor, w: np.ndarray) -> torch.Tensor:
    """``Σ w[a, b]·X`` shifted by ``(a − 1, b − 1)``, periodic."""
    P = F.pad(X, (1, 1, 1, 1), mode="circular")
    ny, nx = X.shape[-2:]
    out = X * float(w[1, 1])
    for a in range(3):
        for b in range(3):
            if (a, b) != (1, 1) and w[a, b] != 0.0:
                out = out.add_(P[..., a:a + ny, b:b + nx], alpha=float(w[a, b]))
    return out


def periodic_laplacian(X: torch.Tensor, stencil: str = "9-point", dx: float = 1.0
                       ) -> torch.Tensor:
    """Return the periodic discrete Laplacian over the last two axes.

    The isotropic 9-point stencil ``¼[1 2 1]ᵀ[1 2 1] − 4δ`` is applied separably (fewer
    operations than a 3×3 convolution), any other as a sum of its shifted neighbours.

    Parameters
    ----------
    X : torch.Tensor
        ``(B, C, y, x)``, four dimensions for the circular padding.
    stencil : str
        A name of :data:`rdlab.system.STENCILS`.
    dx : float
        Grid spacing; the stencil sum is divided by ``dx²``.

    Returns
    -------
    torch.Tensor
        ``∇²X``, the shape of ``X``.

    Raises
    ------
    ParameterError
        For an unknown stencil.
    """
    w = stencil_weights(stencil)
    if _is_separable_9point(w):
        return _separable_9point(X, 0.25 if dx == 1.0 else 0.25 / dx**2)
    out = _shifted_sum(X, w)
    return out if dx == 1.0 else out.div_(dx**2)


def laplacian(net: NetworkTensors, X: torch.Tensor) -> torch.Tensor:
    """Return the periodic discrete Laplacian of a state with the grid's stencil.

    Parameters
    ----------
    net : NetworkTensors
        The structure (its ``stencil`` and ``dx``).
    X : torch.Tensor
        The state ``(B, S, y, x)``.

    Returns
    -------
    torch.Tensor
        ``∇²X``, ``(B, S, y, x)``.

    Raises
    ------
    ParameterError
        When the network has no grid (well mixed).
    """
    if net.stencil is None:
        raise ParameterError("this network has no grid (well mixed): no Laplacian to take")
    return periodic_laplacian(X, net.stencil, net.dx)


# ---------------------------------------------------------------------------- the model
def reaction_rates(net: NetworkTensors, rates: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Return the mass-action rates ``v_r = k_r ∏_i X_i^{R_ir}``.

    Exact products (no logarithms), so the gradients are finite at ``X = 0``.

    Parameters
    ----------
    net : NetworkTensors
        The structure (its reactant factors).
    rates : torch.Tensor
        Rate constants ``(B, R)``.
    X : torch.Tensor
        Concentrations ``(B, S, *spatial)``.

    Returns
    -------
    torch.Tensor
        ``v``, ``(B, R, *spatial)``.
    """
    spatial = X.shape[2:]
    v = rates.reshape(rates.shape + (1,) * len(spatial))
    if net.factors.shape[0] == 0:  # only zero-order reactions
        return v.expand(X.shape[0], rates.shape[1], *spatial)
    ones = torch.ones((X.shape[0], 1, *spatial), dtype=X.dtype, device=X.device)
    padded = torch.cat([X, ones], dim=1)
    for j in range(net.factors.shape[0]):
        v = v * padded.index_select(1, net.factors[j])
    return v


def _expand(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append singleton axes to ``t`` until it has ``ndim`` dimensions."""
    return t.reshape(t.shape + (1,) * (ndim - t.ndim))


def rhs(net: NetworkTensors, params: TorchParameters, X: torch.Tensor,
        flow_field: torch.Tensor | None = None) -> torch.Tensor:
    """Return the right-hand side ``dX/dt = S·v(X) + D∘∇²X + f·(x_feed − X)``.

    Parameters
    ----------
    net : NetworkTensors
        The structure.
    params : TorchParameters
        The per-sample parameters.
    X : torch.Tensor
        The state ``(B, S, y, x)`` on the grid or ``(B, S)`` well mixed.
    flow_field : torch.Tensor or None
        Flow rate per cell replacing ``f`` (noisy drive), broadcastable to ``X``, e.g.
        ``(B, 1, y, x)``.

    Returns
    -------
    torch.Tensor
        ``dX/dt``, the shape of ``X``.

    Raises
    ------
    ParameterError
        When ``X`` has the wrong shape.
    """
    if X.ndim not in (2, 4) or X.shape[1] != net.n_species:
        raise ParameterError(f"state has shape {tuple(X.shape)}; expected (batch, "
                             f"{net.n_species}, y, x) or (batch, {net.n_species})")
    v = reaction_rates(net, params.rates, X)
    out = torch.einsum("sr,br...->bs...", net.stoichiometry, v)
    if X.ndim == 4:
        out = out + _expand(params.diffusion, 4) * laplacian(net, X)
    f = _expand(params.flow, X.ndim) if flow_field is None else flow_field
    return out + f * (_expand(params.feed, X.ndim) - X)


def euler_step(net: NetworkTensors, params: TorchParameters, X: torch.Tensor, dt: float,
               flow_field: torch.Tensor | None = None,
               c_max: float | None = None) -> torch.Tensor:
    """Return one forward-Euler step ``X + dt·rhs(X)``, optionally clipped.

    Parameters
    ----------
    net : NetworkTensors
        The structure.
    params : TorchParameters
        The per-sample parameters.
    X : torch.Tensor
        The state ``(B, S, y, x)`` or ``(B, S)``.
    dt : float
        Time step (s).
    flow_field : torch.Tensor or None
        Flow per cell replacing ``f`` (see :func:`rhs`).
    c_max : float or None
        Clip the new state to ``[0, c_max]`` (the public Dense-RDN code's safeguard,
        :data:`C_MAX`); ``None`` (default) does not clip.

    Returns
    -------
    torch.Tensor
        The state after the step.
    """
    Y = X + dt * rhs(net, params, X, flow_field)
    return Y if c_max is None else Y.clamp(0.0, c_max)


def model_step(net: NetworkTensors, params: TorchParameters, dt: float,
               c_max: float | None = None) -> StepFunction:
    """Return the definition's step as a :data:`StepFunction`.

    Parameters
    ----------
    net : NetworkTensors
        The structure.
    params : TorchParameters
        The per-sample parameters.
    dt : float
        Time step (s).
    c_max : float or None
        The clip of :func:`euler_step`.

    Returns
    -------
    StepFunction
        ``(X, flow_field or None) → euler_step(net, params, X, dt, flow_field, c_max)``.
    """
    return functools.partial(_model_step, net, params, dt, c_max)


def _model_step(net, params, dt, c_max, X, flow_field):
    """Call :func:`euler_step` (the target of :func:`model_step`)."""
    return euler_step(net, params, X, dt, flow_field, c_max)


def euler_iterates(step: StepFunction, X: torch.Tensor, n_steps: int,
                   flow_fields: Callable[[int], torch.Tensor] | None = None
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Take ``n_steps`` Euler steps from ``X``, yielding each new state.

    The one stepping loop of the torch roll-outs (the engine's, the design's fused one and
    the design checks'): the caller keeps what it needs.

    Parameters
    ----------
    step : StepFunction
        ``(X, flow_field or None) → X_next``, e.g. :func:`model_step`.
    X : torch.Tensor
        The initial state.
    n_steps : int
        Number of steps.
    flow_fields : callable or None
        ``t → flow field`` of step ``t`` (from ``X_t`` to ``X_{t+1}``), called once per
        step in order; ``None`` for the constant flow.

    Yields
    ------
    tuple of torch.Tensor
        ``(X_{t+1}, flow field of step t or None)`` for ``t = 0 … n_steps − 1``.
    """
    for t in range(n_steps):
        ff = None if flow_fields is None else flow_fields(t)
        X = step(X, ff)
        yield X, ff


# ---------------------------------------------------------------------------- flow noise
def _circulant_gaussian(sigma: float, n: int) -> np.ndarray:
    """Return the ``n × n`` periodic Gaussian smoothing matrix of scipy's wrap mode.

    As ``gaussian_filter(mode='wrap', truncate=⌈3σ⌉/σ)`` along one axis (any radius, also
    one beyond the grid, wraps around as scipy does).
    """
    truncate = np.ceil(3 * sigma) / sigma
    radius = int(truncate * sigma + 0.5)  # scipy's rounding
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma * sigma) * offsets**2)
    weights = weights / weights.sum()
    C = np.zeros((n, n))
    rows = np.arange(n)
    for k, w in zip(offsets, weights):
        np.add.at(C, (rows, (rows + k) % n), w)
    return C


@functools.lru_cache(maxsize=64)
def _smoothing_matrix(sigma: float, n: int, dtype: torch.dtype,
                      device: torch.device) -> torch.Tensor:
    """Return :func:`_circulant_gaussian` as a (cached) tensor."""
    return torch.tensor(_circulant_gaussian(sigma, n), dtype=dtype, device=device)


def smooth_periodic(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Return a field smoothed by a periodic Gaussian over its last two axes.

    The same kernel as :func:`rdlab.smoothing.smooth_periodic` (window ⌈3σ⌉ cells each
    side).

    Parameters
    ----------
    field : torch.Tensor
        ``(..., y, x)``.
    sigma : float
        Width in cells; ``≤ 0`` returns ``field`` unchanged.

    Returns
    -------
    torch.Tensor
        The smoothed field, the shape of ``field``.
    """
    if sigma <= 0:
        return field
    ny, nx = field.shape[-2:]
    cy = _smoothing_matrix(float(sigma), ny, field.dtype, field.device)
    cx = _smoothing_matrix(float(sigma), nx, field.dtype, field.device)
    return torch.matmul(torch.matmul(cy, field), cx.T)


def raw_noise(generator: torch.Generator | None, noise: FlowNoise, shape: Sequence[int],
              dtype=torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Draw the raw U(−a, a) flow noise of one step.

    Parameters
    ----------
    generator : torch.Generator or None
        Source of the draws (``None``: torch's default generator).
    noise : rdlab.system.FlowNoise
        Amplitude ``a`` and whether each species gets its own field.
    shape : sequence of int
        The state's ``(batch, species, y, x)``.
    dtype : torch.dtype, numpy.dtype or str
        float32 or float64.
    device : str or torch.device
        Where to draw.

    Returns
    -------
    torch.Tensor
        ``(batch, species or 1, y, x)``.
    """
    b, s, ny, nx = shape
    size = (b, s if noise.per_species else 1, ny, nx)
    u = torch.rand(size, generator=generator, dtype=torch_dtype(dtype), device=device)
    return (2.0 * u - 1.0) * noise.amplitude


def flow_field(flow: torch.Tensor, noise: FlowNoise, raw: torch.Tensor) -> torch.Tensor:
    """Return the noisy flow ``smooth(max(f + ε, 0))``.

    Differentiable with respect to ``f``.

    Parameters
    ----------
    flow : torch.Tensor
        Flow rates ``f``, ``(batch,)``.
    noise : rdlab.system.FlowNoise
        Its smoothing width ``sigma``.
    raw : torch.Tensor
        ``ε``, from :func:`raw_noise`, ``(batch, species or 1, y, x)``.

    Returns
    -------
    torch.Tensor
        The flow per cell, the shape of ``raw``.
    """
    return smooth_periodic(torch.clamp(_expand(flow, 4) + raw, min=0.0), noise.sigma)


def noisy_flow_field(flow: torch.Tensor, noise: FlowNoise, generator: torch.Generator | None,
                     shape: Sequence[int], dtype=torch.float64,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """Draw one step's noisy flow: :func:`flow_field` of a fresh :func:`raw_noise`.

    Parameters
    ----------
    flow : torch.Tensor
        Flow rates ``(batch,)``.
    noise : rdlab.system.FlowNoise
        The noise.
    generator : torch.Generator or None
        Source of the draws.
    shape : sequence of int
        The state's ``(batch, species, y, x)``.
    dtype : torch.dtype, numpy.dtype or str
        float32 or float64.
    device : str or torch.device
        Where to draw.

    Returns
    -------
    torch.Tensor
        ``(batch, species or 1, y, x)``, differentiable with respect to ``flow``.
    """
    return flow_field(flow, noise, raw_noise(generator, noise, shape, dtype, device))


# ---------------------------------------------------------------------------- roll-outs
def check_snapshot_steps(snapshot_steps, n_steps: int) -> list[int]:
    """Return the distinct snapshot steps in order, after checking them.

    Parameters
    ----------
    snapshot_steps : sequence of int or numpy.ndarray
        Steps in ``0 … n_steps`` (0 is the initial state).
    n_steps : int
        Number of steps of the run, a whole number ≥ 0.

    Returns
    -------
    list of int
        The sorted distinct steps.

    Raises
    ------
    ParameterError
        For a bad ``n_steps``, no steps, steps that are not whole numbers or lie outside
        ``0 … n_steps``.
    """
    if not isinstance(n_steps, (int, np.integer)) or isinstance(n_steps, bool) or n_steps < 0:
        raise ParameterError(f"number of steps must be a whole number ≥ 0, got {n_steps!r}")
    steps = np.asarray(list(snapshot_steps) if not isinstance(snapshot_steps, np.ndarray)
                       else snapshot_steps)
    if steps.size == 0:
        raise ParameterError("no snapshot steps given")
    if steps.ndim != 1 or not (np.issubdtype(steps.dtype, np.integer)):
        raise ParameterError(f"snapshot steps must be whole numbers, got {snapshot_steps!r}")
    bad = steps[(steps < 0) | (steps > n_steps)]
    if bad.size:
        raise ParameterError(f"snapshot step {int(bad[0])} is outside 0..{n_steps}")
    return [int(s) for s in np.unique(steps)]


def _check_rollout_options(state, noise, raw_noise_fn, checkpoint_every) -> None:
    """Refuse raw noise without a FlowNoise, noise well mixed, a bad checkpoint interval."""
    if raw_noise_fn is not None and noise is None:
        raise ParameterError("raw noise given but no FlowNoise to apply it with")
    if noise is not None and state.ndim != 4:
        raise ParameterError("flow noise needs a grid: the state is well mixed")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, (int, np.integer))
                                         or checkpoint_every < 1):
        raise ParameterError(f"checkpoint_every must be a whole number ≥ 1, got "
                             f"{checkpoint_every!r}")


def _segment_edges(wanted: list[int], n_steps: int, checkpoint_every: int | None) -> list[int]:
    """Return the segment boundaries of a roll-out: snapshots, chunk edges and the end."""
    edges = set(wanted) | {0, n_steps}
    if checkpoint_every is not None:
        edges |= set(range(0, n_steps, int(checkpoint_every)))
    return sorted(edges)


def _raw_draws(state: torch.Tensor, noise: FlowNoise | None,
               generator: torch.Generator | None,
               raw_noise_fn: Callable[[int], torch.Tensor] | None
               ) -> Callable[[int], torch.Tensor]:
    """Return ``step → raw noise``: ``raw_noise_fn``'s (as tensors) or fresh draws."""
    if raw_noise_fn is not None:
        return lambda step: torch.as_tensor(raw_noise_fn(step), dtype=state.dtype,
                                            device=state.device)
    return lambda step: raw_noise(generator, noise, state.shape, state.dtype, state.device)


def _advance(step: StepFunction, params: TorchParameters, noise: FlowNoise | None, n: int,
             X: torch.Tensor, *raws: torch.Tensor) -> torch.Tensor:
    """Return the state ``n`` steps after ``X`` (step ``i``'s flow noise from ``raws[i]``)."""
    fields = None if noise is None else (lambda i: flow_field(params.flow, noise, raws[i]))
    for Y, _ in euler_iterates(step, X, n, fields):
        X = Y
    return X


def rollout(
    net: NetworkTensors,
    params: TorchParameters,
    state: torch.Tensor,
    dt: float,
    n_steps: int,
    snapshot_steps: Sequence[int] | None = None,
    *,
    noise: FlowNoise | None = None,
    generator: torch.Generator | None = None,
    raw_noise_fn: Callable[[int], torch.Tensor] | None = None,
    checkpoint_every: int | None = None,
    c_max: float | None = None,
) -> torch.Tensor:
    """Integrate by forward Euler and return the states at the snapshot steps.

    Differentiable with respect to ``state`` and ``params``.

    Parameters
    ----------
    net : NetworkTensors
        The structure.
    params : TorchParameters
        The per-sample parameters.
    state : torch.Tensor
        Initial state ``(batch, species, *spatial)``.
    dt : float
        Time step (s).
    n_steps : int
        Number of steps, a whole number ≥ 0.
    snapshot_steps : sequence of int or None
        Steps whose states are returned (0 = the initial state); default only ``n_steps``.
    noise : rdlab.system.FlowNoise or None
        Noisy flow drive; each step's raw U(−a, a) field comes from ``raw_noise_fn(step)``
        when given (e.g. to replay the NumPy engine's draws), else from ``generator``.
    generator : torch.Generator or None
        Source of the noise draws.
    raw_noise_fn : callable or None
        ``step → raw noise`` (see ``noise``).
    checkpoint_every : int or None
        Recompute the forward pass in chunks of at most this many steps during the backward
        pass (``torch.utils.checkpoint``) instead of storing every intermediate state:
        memory ∝ number of chunks + chunk length rather than ``n_steps``. The noise is drawn
        outside the checkpointed chunks, so recomputation replays the same draws.
    c_max : float or None
        Clip each new state to ``[0, c_max]`` (see :func:`euler_step`); ``None`` does not.

    Returns
    -------
    torch.Tensor
        ``(time, batch, species, *spatial)``, one entry per distinct snapshot step.

    Raises
    ------
    ParameterError
        For bad steps, raw noise without ``noise``, noise on a well-mixed state or a bad
        ``checkpoint_every``.
    """
    wanted = check_snapshot_steps([n_steps] if snapshot_steps is None else snapshot_steps,
                                  n_steps)
    _check_rollout_options(state, noise, raw_noise_fn, checkpoint_every)
    edges = _segment_edges(wanted, n_steps, checkpoint_every)

    draw = _raw_draws(state, noise, generator, raw_noise_fn)
    step = model_step(net, params, dt, c_max)
    use_checkpoint = checkpoint_every is not None and torch.is_grad_enabled()
    snaps = [state] if wanted[0] == 0 else []
    x = state
    for start, stop in zip(edges[:-1], edges[1:]):
        raws = [draw(s) for s in range(start, stop)] if noise is not None else []
        segment = functools.partial(_advance, step, params, noise, stop - start)
        x = (checkpoint(segment, x, *raws, use_reentrant=False) if use_checkpoint
             else segment(x, *raws))
        if stop in wanted:
            snaps.append(x)
    return torch.stack(snaps)
