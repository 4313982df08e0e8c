"""Periodic Gaussian smoothing of fields on the grid (last two axes)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def smooth_periodic(field: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth with a periodic Gaussian over the last two axes, window ⌈3σ⌉ cells each side.

    Parameters
    ----------
    field : numpy.ndarray
        Any array whose last two axes are (y, x).
    sigma : float
        Width of the Gaussian, in cells; ``≤ 0`` returns ``field`` unchanged.

    Returns
    -------
    numpy.ndarray
        Shape of ``field``.
    """
    if sigma <= 0:
        return field
    sig = (0,) * (field.ndim - 2) + (sigma, sigma)
    return gaussian_filter(field, sigma=sig, mode="wrap", truncate=np.ceil(3 * sigma) / sigma)
