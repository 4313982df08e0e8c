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

    The state is built on first access (the engine's layout may differ), so trackers that
    do not read it cost nothing.

    Parameters
    ----------
    step : int
        Steps done (0 = the initial state).
    dt : float
        The time step (time units), so ``step·dt`` is the model time.
    active : numpy.ndarray
        ``(batch,)`` bool, the samples still running (stopped ones are frozen).
    state_fn : callable
        Returns the state ``(batch, species[, y, x])`` in the run's dtype.
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
        """Model time ``step·dt``."""
        return self.step * self.dt

    @property
    def state(self) -> np.ndarray:
        """The state ``(batch, species[, y, x])`` in the run's dtype, built on first access."""
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
        """Prepare for a run; called once before it.

        Parameters
        ----------
        n_steps : int
            Number of steps of the run.
        batch_size : int
            Number of samples.
        """

    def due_steps(self, n_steps: int) -> Sequence[int]:
        """Return the explicit steps at which this tracker must be called.

        Parameters
        ----------
        n_steps : int
            Number of steps of the run.

        Returns
        -------
        sequence of int
            Steps besides those of ``interval``; none by default.
        """
        return ()

    def visit(self, view: RunView) -> StopRequest:
        """Look at the run at a check point, and maybe stop samples.

        Parameters
        ----------
        view : RunView
            The run at this check point.

        Returns
        -------
        bool, numpy.ndarray or None
            ``True`` (stop every sample) or a ``(batch,)`` boolean mask of samples to stop;
            ``None`` or ``False`` to go on.
        """
        return None

    def sample_done(self, n: int = 1) -> None:
        """Count finished samples; engines that finish sample by sample (ode) call it.

        Parameters
        ----------
        n : int, default 1
            Number of samples finished.
        """

    def finish(self, view: RunView) -> None:
        """End the run; called once after the last visit, also when every sample stopped.

        Parameters
        ----------
        view : RunView
            The run at its end.
        """


def _check_interval(interval) -> int:
    """Return ``interval`` as an int ≥ 1, or raise a ParameterError naming it."""
    if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) \
            or interval < 1:
        raise ParameterError(f"tracker interval must be a whole number ≥ 1, got {interval!r}")
    return int(interval)


class CallbackTracker(Tracker):
    """Call a function every ``interval`` steps.

    Parameters
    ----------
    fn : callable
        ``fn(view) -> StopRequest``, called with the :class:`RunView`.
    interval : int, optional
        Steps between calls, ≥ 1; ``None`` calls at every check point.

    Raises
    ------
    ParameterError
        If ``interval`` is not a whole number ≥ 1.
    """

    def __init__(self, fn: Callable[[RunView], StopRequest], interval: int | None = None):
        self.fn = fn
        self.interval = None if interval is None else _check_interval(interval)
        self.every_check_point = interval is None

    def visit(self, view: RunView) -> StopRequest:
        """Return ``fn(view)``."""
        return self.fn(view)


class Storage(Tracker):
    """Keep the states at given steps.

    The states are gathered in ``data (time, batch, species, …)``; a stopped sample's later
    snapshots are its frozen state.

    Parameters
    ----------
    steps : sequence of int
        The snapshot steps, sorted and unique.
    dtype : numpy dtype, default numpy.float64
        Precision of ``data``.
    """

    def __init__(self, steps: Sequence[int], dtype=np.float64):
        self.steps = [int(s) for s in steps]
        self.dtype = np.dtype(dtype)
        self.data: np.ndarray | None = None

    def due_steps(self, n_steps: int) -> Sequence[int]:
        """Return the snapshot steps."""
        return self.steps

    def visit(self, view: RunView) -> None:
        """Store the state when the step is a snapshot step."""
        if view.step not in self.steps:
            return
        state = view.state
        if self.data is None:
            self.data = np.empty((len(self.steps),) + state.shape, dtype=self.dtype)
        self.data[self.steps.index(view.step)] = state


class ProgressBar(Tracker):
    """A tqdm bar over the steps (or, for engines that finish sample by sample, samples).

    Parameters
    ----------
    desc : str, default "simulate"
        The bar's label.
    unit : str, default "step"
        ``"step"``, or ``"sample"`` for engines that finish sample by sample.
    """

    every_check_point = True

    def __init__(self, desc: str = "simulate", unit: str = "step"):
        self.desc, self.unit = desc, unit
        self.bar = None
        self._done = 0

    def start(self, n_steps: int, batch_size: int) -> None:
        """Open the bar over ``n_steps`` steps (or ``batch_size`` samples)."""
        from tqdm.auto import tqdm

        total = batch_size if self.unit == "sample" else n_steps
        self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, disable=None,
                        leave=False)
        self._done = 0

    def visit(self, view: RunView) -> None:
        """Advance the bar to the view's step."""
        if self.unit == "step" and self.bar is not None and view.step > self._done:
            self.bar.update(view.step - self._done)
            self._done = view.step

    def sample_done(self, n: int = 1) -> None:
        """Advance a bar over samples by ``n``."""
        if self.unit == "sample" and self.bar is not None:
            self.bar.update(n)

    def finish(self, view: RunView) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepCounter(Tracker):
    """Report progress as the steps done since the previous report.

    Parameters
    ----------
    progress : callable
        ``progress(n)``, called with the steps done since its previous call (the engines'
        old ``progress`` argument).
    """

    every_check_point = True

    def __init__(self, progress: Callable[[int], None]):
        self.progress = progress
        self._done = 0

    def visit(self, view: RunView) -> None:
        """Report the steps done since the previous visit."""
        if view.step > self._done:
            self.progress(view.step - self._done)
            self._done = view.step


@dataclass(frozen=True)
class RunawayGuard(Tracker):
    """The NaN/Inf/runaway guard's policy; the engines run the check itself.

    Parameters
    ----------
    limit : float, default RUNAWAY_LIMIT
        A concentration beyond ±this counts as a blow-up (NaN/Inf always do).
    check_every : int, default 64
        Steps between checks (also checked at every tracker call and the end).
    on_blow_up : {"raise", "drop"}, default "raise"
        ``"raise"``: :class:`~rdlab.errors.SimulationError` naming the sample, its
        parameters and the first bad step; ``"drop"``: the sample is stopped with NaN from
        the check that found it on, and the others go on.

    Raises
    ------
    ParameterError
        If ``limit`` is not positive and finite, ``check_every`` not a whole number ≥ 1 or
        ``on_blow_up`` neither ``"raise"`` nor ``"drop"``.
    """

    limit: float = guard.RUNAWAY_LIMIT
    check_every: int = 64
    on_blow_up: str = "raise"

    def __post_init__(self) -> None:
        """Validate the policy."""
        object.__setattr__(self, "limit", guard.check_limit(self.limit))
        if isinstance(self.check_every, bool) or not isinstance(self.check_every,
                                                                 (int, np.integer)) \
                or self.check_every < 1:
            raise ParameterError(f"check_every must be a whole number ≥ 1, got "
                                 f"{self.check_every!r}")
        if self.on_blow_up not in ("raise", "drop"):
            raise ParameterError(f"on_blow_up must be 'raise' or 'drop', got "
                                 f"{self.on_blow_up!r}")

