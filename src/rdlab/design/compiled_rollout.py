"""A design roll-out on the compiled engine, as one :class:`torch.autograd.Function`.

:func:`compiled_rollout` is a drop-in for :func:`rdlab.design.dynamics.rollout` (same
arguments, same :class:`~rdlab.design.trajectory.Trajectory`) that runs the forward Euler
steps and their exact discrete adjoint in the generated numba kernels of
:mod:`rdlab.simulate.adjoint` instead of torch. Everything around it stays in torch: the
generator that makes ``X0``, the noisy flow fields (drawn and differentiated in torch), and
every loss term reading the trajectory's states.

The whole roll-out is one autograd node. Its inputs are ``X0 (batch, species, y, x)``, the
parameters θΨ (rates ``(R,)``, D ``(S,)``, f ``()``, x_feed ``(S,)``, shared by the batch)
and, when the drive is noisy, the stacked flow fields ``(T, batch, 1 or species, y, x)``;
its output is every state ``X_0 … X_T`` (so any loss term can read any of them). The
backward pass hands ``dL/dX_t`` of all states to :func:`rdlab.simulate.adjoint.backward`;
the per-sample parameter gradients are summed over the batch (the parameters are shared),
the flow-field gradients go back to torch, which carries them to ``f``. CPU only; float32 or
float64 (the parameters' dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rdlab.chemistry.network import ReactionNetwork
from rdlab.design.dynamics import FlowFields, check_rollout_inputs, field_source
from rdlab.design.parameters import DesignParameters
from rdlab.design.trajectory import Trajectory
from rdlab.errors import ParameterError
from rdlab.simulate import adjoint
from rdlab.simulate.torch_model import C_MAX

__all__ = ["CompiledRollout", "compiled_rollout"]


def _numpy(t: torch.Tensor) -> np.ndarray:
    """Return a detached CPU tensor as a NumPy array (no copy when possible)."""
    return t.detach().contiguous().numpy()


def _float64(t: torch.Tensor) -> np.ndarray:
    """Return a parameter tensor as a float64 NumPy array."""
    return t.detach().to(torch.float64).numpy()


@dataclass(frozen=True)
class _Setup:
    """The non-tensor inputs of one compiled roll-out."""

    network: ReactionNetwork
    n_steps: int
    dt: float
    clip: bool
    c_max: float
    stencil: str
    record: bool  # keep the tape for a backward pass


class CompiledRollout(torch.autograd.Function):
    """``(X0, k, D, f, x_feed, fields) → X_0 … X_T`` on the compiled engine, exact adjoint.

    Called through :meth:`apply` as ``apply(setup, X0, rates, diffusion, flow, feed,
    fields)``; ``fields`` is ``None`` or the stacked noisy flow ``(T, batch, 1 or species, y,
    x)``. Returns the states ``(T + 1, batch, species, y, x)`` followed by ``X_1 … X_T``
    as outputs of their own (views of the same memory).

    Why the separate outputs: a loss term reading one state (a target at ``X_T``) then
    sends back only that state's gradient. Had it read a slice of the stacked output,
    autograd would build a zero-filled gradient of the whole trajectory for it (64 of 65
    slices zeros, then stacked: about 1 ms of a 6 ms step at 64×64×5, T = 64). Terms over
    all states (step size, dissipation) read the stacked output; the backward adds the
    two kinds.
    """

    @staticmethod
    def forward(ctx, setup: _Setup, X0, rates, diffusion, flow, feed, fields):
        """Run the roll-out; keep the tape when a gradient is wanted."""
        tape = adjoint.forward(
            setup.network, _numpy(X0), _float64(rates), _float64(diffusion), _float64(flow),
            _float64(feed), setup.n_steps, setup.dt, steps=range(setup.n_steps + 1),
            flow_fields=None if fields is None else _numpy(fields), clip=setup.clip,
            c_max=setup.c_max, stencil=setup.stencil, store=None if setup.record else False)
        ctx.tape = tape if setup.record else None
        ctx.dtype = X0.dtype
        ctx.shared = (rates.ndim == 1, diffusion.ndim == 1, flow.ndim == 0, feed.ndim == 1)
        ctx.set_materialize_grads(False)
        stacked = torch.from_numpy(tape.states)
        return (stacked, *stacked[1:].unbind(0))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_stacked, *grad_each):
        """Return the gradients of ``X0``, the parameters and the flow fields."""
        # The tape stays with the graph (its states are the outputs' memory), so a
        # retain_graph=True caller may go backward again, as with any torch function.
        tape = ctx.tape
        if tape is None:
            raise RuntimeError("the compiled roll-out was run without recording gradients")
        grads, final = _state_gradients(tape.states.shape, ctx.dtype, grad_stacked, grad_each)
        g = adjoint.backward(tape, None if grads is None else _numpy(grads),
                             None if final is None else _numpy(final))
        need = ctx.needs_input_grad

        def out(value, index: int, shared: bool = False):
            if not need[index]:
                return None
            value = np.asarray(value)
            return torch.as_tensor(value.sum(axis=0) if shared else value, dtype=ctx.dtype)

        fields = None
        if need[6] and g.flow_fields is not None:
            fields = torch.as_tensor(g.flow_fields, dtype=ctx.dtype)
        s_k, s_d, s_f, s_x = ctx.shared
        return (None, out(g.x0, 1), out(g.rates, 2, s_k), out(g.diffusion, 3, s_d),
                out(g.flow, 4, s_f), out(g.feed, 5, s_x), fields)


def _state_gradients(shape: tuple[int, ...], dtype: torch.dtype,
                     grad_stacked: torch.Tensor | None, grad_each: tuple
                     ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Return ``dL/dX_t`` of every state ``(T + 1, B, S, y, x)`` and a further ``dL/dX_T``.

    From the two kinds of output: ``grad_stacked`` (the stacked output's, or None) and
    ``grad_each`` (``X_1 … X_T``'s own). The final state's own gradient is returned apart
    (the adjoint adds it to ``λ_T``); ``grad_stacked`` is copied only when an earlier state's
    own gradient must be added to it; when no state but the final one has a gradient the
    first result is ``None`` (no trajectory of zeros: 24 MB at 48×96×5, T = 256).
    """
    T = len(grad_each)
    final = grad_each[-1] if T else None
    each = [(t, g) for t, g in enumerate(grad_each[:-1], start=1) if g is not None]
    if grad_stacked is None and not each:
        return None, final
    if grad_stacked is None:
        total = torch.zeros(shape, dtype=dtype)
    elif each:
        total = grad_stacked.clone(memory_format=torch.contiguous_format)
    else:
        return grad_stacked, final
    for t, g in each:
        total[t] += g
    return total, final


