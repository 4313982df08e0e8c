"""Trajectory fitting: sensitivities, rates from concentrations, identifiability, acceptance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rdlab.discover.data import generate
from rdlab.discover.examples import example
from rdlab.discover.identifiability import analyse
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.trajectory_fit import (
    HOPELESS_EVALUATIONS,
    HOPELESS_FACTOR,
    PRUNE_NFEV,
    KineticModel,
    _fit_active,
    acceptance_threshold,
    fit_trajectories,
    rms_per_species,
    simulate,
)
from rdlab.errors import ParameterError

TIMES = np.linspace(0.0, 1.0, 5)


def _chain(k1f=2.0, k1r=0.5, k2=1.0) -> Mechanism:
    """A ⇌ B (k1f, k1r), B → C (k2)."""
    return Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": 1}, k1f, k1r),
                                                 ({"B": -1, "C": 1}, k2, 0.0)])


def _scaled(m: Mechanism, factor: float) -> Mechanism:
    return Mechanism(m.species, m.V, m.kf * factor, m.kr * factor, m.orders)


def test_sensitivities_are_the_derivatives_of_the_solution():
    """dx/dln k from the sensitivity ODE equals a central difference of the solution."""
    mech = Mechanism.from_rows(["A", "B", "C"], [({"A": -2, "B": 1}, 3.0, 0.4),
                                                 ({"A": -1, "B": -1, "C": 1}, 1.5, 0.0)])
    model = KineticModel.from_mechanism(mech, reversible=np.array([True, False]))
    x0 = np.random.default_rng(3).uniform(0.1, 1.0, (2, 3))
    theta = np.log([3.0, 0.4, 1.5])
    _, S, ok = simulate(model, theta, x0, TIMES, rtol=1e-9, atol=1e-13)
    assert ok
    for p in range(3):
        h = np.zeros(3)
        h[p] = 1e-4
        up = simulate(model, theta + h, x0, TIMES, sensitivities=False, rtol=1e-11,
                      atol=1e-15)[0]
        down = simulate(model, theta - h, x0, TIMES, sensitivities=False, rtol=1e-11,
                        atol=1e-15)[0]
        np.testing.assert_allclose(S[..., p], (up - down) / 2e-4, atol=1e-6)


def test_mass_action_jacobian_is_the_derivative_at_negative_excursions_too():
    """With whole orders the right-hand side is the polynomial everywhere, and J its derivative.

    Around an exhausted species a stiff solver visits small negative values; read as 0 there,
    the right-hand side had a kink and J no longer matched it (the solver then needed 20×
    the LU factorisations). Central differences of f match J at a state with a negative entry.
    """
    mech = Mechanism.from_rows(["A", "B", "C"], [({"A": -2, "B": 1}, 3.0, 0.4),
                                                 ({"A": -1, "B": -1, "C": 1}, 1.5, 0.0)])
    model = KineticModel.from_mechanism(mech)
    assert model.whole_orders
    x = np.array([[-1e-3, 0.7, 0.2], [0.4, -2e-4, 0.0]])
    k = np.tile([3.0, 0.4, 1.5, 0.1], (2, 1))
    J = model.rates_jacobian(x, k)[2]
    for j in range(3):
        h = np.zeros(3)
        h[j] = 1e-7
        up = model.rates_jacobian(x + h, k)[1]
        down = model.rates_jacobian(x - h, k)[1]
        np.testing.assert_allclose(J[:, :, j], (up - down) / 2e-7, rtol=1e-6, atol=1e-9)


def test_compiled_rates_match_the_mass_action_definition_on_gri_and_fractional_orders():
    """The compiled kernel's r, f and J are the mass-action law and its derivative.

    r_p = k_p ∏_j x_j^a_pj and f = r @ net straight from the definition (numpy powers), on
    simplified GRI-3.0's 24 directions (orders up to 2, five samples) and on a network of
    fractional orders (x read as max(x, 0)); J against central differences of f.
    """
    rng = np.random.default_rng(3)
    gri = KineticModel.from_mechanism(example("gri30-simplified").mechanism)
    frac = KineticModel.from_mechanism(Mechanism(
        ("A", "B", "C"), np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]]), [2.0, 0.5],
        [0.0, 0.0], orders=np.array([[0.5, 1.5, 0.0], [0.0, 2.5, 0.0]])))
    for model in (gri, frac):
        n, S = 5, len(model.species)
        x = rng.uniform(0.05, 1.0, (n, S))
        k = rng.uniform(0.1, 10.0, (n, model.n_directions))
        r, f, J = model.rates_jacobian(x, k)
        A = model.reactants
        want = k * np.prod(np.where(A[None] > 0, x[:, None, :] ** A[None], 1.0), axis=2)
        np.testing.assert_allclose(r, want, rtol=1e-13)
        np.testing.assert_allclose(f, want @ model.net, rtol=1e-12, atol=1e-14)
        for j in range(S):
            h = np.zeros(S)
            h[j] = 1e-6
            diff = (model.rates_jacobian(x + h, k)[1] - model.rates_jacobian(x - h, k)[1]) / 2e-6
            np.testing.assert_allclose(J[:, :, j], diff, rtol=1e-6, atol=1e-7)


def test_rates_recovered_from_concentrations_and_irreversible_step_pruned():
    """From a start 2× off, the fit returns the true rates; B → C's reverse is dropped."""
    truth = _chain()
    data = generate(truth, n_samples=4, times=TIMES)
    data = replace(data, derivatives=None)
    fit = fit_trajectories(_scaled(truth, 2.0), data)
    assert fit.accepted and fit.success
    np.testing.assert_allclose(fit.mechanism.kf, truth.kf, rtol=1e-3)
    np.testing.assert_allclose(fit.mechanism.kr[0], truth.kr[0], rtol=1e-3)
    assert fit.pruned == ["kr_2"] and fit.mechanism.kr[1] == 0.0
    assert fit.error < acceptance_threshold(None)
    assert set(fit.identifiability.to_dict()["identifiable"]) == {"kf_1", "kr_1", "kf_2"}


