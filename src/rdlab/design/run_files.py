"""The files of a design run folder, and the rules that keep them telling one story.

A design run folder holds

* the run: ``config.yaml`` (written once, when the run starts), ``checkpoint.pt`` (the
  resumable state, replaced atomically), ``history.jsonl`` (one line per step, trimmed to
  the checkpoint on resume) and, once optimisation has finished, ``model.pt``;
* its report (:data:`REPORT_FILES`): ``metrics.json``, figures, curves and exports. They
  describe the model in the folder: they are removed before optimisation moves the model
  on, written to a staging folder and moved in together, ``metrics.json`` last
  (:func:`install_report`).

Everything here reads or removes files; the caller holds the folder's lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rdlab.errors import DataError

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
    """The report files present in ``folder``, ``metrics.json`` first."""
    found: list[Path] = []
    for pattern in REPORT_FILES:
        found += sorted(p for p in folder.glob(pattern) if p.is_file())
    return found


def clear_report(folder: Path) -> None:
    """Remove the report (``metrics.json`` first, so that no metrics outlive a figure)."""
    for path in report_files(folder):
        path.unlink(missing_ok=True)


def clear_run(folder: Path) -> None:
    """Remove a previous run's files and report (to start a new run in place)."""
    clear_report(folder)
    for name in (MODEL, CHECKPOINT, HISTORY, CONFIG):
        (folder / name).unlink(missing_ok=True)


def tidy(folder: Path) -> None:
    """Remove what a killed process left: temporary files of atomic writes and report
    staging folders.
    """
    if not folder.is_dir():
        return
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)
    for path in folder.glob(_STAGING + "*"):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def staged_report(folder: Path) -> Iterator[Path]:
    """A hidden staging folder inside ``folder`` for a report; on success its files
    replace the old report (:func:`install_report`), on any error it is removed and the
    old report stays as it was.
    """
    staging = folder / f"{_STAGING}{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        install_report(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_report(staging: Path, folder: Path) -> None:
    """Replace ``folder``'s report with the files in ``staging``: the old ``metrics.json``
    goes first, then the old figures, the new figures come in, and the new
    ``metrics.json`` last — at every moment a ``metrics.json`` present belongs to the
    figures present.
    """
    clear_report(folder)
    new = sorted(p for p in staging.iterdir() if p.is_file())
    for path in sorted(new, key=lambda p: p.name == METRICS):
        os.replace(path, folder / path.name)


def read_torch(path: Path, what: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dict saved with ``torch.save``, or a :class:`DataError` naming the file when it is
    truncated, garbage or lacks one of ``keys``.
    """
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 — torch.load fails on damage in many ways
        raise DataError(f"{str(path)!r} is not a readable {what} (damaged or truncated: "
                        f"{type(err).__name__}); {START_AGAIN}") from None
    missing = [k for k in keys if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise DataError(f"{str(path)!r} is not a complete {what} (missing {missing}); "
                        f"{START_AGAIN}")
    return saved


def read_history_lines(path: Path, lines: int | None = None) -> list[dict]:
    """The history's records (the first ``lines`` of them, which must all be there), or a
    :class:`DataError` naming the file and the line that is not a record.
    """
    if not path.is_file():
        if lines:
            raise DataError(f"{str(path)!r} is missing but the checkpoint counts {lines} "
                            f"steps in it; {START_AGAIN}")
        return []
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = text if lines is None else text[:lines]
    if lines is not None and len(kept) < lines:
        raise DataError(f"{str(path)!r} has {len(kept)} lines but the checkpoint counts "
                        f"{lines} steps; {START_AGAIN}")
    records = []
    for number, line in enumerate(kept, 1):
        if lines is None and not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "loss" not in record:
            if lines is None and number == len(kept):
                break  # a last line cut off by a kill: not part of any checkpoint
            raise DataError(f"{str(path)!r} line {number} is not a history record; "
                            f"{START_AGAIN}")
        records.append(record)
    return records
