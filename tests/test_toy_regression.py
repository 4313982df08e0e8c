"""The §2 toy problem y = x^θ1 + 100·x^θ2: stall without freezing, recovery with PPF."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rdlab.discover.toy_regression import TwoTermResult, fit_two_term, plot_two_term
from rdlab.errors import ParameterError


@pytest.fixture(scope="module")
def runs() -> Iterator[tuple[TwoTermResult, TwoTermResult]]:
    """Both runs with the documented defaults (seed 2, lr 2e-2, 20 000 epochs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield fit_two_term(True), fit_two_term(False)
    finally:
        torch.set_num_threads(threads)


def test_freezing_recovers_true_exponents(runs: tuple[TwoTermResult, TwoTermResult]) -> None:
    ppf, _ = runs
    assert all(e is not None for e in ppf.frozen_epoch)
    assert ppf.frozen.all()
    np.testing.assert_array_less(np.abs(ppf.theta - np.array([1.0, 2.0])), 1e-6)
    assert ppf.final_loss < 1e-10
    assert ppf.loss[-1] < 1e-10
    # θ2 (the dominant term) is the one caught first, as in the paper
    assert ppf.frozen_epoch[1] <= ppf.frozen_epoch[0]
    # a frozen exponent never moves afterwards
    for k, epoch in enumerate(ppf.frozen_epoch):
        after = ppf.theta_history[epoch:, k]
        assert np.all(after == after[0])


def test_no_freezing_stalls_in_local_minimum(runs: tuple[TwoTermResult, TwoTermResult]) -> None:
    _, plain = runs
    assert plain.frozen_epoch == (None, None)
    assert abs(plain.theta[0] - 1.0) > 0.5
    assert abs(plain.theta[1] - 2.0) < 0.05  # θ2 ≈ 2, yet not the answer
    assert plain.final_loss > 1e-4
    # stalled: the loss over the last quarter no longer improves
    n = plain.loss.size
    assert plain.loss[3 * n // 4:].min() > 0.99 * plain.loss[n // 2:3 * n // 4].min()
    assert plain.loss.shape == (20000,)
    assert plain.theta_history.shape == (20000, 2)


def test_same_data_and_start(runs: tuple[TwoTermResult, TwoTermResult]) -> None:
    ppf, plain = runs
    np.testing.assert_array_equal(ppf.theta_init, plain.theta_init)
    assert ppf.loss[0] == plain.loss[0]


def test_plot(runs: tuple[TwoTermResult, TwoTermResult], tmp_path: Path) -> None:
    out = plot_two_term(*runs, tmp_path / "fig2_1.png")
    assert out.exists() and out.stat().st_size > 10_000


@pytest.mark.parametrize(("kwargs", "bad"), [
    ({"epochs": 0}, "0"),
    ({"learning_rate": -1e-3}, "-0.001"),
    ({"epsilon": 0.7}, "0.7"),
    ({"n_points": 1}, "1"),
    ({"theta_init": (np.nan, 1.0)}, "nan"),
])
def test_bad_parameters(kwargs: dict, bad: str) -> None:
    with pytest.raises(ParameterError, match=bad):
        fit_two_term(True, **kwargs)
