"""Noisy flow drive: a fresh random flow-rate field every step (NumPy version)."""

from __future__ import annotations

import numpy as np

from rdlab.smoothing import smooth_periodic
from rdlab.system import FlowNoise

__all__ = ["flow_field", "raw_noise", "smooth_periodic"]



def raw_noise(rng: np.random.Generator, noise: FlowNoise, shape: tuple[int, ...]) -> np.ndarray:
    """U(−a, a) draws of shape ``(batch, species or 1, y, x)``."""
    b, s, ny, nx = shape
    return rng.uniform(-noise.amplitude, noise.amplitude,
                       size=(b, s if noise.per_species else 1, ny, nx))


def flow_field(flow: np.ndarray, noise: FlowNoise, raw: np.ndarray) -> np.ndarray:
    """``smooth(max(f + ε, 0))`` with ``f`` of shape ``(batch,)`` and ``ε = raw``."""
    return smooth_periodic(np.maximum(flow[:, None, None, None] + raw, 0.0), noise.sigma)
