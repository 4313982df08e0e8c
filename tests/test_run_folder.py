"""The output groundwork: one writer per output, whole runs or nothing, unique temp names."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from rdlab.atomic import atomic_write_text
from rdlab.errors import OutputError
from rdlab.output_lock import hold, lock_path
from rdlab.run_folder import MARKER, staged_run_folder


def _names(folder):
    """What a folder holds, without the hidden lock files (kept on purpose: unlinking a
    flock'ed file on release would let two writers lock two different files)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_success_replaces_the_folder_whole(tmp_path):
    out = tmp_path / "run"
    with staged_run_folder(out) as folder:
        folder.write_config({"f": 1})
        (folder.path / "old_only.txt").write_text("from run 1")
        assert not out.exists()  # nothing visible until the run has succeeded
    assert (out / "config.yaml").read_text().strip() == "f: 1"
    assert (out / MARKER).exists()
    with staged_run_folder(out) as folder:
        folder.write_config({"f": 2})
    assert (out / "config.yaml").read_text().strip() == "f: 2"
    assert not (out / "old_only.txt").exists()  # no file of run 1 beside run 2's config
    assert _names(tmp_path) == ["run"]


def test_failure_leaves_the_previous_run_untouched(tmp_path):
    out = tmp_path / "run"
    with staged_run_folder(out) as folder:
        folder.write_config({"f": 1})
        folder.write_metrics({"x": 1.5})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RuntimeError), staged_run_folder(out) as folder:
        folder.write_config({"f": 2})
        raise RuntimeError("blow-up")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _names(tmp_path) == ["run"]


def test_failure_of_a_first_run_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), staged_run_folder(tmp_path / "run") as folder:
        folder.write_config({"f": 2})
        raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_outputs_that_are_not_rdlab_folders_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="existing file"), staged_run_folder(tmp_path / "file"):
        pass
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_text("x")
    with pytest.raises(OutputError, match="did not write"), staged_run_folder(foreign):
        pass
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]
    with pytest.raises(OutputError, match="is a file"), hold(tmp_path / "file" / "run"):
        pass


def test_a_kill_between_the_two_renames_is_recovered(tmp_path):
    """If a run died after moving the old folder aside and before moving the new one in, the
    next writer puts the old run back before anything else."""
    out = tmp_path / "run"
    with staged_run_folder(out) as folder:
        folder.write_config({"f": 1})
    os.replace(out, tmp_path / ".run.replaced-deadbeef")
    (tmp_path / ".run.staging-cafecafe").mkdir()  # a killed run's half-written folder
    with pytest.raises(RuntimeError), staged_run_folder(out):
        raise RuntimeError
    assert (out / "config.yaml").read_text().strip() == "f: 1"
    assert _names(tmp_path) == ["run"]


_HOLDER = textwrap.dedent("""
    import sys, time
    from rdlab.output_lock import hold
    with hold(sys.argv[1], command="holder-under-test"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=rf"process {proc.pid} .*holder-under-test"):
            with staged_run_folder(out):
                pass
    finally:
        proc.kill()
        proc.wait()
    # kill -9 releases the lock: the next writer gets it at once
    t0 = time.perf_counter()
    with hold(out):
        pass
    assert time.perf_counter() - t0 < 5
    assert not lock_path(out).exists() or lock_path(out).is_file()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with hold(tmp_path / "run"), hold(tmp_path / "run"):
        pass


def test_atomic_writes_use_unique_temporary_names(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "1")
    atomic_write_text(target, "2")
    assert target.read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_lock_that_cannot_be_made_is_not_blamed_on_another_process():
    """filelock reports a lock file it cannot create as a timeout; the error must say the
    lock cannot be made, not that another process is writing (--out /proc/x said so)."""
    with pytest.raises(OutputError, match=r"cannot lock '/proc/rdlab-test-out': "):
        with hold("/proc/rdlab-test-out"):
            pass
