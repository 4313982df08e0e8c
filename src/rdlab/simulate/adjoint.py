"""The compiled design engine: forward Euler and its exact discrete adjoint (CPU, numba).

The model is the design dynamics of :mod:`rdlab.design.dynamics` (forward Euler of
mass action, the periodic Laplacian of unit spacing, the flow drive with an optional noisy
flow, the optional clip to ``[0, c_max]``), every sample of the batch with its own
parameters; the kernels are generated from the network (:mod:`rdlab.simulate.adjoint_codegen`).

Two calls make one gradient evaluation:

* :func:`forward` runs ``T`` steps from ``X_0`` and returns a :class:`Tape` holding the
  states the loss needs (``tape.states``) and what the backward pass needs: the whole
  trajectory when it fits in memory, else the states every ``≈ √T`` steps (checkpoints),
  from which each segment is recomputed once during the backward pass.
* :func:`backward` takes ``dL/dX_t`` for those states and returns the exact gradient of the
  discretised loss with respect to ``X_0``, the rates, diffusion, flow and feed (and the
  per-step flow fields when the flow is noisy), as :class:`Gradients`.

Noisy flow: the per-step fields ``φ_t`` (``f + ε_t`` smoothed, see
:func:`rdlab.simulate.torch_engine.flow_field`) are inputs; the gradient is returned with
respect to each field, ``dL/dφ_t``, and reaches ``f`` through the (differentiable) map
``f ↦ φ_t`` — in torch, ``torch.autograd.backward(fields, grad_fields)`` — since the noise
``ε_t`` itself is not a parameter.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from rdlab.chemistry.network import ReactionNetwork
from rdlab.errors import ParameterError, StabilityError
from rdlab.simulate.adjoint_codegen import (
    ROW_BLOCK,
    AdjointKernels,
    compile_adjoint,
    mask_bytes,
    padded_width,
)
from rdlab.simulate.budget import memory_limit
from rdlab.simulate.fast_codegen import lanes
from rdlab.system import C_MAX, FLOW_NUMBER_LIMIT, STENCILS, diffusion_number_limit

__all__ = ["C_MAX", "ROW_SPLIT_ENV", "Gradients", "Tape", "backward", "forward"]

#: Environment variable: whether one sample's steps are split over numba's threads by rows
#: (``on``), never (``off``), or when the load average leaves room for them (``auto``, the
#: default); the gradients are the same to the bit either way.
ROW_SPLIT_ENV = "RDLAB_ROW_SPLIT"


@dataclass(frozen=True)
class _Inputs:
    """Validated, packed inputs of one roll-out (arrays in the kernel dtype)."""

    kernels: AdjointKernels
    prm: np.ndarray  # (B, P + 2S + 4) coefficient rows (AdjointPlan.pack)
    dd: np.ndarray  # (B, S) dt·D
    feed: np.ndarray  # (B, S)
    fields: np.ndarray  # (T, Bf, C, ny, nxp) padded flow fields (1/s), or a dummy
    lo: float
    hi: float
    dt: float
    n_steps: int
    shape: tuple[int, int, int, int]  # (B, S, ny, nx)


@dataclass(eq=False)
class Tape:
    """What :func:`forward` returns and :func:`backward` consumes.

    Attributes
    ----------
    states : numpy.ndarray
        ``(len(steps), batch, species, y, x)``: the state after each requested step
        (concentration units, in the engine's dtype). For a stored trajectory and evenly
        spaced steps, a (strided) view of it: the backward pass reads that memory, so it
        must not be written to.
    steps : tuple of int
        The requested steps, sorted and unique, within ``0 … n_steps``.
    stored : bool
        Whether the whole trajectory is kept (``False``: checkpoints every ``interval``
        steps, segments recomputed in the backward pass).
    interval : int
        Steps between checkpoints (``n_steps`` when the trajectory is stored).
    """

    states: np.ndarray
    steps: tuple[int, ...]
    stored: bool
    interval: int
    _inputs: _Inputs
    _saved: np.ndarray  # stored: (T + 1, B, S, ny, nxp); else checkpoints (n_c, …)
    _masks: np.ndarray  # stored: each step's clip mask (T, B, S, ny, mask bytes); else unused


@dataclass(frozen=True)
class Gradients:
    """The gradient of the loss with respect to every input of :func:`forward`.

    Attributes
    ----------
    x0 : numpy.ndarray
        ``(batch, species, y, x)``.
    rates : numpy.ndarray
        ``(batch, reactions)``.
    diffusion : numpy.ndarray
        ``(batch, species)``.
    flow : numpy.ndarray
        ``(batch,)``; zero when flow fields replaced ``f``.
    feed : numpy.ndarray
        ``(batch, species)``.
    flow_fields : numpy.ndarray or None
        With respect to each step's flow field, the shape of the fields given
        (``(n_steps, batch or 1, 1 or species, y, x)``); ``None`` without fields.
    """

    x0: np.ndarray
    rates: np.ndarray
    diffusion: np.ndarray
    flow: np.ndarray
    feed: np.ndarray
    flow_fields: np.ndarray | None


# ---------------------------------------------------------------------------- checks
def _per_sample(value, name: str, batch: int, tail: tuple[int, ...], dtype) -> np.ndarray:
    """Return ``value`` as finite ``(batch, *tail)`` (broadcast from ``tail`` if shared)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
        arr = np.broadcast_to(arr, (batch, *tail)) if arr.shape != (batch, *tail) else arr
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be numbers of shape {tail} or {(batch, *tail)}, "
                             f"got shape {np.shape(value)}") from None
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} must be finite")
    return np.ascontiguousarray(arr, dtype=dtype)


