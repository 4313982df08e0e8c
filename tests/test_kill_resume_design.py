"""``rdlab design`` killed with ``kill -9`` at random moments and rerun resumes to the same
design as an uninterrupted run, bit for bit: the model (θΨ, generator), the random states,
the optimiser's last state, the history (all but wall-clock seconds) and the config.

The run is tiny (8×8 cells, two stages, 14 steps, a checkpoint every 3 steps) so that a
kill can fall before the first checkpoint, between checkpoints, at a stage change and
after the last step. The kill point is drawn from a seeded generator: a number of history
lines to wait for, then a few milliseconds more.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rdlab.cli import app
from rdlab.design.config import load_config, parse_overrides
from rdlab.design.optimise import optimise
from rdlab.design.run_files import CHECKPOINT, CONFIG, HISTORY, MODEL

SETTINGS = ["size=[8, 8]", "stages=[2, 4]", "steps=[6, 8]", "z_bits=8", "batch=2",
            "checkpoint_every=3", "halve_at=[4]", "plateau_patience=2",
            "early_stop_patience=null"]
TOTAL_STEPS = 14
COMMAND = [sys.executable, "-c", "from rdlab.cli import app; app()", "design", "fig2a-quick",
           "--no-evaluate", *(a for s in SETTINGS for a in ("--set", s))]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference: the same config optimised in one go (in this process)."""
    out = tmp_path_factory.mktemp("whole") / "run"
    optimise(load_config("fig2a-quick", **parse_overrides(SETTINGS)), out, progress=False)
    return out


def _history_lines(folder: Path) -> int:
    try:
        return (folder / HISTORY).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([*COMMAND, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _kill_at(out: Path, rng: np.random.Generator) -> int:
    """Start the command, kill -9 it after a random number of steps (and a few ms), and
    return the number of history lines it had written."""
    wait_for = int(rng.integers(0, TOTAL_STEPS + 1))
    extra = float(rng.uniform(0.0, 0.03))
    proc = _start(out)
    deadline = time.monotonic() + 120
    while proc.poll() is None and _history_lines(out) < wait_for:
        assert time.monotonic() < deadline, "the design run made no progress"
        time.sleep(0.002)
    time.sleep(extra)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return _history_lines(out)


def _finish(out: Path) -> None:
    proc = _start(out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def _assert_same_design(got: Path, want: Path) -> None:
    assert sorted(p.name for p in got.iterdir()) == sorted([CHECKPOINT, CONFIG, HISTORY, MODEL])
    assert (got / CONFIG).read_text() == (want / CONFIG).read_text()
    a = torch.load(got / CHECKPOINT, weights_only=False)
    b = torch.load(want / CHECKPOINT, weights_only=False)
    assert a["state"] == b["state"] and a["state"]["finished"]
    assert torch.equal(a["rng"], b["rng"]) and torch.equal(a["torch_rng"], b["torch_rng"])
    for name in ("model",):
        for module, state in b[name].items():
            for key, value in state.items():
                assert torch.equal(a[name][module][key], value), (module, key)
    ma, mb = (torch.load(p / MODEL, weights_only=False)["model"] for p in (got, want))
    for module, state in mb.items():
        for key, value in state.items():
            assert torch.equal(ma[module][key], value), (module, key)

    def steps(folder):
        import json
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (folder / HISTORY).read_text().splitlines()]
    assert steps(got) == steps(want)
    assert len(steps(got)) == TOTAL_STEPS


def _kill_and_resume(tmp_path: Path, uninterrupted: Path, seed: int, kills: int) -> list[int]:
    rng = np.random.default_rng(seed)
    out = tmp_path / "run"
    reached = [_kill_at(out, rng) for _ in range(kills)]
    _finish(out)
    _assert_same_design(out, uninterrupted)
    return reached


def test_killed_mid_run_resumes_to_the_uninterrupted_design(tmp_path, uninterrupted):
    """One kill inside the optimisation loop (after step 4 or later: between checkpoints),
    then the same command again (here in this process, to keep the test fast)."""
    rng = np.random.default_rng(0)
    out = tmp_path / "run"
    proc = _start(out)
    while proc.poll() is None and _history_lines(out) < 4 + int(rng.integers(0, 3)):
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < _history_lines(out) < TOTAL_STEPS
    res = CliRunner().invoke(app, [*COMMAND[3:], "--out", str(out)])  # in-process: faster
    assert res.exit_code == 0, res.output
    _assert_same_design(out, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_killed_at_random_moments_resumes_to_the_uninterrupted_design(
        tmp_path, uninterrupted, seed):
    """Two kills at random points (possibly during start-up, a checkpoint write or the
    final model write), then the same command to the end."""
    _kill_and_resume(tmp_path, uninterrupted, seed, kills=2)


def test_a_second_design_on_a_running_folder_is_refused(tmp_path, monkeypatch):
    """Two writers: while one `rdlab design` runs in a folder, a second (other settings)
    is refused at once with the lock error naming the first, and changes nothing; the
    folder then holds the first run alone (resumable by its own command)."""
    from cli_contract import assert_refused

    from rdlab.design.optimise import resume_point

    monkeypatch.chdir(tmp_path)
    long = [*SETTINGS, "steps=[100000, 8]"]
    first = subprocess.Popen([*COMMAND[:5], "--no-evaluate", "--out", "runs/x",
                              *(a for s in long for a in ("--set", s))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _history_lines(tmp_path / "runs/x") < 1:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGSTOP)  # holding its lock, so that only the second
        time.sleep(0.2)                      # command could change files now
        assert_refused(["design", "fig2a-quick", "--out", "runs/x", "--no-evaluate",
                        *(a for s in SETTINGS for a in ("--set", s))], tmp_path,
                       rf"'runs/x' is being written by process {first.pid} .*design "
                       r"fig2a-quick")
    finally:
        first.kill()
        first.wait()
    resume_point(load_config("fig2a-quick", **parse_overrides(long)), tmp_path / "runs/x")
