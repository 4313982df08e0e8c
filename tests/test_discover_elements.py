"""Element balances from formula names as known conservation laws (issue 18, noisy GRI-3.0)."""

from __future__ import annotations

import numpy as np
import pytest

from rdlab.discover.data import generate
from rdlab.discover.elements import composition, element_matrix, element_noise, known_balances
from rdlab.discover.examples import example
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.subspace import stoichiometric_subspace


@pytest.mark.parametrize("name, atoms", [
    ("CH4", {"C": 1, "H": 4}), ("H2O2", {"H": 2, "O": 2}), ("C2H6", {"C": 2, "H": 6}),
    ("N2", {"N": 2}), ("CO", {"C": 1, "O": 1}), ("Co", {"Co": 1}),
    ("Ca(OH)2", {"Ca": 1, "O": 2, "H": 2}), ("Fe2(SO4)3", {"Fe": 2, "S": 3, "O": 12}),
])
def test_formulas_give_their_atoms(name, atoms):
    assert composition(name) == atoms


@pytest.mark.parametrize("name", ["A", "ES", "X", "E", "ch4", "H2-", "(OH", "OH)2", "()", ""])
def test_names_that_are_not_formulas_are_refused(name):
    assert composition(name) is None


def test_every_name_must_be_a_formula():
    assert element_matrix(["E", "S", "ES", "P"]) is None
    elements, E = element_matrix(["H2", "O2", "H2O"])
    assert elements == ("H", "O")
    np.testing.assert_array_equal(E, [[2, 0, 2], [0, 2, 1]])


def _data(mech: Mechanism, noise: float, n: int = 40):
    d = generate(mech, n_samples=n, seed=3).without_derivatives()
    return d.with_noise(noise, seed=4) if noise else d


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_gri_balances_hold_the_subspace_rank_under_noise(noise):
    # 16 species with C, H, O, N: 16 − 4 = 12 directions, the rank of the 12 reactions.
    # With 0.1 % noise the element balances sink below the noise of the large species and
    # the measured increments span all 16 directions; the balances from the names bring
    # back the 12, and every true row lies in the subspace found
    truth = example("gri30-simplified").mechanism
    data = _data(truth, noise)
    assert known_balances(data)[0] == ("C", "H", "O", "N")
    # the element totals' drift is the noise alone: their estimate of σ
    assert element_noise(data) == (pytest.approx(noise, rel=0.1) if noise else
                                   pytest.approx(0.0, abs=1e-12))
    if noise:
        assert stoichiometric_subspace(data, element_balances=False).shape[0] == 16
    basis = stoichiometric_subspace(data)
    assert basis.shape == (12, 16)
    V = np.asarray(truth.V, dtype=float)
    outside = V - (V @ basis.T) @ basis
    assert np.max(np.abs(outside)) < 1e-10


def test_a_smaller_subspace_inside_the_balances_keeps_its_rank_under_noise():
    # Zeldovich: 7 species, elements N, O, H leave 4 directions, its 3 reactions span 3.
    # The projection's structural zeros must not read as the rank gap
    truth = example("zeldovich").mechanism
    assert known_balances(_data(truth, 1e-3)) is not None
    assert stoichiometric_subspace(_data(truth, 1e-3)).shape[0] == 3


def test_symbol_names_whose_totals_change_are_not_taken_as_balances():
    # abstract species that happen to be element symbols: C -> N, N -> O conserve no atoms
    mech = Mechanism.from_rows(["C", "N", "O"], [({"C": -1, "N": 1}, 2.0, 0.0),
                                                 ({"N": -1, "O": 1}, 1.0, 0.0)])
    data = _data(mech, 0.0)
    assert element_matrix(data.species) is not None
    assert known_balances(data) is None
    assert stoichiometric_subspace(data).shape[0] == 2


def test_a_fit_is_accepted_only_where_its_noise_agrees_with_the_element_balances():
    # H2 + I2 <-> 2HI with 0.1 % noise, noise not given: the true mechanism's residual noise
    # (starts refitted) matches the element balances' estimate, and it converges; the
    # irreversible H2 + I2 -> 2HI misses the backward step by more than the noise, so
    # its acceptance on its own noise estimate is withdrawn, with the reason
    from rdlab.discover.estimator import NOISE_AGREEMENT, ReactionDiscovery
    from rdlab.discover.initial_states import fit_with_initial_states
    from rdlab.discover.trajectory_fit import fit_trajectories

    mech = Mechanism.from_rows(["H2", "I2", "HI"], [({"H2": -1, "I2": -1, "HI": 2}, 2.0, 0.5)])
    data = _data(mech, 0.0, n=30).with_noise(1e-3, seed=5)
    est = ReactionDiscovery(1, time_budget_s=60, seed=1).fit(data)
    assert est.converged_
    assert est.noise_["elements"] == pytest.approx(1e-3, rel=0.1)
    assert est.noise_["value"] <= NOISE_AGREEMENT * est.noise_["elements"]
    np.testing.assert_allclose([est.mechanism_.kf[0], est.mechanism_.kr[0]], [2.0, 0.5],
                               rtol=5e-3)

    forward = Mechanism.from_rows(["H2", "I2", "HI"], [({"H2": -1, "I2": -1, "HI": 2}, 2.0, 0.0)])
    wrong = fit_with_initial_states(fit_trajectories(forward, data, reversible=np.zeros(1, bool)),
                                    data)
    assert wrong.noise_estimate > NOISE_AGREEMENT * est.noise_["elements"]
    wrong.accepted = True  # as a noise-limited judgement on its own estimate would have it
    est._check_against_elements(wrong)
    assert not wrong.accepted
    assert "element balances measure" in est.noise_["disagrees"]
