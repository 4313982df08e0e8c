"""Display scaling shared by every renderer.

Robust ranges, the contrast sigmoid, colour look-up tables, float → uint8 conversion and
integer nearest-neighbour upscaling.

Nothing here opens a window or touches matplotlib's global state (colour maps are read from
the registry only).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rdlab.errors import ParameterError

#: Colour (RGB in [0, 1]) used for NaN/Inf pixels by every renderer.
BAD_COLOR: tuple[float, float, float] = (1.0, 0.0, 1.0)
#: The same colour as uint8.
BAD_COLOR_U8: tuple[int, int, int] = (255, 0, 255)

#: Default robust display range, in percent (the Dense-RDN paper's 0.1–99.9 percentiles).
DEFAULT_PERCENTILES: tuple[float, float] = (0.1, 99.9)

#: Longer side, in pixels, that automatic upscaling aims for.
DEFAULT_TARGET_PX = 256


def robust_range(
    values: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> tuple[float, float]:
    """Return the ``(lo, hi)`` percentiles of the finite entries of ``values`` (any shape).

    Parameters
    ----------
    values : numpy.ndarray
        The values.
    percentiles : tuple of float, default DEFAULT_PERCENTILES
        ``(lo, hi)`` in percent, ``0 ≤ lo < hi ≤ 100``.

    Returns
    -------
    lo, hi : float
        ``(0.0, 0.0)`` when no entry is finite.

    Raises
    ------
    ParameterError
        For bad percentiles.
    """
    lo_p, hi_p = percentiles
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise ParameterError(f"percentiles must satisfy 0 ≤ lo < hi ≤ 100, got {percentiles!r}")
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(v, [lo_p, hi_p])
    return float(lo), float(hi)


def finite_min_max(values: np.ndarray) -> tuple[float, float]:
    """Return the minimum and maximum of the finite entries of ``values``; ``(0.0, 0.0)`` if none.

    Parameters
    ----------
    values : numpy.ndarray
        The values.

    Returns
    -------
    vmin, vmax : float
        The range.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if not ok.any():
        return 0.0, 0.0
    if ok.all():
        return float(v.min()), float(v.max())
    return float(v[ok].min()), float(v[ok].max())


def widen_if_flat(vmin: float, vmax: float) -> tuple[float, float]:
    """Return a usable colour range.

    ``(vmin, vmax)`` is unchanged when ``vmin < vmax``; a flat range becomes
    ``(v − ½, v + ½)`` so a constant field shows the middle colour.

    Parameters
    ----------
    vmin, vmax : float
        The range.

    Returns
    -------
    vmin, vmax : float
        The usable range.

    Raises
    ------
    ParameterError
        For a non-finite range or ``vmax < vmin``.
    """
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        raise ParameterError(f"colour range must be finite, got vmin={vmin!r}, vmax={vmax!r}")
    if vmax < vmin:
        raise ParameterError(f"vmax ({vmax!r}) is below vmin ({vmin!r})")
    if vmax == vmin:
        return vmin - 0.5, vmax + 0.5
    return float(vmin), float(vmax)


