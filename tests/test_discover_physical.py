"""Learned mechanisms are physical and clean: no negative products, no 1e-17 reverse rates,
no "-0.000" in the table (issue 18, found as a new user would)."""

from __future__ import annotations

import numpy as np
import pytest

from rdlab.discover.data import generate
from rdlab.discover.examples import EXAMPLES, example
from rdlab.discover.mechanism import NEGLIGIBLE_FLUX, Mechanism


def test_a_catalytic_row_with_a_common_factor_is_stored_in_its_valid_form():
    """A + B -> -2A + 4B (orders (1, 1), v = (-3, 3), k = 2) has the rate law of
    A + B -> 2B with k = 6: the mechanism keeps the valid one, derivatives unchanged."""
    u = np.random.default_rng(0).uniform(0.1, 1.0, (7, 2))
    expected = 2.0 * u[:, 0] * u[:, 1]
    m = Mechanism(("A", "B"), [[-3.0, 3.0]], [2.0], [0.0], orders=[[1.0, 1.0]])
    np.testing.assert_array_equal(m.V, [[-1.0, 1.0]])
    assert m.kf[0] == 6.0
    assert m.reaction_lines() == ["A + B -> 2B"]
    assert m.is_physical()
    np.testing.assert_allclose(m.rhs(u), np.column_stack([-3 * expected, 3 * expected]),
                               rtol=1e-14)
    net = m.to_network()  # exportable
    assert net.n_reactions == 1


def test_an_unrepairable_row_is_named_as_unphysical():
    """A -> (-1)A + B: orders (1, 0), v = (-2, 1), no common factor: stays, and is named."""
    m = Mechanism(("A", "B"), [[-2.0, 1.0]], [1.0], [0.0], orders=[[1.0, 0.0]])
    assert not m.is_physical()
    (why,) = m.unphysical_reactions()
    assert why.startswith("reaction 1:") and "negative products (A)" in why
    half = Mechanism(("A", "B"), [[-0.5, 0.5]], [1.0], [1.0])
    assert "not integers" in half.unphysical_reactions()[0]


def test_of_equally_good_candidates_the_physical_one_is_chosen():
    """Same worst-species error to 6 digits: the physical mechanism wins; a clearly better
    error still wins over physics (the fit decides, physics breaks ties)."""
    from types import SimpleNamespace

    from rdlab.discover.estimator import best_candidate

    bad = Mechanism(("A", "B"), [[-2.0, 1.0]], [1.0], [0.0], orders=[[1.0, 0.0]])
    good = Mechanism(("A", "B"), [[-1.0, 1.0]], [1.0], [0.0])
    c_bad = SimpleNamespace(mechanism=bad, species_errors=np.array([1e-3, 2e-3]), error=1e-3)
    c_good = SimpleNamespace(mechanism=good, species_errors=np.array([1e-3, 2.0000001e-3]),
                             error=1.1e-3)
    assert best_candidate([c_bad, c_good]) is c_good
    c_good.species_errors = np.array([1e-3, 3e-3])
    assert best_candidate([c_bad, c_good]) is c_bad


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_examples_are_physical_and_nothing_in_them_is_negligible(name):
    """Concentrations ~ U[0, 1) as the data of §4 start from (and T across the range)."""
    ex = example(name)
    rng = np.random.default_rng(2)
    u = rng.uniform(0.0, 1.0, (200, ex.mechanism.n_species))
    T = None if ex.temperature_range is None else rng.uniform(*ex.temperature_range, 200)
    assert ex.mechanism.is_physical()
    pruned, dropped = ex.mechanism.pruned(u, T)
    assert dropped == [] and pruned is ex.mechanism


def test_a_reverse_rate_of_1e_17_is_pruned_and_the_step_prints_irreversible():
    """The issue's O3 + O <-> 2O2 with kr 9.35e-18: its reverse flux is ~1e-17 of the
    turnover of O2, far below NEGLIGIBLE_FLUX, so the step is O3 + O -> 2O2."""
    m = Mechanism.from_rows(["O3", "O", "O2"], [
        ({"O3": -1, "O": -1, "O2": 2}, 3.0, 9.35e-18),
        ({"O3": -1, "O": 1, "O2": 1}, 1.0, 0.5),
    ])
    u = np.random.default_rng(1).uniform(0.0, 1.0, (40, 3))
    pruned, dropped = m.pruned(u)
    assert pruned.reaction_lines() == ["O3 + O -> 2O2", "O3 <-> O + O2"]
    np.testing.assert_array_equal(pruned.kr, [0.0, 0.5])
    assert len(dropped) == 1 and "reverse rate 9.35e-18" in dropped[0]
    # the derivatives change by less than the rule's bound
    assert np.max(np.abs(pruned.rhs(u) - m.rhs(u))) < NEGLIGIBLE_FLUX * np.max(np.abs(m.rhs(u)))
    net = pruned.to_network()
    assert net.n_reactions == 3  # two forward, one reverse


def test_a_reaction_with_both_directions_negligible_is_removed_and_arrhenius_too():
    ex = example("michaelis-menten-arrhenius")
    m = ex.mechanism
    extra = Mechanism(m.species, np.vstack([m.V, [[0, -1, 0, 1]]]), [*m.kf, 1e-20],
                      [*m.kr, 1e-22])
    u = generate(m, 5, temperature_range=ex.temperature_range).points()[0]
    pruned, dropped = extra.pruned(u)
    assert pruned.n_reactions == 2 and len(dropped) == 2
    assert pruned.compare(m.normalised())["exact"]


def test_the_table_prints_integers_and_zero_never_minus_zero():
    m = Mechanism(("A", "B"), [[-1.0, -0.0], [1e-12, 1.0]], [2.0, 1.0], [0.0, 0.0])
    text = m.table()
    assert "-0" not in text and "0.000" not in text
    assert text.splitlines()[1].split()[1:5] == ["-1", "0", "2.000e+00", "0"]
    raw = Mechanism(("A", "B"), [[-0.4999, -0.0001]], [2.0], [0.0])
    assert raw.table().splitlines()[1].split()[1:3] == ["-0.500", "0.000"]
