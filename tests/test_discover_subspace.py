"""Structure candidates from the stoichiometric subspace of concentration data (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest

from rdlab.discover.data import ReactionData, generate
from rdlab.discover.estimator import ReactionDiscovery
from rdlab.discover.examples import example
from rdlab.discover.mechanism import ArrheniusRates, Mechanism
from rdlab.discover.subspace import (
    candidate_sets,
    equilibrated,
    exhausted_species,
    fit_all_rows,
    integer_rows,
    stoichiometric_subspace,
    subsample,
)
from rdlab.discover.trajectory_fit import fit_trajectories
from rdlab.errors import ParameterError


def _concentrations(mech: Mechanism, n: int = 100) -> ReactionData:
    """The paper's sampling (t = 0…1 by 0.1), derivatives dropped."""
    return generate(mech, n_samples=n, seed=1).without_derivatives()


def _small() -> Mechanism:
    # A + B -> C (k 2), C -> A (k 1)
    return Mechanism.from_rows(["A", "B", "C"],
                               [({"A": -1, "B": -1, "C": 1}, 2.0, 0.0),
                                ({"C": -1, "A": 1}, 1.0, 0.0)])


def _has_row(rows: np.ndarray, v: np.ndarray) -> bool:
    return bool(np.any(np.all(rows == v, axis=1) | np.all(rows == -v, axis=1)))


def test_subspace_of_michaelis_menten_holds_its_rows():
    # E + S <-> ES (1e6, 1e3) equilibrates within 1e-3 of the first interval: no quadrature
    # of 11 samples resolves it, but the increments still span exactly its two rows (two
    # conservation laws: E + ES and S + ES + P)
    truth = example("michaelis-menten").mechanism
    data = _concentrations(truth, 4)
    basis = stoichiometric_subspace(data)
    assert basis.shape == (2, 4)
    assert np.allclose(basis @ basis.T, np.eye(2))
    # the conservation laws are orthogonal to it
    for law in ([1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]):
        assert np.max(np.abs(basis @ law)) < 1e-8
    rows = integer_rows(basis)
    for v in truth.V:
        assert _has_row(rows, v)
    # within ±2 and at most bimolecular: E+S<->ES, E+P<->ES, S<->P and 2S<->2P
    assert len(rows) == 4
    sets = candidate_sets(rows, 2, 2)
    assert len(sets) == 5  # C(4, 2) less the parallel pair S<->P, 2S<->2P
    assert candidate_sets(rows, 1, 2) == []


def test_integer_rows_refuse_a_large_rank():
    with pytest.raises(ParameterError, match="rank"):
        integer_rows(np.eye(8))


def test_subsample_spreads_over_the_samples():
    data = _concentrations(_small(), 20)
    sub = subsample(data, 5)
    assert sub.n_samples == 5
    assert np.array_equal(sub.concentrations[0], data.concentrations[0])
    assert np.array_equal(sub.concentrations[-1], data.concentrations[-1])
    assert subsample(data, 50) is data


@pytest.mark.slow
def test_discovers_a_small_mechanism_from_concentrations():
    # A + B -> C, C -> A from 100 trajectories without derivatives, default estimator: the
    # subspace candidates are ranked by trajectory error and the true one reproduces the data
    truth = _small()
    est = ReactionDiscovery(2, time_budget_s=120.0, seed=0, subspace=True)
    est.fit(_concentrations(truth))
    assert est.converged_
    cmp = est.mechanism_.compare(truth)
    assert cmp["exact"], est.mechanism_
    assert cmp["max_rate_error"] < 1e-2
    # noise-free data: the measured starts are exact and stay the integration's starts
    assert est.trajectory_fit_.initial_states is None
    assert est.report()["noise"]["source"] == "noise-free"


@pytest.mark.slow
def test_discovers_michaelis_menten_from_concentrations():
    # the fast equilibrium E + S <-> ES leaves only kf/kr in the data: the structure is
    # exact, kcat within 1 %, and the equilibrium constant within 1 % (measured: 303 s CPU on
    # seed-0 data, rates within 5e-6; the budget leaves room for a slower machine)
    truth = example("michaelis-menten").mechanism
    est = ReactionDiscovery(2, time_budget_s=900.0, seed=0, subspace=True)
    est.fit(_concentrations(truth))
    assert est.converged_
    m = est.mechanism_
    assert m.n_reactions == 2
    fast = int(np.argmax(m.kf))
    assert abs(m.kf[fast] / m.kr[fast] / 1e3 - 1.0) < 1e-2
    slow = 1 - fast
    assert abs(m.kf[slow] / 10.0 - 1.0) < 1e-2
    assert m.kr[slow] < 1e-6 * m.kf[slow]  # E + P -> ES is not in the data: pruned
    assert _has_row(np.round(m.V), truth.V[0]) and _has_row(np.round(m.V), truth.V[1])


