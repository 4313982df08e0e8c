"""The fast engine: generated, vectorised, multi-threaded numba kernels (CPU).

For each network a kernel is generated from its reactant matrix and stoichiometry (see
:mod:`rdlab.simulate.fast_codegen`) and compiled once per process (memoised on the network's
structure, the stencil and the dtype). It integrates the same model as
:mod:`rdlab.simulate.reference` with forward Euler::

    dX/dt = S·v(X) + D∘∇²X + f·(x_feed − X)        v_r = k_r ∏_i X_i^{R_ir}

on the periodic grid, every sample of the batch with its own rates, diffusion, flow and feed.
Samples are spread over numba's threads (``numba.set_num_threads``, default all cores): each
thread takes whole samples, so a batch smaller than the number of threads leaves threads
idle. A sample takes a chunk of steps (a few hundred) while its grid stays in the core's
cache; a grid too big for the cache is swept several steps at a time (temporal blocking, see
:func:`auto_depth`). Between chunks progress is reported and Ctrl-C is honoured.

Well-mixed systems (``grid=None``) are supported too, as a 1×1 grid without diffusion (one
useful lane per SIMD vector, so not fast; for stiff well-mixed kinetics the ``'ode'`` engine
is the better choice). Flow noise is not supported (use the ``'numpy'`` or ``'torch'``
engine).

Sub-normal numbers are flushed to zero while the kernel runs (x86 FTZ/DAZ), which differs
from the reference only for |X| < 1e-308 (float64) / 1e-38 (float32).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rdlab.errors import ParameterError
from rdlab.simulate import guard
from rdlab.simulate.driver import drive
from rdlab.simulate.fast_codegen import VECTOR_BYTES, compile_kernel, lanes
from rdlab.simulate.trackers import RunawayGuard, StepCounter, Storage
from rdlab.system import System

__all__ = ["FastStepper", "run", "warm_up"]

#: Cell-updates per kernel call between which progress is reported and Ctrl-C is honoured.
CHUNK_CELL_UPDATES = 3e8
#: Time steps per sweep over a grid too big for the per-core cache (temporal blocking).
BLOCKED_DEPTH = 4
MAX_DEPTH = 8


def _l2_bytes() -> int:
    """Per-core L2 cache size (Linux sysfs), 1 MiB when unknown."""
    try:
        from pathlib import Path

        for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            if (index / "level").read_text().strip() == "2":
                text = (index / "size").read_text().strip().upper()
                scale = {"K": 1024, "M": 1024**2}.get(text[-1], 1)
                return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return 1024**2


#: Bytes of a sample's two states that still count as cache resident (half the L2).
CACHE_BUDGET = _l2_bytes() // 2


def _aligned_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """Zeros whose first element is aligned to the SIMD vector size."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    extra = VECTOR_BYTES // dtype.itemsize
    raw = np.zeros(n + extra, dtype=dtype)
    start = (-raw.ctypes.data % VECTOR_BYTES) // dtype.itemsize
    return raw[start:start + n].reshape(shape)


