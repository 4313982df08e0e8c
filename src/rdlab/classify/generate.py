"""Simulate a table of (k, f, seed) points into a pattern store, on a dask cluster.

Each task simulates one block of points (:func:`~rdlab.classify.pattern_runs.simulate_patterns`
with one numba thread, so a worker process per core keeps every core busy) and returns its
frames; the client writes each block into the zarr store as it arrives
(:func:`~rdlab.classify.pattern_store.write_block`). Workers therefore need no shared file
system. Interrupt at any time: the blocks written are kept and the same command finishes
the rest; per-sample seeds make the result independent of how the work was split.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from rdlab import store_check
from rdlab.classify import pattern_store
from rdlab.classify.pattern_runs import PatternRunSettings, pattern_system, simulate_patterns
from rdlab.dask_cluster import IN_PROCESS, connect
from rdlab.errors import ParameterError, SimulationError
from rdlab.output_lock import hold


def _simulate_block(start: int, k: np.ndarray, f: np.ndarray, seeds: np.ndarray,
                    settings: dict, threads: int | None) -> tuple[int, np.ndarray, np.ndarray]:
    import numba

    if threads is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    frames, stopped = simulate_patterns(k, f, seeds, PatternRunSettings.from_dict(settings))
    return start, frames, stopped




#: Most samples per task.
MAX_BLOCK = 100_000


def max_workers() -> int:
    """Return the most workers of a local cluster: 4 per core.

    Each worker is a process; thousands would exhaust the machine before the first sample.

    Returns
    -------
    int
        Four times the number of cores.
    """
    return 4 * (os.cpu_count() or 1)


def check_run_options(block: int, scheduler: str | None, n_workers: int | None) -> None:
    """Refuse bad ``block``/``scheduler``/``n_workers`` values before any work starts.

    Parameters
    ----------
    block : int
        Samples per task, from 1 to ``MAX_BLOCK``.
    scheduler : str or None
        A dask scheduler address such as ``tcp://host:8786``, :data:`IN_PROCESS`, or ``None``
        for a local cluster.
    n_workers : int or None
        Processes of the local cluster, from 1 to :func:`max_workers`; only without a
        ``scheduler``.

    Raises
    ------
    ParameterError
        Naming the bad value.
    """
    if isinstance(block, bool) or not isinstance(block, int | np.integer) \
            or not 1 <= block <= MAX_BLOCK:
        raise ParameterError(f"block (samples per task) must be an integer from 1 to "
                             f"{MAX_BLOCK:,}, got {block!r}")
    most = max_workers()
    if n_workers is not None and (isinstance(n_workers, bool)
                                  or not isinstance(n_workers, int | np.integer)
                                  or not 1 <= n_workers <= most):
        raise ParameterError(f"workers must be an integer from 1 to {most} (4 per core; "
                             f"leave it out for one per core), got {n_workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ParameterError(f"scheduler must be a dask address such as tcp://host:8786 or "
                             f"{IN_PROCESS!r}, got {scheduler!r}")
    if scheduler is not None and n_workers is not None:
        raise ParameterError(f"workers={n_workers} sizes the local cluster and has no effect "
                             f"with scheduler {scheduler!r}; leave one of them out")


def check_table(k, f, seed, settings: PatternRunSettings) -> None:
    """Refuse a table the workers would fail on.

    Refused are (k, f) values that are negative, not finite or unstable with the settings'
    time step, and negative or non-integer seeds.

    Parameters
    ----------
    k, f : array_like
        Kill and feed rates, one per sample.
    seed : array_like
        Initial-condition seeds, one per sample.
    settings : PatternRunSettings
        How each pattern is simulated.

    Raises
    ------
    ParameterError
        Naming the bad values.
    """
    system = pattern_system(k, f, settings)
    system.check_time_step(settings.dt)
    seeds = np.asarray(seed)
    if seeds.shape != (system.batch_size,) or not np.issubdtype(seeds.dtype, np.integer) \
            or (seeds < 0).any():
        raise ParameterError(f"seeds must be {system.batch_size} non-negative integers")


def generate(path: str | Path, k, f, seed, label, settings: PatternRunSettings,
             classes: list[str], name: str, kind: str = "pattern-dataset", block: int = 8,
             scheduler: str | None = None, n_workers: int | None = None,
             progress: bool = True) -> dict:
    """Simulate every pending block of the table into the store at ``path``.

    Everything is checked before any work starts (options, the table, an existing store's
    table and settings, and which of its blocks can be trusted; a scheduler is reached
    before a new store is created). The store is locked for the run. Blocks marked done whose
    chunks are missing, unreadable or not finite are simulated again.

    Parameters
    ----------
    path : str or Path
        The pattern store (created, or resumed when it exists).
    k, f : array_like
        Kill and feed rates, one per sample.
    seed : array_like
        Initial-condition seeds, one per sample.
    label : array_like of int
        Class labels as indices into ``classes``, one per sample (negative for the
        unlabelled points of a scan).
    settings : PatternRunSettings
        How each pattern is simulated.
    classes : list of str
        Class symbols stored with the data.
    name : str
        Name of the dataset or scan.
    kind : str, default "pattern-dataset"
        Kind of store written into its attributes.
    block : int, default 8
        Samples per task.
    scheduler : str or None, optional
        A dask scheduler address (``tcp://host:8786``), ``None`` for a local cluster with
        ``n_workers`` processes, or ``"in-process"``.
    n_workers : int or None, optional
        Processes of the local cluster (default: one per core).
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    dict
        ``{"samples_total", "samples_run" (simulated now), "repaired" (of those, samples of
        damaged blocks), "damaged" (one line naming them, or ""), "early_stopped",
        "wall_seconds"}``.

    Raises
    ------
    ParameterError
        For bad options or a bad table, or a store that holds another table or settings.
    OutputError
        When another writer holds the store.
    SimulationError
        When a sample produces non-finite frames (nothing of its block is stored).
    """
    from tqdm.auto import tqdm

    check_run_options(block, scheduler, n_workers)
    check_table(k, f, seed, settings)
    path = Path(path)
    with hold(path):
        if pattern_store.is_store_folder(path):
            ds = pattern_store.open_existing(path, k, f, seed, settings)
            check = pattern_store.check_blocks(path, ds)
            todo = check.pending
            repaired = {(a, b) for _, a, b, _ in check.damaged}
            damaged = store_check.summarise(check.damaged)
        else:
            ds, todo, repaired, damaged = None, None, set(), ""
        n = len(k)
        if todo is None:
            todo = [(a, min(a + block, n)) for a in range(0, n, block)]
        stats = {"samples_total": n, "samples_run": sum(b - a for a, b in todo),
                 "repaired": sum(b - a for a, b in repaired), "damaged": damaged,
                 "early_stopped": 0, "wall_seconds": 0.0}
        if not todo:
            return stats
        with connect(scheduler, n_workers) as client:
            if ds is None:
                ds = pattern_store.create(path, k, f, seed, label, settings, classes, name,
                                          kind, block)
            _run(path, ds, todo, settings, name, client, progress, stats, tqdm)
    return stats


def _run(path: Path, ds, todo, settings: PatternRunSettings, name: str, client,
         progress: bool, stats: dict, tqdm) -> None:
    k, f, seed = ds["k"].values, ds["f"].values, ds["seed"].values
    t0 = time.perf_counter()
    bar = tqdm(total=stats["samples_run"], desc=f"simulate {name}", unit="run",
               disable=not progress, smoothing=0.05)
    sdict = settings.to_dict()

    def record(start, frames, stopped):
        if not np.isfinite(frames).all():
            bad = start + int(np.flatnonzero(~np.isfinite(frames).reshape(len(frames), -1)
                                             .all(axis=1))[0])
            raise SimulationError(f"sample {bad} (k = {k[bad]:g}, f = {f[bad]:g}, seed "
                                  f"{seed[bad]}) produced non-finite frames; nothing of its "
                                  "block was stored")
        pattern_store.write_block(path, start, frames, stopped)
        stats["early_stopped"] += int((stopped >= 0).sum())
        bar.update(frames.shape[0])
        bar.set_postfix(stopped_early=stats["early_stopped"])

    try:
        if client is None:
            for a, b in todo:
                record(*_simulate_block(a, k[a:b], f[a:b], seed[a:b], sdict, None))
        else:
            from dask.distributed import as_completed

            futures = [client.submit(_simulate_block, a, k[a:b], f[a:b], seed[a:b], sdict,
                                     1, pure=False) for a, b in todo]
            for future in as_completed(futures, loop=client.loop):
                record(*future.result())
    finally:
        bar.close()
        stats["wall_seconds"] = time.perf_counter() - t0
