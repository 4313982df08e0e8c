"""Damaged stores never read as good: for each kind of store (a dataset or scan store, a
model folder's checkpoints, a classification.zarr given to --compare), a deleted chunk, a
truncated chunk and missing metadata are either repaired by a rerun (re-simulated, equal to
the undamaged store) or refused by readers with a message naming the store — never a wrong
result with exit code 0, and never a half-written output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from pattern_fixtures import (
    SCAN_ARGS,
    build_small_world,
    use_small_runs,
)
from typer.testing import CliRunner

from rdlab.classify import pattern_store
from rdlab.classify.label_scan import changed_cells, read_classification
from rdlab.classify.paper_pipeline import train_model
from rdlab.cli import app
from rdlab.errors import DataError

runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Good stores, a model folder and a classification, built once and copied per test."""
    return build_small_world(tmp_path_factory.mktemp("built"))


@pytest.fixture
def copies(built, tmp_path, monkeypatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)
    use_small_runs(monkeypatch.setattr)
    return {name: Path(shutil.copytree(path, tmp_path / path.name))
            for name, path in built.items()}


def _frames_chunk(store: Path, block_index: int) -> Path:
    return store / "frames" / f"{block_index}.0.0.0"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _write_nan_frames(store: Path, start: int, stop: int) -> None:
    """A block whose chunk is a valid zarr chunk of NaN frames (flagged done)."""
    ds = xr.open_zarr(store)
    nan = np.full((stop - start, *ds["frames"].shape[1:]), np.nan, dtype=np.float32)
    stopped = ds["stopped_step"].values[start:stop]
    pattern_store.write_block(store, start, nan, stopped)


DAMAGE = {
    "deleted frames chunk": lambda s: _frames_chunk(s, 1).unlink(),
    "truncated frames chunk": lambda s: _truncate(_frames_chunk(s, 1)),
    "NaN frames": lambda s: _write_nan_frames(s, 2, 4),
    "deleted stopped_step chunk": lambda s: (s / "stopped_step" / "1").unlink(),
    "truncated done chunk": lambda s: _truncate(s / "done" / "1"),
}


def _run(args):
    return runner.invoke(app, [str(a) for a in args])


