import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from rdlab.cli import app
from rdlab.run_folder import open_dataset

runner = CliRunner()


def test_simulate_sweep_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "simulate", "--preset", "gray-scott", "--f", "0.03:0.05:3", "--k", "0.06,0.065",
        "--grid", "24x20", "--steps", "60", "--snapshots", "4", "--square-size", "6",
        "--engine", "numpy", "--out", str(out), "--seed", "7"])
    assert result.exit_code == 0, result.output
    ds = open_dataset(out / "data.zarr")
    assert dict(ds.sizes) == {"sample": 6, "time": 4, "species": 2, "y": 24, "x": 20}
    np.testing.assert_allclose(ds["f"].values, np.repeat([0.03, 0.04, 0.05], 2))
    np.testing.assert_allclose(ds["k"].values, [0.06, 0.065] * 3)
    assert ds.attrs["seed"] == 7
    assert json.loads(ds.attrs["config"])["engine"] == "numpy"
    assert ds["step"].values.tolist() == [0, 20, 40, 60]
    for name in ("config.yaml", "metrics.json", "montage.png", "movie.gif"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == 6

    # rerunning from the config gives the identical data
    again = tmp_path / "again"
    result = runner.invoke(app, ["simulate", "--config", str(out / "config.yaml"),
                                 "--out", str(again)])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(open_dataset(again / "data.zarr").concentration.values,
                                  ds.concentration.values)


def test_network_file_and_pca_for_many_species(tmp_path):
    net = tmp_path / "net.yaml"
    net.write_text(yaml.safe_dump({"reactions": [
        "A + 2B -> 3B : 1.0", "B -> C : 0.1", "C -> D : 0.1", "D -> A : 0.1"]}))
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "simulate", "--network", str(net), "--set", "D_A=0.1", "--set", "D_B=0.05",
        "--grid", "16", "--steps", "20", "--snapshots", "3", "--engine", "numpy",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["pca_explained_variance_ratio"]) == 3
    assert (out / "pca_rgb.png").exists() and (out / "last_frame.png").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--k", "-0.1"], "rate constant is negative"),
    (["--dt", "5"], "beyond the 9-point stencil's limit 0.5"),
    (["--q", "1"], "unknown parameter 'q'"),
    (["--grid", "12y3"], "cannot read grid"),
    (["--network", "missing.yaml"], "does not exist"),
])
def test_bad_input_gives_a_clear_error(tmp_path, args, fragment):
    result = runner.invoke(app, ["simulate", "--steps", "2", "--grid", "8", "--engine",
                                 "numpy", "--out", str(tmp_path / "r"), *args])
    assert result.exit_code == 2
    assert fragment in result.output
    assert "Traceback" not in result.output