def _check_steps(steps, n_steps: int) -> tuple[int, ...]:
    """Return the requested steps sorted and unique, refusing any outside ``0 … n_steps``."""
    out = sorted({int(s) for s in steps})
    if out and (out[0] < 0 or out[-1] > n_steps):
        raise ParameterError(f"requested steps must lie within 0..{n_steps}, got {list(steps)}")
    return tuple(out)


def _flow_fields(fields, n_steps: int, shape, dtype) -> tuple[np.ndarray, str]:
    """Return the fields padded, ``(T, Bf, C, ny, nxp)`` in ``dtype``, and the flow mode."""
    B, S, ny, nx = shape
    if fields is None:
        return np.zeros((1, 1, 1, 1, padded_width(1, dtype)), dtype=dtype), "constant"
    F = np.asarray(fields)
    if (F.ndim != 5 or F.shape[0] < n_steps or F.shape[1] not in (1, B)
            or F.shape[2] not in (1, S) or F.shape[3:] != (ny, nx)):
        raise ParameterError(f"flow fields have shape {F.shape}; expected ({n_steps}, {B} or "
                             f"1, 1 or {S}, {ny}, {nx})")
    if not np.all(np.isfinite(F[:n_steps])):
        raise ParameterError("flow fields must be finite")
    mode = "shared" if F.shape[2] == 1 else "species"
    out = np.zeros((n_steps, *F.shape[1:4], padded_width(nx, dtype)), dtype=dtype)
    out[..., 1:nx + 1] = F[:n_steps]
    return out, mode


def _check_stability(dd: np.ndarray, phc: np.ndarray, stencil: str, fields_given: bool,
                     dt: float) -> None:
    """Refuse ``D·dt`` beyond the stencil's explicit limit and ``f·dt`` beyond 2."""
    limit = diffusion_number_limit(stencil)  # named stencils: computed once (rdlab.system)
    if dd.size and float(dd.max()) > limit:
        raise StabilityError(f"max D·dt = {float(dd.max()):g} exceeds the explicit limit "
                             f"{limit:g} of the {stencil} stencil; reduce dt or D")
    if not fields_given and phc.size and float(phc.max()) > FLOW_NUMBER_LIMIT:
        raise StabilityError(f"f·dt = {float(phc.max()):g} exceeds {FLOW_NUMBER_LIMIT:g}; "
                             "reduce dt or the flow")
    if dt <= 0 or not math.isfinite(dt):
        raise ParameterError(f"dt must be a finite number > 0, got {dt!r}")


