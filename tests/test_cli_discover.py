"""``rdlab discover``: a run folder with the mechanism in every format, and SBML that
libroadrunner simulates into the true trajectories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rdlab.cli import app
from rdlab.discover.data import generate, save, trajectories
from rdlab.discover.examples import example


def test_discover_example_writes_every_output(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["discover", "--example", "stiff", "--budget", "40",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "converged" in res.output and "stoichiometry equals the truth: True" in res.output
    report = json.loads((out / "report.json").read_text())
    assert report["exact"] and report["fit"]["converged"]
    for name in ("mechanism.yaml", "mechanism.txt", "mechanism.antimony", "mechanism.xml",
                 "trajectories.png", "data.zarr"):
        assert (out / name).exists(), name
    assert report["trajectory_error"] < 1e-5

    rr = pytest.importorskip("roadrunner")
    model = rr.RoadRunner((out / "mechanism.xml").read_text())
    truth = example("stiff").mechanism
    x0 = np.array([0.7, 0.2, 0.1])
    for name, value in zip(truth.species, x0):
        model.setValue(f"init([{name}])", float(value))
    model.integrator.relative_tolerance = 1e-10
    model.integrator.absolute_tolerance = 1e-12
    sim = model.simulate(0.0, 2.0, 21)
    times = np.linspace(0.0, 2.0, 21)
    expected, _ = trajectories(truth, x0[None], times)
    got = np.column_stack([sim[f"[{s}]"] for s in truth.species])
    np.testing.assert_allclose(got, expected[0], rtol=1e-5, atol=1e-8)


def test_discover_reads_a_csv_and_flags_a_bad_fit(tmp_path):
    data = generate(example("autocatalytic").mechanism, n_samples=30)
    path = save(data, tmp_path / "auto.csv")
    res = CliRunner().invoke(app, ["discover", str(path), "--reactions", "2",
                                   "--no-catalytic", "--budget", "5", "--out",
                                   str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "NOT CONVERGED" in res.output
    assert "warning: did not converge" in res.output


def test_discover_refuses_bad_input(tmp_path):
    res = CliRunner().invoke(app, ["discover", "--example", "nope"])
    assert res.exit_code == 2 and "unknown example 'nope'" in res.output
    res = CliRunner().invoke(app, ["discover", str(tmp_path / "missing.csv"), "--reactions",
                                   "2"])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = CliRunner().invoke(app, ["discover", "--example", "stiff", "--sweep", "a:b"])
    assert res.exit_code == 2 and "--sweep" in res.output


def test_estimated_derivatives_report_their_error(tmp_path):
    """From concentrations alone at Δt = 0.1 the stiff example's fast transient (rate 2000)
    is not resolved: the estimated derivatives are mostly wrong at t = 0, and the fit says
    it did not converge instead of reporting a mechanism as found."""
    out = tmp_path / "d"
    res = CliRunner().invoke(app, ["discover", "--example", "stiff", "--derivatives", "spline",
                                   "--budget", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    est = report["derivative_estimate"]
    assert est["per_time"][0] > 0.5 and est["per_time"][-1] < 1e-2
    assert not report["fit"]["converged"]
    assert report["warnings"][0].startswith("did not converge")
