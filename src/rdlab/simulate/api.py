"""The one front door: :func:`simulate` runs any engine and returns an xarray dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from rdlab.errors import ParameterError
from rdlab.simulate import guard
from rdlab.simulate.engines import DTYPES, available_engines, get_engine
from rdlab.simulate.result import trajectory_dataset
from rdlab.simulate.trackers import ProgressBar, RunawayGuard, Storage, Tracker
from rdlab.system import System

#: Names of the registered engines (see :func:`rdlab.simulate.engines.available_engines`).
ENGINES = available_engines()


def snapshot_schedule(n_steps: int, snapshot_every: int | None = None,
                      snapshot_steps: Sequence[int] | None = None) -> np.ndarray:
    """Return the sorted unique snapshot steps in ``[0, n_steps]``.

    Parameters
    ----------
    n_steps : int
        Number of steps, ≥ 0.
    snapshot_every : int, optional
        Snapshot every this many steps (always including 0 and ``n_steps``), ≥ 1.
    snapshot_steps : sequence of int, optional
        Explicit snapshot steps; take precedence over ``snapshot_every``. With neither,
        just the two ends.

    Returns
    -------
    numpy.ndarray
        The steps, sorted and unique.

    Raises
    ------
    ParameterError
        If ``n_steps`` or ``snapshot_every`` is not a whole number in range, or
        ``snapshot_steps`` is empty, not whole numbers or outside ``0..n_steps``.
    """
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ParameterError(f"number of steps must be a whole number ≥ 0, got {n_steps!r}")
    if snapshot_steps is not None:
        steps = np.asarray(snapshot_steps)
        if steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
            raise ParameterError(f"snapshot steps must be whole numbers, got {snapshot_steps!r}")
        bad = steps[(steps < 0) | (steps > n_steps)]
        if bad.size:
            raise ParameterError(f"snapshot step {int(bad[0])} is outside 0..{n_steps}")
        return np.unique(steps)
    if snapshot_every is not None:
        if not isinstance(snapshot_every, (int, np.integer)) or snapshot_every < 1:
            raise ParameterError(f"snapshot_every must be a whole number ≥ 1, got "
                                 f"{snapshot_every!r}")
        return np.unique(np.append(np.arange(0, n_steps + 1, snapshot_every), n_steps))
    return np.unique([0, n_steps])


def simulate(
    system: System,
    initial_state: np.ndarray,
    *,
    dt: float,
    n_steps: int,
    snapshot_every: int | None = None,
    snapshot_steps: Sequence[int] | None = None,
    engine: str = "fast",
    dtype: str = "float64",
    seed: int | None = None,
    progress: bool = True,
    config: dict | None = None,
    runaway_limit: float | None = None,
    trackers: Sequence[Tracker] = (),
    **engine_options,
) -> xr.Dataset:
    """Simulate ``system`` from ``initial_state`` for ``n_steps`` steps of ``dt``.

    Parameters
    ----------
    system : System
        The batch of parameter sets.
    initial_state : numpy.ndarray
        ``(batch, species, y, x)`` (or ``(species, y, x)``, broadcast over the batch);
        ``(batch, species)`` for a well-mixed system.
    dt : float
        Time step (time units). A stepping engine needs a stable explicit step.
    n_steps : int
        Number of steps.
    snapshot_every : int, optional
        Keep a snapshot every this many steps (see :func:`snapshot_schedule`).
    snapshot_steps : sequence of int, optional
        Explicit snapshot steps; by default only the first and last step are kept.
    engine : str, default "fast"
        A name of :func:`~rdlab.simulate.engines.available_engines` (``fast``, ``numpy``,
        ``torch`` take forward-Euler steps; ``ode`` integrates the well-mixed system with a
        stiff solver and reports it at the snapshot times ``step·dt``).
    dtype : str, default "float64"
        ``"float32"`` or ``"float64"``.
    seed : int, optional
        Seed of the flow noise.
    progress : bool, default True
        Show a progress bar.
    config : dict, optional
        Extra entries for the run configuration stored with the dataset.
    runaway_limit : float, optional
        A concentration beyond ±this counts as a blow-up (default
        :data:`rdlab.simulate.guard.RUNAWAY_LIMIT`); NaN/Inf always do. Pass a
        :class:`~rdlab.simulate.trackers.RunawayGuard` among ``trackers`` for another
        policy.
    trackers : sequence of Tracker, default ()
        :class:`~rdlab.simulate.trackers.Tracker` objects called during the run
        (measurements, early stops, …).
    **engine_options
        The engine's own options (e.g. ``device`` for torch, ``rtol``/``method`` for ode,
        ``check_every`` for the stepping engines' guard).

    Returns
    -------
    xarray.Dataset
        The variable ``concentration`` of dims ``sample, time, species[, y, x]``. When any
        tracker is given, also ``stopped_step (sample)``: the step at which a tracker
        stopped the sample (its later snapshots are its state then), −1 for samples that
        ran to the end.

    Raises
    ------
    SimulationError
        On a blow-up, naming the sample, its parameters and the first bad step.
    ParameterError
        If the engine, dtype, initial state, snapshot schedule, trackers or an engine
        option is invalid.
    StabilityError
        If ``dt`` is unstable for a stepping engine.
    """
    cls = get_engine(engine)
    if dtype not in DTYPES:
        raise ParameterError(f"unknown dtype {dtype!r}; choose float32 or float64")
    state = system.check_state(initial_state)
    steps = snapshot_schedule(n_steps, snapshot_every, snapshot_steps)
    cls.check_time_step(system, dt)
    policy = _guard_policy(trackers, runaway_limit, engine_options, cls)
    cls.check(system, dtype, policy, engine_options)
    storage = Storage(steps.tolist(), DTYPES[dtype])
    user = [t for t in trackers if not isinstance(t, RunawayGuard)]
    run_trackers: list[Tracker] = [storage, *user]
    if progress and n_steps > 0:
        run_trackers.append(ProgressBar(f"simulate[{engine}]", cls.progress_unit))
    stopped = cls.run(system, state, dt=dt, n_steps=int(n_steps), dtype=dtype, seed=seed,
                      guard=policy, trackers=run_trackers, **engine_options)
    run_config = {"dt": dt, "n_steps": int(n_steps), "engine": engine, "dtype": dtype,
                  "snapshot_steps": steps.tolist(), **(config or {})}
    ds = trajectory_dataset(system, storage.data, steps * dt, steps, run_config, seed)
    if trackers:
        ds["stopped_step"] = ("sample", np.asarray(stopped, dtype=np.int64))
    return ds


def _guard_policy(trackers: Sequence[Tracker], runaway_limit, engine_options: dict,
                  cls) -> RunawayGuard:
    """Return the run's :class:`RunawayGuard`.

    One passed among the trackers, or one built from ``runaway_limit`` and a stepping
    engine's ``check_every`` option.
    """
    given = [t for t in trackers if isinstance(t, RunawayGuard)]
    if len(given) > 1:
        raise ParameterError("more than one RunawayGuard among the trackers")
    for t in trackers:
        if not isinstance(t, Tracker):
            raise ParameterError(f"trackers must be rdlab.simulate.trackers.Tracker objects, "
                                 f"got {type(t).__name__}")
    check_every = engine_options.pop("check_every", None) if cls.capabilities.stepping \
        else None
    if given:
        if runaway_limit is not None or check_every is not None:
            raise ParameterError("give the runaway limit and check_every either to the "
                                 "RunawayGuard tracker or as arguments, not both")
        return given[0]
    limit = guard.RUNAWAY_LIMIT if runaway_limit is None else runaway_limit
    return RunawayGuard(limit, 64 if check_every is None else check_every)
