"""The one front door: :func:`simulate` runs any engine and returns an xarray dataset."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import xarray as xr

from rdlab.errors import ParameterError
from rdlab.simulate import guard
from rdlab.simulate.result import trajectory_dataset
from rdlab.system import System

ENGINES = ("fast", "numpy", "torch", "ode")
DTYPES = {"float32": np.float32, "float64": np.float64}


def snapshot_schedule(n_steps: int, snapshot_every: int | None = None,
                      snapshot_steps: Sequence[int] | None = None) -> np.ndarray:
    """Sorted unique snapshot steps in ``[0, n_steps]``: explicit ``snapshot_steps``, or every
    ``snapshot_every`` steps (always including 0 and ``n_steps``), or just the two ends."""
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


def _progress_bar(total: int, enabled: bool, desc: str, unit: str):
    if not enabled:
        return nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False)


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
    **engine_options,
) -> xr.Dataset:
    """Simulate ``system`` from ``initial_state`` for ``n_steps`` steps of ``dt``.

    initial_state: ``(batch, species, y, x)`` (or ``(species, y, x)``, broadcast over the
    batch); ``(batch, species)`` for a well-mixed system. Grid engines (``fast``, ``numpy``,
    ``torch``) take forward-Euler steps; ``ode`` integrates the well-mixed system with a stiff
    solver and reports it at the snapshot times ``step·dt``. Returns a dataset with the
    variable ``concentration`` of dims ``sample, time, species[, y, x]``.

    runaway_limit: a concentration beyond ±this counts as a blow-up (default
    :data:`rdlab.simulate.guard.RUNAWAY_LIMIT`); NaN/Inf always do. A blow-up raises
    :class:`~rdlab.errors.SimulationError` naming the sample, its parameters and the first
    bad step.
    """
    if engine not in ENGINES:
        raise ParameterError(f"unknown engine {engine!r}; engines are {list(ENGINES)}")
    if dtype not in DTYPES:
        raise ParameterError(f"unknown dtype {dtype!r}; choose float32 or float64")
    state = system.check_state(initial_state)
    steps = snapshot_schedule(n_steps, snapshot_every, snapshot_steps)
    if engine == "ode":
        if not (np.isfinite(dt) and dt > 0):
            raise ParameterError(f"dt must be a positive number, got {dt!r}")
    else:
        system.check_time_step(dt)
    np_dtype = DTYPES[dtype]
    limit = guard.check_limit(guard.RUNAWAY_LIMIT if runaway_limit is None else runaway_limit)
    # the ODE engine reports finished samples, the stepping engines finished steps
    total, unit = (system.batch_size, "sample") if engine == "ode" else (int(n_steps), "step")
    with _progress_bar(total, progress and n_steps > 0, f"simulate[{engine}]", unit) as bar:
        tick = bar.update if bar is not None else None
        if engine == "fast":
            from rdlab.simulate import fast

            out = fast.run(system, state, dt, int(n_steps), steps.tolist(), dtype=np_dtype,
                           progress=tick, runaway_limit=limit, **engine_options)
        elif engine == "torch":
            from rdlab.simulate import torch_engine

            out = torch_engine.run(system, state, dt, int(n_steps), steps.tolist(),
                                   dtype=np_dtype, progress=tick, seed=seed,
                                   runaway_limit=limit, **engine_options)
        elif engine == "numpy":
            from rdlab.simulate import reference

            out = reference.run_checked(system, state.astype(np_dtype), dt, int(n_steps),
                                        steps.tolist(), seed=seed, progress=tick,
                                        runaway_limit=limit)
        else:
            from rdlab.simulate import ode

            out, _ = ode.solve(system, state, steps * dt, progress=tick, runaway_limit=limit,
                               **engine_options)
            out = out.astype(np_dtype)
    run_config = {"dt": dt, "n_steps": int(n_steps), "engine": engine, "dtype": dtype,
                  "snapshot_steps": steps.tolist(), **(config or {})}
    return trajectory_dataset(system, out, steps * dt, steps, run_config, seed)
