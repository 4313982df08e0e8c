"""Fast differentiable forward Euler of the Dense-RDN model (the design engine).

The model is the one defined in :mod:`rdlab.simulate.torch_model`, on a periodic grid of
unit spacing::

    X_{t+1} = clip(X_t + dt·[S·v(X_t) + D∘∇²X_t + (f + ε_t)∘(x_feed − X_t)], 0, c_max)
    v_r = k_r ∏_i X_i^{R_ir}

with the isotropic 9-point Laplacian (:data:`rdlab.system.STENCILS`) by default. The clip to
``[0, c_max]`` (``c_max = 10``) is what the public Dense-RDN code does after each step; it is
**not** in the paper's equations, so it is an option (``clip=True`` by default). Its gradient
is that of :func:`torch.clamp`: zero where the unclipped value lies outside ``[0, c_max]``.

:class:`FusedStep` is an optimisation of that definition's step
(:func:`rdlab.simulate.torch_model.euler_step`), with the same signature
(:data:`~rdlab.simulate.torch_model.StepFunction`); :func:`rollout` drives it through the
shared stepping loop (:func:`~rdlab.simulate.torch_model.euler_iterates`). Its values and
gradients are tested against plain autograd through the definition.

Why it is fast
--------------
Each Euler step is one :class:`torch.autograd.Function` whose backward pass computes the
vector–Jacobian products analytically, so autograd records one node per step and saves only
``X_t`` (which the trajectory holds anyway) and a boolean clip mask:

* **Reactant monomials.** Reactions share reactant complexes (the 100 kitchen-sink reactions
  of 5 species have 34 distinct ones). All distinct monomials ``M_K = ∏ X_i^{e_Ki}`` and every
  divisor of them (``1``, ``X_i``, ``X_i X_j``, …) are built degree by degree, each as a
  parent monomial times one species. The reaction term is then one matrix product
  ``S·v = A·M`` with ``A = S·diag(k)·C`` ``(S, K)`` (``C`` maps reactions to monomials),
  formed once per roll-out with ordinary autograd.
* **Mass-action partials** are exact polynomials: ``∂M_K/∂X_i = e_Ki·M_{K/X_i}`` where
  ``K/X_i`` is again a stored monomial. With one entry ``p`` per nonzero partial,
  ``∂L/∂X_i = Σ_{p: species i} e_p·(Aᵀg)_{K_p}·M_{K_p/X_i}``: one matrix product, one gather,
  one product and one ``index_add``; no logarithms, exact at ``X = 0`` (the reference code's
  ``c = 0 → 1e-10`` substitution is not needed).
* **Diffusion.** The stencil is symmetric, so the VJP of ``D∘∇²X`` is ``D∘∇²g``, with the
  definition's own Laplacian (:func:`~rdlab.simulate.torch_model.periodic_laplacian`), and
  ``∂L/∂D_i = Σ (∇²g)_i X_i`` reuses the same ``∇²g``.
* Parameter gradients per step are small reductions (``(S, K)``, ``(S,)``, scalars), summed
  over steps by autograd and mapped back to ``k, D, f, x_feed`` once per roll-out.
* **Threads.** A step is a few dozen ops on ~10⁵ values; at such sizes intra-op threads cost
  more in synchronisation than they save, and far more when cores are shared. By default
  (``threads="auto"``) small steps run on one thread (see :func:`rollout`).

``benchmarks/design.py`` measures an optimisation step (forward + backward over T steps)
against a reference-style autograd implementation (power tensor, ``pow`` + ``prod``).
Array layout is ``(batch, species, y, x)`` throughout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rdlab.design.parameters import DesignParameters
from rdlab.design.trajectory import Trajectory
from rdlab.errors import ParameterError, StabilityError
from rdlab.simulate.torch_model import (
    C_MAX,
    euler_iterates,
    intra_op_threads,
    noisy_flow_field,
    periodic_laplacian,
    stencil_weights,
)
from rdlab.system import FLOW_NUMBER_LIMIT, FlowNoise, diffusion_number_limit

__all__ = [
    "C_MAX",
    "FusedStep",
    "check_rollout_inputs",
    "field_source",
    "MonomialPlan",
    "noisy_flow",
    "reaction_matrix",
    "rollout",
]

_AUTO_THREADS_ELEMENTS = 1 << 20

FlowFields = Sequence[torch.Tensor] | Callable[[int], torch.Tensor]


# ---------------------------------------------------------------------------- monomials
@dataclass(frozen=True, eq=False)
class MonomialPlan:
    """How to build every reactant monomial of a network and its first partials.

    Slots of the monomial tensor ``M (B, K, y, x)``: ``0`` is the constant 1, ``1 … S`` are the
    species ``X_i``, then the degree-2 monomials, then degree 3, … Every degree-``d``
    monomial (``d ≥ 2``) is ``M[parent] · X[species]`` with the parent of degree ``d − 1``.

    Attributes
    ----------
    n_species : int
        ``S``.
    n_monomials : int
        ``K``.
    blocks : tuple
        Per degree ≥ 2: ``(start, stop, parents, species)``; ``parents`` and ``species`` are
        monomial slots (the species slot of ``X_i`` is ``i + 1``).
    reaction_monomial : numpy.ndarray
        ``(R,)`` slot of each reaction's reactant monomial.
    pair_monomial, pair_divisor, pair_species, pair_coefficient : numpy.ndarray
        ``(P,)`` the nonzero partials ``∂M[pair_monomial]/∂X[pair_species] =
        pair_coefficient · M[pair_divisor]``.
    """

    n_species: int
    n_monomials: int
    blocks: tuple[tuple[int, int, np.ndarray, np.ndarray], ...]
    reaction_monomial: np.ndarray
    pair_monomial: np.ndarray
    pair_divisor: np.ndarray
    pair_species: np.ndarray
    pair_coefficient: np.ndarray

    @classmethod
    def from_reactant_matrix(cls, R: np.ndarray) -> MonomialPlan:
        """Build the plan of a reactant matrix.

        Parameters
        ----------
        R : numpy.ndarray
            Reactant matrix ``(S, R)`` of non-negative integers.

        Returns
        -------
        MonomialPlan
            Every reactant monomial, their divisors and first partials.
        """
        R = np.asarray(R, dtype=np.int64)
        n_s = R.shape[0]
        needed: set[tuple[int, ...]] = set()
        for col in R.T:
            stack = [tuple(int(c) for c in col)]
            while stack:  # the monomial and all its divisors
                m = stack.pop()
                if m in needed:
                    continue
                needed.add(m)
                for i in range(n_s):
                    if m[i]:
                        stack.append(m[:i] + (m[i] - 1,) + m[i + 1:])
        units = [tuple(int(i == j) for j in range(n_s)) for i in range(n_s)]
        zero = (0,) * n_s
        order: list[tuple[int, ...]] = [zero, *units]
        higher = sorted((m for m in needed if sum(m) >= 2),
                        key=lambda m: (sum(m), tuple(-c for c in m)))
        order += higher
        slot = {m: k for k, m in enumerate(order)}
        blocks = []
        for degree in sorted({sum(m) for m in higher}):
            members = [m for m in higher if sum(m) == degree]
            parents, species = [], []
            for m in members:
                i = max(j for j in range(n_s) if m[j])  # peel the highest-index species
                parents.append(slot[m[:i] + (m[i] - 1,) + m[i + 1:]])
                species.append(i + 1)
            blocks.append((slot[members[0]], slot[members[-1]] + 1,
                           np.array(parents, dtype=np.int64), np.array(species, dtype=np.int64)))
        pairs = [(slot[m], slot[m[:i] + (m[i] - 1,) + m[i + 1:]], i, m[i])
                 for m in order for i in range(n_s) if m[i]]
        pm, pd, ps, pc = (np.array(c, dtype=np.int64) for c in zip(*pairs)) if pairs else (
            np.zeros(0, dtype=np.int64),) * 4
        return cls(
            n_species=n_s,
            n_monomials=len(order),
            blocks=tuple(blocks),
            reaction_monomial=np.array([slot[tuple(int(c) for c in col)] for col in R.T],
                                       dtype=np.int64),
            pair_monomial=pm,
            pair_divisor=pd,
            pair_species=ps,
            pair_coefficient=pc,
        )


@functools.lru_cache(maxsize=32)
def _plan_cached(shape: tuple[int, int], data: bytes) -> MonomialPlan:
    """Return the (cached) plan of the reactant matrix stored in ``data``."""
    return MonomialPlan.from_reactant_matrix(np.frombuffer(data, dtype=np.int64).reshape(shape))


def _plan(network) -> MonomialPlan:
    """Return the plan of ``network``'s reactant matrix."""
    R = np.ascontiguousarray(network.reactant_matrix, dtype=np.int64)
    return _plan_cached(R.shape, R.tobytes())


