"""Periodic Gaussian smoothing of fields on the grid (last two axes)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def smooth_periodic(field: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian smoothing over the last two axes, window ⌈3σ⌉ cells each side."""
    if sigma <= 0:
        return field
    sig = (0,) * (field.ndim - 2) + (sigma, sigma)
    return gaussian_filter(field, sigma=sig, mode="wrap", truncate=np.ceil(3 * sigma) / sigma)
