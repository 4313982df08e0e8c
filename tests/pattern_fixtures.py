"""Small pattern stores, models and CLI runs for the Classify tests.

The paper's runs (128², 60 000 steps) are far too slow for tests, so these use 48² grids and
400 steps (:data:`SMALL`), and a labelled table of 13 samples spread over the classes
(every 60th sample of the paper's table). :func:`use_small_runs` makes ``rdlab classify
dataset`` and ``rdlab classify scan`` run with them, so the CLI itself (checks, locks,
resume) is what is tested;
``python -m pattern_fixtures [--steps N] ARGS…`` (with ``tests`` on ``PYTHONPATH``) is
``rdlab ARGS…`` with small runs (of ``N`` steps), for the kill-and-resume subprocesses.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from rdlab.classify import catalogue
from rdlab.classify.generate import IN_PROCESS, generate
from rdlab.classify.pattern_runs import PatternRunSettings
from rdlab.classify.scan_layout import value_grid

SMALL = PatternRunSettings(size=48, n_steps=400, snapshot_steps=(200, 300, 400),
                           check_every=100)
#: Every this many samples of a paper table make the small table.
EVERY = 60
#: Arguments of `rdlab classify scan` for a small 12-point scan.
SCAN_ARGS = ("--k", "0.045:0.065:4", "--f", "0.01:0.05:3", "--scheduler", IN_PROCESS,
             "--block", "2")

_paper_table = catalogue.dataset_table


def small_table(name: str):
    return _paper_table(name)[::EVERY]


def runs(steps: int | None = None) -> PatternRunSettings:
    """:data:`SMALL`, or the same with ``steps`` steps (snapshots at 1/2, 3/4 and the end)."""
    if steps is None:
        return SMALL
    return replace(SMALL, n_steps=steps, snapshot_steps=(steps // 2, 3 * steps // 4, steps))


def use_small_runs(setattr_=setattr, steps: int | None = None) -> None:
    """Make the CLI's dataset/scan commands run :func:`runs` settings on the small tables
    (``setattr_``: ``monkeypatch.setattr`` in a test, plain ``setattr`` in a subprocess)."""
    import rdlab.cli.classify

    base = runs(steps)

    def settings(mode: str, stack3d: bool, dtype: str, early_stop: bool):
        return replace(base, initial_mode=mode, dtype=dtype, early_stop=early_stop)

    setattr_(rdlab.cli.classify, "_settings", settings)
    setattr_(catalogue, "dataset_table", small_table)


def make_dataset_store(path: Path, name: str = "train", block: int = 4) -> Path:
    """A small labelled store (13 samples of the paper's ``name`` table, all classes
    listed) through the Python API."""
    table = small_table(name)
    known = catalogue.classes(catalogue.set_pass(name))
    index = {c.key: i for i, c in enumerate(known)}
    generate(path, [s.k for s in table], [s.f for s in table], [s.seed for s in table],
             [index[s.label] for s in table], SMALL, [c.symbol for c in known], name,
             block=block, scheduler=IN_PROCESS, progress=False)
    return path


def make_scan_store(path: Path, block: int = 2) -> Path:
    """A small unlabelled 12-point scan store through the Python API (the same points and
    seeds as ``rdlab classify scan`` with :data:`SCAN_ARGS`)."""
    import numpy as np

    points = value_grid(np.linspace(0.045, 0.065, 4), np.linspace(0.01, 0.05, 3))
    generate(path, points.k, points.f, points.seed, np.full(len(points), -1), SMALL, [],
             "scan", kind="scan", block=block, scheduler=IN_PROCESS, progress=False)
    return path


def make_model(folder: Path, train: Path, val: Path, epochs: int = 2) -> Path:
    """A tiny model folder trained on two small stores; returns its ``best.pt``."""
    from rdlab.classify.paper_pipeline import train_model

    train_model(train, val, folder, {"epochs": epochs, "patience": None, "batch_size": 8},
                progress=False)
    return folder / "best.pt"


if __name__ == "__main__":
    from rdlab.cli import app

    args = sys.argv[1:]
    steps = None
    if args[:1] == ["--steps"]:
        steps, args = int(args[1]), args[2:]
    use_small_runs(steps=steps)
    app(args, prog_name="rdlab")


def build_small_world(root: Path, epochs: int = 2) -> dict[str, Path]:
    """Good stores, a trained model folder and a classification of the scan under ``root``:
    ``{"scan", "train", "val", "model", "cls"}``."""
    from rdlab.classify.label_scan import classify_scan

    scan = make_scan_store(root / "scan.zarr")
    train = make_dataset_store(root / "train.zarr", "train")
    val = make_dataset_store(root / "val.zarr", "val")
    make_model(root / "model", train, val, epochs=epochs)
    classify_scan(scan, root / "model" / "best.pt", root / "cls", progress=False)
    return {"scan": scan, "train": train, "val": val, "model": root / "model",
            "cls": root / "cls"}