def _inputs(network: ReactionNetwork, X0: np.ndarray, params: tuple, n_steps: int,
            dt: float, fields, clip: bool, c_max: float, stencil: str) -> _Inputs:
    """Validate and pack the inputs of :func:`forward`."""
    if X0.ndim != 4 or X0.shape[1] != network.n_species:
        raise ParameterError(f"initial state has shape {X0.shape}; expected (batch, "
                             f"{network.n_species}, y, x)")
    if not isinstance(n_steps, (int, np.integer)) or isinstance(n_steps, bool) or n_steps < 0:
        raise ParameterError(f"number of steps must be a whole number ≥ 0, got {n_steps!r}")
    dtype = X0.dtype
    B, S = X0.shape[:2]
    rates, diffusion, flow, feed = params
    rates = _per_sample(rates, "rates", B, (network.n_reactions,), np.float64)
    dd = dt * _per_sample(diffusion, "diffusion", B, (S,), np.float64)
    phc = dt * _per_sample(flow, "flow", B, (), np.float64)
    F, mode = _flow_fields(fields, int(n_steps), X0.shape, dtype)
    if stencil not in STENCILS:
        raise ParameterError(f"unknown stencil {stencil!r}; choose one of {sorted(STENCILS)}")
    _check_stability(dd, phc, stencil, fields is not None, dt)
    if clip and (not math.isfinite(c_max) or c_max <= 0):
        raise ParameterError(f"c_max must be a finite number > 0, got {c_max!r}")
    kernels = compile_adjoint(network, stencil, mode, dtype)
    feed = _per_sample(feed, "feed", B, (S,), np.float64)
    lo, hi = (0.0, c_max) if clip else (-math.inf, math.inf)
    prm = kernels.plan.pack(rates, dd, feed, phc, lo, hi, dt, dtype)
    return _Inputs(kernels=kernels, prm=prm, dd=dd.astype(dtype), feed=feed.astype(dtype),
                   fields=F, lo=lo, hi=hi, dt=dt, n_steps=int(n_steps), shape=X0.shape)


# ---------------------------------------------------------------------------- buffers
def _pad(X: np.ndarray, out: np.ndarray) -> None:
    """Write ``X (B, S, ny, nx)`` into the padded ``out (B, S, ny, nxp)`` with ghosts."""
    nx = X.shape[-1]
    out[..., 1:nx + 1] = X
    out[..., 0] = X[..., nx - 1]
    out[..., nx + 1] = X[..., 0]
    out[..., nx + 2:] = 0.0


def _padded(shape, n: int, dtype) -> np.ndarray:
    """Return an empty ``(n, B, S, ny, nxp)`` buffer (:func:`padded_width` columns)."""
    B, S, ny, nx = shape
    return np.empty((n, B, S, ny, padded_width(nx, dtype)), dtype=dtype)


def _masks(shape, n: int, dtype) -> np.ndarray:
    """Return an empty ``(max(n, 1), B, S, ny, mask bytes)`` buffer of clip-mask bits."""
    B, S, ny, nx = shape
    return np.empty((max(n, 1), B, S, ny, mask_bytes(nx, dtype)), dtype=np.uint8)


def _bands(split: str) -> tuple[int, ...]:
    """Return the row kernels' last argument, the threads (one band of rows each), or ()."""
    if split != "rows":
        return ()
    import numba

    return (numba.get_num_threads(),)


def _run_forward(inp: _Inputs, buf: np.ndarray, masks: np.ndarray, i0: int, n: int,
                 t0: int) -> None:
    """Advance ``buf[i0]`` by ``n`` steps (the first is step ``t0``) into ``buf[i0 + 1 …]``.

    Each step's clip mask goes to ``masks[i0 …]``.
    """
    if n <= 0:
        return
    fsel = 0 if inp.kernels.mode == "constant" else 1
    k = inp.kernels
    kernels = {"samples": k.forward, "rows": k.forward_rows, "serial": k.forward_serial}
    with _timed_split(inp, "forward", n) as split:
        kernels[split](buf, masks, i0, n, inp.fields, t0, fsel, inp.prm, inp.shape[3],
                       *_bands(split))


