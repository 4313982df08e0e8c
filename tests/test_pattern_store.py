"""Pattern stores: written block by block, resumable after a kill, cluster = in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from rdlab.classify import pattern_store
from rdlab.classify.generate import IN_PROCESS, generate
from rdlab.classify.pattern_runs import PatternRunSettings
from rdlab.errors import DataError, ParameterError

SMALL = PatternRunSettings(size=48, n_steps=3000, snapshot_steps=(2000, 2500, 3000),
                           check_every=500)
K = [0.05, 0.055, 0.06, 0.062, 0.065, 0.05, 0.045, 0.06, 0.0625, 0.055, 0.05, 0.063]
F = [0.015, 0.025, 0.03, 0.04, 0.05, 0.005, 0.01, 0.05, 0.035, 0.035, 0.02, 0.046]
SEEDS = list(range(101, 113))
LABELS = list(range(12))


def _generate(path: Path, scheduler=IN_PROCESS, **kw) -> dict:
    return generate(path, K, F, SEEDS, LABELS, SMALL, [f"c{i}" for i in range(12)], "t",
                    block=2, scheduler=scheduler, progress=False, **kw)


def test_store_holds_table_and_frames(tmp_path):
    stats = _generate(tmp_path / "a.zarr")
    assert stats["samples_run"] == 12
    ds = pattern_store.open_patterns(tmp_path / "a.zarr")
    assert ds["frames"].shape == (12, 3, 48, 48)
    assert ds["frames"].dtype == np.float32
    np.testing.assert_array_equal(ds["k"].values, K)
    np.testing.assert_array_equal(ds["seed"].values, SEEDS)
    np.testing.assert_array_equal(ds["step"].values, [2000, 2500, 3000])
    np.testing.assert_array_equal(ds["time"].values, [500.0, 625.0, 750.0])
    assert pattern_store.class_list(ds) == [f"c{i}" for i in range(12)]
    frames = ds["frames"].values
    assert np.isfinite(frames).all() and frames.min() >= -0.1 and frames.max() <= 1.1
    # rerunning a finished store does nothing
    assert _generate(tmp_path / "a.zarr")["samples_run"] == 0


def test_store_refuses_other_table(tmp_path):
    _generate(tmp_path / "a.zarr")
    with pytest.raises(ParameterError, match="different table"):
        generate(tmp_path / "a.zarr", K[:-1], F[:-1], SEEDS[:-1], LABELS[:-1], SMALL, [], "t",
                 block=2, scheduler=IN_PROCESS, progress=False)


def test_incomplete_store_is_refused_by_readers(tmp_path):
    path = tmp_path / "a.zarr"
    pattern_store.open_or_create(path, K, F, SEEDS, LABELS, SMALL, [], "t", block=2)
    with pytest.raises(DataError, match="incomplete"):
        pattern_store.open_patterns(path)
    assert len(pattern_store.pending_blocks(xr.open_zarr(path))) == 6


_KILL_SCRIPT = """
import sys
from tests.test_pattern_store import _generate
from pathlib import Path
_generate(Path(sys.argv[1]))
"""


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL a generating process part-way; the rerun finishes and equals a clean run."""
    clean, killed = tmp_path / "clean.zarr", tmp_path / "killed.zarr"
    _generate(clean)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(killed)], cwd=root,
                            env=env)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if (killed / "done").exists():
            try:
                done = int(xr.open_zarr(killed)["done"].values.sum())
            except Exception:  # store being created
                done = 0
            if done >= 2:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = pattern_store.pending_blocks(xr.open_zarr(killed))
    assert 0 < len(left) < 6, f"kill landed outside the run ({len(left)} blocks left)"
    stats = _generate(killed)
    assert stats["samples_run"] == 2 * len(left)
    a, b = pattern_store.open_patterns(clean), pattern_store.open_patterns(killed)
    np.testing.assert_array_equal(a["frames"].values, b["frames"].values)
    np.testing.assert_array_equal(a["stopped_step"].values, b["stopped_step"].values)


def test_local_dask_cluster_equals_in_process(tmp_path):
    _generate(tmp_path / "a.zarr")
    import dask

    before = dask.config.get("scheduler", None)
    _generate(tmp_path / "b.zarr", scheduler=None, n_workers=2)
    # The run's client must not stay behind as this process's dask scheduler: later
    # xarray writes would ask for a closed client (seen in CI as "no Client active").
    assert dask.config.get("scheduler", None) == before
    a, b = (pattern_store.open_patterns(tmp_path / p) for p in ("a.zarr", "b.zarr"))
    np.testing.assert_array_equal(a["frames"].values, b["frames"].values)
    assert json.loads(a.attrs["settings"]) == SMALL.to_dict()
