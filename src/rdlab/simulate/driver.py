"""The one loop of every stepping engine: advance in chunks, call trackers, stop samples.

An engine supplies a :class:`Stepper` (its state in its own layout, advanced ``n`` forward-
Euler steps at a time with the blow-up guard inside); :func:`drive` decides where to stop
(the next step a tracker is due, or the engine's chunk), hands the trackers a
:class:`~rdlab.simulate.trackers.RunView` and removes the samples they stop (or the guard
drops) from the stepper's batch. Stopped samples keep their state (NaN when dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rdlab.errors import ParameterError
from rdlab.simulate.trackers import RunView, Tracker

__all__ = ["Stepper", "drive"]


class Stepper(Protocol):
    """A batch being integrated by one engine.

    Attributes
    ----------
    chunk : int
        The engine's preferred number of steps per :meth:`advance` call.
    """

    chunk: int

    def advance(self, n: int, step0: int) -> tuple[np.ndarray, np.ndarray]:
        """Take ``n`` steps from step ``step0``; the guard checks inside and at the end.

        Parameters
        ----------
        n : int
            Number of steps.
        step0 : int
            The step the batch is at.

        Returns
        -------
        tuple of numpy.ndarray
            ``(local indices, steps)`` of the samples that blew up and the checks that
            found them when the guard's policy is ``"drop"`` (empty arrays when none did;
            it raises under ``"raise"``).
        """
        ...

    def state(self) -> np.ndarray:
        """Return the current ``(batch, species[, y, x])`` in the run's dtype."""
        ...

    def keep(self, idx: np.ndarray) -> None:
        """Continue with the local samples ``idx`` only."""
        ...


def _stop_mask(request, batch: int, tracker: Tracker) -> np.ndarray | None:
    """Return a tracker's stop request as a ``(batch,)`` mask (None: stop nothing)."""
    if request is None or request is False:
        return None
    if request is True:
        return np.ones(batch, bool)
    mask = np.asarray(request)
    if mask.dtype != bool or mask.shape != (batch,):
        raise ParameterError(f"tracker {type(tracker).__name__} asked to stop with "
                             f"{request!r}; expected True or a ({batch},) boolean mask")
    return mask if mask.any() else None


