"""The Classify commands end to end on small inputs, and their error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rdlab.classify import pattern_store
from rdlab.classify.evaluation import bundled_model_path
from rdlab.classify.pattern_runs import PatternRunSettings, simulate_patterns
from rdlab.cli import app

runner = CliRunner()

needs_model = pytest.mark.skipif(not bundled_model_path().is_file(),
                                 reason="the bundled CNN has not been trained yet")


def test_dataset_rejects_unknown_set(tmp_path):
    result = runner.invoke(app, ["classify", "dataset", "training", "--out",
                                 str(tmp_path / "x.zarr")])
    assert result.exit_code == 2
    assert "training" in result.output and "train" in result.output


def test_scan_rejects_half_a_grid(tmp_path):
    result = runner.invoke(app, ["classify", "scan", "--k", "0.04:0.06:3", "--out",
                                 str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "--f" in result.output


def test_evaluate_names_a_missing_model(tmp_path):
    result = runner.invoke(app, ["classify", "evaluate", str(tmp_path / "nope"),
                                 str(tmp_path / "d.zarr")])
    assert result.exit_code == 2
    assert "nope" in result.output


@needs_model
def test_scan_then_classify_with_the_bundled_model(tmp_path):
    scan = tmp_path / "scan.zarr"
    result = runner.invoke(app, ["classify", "scan", "--k", "0.05:0.065:2", "--f",
                                 "0.005:0.035:2", "--dtype", "float32", "--scheduler", "in-process",
                                 "--out", str(scan)])
    assert result.exit_code == 0, result.output
    ds = pattern_store.open_patterns(scan)
    assert ds["frames"].shape == (4, 3, 128, 128)
    out = tmp_path / "cls"
    result = runner.invoke(app, ["classify", str(scan), "bundled", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["points"] == 4
    # (k, f) = (0.05, 0.005) sits in the trivial state U = 1: class H, stopped early
    assert ds["stopped_step"].values[0] > 0
    import xarray as xr

    cls = xr.open_zarr(out / "classification.zarr")
    classes = list(cls["class"].values)
    assert classes[int(cls["predicted"].values[0])] == "H"
    for name in ("phase_map.png", "explorer.html"):
        assert (out / name).stat().st_size > 1000


@needs_model
def test_early_stop_keeps_the_class():
    """L and H runs stopped early (float32 tolerances) differ from full runs by < 2e-4 and
    get the same class."""
    from rdlab.classify.cnn import load_model
    from rdlab.classify.training import predict

    k, f, seeds = [0.055, 0.05], [0.035, 0.005], [11, 12]
    short, stopped = simulate_patterns(k, f, seeds, PatternRunSettings(dtype="float32"))
    full, never = simulate_patterns(k, f, seeds, PatternRunSettings(dtype="float32",
                                                                    early_stop=False))
    assert (stopped > 0).all() and (never == -1).all()
    assert np.abs(short - full).max() < 2e-4
    model, classes, _ = load_model(bundled_model_path())
    a, b = predict(model, short).argmax(1), predict(model, full).argmax(1)
    np.testing.assert_array_equal(a, b)
    assert [classes[i] for i in a] == ["L", "H"]


# --------------------------------------------------------------------------- locks, staging


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Small good stores and a model folder (see pattern_fixtures)."""
    from pattern_fixtures import make_dataset_store, make_model, make_scan_store

    root = tmp_path_factory.mktemp("small")
    scan = make_scan_store(root / "scan.zarr")
    train = make_dataset_store(root / "train.zarr", "train")
    val = make_dataset_store(root / "val.zarr", "val")
    make_model(root / "model", train, val, epochs=1)
    return {"scan": scan, "train": train, "val": val, "model": root / "model"}


