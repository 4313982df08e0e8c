"""Derivatives estimated from concentrations (rdlab.discover.derivatives)."""

from __future__ import annotations

import numpy as np
import pytest

from rdlab.discover.data import ReactionData
from rdlab.discover.derivatives import METHODS, derivative_error, estimate
from rdlab.errors import ParameterError

RATES = np.array([1.0, 2.0])  # species A ~ exp(-t), B ~ exp(-2t)
AMPLITUDES = np.array([1.0, 0.5])  # two samples (initial conditions)


def analytic(dt: float, t_end: float = 1.0) -> ReactionData:
    """c_k(t) = a_s · exp(−r_k t) with exact derivatives, 2 samples × 2 species."""
    t = np.linspace(0.0, t_end, int(round(t_end / dt)) + 1)
    decay = np.exp(-t[:, None] * RATES[None, :])  # (n_t, 2)
    conc = AMPLITUDES[:, None, None] * decay[None]  # (2, n_t, 2)
    deriv = -RATES[None, None, :] * conc
    return ReactionData(("A", "B"), t, conc, deriv)


def test_fd_is_second_order() -> None:
    errors = []
    for dt in (0.1, 0.05):
        exact = analytic(dt)
        est = estimate(replace_none(exact), method="fd")
        errors.append(derivative_error(est, exact)["overall"])
    assert errors[0] < 5e-2
    assert errors[0] / errors[1] >= 3.0  # ≈ 4 for O(dt²)


def test_spline_accurate_at_dt_01() -> None:
    exact = analytic(0.1)
    est = estimate(replace_none(exact), method="spline")
    err = derivative_error(est, exact)
    assert err["overall"] < 1e-3
    assert set(err["per_species"]) == {"A", "B"}
    assert err["per_time"].shape == (exact.times.size,)
    assert max(err["per_species"].values()) < 1e-3
    # the input is untouched and the copy keeps the concentrations
    np.testing.assert_array_equal(est.concentrations, exact.concentrations)
    np.testing.assert_array_equal(est.times, exact.times)


def test_fd_on_nonuniform_times() -> None:
    t = np.sort(np.concatenate([[0.0, 1.0], np.random.default_rng(3).uniform(0, 1, 30)]))
    conc = np.exp(-t)[None, :, None]
    exact = ReactionData(("A",), t, conc, -conc)
    est = estimate(replace_none(exact), method="fd")
    assert derivative_error(est, exact)["overall"] < 1e-2


def test_smoothing_beats_fd_on_noisy_data() -> None:
    exact = analytic(0.01)
    noise = 1e-3 * np.random.default_rng(0).standard_normal(exact.concentrations.shape)
    noisy = ReactionData(exact.species, exact.times, exact.concentrations + noise)
    fd = derivative_error(estimate(noisy, method="fd"), exact)["overall"]
    smooth = derivative_error(estimate(noisy, method="smoothing"), exact)["overall"]
    assert smooth < 0.5 * fd
    fixed = derivative_error(estimate(noisy, method="smoothing", smoothing=1e-5),
                             exact)["overall"]
    assert fixed < fd


def test_bad_method_names_it() -> None:
    data = replace_none(analytic(0.1))
    with pytest.raises(ParameterError, match="splinee") as info:
        estimate(data, method="splinee")
    for name in METHODS:
        assert name in str(info.value)


def test_too_few_times_and_bad_smoothing() -> None:
    t = np.array([0.0, 0.5])
    data = ReactionData(("A",), t, np.exp(-t)[None, :, None])
    with pytest.raises(ParameterError, match="at least 3 times"):
        estimate(data, method="fd")
    full = replace_none(analytic(0.25))  # 5 times
    with pytest.raises(ParameterError, match="-1"):
        estimate(full, method="smoothing", smoothing=-1.0)
    with pytest.raises(ParameterError, match="only to method='smoothing'"):
        estimate(full, method="spline", smoothing=1.0)
    with pytest.raises(ParameterError, match="at least 5 times"):
        estimate(replace_none(analytic(0.5)), method="smoothing")


def test_error_needs_matching_derivatives() -> None:
    exact = analytic(0.1)
    with pytest.raises(ParameterError, match="no derivatives"):
        derivative_error(replace_none(exact), exact)
    with pytest.raises(ParameterError, match="shapes differ"):
        derivative_error(analytic(0.05), exact)


def per_sample_grids() -> ReactionData:
    """Sample 0 on 21 times over [0, 1], sample 1 on 21 times over [0, 3] (each its own
    grid, same count), with exact derivatives."""
    times = np.stack([np.linspace(0.0, 1.0, 21), np.linspace(0.0, 3.0, 21)])
    decay = np.exp(-times[:, :, None] * RATES[None, None, :])  # (2, n_t, 2)
    conc = AMPLITUDES[:, None, None] * decay
    return ReactionData(("A", "B"), times, conc, -RATES[None, None, :] * conc)


@pytest.mark.parametrize("method", ["fd", "spline", "smoothing"])
def test_each_sample_is_differentiated_on_its_own_times(method) -> None:
    exact = per_sample_grids()
    assert not exact.shared_times and exact.sample_times.shape == (2, 21)
    est = estimate(replace_none(exact), method=method)
    err = derivative_error(est, exact)
    assert err["overall"] < {"fd": 2e-2, "spline": 5e-3, "smoothing": 5e-2}[method], err
    # sample 0's grid applied to sample 1 (the old reading) would be 3× off in time
    wrong = ReactionData(exact.species, exact.times[0], exact.concentrations)
    wrong_err = derivative_error(ReactionData(exact.species, exact.times,
                                              exact.concentrations,
                                              estimate(wrong, method=method).derivatives),
                                 exact)
    assert wrong_err["overall"] > 0.3


def test_equal_rows_of_times_are_one_shared_grid() -> None:
    exact = analytic(0.1)
    two_rows = ReactionData(exact.species, np.stack([exact.times] * 2),
                            exact.concentrations, exact.derivatives)
    assert two_rows.shared_times and two_rows.times.shape == (exact.times.size,)


@pytest.mark.parametrize("times, match", [
    ([[0.0, 0.5, 1.0], [0.0, 1.0, 0.5]], r"sample 1 .*strictly increasing.*0\.5.*comes after"),
    ([[0.0, 0.5, 1.0], [0.0, 0.5, 0.5]], r"sample 1 .*strictly increasing.*repeats"),
    ([[0.0, 0.5, 1.0], [0.0, np.nan, 1.0]], r"time 1 of sample 1 is nan"),
    ([0.0, 1.0], r"2 times for 3 time points"),
])
def test_bad_times_name_the_sample(times, match) -> None:
    with pytest.raises(ParameterError, match=match):
        ReactionData(("A",), times, np.ones((2, 3, 1)))


def replace_none(data: ReactionData) -> ReactionData:
    """The same series with the derivatives dropped (only concentrations measured)."""
    return ReactionData(data.species, data.times, data.concentrations, None,
                        data.temperatures)