def test_rate_started_near_zero_is_revived():
    """A's reverse started at 1e-12 (flux ~0, gradient ~0) still comes back to its true 0.5.

    Without the restart the local fit stays on the plateau and cannot reproduce the data.
    """
    truth = _chain()
    data = replace(generate(truth, n_samples=4, times=TIMES), derivatives=None)
    start = Mechanism(truth.species, truth.V, truth.kf, [1e-12, 0.0], truth.orders)
    stuck = fit_trajectories(start, data, revive=False, prune=False)
    assert not stuck.accepted and stuck.mechanism.kr[0] < 1e-3
    fit = fit_trajectories(start, data)
    assert fit.accepted
    np.testing.assert_allclose(fit.mechanism.kr[0], 0.5, rtol=1e-3)
    np.testing.assert_allclose(fit.mechanism.kf, truth.kf, rtol=1e-3)


def test_overflowing_rates_fail_the_integration_not_the_program():
    """Rates at the top of the double range make the Newton matrix singular: ok is False."""
    model = KineticModel.from_mechanism(_chain())
    x0 = np.array([[1.0, 0.5, 0.0]])
    x, sens, ok = simulate(model, np.full(model.n_directions, 700.0), x0, TIMES)
    assert not ok and x.shape == (1, TIMES.size, 3)


@pytest.mark.slow
def test_fast_equilibrium_leaves_only_its_ratio():
    """A ⇌ B at 1e4 /s sampled every 0.25: only kf/kr is determined, and it is fitted."""
    truth = _chain(k1f=2e4, k1r=1e4, k2=1.0)
    data = generate(truth, n_samples=4, times=TIMES)
    fit = fit_trajectories(_scaled(truth, 0.5), data, prune=False)
    ident = fit.identifiability
    names = {c["name"]: c for c in ident.combinations}
    assert "kf_1/kr_1" in names
    assert names["kf_1/kr_1"]["value"] == pytest.approx(2.0, rel=1e-3)
    assert "kf_2" in names and names["kf_2"]["value"] == pytest.approx(1.0, rel=1e-3)
    by_name = dict(zip(ident.names, ident.identifiable))
    assert not by_name["kf_1"] and not by_name["kr_1"]
    assert not np.isfinite(ident.standard_errors[ident.names.index("kf_1")])
    assert ident.rank == ident.singular_values.size - len(ident.unidentifiable)