@dataclass(frozen=True, eq=False)
class _PlanTensors:
    """A :class:`MonomialPlan` as tensors on one device / dtype."""

    plan: MonomialPlan
    blocks: tuple[tuple[int, int, torch.Tensor, torch.Tensor], ...]
    reaction_monomial: torch.Tensor
    pair_monomial: torch.Tensor
    pair_divisor: torch.Tensor
    pair_species: torch.Tensor
    pair_coefficient: torch.Tensor  # float


@functools.lru_cache(maxsize=64)
def _plan_tensors(plan: MonomialPlan, dtype: torch.dtype, device: torch.device) -> _PlanTensors:
    """Return ``plan`` as (cached) tensors on ``device``."""
    def idx(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.long, device=device)

    return _PlanTensors(
        plan=plan,
        blocks=tuple((a, b, idx(p), idx(s)) for a, b, p, s in plan.blocks),
        reaction_monomial=idx(plan.reaction_monomial),
        pair_monomial=idx(plan.pair_monomial),
        pair_divisor=idx(plan.pair_divisor),
        pair_species=idx(plan.pair_species),
        pair_coefficient=torch.as_tensor(plan.pair_coefficient, dtype=dtype, device=device),
    )


def _monomials(pt: _PlanTensors, X: torch.Tensor) -> torch.Tensor:
    """All monomial slots ``(B, K, y·x)`` of ``X (B, S, y, x)``."""
    B, S = X.shape[:2]
    M = torch.empty((B, pt.plan.n_monomials, X.shape[2] * X.shape[3]), dtype=X.dtype,
                    device=X.device)
    M[:, 0].fill_(1.0)
    M[:, 1:S + 1].copy_(X.reshape(B, S, -1))
    for a, b, parents, species in pt.blocks:
        torch.mul(M.index_select(1, parents), M.index_select(1, species), out=M[:, a:b])
    return M


