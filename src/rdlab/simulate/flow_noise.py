"""Noisy flow drive: a fresh random flow-rate field every step (NumPy version)."""

from __future__ import annotations

import numpy as np

from rdlab.smoothing import smooth_periodic
from rdlab.system import FlowNoise

__all__ = ["flow_field", "raw_noise", "smooth_periodic"]



def raw_noise(rng: np.random.Generator, noise: FlowNoise, shape: tuple[int, ...]) -> np.ndarray:
    """Draw the raw flow noise U(−a, a) of one step.

    Parameters
    ----------
    rng : numpy.random.Generator
        The random numbers.
    noise : FlowNoise
        The noise; ``a`` is its amplitude.
    shape : tuple of int
        The state shape ``(batch, species, y, x)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(batch, species or 1, y, x)`` (1 unless ``noise.per_species``).
    """
    b, s, ny, nx = shape
    return rng.uniform(-noise.amplitude, noise.amplitude,
                       size=(b, s if noise.per_species else 1, ny, nx))


def flow_field(flow: np.ndarray, noise: FlowNoise, raw: np.ndarray) -> np.ndarray:
    """Return the noisy flow field ``smooth(max(f + ε, 0))``.

    Parameters
    ----------
    flow : numpy.ndarray
        The flow ``f``, shape ``(batch,)``.
    noise : FlowNoise
        The noise; ``sigma`` sets the smoothing.
    raw : numpy.ndarray
        The raw noise ``ε`` (:func:`raw_noise`), ``(batch, species or 1, y, x)``.

    Returns
    -------
    numpy.ndarray
        The flow field, shape of ``raw``.
    """
    return smooth_periodic(np.maximum(flow[:, None, None, None] + raw, 0.0), noise.sigma)
