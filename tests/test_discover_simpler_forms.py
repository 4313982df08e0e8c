"""Rows of a fit that the data cannot tell from a row with fewer molecules."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rdlab.discover.alternatives import residual_sum_of_squares
from rdlab.discover.data import generate
from rdlab.discover.initial_states import fit_with_initial_states
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.simpler_forms import molecules, simpler_candidates, simpler_forms, swapped
from rdlab.discover.trajectory_fit import fit_trajectories

SPECIES = ["A", "B", "X2", "X", "P", "Y", "Z"]
#: A → X2 + P at 1, B → X2 at 20, X2 → 2X at 2000 (far faster than the sampling),
#: X + Y → Z at 3; its twin makes 2X at once: A → 2X + P, one molecule more.
TRUTH = [({"A": -1, "X2": 1, "P": 1}, 1.0, 0.0), ({"B": -1, "X2": 1}, 20.0, 0.0),
         ({"X2": -1, "X": 2}, 2000.0, 0.0), ({"X": -1, "Y": -1, "Z": 1}, 3.0, 0.0)]
TWIN = [({"A": -1, "X": 2, "P": 1}, 1.0, 0.0)] + TRUTH[1:]


def test_molecules_count_both_sides():
    assert molecules(np.array([-1, 0, 2, 1])) == 4
    assert molecules(np.array([-2, -2, 2, 1])) == 7
    assert molecules(np.zeros(3)) == 0


def test_the_simpler_candidates_are_the_combinations_with_fewer_molecules():
    # A → 2X + P, X2 → 2X, X + Y → Z (species A, X2, X, P, Y, Z): the only combination with
    # ±1 coefficients over one or two other rows with at most 4 molecules is
    # A → 2X + P − (X2 → 2X) = A → X2 + P
    rows = np.array([[-1, 0, 2, 1, 0, 0], [0, -1, 2, 0, 0, 0], [0, 0, -1, 0, -1, 1]])
    got = simpler_candidates(rows, 0)
    np.testing.assert_array_equal(got, [[-1, 1, 0, 1, 0, 0]])
    # X2 → 2X (3 molecules): X2 → 2X − (A → 2X + P) = X2 + P → A, as many molecules;
    # X2 + Y → X + Z has 4
    np.testing.assert_array_equal(simpler_candidates(rows, 1), [[1, -1, 0, -1, 0, 0]])
    # sides are limited: with at most one product nothing is left
    assert simpler_candidates(rows, 0, max_products=1).shape == (0, 6)


@pytest.fixture(scope="module")
def twin_data():
    truth = Mechanism.from_rows(SPECIES, TRUTH)
    clean = generate(truth, n_samples=5, seed=3).without_derivatives()
    return clean.with_noise(1e-2, seed=1)


def _fitted(rows, data):
    fit = fit_trajectories(Mechanism.from_rows(SPECIES, rows), data, max_nfev=30)
    return fit_with_initial_states(fit, data)


def test_the_twin_is_swapped_for_the_row_with_fewer_molecules(twin_data):
    fit = _fitted(TWIN, twin_data)
    forms = simpler_forms(fit, twin_data, 1e-2)
    assert len(forms) == 1
    said = forms[0].to_dict(fit.mechanism.species)
    assert (said["replaced"], said["by"]) == ("A -> 2X + P", "A -> X2 + P")
    assert said["chi2_by"] >= said["chi2_replaced"]
    new = fit_with_initial_states(replace(fit, mechanism=swapped(fit.mechanism, forms)),
                                  twin_data, starts=fit.initial_states)
    per_species = twin_data.concentrations.shape[0] * (twin_data.concentrations.shape[1] - 1)
    assert residual_sum_of_squares(new, per_species) < residual_sum_of_squares(fit, per_species)
    # the swapped fit lands on the truth's rates
    got = {line: k for line, k in zip(new.mechanism.reaction_lines(), new.mechanism.kf)}
    for line, k in [("A -> X2 + P", 1.0), ("B -> X2", 20.0), ("X + Y -> Z", 3.0)]:
        assert got[line] == pytest.approx(k, rel=0.02)


def test_the_truth_has_no_simpler_form(twin_data):
    fit = _fitted(TRUTH, twin_data)
    assert simpler_forms(fit, twin_data, 1e-2) == []


def test_a_simpler_form_swapped_in_is_a_printed_warning():
    from types import SimpleNamespace

    from rdlab.discover.alternatives import Alternative
    from rdlab.discover.workflow import _fit_warnings

    truth = Mechanism.from_rows(SPECIES, TRUTH)
    alt = Alternative(Mechanism.from_rows(SPECIES, TWIN), "A -> X2 + P", "A -> 2X + P", "",
                      1.1e-2, 0.3)
    est = SimpleNamespace(converged_=True, equilibrium_only_=False, alternatives_=[alt])
    (line,) = _fit_warnings(est, truth, {})
    assert "'A -> 2X + P' instead of 'A -> X2 + P'" in line
    assert "fewer molecules was chosen" in line and "equilibrates" not in line


def test_redundant_rows_are_sums_of_other_rows_with_undetermined_rates(twin_data):
    # the truth plus its twin A → 2X + P = (A → X2 + P) + (X2 → 2X): with both rates of
    # A's rows undetermined, either may go; X2 → 2X is a sum too, but its rate is known
    from rdlab.discover.simpler_forms import redundant_rows

    fit = _fitted(TRUTH, twin_data)
    m = fit.mechanism
    V = np.vstack([m.V, [[-1, 0, 0, 2, 1, 0, 0]]])
    both = Mechanism(m.species, V, np.append(m.kf, 0.5), np.append(m.kr, 0.0))
    ident = fit.identifiability
    names = list(ident.names) + [f"kf_{both.n_reactions}"]
    lines = both.reaction_lines()
    undetermined = [lines[i] in ("A -> X2 + P", "A -> 2X + P") for i in range(len(lines))]
    fit = replace(fit, mechanism=both, pruned=[],
                  identifiability=replace(ident, names=names,
                                          identifiable=~np.array(undetermined)))
    got = sorted(lines[i] for i in redundant_rows(fit))
    assert got == ["A -> 2X + P", "A -> X2 + P"]
    # a dropped (pruned) row is no term of a sum
    fit.pruned = ["kf_3"] if lines[2] == "X2 -> 2X" else [f"kf_{lines.index('X2 -> 2X') + 1}"]
    assert redundant_rows(fit) == []


def test_a_row_that_alone_makes_a_species_is_set_against_its_best_makers():
    # A → B at 2 and B → C at 0.5; the fit has A → C for the maker of C: in the fit without
    # it, C's best maker with at most 2 molecules is B → C, and every candidate changes C
    from rdlab.discover.simpler_forms import _sole_makers

    truth = Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": 1}, 2.0, 0.0),
                                                  ({"B": -1, "C": 1}, 0.5, 0.0)])
    data = generate(truth, n_samples=20, seed=4).without_derivatives().with_noise(1e-3, seed=2)
    directions = np.array([[-1, 1, 0], [-1, 0, 1]])
    # the exact subspace, as element balances give it (the candidates are its integer rows)
    rows = _sole_makers(directions, np.array([2.0, 0.3]), 1, data, 1e-3,
                        np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]]))
    assert len(rows) and np.array_equal(rows[0], [0, -1, 1])
    assert all(r[2] != 0 and molecules(r) <= 2 for r in rows)
    assert not any(np.array_equal(r, directions[1]) for r in rows)
