"""The sparse-regression warm start: exact structures from mass-action monomials."""

import numpy as np
import pytest

from rdlab.discover.data import generate, split
from rdlab.discover.estimator import ReactionDiscovery
from rdlab.discover.examples import example
from rdlab.discover.library import monomial_exponents, propose_structure
from rdlab.errors import ParameterError


def _rows(V):
    """Rows up to the sign that swaps forward and reverse."""
    return sorted(tuple(r if r[np.flatnonzero(r)[0]] < 0 else -r) for r in np.asarray(V))


def _proposal(name, seed=1, noise=0.0):
    ex = example(name)
    data = generate(ex.mechanism, seed=seed, temperature_range=ex.temperature_range)
    if noise:
        data = data.with_noise(noise, seed=seed, on="derivatives")  # the paper's §4 test
    u, du, _ = data.points()
    train, _ = split(u.shape[0], 0.8, seed)
    p = propose_structure(np.log(np.maximum(u[train], 1e-30)), du[train],
                          catalytic=ex.catalytic, tolerance=max(1e-6, 2 * noise))
    return ex, p


def test_monomial_count_is_the_number_of_multisets():
    # C(n + d, d) − 1 monomials of order 1…d in n variables
    assert monomial_exponents(7, 2).shape == (35, 7)
    assert monomial_exponents(6, 4).shape == (209, 6)
    with pytest.raises(ParameterError, match="max_order"):
        monomial_exponents(3, 0)


@pytest.mark.parametrize("name", ["zeldovich", "michaelis-menten", "hydrogen-oxidation"])
def test_proposal_is_the_true_stoichiometry(name):
    # Zeldovich: |du| spans 20 decades; Michaelis–Menten and hydrogen oxidation have two
    # reactions on one reactant monomial (ES → E + S / E + P; H2 + O → H + OH / H2O)
    ex, p = _proposal(name)
    assert p is not None
    assert _rows(p.V) == _rows(ex.mechanism.V)
    assert p.max_deviation < 1e-6


def test_catalytic_step_read_off_in_catalytic_form_only():
    ex, p = _proposal("autocatalytic")
    np.testing.assert_array_equal(sorted(map(tuple, p.V)), sorted(map(tuple, ex.mechanism.V)))
    np.testing.assert_array_equal(sorted(map(tuple, p.orders)),
                                  sorted(map(tuple, ex.mechanism.orders)))


def test_noisy_hydrogen_proposal_is_exact():
    ex, p = _proposal("hydrogen-oxidation", noise=1e-3)
    assert _rows(p.V) == _rows(ex.mechanism.V)


def test_estimator_accepts_a_warm_start_only_after_validation():
    ex = example("zeldovich")
    data = generate(ex.mechanism, seed=2)
    est = ReactionDiscovery(3, time_budget_s=60, seed=2).fit(data)
    assert est.converged_ and est.warm_start_["accepted"]
    cmp = est.mechanism_.compare(ex.mechanism)
    assert cmp["exact"] and cmp["max_rate_error"] < 1e-6
    assert est.n_epochs_ == 0
    # the V form cannot express X + Y → 2Y: the proposal is refused and Algorithm 1 runs
    cat = example("autocatalytic")
    est = ReactionDiscovery(2, time_budget_s=5, seed=1).fit(generate(cat.mechanism, seed=1))
    assert not est.converged_ and est.n_epochs_ > 0
