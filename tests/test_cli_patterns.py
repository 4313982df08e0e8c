"""The Classify commands end to end on small inputs, and their error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rdlab.cli import app
from rdlab.patterns import pattern_store
from rdlab.patterns.evaluation import bundled_model_path
from rdlab.patterns.pattern_runs import PatternRunSettings, simulate_patterns

runner = CliRunner()

needs_model = pytest.mark.skipif(not bundled_model_path().is_file(),
                                 reason="the bundled CNN has not been trained yet")


def test_dataset_rejects_unknown_set(tmp_path):
    result = runner.invoke(app, ["dataset", "training", "--out", str(tmp_path / "x.zarr")])
    assert result.exit_code == 2
    assert "training" in result.output and "train" in result.output


def test_scan_rejects_half_a_grid(tmp_path):
    result = runner.invoke(app, ["scan", "--k", "0.04:0.06:3", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "--f" in result.output


def test_evaluate_names_a_missing_model(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope"), str(tmp_path / "d.zarr")])
    assert result.exit_code == 2
    assert "nope" in result.output


@needs_model
def test_scan_then_classify_with_the_bundled_model(tmp_path):
    scan = tmp_path / "scan.zarr"
    result = runner.invoke(app, ["scan", "--k", "0.05:0.065:2", "--f", "0.005:0.035:2",
                                 "--dtype", "float32", "--scheduler", "in-process",
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
    from rdlab.patterns.cnn import load_model
    from rdlab.patterns.training import predict

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
