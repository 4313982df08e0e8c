"""Differentiable PyTorch engine: the model's right-hand side and forward-Euler roll-outs.

The same model as :mod:`rdlab.simulate.reference` (the definition)::

    dX/dt = S·v(X) + D∘∇²X + f·(x_feed − X)        v_r = k_r ∏_i X_i^{R_ir}

written with torch operations so that gradients can be taken with respect to the rate
constants, diffusion coefficients, flow, feed and the initial state (inverse design,
reaction discovery). Works on CPU and CUDA, in float32 or float64.

Two containers hold what the functions need:

* :class:`NetworkTensors` — the fixed structure: which species multiply into each reaction
  rate, the stoichiometry ``S`` and the grid's Laplacian stencil (``None`` well mixed).
* :class:`TorchParameters` — the per-sample parameters ``rates (B, R)``, ``diffusion (B, S)``,
  ``flow (B,)`` and ``feed (B, S)``, the tensors one differentiates with respect to.

Mass action is evaluated as a product of gathered factors: reaction ``r`` of order ``m``
multiplies ``k_r`` by its ``m`` reactant concentrations (a species with coefficient 2 appears
twice), in the same order as the reference, so the rates are bit-for-bit those of
:func:`rdlab.chemistry.kinetics.mass_action_rates` and their gradients are exact polynomials,
finite everywhere including ``X = 0``.

:func:`run` is the plain NumPy-in/NumPy-out entry point used by :func:`rdlab.simulate.simulate`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from rdlab.errors import ParameterError
from rdlab.simulate import guard
from rdlab.simulate.driver import PythonStepper, drive
from rdlab.simulate.trackers import RunawayGuard, StepCounter, Storage
from rdlab.system import STENCILS, FlowNoise, System

__all__ = [
    "NetworkTensors",
    "TorchParameters",
    "TorchStepper",
    "euler_step",
    "flow_field",
    "laplacian",
    "raw_noise",
    "reaction_rates",
    "rhs",
    "rollout",
    "run",
    "smooth_periodic",
    "torch_dtype",
]

_PARAMETER_NAMES = ("rates", "diffusion", "flow", "feed")


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype for ``float32``/``float64`` given as a NumPy dtype, string or torch
    dtype.
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


# ---------------------------------------------------------------------------- containers
@dataclass(frozen=True, eq=False)
class NetworkTensors:
    """The fixed (non-differentiable) structure of the model on one device and dtype.

    Attributes
    ----------
        factors: ``(max_order, n_reactions)`` long tensor; ``factors[j, r]`` is the species
            index of the ``j``-th reactant factor of reaction ``r`` (species in index order, a
            coefficient ``c`` repeated ``c`` times), or ``n_species`` (a channel of ones)
            where the reaction has fewer than ``j + 1`` factors.
        stoichiometry: ``S``, shape ``(n_species, n_reactions)``.
        stencil: depthwise 3×3 Laplacian kernel ``(n_species, 1, 3, 3)`` for unit spacing,
            or ``None`` for a well-mixed reactor.
        dx: grid spacing (the Laplacian is divided by ``dx²``).
    """

    factors: torch.Tensor
    stoichiometry: torch.Tensor
    n_species: int
    stencil: torch.Tensor | None = None
    dx: float = 1.0

    @classmethod
    def from_network(cls, network, grid=None, dtype=torch.float64,
                     device: str | torch.device = "cpu") -> NetworkTensors:
        """Structure of ``network`` (a :class:`~rdlab.chemistry.network.ReactionNetwork`) on
        ``grid`` (a :class:`~rdlab.system.Grid`, or ``None`` well mixed).
        """
        dtype = torch_dtype(dtype)
        R = np.asarray(network.reactant_matrix)
        n_s, n_r = R.shape
        orders = R.sum(axis=0)
        max_order = int(orders.max(initial=0))
        factors = np.full((max_order, n_r), n_s, dtype=np.int64)
        for r in range(n_r):
            species = np.repeat(np.arange(n_s), R[:, r])  # index order, like the reference
            factors[: species.size, r] = species
        stencil = None
        dx = 1.0
        if grid is not None:
            w = torch.as_tensor(STENCILS[grid.stencil], dtype=dtype, device=device)
            stencil = w.expand(n_s, 1, 3, 3).contiguous()
            dx = float(grid.dx)
        return cls(
            factors=torch.as_tensor(factors, device=device),
            stoichiometry=torch.as_tensor(network.stoichiometry, dtype=dtype, device=device),
            n_species=n_s,
            stencil=stencil,
            dx=dx,
        )

    @classmethod
    def from_system(cls, system: System, dtype=torch.float64,
                    device: str | torch.device = "cpu") -> NetworkTensors:
        return cls.from_network(system.network, system.grid, dtype, device)

    @property
    def n_reactions(self) -> int:
        return self.stoichiometry.shape[1]

    def to(self, dtype=None, device=None) -> NetworkTensors:
        dtype = self.stoichiometry.dtype if dtype is None else torch_dtype(dtype)
        device = self.stoichiometry.device if device is None else device
        return NetworkTensors(
            self.factors.to(device=device),
            self.stoichiometry.to(dtype=dtype, device=device),
            self.n_species,
            None if self.stencil is None else self.stencil.to(dtype=dtype, device=device),
            self.dx,
        )


@dataclass(eq=False)
class TorchParameters:
    """Per-sample parameters as tensors: ``rates (B, R)``, ``diffusion (B, S)``,
    ``flow (B,)``, ``feed (B, S)``.
    """

    rates: torch.Tensor
    diffusion: torch.Tensor
    flow: torch.Tensor
    feed: torch.Tensor

    @classmethod
    def from_system(cls, system: System, dtype=torch.float64,
                    device: str | torch.device = "cpu",
                    requires_grad: bool | Iterable[str] = False) -> TorchParameters:
        """Copies of ``system``'s parameters. ``requires_grad``: ``True`` for all four, or the
        names of those to track (``"rates"``, ``"diffusion"``, ``"flow"``, ``"feed"``).
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
        """``(rates, diffusion, flow, feed)``."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @property
    def batch_size(self) -> int:
        return self.rates.shape[0]

    def detach(self) -> TorchParameters:
        return TorchParameters(*(t.detach() for t in self.tensors()))

    def to(self, dtype=None, device=None) -> TorchParameters:
        dtype = None if dtype is None else torch_dtype(dtype)
        return TorchParameters(*(t.to(dtype=dtype, device=device) for t in self.tensors()))


# ---------------------------------------------------------------------------- the model
def reaction_rates(net: NetworkTensors, rates: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``v_r = k_r ∏_i X_i^{R_ir}``: rates ``(B, R)``, X ``(B, S, *spatial)`` →
    ``(B, R, *spatial)``. Exact products (no logarithms), so finite gradients at ``X = 0``.
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


def laplacian(net: NetworkTensors, X: torch.Tensor) -> torch.Tensor:
    """Periodic discrete Laplacian of ``X (B, S, y, x)`` with the grid's stencil."""
    if net.stencil is None:
        raise ParameterError("this network has no grid (well mixed): no Laplacian to take")
    padded = F.pad(X, (1, 1, 1, 1), mode="circular")
    return F.conv2d(padded, net.stencil, groups=net.n_species) / net.dx**2


