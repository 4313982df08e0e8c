"""The local dask cluster rdlab's long jobs run on (``rdlab.dask_cluster``)."""

from __future__ import annotations

import os

from rdlab.dask_cluster import connect, local_worker_environ

_SEEN = ("MALLOC_TRIM_THRESHOLD_", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")


def _worker_environ() -> dict:
    return {name: os.environ.get(name) for name in _SEEN}


def test_local_workers_keep_glibc_adaptive_mmap_and_one_thread(monkeypatch):
    """dask's default trim threshold made a design step 2× slower (kernel time); it is dropped
    while dask's other pre-spawn settings stay."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert "MALLOC_TRIM_THRESHOLD_" not in local_worker_environ()
    assert str(local_worker_environ().get("OMP_NUM_THREADS")) == "1"
    with connect(None, 1) as client:
        (seen,) = client.run(_worker_environ).values()
    assert seen == {"MALLOC_TRIM_THRESHOLD_": None, "NUMBA_NUM_THREADS": "1",
                    "OMP_NUM_THREADS": "1"}
