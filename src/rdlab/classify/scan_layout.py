"""The (k, f) points of the Gray–Scott CNN paper's parameter scan (5481 runs).

Six rectangular blocks built with ``numpy.arange`` and steps Δk = 0.000625, Δf = 0.00125, as
in the reference code (its floating-point endpoints included, e.g. k = 0.06750000000000003).
Within a block, k varies slowest (an ordering the reference does not pin down; it only fixes
which seed a point gets). Seeds run per block: block 0 from 1, block 1 from 2071, block 2
(2a–2d together) from 2593, so the reference reuses 1341 seeds across blocks; the 112 points
of blocks 2b/2c with k ≤ 0.044375 repeat block-0 points (5369 distinct cells).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rdlab.errors import ParameterError

DK = 0.000625
DF = 0.00125


@dataclass(frozen=True)
class ScanBlock:
    """One rectangle of the scan.

    ``k = arange(*k_range, DK)``, ``f = arange(*f_range, DF)`` (stop exclusive), seeds
    ``seed_start + index``.

    Parameters
    ----------
    name : str
        Block name (``"0"``, ``"1"``, ``"2a"`` …).
    k_range, f_range : tuple of float
        ``(start, stop)`` of k and f.
    seed_start : int
        Seed of the block's first point.
    """

    name: str
    k_range: tuple[float, float]
    f_range: tuple[float, float]
    seed_start: int

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the block's points, k varying slowest.

        Returns
        -------
        k, f : numpy.ndarray
            ``(n,)`` float64 each.
        """
        k = np.arange(self.k_range[0], self.k_range[1], DK)
        f = np.arange(self.f_range[0], self.f_range[1], DF)
        kk, ff = np.meshgrid(k, f, indexing="ij")  # k slowest
        return kk.ravel(), ff.ravel()


#: The reference layout: 2115 + 2070 + 752 + 84 + 108 + 352 = 5481 runs.
REFERENCE_BLOCKS = (
    ScanBlock("0", (0.04, 0.068), (0.004, 0.062), 1),
    ScanBlock("1", (0.04, 0.068), (0.06275, 0.12), 2071),
    ScanBlock("2a", (0.068125, 0.078), (0.004, 0.062), 2593),
    ScanBlock("2b", (0.0375, 0.045), (0.0015, 0.01), 2593 + 752),
    ScanBlock("2c", (0.0375, 0.045), (0.01025, 0.021), 2593 + 752 + 84),
    ScanBlock("2d", (0.02375, 0.0375), (0.0015, 0.021), 2593 + 752 + 84 + 108),
)


@dataclass(frozen=True)
class ScanPoints:
    """A list of scan points.

    Parameters
    ----------
    k, f : numpy.ndarray
        ``(n,)`` float64.
    seed : numpy.ndarray
        ``(n,)`` int64.
    """

    k: np.ndarray
    f: np.ndarray
    seed: np.ndarray

    def __len__(self) -> int:
        """Return the number of points."""
        return int(self.k.size)


def reference_scan() -> ScanPoints:
    """Return the 5481 points of the reference scan, block by block.

    Returns
    -------
    ScanPoints
        The points of :data:`REFERENCE_BLOCKS`.
    """
    ks, fs, seeds = [], [], []
    for block in REFERENCE_BLOCKS:
        k, f = block.points()
        ks.append(k)
        fs.append(f)
        seeds.append(block.seed_start + np.arange(k.size))
    return ScanPoints(np.concatenate(ks), np.concatenate(fs), np.concatenate(seeds))


def grid_scan(k_spec: tuple[float, float, int], f_spec: tuple[float, float, int],
              seed_start: int = 1) -> ScanPoints:
    """Return a rectangular scan; k varies slowest.

    Parameters
    ----------
    k_spec : tuple of (float, float, int)
        ``(k_min, k_max, n_k)``, both ends included.
    f_spec : tuple of (float, float, int)
        Likewise for f.
    seed_start : int, default 1
        Seeds are ``seed_start, seed_start + 1, …``.

    Returns
    -------
    ScanPoints
        ``n_k · n_f`` points.

    Raises
    ------
    ParameterError
        When a range is not ``0 ≤ min ≤ max`` or asks for no values.
    """
    for name, (lo, hi, n) in (("k", k_spec), ("f", f_spec)):
        if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0 and hi >= lo):
            raise ParameterError(f"scan range for {name} must satisfy 0 ≤ min ≤ max, got "
                                 f"{lo!r}..{hi!r}")
        if int(n) < 1:
            raise ParameterError(f"scan needs at least one {name} value, got {n!r}")
    return value_grid(np.linspace(k_spec[0], k_spec[1], int(k_spec[2])),
                      np.linspace(f_spec[0], f_spec[1], int(f_spec[2])), seed_start)


def value_grid(k_values, f_values, seed_start: int = 1) -> ScanPoints:
    """Return every pair of the given k and f values (k varies slowest), exactly those values.

    Parameters
    ----------
    k_values, f_values : array_like of float
        The values, finite and ≥ 0, at least one each.
    seed_start : int, default 1
        Seeds are ``seed_start, seed_start + 1, …``.

    Returns
    -------
    ScanPoints
        ``len(k_values) · len(f_values)`` points.

    Raises
    ------
    ParameterError
        For an empty list or a negative or non-finite value.
    """
    k = np.asarray(k_values, dtype=np.float64).ravel()
    f = np.asarray(f_values, dtype=np.float64).ravel()
    for name, values in (("k", k), ("f", f)):
        if values.size == 0:
            raise ParameterError(f"scan needs at least one {name} value")
        bad = values[~np.isfinite(values) | (values < 0)]
        if bad.size:
            raise ParameterError(f"scan value {name} = {float(bad[0])!r} must be finite and ≥ 0")
    kk, ff = np.meshgrid(k, f, indexing="ij")
    return ScanPoints(kk.ravel(), ff.ravel(), seed_start + np.arange(kk.size))