def normalize(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``values`` affinely, sending ``lo → 0`` and ``hi → 1`` (not clipped).

    A flat range (``hi == lo``) maps every value to 0. Non-finite inputs give 0 (callers mark
    them separately).

    Parameters
    ----------
    values : numpy.ndarray
        The values.
    lo, hi : float
        The range.

    Returns
    -------
    numpy.ndarray
        The mapped values.
    """
    v = np.nan_to_num(np.asarray(values, dtype=float), nan=lo, posinf=hi, neginf=lo)
    span = hi - lo
    if not span > 0:
        return np.zeros_like(v)
    return (v - lo) / span


def contrast_sigmoid(u: np.ndarray) -> np.ndarray:
    """Apply the Dense-RDN display curve ``1 / (1 + exp(−(10u − 4)))``, clipped to [0, 1].

    The curve sends 0 to ≈0.018, 0.4 to 0.5 and 1 to ≈0.998. Inputs are clipped to
    [−10, 10] first, which changes nothing visible and keeps ``exp`` from overflowing.

    Parameters
    ----------
    u : numpy.ndarray
        Values already mapped so the display range is [0, 1].

    Returns
    -------
    numpy.ndarray
        Values in [0, 1].
    """
    z = 10.0 * np.clip(np.asarray(u, dtype=float), -10.0, 10.0) - 4.0
    return np.clip(1.0 / (1.0 + np.exp(-z)), 0.0, 1.0)


@lru_cache(maxsize=32)
def colormap_lut(cmap: str, n: int = 256) -> np.ndarray:
    """Return a uint8 look-up table sampled evenly from the matplotlib colour map ``cmap``.

    Parameters
    ----------
    cmap : str
        Colour map name.
    n : int, default 256
        Number of entries.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` uint8.

    Raises
    ------
    ParameterError
        For an unknown colour map.
    """
    import matplotlib

    try:
        cm = matplotlib.colormaps[cmap]
    except KeyError:
        raise ParameterError(f"unknown matplotlib colour map {cmap!r}") from None
    lut = np.round(cm(np.linspace(0.0, 1.0, n))[:, :3] * 255.0).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def apply_colormap(
    values: np.ndarray, vmin: float, vmax: float, cmap: str = "viridis"
) -> np.ndarray:
    """Colour a scalar field.

    ``vmin``/``vmax`` map to the two ends of ``cmap`` (values outside are clipped); NaN/Inf
    pixels get :data:`BAD_COLOR_U8`. A flat range (``vmin == vmax``) shows the middle colour.

    Parameters
    ----------
    values : numpy.ndarray
        The field, any shape ``(...)``.
    vmin, vmax : float
        The colour range.
    cmap : str, default "viridis"
        Colour map name.

    Returns
    -------
    numpy.ndarray
        uint8 RGB ``(..., 3)``.
    """
    vmin, vmax = widen_if_flat(float(vmin), float(vmax))
    v = np.asarray(values, dtype=float)
    lut = colormap_lut(cmap)
    u = normalize(v, vmin, vmax)
    idx = np.clip(np.floor(u * len(lut)), 0, len(lut) - 1).astype(np.intp)
    out = lut[idx]
    bad = ~np.isfinite(v)
    if bad.any():
        out[bad] = BAD_COLOR_U8
    return out


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Convert float RGB in [0, 1] (any shape) to uint8 in [0, 255] (rounded, clipped; NaN → 0).

    Parameters
    ----------
    rgb : numpy.ndarray
        Float colours.

    Returns
    -------
    numpy.ndarray
        uint8, same shape.
    """
    x = np.nan_to_num(np.asarray(rgb, dtype=float), nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def auto_upscale(shape: tuple[int, int], target_px: int = DEFAULT_TARGET_PX) -> int:
    """Return the integer factor bringing the longer side of a ``(y, x)`` grid near ``target_px``.

    At least 1: large grids are never shrunk.

    Parameters
    ----------
    shape : tuple of int
        ``(y, x)``.
    target_px : int, default 256
        The wanted longer side in pixels.

    Returns
    -------
    int
        The factor.
    """
    longest = max(int(shape[0]), int(shape[1]), 1)
    return max(1, int(round(target_px / longest)))


def upscale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """Upscale the two leading image axes by an integer factor (nearest neighbour).

    Parameters
    ----------
    image : numpy.ndarray
        ``(y, x)`` or ``(y, x, channels)``.
    factor : int
        The factor, ≥ 1.

    Returns
    -------
    numpy.ndarray
        ``(y·factor, x·factor, ...)``.

    Raises
    ------
    ParameterError
        For a factor that is not a positive integer.
    """
    if int(factor) != factor or factor < 1:
        raise ParameterError(f"upscale factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return np.asarray(image)
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def upscale_stack(images: np.ndarray, factor: int) -> np.ndarray:
    """Apply :func:`upscale_nearest` to ``(n, y, x[, c])`` stacks (axes 1 and 2).

    Parameters
    ----------
    images : numpy.ndarray
        ``(n, y, x)`` or ``(n, y, x, c)``.
    factor : int
        The factor, ≥ 1.

    Returns
    -------
    numpy.ndarray
        ``(n, y·factor, x·factor[, c])``.

    Raises
    ------
    ParameterError
        For a factor that is not a positive integer.
    """
    if int(factor) != factor or factor < 1:
        raise ParameterError(f"upscale factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return np.asarray(images)
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