def test_wrong_structure_is_rejected_and_noise_is_estimated():
    """Without B → C the trajectories are not reproduced; with 1 % noise the fit says 1 %."""
    truth = _chain()
    data = generate(truth, n_samples=6, times=TIMES)
    wrong = Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": 1}, 2.0, 0.5),
                                                  ({"A": -1, "C": 1}, 1.0, 0.0)])
    assert not fit_trajectories(wrong, data, prune=False).accepted
    rng = np.random.default_rng(0)
    noisy = replace(data, concentrations=data.concentrations
                    * (1.0 + 0.01 * rng.standard_normal(data.concentrations.shape)))
    fit = fit_trajectories(truth, noisy, prune=False, noise=0.01)
    assert 0.006 < fit.noise_estimate < 0.02
    assert fit.accepted
    assert np.max(np.abs(fit.mechanism.kf / truth.kf - 1.0)) < 0.05


def test_identifiability_names_ratio_and_product():
    """A Jacobian that sees only θ0 − θ1 and θ2 + θ3 names kf/kr and a product."""
    J = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0], [3.0, -3.0, 1.0, 1.0]])
    out = analyse(J, ["a", "b", "c", "d"], np.zeros(4), sigma=1e-3)
    assert {c["name"] for c in out.combinations} == {"a/b", "c*d"}
    assert out.rank == 2 and not out.identifiable.any()


def test_bad_input():
    data = generate(_chain(), n_samples=2, times=TIMES)
    other = Mechanism.from_rows(["A", "B", "D"], [({"A": -1, "B": 1}, 1.0, 0.0)])
    with pytest.raises(ParameterError, match="species"):
        fit_trajectories(other, data)
    with pytest.raises(ParameterError, match="noise"):
        fit_trajectories(_chain(), data, noise=-1.0)


@pytest.mark.slow
def test_discovery_from_concentrations_alone():
    """ReactionDiscovery on concentrations only (auto → trajectories) finds A ⇌ B → C."""
    from rdlab.discover.estimator import ReactionDiscovery

    truth = _chain()
    data = replace(generate(truth, n_samples=6, times=np.linspace(0.0, 1.0, 11)),
                   derivatives=None)
    est = ReactionDiscovery(2, time_budget_s=60, seed=1).fit(data)
    rep = est.report()
    assert rep["target"] == "trajectories" and est.converged_
    cmp_ = est.mechanism_.compare(truth)
    assert cmp_["exact"] and cmp_["max_rate_error"] < 1e-3
    assert rep["trajectory_fit"]["species_rms"]["A"] < 3 * 1e-4
    assert "kf_1" in str(rep["trajectory_fit"]["identifiability"]["combinations"])
    assert "trajectory_fit" in est.mechanism_.to_dict()["notes"]


def test_discovery_target_is_checked():
    from rdlab.discover.estimator import ReactionDiscovery

    with pytest.raises(ParameterError, match="target"):
        ReactionDiscovery(target="concentrations").fit(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ParameterError, match="ReactionData"):
        ReactionDiscovery(target="trajectories").fit(np.ones((3, 2)), np.ones((3, 2)))


def test_negligible_direction_is_dropped_even_without_pruning():
    """B → C's reverse started at 1e-13 moves no flux the data can see: it is removed.

    Neither the mechanism (no reversible step with kr 1e-13) nor the identifiability
    analysis (no combination mixing in a rate of 1e-13) keeps it.
    """
    truth = _chain()
    data = replace(generate(truth, n_samples=4, times=TIMES), derivatives=None)
    start = Mechanism(truth.species, truth.V, truth.kf, [0.5, 1e-13], truth.orders)
    fit = fit_trajectories(start, data, prune=False, revive=False,
                           reversible=np.array([True, True]))
    assert fit.pruned == ["kr_2"] and fit.mechanism.kr[1] == 0.0
    assert fit.accepted
    assert "kr_2" not in fit.identifiability.names
    np.testing.assert_allclose(fit.mechanism.kf, truth.kf, rtol=1e-3)