class _Schedule:
    """When each tracker is due."""

    def __init__(self, trackers: Sequence[Tracker], n_steps: int):
        self.trackers = list(trackers)
        self.n_steps = n_steps
        self.explicit = [set(int(s) for s in t.due_steps(n_steps)) for t in self.trackers]
        steps = set().union(*self.explicit) if self.explicit else set()
        self.sorted_explicit = sorted(s for s in steps if 0 <= s <= n_steps)

    def due(self, i: int, step: int, check_point: bool) -> bool:
        """Tell whether tracker ``i`` is due at ``step``."""
        t = self.trackers[i]
        if step in self.explicit[i]:
            return True
        if t.every_check_point and check_point:
            return True
        return t.interval is not None and step % t.interval == 0

    def next_stop(self, done: int) -> int:
        """Return the next step after ``done`` at which some tracker is due (≤ n_steps)."""
        nxt = self.n_steps
        j = np.searchsorted(self.sorted_explicit, done, side="right")
        if j < len(self.sorted_explicit):
            nxt = min(nxt, self.sorted_explicit[j])
        for t in self.trackers:
            if t.interval is not None:
                nxt = min(nxt, (done // t.interval + 1) * t.interval)
        return nxt


def drive(stepper: Stepper, batch: int, n_steps: int, dt: float,
          trackers: Sequence[Tracker], started: bool = False) -> np.ndarray:
    """Run ``stepper`` for ``n_steps`` with ``trackers``.

    Parameters
    ----------
    stepper : Stepper
        The engine's batch.
    batch : int
        Number of samples.
    n_steps : int
        Number of steps.
    dt : float
        Time step (for the trackers' view).
    trackers : sequence of Tracker
        Called when due; they may stop samples.
    started : bool, default False
        The engine has already called the trackers' ``start``.

    Returns
    -------
    numpy.ndarray
        ``stopped (batch,)``: the step at which each sample was stopped (by a tracker or a
        dropped blow-up), −1 if never.
    """
    schedule = _Schedule(trackers, n_steps)
    if not started:
        for t in trackers:
            t.start(n_steps, batch)
    active = np.arange(batch)  # global indices of the stepper's samples
    stopped = np.full(batch, -1, dtype=np.int64)
    frozen: np.ndarray | None = None  # full-batch state holding stopped samples

    def full_state() -> np.ndarray:
        """Return the whole batch's state, stopped samples frozen."""
        nonlocal frozen
        if active.size == batch and frozen is None:
            return stepper.state()
        cur = stepper.state() if active.size else None
        if frozen is None:
            frozen = np.empty((batch,) + cur.shape[1:], dtype=cur.dtype)
        out = frozen.copy()
        if cur is not None:
            out[active] = cur
        return out

    def retire(local: np.ndarray, step, nan: bool) -> None:
        """Freeze the local samples ``local`` (as NaN when dropped) and stop stepping them."""
        nonlocal active, frozen
        if local.size == 0:
            return
        cur = stepper.state()
        if frozen is None:
            frozen = np.empty((batch,) + cur.shape[1:], dtype=cur.dtype)
        frozen[active[local]] = np.nan if nan else cur[local]
        stopped[active[local]] = step
        keep = np.setdiff1d(np.arange(active.size), local)
        active = active[keep]
        if keep.size:
            stepper.keep(keep)

    def visit(step: int, check_point: bool) -> None:
        """Call the trackers due at ``step`` and retire the samples they stop."""
        due = [i for i in range(len(trackers)) if schedule.due(i, step, check_point)]
        if not due:
            return
        mask = np.zeros(batch, bool)
        mask[active] = True
        view = RunView(step, dt, mask, full_state)
        stop = np.zeros(batch, bool)
        for i in due:
            req = _stop_mask(trackers[i].visit(view), batch, trackers[i])
            if req is not None:
                stop |= req
        stop &= mask
        if stop.any():
            local = np.flatnonzero(stop[active])
            retire(local, step, nan=False)

    try:
        visit(0, True)
        done = 0
        while done < n_steps:
            if active.size:
                target = min(schedule.next_stop(done), done + max(1, int(stepper.chunk)))
                dropped, found = stepper.advance(target - done, done)
                done = target
                retire(np.asarray(dropped, dtype=np.int64), found, nan=True)
                visit(done, True)
            else:  # every sample stopped: the remaining calls see the frozen states
                done = schedule.next_stop(done)
                visit(done, False)
    finally:
        mask = np.zeros(batch, bool)
        mask[active] = True
        end = RunView(n_steps, dt, mask, full_state)
        for t in trackers:
            t.finish(end)
    return stopped


class PythonStepper:
    """A stepper whose steps are Python calls (the numpy and torch engines).

    The guard checks every ``check_every`` steps (absolute) and at the end of each call,
    keeping the last good state and random-number state; a blow-up under ``"raise"`` is
    replayed from there one step at a time (the whole batch, so a noisy flow draws the same
    numbers) and reported at its first bad step. Subclasses define the step and the array
    operations.

    Parameters
    ----------
    system : System
        The system run.
    x : array
        The initial state, in the engine's array type.
    policy : RunawayGuard
        The blow-up policy.

    Raises
    ------
    SimulationError
        If the initial state already counts as a blow-up.
    """

    def __init__(self, system, x, policy) -> None:
        from rdlab.simulate import guard

        self._guard = guard
        self.full_system = system
        self.system = system
        self.index = np.arange(system.batch_size)
        self.policy = policy
        self.chunk = policy.check_every
        self.step = 0
        self.x = x
        bad = self._bad(x)
        if bad.any():
            b = int(np.argmax(bad))
            guard.raise_blow_up(self._numpy(x[b]), b, 0, None,
                                guard.describe_sample(system, b), policy.limit, exact=True)
        self.good = (0, self._copy(x), self._rng_state())

    # -- to be defined by the engine
    def _step(self, x):
        """Return the state one step on."""
        raise NotImplementedError

    def _steps(self, x, n: int):
        """Return the state ``n`` steps on (an engine may take them in one call)."""
        for _ in range(n):
            x = self._step(x)
        return x

    def _bad(self, x) -> np.ndarray:
        """Return a ``(batch,)`` mask of the samples that blew up."""
        raise NotImplementedError

    def _numpy(self, x) -> np.ndarray:
        """Return ``x`` as a NumPy array."""
        raise NotImplementedError

    def _copy(self, x):
        """Return a copy of ``x``."""
        return x.copy()

    def _select(self, x, idx: np.ndarray):
        """Return the samples ``idx`` of ``x``."""
        return x[idx]

    def _rng_state(self):
        """Return the noise generator's state (None without noise)."""
        return None

    def _set_rng_state(self, state) -> None:
        """Restore the noise generator's state."""

    def _subset(self, idx: np.ndarray) -> None:
        """Follow a smaller batch (parameters per sample)."""

    # -- the Stepper protocol
    def state(self) -> np.ndarray:
        """Return the current state as a NumPy array."""
        return self._numpy(self.x)

    def keep(self, idx: np.ndarray) -> None:
        """Continue with the local samples ``idx`` only (the last good state follows)."""
        self.system = self.system.select(idx)
        self.index = self.index[idx]
        self._subset(idx)
        self.x = self._select(self.x, idx)
        self.good = (self.step, self._copy(self.x), self._rng_state())

    def advance(self, n: int, step0: int) -> tuple[np.ndarray, np.ndarray]:
        """Take ``n`` steps from ``step0``, checking for blow-ups (see :class:`Stepper`)."""
        every = self.policy.check_every
        x, step, end = self.x, step0, step0 + n
        while step < end:  # one stretch up to each check (a multiple of every, or the end)
            nxt = min(end, (step // every + 1) * every)
            x = self._steps(x, nxt - step)
            step = nxt
            bad = self._bad(x)
            if bad.any():
                if self.policy.on_blow_up == "drop":
                    self.x, self.step = x, step
                    idx = np.flatnonzero(bad)
                    return idx, np.full(idx.size, step, dtype=np.int64)
                self._raise_first_bad(step, int(np.argmax(bad)))
            self.good = (step, self._copy(x), self._rng_state())
        self.x, self.step = x, end
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)

    def _raise_first_bad(self, found: int, sample: int) -> None:
        """Replay from the last good state and raise at the first bad step."""
        guard, limit = self._guard, self.policy.limit
        at, x, rng_state = self.good
        self._set_rng_state(rng_state)
        x = self._copy(x)
        while at < found:
            x = self._step(x)
            at += 1
            bad = self._bad(x)
            if bad.any():
                b = int(np.argmax(bad))
                g = int(self.index[b])
                guard.raise_blow_up(self._numpy(x[b]), g, at, self.good[0],
                                    guard.describe_sample(self.full_system, g), limit,
                                    exact=True)
        g = int(self.index[sample])
        guard.raise_blow_up(self._numpy(x[sample]), g, found, self.good[0],
                            guard.describe_sample(self.full_system, g), limit)