def _stacked_fields(flow_fields: FlowFields | None, n_steps: int, X0: torch.Tensor
                    ) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
    """Return the checked flow fields stacked ``(T, B, C, y, x)`` and as the list used."""
    source = field_source(flow_fields, n_steps, X0)
    if source is None:
        return None, None
    used = [source(t) for t in range(n_steps)]
    if not used:
        return None, used
    shapes = {tuple(f.shape) for f in used}
    if len(shapes) != 1:
        raise ParameterError(f"the flow fields of one roll-out must share one shape, got "
                             f"{sorted(shapes)}")
    return torch.stack(used), used


def compiled_rollout(params: DesignParameters, X0: torch.Tensor, n_steps: int,
                     dt: float = 1.0, *, flow_fields: FlowFields | None = None,
                     clip: bool = True, c_max: float = C_MAX, stencil: str = "9-point",
                     threads: int | None | str = "auto") -> Trajectory:
    """Integrate on the compiled engine and return the whole trajectory.

    The arguments, checks and result are those of :func:`rdlab.design.dynamics.rollout`;
    the values agree with it to rounding (1e-10 relative in float64) and so do the
    gradients.

    Parameters
    ----------
    params : DesignParameters
        Rates, diffusion, flow and feed (shared by the batch), on the CPU.
    X0 : torch.Tensor
        Initial concentrations ``(B, S, y, x)``, same dtype as ``params``.
    n_steps : int
        Number of Euler steps ``T ≥ 0``.
    dt : float
        Time step (s), within the explicit limits (``max(D)·dt`` ≤ the stencil's, ``f·dt``
        ≤ 2).
    flow_fields : sequence of torch.Tensor, callable or None
        Noisy drive: per-step flow ``(B or 1, 1 or S, y, x)`` replacing ``f``, as a
        sequence of at least ``n_steps`` tensors or a callable ``step → tensor``; they may
        depend on ``params.flow`` differentiably.
    clip : bool
        Clip each new state to ``[0, c_max]``.
    c_max : float
        Upper clip (default 10).
    stencil : str
        A symmetric stencil of :data:`rdlab.system.STENCILS` (unit spacing).
    threads : int, None or "auto"
        Accepted for the signature of :func:`~rdlab.design.dynamics.rollout`; the kernels
        use numba's thread pool (``NUMBA_NUM_THREADS``).

    Returns
    -------
    Trajectory
        All ``n_steps + 1`` states (``states[0]`` is ``X0`` itself), differentiable with
        respect to ``X0`` and every (non-fixed) parameter; the flow fields used when the
        drive is noisy.

    Raises
    ------
    ParameterError
        For bad parameters, state, steps, ``dt``, ``c_max``, stencil or flow fields, or
        tensors that are not on the CPU.
    StabilityError
        For a step beyond the explicit stability limits.
    """
    dt, c = check_rollout_inputs(params, X0, n_steps, dt, clip, c_max, stencil,
                                 noisy=flow_fields is not None)
    if X0.device.type != "cpu":
        raise ParameterError(f"the compiled design engine runs on the CPU; the state is on "
                             f"{X0.device} (use the fused engine there)")
    fields, used = _stacked_fields(flow_fields, n_steps, X0)
    setup = _Setup(network=params.network, n_steps=int(n_steps), dt=dt, clip=clip,
                   c_max=C_MAX if c is None else c, stencil=stencil,
                   record=torch.is_grad_enabled())
    stacked, *later = CompiledRollout.apply(setup, X0, params.rates, params.diffusion,
                                            params.flow, params.feed, fields)
    # states[0] is X0 itself; the stacked tensor's first entry is the engine's copy of it,
    # whose gradient the adjoint adds to X0's.
    return Trajectory(states=[X0, *later], dt=dt, rates=params.rates,
                      diffusion=params.diffusion, flow=params.flow, feed=params.feed,
                      network=params.network, flow_fields=used, stacked_states=stacked)