def test_all_rows_fit_prunes_to_the_true_chain():
    # A <-> B (2, 0.5), B -> C (1): the subspace {x : Σx = 0} holds 9 small integer rows;
    # all 18 directions are fitted at once through the solver and every direction the data
    # do not need is pruned, which leaves the truth with its rates
    truth = Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": 1}, 2.0, 0.5),
                                                  ({"B": -1, "C": 1}, 1.0, 0.0)])
    data = generate(truth, n_samples=6, times=np.linspace(0.0, 1.0, 6)).without_derivatives()
    fit = fit_all_rows(data)
    assert fit is not None and fit.accepted
    m = fit.mechanism
    live = (m.kf > 0) | (m.kr > 0)
    assert int(live.sum()) == 2
    kept = Mechanism(m.species, m.V[live], m.kf[live], m.kr[live])
    cmp = kept.compare(truth)
    assert cmp["exact"], kept
    assert cmp["max_rate_error"] < 1e-3


def test_an_inert_species_does_not_hide_the_subspace_rank():
    # The simplified GRI-3.0 carries inert N2: its column never changes, so the increments
    # have one exactly-zero singular value. Read as "the largest gap" it made the rank 15;
    # the 12 reactions span 12 directions, with a gap of 1e10 below the 12th
    truth = example("gri30-simplified").mechanism
    data = _concentrations(truth, 20)
    assert np.linalg.matrix_rank(truth.V) == 12
    assert stoichiometric_subspace(data).shape == (12, 16)


def test_species_used_up_within_the_first_interval_are_named():
    # B -> C (k 1e3) leaves e^-100 of B at the second time: the data bound k from below
    # only. GRI-3.0's H2, OH and H2O2 go the same way (rates ~5e3); its slower species do not
    fast = Mechanism.from_rows(["B", "C", "D"], [({"B": -1, "C": 1}, 1e3, 0.0),
                                                 ({"C": -1, "D": 1}, 1.0, 0.0)])
    assert exhausted_species(_concentrations(fast, 5)) == ["B"]
    gri = _concentrations(example("gri30-simplified").mechanism, 20)
    assert exhausted_species(gri) == ["H2", "OH", "H2O2"]
    assert exhausted_species(_concentrations(example("stiff").mechanism, 5)) == []
    est = ReactionDiscovery(2, time_budget_s=5, seed=1).fit(_concentrations(fast, 5))
    assert est.report()["exhausted_species"] == ["B"]
    assert est.limits()[0].startswith("B fall to under 1e-3 of their initial level")


def test_noisy_all_rows_fit_keeps_the_simplest_rows_of_a_fast_equilibrium():
    # The paper's stiff example, F <-> R (1, 1), R <-> P (1e3, 1e3), with 0.1 % noise.
    # R <-> P equilibrates 200 times faster than the sampling, so only R/P = 1 is measured:
    # R <-> P and 2R <-> 2P, or F <-> R and F <-> P sharing the slow flux, fit equally well
    # up to the noise. Pruning whole rows, the largest first and then the smallest flux,
    # leaves the truth; separately, only the fast pair's ratio is reported identifiable
    truth = example("stiff").mechanism
    clean = generate(truth, n_samples=10, seed=1).without_derivatives()
    xi = np.random.default_rng(7).standard_normal(clean.concentrations.shape)
    data = ReactionData(clean.species, clean.times, clean.concentrations * (1 + 1e-3 * xi))
    fit = fit_all_rows(data, n_reactions=2)
    assert fit is not None
    m = fit.mechanism
    live = (m.kf > 0) | (m.kr > 0)
    kept = Mechanism(m.species, m.V[live], m.kf[live], m.kr[live])
    cmp = kept.compare(truth)
    assert cmp["exact"], kept
    slow = next(i for i in range(2) if abs(kept.V[i, 0]) == 1)
    np.testing.assert_allclose([kept.kf[slow], kept.kr[slow]], [1.0, 1.0], rtol=0.05)
    fast = 1 - slow
    np.testing.assert_allclose(kept.kf[fast] / kept.kr[fast], 1.0, rtol=0.05)
    assert fit.error < 3e-3  # the noise level, initial states' noise included


def _fast_pair() -> Mechanism:
    # A <-> B (K 0.5) and B + C <-> D (K 10), both equilibrated ~1e-3 into the first interval
    return Mechanism.from_rows(["A", "B", "C", "D"],
                               [({"A": -1, "B": 1}, 1e4, 2e4),
                                ({"B": -1, "C": -1, "D": 1}, 1e4, 1e3)])


def test_equilibrium_data_report_only_equilibrium_constants():
    truth = _fast_pair()
    data = _concentrations(truth, 20)
    assert equilibrated(data)
    assert not equilibrated(_concentrations(_small(), 20))
    est = ReactionDiscovery(2, time_budget_s=120.0, seed=0).fit(data)
    assert est.converged_ and est.equilibrium_only_
    rep = est.report()
    assert rep["equilibrium_only"]
    assert "equilibrium" in est.mechanism_.notes["identifiable"]  # exported with the model
    # each fitted row is a combination a of the true rows; its kf/kr must be ∏ K_true^a
    ln_K = np.log(truth.kf / truth.kr)
    m = est.mechanism_
    for v, kf, kr in zip(m.V, m.kf, m.kr):
        a = np.linalg.lstsq(truth.V.T, v, rcond=None)[0]
        assert np.allclose(truth.V.T @ a, v)
        assert abs(np.log(kf / kr) - a @ ln_K) < 1e-2
    ratios = [c["name"] for c in rep["trajectory_fit"]["identifiability"]["combinations"]]
    assert all("/" in name for name in ratios)  # only the ratios are measured