def _padded_width(nx: int, vl: int) -> tuple[int, int]:
    """``(nxv, nxp)``: cells rounded up to whole vectors, and the full padded row length."""
    nxv = -(-nx // vl) * vl
    return nxv, nxv + 2 * vl


def _pack(state: np.ndarray, bufs: np.ndarray, vl: int) -> None:
    """Copy ``state (batch, species, ny, nx)`` into the padded buffers.

    It fills rows ``0..ny`` of each sample's block of ``bufs (batch, rows, species, nxp)``
    (padded layout with periodic ghosts).
    """
    ny, nx = state.shape[-2:]
    rows = state.transpose(0, 2, 1, 3)
    bufs[:, :ny, :, vl:vl + nx] = rows
    bufs[:, :ny, :, vl - 1] = rows[..., nx - 1]
    bufs[:, :ny, :, vl + nx] = rows[..., 0]


def _unpack(bufs: np.ndarray, which: np.ndarray, ny: int, nx: int, vl: int) -> np.ndarray:
    """Return the current state ``(batch, species, ny, nx)`` from the padded buffers.

    Sample ``b`` lives in rows ``which[b]·ny ..`` of its block.
    """
    if np.all(which == which[0]):  # the usual case: every sample took the same steps
        cur = int(which[0])
        return bufs[:, cur * ny:(cur + 1) * ny, :, vl:vl + nx].transpose(0, 2, 1, 3).copy()
    out = np.empty((bufs.shape[0], bufs.shape[2], ny, nx), dtype=bufs.dtype)
    for b, cur in enumerate(which):
        out[b] = bufs[b, cur * ny:(cur + 1) * ny, :, vl:vl + nx].transpose(1, 0, 2)
    return out


def auto_depth(ny: int, row_bytes: int) -> int:
    """Return the number of time steps per sweep over a sample's grid.

    One while both states of the sample fit in the per-core cache (measured fastest);
    otherwise :data:`BLOCKED_DEPTH` steps per sweep in a row wavefront, so that the grid is
    streamed through the cache once per that many steps, as long as the redundant halo rows
    (``depth − 1`` per step) stay few.

    Parameters
    ----------
    ny : int
        Rows of the grid.
    row_bytes : int
        Bytes of one padded row of all species.

    Returns
    -------
    int
        The depth, ≥ 1.
    """
    if 2 * ny * row_bytes <= CACHE_BUDGET:
        return 1
    return int(max(1, min(BLOCKED_DEPTH, ny // 16)))


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
    runaway_limit: float = guard.RUNAWAY_LIMIT,
) -> np.ndarray:
    """Integrate with forward Euler for ``n_steps`` steps of ``dt``.

    Every ``check_every`` steps and at each snapshot every sample is checked for NaN/Inf or
    values beyond ``runaway_limit``; a sample that blew up is replayed from its last stored
    state one step at a time to find the first bad step.

    Parameters
    ----------
    system : System
        The system (no flow noise).
    state : numpy.ndarray
        Initial state, :meth:`System.state_shape`.
    dt : float
        Time step; must be stable.
    n_steps : int
        Number of steps.
    snapshot_steps : sequence of int
        Steps to keep: sorted, unique, within ``0..n_steps``; 0 is the initial state.
    dtype : numpy dtype, default numpy.float64
        float32 or float64: the state and all coefficients are in that precision.
    check_every : int, default 64
        Steps between blow-up checks.
    progress : callable, optional
        ``progress(n)``, called with the number of steps done since its previous call.
    runaway_limit : float, default RUNAWAY_LIMIT
        A concentration beyond ±this counts as a blow-up.

    Returns
    -------
    numpy.ndarray
        The states after each snapshot step, shape ``(time, batch, species, ny, nx)``
        (``(time, batch, species)`` well mixed), in ``dtype``.

    Raises
    ------
    SimulationError
        Naming the sample that blew up, the first bad step and its parameters.
    ParameterError
        For a bad step count, snapshot steps, dtype, state shape or flow noise.
    StabilityError
        If ``dt`` is unstable.
    """
    return _run(system, state, dt, n_steps, snapshot_steps, dtype=dtype,
                check_every=check_every, progress=progress, limit=runaway_limit)


class _Buffers:
    """A batch packed for the kernel: padded rows, coefficients and per-sample status."""

    def __init__(self, system: System, state: np.ndarray, dt: float, dtype, depth):
        self.well_mixed = system.grid is None
        grid_state = state[:, :, None, None] if self.well_mixed else state
        batch, self.n_s, self.ny, self.nx = grid_state.shape
        stencil = "5-point" if self.well_mixed else system.grid.stencil
        plan, self.kernel = compile_kernel(system.network, stencil)
        self.prm = plan.pack(system.rates, system.diffusion, system.flow, system.feed,
                             float(dt), None if self.well_mixed else float(system.grid.dx),
                             stencil).astype(dtype)
        self.vl = lanes(dtype)
        _, nxp = _padded_width(self.nx, self.vl)
        if depth is None:
            depth = auto_depth(self.ny, self.n_s * nxp * dtype.itemsize)
        self.depth = int(max(1, min(depth, MAX_DEPTH)))
        rings = 3 * (self.depth - 1)
        self.bufs = _aligned_zeros((batch, 2 * self.ny + rings, self.n_s, nxp), dtype)
        _pack(grid_state.astype(dtype, copy=False), self.bufs, self.vl)
        self.status = np.zeros((batch, 3), dtype=np.int64)
        self.status[:, 0] = -1

    def advance(self, n: int, step0: int, check_every: int, limit: float) -> None:
        """Run the kernel for ``n`` steps from ``step0`` (blow-ups recorded in ``status``)."""
        self.kernel(self.bufs, self.prm, self.status, n, step0, int(check_every), self.depth,
                    self.ny, self.nx, self.vl, float(limit))

    def state(self, samples=slice(None)) -> np.ndarray:
        """Return the current grid state ``(batch, species, ny, nx)`` of ``samples``."""
        return _unpack(self.bufs[samples], self.status[samples, 2], self.ny, self.nx, self.vl)


def _run(system, state, dt, n_steps, snapshot_steps, *, dtype=np.float64, check_every=64,
         progress=None, depth: int | None = None, limit=guard.RUNAWAY_LIMIT) -> np.ndarray:
    """Run :func:`run` with an optional sweep depth (see :func:`auto_depth`)."""
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ParameterError(f"number of steps must be a whole number ≥ 0, got {n_steps!r}")
    steps = [int(s) for s in snapshot_steps]
    if steps != sorted(set(steps)) or (steps and (steps[0] < 0 or steps[-1] > n_steps)):
        raise ParameterError(f"snapshot steps must be sorted, unique and within 0..{n_steps}, "
                             f"got {list(snapshot_steps)!r}")
    policy = RunawayGuard(limit, check_every)
    stepper = FastStepper(system, state, dt, dtype, policy, depth=depth)
    storage = Storage(steps, stepper.dtype)
    trackers = [storage] + ([StepCounter(progress)] if progress is not None else [])
    drive(stepper, system.batch_size, int(n_steps), dt, trackers)
    if storage.data is None:
        return np.empty((0,) + system.state_shape(), dtype=stepper.dtype)
    return storage.data


class FastStepper:
    """A batch on the fast engine for :func:`rdlab.simulate.driver.drive`.

    It holds the packed buffers, the guard (checked inside the kernel every
    ``check_every`` steps; a blow-up is replayed from the last state read out, one step at
    a time, to name the first bad step), and the sample indices of the original batch (for
    messages).

    Parameters
    ----------
    system : System
        The system (no flow noise).
    state : numpy.ndarray
        Initial state, :meth:`System.state_shape`.
    dt : float
        Time step; must be stable.
    dtype : numpy dtype
        float32 or float64.
    policy : RunawayGuard
        The blow-up policy.
    depth : int, optional
        Time steps per sweep (default :func:`auto_depth`).

    Raises
    ------
    ParameterError
        For another dtype, flow noise or a state of the wrong shape.
    StabilityError
        If ``dt`` is unstable.
    SimulationError
        If the initial state already counts as a blow-up.
    """

    def __init__(self, system: System, state: np.ndarray, dt: float, dtype,
                 policy: RunawayGuard, depth: int | None = None):
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ParameterError(f"the fast engine runs in float32 or float64, not {dtype}")
        if system.noise is not None:
            raise ParameterError(
                "the fast engine does not support flow noise; use engine 'numpy' or 'torch'"
            )
        system.check_time_step(dt)
        state = np.asarray(state)
        expected = system.state_shape()
        if state.shape != expected:
            raise ParameterError(f"state has shape {state.shape}; expected {expected}")
        b0 = guard.first_bad_sample(state, policy.limit)
        if b0 is not None:
            guard.raise_blow_up(state[b0], b0, 0, None, guard.describe_sample(system, b0),
                                policy.limit, exact=True)
        self.full_system = system
        self.system = system
        self.index = np.arange(system.batch_size)
        self.dt, self.dtype, self.policy, self.depth = dt, dtype, policy, depth
        self.step = 0
        self._build(state)

    def _build(self, state: np.ndarray) -> None:
        """Pack ``state`` for the kernel and choose the chunk of steps per call."""
        self.buf = _Buffers(self.system, state, self.dt, self.dtype, self.depth)
        self.origin = (self.step, state)  # the latest state read out: replays start there
        cells = self.buf.bufs.shape[0] * self.buf.ny * self.buf.nx
        chunk = max(1, int(CHUNK_CELL_UPDATES // max(1, cells)))
        every = self.policy.check_every
        self.chunk = chunk - chunk % every if chunk >= every else chunk

    def state(self) -> np.ndarray:
        """Return the current state ``(batch, species[, y, x])``; replays start from it."""
        out = self.buf.state()
        if self.buf.well_mixed:
            out = out[:, :, 0, 0].copy()
        self.origin = (self.step, out)
        return out

    def keep(self, idx: np.ndarray) -> None:
        """Continue with the local samples ``idx`` only (the buffers are packed again)."""
        current = self.state()[idx]
        self.system = self.system.select(idx)
        self.index = self.index[idx]
        self._build(current)

    def advance(self, n: int, step0: int) -> tuple[np.ndarray, np.ndarray]:
        """Take ``n`` steps from ``step0`` (see :class:`~rdlab.simulate.driver.Stepper`).

        Parameters
        ----------
        n : int
            Number of steps.
        step0 : int
            The step the batch is at.

        Returns
        -------
        tuple of numpy.ndarray
            ``(local indices, steps)`` of the samples that blew up under the ``"drop"``
            policy (empty when none did).

        Raises
        ------
        SimulationError
            Under the ``"raise"`` policy, naming the first bad step.
        """
        buf, every, limit = self.buf, self.policy.check_every, self.policy.limit
        buf.advance(n, step0, every, limit)
        self.step = step0 + n
        bad = np.flatnonzero(buf.status[:, 0] >= 0)
        if bad.size == 0 or self.policy.on_blow_up == "drop":
            return bad, buf.status[bad, 0].copy()
        b = int(bad[np.argmin(buf.status[bad, 0])])
        found, good = int(buf.status[b, 0]), int(buf.status[b, 1])
        if every > 1:  # replay from the last state read out, checking every step
            start_step, start = self.origin
            found, sample_state = _first_bad_step(self.system.select([b]), start[b:b + 1],
                                                  start_step, found, self.dt, self.dtype,
                                                  buf.depth, limit)
        else:
            sample_state = buf.state(slice(b, b + 1))[0]
        g = int(self.index[b])
        guard.raise_blow_up(sample_state, g, found, good,
                            guard.describe_sample(self.full_system, g), limit, exact=True)


def _first_bad_step(system: System, state: np.ndarray, start: int, found: int, dt: float,
                    dtype, depth: int, limit: float) -> tuple[int, np.ndarray]:
    """Replay one sample from step ``start`` up to ``found``, checking every step.

    ``found`` is where a check saw it bad; the result is the first bad step and the state
    there.
    """
    buf = _Buffers(system, state, dt, dtype, depth)
    buf.advance(found - start, start, 1, limit)
    step = int(buf.status[0, 0])
    if step < 0:  # not reproduced (cannot happen for a deterministic kernel): the check point
        step = found
    return step, buf.state(slice(0, 1))[0]


def warm_up(system: System, dtype=np.float64) -> None:
    """Compile the kernel for ``system``'s network, stencil and ``dtype``.

    A 1-step run on a one-sample copy, so that later timings exclude compilation.

    Parameters
    ----------
    system : System
        The system whose kernel to compile.
    dtype : numpy dtype, default numpy.float64
        float32 or float64.
    """
    small = system.select([0])
    shape = small.state_shape()
    _run(small, np.zeros(shape), 1e-9, 1, [1], dtype=dtype)
