"""Real processes against one run folder: a second writer is refused while the first holds
the lock, the folder always holds one whole run, and a ``kill -9`` mid-run leaves the previous
run as it was, with the next run free to go (lock released, staging leftovers tidied)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from cli_contract import snapshot

from rdlab.run_folder import open_dataset

#: 64² on the NumPy engine: about a thousand steps per second on one core.
LONG = ("--grid", "64", "--steps", "16000", "--engine", "numpy", "--snapshots", "2",
        "--movie", "none")
SHORT = ("--grid", "16", "--steps", "20", "--engine", "numpy", "--snapshots", "3")


def rdlab(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rdlab.cli", "simulate", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_is_consistent(folder: Path, f: float) -> None:
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["parameters"]["f"] == f
    ds = open_dataset(folder / "data.zarr")
    np.testing.assert_array_equal(ds["f"].values, [f])
    assert json.loads(ds.attrs["config"])["parameters"]["f"] == f
    metrics = json.loads((folder / "metrics.json").read_text())
    last = ds["concentration"].isel(time=-1)
    for species, mean in metrics["final_mean"].items():
        assert float(last.sel(species=species).mean()) == mean
    assert metrics["steps"] == config["steps"]


def test_two_writers_one_folder_exactly_one_wins(tmp_path):
    first = rdlab(tmp_path, *LONG, "--f", "0.03", "--out", "r")
    wait_for(lambda: (tmp_path / ".r.owner").exists(), "the first run took the lock", first)
    second = rdlab(tmp_path, *LONG, "--f", "0.05", "--out", "r")
    out2, err2 = second.communicate(timeout=300)
    still_running = first.poll() is None
    out1, err1 = first.communicate(timeout=300)
    assert still_running, "the first run ended before the second tried: make LONG longer"
    assert first.returncode == 0, err1
    assert second.returncode == 2, (out2, err2)
    lines = [ln for ln in err2.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err2, err2
    assert f"'r' is being written by process {first.pid}" in lines[0], lines[0]
    assert "simulate" in lines[0]
    run_is_consistent(tmp_path / "r", 0.03)
    assert not list(tmp_path.glob(".r.staging-*")) and not list(tmp_path.glob(".r.replaced-*"))


def _rerun_caught_writing(tmp_path):
    """A finished run in ``r`` (f = 0.03), its files, and a long rerun (f = 0.05) into the
    same folder caught once it has started writing its staging folder."""
    done = subprocess.run([sys.executable, "-m", "rdlab.cli", "simulate", *SHORT, "--f",
                           "0.03", "--out", "r"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before = snapshot(tmp_path / "r")
    victim = rdlab(tmp_path, *LONG, "--f", "0.05", "--out", "r")
    wait_for(lambda: any((p / "config.yaml").exists() for p in tmp_path.glob(".r.staging-*")),
             "the rerun started writing", victim)
    return before, victim


def test_kill_9_mid_run_keeps_the_previous_run_and_the_next_run_succeeds(tmp_path):
    before, victim = _rerun_caught_writing(tmp_path)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert snapshot(tmp_path / "r") == before  # the previous run, untouched
    assert list(tmp_path.glob(".r.staging-*"))  # the killed run's half-written staging
    run_is_consistent(tmp_path / "r", 0.03)

    again = subprocess.run([sys.executable, "-m", "rdlab.cli", "simulate", *SHORT, "--f",
                            "0.04", "--out", "r"], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr  # the lock died with the killed process
    run_is_consistent(tmp_path / "r", 0.04)
    assert not list(tmp_path.glob(".r.staging-*")) and not list(tmp_path.glob(".r.replaced-*"))


def test_sigterm_mid_run_stops_cleanly_like_ctrl_c(tmp_path):
    """SIGTERM (kill, a batch system's time limit) ends the run through the same clean-up as
    Ctrl-C: exit status 143, the previous run untouched, and no staging folder or owner file
    left beside it (the default handler died on the spot and left both)."""
    before, victim = _rerun_caught_writing(tmp_path)
    os.kill(victim.pid, signal.SIGTERM)
    _, err = victim.communicate(timeout=60)
    assert victim.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert snapshot(tmp_path / "r") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", "r"]
