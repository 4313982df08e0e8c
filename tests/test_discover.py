"""Reaction discovery: the mechanism form, data generation, PPF pieces and recovered mechanisms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdlab.discover import freezing
from rdlab.discover.data import ReactionData, generate, load, save, trajectories
from rdlab.discover.derivatives import estimate as estimate_derivatives
from rdlab.discover.estimator import ReactionDiscovery
from rdlab.discover.examples import EXAMPLES, example
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.rate_fit import fit_rates, refine_integers
from rdlab.errors import DataError, ParameterError
from rdlab.simulate import ode
from rdlab.system import System


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def hydrogen_data():
    return generate(example("hydrogen-oxidation").mechanism, n_samples=30)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_mechanism_rhs_is_the_network_rhs(name):
    """The V-form right-hand side equals the one of the directed network every engine uses."""
    ex = example(name)
    m = ex.mechanism
    u = np.random.default_rng(0).uniform(0.01, 1.0, (5, m.n_species))
    T = 300.0 if m.arrhenius is not None else None
    net = m.to_network(temperature=T)
    system = System.build(net)
    expected = np.concatenate([ode.rhs(system, u[i:i + 1]) for i in range(len(u))])
    np.testing.assert_allclose(m.rhs(u, T), expected, rtol=1e-12, atol=1e-12 * np.abs(
        expected).max())


def test_generated_derivatives_are_exact_and_hydrogen_is_conserved(hydrogen_data):
    d = hydrogen_data
    m = example("hydrogen-oxidation").mechanism
    u, du, _ = d.points()
    np.testing.assert_allclose(du, m.rhs(u), rtol=1e-10, atol=1e-8)
    # species [H2, O2, H2O, H, O, OH]: H atoms 2·H2 + 2·H2O + H + OH, O atoms 2·O2 + H2O + O + OH
    h = d.concentrations @ np.array([2, 0, 2, 1, 0, 1.0])
    o = d.concentrations @ np.array([0, 2, 1, 0, 1, 1.0])
    assert np.max(np.abs(h - h[:, :1])) < 1e-7
    assert np.max(np.abs(o - o[:, :1])) < 1e-7
    assert d.concentrations.shape == (30, 11, 6)


def test_data_files_round_trip(tmp_path, hydrogen_data):
    for name in ("d.csv", "d.zarr"):
        back = load(save(hydrogen_data, tmp_path / name))
        assert back.species == hydrogen_data.species
        np.testing.assert_allclose(back.concentrations, hydrogen_data.concentrations, rtol=1e-15)
        np.testing.assert_allclose(back.derivatives, hydrogen_data.derivatives, rtol=1e-15)


CHAIN = Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": 1}, 1.0, 0.5),
                                             ({"B": -1, "C": 1}, 0.3, 0.0)])


def _chain_on_own_grids(n: int = 6) -> ReactionData:
    """A ⇌ B → C; sample s reported at 41 times over [0, 1 + s/2] (a grid of its own)."""
    times = np.stack([np.linspace(0.0, 1.0 + 0.5 * s, 41) for s in range(n)])
    return generate(CHAIN, n, times=times, seed=3)


def test_per_sample_times_survive_csv_and_zarr(tmp_path):
    truth = _chain_on_own_grids()
    assert not truth.shared_times
    np.testing.assert_allclose(truth.derivatives.reshape(-1, 3),
                               CHAIN.rhs(truth.concentrations.reshape(-1, 3)), atol=1e-12)
    for name in ("d.csv", "d.zarr"):
        back = load(save(truth, tmp_path / name))
        np.testing.assert_array_equal(back.sample_times, truth.sample_times)
        np.testing.assert_array_equal(back.concentrations, truth.concentrations)
        np.testing.assert_array_equal(back.derivatives, truth.derivatives)


def test_rates_from_a_csv_whose_samples_have_different_grids(tmp_path):
    """Only concentrations in the file; the derivatives estimated per sample on its own
    times give the true rates of the known structure (sample 0's grid for all — the old
    reading — gives rates off by up to 3×)."""
    truth = _chain_on_own_grids()
    path = save(ReactionData(truth.species, truth.times, truth.concentrations),
                tmp_path / "c.csv")
    data = estimate_derivatives(load(path), method="spline")
    u, du, _ = data.points()
    V = CHAIN.V
    kf, kr, _ = fit_rates(V, np.maximum(0, -V), np.maximum(0, V), np.log(u), du)
    np.testing.assert_allclose(kf, CHAIN.kf, rtol=1e-2)
    np.testing.assert_allclose(kr, CHAIN.kr, rtol=1e-2, atol=1e-3)
    wrong = estimate_derivatives(ReactionData(truth.species, truth.times[0],
                                              truth.concentrations), method="spline")
    kf_wrong, _, _ = fit_rates(V, np.maximum(0, -V), np.maximum(0, V), np.log(u),
                               wrong.derivatives.reshape(-1, 3))
    assert np.max(np.abs(kf_wrong / CHAIN.kf - 1)) > 0.3


def test_csv_rows_of_samples_may_interleave_and_labels_may_be_text(tmp_path):
    text = ("sample,time,A,dA/dt\n"
            "left,0,1,-1\nright,0,2,-2\nleft,1,0.5,-0.5\nright,2,1,-1\n")
    path = tmp_path / "i.csv"
    path.write_text(text)
    data = load(path)
    np.testing.assert_array_equal(data.sample_times, [[0, 1], [0, 2]])
    np.testing.assert_array_equal(data.concentrations[:, :, 0], [[1, 0.5], [2, 1]])


def test_a_mechanism_without_reactions_stays_where_it_starts():
    """Data at a steady state are explained by no reaction at all; that mechanism's
    trajectory (drawn in trajectories.png) is constant, not an error."""
    none = Mechanism(("A", "B"), np.zeros((0, 2)), np.zeros(0), np.zeros(0))
    states, derivs = trajectories(none, [[0.3, 0.7]], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(states, [[[0.3, 0.7]] * 3])
    assert not derivs.any()


def _damaged(tmp_path, how: str):
    store = save(generate(example("stiff").mechanism, n_samples=3), tmp_path / "s.zarr")
    if how == "metadata":
        for name in (".zgroup", ".zmetadata", ".zattrs"):
            (store / name).unlink()
    elif how == "deleted-chunk":
        (store / "concentration" / "0.0.0").unlink()
    elif how == "truncated-chunk":
        chunk = store / "concentration" / "0.0.0"
        chunk.write_bytes(chunk.read_bytes()[:20])
    else:  # cut by a few bytes only: blosc may decode such a buffer without an error
        chunk = store / "concentration" / "0.0.0"
        chunk.write_bytes(chunk.read_bytes()[:-3])
    return store


@pytest.mark.parametrize("how, match", [
    ("metadata", r"is a folder but not a zarr store"),
    ("deleted-chunk", r"s\.zarr' is damaged: concentration: a chunk file is missing"),
    ("truncated-chunk", r"s\.zarr' is damaged: concentration: a chunk file is truncated"),
    ("slightly-truncated-chunk", r"damaged: concentration: a chunk file is truncated"),
])
def test_damaged_data_stores_are_refused(tmp_path, how, match):
    with pytest.raises(DataError, match=match):
        load(_damaged(tmp_path, how))


def test_bad_data_is_named():
    c = np.ones((2, 3, 2))
    c[1, 2, 0] = np.nan
    with pytest.raises(ParameterError, match=r"concentration of A in sample 1"):
        ReactionData(("A", "B"), [0, 1, 2], c)
    with pytest.raises(ParameterError, match="negative concentration"):
        ReactionData(("A", "B"), [0, 1, 2], -np.ones((2, 3, 2)))
    with pytest.raises(ParameterError, match="X\\[0, 1\\]"):
        ReactionDiscovery(1).fit(np.array([[1.0, np.inf]]), np.zeros((1, 2)))
    with pytest.raises(ParameterError, match="n_reactions"):
        ReactionDiscovery(0).fit(np.ones((10, 2)), np.zeros((10, 2)))
    with pytest.raises(ParameterError, match="not fitted"):
        ReactionDiscovery(1).predict(np.ones((3, 2)))


def test_row_status_freezes_rounds_and_spots_duplicates():
    V = np.array([[0.02, -0.97, 1.01], [0.0, 1.03, -0.98], [0.3, 0.4, 1.2], [0.01, 0.0, -0.02]])
    s = freezing.row_status(V, None, np.zeros(4, bool), 0.05)
    assert s == [freezing.FREEZE, freezing.DUPLICATE, freezing.FREE, freezing.ZERO]
    # catalytic form: a row whose products would be negative is not frozen
    orders_ = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    V2 = np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]])
    assert freezing.row_status(V2, orders_, np.zeros(2, bool), 0.05) == [freezing.FREEZE,
                                                                     freezing.FREE]


def test_rates_of_the_true_structure_are_exact(hydrogen_data):
    m = example("hydrogen-oxidation").mechanism
    u, du, _ = hydrogen_data.points()
    kf, kr, res = fit_rates(m.V, np.maximum(0, -m.V), np.maximum(0, m.V), np.log(u), du)
    np.testing.assert_allclose(kf, m.kf, rtol=1e-7)
    np.testing.assert_allclose(kr, m.kr, rtol=1e-7)
    assert res < 1e-10


def test_integer_search_repairs_rows_frozen_one_unit_off(hydrogen_data):
    m = example("hydrogen-oxidation").mechanism
    u, du, _ = hydrogen_data.points()
    wrong = m.V.copy()
    wrong[2, 4] += 1  # H2O <-> H + OH frozen as H2O <-> H + orders_ + OH
    wrong[5, 0] -= 1
    V, _, res = refine_integers(wrong, None, np.log(u), du)
    np.testing.assert_array_equal(V, m.V)
    assert res < 1e-10


def _fit_example(name, **kw):
    ex = example(name)
    data = generate(ex.mechanism, seed=1, temperature_range=ex.temperature_range)
    params = {"catalytic": ex.catalytic, "time_budget_s": 60.0, "seed": 1, **kw}
    est = ReactionDiscovery(ex.n_reactions, **params).fit(data)
    return ex, est


@pytest.mark.parametrize("name", ["stiff", "michaelis-menten", "autocatalytic"])
def test_ppf_recovers_the_mechanism_exactly(name):
    ex, est = _fit_example(name)
    cmp = est.mechanism_.compare(ex.mechanism)
    assert est.converged_
    assert cmp["exact"], est.mechanism_.table()
    assert cmp["max_rate_error"] < 1e-2  # issue: rates within 1 % (noise-free)
    assert est.validation_error_ < 1e-6


def test_arrhenius_parameters_are_recovered():
    ex, est = _fit_example("michaelis-menten-arrhenius")
    truth = ex.mechanism
    cmp = est.mechanism_.compare(truth)
    assert est.converged_ and cmp["exact"], est.mechanism_.table()
    learned = est.mechanism_
    for m in cmp["matched"]:
        i, j = m["reaction"], m["learned"]
        same = np.allclose(learned.V[j], truth.V[i])
        Af, Ef = ("prefactor_f", "energy_f") if same else ("prefactor_r", "energy_r")
        assert getattr(learned.arrhenius, Af)[j] == pytest.approx(truth.arrhenius.prefactor_f[i],
                                                                  rel=1e-2)
        assert getattr(learned.arrhenius, Ef)[j] == pytest.approx(truth.arrhenius.energy_f[i],
                                                                  rel=1e-2)


def test_without_freezing_the_stiff_example_fails_like_table_4_1():
    ex, est = _fit_example("stiff", freezing=False, population=2, max_epochs=10_000,
                           time_budget_s=1e9)
    cmp = est.mechanism_.compare(ex.mechanism)
    assert not cmp["exact"]
    assert not est.converged_
    assert not est.mechanism_.is_integer(1e-3)


def test_the_v_form_cannot_express_catalysis():
    ex, est = _fit_example("autocatalytic", catalytic=False, time_budget_s=10.0)
    assert not est.converged_
    assert np.max(est.species_errors_) > 1e-2


def test_estimator_follows_the_sklearn_conventions(hydrogen_data):
    est = ReactionDiscovery(2, population=2, max_epochs=1000)
    assert "n_reactions" in est.get_params()
    assert est.set_params(n_reactions=3) is est and est.n_reactions == 3
    assert not any(k.endswith("_") for k in vars(est))
    ex = example("stiff")
    data = generate(ex.mechanism, n_samples=20)
    fitted = est.set_params(n_reactions=2, max_epochs=30_000, time_budget_s=30.0).fit(data)
    assert fitted is est
    u, du, _ = data.points()
    assert est.predict(u).shape == du.shape
    assert est.score(data) > 1 - 1e-6
    with pytest.raises(ParameterError, match="unknown parameter"):
        est.set_params(bogus=1)


def test_mechanism_yaml_round_trip():
    m = example("michaelis-menten-arrhenius").mechanism
    back = Mechanism.from_dict(__import__("yaml").safe_load(m.to_yaml()))
    np.testing.assert_array_equal(back.V, m.V)
    np.testing.assert_allclose(back.arrhenius.energy_f, m.arrhenius.energy_f)
    assert back.compare(m)["exact"]


@pytest.mark.parametrize("settings, match", [
    ({"n_reactions": 0}, r"n_reactions: .* ≥ 1, got 0"),
    ({"n_reactions": 101}, r"n_reactions: 101 reactions .*at most 100"),
    ({"sweep": ()}, r"sweep needs a non-empty list"),
    ({"sweep": (1, 0)}, r"sweep: .* ≥ 1, got 0"),
    ({"noise": float("nan")}, r"noise must be a finite number ≥ 0, got nan"),
    ({"derivatives": "fancy"}, r"unknown derivative method 'fancy'"),
    ({"n_samples": 0}, r"n_samples must be a positive integer, got 0"),
    ({"estimator": {"time_budget_s": float("nan")}}, r"time_budget_s must be a finite number > 0"),
    ({"estimator": {"seed": -1}}, r"seed must be an integer in 0 … 4294967295, got -1"),
    ({"estimator": {"bogus": 1}}, r"unknown estimator parameter\(s\) \['bogus'\]"),
])
def test_discover_settings_are_checked_before_any_work(tmp_path, settings, match):
    from rdlab.discover.workflow import DiscoverSettings, run_discovery

    with pytest.raises(ParameterError, match=match):
        run_discovery("stiff", tmp_path / "out", DiscoverSettings(**settings))
    assert list(tmp_path.iterdir()) == []


def test_get_params_is_the_constructor_signature():
    """scikit-learn's rule: every constructor parameter, and nothing else, under its own
    name; so a clone built from get_params() has equal parameters, and a parameter added to
    the signature cannot be forgotten."""
    import inspect

    est = ReactionDiscovery(n_reactions=3, tolerance=1e-3, seed=7, warm_start=False)
    names = [n for n in inspect.signature(ReactionDiscovery.__init__).parameters if n != "self"]
    params = est.get_params()
    assert list(params) == names
    assert params["n_reactions"] == 3 and params["tolerance"] == 1e-3 and params["seed"] == 7
    assert ReactionDiscovery(**params).get_params() == params
    with pytest.raises(ParameterError, match="unknown parameter 'n_reaction'.*n_reactions"):
        est.set_params(n_reaction=2)


def test_one_gas_constant_and_one_arrhenius_law():
    from rdlab.chemistry.kinetics import GAS_CONSTANT, arrhenius

    arr = example("michaelis-menten-arrhenius").mechanism.arrhenius
    assert arr.gas_constant == GAS_CONSTANT == 8.314462618
    kf, kr = arr.rates(np.array([250.0, 350.0]))
    np.testing.assert_allclose(kf[1], [np.exp(-1600.0 / (8.314462618 * 350.0)),
                                       1e3 * np.exp(-2240.0 / (8.314462618 * 350.0))],
                               rtol=1e-14)
    np.testing.assert_allclose(kr[0], [4.0 * np.exp(-3680.0 / (GAS_CONSTANT * 250.0)), 0.0],
                               rtol=1e-14)
    assert arrhenius(1e3, 2240.0, 350.0) == pytest.approx(kf[1, 1], rel=1e-14)


def test_mechanism_subset_keeps_the_chosen_reactions_and_their_arrhenius_rates():
    """The subset's right-hand side is the sum of the chosen reactions' terms, at any T."""
    full = example("michaelis-menten-arrhenius").mechanism
    c = np.array([[0.4, 0.7, 0.2, 0.1]])
    for T in (250.0, 350.0):
        parts = [full.subset(np.array([i])).rhs(c, T) for i in range(full.n_reactions)]
        np.testing.assert_allclose(sum(parts), full.rhs(c, T), rtol=1e-12)
    last = full.subset(np.arange(full.n_reactions) == full.n_reactions - 1)  # a mask
    assert last.n_reactions == 1 and np.array_equal(last.V, full.V[-1:])
    np.testing.assert_allclose(last.rates_at(300.0)[0], full.rates_at(300.0)[0][-1:])
