"""The whole CNN paper as one resumable workflow, with each stage timed.

First pass: datasets train, val, test → train the CNN → evaluate (accuracy curves, confusion
matrices) → the 5481-point scan → classify it (phase map, montages, HTML explorer).
Second pass (``second_pass=True``): datasets train2, val2 (π and the extra points) → a CNN
trained from scratch on 16 classes → evaluate on val2 and the pass-1 test set → reclassify the
same scan → report how many cells changed class and where π is found.

Every stage writes into ``out`` and skips work already done (stores finish their missing
blocks, training resumes from ``last.pt``, an evaluation or classification whose summary file
exists is read back — delete its folder to redo it), so rerunning the same call after an
interruption continues. ``timings.json`` records the wall seconds each stage took in this call.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rdlab.atomic import atomic_write_text
from rdlab.classify import catalogue, pattern_store
from rdlab.classify.pattern_runs import PatternRunSettings
from rdlab.errors import DataError, OutputError, ParameterError
from rdlab.output_lock import hold
from rdlab.run_folder import check_apart
from rdlab.settings import Settings


@dataclass
class PaperSettings(Settings):
    """How the workflow runs (defaults: the paper's simulations, float64, early stopping).

    A config of the common base (:class:`rdlab.settings.Settings`).

    Parameters
    ----------
    runs : PatternRunSettings
        How each pattern is simulated: a section (a :class:`PatternRunSettings` or its
        mapping).
    scheduler : str or None, optional
        A dask scheduler address, ``"in-process"``, or ``None`` for a local cluster.
    workers : int or None, optional
        Processes of the local cluster (default: one per core).
    block : int, default 5
        Samples per task.
    train : dict
        :class:`~rdlab.classify.training.TrainConfig` overrides.
    progress : bool, default True
        Show progress bars.

    Raises
    ------
    ParameterError
        For a field of the wrong type or bad ``block``/``scheduler``/``workers`` values.
    """

    runs: PatternRunSettings = field(default_factory=PatternRunSettings)
    scheduler: str | None = None
    workers: int | None = None
    block: int = 5
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    progress: bool = True

    _what = "paper settings"

    def __post_init__(self) -> None:
        """Check the field types and the run options."""
        from rdlab.classify.generate import check_run_options

        self.check_types()  # runs a PatternRunSettings (or its mapping), train a mapping, ...
        check_run_options(self.block, self.scheduler, self.workers)


def make_dataset(name: str, path: Path, settings: PaperSettings) -> dict:
    """Simulate (or finish) the catalogue dataset ``name`` into ``path``.

    Parameters
    ----------
    name : str
        A set of :data:`~rdlab.classify.catalogue.SETS`.
    path : Path
        The pattern store.
    settings : PaperSettings
        How the workflow runs.

    Returns
    -------
    dict
        The run statistics of :func:`~rdlab.classify.generate.generate`.
    """
    from rdlab.classify.generate import generate

    table = catalogue.dataset_table(name)
    known = catalogue.classes(catalogue.set_pass(name))
    index = {c.key: i for i, c in enumerate(known)}
    return generate(path, [s.k for s in table], [s.f for s in table],
                    [s.seed for s in table], [index[s.label] for s in table], settings.runs,
                    [c.symbol for c in known], name, block=settings.block,
                    scheduler=settings.scheduler, n_workers=settings.workers,
                    progress=settings.progress)


def make_scan(path: Path, settings: PaperSettings, points=None) -> dict:
    """Simulate (or finish) a scan into ``path``.

    Parameters
    ----------
    path : Path
        The pattern store.
    settings : PaperSettings
        How the workflow runs.
    points : ScanPoints or None, optional
        The scan points; default the reference's 5481 points.

    Returns
    -------
    dict
        The run statistics of :func:`~rdlab.classify.generate.generate`.
    """
    from rdlab.classify.generate import generate
    from rdlab.classify.scan_layout import reference_scan

    points = points or reference_scan()
    return generate(path, points.k, points.f, points.seed, np.full(len(points), -1),
                    settings.runs, [], "scan", kind="scan", block=settings.block,
                    scheduler=settings.scheduler, n_workers=settings.workers,
                    progress=settings.progress)


def labelled_store(path: Path, role: str):
    """Open (and verify) a labelled dataset store for training; refuse a scan store.

    Parameters
    ----------
    path : Path
        The store.
    role : str
        Its role (``"training"``, ``"validation"``), named in errors.

    Returns
    -------
    xarray.Dataset
        The verified store.

    Raises
    ------
    DataError
        When the store is damaged, incomplete or has no labels.
    """
    ds = pattern_store.open_patterns(path)
    if ds.attrs.get("kind") == "scan" or (ds["label"].values < 0).any():
        raise DataError(f"{role} store {str(path)!r} has no labels (it is a scan, written by "
                        "`rdlab classify scan`); train needs datasets written by "
                        "`rdlab classify dataset`")
    return ds


def train_model(train_path: Path, val_path: Path, out: Path, overrides: dict,
                progress: bool = True) -> dict:
    """Train the CNN on two stored datasets (resumes from ``out/last.pt``).

    Both stores are verified before anything is written (a damaged or incomplete store, a
    scan without labels, or two stores with different class lists are refused).

    Parameters
    ----------
    train_path, val_path : Path
        The training and validation stores.
    out : Path
        The training folder.
    overrides : dict
        :class:`~rdlab.classify.training.TrainConfig` overrides.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    dict
        The summary of :func:`~rdlab.classify.training.train`.

    Raises
    ------
    DataError
        When a store is refused, both are the same store, or their class lists differ.
    ParameterError
        When a 3-D network is asked of stores with too few frames.
    """
    from rdlab.classify.cnn import MIN_FRAMES_3D
    from rdlab.classify.training import TrainConfig, train

    config = TrainConfig().replace(**overrides)  # old keys (time_limit_s) read as today's
    if Path(train_path).resolve() == Path(val_path).resolve():
        raise DataError(f"the training and validation stores are the same store "
                        f"{str(train_path)!r}; validation needs samples the model was not "
                        "trained on")
    check_apart(out, (train_path, val_path))
    tr = labelled_store(Path(train_path), "training")
    va = labelled_store(Path(val_path), "validation")
    classes = pattern_store.class_list(tr)
    if config.architecture == "3d" and tr.sizes["channel"] < MIN_FRAMES_3D:
        raise ParameterError(f"--architecture 3d needs stores of `rdlab classify dataset --3d` (at "
                             f"least {MIN_FRAMES_3D} frames); {str(train_path)!r} has "
                             f"{tr.sizes['channel']}")
    if pattern_store.class_list(va) != classes:
        raise DataError(f"{train_path} and {val_path} have different class lists "
                        f"({classes} and {pattern_store.class_list(va)})")
    return train(tr["frames"].values, tr["label"].values, va["frames"].values,
                 va["label"].values, classes, out, config, progress=progress,
                 train_points=np.stack([tr["k"].values, tr["f"].values], axis=1),
                 val_points=np.stack([va["k"].values, va["f"].values], axis=1),
                 data_settings=json.loads(tr.attrs["settings"]))


class _Timer:
    def __init__(self, path: Path):
        self.path = path
        self.times: dict[str, float] = {}

    def stage(self, name: str, work: Callable[[], object]) -> object:
        t0 = time.perf_counter()
        result = work()
        self.times[name] = round(time.perf_counter() - t0, 1)
        atomic_write_text(self.path, json.dumps(self.times, indent=1))
        return result


def _once(summary_file: Path, work: Callable[[], dict]) -> dict:
    """Run ``work()``, unless ``summary_file`` already exists (then read it back).

    The file is written with its whole folder, see
    :func:`~rdlab.run_folder.staged_run_folder`.
    """
    if summary_file.is_file():
        try:
            return json.loads(summary_file.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{str(summary_file)!r} cannot be read ({exc}); remove "
                            f"{str(summary_file.parent)!r} to redo that stage") from None
    return work()


def run_paper(out: str | Path, settings: PaperSettings | None = None,
              second_pass: bool = False, scan_points=None) -> dict:
    """Run (or finish) the workflow into ``out``.

    Settings are checked before any work starts; ``out`` is locked for the run.

    Parameters
    ----------
    out : str or Path
        The workflow folder: new, empty, or written by an earlier call.
    settings : PaperSettings or None, optional
        How the workflow runs (default :class:`PaperSettings`).
    second_pass : bool, default False
        Also run the second pass (π and the extra points, 16 classes).
    scan_points : ScanPoints or None, optional
        The scan points; default the reference's 5481 points.

    Returns
    -------
    dict
        The summary also written to ``out/summary.json`` (``summary_pass2.json`` with the
        second pass).

    Raises
    ------
    OutputError
        When ``out`` is a file, or a non-empty folder that this workflow did not write.
    ParameterError
        For bad settings.
    """
    from rdlab.classify.training import TrainConfig

    settings = settings or PaperSettings()
    TrainConfig().replace(**settings.train)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} is an existing file, not a folder")
    if out.is_dir() and any(out.iterdir()) \
            and not {p.name for p in out.iterdir()} & set(_PAPER_NAMES):
        raise OutputError(f"--out {str(out)!r} is a non-empty folder that `rdlab classify "
                          "paper` did not write; choose a new or empty folder")
    created = not out.exists()
    with hold(out):
        out.mkdir(parents=True, exist_ok=True)
        try:
            return _run_paper(out, settings, second_pass, scan_points)
        except BaseException:
            if created:  # refused before any result: leave no empty folders behind
                for folder in (out / "data", out):
                    _remove_if_only_locks(folder)
            raise


def _remove_if_only_locks(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but lock bookkeeping.

    Lock bookkeeping is the ``.NAME.lock``/``.owner`` files of outputs never written.
    """
    with contextlib.suppress(OSError):
        entries = list(folder.iterdir())
        if all(p.is_file() and p.name.startswith(".") and p.suffix in (".lock", ".owner")
               for p in entries):
            for p in entries:
                p.unlink()
            folder.rmdir()


#: What `rdlab classify paper` writes into its folder (a folder holding none of these is not its).
_PAPER_NAMES = ("data", "model", "evaluation", "scan.zarr", "classification", "model2",
                "evaluation2", "classification2", "timings.json", "timings_pass2.json",
                "summary.json")


def _run_paper(out: Path, settings: PaperSettings, second_pass: bool, scan_points) -> dict:
    from rdlab.classify.evaluation import evaluate_datasets
    from rdlab.classify.label_scan import changed_cells, classify_scan

    data = out / "data"
    timer = _Timer(out / ("timings_pass2.json" if second_pass else "timings.json"))
    summary: dict = {}
    for name in ("train", "val", "test"):
        timer.stage(f"dataset_{name}", lambda n=name: make_dataset(n, data / f"{n}.zarr",
                                                                     settings))
    timer.stage("train", lambda: train_model(data / "train.zarr", data / "val.zarr",
                                             out / "model", settings.train, settings.progress))
    sets = {n: data / f"{n}.zarr" for n in ("train", "val", "test")}
    summary["evaluation"] = timer.stage("evaluate", lambda: _once(
        out / "evaluation" / "evaluation.json",
        lambda: evaluate_datasets(out / "model", sets, out / "evaluation")))
    timer.stage("scan", lambda: make_scan(out / "scan.zarr", settings, scan_points))
    summary["classification"] = timer.stage("classify", lambda: _once(
        out / "classification" / "metrics.json",
        lambda: classify_scan(out / "scan.zarr", out / "model" / "best.pt",
                              out / "classification", progress=settings.progress)))
    if second_pass:
        for name in ("train2", "val2"):
            timer.stage(f"dataset_{name}",
                        lambda n=name: make_dataset(n, data / f"{n}.zarr", settings))
        timer.stage("train2", lambda: train_model(data / "train2.zarr", data / "val2.zarr",
                                                   out / "model2", settings.train,
                                                   settings.progress))
        sets2 = {"val2": data / "val2.zarr", "test": data / "test.zarr"}
        summary["evaluation2"] = timer.stage("evaluate2", lambda: _once(
            out / "evaluation2" / "evaluation.json",
            lambda: evaluate_datasets(out / "model2", sets2, out / "evaluation2")))
        summary["classification2"] = timer.stage("classify2", lambda: _once(
            out / "classification2" / "metrics.json",
            lambda: classify_scan(out / "scan.zarr", out / "model2" / "best.pt",
                                  out / "classification2", progress=settings.progress)))
        report = changed_cells(out / "classification" / "classification.zarr",
                               out / "classification2" / "classification.zarr")
        summary["second_pass"] = _second_pass_summary(report)
    summary["timings_s"] = timer.times
    atomic_write_text(out / ("summary_pass2.json" if second_pass else "summary.json"),
                      json.dumps(summary, indent=1, ensure_ascii=False))
    return summary


def _second_pass_summary(report: dict) -> dict:
    """Return the changed cells, and the centre and extent of each new class.

    For π, the paper has k ≈ 0.0606, f ≈ 0.068.
    """
    out = {"points": report["points"], "changed": report["changed"], "new_classes": {}}
    for c, pts in report["new_classes"].items():
        k = np.array([p["k"] for p in pts])
        f = np.array([p["f"] for p in pts])
        out["new_classes"][c] = {
            "cells": int(k.size),
            "k_mean": float(k.mean()) if k.size else None,
            "f_mean": float(f.mean()) if k.size else None,
            "k_range": [float(k.min()), float(k.max())] if k.size else None,
            "f_range": [float(f.min()), float(f.max())] if k.size else None,
        }
    return out
