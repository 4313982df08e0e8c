"""The files of a design run folder, and the rules that keep them telling one story.

A design run folder holds

* the run: ``config.yaml`` (written once, when the run starts), ``checkpoint.pt`` (the
  resumable state, replaced atomically), ``history.jsonl`` (one line per step, the format of
  :class:`rdlab.training_loop.History`, trimmed to the checkpoint on resume) and, once
  optimisation has finished, ``model.pt``;
* its report (:data:`REPORT_FILES`): ``metrics.json``, figures, curves and exports. They
  describe the model in the folder: they are removed before optimisation moves the model
  on, written to a staging folder and moved in together, ``metrics.json`` last
  (:func:`install_report`).

Everything here reads or removes files; the caller holds the folder's lock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rdlab.atomic import remove_temporaries
from rdlab.errors import DataError
from rdlab.training_loop import Checkpoint, CheckpointError, read_history

CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.jsonl"
MODEL = "model.pt"
METRICS = "metrics.json"
#: The report's files (globs); ``metrics.json`` is the one that says a report is whole.
REPORT_FILES = (METRICS, "loss.png", "reaction_graph.png", "timelapse.png", "timelapse.gif",
                "controls_*.png", "controls_*.npz", "network.yaml", "network.ant",
                "network.xml")
RUN_FILES = (CONFIG, CHECKPOINT, HISTORY, MODEL)
_STAGING = ".report-staging-"
#: How to get out of a damaged or foreign folder, for error messages.
START_AGAIN = "start again with --fresh, or choose another --out"


def report_files(folder: Path) -> list[Path]:
    """Return the report files present in ``folder``, ``metrics.json`` first.

    Parameters
    ----------
    folder : pathlib.Path
        A design run folder.

    Returns
    -------
    list of pathlib.Path
        The files matching :data:`REPORT_FILES`, in that order.
    """
    found: list[Path] = []
    for pattern in REPORT_FILES:
        found += sorted(p for p in folder.glob(pattern) if p.is_file())
    return found


def clear_report(folder: Path) -> None:
    """Remove the report (``metrics.json`` first, so that no metrics outlive a figure).

    Parameters
    ----------
    folder : pathlib.Path
        A design run folder.
    """
    for path in report_files(folder):
        path.unlink(missing_ok=True)


def clear_run(folder: Path) -> None:
    """Remove a previous run's files and report (to start a new run in place).

    Parameters
    ----------
    folder : pathlib.Path
        A design run folder.
    """
    clear_report(folder)
    for name in (MODEL, CHECKPOINT, HISTORY, CONFIG):
        (folder / name).unlink(missing_ok=True)


def tidy(folder: Path) -> None:
    """Remove what a killed process left.

    That is: temporary files of atomic writes and report staging folders.

    Parameters
    ----------
    folder : pathlib.Path
        A design run folder (nothing happens if it does not exist).
    """
    if not folder.is_dir():
        return
    remove_temporaries(folder)
    for path in folder.glob(_STAGING + "*"):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def staged_report(folder: Path) -> Iterator[Path]:
    """Stage a report in a hidden folder inside ``folder``.

    On success the staged files replace the old report (:func:`install_report`); on any
    error the staging folder is removed and the old report stays as it was.

    Parameters
    ----------
    folder : pathlib.Path
        A design run folder.

    Yields
    ------
    pathlib.Path
        The staging folder to write the report into.
    """
    staging = folder / f"{_STAGING}{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        install_report(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_report(staging: Path, folder: Path) -> None:
    """Replace ``folder``'s report with the files in ``staging``.

    The old ``metrics.json`` goes first, then the old figures, the new figures come in, and
    the new ``metrics.json`` last — at every moment a ``metrics.json`` present belongs to the
    figures present.

    Parameters
    ----------
    staging : pathlib.Path
        The folder holding the new report.
    folder : pathlib.Path
        The design run folder.
    """
    clear_report(folder)
    new = sorted(p for p in staging.iterdir() if p.is_file())
    for path in sorted(new, key=lambda p: p.name == METRICS):
        os.replace(path, folder / path.name)


def read_torch(path: Path, what: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return a dict saved with ``torch.save``.

    Parameters
    ----------
    path : pathlib.Path
        The file (a checkpoint or ``model.pt``).
    what : str
        What the file is, for error messages (``"design checkpoint"``).
    keys : tuple of str, default ()
        Keys the dict must have.

    Returns
    -------
    dict
        The saved dict, tensors on the CPU.

    Raises
    ------
    DataError
        Naming the file when it is truncated, garbage or lacks one of ``keys``.
    """
    try:
        saved = Checkpoint(path, weights_only=False).load()
    except CheckpointError as err:
        raise DataError(f"{str(path)!r} is not a readable {what} (damaged or truncated: "
                        f"{err.kind}); {START_AGAIN}") from None
    missing = [k for k in keys if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise DataError(f"{str(path)!r} is not a complete {what} (missing {missing}); "
                        f"{START_AGAIN}")
    return saved


def read_history_lines(path: Path, lines: int | None = None) -> list[dict]:
    """Return the history's records (:func:`rdlab.training_loop.read_history`).

    Parameters
    ----------
    path : pathlib.Path
        The run folder's ``history.jsonl``.
    lines : int, optional
        Read exactly the first ``lines`` records (which must all be there); ``None`` reads
        all, skipping a last line cut off by a kill.

    Returns
    -------
    list of dict
        One record per optimisation step.

    Raises
    ------
    DataError
        Naming the file and the line that is not a record (one with a ``loss``).
    """
    return read_history(path, lines, required=("loss",), remedy=START_AGAIN)