def _expand(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append singleton axes to ``t`` until it has ``ndim`` dimensions."""
    return t.reshape(t.shape + (1,) * (ndim - t.ndim))


def rhs(net: NetworkTensors, params: TorchParameters, X: torch.Tensor,
        flow_field: torch.Tensor | None = None) -> torch.Tensor:
    """``dX/dt = S·v(X) + D∘∇²X + f·(x_feed − X)`` for ``X (B, S, y, x)`` on the grid or
    ``X (B, S)`` well mixed.

    flow_field: optional flow rate per cell replacing ``f`` (noisy drive), broadcastable to
    ``X``, e.g. ``(B, 1, y, x)``.
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
               flow_field: torch.Tensor | None = None) -> torch.Tensor:
    """One forward-Euler step ``X + dt·rhs(X)``."""
    return X + dt * rhs(net, params, X, flow_field)


# ---------------------------------------------------------------------------- flow noise
def _circulant_gaussian(sigma: float, n: int) -> np.ndarray:
    """The ``n × n`` periodic Gaussian smoothing matrix of scipy's
    ``gaussian_filter(mode='wrap', truncate=⌈3σ⌉/σ)`` along one axis (any radius, also one
    beyond the grid, wraps around as scipy does).
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
    return torch.tensor(_circulant_gaussian(sigma, n), dtype=dtype, device=device)


def smooth_periodic(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Periodic Gaussian smoothing over the last two axes, the same kernel as
    :func:`rdlab.smoothing.smooth_periodic` (window ⌈3σ⌉ cells each side).
    """
    if sigma <= 0:
        return field
    ny, nx = field.shape[-2:]
    cy = _smoothing_matrix(float(sigma), ny, field.dtype, field.device)
    cx = _smoothing_matrix(float(sigma), nx, field.dtype, field.device)
    return torch.matmul(torch.matmul(cy, field), cx.T)


