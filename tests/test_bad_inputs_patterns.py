"""Bad invocations of the Classify commands (``rdlab classify`` dataset, scan, train, evaluate,
saliency, label, paper): each is refused before any simulation or training with exit code 2,
one message naming the culprit, no traceback and no file added or changed
(:mod:`cli_contract`). The table's ``args`` follow ``rdlab classify``.

An argument ``@NAME[/rest]`` stands for a small good store or folder built once for the
module (``scan``: a scan store, ``train``/``val``: pass-1 datasets, ``val2``: a pass-2
dataset, ``incomplete``: a store with no block simulated, ``model``: a model folder,
``cls``: a classification run folder, ``run``: a small ``rdlab simulate`` Gray–Scott sweep),
copied into the test's folder first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_contract import Bad, assert_refused, make_files
from pattern_fixtures import (
    SCAN_ARGS,
    SMALL,
    build_small_world,
    make_dataset_store,
    use_small_runs,
)

from rdlab import dask_cluster
from rdlab.classify import pattern_store

CSV = ("data.csv", "k,f\n0.05,0.02\n")
YAML = ("config.yaml", "steps: 10\n")
NOTES = ("folder/notes.txt", "not a store\n")
BROKEN = ("broken.zarr/frames/.zarray", "{}")
TORCH_LIKE = ("model.pt", b"\x80\x02not really a torch file")
GRID = ("--k", "0.05", "--f", "0.02", "--scheduler", "in-process")

BAD = [
    # ------------------------------------------------------------------ dataset
    Bad("dataset-unknown-set", ("dataset", "training", "--out", "d.zarr"), "training"),
    Bad("dataset-mode", ("dataset", "train", "--mode", "fancy", "--out", "d.zarr"), "fancy"),
    Bad("dataset-dtype", ("dataset", "train", "--dtype", "float16", "--out", "d.zarr"),
        "float16"),
    Bad("dataset-block-0", ("dataset", "train", "--block", "0", "--out", "d.zarr"),
        r"block.*got 0"),
    Bad("dataset-block-negative", ("dataset", "train", "--block", "-3", "--out", "d.zarr"),
        r"block.*-3"),
    Bad("dataset-block-text", ("dataset", "train", "--block", "abc"), r"block|abc"),
    Bad("dataset-workers-0", ("dataset", "train", "--workers", "0", "--out", "d.zarr"),
        r"workers.*got 0"),
    Bad("dataset-workers-negative", ("dataset", "train", "--workers", "-2", "--out",
                                     "d.zarr"), r"workers.*-2"),
    Bad("dataset-block-huge", ("dataset", "train", "--block", str(2**70), "--out", "d.zarr"),
        r"block.*from 1 to 100,000"),
    Bad("dataset-workers-huge", ("dataset", "train", "--workers", "100000", "--out",
                                 "d.zarr"), r"workers must be an integer from 1 to \d+ .*100000"),
    Bad("dataset-out-inside-a-store", ("dataset", "train", "--out", "@val/inner.zarr",
                                       "--scheduler", "in-process"),
        r"'val\.zarr/inner\.zarr'.*inside the zarr store '.*val\.zarr'"),
    Bad("dataset-workers-with-scheduler", ("dataset", "train", "--workers", "2",
                                           "--scheduler", "in-process", "--out", "d.zarr"),
        r"workers=2.*in-process"),
    Bad("dataset-scheduler-blank", ("dataset", "train", "--scheduler", " ", "--out",
                                    "d.zarr"), "scheduler"),
    Bad("dataset-out-file", ("dataset", "train", "--out", "data.csv", "--scheduler",
                             "in-process"), r"data\.csv.*file", (CSV,)),
    Bad("dataset-out-foreign-folder", ("dataset", "train", "--out", "folder", "--scheduler",
                                       "in-process"), r"folder.*not a zarr store", (NOTES,)),
    Bad("dataset-out-no-metadata", ("dataset", "train", "--out", "broken.zarr",
                                    "--scheduler", "in-process"),
        r"broken\.zarr.*metadata", (BROKEN,)),
    Bad("dataset-out-other-table", ("dataset", "train", "--out", "@scan", "--scheduler",
                                    "in-process"), r"scan\.zarr.*different table"),
    # ------------------------------------------------------------------ scan
    Bad("scan-k-only", ("scan", "--k", "0.04:0.06:3", "--out", "s.zarr"), "--f"),
    Bad("scan-f-only", ("scan", "--f", "0.04:0.06:3", "--out", "s.zarr"), "--k"),
    Bad("scan-count-0", ("scan", "--k", "0.06:0.02:0", "--f", "0.02", "--out", "s.zarr"),
        r"k.*0\.06:0\.02:0"),
    Bad("scan-k-text", ("scan", "--k", "abc", "--f", "0.02", "--out", "s.zarr"), "abc"),
    Bad("scan-k-negative", ("scan", "--k", "-0.01", "--f", "0.02", "--out", "s.zarr"),
        r"k = -0\.01"),
    Bad("scan-f-nan", ("scan", "--k", "0.05", "--f", "nan", "--out", "s.zarr"), r"'f'.*nan"),
    Bad("scan-f-unstable", ("scan", "--k", "0.05", "--f", "100", "--out", "s.zarr"),
        r"f = 100"),
    Bad("scan-mode", ("scan", *GRID, "--mode", "fancy", "--out", "s.zarr"), "fancy"),
    Bad("scan-dtype", ("scan", *GRID, "--dtype", "int8", "--out", "s.zarr"), "int8"),
    Bad("scan-block-0", ("scan", *GRID, "--block", "0", "--out", "s.zarr"), r"block.*got 0"),
    Bad("scan-workers-0", ("scan", "--k", "0.05", "--f", "0.02", "--workers", "0", "--out",
                           "s.zarr"), r"workers.*got 0"),
    Bad("scan-k-twice", ("scan", "--k", "0.05,0.05", "--f", "0.02", "--out", "s.zarr"),
        r"--k '0\.05,0\.05' lists k = 0\.05 twice"),
    Bad("scan-out-inside-a-store", ("scan", *GRID, "--out", "@scan/x.zarr"),
        r"inside the zarr store '.*scan\.zarr'"),
    Bad("scan-out-file", ("scan", *GRID, "--out", "data.csv"), r"data\.csv.*file", (CSV,)),
    Bad("scan-out-dataset-store", ("scan", *SCAN_ARGS, "--out", "@train"),
        r"train\.zarr.*different table"),
    Bad("scan-out-classification", ("scan", *SCAN_ARGS, "--out",
                                    "@cls/classification.zarr"), r"not a pattern store"),
    # ------------------------------------------------------------------ train
    Bad("train-missing-store", ("train", "nope.zarr", "@val", "--out", "m"),
        r"nope\.zarr.*does not exist"),
    Bad("train-csv-store", ("train", "data.csv", "@val", "--out", "m"),
        r"data\.csv.*file", (CSV,)),
    Bad("train-yaml-val-store", ("train", "@train", "config.yaml", "--out", "m"),
        r"config\.yaml.*file", (YAML,)),
    Bad("train-folder-not-store", ("train", "folder", "@val", "--out", "m"),
        r"folder.*not a zarr store", (NOTES,)),
    Bad("train-scan-store", ("train", "@scan", "@val", "--out", "m"),
        r"scan\.zarr.*has no labels"),
    Bad("train-incomplete-store", ("train", "@incomplete", "@val", "--out", "m"),
        r"incomplete\.zarr.*incomplete"),
    Bad("train-class-lists", ("train", "@train", "@val2", "--out", "m"),
        r"different class lists"),
    Bad("train-epochs-0", ("train", "@train", "@val", "--epochs", "0", "--out", "m"),
        r"epochs.*0"),
    Bad("train-patience-0", ("train", "@train", "@val", "--patience", "0", "--out", "m"),
        r"patience.*0"),
    Bad("train-seed-negative", ("train", "@train", "@val", "--seed", "-1", "--out", "m"),
        r"seed.*-1"),
    Bad("train-architecture", ("train", "@train", "@val", "--architecture", "4d", "--out",
                               "m"), "4d"),
    Bad("train-minutes-0", ("train", "@train", "@val", "--minutes", "0", "--out", "m"),
        r"--minutes.*0"),
    Bad("train-minutes-nan", ("train", "@train", "@val", "--minutes", "nan", "--out", "m"),
        r"--minutes.*nan"),
    Bad("train-time-budget-bare", ("train", "@train", "@val", "--time-budget", "20", "--out",
                                   "m"), r"--time-budget needs a unit: write 20s, 20m or 20h"),
    Bad("train-time-budget-0", ("train", "@train", "@val", "--time-budget", "0m", "--out", "m"),
        r"--time-budget must be a positive finite duration.*'0m'"),
    Bad("train-time-budget-unit", ("train", "@train", "@val", "--time-budget", "2d", "--out",
                                   "m"), r"--time-budget .*unit s, m or h.*'2d'"),
    Bad("train-time-budget-and-minutes", ("train", "@train", "@val", "--time-budget", "2m",
                                          "--minutes", "2", "--out", "m"),
        r"--time-budget or --minutes \(its old name\), not both"),
    Bad("train-device", ("train", "@train", "@val", "--device", "tpu", "--out", "m"),
        "tpu"),
    Bad("train-out-file", ("train", "@train", "@val", "--out", "data.csv"),
        r"data\.csv.*file", (CSV,)),
    Bad("train-out-foreign-folder", ("train", "@train", "@val", "--out", "folder"),
        r"folder.*non-empty", (NOTES,)),
    Bad("train-out-is-a-store", ("train", "@train", "@val", "--out", "@val"),
        r"--out 'val\.zarr' is the input 'val\.zarr'"),
    Bad("train-same-store-twice", ("train", "@train", "./train.zarr", "--out", "m"),
        r"training and validation stores are the same store"),
    Bad("train-out-inside-a-store", ("train", "@train", "@val", "--out", "train.zarr/m"),
        r"--out 'train\.zarr/m' lies inside the input 'train\.zarr'"),
    Bad("train-epochs-huge", ("train", "@train", "@val", "--epochs", str(2**70), "--out",
                              "m"), r"epochs must be an integer from 1 to 1,000,000"),
    Bad("train-seed-beyond-int64", ("train", "@train", "@val", "--seed", str(2**64), "--out",
                                    "m"), r"seed must be an integer from 0 to \d+, got 1844"),
    Bad("train-3d-on-2d-stores", ("train", "@train", "@val", "--architecture", "3d", "--out",
                                  "m"), r"--architecture 3d needs stores of "
        r"`rdlab classify dataset --3d`.*'train\.zarr' has 3"),
    # ------------------------------------------------------------------ evaluate
    Bad("evaluate-missing-model", ("evaluate", "nope.pt", "@val", "--out", "e"),
        r"nope\.pt"),
    Bad("evaluate-csv-model", ("evaluate", "data.csv", "@val", "--out", "e"),
        r"data\.csv.*torch", (CSV,)),
    Bad("evaluate-garbage-model", ("evaluate", "model.pt", "@val", "--out", "e"),
        r"model\.pt.*torch", (TORCH_LIKE,)),
    Bad("evaluate-folder-without-model", ("evaluate", "folder", "@val", "--out", "e"),
        r"folder.*best\.pt", (NOTES,)),
    Bad("evaluate-scan-store", ("evaluate", "@model", "@scan", "--out", "e"),
        r"scan\.zarr.*no labels"),
    Bad("evaluate-missing-data", ("evaluate", "@model", "nope.zarr", "--out", "e"),
        r"nope\.zarr"),
    Bad("evaluate-yaml-data", ("evaluate", "@model", "config.yaml", "--out", "e"),
        r"config\.yaml", (YAML,)),
    Bad("evaluate-unknown-classes", ("evaluate", "@model", "@val2", "--out", "e"),
        r"val2\.zarr.*classes"),
    Bad("evaluate-same-name-twice", ("evaluate", "@model", "@val", "folder/val.zarr",
                                     "--out", "e"), r"named 'val'"),
    Bad("evaluate-out-file", ("evaluate", "@model", "@val", "--out", "data.csv"),
        r"data\.csv.*file", (CSV,)),
    Bad("evaluate-out-foreign-folder", ("evaluate", "@model", "@val", "--out", "folder"),
        r"folder.*non-empty", (NOTES,)),
    # an evaluation into the model's folder would have replaced (deleted) the model
    Bad("evaluate-out-is-the-model-folder", ("evaluate", "@model", "@val", "--out", "model"),
        r"--out 'model' holds the input 'model/best\.pt' \(replacing it would delete"),
    Bad("evaluate-out-is-another-model", ("evaluate", "@model", "@val", "--out", "m2"),
        r"--out 'm2' is a model folder of `rdlab classify train`",
        (("m2/best.pt", b"x"), ("m2/history.json", "[]"))),
    # ------------------------------------------------------------------ saliency
    Bad("saliency-missing-model", ("saliency", "nope.pt", "@val", "--out", "s"), r"nope\.pt"),
    Bad("saliency-scan-store", ("saliency", "@model", "@scan", "--out", "s"),
        r"scan\.zarr.*no labels"),
    Bad("saliency-csv-data", ("saliency", "@model", "data.csv", "--out", "s"),
        r"data\.csv.*file", (CSV,)),
    Bad("saliency-out-file", ("saliency", "@model", "@val", "--out", "data.csv"),
        r"data\.csv.*file", (CSV,)),
    Bad("saliency-out-is-the-model-folder", ("saliency", "@model", "@val", "--out", "model"),
        r"--out 'model' holds the input 'model/best\.pt'"),
    # ------------------------------------------------------------------ classify
    Bad("classify-out-is-the-model-folder", ("label", "@scan", "@model", "--out",
                                             "model"), r"--out 'model' holds the input"),
    Bad("classify-out-inside-the-scan", ("label", "@scan", "@model", "--out",
                                         "scan.zarr/c"),
        r"--out 'scan\.zarr/c' lies inside the input 'scan\.zarr'"),
    Bad("classify-csv-scan", ("label", "data.csv", "@model", "--out", "c"),
        r"data\.csv.*file", (CSV,)),
    Bad("classify-missing-scan", ("label", "nope.zarr", "@model", "--out", "c"),
        r"nope\.zarr.*does not exist"),
    Bad("classify-yaml-model", ("label", "@scan", "config.yaml", "--out", "c"),
        r"config\.yaml.*torch", (YAML,)),
    Bad("classify-missing-model", ("label", "@scan", "nope.pt", "--out", "c"),
        r"nope\.pt"),
    Bad("classify-incomplete-scan", ("label", "@incomplete", "@model", "--out", "c"),
        r"incomplete\.zarr.*incomplete"),
    Bad("classify-compare-missing", ("label", "@scan", "@model", "--out", "c",
                                     "--compare", "nope.zarr"), r"nope\.zarr.*does not exist"),
    Bad("classify-compare-csv", ("label", "@scan", "@model", "--out", "c", "--compare",
                                 "data.csv"), r"data\.csv.*file", (CSV,)),
    Bad("classify-compare-pattern-store", ("label", "@scan", "@model", "--out", "c",
                                           "--compare", "@train"),
        r"train\.zarr.*not a classification"),
    Bad("classify-compare-other-scan", ("label", "@train", "@model", "--out", "c",
                                        "--compare", "@cls/classification.zarr"),
        r"classification\.zarr.*another scan"),
    Bad("classify-out-file", ("label", "@scan", "@model", "--out", "data.csv"),
        r"data\.csv.*file", (CSV,)),
    Bad("classify-out-foreign-folder", ("label", "@scan", "@model", "--out", "folder"),
        r"folder.*non-empty", (NOTES,)),
    Bad("classify-run-unlike-the-bundled-training-data", ("label", "@run"),
        r"run 'run' differs from the model's training data .*grid 48×48 \(the run\) against "
        r"128×128 \(the training data\)"),
    Bad("classify-run-with-out", ("label", "@run", "bundled", "--out", "c"),
        r"--out is for scan stores.*'run'"),
    Bad("classify-run-with-compare", ("label", "@run", "--compare", "@cls/classification.zarr"),
        r"--compare is for scan stores"),
    Bad("classify-run-min-confidence", ("label", "@run", "--min-confidence", "1.5"),
        r"--min-confidence must be a probability in \[0, 1\], got 1\.5"),
    Bad("classify-run-missing-model", ("label", "@run", "nope.pt"), r"no model at 'nope\.pt'"),
    Bad("classify-run-yaml-model", ("label", "@run", "config.yaml"),
        r"config\.yaml.*torch", (YAML,)),
    # ------------------------------------------------------------------ paper
    Bad("paper-mode", ("paper", "--mode", "fancy", "--out", "p"), "fancy"),
    Bad("paper-dtype", ("paper", "--dtype", "float16", "--out", "p"), "float16"),
    Bad("paper-workers-0", ("paper", "--workers", "0", "--out", "p"), r"workers.*got 0"),
    Bad("paper-scheduler-blank", ("paper", "--scheduler", "", "--out", "p"), "scheduler"),
    Bad("paper-workers-huge", ("paper", "--workers", "100000", "--out", "p"),
        r"workers must be an integer from 1 to \d+"),
    Bad("paper-out-is-a-store", ("paper", "--out", "@val", "--scheduler", "in-process"),
        r"--out 'val\.zarr' is a non-empty folder that `rdlab classify paper` did not write"),
    Bad("paper-scheduler-without-port", ("paper", "--scheduler", "tcp://", "--out", "p"),
        r"dask scheduler 'tcp://'"),  # and no empty p/ or p/data/ left behind
    Bad("paper-out-file", ("paper", "--out", "data.csv", "--scheduler", "in-process"),
        r"data\.csv.*file", (CSV,)),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("built")
    world = build_small_world(root, epochs=1)
    incomplete = root / "incomplete.zarr"
    pattern_store.create(incomplete, [0.05, 0.06], [0.02, 0.03], [1, 2], [0, 1], SMALL,
                         ["α", "β"], "train", block=1)
    from rdlab.simulate_job.run import run_simulation
    from rdlab.simulate_job.spec import SimulationSpec

    run_simulation(SimulationSpec.from_dict(
        {"preset": "gray-scott", "grid": "48", "steps": 400, "snapshots": 5, "movie": "none",
         "parameters": {"k": "0.05,0.06", "f": 0.03}}), root / "run", progress=False)
    return {**world, "val2": make_dataset_store(root / "val2.zarr", "val2"),
            "incomplete": incomplete, "run": root / "run"}


def _place(args, built: dict[str, Path], root: Path) -> list[str]:
    out = []
    for arg in args:
        if arg.startswith("@"):
            name, _, rest = arg[1:].partition("/")
            source = built[name]
            if not (root / source.name).exists():
                shutil.copytree(source, root / source.name)
            arg = source.name + (f"/{rest}" if rest else "")
        out.append(arg)
    return out


def test_the_table_is_large_and_covers_every_command():
    assert len(BAD) >= 45
    assert len({b.id for b in BAD}) == len(BAD)
    assert {b.args[0] for b in BAD} == {"dataset", "scan", "train", "evaluate", "saliency",
                                        "label", "paper"}


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
def test_refused(bad, built, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    use_small_runs(monkeypatch.setattr)
    make_files(tmp_path, bad.files)
    if bad.id == "evaluate-same-name-twice":
        shutil.copytree(built["val"], tmp_path / "folder" / "val.zarr")
    args = _place(bad.args, built, tmp_path)
    assert_refused(["classify", *args], tmp_path, bad.match)


def test_unreachable_scheduler_fails_fast_and_leaves_no_store(tmp_path, monkeypatch):
    import time


    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dask_cluster, "CONNECT_TIMEOUT_S", 2.0)
    t0 = time.perf_counter()
    message = assert_refused(["classify", "scan", "--k", "0.05", "--f", "0.02", "--scheduler",
                              "tcp://127.0.0.1:9", "--out", "s.zarr"], tmp_path,
                             r"tcp://127\.0\.0\.1:9.*within 2 s")
    assert time.perf_counter() - t0 < 15, message
    assert not any(p.name.startswith("s.zarr") or ".s.zarr." in p.name
                   for p in tmp_path.iterdir() if not p.name.endswith((".lock", ".owner")))


def test_scan_values_are_used_as_given(tmp_path, monkeypatch):
    """A list of k values is scanned as given, not respaced into min:max:count."""
    from typer.testing import CliRunner

    from rdlab.cli import app

    monkeypatch.chdir(tmp_path)
    use_small_runs(monkeypatch.setattr)
    result = CliRunner().invoke(app, ["classify", "scan", "--k", "0.05,0.051,0.07", "--f",
                                      "0.02", "--scheduler", "in-process", "--out", "s.zarr"])
    assert result.exit_code == 0, result.output
    ds = pattern_store.open_patterns(tmp_path / "s.zarr")
    np.testing.assert_array_equal(ds["k"].values, [0.05, 0.051, 0.07])