def _mm(A: torch.Tensor, M: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``A (m, k) @ M (B, k, n)`` → ``(B, m, n)``, added to ``out`` when given."""
    if M.shape[0] == 1:  # a plain matrix product (faster than a batched one)
        if out is None:
            return torch.mm(A, M[0]).unsqueeze(0)
        out[0].addmm_(A, M[0])
        return out
    if out is None:
        return torch.matmul(A, M)
    return out.baddbmm_(A.expand(M.shape[0], -1, -1), M)


def reaction_matrix(params: DesignParameters, dt: float = 1.0) -> torch.Tensor:
    """Return the reaction matrix ``dt·A = dt·S·diag(k)·C`` over the monomial slots.

    The reaction term of a step is ``A·M`` with ``M`` the monomial slots of
    :class:`MonomialPlan`.

    Parameters
    ----------
    params : DesignParameters
        The network and its rates ``k``.
    dt : float
        Time step (s) folded into the matrix.

    Returns
    -------
    torch.Tensor
        ``(S, K)``, differentiable with respect to the rates.
    """
    pt = _plan_tensors(_plan(params.network), params.dtype, params.device)
    S = torch.as_tensor(params.network.stoichiometry, dtype=params.dtype, device=params.device)
    A = torch.zeros(S.shape[0], pt.plan.n_monomials, dtype=params.dtype, device=params.device)
    return A.index_add(1, pt.reaction_monomial, S * (dt * params.rates))


# ---------------------------------------------------------------------------- one step
def _symmetric_stencil(name: str) -> np.ndarray:
    """Return the weights of stencil ``name``, refusing unknown or asymmetric ones."""
    w = stencil_weights(name)
    if not np.array_equal(w, w[::-1, ::-1]):  # the backward pass uses ∇²ᵀ = ∇²
        raise ParameterError(f"stencil {name!r} is not symmetric")
    return w


class _EulerStep(torch.autograd.Function):
    """``Y = clip(X + A·M(X) + D∘∇²X + φ∘(x_feed − X))``, analytic backward.

    The step size is folded into ``A = dt·A``, ``D = dt·D``, ``φ = dt·(f + ε)``.
    """

    @staticmethod
    def forward(ctx, X, A, D, phi, feed, pt: _PlanTensors, stencil: str,
                c_max: float | None, threads: int | None, track: bool, cache: dict):
        """Take the step; keep ``X`` and the clip mask for the backward pass."""
        B, S, ny, nx = X.shape
        with intra_op_threads(threads):
            M = _monomials(pt, X)
            U = torch.addcmul(X, phi, feed.view(1, S, 1, 1) - X)  # X + φ(x_feed − X)
            _mm(A, M, out=U.view(B, S, ny * nx))
            U.addcmul_(D.view(1, S, 1, 1), periodic_laplacian(X, stencil))
            mask = None
            if c_max is not None and track:
                Y = U.clamp(0.0, c_max)
                mask = Y.eq(U)  # inside [0, c_max], bounds included (as torch.clamp)
                U = Y
            elif c_max is not None:  # no gradient wanted: no mask
                U.clamp_(0.0, c_max)
        ctx.pt, ctx.stencil, ctx.threads, ctx.cache = pt, stencil, threads, cache
        ctx.has_mask = mask is not None
        ctx.save_for_backward(X, A, D, phi, feed, *(() if mask is None else (mask,)))
        return U

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY):
        """Return the vector–Jacobian products for ``X, A, D, φ, x_feed``."""
        X, A, D, phi, feed, *rest = ctx.saved_tensors
        with intra_op_threads(ctx.threads):
            g = gY * rest[0] if ctx.has_mask else gY.contiguous()
            grads = _step_vjp(ctx, g, X, A, D, phi, feed)
        return (*grads, None, None, None, None, None, None)


def _state_vjp(ctx, g, X, A, D, phi, M, Lg) -> torch.Tensor:
    """Return ``∂L/∂X``: flow, diffusion and the exact mass-action partials."""
    pt = ctx.pt
    B, S, ny, nx = X.shape
    Apair = ctx.cache.get("Apair")
    if Apair is None:  # (P, S), the same for every step of a roll-out
        Apair = (A.index_select(1, pt.pair_monomial) * pt.pair_coefficient).T
        Apair = ctx.cache["Apair"] = Apair.contiguous()
    H = _mm(Apair, g.view(B, S, ny * nx))  # (B, P, yx): ∂L/∂M at each partial
    H.mul_(M.index_select(1, pt.pair_divisor))
    gX = torch.addcmul(g, phi, g, value=-1.0).addcmul_(D.view(1, S, 1, 1), Lg)
    gX.view(B, S, ny * nx).index_add_(1, pt.pair_species, H)
    return gX


def _step_vjp(ctx, g, X, A, D, phi, feed) -> tuple:
    """Return the gradients of the inputs that need them (``None`` for the others)."""
    B, S, ny, nx = X.shape
    need_x, need_a, need_d, need_phi, need_feed = ctx.needs_input_grad[:5]
    gX = gA = gD = gphi = gfeed = None
    M = _monomials(ctx.pt, X) if (need_x or need_a) else None
    Lg = periodic_laplacian(g, ctx.stencil) if (need_x or need_d) else None
    if need_x:
        gX = _state_vjp(ctx, g, X, A, D, phi, M, Lg)
    if need_a:
        if B == 1:
            gA = torch.mm(g.view(S, ny * nx), M[0].T)
        else:
            gA = torch.matmul(g.view(B, S, ny * nx), M.transpose(1, 2)).sum(0)
    if need_d:
        gD = (Lg * X).sum((0, 2, 3))
    if need_phi:
        gphi = (g * (feed.view(1, S, 1, 1) - X)).sum_to_size(phi.shape)
    if need_feed:
        gfeed = (g * phi).sum((0, 2, 3)) if phi.ndim else g.sum((0, 2, 3)) * phi
    return gX, gA, gD, gphi, gfeed


def _threads_for(threads: int | None | str, elements: int) -> int | None:
    """Resolve the ``threads`` option of :func:`rollout` for a step of ``elements`` values."""
    if threads == "auto":
        return 1 if elements < _AUTO_THREADS_ELEMENTS else None
    if threads is not None and (not isinstance(threads, (int, np.integer))
                                or isinstance(threads, bool) or threads < 1):
        raise ParameterError(f"threads must be a whole number ≥ 1, None or 'auto', got "
                             f"{threads!r}")
    return threads


class FusedStep:
    """One roll-out's fused Euler step, a :data:`~rdlab.simulate.torch_model.StepFunction`.

    Calling it with ``(X, flow_field or None)`` gives what
    :func:`rdlab.simulate.torch_model.euler_step` gives for the same parameters (clipped to
    ``[0, c_max]`` when ``c_max`` is set), with one autograd node and an analytic backward
    pass. The operands ``dt·A``, ``dt·D`` and ``dt·f`` are formed once, differentiably.

    Parameters
    ----------
    params : DesignParameters
        Rates, diffusion, flow and feed (shared by the batch).
    dt : float
        Time step (s).
    shape : sequence of int
        The state's ``(B, S, y, x)`` (sizes the ``"auto"`` thread choice).
    c_max : float or None
        Upper clip; ``None`` does not clip.
    stencil : str
        A symmetric stencil of :data:`rdlab.system.STENCILS` (unit spacing).
    threads : int, None or "auto"
        Intra-op threads inside each step (see :func:`rollout`).

    Raises
    ------
    ParameterError
        For an unknown or asymmetric stencil or a bad ``threads``.
    """

    def __init__(self, params: DesignParameters, dt: float, shape: Sequence[int], *,
                 c_max: float | None = C_MAX, stencil: str = "9-point",
                 threads: int | None | str = "auto"):
        _symmetric_stencil(stencil)
        self.pt = _plan_tensors(_plan(params.network), params.dtype, params.device)
        self.dt, self.c_max, self.stencil = dt, c_max, stencil
        self.A = reaction_matrix(params, dt)
        self.D = params.diffusion * dt
        self.phi = params.flow * dt
        self.feed = params.feed
        B, _, ny, nx = shape
        self.threads = _threads_for(threads, B * self.pt.plan.n_monomials * ny * nx)
        self.track = torch.is_grad_enabled()
        self.cache: dict = {}

    def __call__(self, X: torch.Tensor, flow_field: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """Return the state after one step from ``X (B, S, y, x)``.

        Parameters
        ----------
        X : torch.Tensor
            The state ``(B, S, y, x)``.
        flow_field : torch.Tensor or None
            Per-cell flow ``(B or 1, 1 or S, y, x)`` replacing ``f``.

        Returns
        -------
        torch.Tensor
            The next state.
        """
        phi = self.phi if flow_field is None else flow_field * self.dt
        return _EulerStep.apply(X, self.A, self.D, phi, self.feed, self.pt, self.stencil,
                                self.c_max, self.threads, self.track, self.cache)


# ---------------------------------------------------------------------------- roll-out
def _check_number(value, name: str) -> float:
    """Return ``value`` as a float, refusing anything but a finite number > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ParameterError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _check_flow_field(ff, step: int, X: torch.Tensor) -> torch.Tensor:
    """Return flow field ``ff`` of ``step`` in ``X``'s dtype/device, refusing bad shapes."""
    if not isinstance(ff, torch.Tensor):
        raise ParameterError(f"flow field of step {step} is a {type(ff).__name__}, not a "
                             "tensor")
    B, S, ny, nx = X.shape
    if (ff.ndim != 4 or ff.shape[0] not in (1, B) or ff.shape[1] not in (1, S)
            or tuple(ff.shape[2:]) != (ny, nx)):
        raise ParameterError(f"flow field of step {step} has shape {tuple(ff.shape)}; "
                             f"expected ({B} or 1, 1 or {S}, {ny}, {nx})")
    if ff.dtype != X.dtype or ff.device != X.device:
        ff = ff.to(dtype=X.dtype, device=X.device)
    return ff


def _check_state(params: DesignParameters, X0) -> None:
    """Refuse an initial state of the wrong type, shape, dtype or device."""
    if not isinstance(X0, torch.Tensor) or X0.ndim != 4 or X0.shape[1] != params.n_species:
        shape = tuple(X0.shape) if isinstance(X0, torch.Tensor) else type(X0).__name__
        raise ParameterError(f"initial state has shape {shape}; expected (batch, "
                             f"{params.n_species}, y, x)")
    if X0.dtype != params.dtype or X0.device != params.device:
        raise ParameterError(f"initial state is {X0.dtype} on {X0.device} but the parameters "
                             f"are {params.dtype} on {params.device}")


def _check_stability(params: DesignParameters, dt: float, stencil: str, noisy: bool) -> None:
    """Refuse a step beyond the explicit limits of the stencil and of a constant flow.

    The limits are written once in :mod:`rdlab.system`: ``diffusion_number_limit`` and
    ``FLOW_NUMBER_LIMIT``.
    """
    _symmetric_stencil(stencil)
    limit = diffusion_number_limit(stencil)
    d_max = float(params.diffusion.detach().max())
    if d_max * dt > limit:
        raise StabilityError(f"max D·dt = {d_max * dt:g} exceeds the explicit limit {limit:g} "
                             f"of the {stencil} stencil; reduce dt or D")
    if not noisy and float(params.flow.detach()) * dt > FLOW_NUMBER_LIMIT:
        raise StabilityError(f"f·dt = {float(params.flow.detach()) * dt:g} exceeds "
                             f"{FLOW_NUMBER_LIMIT:g}; reduce dt or the flow")


def field_source(flow_fields: FlowFields | None, n_steps: int, X0: torch.Tensor
                 ) -> Callable[[int], torch.Tensor] | None:
    """Return ``step → checked flow field`` for a roll-out (``None``: no noise).

    Parameters
    ----------
    flow_fields : sequence of torch.Tensor, callable or None
        The noisy drive as :func:`rollout` takes it.
    n_steps : int
        Number of Euler steps (a sequence must hold at least this many fields).
    X0 : torch.Tensor
        The initial state ``(B, S, y, x)``; each field is checked against its shape and
        moved to its dtype and device.

    Returns
    -------
    callable or None
        ``step → (B or 1, 1 or S, y, x)`` flow field.

    Raises
    ------
    ParameterError
        For too few fields (when checked), or a field of the wrong type or shape.
    """
    if flow_fields is None:
        return None
    if not callable(flow_fields):
        flow_fields = list(flow_fields)
        if len(flow_fields) < n_steps:
            raise ParameterError(f"{len(flow_fields)} flow fields for {n_steps} steps")
    get = flow_fields if callable(flow_fields) else flow_fields.__getitem__
    return lambda t: _check_flow_field(get(t), t, X0)


def check_rollout_inputs(params: DesignParameters, X0, n_steps, dt, clip: bool, c_max,
                         stencil: str, noisy: bool) -> tuple[float, float | None]:
    """Check the inputs of a roll-out (every engine's); return ``dt`` and the clip bound.

    Parameters
    ----------
    params : DesignParameters
        Rates, diffusion, flow and feed.
    X0 : torch.Tensor
        Initial concentrations ``(B, S, y, x)``, same dtype/device as ``params``.
    n_steps : int
        Number of Euler steps ``T ≥ 0``.
    dt : float
        Time step (s).
    clip : bool
        Whether the states are clipped to ``[0, c_max]``.
    c_max : float
        Upper clip.
    stencil : str
        A symmetric stencil of :data:`rdlab.system.STENCILS`.
    noisy : bool
        The flow is noisy (then ``f·dt`` is not checked).

    Returns
    -------
    tuple
        ``(dt, c_max or None)``: ``None`` when not clipping.

    Raises
    ------
    ParameterError
        For bad parameters, state, steps, ``dt``, ``c_max`` or stencil.
    StabilityError
        For a step beyond the explicit stability limits.
    """
    if not isinstance(params, DesignParameters):
        raise ParameterError(f"params must be DesignParameters, got {type(params).__name__}")
    if (not isinstance(n_steps, (int, np.integer)) or isinstance(n_steps, bool)
            or n_steps < 0):
        raise ParameterError(f"number of steps must be a whole number ≥ 0, got {n_steps!r}")
    dt = _check_number(dt, "dt")
    c = _check_number(c_max, "c_max") if clip else None
    _check_state(params, X0)
    _check_stability(params, dt, stencil, noisy=noisy)
    return dt, c


def rollout(params: DesignParameters, X0: torch.Tensor, n_steps: int, dt: float = 1.0, *,
            flow_fields: FlowFields | None = None, clip: bool = True, c_max: float = C_MAX,
            stencil: str = "9-point", threads: int | None | str = "auto") -> Trajectory:
    """Integrate by forward Euler with the fused step and return the whole trajectory.

    Parameters
    ----------
    params : DesignParameters
        Rates, diffusion, flow and feed (shared by the batch).
    X0 : torch.Tensor
        Initial concentrations ``(B, S, y, x)``, same dtype/device as ``params``.
    n_steps : int
        Number of Euler steps ``T ≥ 0``.
    dt : float
        Time step (s). ``max(D)·dt`` must stay within the stencil's explicit limit (0.5 for
        the 9-point stencil) and ``f·dt ≤ 2``.
    flow_fields : sequence of torch.Tensor, callable or None
        Noisy drive: per-step flow ``(B or 1, 1 or S, y, x)`` replacing ``f`` (``f + ε`` in
        the paper's eq. 12), as a sequence of at least ``n_steps`` tensors or a callable
        ``step → tensor``; they may depend on ``params.flow`` differentiably (see
        :func:`noisy_flow`).
    clip : bool
        Clip each new state to ``[0, c_max]`` (the public code's behaviour, not in the
        paper's equations).
    c_max : float
        Upper clip (default 10).
    stencil : str
        A name of :data:`rdlab.system.STENCILS` (unit spacing).
    threads : int, None or "auto"
        Intra-op threads for each step's forward and backward pass; ``None`` keeps torch's
        setting; ``"auto"`` (default) uses one thread when a step's largest tensor (the
        monomials, ``B·K·y·x`` values) is under 2²⁰ elements — a step is a few dozen ops on
        ~10⁵ values, where thread synchronisation costs more than it saves (far more when
        the cores are shared) — and torch's setting otherwise.

    Returns
    -------
    Trajectory
        All ``n_steps + 1`` states (``states[0]`` is ``X0``), differentiable with respect to
        ``X0`` and every (non-fixed) parameter of ``params``; the flow fields used when the
        drive is noisy.

    Raises
    ------
    ParameterError
        For bad parameters, state, steps, ``dt``, ``c_max``, stencil, flow fields or threads.
    StabilityError
        For a step beyond the explicit stability limits.
    """
    dt, c = check_rollout_inputs(params, X0, n_steps, dt, clip, c_max, stencil,
                                 noisy=flow_fields is not None)
    fields = field_source(flow_fields, n_steps, X0)
    step = FusedStep(params, dt, X0.shape, c_max=c, stencil=stencil, threads=threads)
    states, used = [X0], []
    for X, ff in euler_iterates(step, X0, n_steps, fields):
        states.append(X)
        used.append(ff)
    return Trajectory(states=states, dt=dt, rates=params.rates, diffusion=params.diffusion,
                      flow=params.flow, feed=params.feed, network=params.network,
                      flow_fields=used if fields is not None else None)


# ---------------------------------------------------------------------------- noisy flow
def noisy_flow(params: DesignParameters, noise: FlowNoise, shape: Sequence[int],
               generator: torch.Generator | None = None) -> Callable[[int], torch.Tensor]:
    """Return a ``step → flow field`` callable for :func:`rollout`.

    Each call draws a fresh field ``smooth(max(f + U(−a, a), 0))``
    (:func:`rdlab.simulate.torch_model.noisy_flow_field`, differentiable with respect to
    ``params.flow``); one field shared by all species unless ``noise.per_species``.

    Parameters
    ----------
    params : DesignParameters
        Its flow, dtype and device are used.
    noise : rdlab.system.FlowNoise
        Amplitude ``a``, smoothing width and per-species flag.
    shape : sequence of int
        The state's ``(B, S, y, x)``.
    generator : torch.Generator or None
        Source of the draws.

    Returns
    -------
    callable
        ``step → (B, 1 or S, y, x)`` flow field.
    """
    B = int(shape[0])

    def field(step: int) -> torch.Tensor:
        return noisy_flow_field(params.flow.expand(B), noise, generator, shape, params.dtype,
                                params.device)

    return field
