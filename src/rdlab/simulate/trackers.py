"""Trackers: everything that happens *during* a run, outside the engines' equations.

A tracker is handed to the front door (``simulate(..., trackers=[...])``) and the engine
calls it at check points (py-pde's trackers are the model). Each tracker says when it wants
to be called:

* ``every_check_point = True``: at every check point the engine makes (the end of each
  chunk of steps: every few hundred steps for the fast engine, every 64 for numpy/torch),
  e.g. a progress bar;
* ``interval = n``: every ``n`` steps (the engine stops there);
* :meth:`Tracker.due_steps`: explicit steps (snapshots).

:meth:`Tracker.visit` receives a :class:`RunView` (step, the whole batch's state, which
samples are still running) and may return a request to stop: ``True`` (every sample) or a
boolean mask over the batch. A stopped sample keeps its state from then on (its remaining
snapshots are that state); the run ends when every sample has stopped. Trackers run in
Python between engine calls, never inside a compiled kernel.

The blow-up guard is the one tracker the engines execute themselves (they check inside their
loops, and replay to find the first bad step): :class:`RunawayGuard` only carries its policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rdlab.errors import ParameterError
from rdlab.simulate import guard

__all__ = ["CallbackTracker", "ProgressBar", "RunView", "RunawayGuard", "StepCounter",
           "Storage", "StopRequest", "Tracker"]

#: What :meth:`Tracker.visit` may return: nothing, ``True`` (stop all), or a (batch,) mask.
StopRequest = bool | np.ndarray | None


class RunView:
    """What a tracker sees at a check point.

    Attributes
    ----------
        step: steps done (0 = the initial state).
        dt: the time step (time units), so ``step·dt`` is the model time.
        active: ``(batch,)`` bool, the samples still running (stopped ones are frozen).
    The state ``(batch, species[, y, x])`` in the run's dtype is built on first access
    (the engine's layout may differ), so trackers that do not read it cost nothing.
    """

    def __init__(self, step: int, dt: float, active: np.ndarray,
                 state_fn: Callable[[], np.ndarray]):
        self.step = int(step)
        self.dt = float(dt)
        self.active = active
        self._state_fn = state_fn
        self._state: np.ndarray | None = None

    @property
    def time(self) -> float:
        return self.step * self.dt

    @property
    def state(self) -> np.ndarray:
        if self._state is None:
            self._state = self._state_fn()
        return self._state


class Tracker:
    """Base class: override :meth:`visit` (and optionally :meth:`start`, :meth:`finish`)."""

    #: Steps between calls (the engine stops there); ``None``: no regular calls.
    interval: int | None = None
    #: Also called at every check point the engine chooses (end of each chunk of steps).
    every_check_point: bool = False

    def start(self, n_steps: int, batch_size: int) -> None:
        """Called once before the run (``n_steps`` steps for ``batch_size`` samples)."""

    def due_steps(self, n_steps: int) -> Sequence[int]:
        """Explicit steps at which this tracker must be called (besides ``interval``)."""
        return ()

    def visit(self, view: RunView) -> StopRequest:
        """Called at a check point; return ``True`` or a (batch,) mask to stop samples."""
        return None

    def sample_done(self, n: int = 1) -> None:
        """Engines that finish sample by sample (ode) report each finished sample here."""

    def finish(self, view: RunView) -> None:
        """Called once at the end (after the last visit), also when every sample stopped."""


def _check_interval(interval) -> int:
    if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) \
            or interval < 1:
        raise ParameterError(f"tracker interval must be a whole number ≥ 1, got {interval!r}")
    return int(interval)


class CallbackTracker(Tracker):
    """``fn(view) -> StopRequest`` every ``interval`` steps (``None``: every check point)."""

    def __init__(self, fn: Callable[[RunView], StopRequest], interval: int | None = None):
        self.fn = fn
        self.interval = None if interval is None else _check_interval(interval)
        self.every_check_point = interval is None

    def visit(self, view: RunView) -> StopRequest:
        return self.fn(view)


class Storage(Tracker):
    """Keeps the states at ``steps`` (sorted, unique): ``data (time, batch, species, …)``
    in ``dtype``. A stopped sample's later snapshots are its frozen state.
    """

    def __init__(self, steps: Sequence[int], dtype=np.float64):
        self.steps = [int(s) for s in steps]
        self.dtype = np.dtype(dtype)
        self.data: np.ndarray | None = None

    def due_steps(self, n_steps: int) -> Sequence[int]:
        return self.steps

    def visit(self, view: RunView) -> None:
        if view.step not in self.steps:
            return
        state = view.state
        if self.data is None:
            self.data = np.empty((len(self.steps),) + state.shape, dtype=self.dtype)
        self.data[self.steps.index(view.step)] = state


class ProgressBar(Tracker):
    """A tqdm bar over the steps (or, for engines that finish sample by sample, samples)."""

    every_check_point = True

    def __init__(self, desc: str = "simulate", unit: str = "step"):
        self.desc, self.unit = desc, unit
        self.bar = None
        self._done = 0

    def start(self, n_steps: int, batch_size: int) -> None:
        from tqdm.auto import tqdm

        total = batch_size if self.unit == "sample" else n_steps
        self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, disable=None,
                        leave=False)
        self._done = 0

    def visit(self, view: RunView) -> None:
        if self.unit == "step" and self.bar is not None and view.step > self._done:
            self.bar.update(view.step - self._done)
            self._done = view.step

    def sample_done(self, n: int = 1) -> None:
        if self.unit == "sample" and self.bar is not None:
            self.bar.update(n)

    def finish(self, view: RunView) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepCounter(Tracker):
    """``progress(n)`` with the steps done since its previous call (the engines' old
    ``progress`` argument).
    """

    every_check_point = True

    def __init__(self, progress: Callable[[int], None]):
        self.progress = progress
        self._done = 0

    def visit(self, view: RunView) -> None:
        if view.step > self._done:
            self.progress(view.step - self._done)
            self._done = view.step


@dataclass(frozen=True)
class RunawayGuard(Tracker):
    """The NaN/Inf/runaway guard's policy; the engines run the check itself.

    limit: a concentration beyond ±this counts as a blow-up (NaN/Inf always do).
    check_every: steps between checks (also checked at every tracker call and the end).
    on_blow_up: ``"raise"`` — :class:`~rdlab.errors.SimulationError` naming the sample,
        its parameters and the first bad step; ``"drop"`` — the sample is stopped with NaN
        from the check that found it on, and the others go on.
    """

    limit: float = guard.RUNAWAY_LIMIT
    check_every: int = 64
    on_blow_up: str = "raise"

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", guard.check_limit(self.limit))
        if isinstance(self.check_every, bool) or not isinstance(self.check_every,
                                                                 (int, np.integer)) \
                or self.check_every < 1:
            raise ParameterError(f"check_every must be a whole number ≥ 1, got "
                                 f"{self.check_every!r}")
        if self.on_blow_up not in ("raise", "drop"):
            raise ParameterError(f"on_blow_up must be 'raise' or 'drop', got "
                                 f"{self.on_blow_up!r}")

