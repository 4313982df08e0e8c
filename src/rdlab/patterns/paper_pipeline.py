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

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rdlab.patterns import catalogue, pattern_store
from rdlab.patterns.pattern_runs import PatternRunSettings


@dataclass
class PaperSettings:
    """How the workflow runs (defaults: the paper's simulations, float64, early stopping)."""

    runs: PatternRunSettings = field(default_factory=PatternRunSettings)
    scheduler: str | None = None
    workers: int | None = None
    block: int = 5
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    progress: bool = True


def make_dataset(name: str, path: Path, settings: PaperSettings) -> dict:
    """Simulate (or finish) the catalogue dataset ``name`` into ``path``."""
    from rdlab.patterns.generate import generate

    table = catalogue.dataset_table(name)
    known = catalogue.classes(catalogue.set_pass(name))
    index = {c.key: i for i, c in enumerate(known)}
    return generate(path, [s.k for s in table], [s.f for s in table],
                    [s.seed for s in table], [index[s.label] for s in table], settings.runs,
                    [c.symbol for c in known], name, block=settings.block,
                    scheduler=settings.scheduler, n_workers=settings.workers,
                    progress=settings.progress)


def make_scan(path: Path, settings: PaperSettings, points=None) -> dict:
    """Simulate (or finish) a scan (default: the reference's 5481 points) into ``path``."""
    from rdlab.patterns.generate import generate
    from rdlab.patterns.scan_layout import reference_scan

    points = points or reference_scan()
    return generate(path, points.k, points.f, points.seed, np.full(len(points), -1),
                    settings.runs, [], "scan", kind="scan", block=settings.block,
                    scheduler=settings.scheduler, n_workers=settings.workers,
                    progress=settings.progress)


def train_model(train_path: Path, val_path: Path, out: Path, overrides: dict,
                progress: bool = True) -> dict:
    """Train the CNN on two stored datasets (resumes from ``out/last.pt``)."""
    from rdlab.patterns.training import TrainConfig, train

    tr = pattern_store.open_patterns(train_path)
    va = pattern_store.open_patterns(val_path)
    classes = pattern_store.class_list(tr)
    if pattern_store.class_list(va) != classes:
        raise ValueError(f"{train_path} and {val_path} have different class lists")
    config = TrainConfig.from_dict({**TrainConfig().to_dict(), **overrides})
    return train(tr["frames"].values, tr["label"].values, va["frames"].values,
                 va["label"].values, classes, out, config, progress=progress)


class _Timer:
    def __init__(self, path: Path):
        self.path = path
        self.times: dict[str, float] = {}

    def stage(self, name: str, work: Callable[[], object]) -> object:
        t0 = time.perf_counter()
        result = work()
        self.times[name] = round(time.perf_counter() - t0, 1)
        self.path.write_text(json.dumps(self.times, indent=1))
        return result


def _once(summary_file: Path, work: Callable[[], dict]) -> dict:
    """``work()``, unless ``summary_file`` (the JSON it writes last) already exists."""
    if summary_file.is_file():
        return json.loads(summary_file.read_text())
    return work()


def run_paper(out: str | Path, settings: PaperSettings | None = None,
              second_pass: bool = False, scan_points=None) -> dict:
    """Run (or finish) the workflow into ``out``; returns the summary also written to
    ``out/summary.json``."""
    from rdlab.patterns.classify import changed_cells, classify_scan
    from rdlab.patterns.evaluation import evaluate_datasets

    settings = settings or PaperSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    (out / ("summary_pass2.json" if second_pass else "summary.json")).write_text(
        json.dumps(summary, indent=1, ensure_ascii=False))
    return summary


def _second_pass_summary(report: dict) -> dict:
    """Changed cells, and the centre and extent of each new class (π: paper k ≈ 0.0606,
    f ≈ 0.068)."""
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
