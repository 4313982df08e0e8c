"""The reference scan's 5481 points (reference: Parameter_Space_Dataset_Generate.py)."""

import numpy as np
import pytest

from rdlab.classify.scan_layout import REFERENCE_BLOCKS, grid_scan, reference_scan
from rdlab.errors import ParameterError


def test_reference_scan_counts():
    pts = reference_scan()
    sizes = [b.points()[0].size for b in REFERENCE_BLOCKS]
    assert sizes == [2115, 2070, 752, 84, 108, 352]
    assert len(pts) == 5481
    cells = {(round(k, 9), round(f, 9)) for k, f in zip(pts.k, pts.f)}
    assert len(cells) == 5369  # 112 points of blocks 2b/2c repeat block 0
    assert pts.seed.min() == 1 and pts.seed.max() == 4140
    assert pts.seed.size - np.unique(pts.seed).size == 1341  # reused seeds
    # the float endpoint quirk: k = 0.0675 (+ rounding) is included in block 0
    assert np.isclose(pts.k[:2115].max(), 0.0675)
    assert np.isclose(pts.k.min(), 0.02375) and np.isclose(pts.k.max(), 0.0775)
    assert np.isclose(pts.f.min(), 0.0015) and np.isclose(pts.f.max(), 0.119)
    ks, fs = np.unique(np.round(pts.k, 9)), np.unique(np.round(pts.f, 9))
    assert (ks.size, fs.size) == (87, 95)  # the display grid


def test_grid_scan():
    pts = grid_scan((0.03, 0.07, 5), (0.0, 0.08, 3), seed_start=10)
    assert len(pts) == 15
    np.testing.assert_allclose(pts.k[:3], 0.03)
    np.testing.assert_allclose(pts.f[:3], [0.0, 0.04, 0.08])
    np.testing.assert_array_equal(pts.seed, np.arange(10, 25))
    with pytest.raises(ParameterError, match="-0.1"):
        grid_scan((-0.1, 0.07, 5), (0.0, 0.08, 3))