def raw_noise(generator: torch.Generator | None, noise: FlowNoise, shape: Sequence[int],
              dtype=torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """U(−a, a) draws of shape ``(batch, species or 1, y, x)`` for a state of ``shape``."""
    b, s, ny, nx = shape
    size = (b, s if noise.per_species else 1, ny, nx)
    u = torch.rand(size, generator=generator, dtype=torch_dtype(dtype), device=device)
    return (2.0 * u - 1.0) * noise.amplitude


def flow_field(flow: torch.Tensor, noise: FlowNoise, raw: torch.Tensor) -> torch.Tensor:
    """``smooth(max(f + ε, 0))`` with ``f`` of shape ``(batch,)`` and ``ε = raw``
    (differentiable with respect to ``f``).
    """
    return smooth_periodic(torch.clamp(_expand(flow, 4) + raw, min=0.0), noise.sigma)


# ---------------------------------------------------------------------------- roll-outs
def _snapshot_list(snapshot_steps, n_steps: int) -> list[int]:
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
) -> torch.Tensor:
    """Forward Euler for ``n_steps`` from ``state``; returns the states after each step in
    ``snapshot_steps`` (default: only ``n_steps``; 0 = the initial state), stacked as
    ``(time, batch, species, *spatial)``. Differentiable with respect to ``state`` and
    ``params``.

    noise: noisy flow drive; each step's raw U(−a, a) field comes from ``raw_noise_fn(step)``
        when given (e.g. to replay the NumPy engine's draws), else from ``generator``.
    checkpoint_every: recompute the forward pass in chunks of at most this many steps during
        the backward pass (``torch.utils.checkpoint``) instead of storing every intermediate
        state: memory ∝ number of chunks + chunk length rather than ``n_steps``. The noise is
        drawn outside the checkpointed chunks, so recomputation replays the same draws.
    """
    wanted = _snapshot_list([n_steps] if snapshot_steps is None else snapshot_steps, n_steps)
    if raw_noise_fn is not None and noise is None:
        raise ParameterError("raw noise given but no FlowNoise to apply it with")
    if noise is not None and state.ndim != 4:
        raise ParameterError("flow noise needs a grid: the state is well mixed")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, (int, np.integer))
                                         or checkpoint_every < 1):
        raise ParameterError(f"checkpoint_every must be a whole number ≥ 1, got "
                             f"{checkpoint_every!r}")
    # segment boundaries: snapshots, chunk edges and the end
    edges = set(wanted) | {0, n_steps}
    if checkpoint_every is not None:
        edges |= set(range(0, n_steps, int(checkpoint_every)))
    edges = sorted(edges)

    def draw(step: int) -> torch.Tensor:
        if raw_noise_fn is not None:
            return torch.as_tensor(raw_noise_fn(step), dtype=state.dtype, device=state.device)
        return raw_noise(generator, noise, state.shape, state.dtype, state.device)

    def advance(n: int, x: torch.Tensor, *raws: torch.Tensor) -> torch.Tensor:
        for i in range(n):
            ff = flow_field(params.flow, noise, raws[i]) if noise is not None else None
            x = euler_step(net, params, x, dt, ff)
        return x

    use_checkpoint = checkpoint_every is not None and torch.is_grad_enabled()
    snaps: list[torch.Tensor] = []
    x = state
    if wanted[0] == 0:
        snaps.append(x)
    for start, stop in zip(edges[:-1], edges[1:]):
        raws = [draw(s) for s in range(start, stop)] if noise is not None else []
        segment = functools.partial(advance, stop - start)
        if use_checkpoint:
            x = checkpoint(segment, x, *raws, use_reentrant=False)
        else:
            x = segment(x, *raws)
        if stop in wanted:
            snaps.append(x)
    return torch.stack(snaps)


