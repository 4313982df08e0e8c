"""Labels for ``rdlab simulate`` run folders: ``rdlab classify RUN [MODEL]`` and ``--classify``.

The fast tests use a tiny model (an untrained Table II network whose metadata records the
small runs of :mod:`pattern_fixtures`: 48², dt 0.25, U at steps 200, 300, 400) and
Gray–Scott sweeps simulated with those settings; the slow test runs the bundled model's own
setting (128², 60 000 steps) end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from pattern_fixtures import SMALL
from typer.testing import CliRunner

from rdlab.classify import pattern_store
from rdlab.classify.cnn import build_model, save_model
from rdlab.classify.evaluation import bundled_model_path
from rdlab.classify.label_run import classify_run, snapshot_options
from rdlab.classify.label_scan import classify_scan
from rdlab.classify.pattern_runs import IMAGE_STEPS, STACK_STEPS, PatternRunSettings
from rdlab.cli import app
from rdlab.errors import DataError, ParameterError
from rdlab.simulate_job.run import run_simulation, snapshot_steps
from rdlab.simulate_job.spec import SimulationSpec

CLASSES = ["α", "β", "γ", "δ", "ε", "ζ", "η", "θ", "ι", "κ", "λ", "μ", "ν", "L", "H"]
#: A 3 × 2 (k, f) sweep with the tiny model's setting.
SWEEP = {"k": "0.05:0.06:3", "f": "0.02,0.04"}


def _model(path: Path, bias: list[float] | None = None,
           settings: PatternRunSettings = SMALL) -> Path:
    """Save an untrained 2-D network recording ``settings`` as its training data.

    With ``bias`` its last layer's weights are zero and its logits are ``bias`` for every
    input (all-zero: exactly flat probabilities).
    """
    torch.manual_seed(0)
    model = build_model("2d", 3, len(CLASSES)).eval()
    if bias is not None:
        with torch.no_grad():
            model.head[-1].weight.zero_()
            model.head[-1].bias.copy_(torch.tensor(bias))
    return save_model(path, model, CLASSES, meta={"data_settings": settings.to_dict()})


def _run(path: Path, engine: str = "fast", **fields) -> Path:
    """Simulate a Gray–Scott run (the small setting unless ``fields`` say otherwise)."""
    spec = {"preset": "gray-scott", "grid": "48", "dt": 0.25, "steps": 400, "snapshots": 5,
            "parameters": dict(SWEEP), "movie": "none", "engine": engine, **fields}
    run_simulation(SimulationSpec.from_dict(spec), path, progress=False)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("label_run")
    return {"model": _model(root / "tiny.pt"),
            "flat": _model(root / "flat.pt", bias=[0.0] * len(CLASSES)),
            "sure": _model(root / "sure.pt", bias=[8.0] + [0.0] * (len(CLASSES) - 1)),
            "run": _run(root / "run")}


def _copy(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


def _scan_of(run: Path, path: Path, settings: PatternRunSettings = SMALL) -> Path:
    """Write the run's frames (U at the settings' steps) as a scan store."""
    ds = xr.open_zarr(run / "data.zarr")
    index = [int(np.flatnonzero(ds["step"].values == s)[0]) for s in settings.snapshot_steps]
    frames = ds["concentration"].sel(species="U").isel(time=index).values.astype(np.float32)
    n = frames.shape[0]
    pattern_store.create(path, ds["k"].values, ds["f"].values, np.zeros(n, int),
                         np.full(n, -1), settings, [], "scan", kind="scan", block=n)
    pattern_store.write_block(path, 0, frames, np.full(n, -1))
    return path


def test_run_labels_agree_with_the_scan_path_and_land_in_the_run(world, tmp_path):
    run = _copy(world["run"], tmp_path / "run")
    before = xr.open_zarr(run / "data.zarr")["concentration"].values
    config = (run / "config.yaml").read_bytes()
    summary = classify_run(run, world["model"], min_confidence=0.0, progress=False)
    classify_scan(_scan_of(run, tmp_path / "scan.zarr"), world["model"], tmp_path / "cls",
                  progress=False, min_confidence=0.0)
    scan = xr.open_zarr(tmp_path / "cls" / "classification.zarr")
    ds = xr.open_zarr(run / "data.zarr")
    np.testing.assert_allclose(ds["probabilities"].values, scan["probabilities"].values,
                               rtol=0, atol=1e-6)
    assert ds["class_label"].values.tolist() == scan["class_label"].values.tolist()
    assert ds["class_name"].values.tolist() == [CLASSES[i] for i in scan["class_label"].values]
    assert ds["class"].values.tolist() == CLASSES and "class_label" in ds.coords
    # the run itself is unchanged: data, attributes, config
    np.testing.assert_array_equal(ds["concentration"].values, before)
    assert json.loads(ds.attrs["config"])["dt"] == 0.25
    assert (run / "config.yaml").read_bytes() == config
    labels = json.loads((run / "labels.json").read_text())
    assert [s["label"] for s in labels["samples"]] == ds["class_name"].values.tolist()
    assert labels["frame_steps"] == [200, 300, 400] and len(labels["samples"]) == 6
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["samples"] == 6 and metrics["labels"]["counts"] == summary["counts"]
    assert sum(summary["counts"].values()) == 6
    for name in ("labels.png", "phase_map.png", "explorer.html"):  # a k × f sweep
        assert (run / name).stat().st_size > 1000


def test_flat_probabilities_are_flagged_unconfident_in_runs_and_scans(world, tmp_path):
    run = _copy(world["run"], tmp_path / "run")
    summary = classify_run(run, world["flat"], progress=False)
    ds = xr.open_zarr(run / "data.zarr")
    np.testing.assert_allclose(ds["probabilities"].values, 1 / len(CLASSES), rtol=1e-5)
    assert ds["class_label"].values.tolist() == [-1] * 6
    assert set(ds["class_name"].values.tolist()) == {"unconfident"}
    assert summary["counts"] == {**dict.fromkeys(CLASSES, 0), "unconfident": 6}
    html = (run / "explorer.html").read_text(encoding="utf-8")
    assert '"unclassified":"unconfident"' in html.replace(" ", "")
    # the scan path flags them too; `predicted` stays the most probable class
    metrics = classify_scan(_scan_of(run, tmp_path / "scan.zarr"), world["flat"],
                            tmp_path / "cls", progress=False)
    cls = xr.open_zarr(tmp_path / "cls" / "classification.zarr")
    assert cls["class_label"].values.tolist() == [-1] * 6 and metrics["counts"]["unconfident"] == 6
    assert (tmp_path / "cls" / "unconfident.png").is_file()
    assert "unconfident" in (tmp_path / "cls" / "explorer.html").read_text(encoding="utf-8")
    # a confident model (p ≈ 0.995 for α) is not flagged
    assert classify_run(run, world["sure"], progress=False)["counts"]["α"] == 6


def test_a_rerun_replaces_the_labels(world, tmp_path):
    run = _copy(world["run"], tmp_path / "run")
    classify_run(run, world["flat"], progress=False)
    classify_run(run, world["sure"], min_confidence=0.9, progress=False)
    ds = xr.open_zarr(run / "data.zarr")
    assert ds["class_name"].values.tolist() == ["α"] * 6
    assert ds["probabilities"].values[:, 0].min() > 0.99
    labels = json.loads((run / "labels.json").read_text())
    assert labels["counts"] == {**dict.fromkeys(CLASSES, 0), "α": 6}
    assert labels["min_confidence"] == 0.9
    left = {p.name for p in tmp_path.glob(".run.*")}
    assert left <= {".run.lock"}  # no staging or replaced folder left


@pytest.mark.parametrize("fields, match", [
    ({"grid": "52"}, r"grid 52×52 \(the run\) against 48×48 \(the training data\)"),
    ({"parameters": {**SWEEP, "D_U": 0.3}}, r"D_U 0\.3 \(the run\) against 0\.2"),
    ({"dt": 0.2, "steps": 500}, r"dt 0\.2 \(the run\) against 0\.25"),
    ({"stencil": "5-point"}, r"stencil 5-point \(the run\) against 9-point"),
    ({"parameters": {**SWEEP, "feed_U": 0.9}}, r"feed_U 0\.9 \(the run\) against 1"),
    ({"preset": "brusselator", "parameters": {}, "dt": 0.02},
     r"species X, Y \(the run\) against U, V \(Gray–Scott"),
    ({"preset": None, "species": ["U", "V"], "parameters": {"f": 0.03},
      "network": ["U + 2V -> 3V : 1", "V -> 0 : k = 0.06", "U -> V : 0.001"]},
     r"reactions .*U -> V.* \(the run\) against U \+ 2V -> 3V; V -> 0"),
    ({"preset": None, "species": ["U", "V"], "parameters": {"f": 0.03},
      "network": ["U + 2V -> 3V : 2", "V -> 0 : k = 0.06"]},
     r"rate of U \+ 2V -> 3V 2 \(the run\) against 1"),
    ({"snapshots": 3}, r"steps 200, 300, 400 .*stored steps 0, 200, 400.*"
                       r"--steps 400 --snapshots 5"),
], ids=["grid", "Du", "dt", "stencil", "feed", "another-network", "other-reactions",
        "autocatalysis-rate", "missing-steps"])
def test_runs_unlike_the_training_data_are_refused_naming_the_difference(
        world, tmp_path, fields, match):
    run = _run(tmp_path / "run", engine="numpy", **fields)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(ParameterError, match=match):
        classify_run(run, world["model"], progress=False)
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written


def test_a_bad_model_path_or_threshold_is_refused(world, tmp_path):
    with pytest.raises(DataError, match=r"nope\.pt"):
        classify_run(world["run"], tmp_path / "nope.pt", progress=False)
    with pytest.raises(ParameterError, match=r"min-confidence.*1\.5"):
        classify_run(world["run"], world["model"], min_confidence=1.5, progress=False)


@pytest.mark.parametrize("steps", [IMAGE_STEPS, STACK_STEPS, (200, 300, 400)])
def test_the_suggested_options_store_the_steps(steps):
    options = snapshot_options(steps).split()
    stored = snapshot_steps(int(options[1]), int(options[3]))
    assert set(steps) <= set(stored.tolist())
    assert snapshot_options(IMAGE_STEPS) == "--steps 60000 --snapshots 501"


def test_simulate_classify_and_classify_run_on_the_command_line(world, tmp_path,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--grid", "48", "--steps", "400", "--snapshots",
                                 "5", "--k", "0.05,0.06", "--f", "0.03", "--movie", "none",
                                 "--out", "run", "--classify", str(world["sure"])])
    assert result.exit_code == 0, result.output
    assert "α: 2 samples, mean top probability 1.00" in result.output
    assert xr.open_zarr("run/data.zarr")["class_name"].values.tolist() == ["α", "α"]
    result = runner.invoke(app, ["classify", "run", str(world["flat"])])
    assert result.exit_code == 0, result.output
    assert "unconfident: 2 samples" in result.output
    # checked before simulating: no run folder is made
    result = runner.invoke(app, ["simulate", "--grid", "48", "--steps", "400", "--movie",
                                 "none", "--out", "other", "--classify", str(world["model"])])
    assert result.exit_code == 2 and "--steps 400 --snapshots 5" in result.output
    assert not Path("other").exists()


@pytest.mark.slow
def test_the_bundled_model_labels_a_sweep_of_its_own_setting(tmp_path, monkeypatch):
    """Simulate + label with the bundled model (128², 60 000 steps), as the scan path does."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [
        "simulate", "--preset", "gray-scott", "--grid", "128", "--dt", "0.25", "--steps",
        "60000", "--snapshots", "501", "--k", "0.045,0.062", "--f", "0.03", "--dtype",
        "float32", "--movie", "none", "--out", "run", "--classify"])
    assert result.exit_code == 0, result.output
    classify_scan(_scan_of(Path("run"), tmp_path / "scan.zarr",
                           PatternRunSettings(dtype="float32")),
                  bundled_model_path(), tmp_path / "cls", progress=False)
    scan = xr.open_zarr(tmp_path / "cls" / "classification.zarr")
    ds = xr.open_zarr("run/data.zarr")
    np.testing.assert_allclose(ds["probabilities"].values, scan["probabilities"].values,
                               rtol=0, atol=1e-6)
    assert ds["class_label"].values.tolist() == scan["class_label"].values.tolist()
    # k = 0.045 (f = 0.03) settles to the uniform low-U state (U ≈ 0.25): L, and the model
    # is sure of it; k = 0.062 makes a pattern
    u = ds["concentration"].sel(species="U").isel(time=-1).values
    (flat,) = np.flatnonzero(np.isclose(ds["k"].values, 0.045))
    assert u[flat].std() < 1e-3 and abs(u[flat].mean() - 0.25) < 1e-3
    assert ds["class_name"].values[flat] == "L" and ds["probabilities"].values[flat].max() > 0.9
    assert u[1 - flat].std() > 0.05 and ds["class_name"].values[1 - flat] != "L"
    assert "L: 1 sample, mean top probability 0.98" in result.output