def _error(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_scan_rerun_resimulates_damaged_blocks_to_the_original(copies, built, damage):
    scan = copies["scan"]
    DAMAGE[damage](scan)
    with pytest.raises(DataError, match=r"scan\.zarr.*samples 2–3"):
        pattern_store.open_patterns(scan)
    result = _run(["classify", "scan", *SCAN_ARGS, "--out", scan])
    assert result.exit_code == 0, result.output
    assert "2 simulated now" in result.output
    assert "2 samples of damaged blocks were simulated again" in result.output
    assert "samples 2–3" in result.output
    a, b = pattern_store.open_patterns(built["scan"]), pattern_store.open_patterns(scan)
    for name in ("frames", "stopped_step", "done", "k", "f", "seed"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.mark.parametrize("damage", ["deleted frames chunk", "truncated frames chunk",
                                    "NaN frames"])
def test_dataset_rerun_resimulates_damaged_blocks(copies, built, damage):
    store = copies["train"]
    DAMAGE[damage](store)
    result = _run(["classify", "dataset", "train", "--out", store, "--scheduler", "in-process",
                   "--block", "4"])
    assert result.exit_code == 0, result.output
    assert "4 samples of damaged blocks were simulated again" in result.output
    a, b = pattern_store.open_patterns(built["train"]), pattern_store.open_patterns(store)
    np.testing.assert_array_equal(a["frames"].values, b["frames"].values)


@pytest.mark.parametrize("damage", ["deleted frames chunk", "truncated frames chunk",
                                    "NaN frames"])
def test_classify_refuses_a_damaged_scan_and_writes_nothing(copies, damage):
    DAMAGE[damage](copies["scan"])
    message = _error(_run(["classify", copies["scan"], copies["model"], "--out", "runs/c"]))
    assert "scan.zarr" in message and "frames" in message and "samples 2–3" in message
    assert "rerun `rdlab classify scan`" in message
    assert not Path("runs/c").exists()


@pytest.mark.parametrize("damage", ["deleted frames chunk", "truncated frames chunk",
                                    "NaN frames"])
def test_train_refuses_a_damaged_dataset_and_writes_nothing(copies, damage):
    DAMAGE[damage](copies["train"])
    message = _error(_run(["classify", "train", copies["train"], copies["val"], "--out", "runs/m",
                           "--epochs", "1"]))
    assert "train.zarr" in message and "frames" in message
    assert "rerun `rdlab classify dataset train`" in message
    assert not Path("runs/m").exists()


def test_evaluate_and_saliency_refuse_a_damaged_dataset(copies):
    _frames_chunk(copies["val"], 0).unlink()
    for args in (["classify", "evaluate", copies["model"], copies["train"], copies["val"]],
                 ["classify", "saliency", copies["model"], copies["val"]]):
        message = _error(_run([*args, "--out", "runs/e"]))
        assert "val.zarr" in message and "samples 0–3" in message
        assert not Path("runs/e").exists()


@pytest.mark.parametrize("missing", [".zmetadata", ".zgroup", ".zattrs", "frames/.zarray"])
def test_store_without_metadata_is_refused_by_readers_and_by_rerun(copies, missing):
    scan = copies["scan"]
    (scan / missing).unlink()
    for args in (["classify", scan, copies["model"], "--out", "runs/c"],
                 ["classify", "scan", *SCAN_ARGS, "--out", scan]):
        message = _error(_run(args))
        assert "scan.zarr" in message and "metadata" in message, message
        assert missing.split("/")[-1] in message
    assert not Path("runs/c").exists()


def test_deleted_coordinate_chunk_is_refused(copies):
    (copies["scan"] / "k" / "0").unlink()
    message = _error(_run(["classify", "scan", *SCAN_ARGS, "--out", copies["scan"]]))
    assert "coordinate 'k'" in message


# ---------------------------------------------------------------------- model folders


def test_truncated_best_pt_is_refused_by_readers_and_by_resume(copies):
    best = copies["model"] / "best.pt"
    _truncate(best)
    message = _error(_run(["classify", copies["scan"], copies["model"], "--out", "runs/c"]))
    assert "best.pt" in message and "not a readable torch file" in message
    message = _error(_run(["classify", "evaluate", best, copies["val"], "--out", "runs/e"]))
    assert "best.pt" in message
    # resuming the finished training keeps best.pt: refused, with how to start fresh
    with pytest.raises(DataError, match=r"best\.pt.*start fresh"):
        train_model(copies["train"], copies["val"], copies["model"],
                    {"epochs": 2, "patience": None, "batch_size": 8}, progress=False)
    assert not Path("runs/c").exists() and not Path("runs/e").exists()


@pytest.mark.parametrize("content", [b"garbage", None], ids=["garbage", "truncated"])
def test_damaged_last_pt_is_refused_naming_it(copies, content):
    last = copies["model"] / "last.pt"
    if content is None:
        _truncate(last)
    else:
        last.write_bytes(content)
    before = last.read_bytes()
    message = _error(_run(["classify", "train", copies["train"], copies["val"], "--out",
                           copies["model"], "--epochs", "2"]))
    assert "last.pt" in message and "start fresh" in message
    assert last.read_bytes() == before


def test_model_of_nan_weights_is_refused(copies):
    best = copies["model"] / "best.pt"
    payload = torch.load(best, weights_only=True)
    for tensor in payload["state_dict"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    torch.save(payload, best)
    message = _error(_run(["classify", copies["scan"], best, "--out", "runs/c"]))
    assert "best.pt" in message and "NaN" in message


# ---------------------------------------------------------------------- classification.zarr


def _damage_classification(zarr: Path, how: str) -> None:
    ds = xr.open_zarr(zarr)
    predicted = ds["predicted"].values
    if how == "deleted predicted chunk":  # of a sample whose class is not 0
        i = int(np.flatnonzero(predicted != 0)[0])
        (zarr / "predicted" / str(i)).unlink()
    elif how == "truncated predicted chunk":
        i = int(np.flatnonzero(predicted != 0)[0])
        _truncate(zarr / "predicted" / str(i))
    elif how == "deleted probabilities chunk":
        (zarr / "probabilities" / "3.0").unlink()
    elif how == "truncated probabilities chunk":
        _truncate(zarr / "probabilities" / "3.0")
    else:
        (zarr / how).unlink()


@pytest.mark.parametrize("how", ["deleted predicted chunk", "truncated predicted chunk",
                                 "deleted probabilities chunk",
                                 "truncated probabilities chunk", ".zmetadata", ".zgroup"])
def test_damaged_compare_classification_is_refused(copies, how):
    earlier = copies["cls"] / "classification.zarr"
    _damage_classification(earlier, how)
    message = _error(_run(["classify", copies["scan"], copies["model"], "--out", "runs/c",
                           "--compare", earlier]))
    assert "classification.zarr" in message and "damaged" in message
    assert not Path("runs/c").exists()
    with pytest.raises(DataError):
        changed_cells(earlier, earlier)


def test_compare_with_a_good_classification_writes_changed_cells(copies):
    earlier = copies["cls"] / "classification.zarr"
    result = _run(["classify", copies["scan"], copies["model"], "--out", "runs/c",
                   "--compare", earlier])
    assert result.exit_code == 0, result.output
    assert "0 of 12 cells changed class" in result.output
    assert (Path("runs/c") / "changed_cells.json").is_file()
    read_classification(Path("runs/c") / "classification.zarr")


def test_evaluate_refuses_a_damaged_training_history(copies):
    (copies["model"] / "history.jsonl").write_text('{"epoch": 1, "loss"\n{"epoch": 2}\n')
    message = _error(_run(["classify", "evaluate", copies["model"], copies["val"], "--out",
                           "runs/e"]))
    assert "history.json" in message
    assert not Path("runs/e").exists()
