"""Display scaling shared by every renderer: robust ranges, the contrast sigmoid, colour
look-up tables, float → uint8 conversion and integer nearest-neighbour upscaling.

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
    """``(lo, hi)`` percentiles of the finite entries of ``values`` (any shape).

    Returns ``(0.0, 0.0)`` when no entry is finite.
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
    """Minimum and maximum of the finite entries of ``values``; ``(0.0, 0.0)`` if none."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if not ok.any():
        return 0.0, 0.0
    if ok.all():
        return float(v.min()), float(v.max())
    return float(v[ok].min()), float(v[ok].max())


def widen_if_flat(vmin: float, vmax: float) -> tuple[float, float]:
    """A usable colour range: ``(vmin, vmax)`` unchanged when ``vmin < vmax``; a flat range
    becomes ``(v − ½, v + ½)`` so a constant field shows the middle colour.
    """
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        raise ParameterError(f"colour range must be finite, got vmin={vmin!r}, vmax={vmax!r}")
    if vmax < vmin:
        raise ParameterError(f"vmax ({vmax!r}) is below vmin ({vmin!r})")
    if vmax == vmin:
        return vmin - 0.5, vmax + 0.5
    return float(vmin), float(vmax)


def normalize(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Affine map of ``values`` sending ``lo → 0`` and ``hi → 1`` (not clipped).

    A flat range (``hi == lo``) maps every value to 0. Non-finite inputs give 0 (callers mark
    them separately).
    """
    v = np.nan_to_num(np.asarray(values, dtype=float), nan=lo, posinf=hi, neginf=lo)
    span = hi - lo
    if not span > 0:
        return np.zeros_like(v)
    return (v - lo) / span


def contrast_sigmoid(u: np.ndarray) -> np.ndarray:
    """The Dense-RDN display curve ``1 / (1 + exp(−(10u − 4)))``, clipped to [0, 1].

    ``u`` is a value already mapped so the display range is [0, 1]; the curve sends 0 to
    ≈0.018, 0.4 to 0.5 and 1 to ≈0.998. Inputs are clipped to [−10, 10] first, which changes
    nothing visible and keeps ``exp`` from overflowing.
    """
    z = 10.0 * np.clip(np.asarray(u, dtype=float), -10.0, 10.0) - 4.0
    return np.clip(1.0 / (1.0 + np.exp(-z)), 0.0, 1.0)


@lru_cache(maxsize=32)
def colormap_lut(cmap: str, n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 look-up table sampled evenly from the matplotlib colour map ``cmap``."""
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
    """Colour a scalar field: ``values (...)`` → uint8 RGB ``(..., 3)``.

    ``vmin``/``vmax`` map to the two ends of ``cmap`` (values outside are clipped); NaN/Inf
    pixels get :data:`BAD_COLOR_U8`. A flat range (``vmin == vmax``) shows the middle colour.
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
    """Float RGB in [0, 1] (any shape) → uint8 in [0, 255] (rounded, clipped; NaN → 0)."""
    x = np.nan_to_num(np.asarray(rgb, dtype=float), nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def auto_upscale(shape: tuple[int, int], target_px: int = DEFAULT_TARGET_PX) -> int:
    """Integer factor bringing the longer side of a ``(y, x)`` grid near ``target_px``
    (at least 1: large grids are never shrunk).
    """
    longest = max(int(shape[0]), int(shape[1]), 1)
    return max(1, int(round(target_px / longest)))


def upscale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """Integer nearest-neighbour upscaling of the two leading image axes.

    ``image`` is ``(y, x)`` or ``(y, x, channels)``; returns ``(y·factor, x·factor, ...)``.
    """
    if int(factor) != factor or factor < 1:
        raise ParameterError(f"upscale factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return np.asarray(image)
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def upscale_stack(images: np.ndarray, factor: int) -> np.ndarray:
    """:func:`upscale_nearest` applied to ``(n, y, x[, c])`` stacks (axes 1 and 2)."""
    if int(factor) != factor or factor < 1:
        raise ParameterError(f"upscale factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return np.asarray(images)
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