_HOLDER = """
import sys, time
from contextlib import ExitStack
from rdlab.output_lock import hold
with ExitStack() as stack:
    for path in sys.argv[1:]:
        stack.enter_context(hold(path, command="the test's holder"))
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_of_any_output_gets_the_lock_error(small, tmp_path, monkeypatch):
    """Another process holds the lock of each output: every writing command is refused at
    once with a message naming the holder, and writes nothing."""
    import subprocess
    import sys

    from cli_contract import assert_refused
    from pattern_fixtures import SCAN_ARGS, use_small_runs

    monkeypatch.chdir(tmp_path)
    use_small_runs(monkeypatch.setattr)
    outputs = ["s.zarr", "d.zarr", "m", "e", "sal", "c", "p"]
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, *outputs], cwd=tmp_path,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        s, tr, va, m = (str(small[n]) for n in ("scan", "train", "val", "model"))
        for args in (["scan", *SCAN_ARGS, "--out", "s.zarr"],
                     ["dataset", "train", "--scheduler", "in-process", "--out", "d.zarr"],
                     ["train", tr, va, "--epochs", "1", "--out", "m"],
                     ["evaluate", m, va, "--out", "e"],
                     ["saliency", m, va, "--out", "sal"],
                     ["label", s, m, "--out", "c"],
                     ["paper", "--scheduler", "in-process", "--out", "p"]):
            message = assert_refused(["classify", *args], tmp_path,
                                     r"is being written by process .*the test's holder")
            assert repr(args[-1]) in message
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []


def _files(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("failing", ["save_class_montage", "write_explorer"])
def test_a_classify_that_fails_half_way_leaves_no_result(small, tmp_path, monkeypatch,
                                                         failing):
    from rdlab import viz

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    out = tmp_path / "cls"
    args = ["classify", "label", str(small["scan"]), str(small["model"]), "--out", str(out)]
    monkeypatch.setattr(viz, failing, boom)
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)
    assert sorted(p.name for p in tmp_path.iterdir()
                  if not p.name.endswith((".lock", ".owner"))) == []
    # over an earlier good classification: the earlier one stays, untouched
    monkeypatch.undo()
    assert runner.invoke(app, args).exit_code == 0
    before = _files(out)
    monkeypatch.setattr(viz, failing, boom)
    result = runner.invoke(app, [*args, "--compare", str(out / "classification.zarr")])
    assert isinstance(result.exception, RuntimeError)
    assert _files(out) == before and not (out / "changed_cells.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()
                  if not p.name.endswith((".lock", ".owner"))) == ["cls"]


def test_an_evaluation_that_fails_half_way_leaves_no_result(small, tmp_path, monkeypatch):
    import rdlab.viz.classify_figures as phase_map

    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    original = phase_map.save_confusion_matrix
    monkeypatch.setattr(phase_map, "save_confusion_matrix", second_fails)
    result = runner.invoke(app, ["classify", "evaluate", str(small["model"]),
                                 str(small["train"]), str(small["val"]), "--out",
                                 str(tmp_path / "e")])
    assert isinstance(result.exception, RuntimeError) and len(calls) == 2
    assert not (tmp_path / "e").exists()
    assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name] == []


def test_an_interrupted_store_creation_leaves_nothing_that_blocks_a_rerun(tmp_path,
                                                                          monkeypatch):
    """A store is created under a temporary name and renamed into place: an error while
    creating it leaves no store, and what a kill would leave (a hidden ``.partial`` folder)
    is removed by the rerun."""
    from pattern_fixtures import make_scan_store

    import rdlab.classify.pattern_store as ps

    calls = []
    original = ps.xr.Dataset.to_zarr

    def dies_on_second_write(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ps.xr.Dataset, "to_zarr", dies_on_second_write)
    with pytest.raises(KeyboardInterrupt):
        make_scan_store(tmp_path / "scan.zarr")
    assert not (tmp_path / "scan.zarr").exists()
    monkeypatch.undo()
    (tmp_path / ".scan.zarr.x1y2z3.partial" / "frames").mkdir(parents=True)  # as killed
    make_scan_store(tmp_path / "scan.zarr")
    assert pattern_store.open_patterns(tmp_path / "scan.zarr").sizes["sample"] == 12
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_small_paper_runs_then_resumes_without_redoing_work(tmp_path, monkeypatch):
    """The whole workflow on small runs; a rerun finds every stage done and changes no
    result file."""
    from pattern_fixtures import SMALL, small_table

    from rdlab.classify import catalogue
    from rdlab.classify.paper_pipeline import PaperSettings, run_paper
    from rdlab.classify.scan_layout import value_grid

    monkeypatch.setattr(catalogue, "dataset_table", small_table)
    settings = PaperSettings(runs=SMALL, scheduler="in-process", block=4, progress=False,
                             train={"epochs": 1, "batch_size": 8})
    points = value_grid([0.045, 0.06], [0.01, 0.05])
    out = tmp_path / "paper"
    summary = run_paper(out, settings, scan_points=points)
    assert summary["classification"]["points"] == 4
    assert set(summary["evaluation"]) == {"train", "val", "test"}

    def contents():
        return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*")
                if p.is_file() and not p.name.startswith(("timings", "summary", "."))}

    results = contents()
    again = run_paper(out, settings, scan_points=points)
    assert again["classification"] == summary["classification"]
    assert contents() == results
    with pytest.raises(Exception, match="different table"):
        run_paper(out, settings, scan_points=value_grid([0.045], [0.01]))


@pytest.mark.parametrize("args", [["classify"], ["classify", "evaluate"], ["evaluate"],
                                  ["classify", "label"], ["classify", "saliency"]])
def test_help_names_the_bundled_model(args):
    """Each command that takes a MODEL names both shipped CNNs: 'bundled' and 'bundled-3d'."""
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "'bundled' (the 2-D CNN shipped with rdlab" in text
    assert "'bundled-3d' (the shipped time-stack CNN)" in text