@pytest.mark.slow
def test_the_bundled_3d_model_labels_a_sweep_of_its_own_setting(tmp_path, monkeypatch):
    """``--classify bundled-3d`` on runs that store the 10-frame stack (every 800 steps): the
    uniform low-U state is L; the same runs without those snapshots are refused with the
    options that store them."""
    monkeypatch.chdir(tmp_path)
    base = ["simulate", "--preset", "gray-scott", "--grid", "128", "--dt", "0.25", "--steps",
            "60000", "--k", "0.045,0.062", "--f", "0.03", "--dtype", "float32", "--movie",
            "none"]
    refused = CliRunner().invoke(app, [*base, "--snapshots", "501", "--out", "r0",
                                       "--classify", "bundled-3d"])
    assert refused.exit_code != 0 and "--steps 60000 --snapshots 76" in refused.output
    result = CliRunner().invoke(app, [*base, "--snapshots", "76", "--out", "run",
                                      "--classify", "bundled-3d"])
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr("run/data.zarr")
    (flat,) = np.flatnonzero(np.isclose(ds["k"].values, 0.045))
    assert ds["class_name"].values[flat] == "L" and ds["probabilities"].values[flat].max() > 0.9
    assert ds["class_name"].values[1 - flat] not in ("L", "H")


def test_a_model_trained_by_rdlab_records_its_datas_settings(tmp_path):
    """``rdlab classify train`` writes the training store's run settings into the model's
    metadata, and labelling reads them instead of assuming the paper's runs."""
    from pattern_fixtures import make_dataset_store, make_model

    from rdlab.classify.cnn import load_model
    from rdlab.classify.label_run import training_settings

    train = make_dataset_store(tmp_path / "train.zarr", "train")
    val = make_dataset_store(tmp_path / "val.zarr", "val")
    best = make_model(tmp_path / "model", train, val, epochs=1)
    model, _, meta = load_model(best)
    stored = json.loads(pattern_store.open_patterns(train).attrs["settings"])
    assert meta["data_settings"] == stored == SMALL.to_dict()
    data = training_settings(model, meta, best)
    assert data.settings == SMALL and data.source == "as the model records them"