def test_normalised_runs_a_backward_arrhenius_row_forward():
    # a row stored as E + P <- ES (kf = 0) prints and refits as ES -> E + P
    arr = ArrheniusRates(np.array([0.0]), np.array([1e3]), np.array([0.0]),
                         np.array([2240.0]))
    m = Mechanism(["E", "S", "ES", "P"], np.array([[-1.0, 0.0, 1.0, -1.0]]), [0.0],
                  list(arr.rates(300.0)[1]), arrhenius=arr, reference_temperature=300.0)
    n = m.normalised()
    assert np.array_equal(n.V[0], [1.0, 0.0, -1.0, 1.0])
    assert n.kr[0] == 0.0 and n.kf[0] == m.kr[0]
    assert n.arrhenius.prefactor_f[0] == 1e3 and n.arrhenius.energy_f[0] == 2240.0
    assert n.arrhenius.prefactor_r[0] == 0.0


@pytest.mark.slow
def test_discovers_hydrogen_oxidation_from_concentrations():
    # six reversible reactions, rates 1 to 3.4e4, in a rank-4 subspace holding 11 small
    # integer rows: fitting all 22 directions through the solver and pruning leaves exactly
    # the true six (measured: 165 s on one core, every rate within 2.1e-6)
    truth = example("hydrogen-oxidation").mechanism
    est = ReactionDiscovery(6, time_budget_s=900.0, seed=1)
    est.fit(_concentrations(truth))
    assert est.converged_
    cmp = est.mechanism_.compare(truth)
    assert cmp["exact"], est.mechanism_
    assert cmp["max_rate_error"] < 1e-2


def test_noisy_fast_equilibrium_reports_only_what_the_noise_allows():
    # A <-> B at 2e4/1e4 /s equilibrates within the first interval; B -> C (1 /s) is slow.
    # With 0.1 % noise the chosen mechanism is refitted to convergence before its
    # identifiability is read: kf_1 and kr_1 alone are not measured, and every combination
    # called identifiable lies within 5 % of the truth
    truth = Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": 1}, 2e4, 1e4),
                                                  ({"B": -1, "C": 1}, 1.0, 0.0)])
    clean = _concentrations(truth, 30)
    xi = np.random.default_rng(5).standard_normal(clean.concentrations.shape)
    data = ReactionData(clean.species, clean.times, clean.concentrations * (1 + 1e-3 * xi))
    est = ReactionDiscovery(2, time_budget_s=120.0, seed=0).fit(data)
    assert est.converged_
    cmp = est.mechanism_.compare(truth)
    assert cmp["exact"], est.mechanism_
    fit = est.trajectory_fit_
    m = fit.mechanism
    fast = int(np.argmax(m.kf))
    ln_true = {}
    for j, v in enumerate(m.V):
        i = int(np.flatnonzero(np.all(truth.V == v, axis=1) | np.all(truth.V == -v, axis=1))[0])
        flip = not np.all(truth.V[i] == v)
        ln_true[f"kf_{j + 1}"] = np.log((truth.kr if flip else truth.kf)[i] or 1e-300)
        ln_true[f"kr_{j + 1}"] = np.log((truth.kf if flip else truth.kr)[i] or 1e-300)
    names = [c["name"] for c in fit.identifiability.combinations]
    assert f"kf_{fast + 1}" not in names and f"kr_{fast + 1}" not in names
    assert f"kf_{fast + 1}/kr_{fast + 1}" in names
    for combo in fit.identifiability.combinations:
        true = sum(c * ln_true[n] for n, c in combo["coefficients"].items())
        assert abs(np.log(combo["value"]) - true) < 0.05, combo
    # three iterations from rates 10x too slow leave the fit unconverged along the fast
    # pair's timescale, where the Jacobian reads a mixture with kf_2 as measured; the
    # chosen fit is always polished to convergence first
    start = Mechanism(truth.species, truth.V, truth.kf * 0.1, truth.kr * 0.1)
    rough = fit_trajectories(start, data, prune=False, max_nfev=3,
                             reversible=np.array([True, False]))
    assert any("^" in c["name"] for c in rough.identifiability.combinations)
    polished = est._polished(rough)
    assert sorted(c["name"] for c in polished.identifiability.combinations) == [
        "kf_1/kr_1", "kf_2"]
    values = {c["name"]: c["value"] for c in polished.identifiability.combinations}
    assert values["kf_1/kr_1"] == pytest.approx(2.0, rel=0.05)
    assert values["kf_2"] == pytest.approx(1.0, rel=0.05)