# ---------------------------------------------------------------------------- NumPy entry


def run(
    system: System,
    state: np.ndarray,
    dt: float,
    n_steps: int,
    snapshot_steps: Sequence[int],
    *,
    dtype=np.float64,
    check_every: int = 64,
    progress: Callable[[int], None] | None = None,
    device: str = "cpu",
    seed: int | None = None,
    runaway_limit: float = guard.RUNAWAY_LIMIT,
) -> np.ndarray:
    """Forward Euler on ``device`` for ``n_steps`` of ``dt``; returns the states at
    ``snapshot_steps`` as a NumPy array ``(time, batch, species, *spatial)`` of ``dtype``.

    Every ``check_every`` steps (and at each snapshot and the end) the state is checked for
    NaN/Inf or runaway values (:mod:`rdlab.simulate.guard`, naming the sample and step);
    ``progress(n)`` is then called with the steps done since its last call. A noisy flow
    (``system.noise``) is drawn from a ``torch.Generator`` seeded with ``seed`` (its stream
    differs from the NumPy engine's).
    """
    x0 = system.check_state(state)
    wanted = _snapshot_list(snapshot_steps, n_steps)
    if (not isinstance(check_every, (int, np.integer)) or isinstance(check_every, bool)
            or check_every < 1):
        raise ParameterError(f"check_every must be a whole number ≥ 1, got {check_every!r}")
    stepper = TorchStepper(system, x0, dt, RunawayGuard(runaway_limit, check_every), dtype,
                           device, seed)
    storage = Storage(wanted, stepper.np_dtype)
    trackers = [storage] + ([StepCounter(progress)] if progress is not None else [])
    with torch.no_grad():
        drive(stepper, system.batch_size, int(n_steps), dt, trackers)
    return storage.data


class TorchStepper(PythonStepper):
    """The torch engine as a :class:`~rdlab.simulate.driver.Stepper` (no gradients): the
    state on ``device``, a noisy flow drawn from a ``torch.Generator`` seeded with
    ``seed``.
    """

    def __init__(self, system: System, state: np.ndarray, dt: float, policy: RunawayGuard,
                 dtype=np.float64, device: str = "cpu", seed: int | None = None):
        system.check_time_step(dt)
        if system.noise is not None and system.grid is None:
            raise ParameterError("flow noise needs a grid; this system is well mixed")
        self.tdtype = torch_dtype(dtype)
        self.np_dtype = np.float32 if self.tdtype == torch.float32 else np.float64
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ParameterError(f"unknown torch device {device!r}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ParameterError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        self.dev, self.dt = dev, dt
        self.net = NetworkTensors.from_system(system, self.tdtype, dev)
        self.params = TorchParameters.from_system(system, self.tdtype, dev)
        self.generator = None
        if system.noise is not None:
            self.generator = torch.Generator(device=dev)
            if seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(int(seed))
        x = torch.tensor(np.asarray(state), dtype=self.tdtype, device=dev)
        super().__init__(system, x, policy)

    def _step(self, x):
        ff = None
        noise = self.system.noise
        if noise is not None:
            raw = raw_noise(self.generator, noise, x.shape, self.tdtype, self.dev)
            ff = flow_field(self.params.flow, noise, raw)
        return euler_step(self.net, self.params, x, self.dt, ff)

    def _bad(self, x) -> np.ndarray:
        limit = self.policy.limit
        return (~(x.reshape(x.shape[0], -1).abs() <= limit).all(dim=1)).cpu().numpy()

    def _numpy(self, x) -> np.ndarray:
        return x.cpu().numpy()

    def _copy(self, x):
        return x.clone()

    def _select(self, x, idx: np.ndarray):
        return x[torch.as_tensor(idx, device=x.device)]

    def _subset(self, idx: np.ndarray) -> None:
        self.params = TorchParameters.from_system(self.system, self.tdtype, self.dev)

    def _rng_state(self):
        return None if self.generator is None else self.generator.get_state()

    def _set_rng_state(self, state) -> None:
        if self.generator is not None:
            self.generator.set_state(state)
