"""The dask cluster a long job's tasks run on: a local one, a running one, or none.

Used by the pattern dataset/scan generator and by ``rdlab design --seeds``. The client never
becomes the process-wide dask scheduler (``set_as_default=False``): after it closes, later
xarray/zarr writes in the same process must not ask for it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from rdlab.errors import ParameterError

__all__ = ["CONNECT_TIMEOUT_S", "IN_PROCESS", "connect", "local_worker_environ"]

#: ``scheduler`` value that runs the tasks in this process, one after another (no cluster).
IN_PROCESS = "in-process"

#: Seconds to wait for a ``--scheduler`` to answer before giving up.
CONNECT_TIMEOUT_S = 10.0


def local_worker_environ() -> dict:
    """Return the environment dask sets in a local worker before it starts, for rdlab's tasks.

    dask's default (``distributed.nanny.pre-spawn-environ``) less ``MALLOC_TRIM_THRESHOLD_``:
    an explicit trim threshold also switches off glibc's adaptive mmap threshold, so every
    array of 128 KiB or more is mapped and unmapped afresh. A design step (a few hundred such
    arrays) then spent more than half its time in the kernel: 0.13 s against 0.066 s a step
    for fig2a on this machine, both with one thread on shared cores.

    Returns
    -------
    dict
        Variable → value.
    """
    import dask
    import distributed  # noqa: F401 - registers the distributed.* defaults

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


@contextlib.contextmanager
def connect(scheduler: str | None, n_workers: int | None) -> Iterator:
    """Yield a dask client for the tasks of one job, and close it (and its cluster) after.

    Parameters
    ----------
    scheduler : str or None
        A scheduler address (``tcp://host:8786``), :data:`IN_PROCESS` (yields None: run the
        tasks in this process), or None for a local cluster.
    n_workers : int or None
        Worker processes of the local cluster (default: one per core), each with one thread
        and one numba/OpenMP thread: with larger pools the idle threads of one worker
        spin-wait on the core another needs (measured: 2.3× slower overall), and with
        :func:`local_worker_environ`.

    Yields
    ------
    distributed.Client or None
        The client, or None for :data:`IN_PROCESS`.

    Raises
    ------
    ParameterError
        If the scheduler does not answer within :data:`CONNECT_TIMEOUT_S` seconds.
    """
    if scheduler == IN_PROCESS:
        yield None
        return
    import dask
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError, ...
            text = str(exc).strip().splitlines()
            raise ParameterError(
                f"cannot reach the dask scheduler {scheduler!r} within "
                f"{CONNECT_TIMEOUT_S:g} s ({type(exc).__name__}"
                f"{': ' + text[0] if text else ''}); check the address, or leave --scheduler "
                "out for a local cluster") from None
    else:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": local_worker_environ()}):
            cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1,
                                   threads_per_worker=1, processes=True,
                                   dashboard_address=None,
                                   env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
        client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
