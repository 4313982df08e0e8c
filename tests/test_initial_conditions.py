"""The CNN paper's initial states: geometry, the legacy RNG order and its quirks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from rdlab.classify.initial_conditions import (
    _place_squares,
    gray_scott_initial_batch,
    gray_scott_initial_state,
)
from rdlab.errors import ParameterError


def _legacy_replay(seed: int) -> dict:
    """The reference's draws, written out from its documented call order."""
    rs = np.random.RandomState(seed)
    while True:
        sx, sy = 0.1 + 0.8 * rs.rand(), 0.1 + 0.8 * rs.rand()
        if 0.2 <= max(abs(sx - 0.5), abs(sy - 0.5)) <= 0.4:
            break
    rs.randn(128, 128)
    rs.randn(128, 128)
    angle = rs.randint(0, 89)
    x_rand = int(rs.rand() * 128)
    y_rand = int(rs.rand() * 128)
    return {"sx": sx, "sy": sy, "angle": angle, "x": x_rand, "y": y_rand}


def test_squares_before_rotation():
    s = _place_squares(128, 0.3, 0.75)  # cx = 38, cy = 96
    assert s.shape == (2, 128, 128)
    np.testing.assert_array_equal(s[:, 60, 60], [0.5, 0.25])  # square A
    np.testing.assert_array_equal(s[:, 30, 88], [0.5, 0.25])  # B outside C
    np.testing.assert_array_equal(s[:, 40, 100], [0.99, 0.01])  # C over B
    np.testing.assert_array_equal(s[:, 0, 0], [1.0, 0.0])
    # C (rows 35..55, cols 96..116) is clipped at nothing here; total perturbed area
    assert (s[0] < 1).sum() == 400 + 400 + 400 - (20 - 6) * (20 - 9)


@pytest.mark.parametrize("seed", [1, 2, 751, 2251, 4935])
def test_legacy_mode_follows_the_reference_draws(seed):
    d = _legacy_replay(seed)
    base = _place_squares(128, d["sx"], d["sy"])
    rotated = np.stack([ndimage.rotate(c, d["angle"], reshape=False, mode="wrap",
                                       prefilter=False) for c in base])
    got = gray_scott_initial_state(seed, mode="legacy")
    # only the axis-0 roll by y_rand is applied; the x-shift is lost (reference bug)
    np.testing.assert_array_equal(got, np.roll(rotated, d["y"], axis=1))
    if d["x"] != 0:
        assert not np.array_equal(got, np.roll(np.roll(rotated, d["y"], axis=1), d["x"],
                                               axis=2))
    assert 0 <= d["angle"] <= 88


def test_default_mode_shifts_both_axes_and_differs_from_legacy():
    a = gray_scott_initial_state(7)
    b = gray_scott_initial_state(7, mode="legacy")
    assert not np.array_equal(a, b)
    # the perturbation's column centroid varies over seeds in default mode (both shifts)
    cols = []
    for seed in range(40):
        u = gray_scott_initial_state(seed)[0]
        w = (1 - u).clip(0).sum(axis=0)
        phase = np.angle((w * np.exp(2j * np.pi * np.arange(128) / 128)).sum())
        cols.append(phase)
    spread = abs(np.mean(np.exp(1j * np.array(cols))))
    assert spread < 0.5  # near-uniform circular distribution of the x position


@pytest.mark.parametrize("mode", ["default", "legacy"])
def test_seeded_reproducible_and_mass_like_the_squares(mode):
    a = gray_scott_initial_batch([3, 4], mode=mode)
    b = gray_scott_initial_batch([3, 4], mode=mode)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 2, 128, 128) and a.dtype == np.float64
    assert not np.array_equal(a[0], a[1])
    # rotation with wrap and the periodic roll redistribute but nearly conserve V's mass:
    # 2 squares at 0.25 minus C's overlap region at 0.01 … between 80 and 200 units
    v_mass = a[:, 1].sum(axis=(1, 2))
    assert np.all((v_mass > 80) & (v_mass < 200)), v_mass
    assert np.isfinite(a).all()


def test_bad_arguments_are_named():
    with pytest.raises(ParameterError, match="mode"):
        gray_scott_initial_state(1, mode="paper")
    with pytest.raises(ParameterError, match="-3"):
        gray_scott_initial_state(-3)
    with pytest.raises(ParameterError, match="size"):
        gray_scott_initial_state(1, size=8)
    with pytest.raises(ParameterError, match="empty"):
        gray_scott_initial_batch([])
