"""The weak-form (integral) proposal: quadrature orders on exact mass-action solutions."""

import numpy as np
import pytest

from rdlab.discover.data import ReactionData, generate
from rdlab.discover.examples import example
from rdlab.discover.library import monomial_exponents, reactions_from_coefficients
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.weak_form import fit_rates_weak, propose_from_integrals, weak_form_system
from rdlab.errors import ParameterError

K = 2.0  # rate constant of both test reactions


def _first_order(n_t: int) -> tuple[np.ndarray, np.ndarray]:
    """A → B, k = 2: A = A0 e^{−kt}, B = B0 + A0 − A on n_t points of [0, 1]."""
    t = np.linspace(0.0, 1.0, n_t)
    rng = np.random.default_rng(0)
    a0, b0 = rng.uniform(0.2, 1.0, 20), rng.uniform(0.0, 1.0, 20)
    a = a0[:, None] * np.exp(-K * t)
    return t, np.stack([a, b0[:, None] + a0[:, None] - a], axis=-1)


def _second_order(n_t: int) -> tuple[np.ndarray, np.ndarray]:
    """A + B → C, k = 2, closed form: A = Δ·A0 / (A0 − B0 e^{−kΔt}), Δ = A0 − B0."""
    t = np.linspace(0.0, 1.0, n_t)
    rng = np.random.default_rng(1)
    a0, b0, c0 = rng.uniform(0.5, 1.0, 20), rng.uniform(0.05, 0.4, 20), rng.uniform(0, 1, 20)
    d = (a0 - b0)[:, None]
    a = d * a0[:, None] / (a0[:, None] - b0[:, None] * np.exp(-K * d * t))
    return t, np.stack([a, a - d, c0[:, None] + a0[:, None] - a], axis=-1)


def _k_first_order(n_t: int, **system) -> float:
    """Relative error of k from a plain least-squares fit of the linear library {A, B}."""
    t, c = _first_order(n_t)
    G, b = weak_form_system(t, c, exponents=monomial_exponents(2, 1), **system)
    xi, *_ = np.linalg.lstsq(G, b, rcond=None)
    assert xi[0, 1] == pytest.approx(-xi[0, 0], rel=1e-2)  # dB/dt = −dA/dt
    return abs(-xi[0, 0] - K) / K


def _order(errors: list[float]) -> float:
    """Observed order from errors at Δt, Δt/2, Δt/4 (the mean of the two ratios)."""
    return float(np.mean(np.log2(np.array(errors[:-1]) / np.array(errors[1:]))))


@pytest.mark.parametrize(("system", "expected"), [
    ({"kind": "intervals", "quadrature": "trapezoid"}, 2.0),  # trapezoid rule
    ({"kind": "intervals", "quadrature": "simpson"}, 4.0),    # Simpson's rule
])
def test_interval_form_converges_at_the_quadrature_order(system, expected):
    errors = [_k_first_order(n, **system) for n in (11, 21, 41)]
    assert errors[0] < 1e-2
    assert _order(errors) == pytest.approx(expected, abs=0.3)


@pytest.mark.parametrize("degree", [4, 6])
def test_test_functions_make_the_trapezoid_rule_order_p(degree):
    # φ = ((t−a)(b−t))^p: φ' vanishes to order p−1 at both ends, so by Euler–Maclaurin the
    # trapezoid rule on −∫φ'u is O(Δt^p) (p even) — not the rule's own O(Δt²)
    errors = [_k_first_order(n, kind="test-functions", quadrature="trapezoid",
                             width=n - 1, degree=degree) for n in (11, 21, 41)]
    assert _order(errors) > degree - 0.5
    assert errors[0] < 3e-3


def test_second_order_rate_from_the_weak_system_converges():
    E = monomial_exponents(3, 2)
    V = np.array([[-1.0, -1.0, 1.0]])
    errors = []
    for n_t in (11, 21, 41):
        t, c = _second_order(n_t)
        G, b = weak_form_system(t, c, exponents=E, kind="intervals", quadrature="simpson")
        kf, kr, res = fit_rates_weak(V, None, G, b, E)
        assert kr[0] < 1e-3 * K  # C → A + B is absent
        errors.append(abs(kf[0] - K) / K)
    assert errors[0] < 1e-4
    assert _order(errors) == pytest.approx(4.0, abs=0.4)


def test_proposal_recovers_the_autocatalytic_example_from_concentrations():
    ex = example("autocatalytic")
    data = generate(ex.mechanism, seed=1)
    data = ReactionData(data.species, data.times, data.concentrations)  # no derivatives
    prop = propose_from_integrals(data, ex.n_reactions, catalytic=True)
    learned = Mechanism(ex.mechanism.species, prop.V, prop.kf, prop.kr, orders=prop.orders)
    cmp = learned.compare(ex.mechanism)
    assert cmp["exact"]
    assert cmp["max_rate_error"] < 1e-3  # Simpson on Δt = 0.1 (measured 1.4e-5)


def test_reading_reactions_off_the_true_coefficients_gives_the_mechanism_back():
    truth = example("hydrogen-oxidation").mechanism
    E = monomial_exponents(truth.n_species, 2)
    W = np.zeros_like(E)
    for nu, kf, kr in zip(truth.V, truth.kf, truth.kr):  # W[m] = Σ k ν over directions
        W[np.all(E == np.maximum(0, -nu), axis=1)] += kf * nu
        W[np.all(E == np.maximum(0, nu), axis=1)] -= kr * nu
    prop = reactions_from_coefficients(W, E)
    learned = Mechanism(truth.species, prop.V, prop.kf, prop.kr)
    cmp = learned.compare(truth)
    assert cmp["exact"] and cmp["max_rate_error"] < 1e-9


@pytest.mark.parametrize("bad", [{"kind": "splines"}, {"quadrature": "gauss"}, {"width": 1},
                                 {"degree": 0}, {"span": 11}])
def test_bad_options_are_refused_by_name(bad):
    t, c = _first_order(11)
    with pytest.raises(ParameterError, match=str(next(iter(bad.values())))):
        weak_form_system(t, c, **bad)
