"""``rdlab discover`` as a new user meets it (issue 18): every output written or named, the
exports start from the data, a sweep that writes as it goes and skips what cannot fit,
noise on the concentrations, and help and hints that say what to do."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import rdlab.discover.workflow as workflow
from rdlab.cli import app
from rdlab.discover.data import generate, save
from rdlab.discover.examples import example
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.selection import stoichiometric_rank, sweep_reactions
from rdlab.discover.workflow import DiscoverSettings, prepare_data
from rdlab.errors import ParameterError


class _Fitted:
    """What the workflow reads of a fitted ReactionDiscovery, for a given mechanism."""

    def __init__(self, mech: Mechanism, converged: bool = True, skipped: int = 0):
        self.mechanism_ = mech
        self.converged_ = converged
        self.species_errors_ = np.full(mech.n_species, 1e-9 if converged else 0.3)
        self.warm_start_ = {"proposed": 1, "skipped_monomials": skipped}

    def acceptance_tolerance(self) -> float:
        return 1e-4

    def rejection(self) -> str | None:
        return None if self.converged_ else "largest per-species validation error 0.3 > 1e-4"

    def limits(self) -> list[str]:
        return []

    def report(self) -> dict:
        return {"converged": self.converged_, "validation_error": 1e-9, "seconds": 0.1,
                "epochs": 0, "restarts": 0, "mechanism": self.mechanism_.to_dict()}


@pytest.fixture(scope="module")
def stiff_csv(tmp_path_factory):
    """Six samples of the stiff example (F <-> R <-> P) as a CSV with exact derivatives."""
    data = generate(example("stiff").mechanism, n_samples=6, seed=3)
    return data, save(data, tmp_path_factory.mktemp("data") / "stiff.csv")


def _run(tmp_path, monkeypatch, stiff_csv, mech: Mechanism, **fitted):
    """Run ``rdlab discover stiff.csv --reactions 2`` with the fit replaced by ``mech``."""
    monkeypatch.setattr(workflow, "_fit", lambda *a, **k: _Fitted(mech, **fitted))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["discover", str(stiff_csv[1]), "--reactions", "2",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    return res, out, json.loads((out / "report.json").read_text())


# ------------------------------------------------------------------ 2: no silent outputs
def test_an_unphysical_best_guess_is_named_drawn_and_never_listed_as_written(tmp_path,
                                                                              monkeypatch,
                                                                              stiff_csv):
    """A -> -A + B (orders (1, 0), v = (-2, 1)) is no reaction network: the warning says so,
    antimony and SBML are named as not written, the trajectories are still drawn (through
    the mechanism's own rate law), and "outputs in" lists only files that exist."""
    bad = Mechanism(("F", "R", "P"), [[-2.0, 1.0, 0.0]], [1.0], [0.0],
                    orders=[[1.0, 0.0, 0.0]])
    res, out, report = _run(tmp_path, monkeypatch, stiff_csv, bad, converged=False)
    assert any("not physical (reaction 1: F -> -1F + R has negative products (F))" in w
               for w in report["warnings"])
    assert set(report["missing_outputs"]) == {"mechanism.antimony", "mechanism.xml"}
    assert (out / "trajectories.png").is_file()
    listed = [line for line in res.output.splitlines() if line.startswith("outputs in")]
    assert len(listed) == 1
    names = listed[0].split(": ", 1)[1].split(", ")
    assert "mechanism.xml" not in names and "mechanism.antimony" not in names
    assert all((out / n).exists() for n in names)
    assert "not written: mechanism.antimony, mechanism.xml" in res.output


def test_an_output_missing_without_an_error_is_still_named(tmp_path, monkeypatch, stiff_csv):
    monkeypatch.setattr(workflow, "_trajectory_figure", lambda *a, **k: {})
    res, out, report = _run(tmp_path, monkeypatch, stiff_csv, example("stiff").mechanism)
    assert report["missing_outputs"] == {
        "trajectories.png": "it was not written (no error was raised)"}
    assert "not written: trajectories.png" in res.output


# ------------------------------------------------------------------ 4: negligible rates
def test_a_negligible_reverse_rate_is_pruned_before_any_output(tmp_path, monkeypatch,
                                                                 stiff_csv):
    """The stiff example learned with kr 9.35e-18 on R <-> P besides the true pair: the
    reverse flux is ~1e-17 of the turnover, so the step is written irreversible everywhere."""
    truth = example("stiff").mechanism
    learned = Mechanism(truth.species, np.vstack([truth.V, [[0, -1, 1]]]),
                        [*truth.kf, 3.0], [*truth.kr, 9.35e-18])
    res, out, report = _run(tmp_path, monkeypatch, stiff_csv, learned)
    assert len(report["pruned"]) == 1 and "reverse rate 9.35e-18" in report["pruned"][0]
    text = (out / "mechanism.txt").read_text()
    assert "R -> P" in text and "9.35" not in text and "-0." not in text
    assert "9.35e-18" not in (out / "mechanism.antimony").read_text()
    libsbml = pytest.importorskip("libsbml")
    model = libsbml.readSBMLFromString((out / "mechanism.xml").read_text()).getModel()
    assert model.getNumReactions() == 5  # two reversible pairs and one irreversible step


# ------------------------------------------------------------------ 5: exports start from data
def test_exported_models_start_from_the_datas_first_state(tmp_path, monkeypatch, stiff_csv):
    libsbml = pytest.importorskip("libsbml")
    truth = example("stiff").mechanism
    res, out, report = _run(tmp_path, monkeypatch, stiff_csv, truth)
    first = stiff_csv[0].concentrations[0, 0]
    assert np.all(first > 0)
    model = libsbml.readSBMLFromString((out / "mechanism.xml").read_text()).getModel()
    sbml = {model.getSpecies(i).getName() or model.getSpecies(i).getId():
            model.getSpecies(i).getInitialConcentration() for i in range(model.getNumSpecies())}
    np.testing.assert_allclose([sbml[s] for s in truth.species], first, rtol=1e-14)
    antimony = dict(line.strip().rstrip(";").split(" = ")
                    for line in (out / "mechanism.antimony").read_text().splitlines()
                    if line.strip().split(" = ")[0] in truth.species)
    np.testing.assert_allclose([float(antimony[s]) for s in truth.species], first, rtol=1e-15)


# ------------------------------------------------------------------ 3: the sweep
def test_a_sweep_skips_below_the_rank_stops_at_the_first_fit_and_writes_each_result():
    """Stiff example (F <-> R <-> P, rank 2): n_r = 1 cannot fit and is not tried, n_r = 2
    converges, 3 and 4 are not fitted; each finished fit is reported at once."""
    data = generate(example("stiff").mechanism, n_samples=8, seed=3)
    assert stoichiometric_rank(data) == 2
    seen = []
    sw = sweep_reactions(data, (1, 2, 3, 4), stop_early=True, time_budget_s=30.0,
                         on_result=lambda s: seen.append(list(s.n_reactions)))
    assert sw.n_reactions == [2] and sw.chosen == 2 and sw.converged == [True]
    assert seen == [[2]]
    assert sorted(sw.skipped) == [1, 3, 4] and "below the lower bound 2" in sw.skipped[1]
    d = sw.to_dict()
    assert d["lower_bound"] == 2 and d["total_seconds"] >= d["seconds"][0] > 0
    assert "not fitted: below the lower bound 2" in sw.table()


def test_the_rank_bound_never_exceeds_the_true_rank_with_noise():
    """Hydrogen oxidation: 6 species, H and O conserved, so the changes have rank 4; with 1 %
    noise whose level is not given the bound may only come out lower."""
    data = generate(example("hydrogen-oxidation").mechanism, n_samples=8)
    assert 1 <= stoichiometric_rank(data) <= 4
    noisy = data.with_noise(0.01, seed=5)
    assert 1 <= stoichiometric_rank(noisy) <= 4


def test_the_cli_sweep_prints_its_total_time_and_writes_sweep_json(tmp_path, stiff_csv):
    out = tmp_path / "sw"
    res = CliRunner().invoke(app, ["discover", str(stiff_csv[1]), "--sweep", "1:3",
                                   "--time-budget", "30s", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "sweep: 1 fit(s), n_r = 2 chosen, in " in res.output and " s in all" in res.output
    sw = json.loads((out / "sweep.json").read_text())
    assert sw["n_reactions"] == [2] and set(sw["skipped"]) == {"1", "3"}


# ------------------------------------------------------------------ 6: options and hints
def test_noise_is_on_the_concentrations_and_follows_the_seed():
    ex = example("stiff")
    clean, _ = prepare_data(ex, DiscoverSettings(n_samples=5))
    a, _ = prepare_data(ex, DiscoverSettings(n_samples=5, noise=0.01, data_seed=1))
    b, _ = prepare_data(ex, DiscoverSettings(n_samples=5, noise=0.01, data_seed=2))
    c, _ = prepare_data(ex, DiscoverSettings(n_samples=5, noise=0.01, data_seed=1))
    np.testing.assert_array_equal(a.derivatives, clean.derivatives)  # exact ones kept
    rel = a.concentrations / clean.concentrations - 1.0
    assert 0.008 < np.std(rel) < 0.012 and abs(np.mean(rel)) < 3e-3
    np.testing.assert_array_equal(a.concentrations, c.concentrations)
    assert not np.array_equal(a.concentrations, b.concentrations)
    assert not np.array_equal(clean.concentrations, prepare_data(ex, DiscoverSettings(
        n_samples=5, data_seed=2))[0].concentrations)


def test_the_cli_seed_reaches_the_data_and_the_noise(monkeypatch):
    seen = {}

    def capture(source, out, settings):
        seen["settings"] = settings
        raise ParameterError("stop here")

    monkeypatch.setattr(workflow, "run_discovery", capture)
    res = CliRunner().invoke(app, ["discover", "--example", "stiff", "--noise", "0.01",
                                   "--seed", "7"])
    assert res.exit_code == 2 and "stop here" in res.output
    assert seen["settings"].data_seed == 7 and seen["settings"].estimator["seed"] == 7


def test_help_names_the_temperature_column_and_counts_a_reversible_pair_once():
    res = CliRunner().invoke(app, ["discover", "--help"], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert "columns sample, time, [temperature], one per species" in text
    assert "a reversible pair (A <-> B) counts as one" in text
    assert "noise level put on the concentrations" in text


def test_a_failed_v_form_fit_with_a_catalytic_looking_term_suggests_catalytic(tmp_path,
                                                                             monkeypatch,
                                                                             stiff_csv):
    truth = example("stiff").mechanism
    res, out, report = _run(tmp_path, monkeypatch, stiff_csv, truth, converged=False,
                            skipped=1)
    assert any("try --catalytic" in w for w in report["warnings"])
    assert "try --catalytic" in res.output
    res, out, report = _run(tmp_path, monkeypatch, stiff_csv, truth, converged=False,
                            skipped=0)
    assert not any("--catalytic" in w for w in report["warnings"])


def test_a_given_initial_state_is_what_the_exports_start_from(tmp_path, monkeypatch, stiff_csv):
    libsbml = pytest.importorskip("libsbml")
    truth = example("stiff").mechanism
    monkeypatch.setattr(workflow, "_fit", lambda *a, **k: _Fitted(truth))
    settings = DiscoverSettings(n_reactions=2, initial_state={"F": 0.25, "P": 1})
    report = workflow.run_discovery(stiff_csv[1], tmp_path / "run", settings, progress=False)
    assert report["export_initial_state"] == {"from": "given",
                                              "state": {"F": 0.25, "P": 1.0}}
    model = libsbml.readSBMLFromString((tmp_path / "run/mechanism.xml").read_text()).getModel()
    got = {model.getSpecies(i).getId(): model.getSpecies(i).getInitialConcentration()
           for i in range(model.getNumSpecies())}
    assert got == {"F": 0.25, "R": 0.0, "P": 1.0}
    for bad, match in (({"X": 1.0}, r"initial_state names 'X'"),
                       ({"F": -1.0}, r"initial_state\['F'\] must be a finite number ≥ 0, "
                                     r"got -1\.0")):
        with pytest.raises(ParameterError, match=match):
            workflow.run_discovery("stiff", tmp_path / "bad",
                                   DiscoverSettings(initial_state=bad))
        assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------ 7: concentrations alone
def test_concentrations_alone_run_without_flags_and_the_noise_reaches_the_fit(tmp_path,
                                                                             monkeypatch,
                                                                             stiff_csv):
    """A CSV without dX/dt columns: no --derivatives needed; the estimator gets the data as
    they are (target 'auto' picks trajectories) and --noise as the concentration noise."""
    from dataclasses import replace

    seen = {}

    def fake_fit(folder, data, ex, settings, params, report):
        seen.update(data=data, params=params)
        return _Fitted(example("stiff").mechanism)

    monkeypatch.setattr(workflow, "_fit", fake_fit)
    path = save(replace(stiff_csv[0], derivatives=None), tmp_path / "conc.csv")
    res = CliRunner().invoke(app, ["discover", str(path), "--reactions", "2", "--noise",
                                   "0.001", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert seen["data"].derivatives is None
    assert seen["params"]["concentration_noise"] == 0.001
    assert seen["params"].get("target", "auto") == "auto"


def test_a_data_file_without_a_number_of_reactions_is_swept(tmp_path, stiff_csv):
    """No --reactions, no --sweep: n_r = 1 … n_s (3 here) are tried; 1 is below the rank
    bound, 2 fits, 3 is not needed."""
    out = tmp_path / "auto"
    res = CliRunner().invoke(app, ["discover", str(stiff_csv[1]), "--time-budget", "30s",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "no number of reactions given: tried n_r = 1 … 3" in res.output
    sw = json.loads((out / "sweep.json").read_text())
    assert sw["n_reactions"] == [2] and sw["chosen"] == 2 and set(sw["skipped"]) == {"1", "3"}
