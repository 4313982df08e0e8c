"""Structure candidates from the stoichiometric subspace of concentration data (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest

from rdlab.discover.data import ReactionData, generate
from rdlab.discover.estimator import ReactionDiscovery
from rdlab.discover.examples import example
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.subspace import (
    candidate_sets,
    integer_rows,
    stoichiometric_subspace,
    subsample,
)
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