def _split(inp: _Inputs) -> str:
    """How the work spreads over numba's threads: ``samples``, ``rows`` or ``serial``.

    Samples when there are at least as many as threads (each takes all its steps in one
    task); with fewer, the rows of every step (a band of rows per thread, a parallel
    region of a few µs per step) when the machine has room for the threads
    (:func:`_machine_has_room`), else the calling thread only; on one thread, the calling
    thread only. The environment variable :data:`ROW_SPLIT_ENV` (``auto``, ``on`` or
    ``off``) overrides the load rule. The results are the same, to the bit, whichever it is.
    """
    import numba

    choice = os.environ.get(ROW_SPLIT_ENV, "auto")
    if choice not in ("auto", "on", "off"):
        raise ParameterError(f"{ROW_SPLIT_ENV} must be auto, on or off, not {choice!r}")
    threads = numba.get_num_threads()
    if threads == 1:
        return "serial"
    if inp.shape[0] >= threads:
        return "samples"
    if choice == "auto":
        return "rows" if _machine_has_room() else "serial"
    return "rows" if choice == "on" else "serial"


#: Timed runs of each way (row split, one thread) before :func:`_timed_split` keeps the
#: faster; the least time per step of each counts (a first run may include compiling).
SPLIT_TRIALS = 3
#: Runs the kept way serves before both ways are timed again (a trial disturbed by
#: another job, or a machine whose load changed, does not decide a whole optimisation).
SPLIT_RETRIAL = 2000
#: Least time per step seen, by (direction, shape, dtype, kernels) and way.
_SPLIT_TIMES: dict[tuple, dict[str, float]] = {}
_SPLIT_RUNS: dict[tuple, dict[str, int]] = {}


@contextlib.contextmanager
def _timed_split(inp: _Inputs, direction: str, n: int):
    """Yield the way to run ``n`` steps of ``direction`` (see :func:`_split`), timing it.

    Where :func:`_split` chooses the row split on its own rule (``auto``), whether it pays
    depends on the machine and the size: a parallel region per step costs some µs (on the
    2-core machines of our CI, 64 steps of a 64×64×5 sample: forward 0.45 ms split against
    0.65 ms on one thread, backward 1.1 against 1.6 ms; before the row kernels took their
    views inside the region the one-thread forward was the faster). So the first
    :data:`SPLIT_TRIALS` runs of each way are timed per step for each direction, shape and
    dtype, and the faster is used after that, for :data:`SPLIT_RETRIAL` runs; then both
    are timed again. Both give the same numbers to the bit.
    """
    way = _split(inp)
    if way != "rows" or os.environ.get(ROW_SPLIT_ENV, "auto") == "on" or n <= 0:
        yield way
        return
    key = (direction, inp.shape, inp.prm.dtype.str, inp.kernels.mode, id(inp.kernels))
    runs = _SPLIT_RUNS.setdefault(key, {"rows": 0, "serial": 0, "kept": 0})
    best = _SPLIT_TIMES.setdefault(key, {"rows": math.inf, "serial": math.inf})
    if runs["kept"] >= SPLIT_RETRIAL:
        runs.update(rows=0, serial=0, kept=0)
        best.update(rows=math.inf, serial=math.inf)
    pending = [w for w in ("rows", "serial") if runs[w] < SPLIT_TRIALS]
    if not pending:
        runs["kept"] += 1
    way = pending[0] if pending else min(best, key=best.get)
    t0 = time.perf_counter()
    yield way
    if pending:
        runs[way] += 1
        best[way] = min(best[way], (time.perf_counter() - t0) / n)


