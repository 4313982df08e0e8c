"""``rdlab discover``: a run folder with the mechanism in every format, and SBML that
libroadrunner simulates into the true trajectories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from cli_contract import assert_refused, snapshot
from typer.testing import CliRunner

from rdlab.cli import app
from rdlab.discover.data import generate, load, save, trajectories
from rdlab.discover.examples import example


def test_discover_example_writes_every_output(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["discover", "--example", "stiff", "--time-budget", "40s",
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
                                   "--no-catalytic", "--time-budget", "5s", "--out",
                                   str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "NOT CONVERGED" in res.output
    assert "warning: did not converge" in res.output
    assert "try --catalytic" in res.output  # X + Y -> 2Y: Y is not used up


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
                                   "--time-budget", "3s", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    est = report["derivative_estimate"]
    assert est["per_time"][0] > 0.5 and est["per_time"][-1] < 1e-2
    assert not report["fit"]["converged"]
    assert report["warnings"][0].startswith("did not converge")


# ---------------------------------------------------------------- per-sample time grids
def test_csv_samples_on_their_own_grids_get_their_own_derivatives(tmp_path):
    """Samples reported at different times: each sample's derivatives are estimated on its
    own times (within 1 % of the exact ones written beside them), and the run's data.zarr
    keeps every sample's times."""
    mech = example("stiff").mechanism
    times = np.stack([np.linspace(2.0, 3.0 + s, 31) for s in range(5)])  # past the transient
    data = generate(mech, n_samples=5, times=times, seed=4)
    path = save(data, tmp_path / "grids.csv")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["discover", str(path), "--reactions", "2",
                                   "--derivatives", "spline", "--time-budget", "1s",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["derivative_estimate"]["overall"] < 1e-2, report["derivative_estimate"]
    np.testing.assert_array_equal(load(out / "data.zarr").sample_times, times)


# ---------------------------------------------------------------- the run folder
def test_a_missing_output_is_a_warning_and_a_failed_rerun_changes_nothing(tmp_path,
                                                                          monkeypatch):
    """An output that could not be made is named in a warning, in report.json and in the
    last line; a rerun that fails leaves that run exactly as it was (no staging left)."""
    import rdlab.chemistry.export as export
    from rdlab.discover.estimator import ReactionDiscovery
    from rdlab.errors import SimulationError

    monkeypatch.chdir(tmp_path)

    def no_sbml(net, *args, **kwargs):
        raise RuntimeError("no SBML today")

    monkeypatch.setattr(export, "to_sbml", no_sbml)
    args = ["discover", "--example", "stiff", "--time-budget", "2s", "--out", "runs/x"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "warning: mechanism.xml not written: export failed (RuntimeError: no SBML today)" \
        in res.output
    lines = res.output.strip().splitlines()
    assert lines[-1] == "not written: mechanism.xml (see the warnings and report.json)"
    assert lines[-2] == ("outputs in runs/x: data.zarr, mechanism.yaml, mechanism.txt, "
                         "mechanism.antimony, trajectories.png, report.json")
    report = json.loads((tmp_path / "runs/x/report.json").read_text())
    assert list(report["missing_outputs"]) == ["mechanism.xml"]
    assert any(w.startswith("mechanism.xml not written") for w in report["warnings"])
    assert not (tmp_path / "runs/x/mechanism.xml").exists()
    assert (tmp_path / "runs/x/mechanism.antimony").exists()

    def blow_up(self, *a, **k):
        raise SimulationError("the fit blew up on purpose")

    monkeypatch.setattr(ReactionDiscovery, "fit", blow_up)
    assert_refused(args, tmp_path, "the fit blew up on purpose")


def test_a_second_writer_gets_the_lock_error_naming_the_holder(tmp_path, monkeypatch):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        from rdlab.output_lock import hold
        with hold("runs/x", command="rdlab discover --example stiff"):
            print("locked", flush=True)
            time.sleep(60)
        """)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.chdir(tmp_path)
        assert_refused(["discover", "--example", "stiff", "--time-budget", "1s", "--out",
                        "runs/x"],
                       tmp_path, rf"'runs/x' is being written by process {holder.pid} .*rdlab "
                                 r"discover --example stiff")
    finally:
        holder.kill()
        holder.wait()


def test_kill_9_mid_fit_leaves_the_earlier_run_and_does_not_block_the_next(tmp_path,
                                                                           monkeypatch):
    """`kill -9` while a rerun is fitting: the earlier run is intact (same files, same
    bytes), and the next run succeeds and leaves no staging folder behind."""
    monkeypatch.chdir(tmp_path)
    first = ["discover", "--example", "stiff", "--time-budget", "1s", "--out", "runs/x"]
    assert CliRunner().invoke(app, first).exit_code == 0
    before = snapshot(tmp_path / "runs")
    contents = {p: p.read_bytes() for p in (tmp_path / "runs/x").rglob("*") if p.is_file()}
    long_fit = [sys.executable, "-c", "from rdlab.cli import app; app()", "discover",
                "--example", "autocatalytic", "--no-catalytic", "--time-budget", "300s",
                "--out", "runs/x"]
    log = tmp_path / "killed.log"
    with log.open("w") as err:
        proc = subprocess.Popen(long_fit, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    # the staging folder holds the data once the fit has begun
    while not list((tmp_path / "runs").glob(".x.staging-*/data.zarr")):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the run never started fitting"
        time.sleep(0.05)
    time.sleep(np.random.default_rng(0).uniform(0.5, 1.5))
    assert proc.poll() is None, "the fit ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((tmp_path / "runs").glob(".x.staging-*"))  # killed mid-run
    assert {k: v for k, v in snapshot(tmp_path / "runs").items()
            if ".staging-" not in k} == before
    assert {p: p.read_bytes() for p in contents} == contents

    res = CliRunner().invoke(app, first)
    assert res.exit_code == 0, res.output
    assert not list((tmp_path / "runs").glob(".x.*-*"))  # no staging or replaced folders
    assert json.loads((tmp_path / "runs/x/report.json").read_text())["exact"]


def test_discover_says_which_element_balances_it_took_from_formula_names(tmp_path):
    # H2 + I2 <-> 2HI, concentrations only: the names are formulas and the data conserve
    # H and I, so the run says so and records them; abstract names get no such line
    from rdlab.discover.mechanism import Mechanism

    mech = Mechanism.from_rows(["H2", "I2", "HI"], [({"H2": -1, "I2": -1, "HI": 2}, 2.0, 0.5)])
    data = generate(mech, n_samples=30, seed=2).without_derivatives()
    path = save(data, tmp_path / "hi.csv")
    # about 5 s alone; the budget leaves room for a loaded CI machine (30 s once ran out)
    res = CliRunner().invoke(app, ["discover", str(path), "--reactions", "1",
                                   "--time-budget", "5m", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "conserved elements from the species formulas: H, I" in res.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["fit"]["element_balances"] == ["H", "I"]
    assert report["fit"]["converged"]


def test_the_report_says_which_rows_a_completion_added(tmp_path, capsys):
    from rdlab.cli.discover import _print_report

    fit = {"converged": True, "validation_error": 1e-3, "seconds": 105.0, "epochs": 0,
           "restarts": 0, "element_balances": ["H", "O"],
           "completion": {"added": ["H2O <-> H2 + O"], "accepted": True, "seconds": 70.0}}
    _print_report({"fit": fit, "warnings": [], "outputs": [], "missing_outputs": []}, tmp_path)
    out = capsys.readouterr().out
    assert "added H2O <-> H2 + O (kept: the completed fit agrees with their noise)" in out


def test_the_report_names_a_species_no_reaction_changed(tmp_path, capsys):
    from rdlab.cli.discover import _print_report

    fit = {"converged": False, "validation_error": 1e-3, "seconds": 127.0, "epochs": 0,
           "restarts": 0,
           "completion": {"added": ["H + OH + CO -> H2 + CO2"], "accepted": False,
                          "orphans": [{"species": "CO2", "reaction": "H + OH + CO -> H2 + CO2",
                                       "chi2": 88.9, "rate": 1.97}],
                          "seconds": 26.0}}
    _print_report({"fit": fit, "warnings": [], "outputs": [], "missing_outputs": []}, tmp_path)
    out = capsys.readouterr().out
    assert ("species that no reaction of the fit changes but the data do: CO2 (89 σ²); "
            "added H + OH + CO -> H2 + CO2 (not kept)") in out