def test_an_integration_past_its_own_limit_is_a_failed_step_not_a_timeout():
    """``give_up`` abandons one integration (ok False, NaN states); ``deadline`` raises.

    The fit gives each evaluation SLOW_EVALUATION times its first one: a trust-region step
    to absurdly stiff rates is scored as failed and shrunk instead of eating the budget.
    """
    from rdlab.discover.trajectory_fit import FitTimeout

    model = KineticModel.from_mechanism(_chain())
    x0 = np.array([[1.0, 0.5, 0.0]])
    theta = np.log([2.0, 0.5, 1.0, 1e-3])
    x, _, ok = simulate(model, theta, x0, TIMES, give_up=0.0)
    assert not ok and np.all(np.isnan(x[:, 1:]))
    with pytest.raises(FitTimeout):
        simulate(model, theta, x0, TIMES, deadline=0.0)
    assert simulate(model, theta, x0, TIMES, give_up=1e300)[2]



def test_a_pruning_refit_stops_once_every_species_is_within_its_bound():
    """A trial fit with a target ends at the first evaluation within it (pruning decided).

    Started 0.5 % off the truth, every species' RMS residual is far below a 1e-2 bound:
    with that target the refit takes one evaluation; without, it converges (several).
    """
    truth = _chain()
    data = replace(generate(truth, n_samples=4, times=TIMES), derivatives=None)
    model = KineticModel.from_mechanism(truth, reversible=np.array([True, False]))
    theta = np.log([2.0, 0.5, 1.0]) + 0.005
    opts = {"floor": 1e-4, "rtol": 1e-7, "max_nfev": 20, "deadline": None}
    active = np.ones(3, bool)
    full = _fit_active(model, active, theta, data, None, opts)
    stopped = _fit_active(model, active, theta, data, None, {**opts, "target": 1e-2})
    assert stopped[2] == 1 and full[2] > 3
    np.testing.assert_array_equal(stopped[0], theta)
    assert np.max(rms_per_species(stopped[1], data)) <= 1e-2
    np.testing.assert_allclose(np.exp(full[0]), [2.0, 0.5, 1.0], rtol=1e-5)



def test_a_pruning_refit_far_above_its_bound_is_given_up():
    """Removing B → C where A → C could stand in only badly: the trial is given up early.

    The chain plus A → C; without B → C the fit cannot reproduce B (residuals ~0.3, over
    a thousand times a 1e-4 bound) and, unbounded, keeps trying for 15 evaluations. With
    the bound it gives up after :data:`HOPELESS_EVALUATIONS`.
    """
    truth = _chain()
    data = replace(generate(truth, n_samples=4, times=TIMES), derivatives=None)
    extra = Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": 1}, 2.0, 0.5),
                                                  ({"B": -1, "C": 1}, 1.0, 0.0),
                                                  ({"A": -1, "C": 1}, 1.0, 0.0)])
    model = KineticModel.from_mechanism(extra, reversible=np.array([True, False, False]))
    theta = np.log([2.0, 0.5, 1.0, 1.0])
    opts = {"floor": 1e-4, "rtol": 1e-7, "max_nfev": PRUNE_NFEV, "deadline": None}
    without = np.array([True, True, False, True])
    full = _fit_active(model, without, theta, data, None, opts)
    given_up = _fit_active(model, without, theta, data, None, {**opts, "target": 1e-4})
    assert given_up[2] == HOPELESS_EVALUATIONS < full[2]
    assert np.max(rms_per_species(given_up[1], data)) > HOPELESS_FACTOR * 1e-4
    # a revival's restart has no target, only the bound it must come under
    hopeless = _fit_active(model, without, theta, data, None, {**opts, "hopeless": 1e-2})
    assert hopeless[2] == HOPELESS_EVALUATIONS
    within = _fit_active(model, without, theta, data, None, {**opts, "hopeless": 10.0})
    assert within[2] == full[2]
    np.testing.assert_array_equal(within[0], full[0])
