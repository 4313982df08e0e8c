"""Probe rows' forward responses, and the makers of species no row of a fit changes."""

from __future__ import annotations

import numpy as np
import pytest

from rdlab.discover.balances import MIN_CHI2, candidate_responses
from rdlab.discover.completion import orphan_makers, pooled_scores
from rdlab.discover.data import generate
from rdlab.discover.examples import example
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.trajectory_fit import KineticModel, simulate
from rdlab.errors import ParameterError

TIMES = np.linspace(0.0, 1.0, 11)
SPECIES = ["A", "B", "C"]
B_TO_C = np.array([0, -1, 1])


def _irreversible(mech: Mechanism) -> KineticModel:
    return KineticModel.from_mechanism(mech, np.zeros(mech.n_reactions, bool))


def test_a_probe_row_responds_as_the_integral_of_its_monomial():
    # A → B at k1 from (1, 0, 0), probed with B → C at k = 0: nothing consumes C and B
    # does not feed back, so ∂C/∂k = ∫ B = t − (1 − e^{−k1 t})/k1 and ∂B/∂k = −∂C/∂k
    k1 = 3.0
    model = _irreversible(Mechanism.from_rows(SPECIES, [({"A": -1, "B": 1}, k1, 0.0)]))
    x, sens, ok = simulate(model, np.log([k1]), np.array([[1.0, 0.0, 0.0]]), TIMES,
                           probes=B_TO_C[None], rtol=1e-9)
    assert ok and sens.shape == (1, TIMES.size, 3, 2)  # ln k1, then the probe
    exact = TIMES - (1.0 - np.exp(-k1 * TIMES)) / k1
    np.testing.assert_allclose(sens[0, :, 2, 1], exact, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(sens[0, :, 1, 1], -exact, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(sens[0, :, 0, 1], 0.0, atol=1e-12)
    # the probe leaves the state as it was
    np.testing.assert_allclose(x[0, :, 1], 1.0 - np.exp(-k1 * TIMES), rtol=1e-7)


def test_probes_need_the_compiled_solver():
    model = _irreversible(Mechanism.from_rows(SPECIES, [({"A": -1, "B": 1}, 1.0, 0.0)]))
    with pytest.raises(ParameterError, match="probes need the compiled solver"):
        simulate(model, np.zeros(1), np.ones((1, 3)), TIMES, probes=B_TO_C[None],
                 solver="scipy")


def test_forward_responses_agree_with_the_adjoint_quadrature():
    # hydrogen oxidation less one row: both ways of computing what adding a row would do
    truth = example("hydrogen-oxidation").mechanism
    fit = truth.subset(np.arange(5))
    model = _irreversible(Mechanism(fit.species, np.vstack([fit.V, -fit.V]),
                                    np.concatenate([fit.kf, fit.kr]), np.zeros(10)))
    k = np.maximum(np.concatenate([fit.kf, fit.kr]), 1e-30)[[i for i, _ in model.directions]]
    data = generate(truth, n_samples=3, seed=2)
    rows = np.vstack([truth.V[5], -truth.V[5], truth.V[0]])
    times = np.asarray(data.sample_times, float)
    got = {method: candidate_responses(model, k, data.concentrations, times, rows, True,
                                       None, method) for method in ("forward", "adjoint")}
    fwd, adj = got["forward"][2], got["adjoint"][2]
    assert fwd.shape == adj.shape == (3, TIMES.size - 1, 3, 6)
    scale = np.abs(fwd).max(axis=(0, 1, 3), keepdims=True)
    assert np.max(np.abs(fwd - adj) / scale) < 5e-3
    np.testing.assert_allclose(got["forward"][1], got["adjoint"][1], rtol=1e-4, atol=1e-9)


@pytest.fixture(scope="module")
def weak_maker():
    """A → B at 2 and a weak B → C at 0.01: C changes by about 0.5 % of itself."""
    truth = Mechanism.from_rows(SPECIES, [({"A": -1, "B": 1}, 2.0, 0.0),
                                          ({"B": -1, "C": 1}, 0.01, 0.0)])
    clean = generate(truth, n_samples=60, seed=5).without_derivatives()
    clean.concentrations[:, :, 2] += 1.0  # C from 1 to 2: the change is relative
    return truth, clean


def _candidates() -> np.ndarray:
    return np.array([[0, -1, 1], [-1, 0, 1], [-1, 1, 0], [0, 1, -1], [1, -1, 0],
                     [0, -2, 2], [-1, -1, 2]])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_weak_maker_of_a_species_no_row_changes_is_found(weak_maker, seed):
    truth, clean = weak_maker
    data = clean.with_noise(1e-3, seed=seed)
    fit = np.array([[-1.0, 1.0, 0.0]])  # A → B only: C is an orphan
    found = orphan_makers(fit, np.array([2.0]), data, _candidates(), 1e-3)
    assert found and {o.species for o in found} == {"C"}
    best = found[0]
    # B → C (once; 2B → 2C has the same monomial shape but the B² monomial)
    assert np.array_equal(best.row, B_TO_C)
    assert best.chi2 >= MIN_CHI2
    assert best.rate == pytest.approx(0.01, rel=0.2)
    chi2, _ = pooled_scores(fit, np.array([2.0]), data, np.array([o.row for o in found]),
                            1e-3)
    assert chi2[0] >= MIN_CHI2 and chi2[0] == max(chi2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_maker_is_found_where_the_species_only_carries_noise(weak_maker, seed):
    truth, clean = weak_maker
    still = generate(truth.subset([0]), n_samples=60, seed=5).without_derivatives()
    still.concentrations[:, :, 2] += 1.0
    data = still.with_noise(1e-3, seed=seed)
    assert orphan_makers(np.array([[-1.0, 1.0, 0.0]]), np.array([2.0]), data, _candidates(),
                         1e-3) == []


def test_an_accepted_fit_is_completed_with_the_maker_and_fits_better(weak_maker):
    # the fit without B → C, its starts refitted; the completion adds B → C at the rate its
    # orphan score fitted, and the joint refit from the fit's starts lowers the noise
    # estimate and lands near the true rate
    from dataclasses import replace

    from rdlab.discover.completion import orphan_completion
    from rdlab.discover.initial_states import fit_with_initial_states
    from rdlab.discover.trajectory_fit import fit_trajectories

    truth, clean = weak_maker
    data = clean.with_noise(1e-3, seed=1)
    short = fit_trajectories(truth.subset([0]), data, max_nfev=30)
    short = fit_with_initial_states(short, data)
    # estimated from these data alone the subspace is A → B only (C's change is below its
    # rank threshold); known conservation laws would give both rows, as elements do on GRI
    basis = np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]])
    assert orphan_completion(short, data, 1e-3) is None
    got = orphan_completion(short, data, 1e-3, basis=basis)
    assert got is not None
    mech, added, makers = got
    assert added == [1] and [o.species for o in makers] == ["C"]
    assert np.array_equal(np.round(mech.V[1]), B_TO_C)
    new = fit_with_initial_states(replace(short, mechanism=mech), data,
                                  starts=short.initial_states)
    assert new.noise_estimate < short.noise_estimate
    assert new.noise_estimate == pytest.approx(1e-3, rel=0.1)
    assert new.mechanism.kf[1] == pytest.approx(0.01, rel=0.1)