def _machine_has_room() -> bool:
    """Whether the 1-minute load average is below the CPUs available plus one.

    A step split over the threads waits at every step for the slowest of them: on an
    oversubscribed machine, where any of them may be descheduled for a time slice, that
    made a design step of 64 steps at 64×64 some 40× slower than one thread (measured on 2
    cores at load 5–6, other jobs running), while on idle cores it is about twice as fast.
    The process's own threads count in the load, hence the margin of one.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        return os.getloadavg()[0] < cpus + 1
    except OSError:
        return True


def trajectory_bytes(shape: tuple[int, int, int, int], n_steps: int, itemsize: int) -> int:
    """Return the bytes of a stored trajectory of ``n_steps`` steps (unpadded estimate).

    Parameters
    ----------
    shape : tuple of int
        The state's ``(batch, species, y, x)``.
    n_steps : int
        Number of Euler steps ``T``.
    itemsize : int
        Bytes per value (4 or 8).

    Returns
    -------
    int
        ``(T + 1)·batch·species·y·(x + 2)·itemsize`` (rows are padded further to the
        vector length, by less than one vector).
    """
    B, S, ny, nx = shape
    return (n_steps + 1) * B * S * ny * (nx + 2) * itemsize


# ---------------------------------------------------------------------------- forward
def forward(network: ReactionNetwork, X0, rates, diffusion, flow, feed, n_steps: int,
            dt: float = 1.0, *, steps=None, flow_fields=None, clip: bool = True,
            c_max: float = C_MAX, stencil: str = "9-point",
            store: bool | None = None) -> Tape:
    """Run ``n_steps`` forward-Euler steps of the design dynamics and keep what the adjoint needs.

    Parameters
    ----------
    network : ReactionNetwork
        The reaction network (its structure; its own rates are not used).
    X0 : numpy.ndarray
        ``(batch, species, y, x)`` initial concentrations, float32 or float64; the engine
        runs in this dtype.
    rates : array_like
        ``(batch, reactions)`` or ``(reactions,)`` rate constants.
    diffusion : array_like
        ``(batch, species)`` or ``(species,)`` diffusion coefficients (cells²/s).
    flow : array_like
        ``(batch,)`` or a scalar: the flow rate ``f`` (1/s), used when ``flow_fields`` is
        ``None``.
    feed : array_like
        ``(batch, species)`` or ``(species,)`` feed concentrations.
    n_steps : int
        Number of Euler steps ``T ≥ 0``.
    dt : float, default 1.0
        Time step (s); ``max(D)·dt`` within the stencil's explicit limit, ``f·dt ≤ 2``.
    steps : sequence of int, optional
        The steps whose states the loss needs (``0`` is ``X0``); default ``[n_steps]``.
    flow_fields : array_like, optional
        ``(n_steps, batch or 1, 1 or species, y, x)``: the flow of each step (1/s),
        replacing ``f`` (the noisy flow ``f + ε_t``).
    clip : bool, default True
        Clip each new state to ``[0, c_max]``.
    c_max : float, default 10
        Upper clip (concentration units).
    stencil : str, default "9-point"
        A symmetric stencil of :data:`rdlab.system.STENCILS` (unit spacing).
    store : bool, optional
        Keep the whole trajectory (``True``) or checkpoints every ``⌈√T⌉`` steps
        (``False``); default: store when it takes at most half of
        :func:`rdlab.simulate.budget.memory_limit`.

    Returns
    -------
    Tape
        The requested states (``tape.states``) and the backward pass's record.

    Raises
    ------
    ParameterError
        For inputs of the wrong shape, dtype or value.
    StabilityError
        When ``D·dt`` or ``f·dt`` exceeds the explicit limits.
    """
    X0 = np.asarray(X0)
    if X0.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"initial state must be float32 or float64, not {X0.dtype}")
    inp = _inputs(network, X0, (rates, diffusion, flow, feed), n_steps, float(dt),
                  flow_fields, clip, float(c_max), stencil)
    T = inp.n_steps
    wanted = _check_steps([T] if steps is None else steps, T)
    if store is None:
        store = trajectory_bytes(X0.shape, T, X0.itemsize) <= memory_limit() // 2
    interval = T if store else max(1, math.isqrt(max(T - 1, 0)) + 1)
    if store:
        saved = _padded(X0.shape, T + 1, X0.dtype)
        masks = _masks(X0.shape, T, X0.dtype)
        _pad(X0, saved[0])
        _run_forward(inp, saved, masks, 0, T, 0)
        states = _stored_states(saved, wanted, X0.shape[3])
    else:
        states = np.empty((len(wanted), *X0.shape), dtype=X0.dtype)
        saved = _checkpoint_forward(inp, X0, interval, wanted, states)
        masks = _masks(X0.shape, 0, X0.dtype)
    return Tape(states=states, steps=wanted, stored=bool(store), interval=interval,
                _inputs=inp, _saved=saved, _masks=masks)


def _stored_states(saved: np.ndarray, wanted: tuple[int, ...], nx: int) -> np.ndarray:
    """Return the wanted states of a stored trajectory: a view when evenly spaced, else a copy.

    The view (no copy of the trajectory, which costs as much as a tenth of the forward
    pass) shares the tape's memory.
    """
    gaps = {b - a for a, b in zip(wanted[:-1], wanted[1:])}
    if len(gaps) > 1:
        return saved[list(wanted), ..., 1:nx + 1]
    start = wanted[0] if wanted else 0
    stop = wanted[-1] + 1 if wanted else 0
    return saved[start:stop:gaps.pop() if gaps else 1, ..., 1:nx + 1]


def _checkpoint_forward(inp: _Inputs, X0: np.ndarray, interval: int, wanted, states
                        ) -> np.ndarray:
    """Run segment by segment, keeping checkpoints; fill ``states`` at the wanted steps."""
    T = inp.n_steps
    n_seg = -(-T // interval) if T else 0
    saved = _padded(X0.shape, max(n_seg, 1), X0.dtype)
    buf = _padded(X0.shape, interval + 1, X0.dtype)
    masks = _masks(X0.shape, interval, X0.dtype)
    _pad(X0, buf[0])
    where = {t: k for k, t in enumerate(wanted)}
    if 0 in where:
        states[where[0]] = X0
    for s in range(n_seg):
        t0 = s * interval
        n = min(interval, T - t0)
        saved[s] = buf[0]
        _run_forward(inp, buf, masks, 0, n, t0)
        for t in range(t0 + 1, t0 + n + 1):
            if t in where:
                states[where[t]] = buf[t - t0, ..., 1:X0.shape[3] + 1]
        buf[0] = buf[n]
    if n_seg == 0:
        saved[0] = buf[0]
    return saved


# ---------------------------------------------------------------------------- backward
def _injections(tape: Tape, grad_states) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(slots (T + 1,), inj (n, B, S, ny, nxv))`` of the loss's ``dL/dX_t``.

    ``inj`` holds cell ``x`` in column ``x`` and ``nxv = ⌈nx / VL⌉·VL`` columns (the kernels
    read whole vectors): when ``nx`` is a multiple of ``VL`` that is ``grad_states`` itself
    if it has the engine's dtype and is C-contiguous, without a copy.
    """
    inp = tape._inputs
    dtype = tape.states.dtype
    slots = np.full(inp.n_steps + 1, -1, dtype=np.int64)
    nx = inp.shape[3]
    nxv = -(-nx // lanes(dtype)) * lanes(dtype)
    if grad_states is None:  # no state's gradient: nothing injected, one dummy slab read
        return slots, np.zeros((1, *inp.shape[:3], nxv), dtype=dtype)
    G = _checked_gradient(grad_states, (len(tape.steps), *inp.shape), "state gradients",
                          f" (one per requested step {list(tape.steps)})")
    for k, t in enumerate(tape.steps):
        slots[t] = k
    if tape.steps and nxv == nx and G.dtype == dtype and G.flags.c_contiguous:
        return slots, G
    inj = np.zeros((max(len(G), 1), *inp.shape[:3], nxv), dtype=dtype)
    if len(G):
        inj[..., :nx] = G
    return slots, inj


def _checked_gradient(grad, expected: tuple[int, ...], what: str, hint: str = ""
                      ) -> np.ndarray:
    """Return ``grad`` as an array; refuse another shape than ``expected``.

    The error names ``what`` (and adds ``hint``). Finiteness is checked on the results
    (:func:`_refuse_non_finite`): a non-finite ``dL/dX_t`` reaches them, and the results are
    smaller than a trajectory's gradients.
    """
    G = np.asarray(grad)
    if G.shape != expected:
        raise ParameterError(f"{what} have shape {G.shape}; expected {expected}{hint}")
    return G


def _finite(G: np.ndarray) -> bool:
    """Return whether every value of ``G`` is finite.

    One BLAS dot product first (half the time of :func:`numpy.isfinite`): a NaN or an
    infinity makes it non-finite; so may finite values whose squares overflow, hence the
    exact check then.
    """
    flat = G.ravel()
    if flat.dtype.kind == "f" and np.isfinite(np.dot(flat, flat)):
        return True
    return bool(np.all(np.isfinite(G)))


def _refuse_non_finite(result: Gradients, grad_states, grad_final) -> None:
    """Refuse non-finite ``dL/dX_t`` given to :func:`backward`, found through its results.

    A non-finite value of the loss's gradients reaches ``dL/dX_0`` or the sums of the
    parameter gradients (the adjoint is linear in them), so the inputs are scanned only when
    a result is not finite. Results that overflow from finite inputs are returned as they
    are, as before.
    """
    parts = (result.x0, result.rates, result.diffusion, result.flow, result.feed)
    if all(_finite(np.asarray(p)) for p in parts):
        return
    for grad, what in ((grad_states, "state gradients"),
                       (grad_final, "the final state's gradients")):
        if grad is not None and not _finite(np.asarray(grad)):
            raise ParameterError(f"{what} must be finite")


@dataclass
class _Work:
    """Buffers of the backward pass."""

    lam: np.ndarray
    tmp: np.ndarray
    G: np.ndarray  # (2, B, S, ny, nxp): g of a step (two: the row split overlaps two steps)
    A: np.ndarray  # (B, row blocks, S, VL) a step's diffusion sums per lane, kernel dtype
    acc: np.ndarray  # (B, n_products, VL) float64: the sums of all steps per lane
    GF: np.ndarray
    slots: np.ndarray
    inj: np.ndarray
    W: np.ndarray  # (1, nxp): 1 in the cells' columns 1 … nx, else 0 (masks the product sums)


def _work(tape: Tape, grad_states, grad_final=None) -> _Work:
    """Allocate the backward buffers; ``λ_T`` holds ``dL/dX_T`` (plus ``grad_final``)."""
    inp = tape._inputs
    B, S, ny, nx = inp.shape
    dtype = tape.states.dtype
    nxp = padded_width(nx, dtype)
    slots, inj = _injections(tape, grad_states)
    lam = np.zeros((B, S, ny, nxp), dtype=dtype)
    if slots[inp.n_steps] >= 0:
        lam[..., 1:nx + 1] = inj[slots[inp.n_steps], ..., :nx]
    if grad_final is not None:
        lam[..., 1:nx + 1] += _checked_gradient(grad_final, tuple(inp.shape),
                                                "the final state's gradients")
    if inp.kernels.mode == "constant":
        GF = np.zeros((1, B, 1, 1, nxp), dtype=dtype)
    else:
        GF = np.zeros((inp.n_steps, B, inp.fields.shape[2], ny, nxp), dtype=dtype)
    acc = np.zeros((B, inp.kernels.plan.n_products, lanes(dtype)))
    W = np.zeros((1, nxp), dtype=dtype)
    W[0, 1:nx + 1] = 1.0
    return _Work(lam=lam, tmp=np.zeros_like(lam), G=np.zeros((2, *lam.shape), dtype=dtype),
                 A=_aligned_zeros((B, -(-ny // ROW_BLOCK), S, lanes(dtype)), dtype), acc=acc,
                 GF=GF,
                 slots=slots, inj=inj, W=W)


def _aligned_zeros(shape: tuple[int, ...], dtype, align: int = 64) -> np.ndarray:
    """Return a C-contiguous array of zeros whose data starts at a multiple of ``align`` bytes.

    The per-lane sums are read and written as whole vectors at every chunk of every row:
    a vector straddling two cache lines costs twice (pass 1 runs about 1.4× longer when
    they are 16-byte aligned only).
    """
    itemsize = np.dtype(dtype).itemsize
    n = int(np.prod(shape))
    buf = np.zeros(n + align // itemsize, dtype=dtype)
    start = (-buf.ctypes.data % align) // itemsize
    return buf[start:start + n].reshape(shape)


def _run_backward(inp: _Inputs, w: _Work, traj: np.ndarray, masks: np.ndarray, n: int,
                  t_hi: int) -> None:
    """Take ``λ_{t_hi}`` back ``n`` steps; ``traj[0 … n]`` holds ``X_{t_hi − n … t_hi}``.

    ``masks[0 … n − 1]`` holds the clip masks of those steps.
    """
    if n <= 0:
        return
    k = inp.kernels
    fsel = 0 if k.mode == "constant" else 1
    kernels = {"samples": k.backward, "rows": k.backward_rows, "serial": k.backward_serial}
    with _timed_split(inp, "backward", n) as split:
        kernels[split](traj, masks, n, n, t_hi, w.lam, w.tmp, w.G, w.A, w.acc, inp.fields,
                       fsel, w.GF, fsel, w.slots, w.inj, w.W, inp.prm, inp.shape[3],
                       *_bands(split))


def backward(tape: Tape, grad_states, grad_final=None) -> Gradients:
    """Return the exact gradient of the discretised loss, given ``dL/dX_t`` per requested step.

    Parameters
    ----------
    tape : Tape
        The record of :func:`forward`.
    grad_states : array_like or None
        ``(len(tape.steps), batch, species, y, x)``: ``dL/dX_t`` for each requested state;
        ``None`` when the loss reads none of them but the final state (``grad_final``).
    grad_final : array_like or None
        ``(batch, species, y, x)``: a further ``dL/dX_T`` added to the final state's (a loss
        term on ``X_T`` alone, without a trajectory-sized array for it).

    Returns
    -------
    Gradients
        With respect to ``X0``, rates, diffusion, flow, feed (per sample) and the flow
        fields.

    Raises
    ------
    ParameterError
        If ``grad_states`` has the wrong shape or is not finite.
    """
    inp = tape._inputs
    w = _work(tape, grad_states, grad_final)
    T = inp.n_steps
    if tape.stored:
        _run_backward(inp, w, tape._saved, tape._masks, T, T)
    else:
        buf = _padded(inp.shape, tape.interval + 1, tape.states.dtype)
        masks = _masks(inp.shape, tape.interval, tape.states.dtype)
        for s in reversed(range(-(-T // tape.interval))):
            t0 = s * tape.interval
            n = min(tape.interval, T - t0)
            buf[0] = tape._saved[s]
            _run_forward(inp, buf, masks, 0, n, t0)
            _run_backward(inp, w, buf, masks, n, t0 + n)
    result = _gradients(tape, w)
    _refuse_non_finite(result, grad_states, grad_final)
    return result


def _gradients(tape: Tape, w: _Work) -> Gradients:
    """Map the accumulated sums to the parameter groups."""
    inp = tape._inputs
    plan = inp.kernels.plan
    B, S, _, nx = inp.shape
    tot = w.acc.sum(axis=2)
    P = plan.n_pairs
    rest = tot[:, P:].reshape(B, S, 4)  # g·∇²X, dt·φ·g, g, g·X per species
    feed = inp.feed.astype(np.float64)
    if inp.kernels.mode == "constant":
        flow = inp.dt * (feed * rest[..., 2] - rest[..., 3]).sum(axis=1)
        fields = None
    else:
        flow = np.zeros(B)
        GF = w.GF[..., 1:nx + 1]
        fields = GF.copy() if inp.fields.shape[1] == B else GF.sum(axis=1, keepdims=True)
    return Gradients(x0=w.lam[..., 1:nx + 1].copy(), rates=plan.unpack_rate_gradient(tot[:, :P],
                                                                                inp.dt),
                     diffusion=inp.dt * rest[..., 0], flow=flow, feed=rest[..., 1],
                     flow_fields=fields)
