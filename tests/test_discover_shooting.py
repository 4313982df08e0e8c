"""The shooting proposal: the CRNN trained through a stiff integrator on concentrations only."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rdlab.discover.crnn import PopulationCRNN
from rdlab.discover.data import ReactionData, generate
from rdlab.discover.examples import example
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.shooting import (
    ShootingPairs,
    ShootingSettings,
    propose_by_shooting,
    rounded_mechanism,
    shoot,
)
from rdlab.discover.trajectory_fit import fit_trajectories
from rdlab.errors import ParameterError


def _concentrations(mech: Mechanism, n: int = 100) -> ReactionData:
    """The paper's sampling (t = 0…1 by 0.1), derivatives dropped."""
    return generate(mech, n_samples=n, seed=1).without_derivatives()


def _load(mech: Mechanism) -> PopulationCRNN:
    """A population of one candidate holding ``mech`` exactly."""
    model = PopulationCRNN(1, mech.n_reactions, mech.n_species)
    with torch.no_grad():
        model.V[0] = torch.as_tensor(mech.V)
        model.lf[0] = torch.log(torch.as_tensor(mech.kf))
        model.lr[0] = torch.log(torch.as_tensor(np.maximum(mech.kr, 1e-300))).clamp(min=-200)
    return model


def _small() -> Mechanism:
    return Mechanism.from_rows(["A", "B", "C"], [({"A": -1, "B": -1, "C": 1}, 2.0, 0.0),
                                                ({"C": -1, "A": 1}, 1.0, 0.0)])


def test_integrator_reproduces_a_stiff_mechanism_between_samples():
    # Michaelis–Menten: E + S ⇌ ES at kf = 1e6 (k·c·Δt ~ 1e5), ES → E + P at 10. From each
    # measured state, the true mechanism must land on the next measured one: the graded
    # backward-Euler start resolves the fast transient, SDIRK2 the slow part (measured RMS
    # 7e-3 relative at 4 parts + 8 graded steps; an explicit method would blow up)
    mech = example("michaelis-menten").mechanism
    pairs = ShootingPairs.from_data(_concentrations(mech, 30))
    with torch.no_grad():
        pred = shoot(_load(mech), pairs, substeps=4, graded=8)
    rel = (pred[0] - pairs.end) * pairs.weights
    assert float(rel.pow(2).mean().sqrt()) < 2e-2
    assert bool(torch.all(pred >= 0))


def test_rounded_candidate_drops_zero_rows():
    model = _load(_small())
    with torch.no_grad():
        model.V[0, 1] = torch.tensor([0.2, -0.3, 0.1])
    mech = rounded_mechanism(model, 0, ("A", "B", "C"))
    assert mech.n_reactions == 1
    np.testing.assert_array_equal(mech.V[0], [-1, -1, 1])
    assert mech.kf[0] == pytest.approx(2.0)


def test_refuses_temperatures():
    d = _concentrations(_small(), 5)
    hot = ReactionData(d.species, d.times, d.concentrations, None, np.full(5, 300.0))
    with pytest.raises(ParameterError, match="temperatures"):
        propose_by_shooting(hot, 2, accept=lambda m: True)


@pytest.mark.slow
def test_recovers_a_small_mechanism_from_exact_concentrations():
    # A + B -> C (k 2), C -> A (k 1) from 100 trajectories at t = 0, 0.1, …, 1 without
    # derivatives, from the random start only: the first rounded structure the trajectory
    # fit accepts is the true one, with rates to 1 %. Measured: after 1600 epochs and one
    # restart (18 s) shooting proposes C <-> A + B and C -> A; the fit prunes the forward
    # of the first and recovers both rates to 6e-8. (It was a strict xfail while the
    # rows stayed fractional; it already passed at 9c51d67, unnoticed outside the
    # default run.)
    truth = _small()
    data = _concentrations(truth)
    fits = []

    def accept(mech: Mechanism) -> bool:
        fits.append(fit_trajectories(mech, data))
        return fits[-1].accepted

    res = propose_by_shooting(data, 2, accept=accept, deadline=time.perf_counter() + 300,
                              settings=ShootingSettings(), max_epochs=3000)
    assert res.accepted is not None, res.summary()
    cmp = fits[-1].mechanism.compare(truth)
    assert cmp["exact"]
    assert cmp["max_rate_error"] < 1e-2


def test_trajectory_fit_stops_at_its_deadline():
    # a deadline already passed: the fit reports it instead of integrating, is not accepted,
    # and keeps the start rates; a deadline in the middle interrupts the stiff solver
    truth = _small()
    data = _concentrations(truth, 20)
    late = fit_trajectories(truth, data, deadline=time.perf_counter() - 1.0)
    assert late.timed_out and not late.accepted
    assert late.summary()["timed_out"] is True
    rates = dict(zip(late.names, np.exp(late.theta)))
    assert rates["kf_1"] == pytest.approx(2.0) and rates["kf_2"] == pytest.approx(1.0)
    mm = example("michaelis-menten").mechanism
    mm_data = _concentrations(mm, 20)
    start = time.perf_counter()
    fit = fit_trajectories(mm, mm_data, deadline=start + 0.2)
    assert fit.timed_out and not fit.accepted
    assert time.perf_counter() - start < 0.2 + 5.0  # one right-hand side past the deadline
