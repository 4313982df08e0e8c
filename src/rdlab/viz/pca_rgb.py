"""PCA → RGB rendering of many-species fields (Dense-RDN paper, appendix A.2).

Every pixel of every frame is a vector of ``n_species`` concentrations. For more than three
species the vectors are projected on their top three principal components, which become the
red, green and blue channels. The fit is done **once over the whole series** (all times and
samples), and so are the display percentiles, so a given concentration vector gets the same
colour in every frame: colours neither drift nor flicker.

Display scaling of each channel ``c`` (the paper's recipe):

1. ``u = (p − lo_c) / (hi_c − lo_c)`` with ``lo_c``/``hi_c`` the 0.1 and 99.9 percentiles of
   that channel over the series;
2. ``1 / (1 + exp(−(10u − 4)))`` (:func:`rdlab.viz.scaling.contrast_sigmoid`);
3. clip to [0, 1].

Few species: 3 species are shown directly as R, G, B (same scaling, no projection); 1 or 2
species are shown through a colour map (``viridis``) of one species, linearly between its
0.1 and 99.9 percentiles. ``method="direct"`` with fewer than 3 species prepends zero
channels instead (``(0, 0, A)`` or ``(0, A, B)``).

The PCA is exact and needs no scikit-learn: the ``(species, species)`` covariance is
accumulated over chunks of pixels (shifted sums, so memory stays bounded for long
trajectories) and diagonalised with ``numpy.linalg.eigh``. Percentiles are taken over all
pixels, or over a seeded random sample of ``max_samples`` pixels for very long series.
Pixels holding NaN/Inf are left out of the fit and drawn in
:data:`rdlab.viz.scaling.BAD_COLOR`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from rdlab.errors import ParameterError
from rdlab.viz.scaling import (
    BAD_COLOR,
    DEFAULT_PERCENTILES,
    colormap_lut,
    contrast_sigmoid,
    normalize,
)

Method = Literal["auto", "pca", "direct", "colormap"]

#: Components explaining less than this fraction of the variance are drawn black rather than
#: stretched to full range (which would paint numerical noise in vivid colours).
DEFAULT_NOISE_FLOOR = 1e-6

_CHUNK_PIXELS = 1 << 20


@dataclass(frozen=True, eq=False)
class PCAResult:
    """A fitted species → RGB mapping, reusable on other frames of the same series.

    Parameters
    ----------
    components : numpy.ndarray
        ``(k, n_species)`` rows are the unit principal directions, largest variance first
        (``k ≤ 3``). ``method="direct"`` uses the identity rows; ``"colormap"`` a single
        one-hot row for the chosen species.
    mean : numpy.ndarray
        ``(n_species,)`` the mean concentration vector subtracted before projecting (zeros
        for ``"direct"`` and ``"colormap"``).
    explained_variance_ratio : numpy.ndarray
        ``(k,)`` fraction of the total variance (over all species) along each component. For
        ``"direct"``/``"colormap"`` the fraction carried by each shown species.
    lo, hi : numpy.ndarray
        ``(k,)`` display range of each channel (the percentiles, fixed for the series).
    method : {"pca", "direct", "colormap"}
        How species map to colours.
    active : numpy.ndarray
        ``(k,)`` bool; inactive channels (below the noise floor, or flat) are black.
    species : int or None, optional
        Index of the species shown by ``"colormap"``; ``None`` otherwise.
    cmap : str, default "viridis"
        Colour map name used by ``"colormap"``.
    n_pixels : int, default 0
        Number of finite pixel vectors the fit used.
    """

    components: np.ndarray
    mean: np.ndarray
    explained_variance_ratio: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    method: str
    active: np.ndarray
    species: int | None = None
    cmap: str = "viridis"
    n_pixels: int = 0

    @property
    def n_species(self) -> int:
        """Number of species the mapping was fitted on."""
        return int(self.components.shape[1])

    def describe(self) -> str:
        """Return one line, e.g. ``"PCA→RGB, explained variance 0.71 / 0.18 / 0.06 (total 0.95)"``.

        Returns
        -------
        str
            The description.
        """
        evr = self.explained_variance_ratio
        parts = " / ".join(f"{v:.2f}" for v in evr)
        if self.method == "pca":
            return f"PCA→RGB, explained variance {parts} (total {evr.sum():.2f})"
        if self.method == "direct":
            return f"species→RGB, variance share {parts}"
        return f"species {self.species} colour-mapped ({self.cmap})"


def _as_pixel_stack(frames: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``(..., S, Y, X)`` as ``(L, S, Y, X)`` (view or copy) plus the leading shape."""
    arr = np.asarray(frames)
    if arr.ndim < 3:
        raise ParameterError(
            f"frames must have shape (..., species, y, x); got shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ParameterError(f"frames must be numeric, got dtype {arr.dtype}")
    lead = arr.shape[:-3]
    return arr.reshape((-1,) + arr.shape[-3:]), lead


def _chunks(n_lead: int, pixels_per_frame: int, chunk_pixels: int):
    """Yield ``(start, stop)`` ranges of leading indices holding about ``chunk_pixels`` pixels."""
    step = max(1, chunk_pixels // max(pixels_per_frame, 1))
    for i in range(0, n_lead, step):
        yield i, min(i + step, n_lead)


def _species_last(chunk: np.ndarray) -> np.ndarray:
    """Return ``(l, S, Y, X)`` as float ``(l·Y·X, S)``."""
    s = chunk.shape[1]
    return np.moveaxis(chunk, 1, -1).reshape(-1, s).astype(float, copy=False)


def _fit_covariance(
    stack: np.ndarray, chunk_pixels: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return the mean ``(S,)``, covariance ``(S, S)`` and count of the finite pixel vectors."""
    n_lead, s = stack.shape[:2]
    ppf = stack.shape[2] * stack.shape[3]
    shift: np.ndarray | None = None
    total = np.zeros(s)
    outer = np.zeros((s, s))
    count = 0
    for i, j in _chunks(n_lead, ppf, chunk_pixels):
        x = _species_last(stack[i:j])
        ok = np.isfinite(x).all(axis=1)
        if not ok.all():
            x = x[ok]
        if x.shape[0] == 0:
            continue
        if shift is None:
            shift = x.mean(axis=0)
        d = x - shift
        total += d.sum(axis=0)
        outer += d.T @ d
        count += x.shape[0]
    if count == 0 or shift is None:
        raise ParameterError("frames contain no finite pixel; nothing to fit")
    m = total / count
    cov = outer / count - np.outer(m, m)
    cov = 0.5 * (cov + cov.T)
    return shift + m, cov, count


def _sample_pixels(stack: np.ndarray, max_samples: int, seed: int) -> np.ndarray:
    """Return finite pixel vectors ``(n, S)``: all, or a seeded sample of ``max_samples``."""
    n_lead, _, ny, nx = stack.shape
    n_total = n_lead * ny * nx
    if n_total <= max_samples:
        x = _species_last(stack)
    else:
        rng = np.random.default_rng(seed)
        flat = np.sort(rng.integers(0, n_total, size=max_samples))
        li, rem = np.divmod(flat, ny * nx)
        yi, xi = np.divmod(rem, nx)
        x = np.asarray(stack[li, :, yi, xi], dtype=float)  # (n, S)
    ok = np.isfinite(x).all(axis=1)
    return x if ok.all() else x[ok]


def _channel_ranges(
    values: np.ndarray, percentiles: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-column percentiles of ``values (n, k)``: ``lo (k,)``, ``hi (k,)``."""
    lo_p, hi_p = percentiles
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise ParameterError(f"percentiles must satisfy 0 ≤ lo < hi ≤ 100, got {percentiles!r}")
    if values.shape[0] == 0:
        k = values.shape[1]
        return np.zeros(k), np.zeros(k)
    q = np.percentile(values, [lo_p, hi_p], axis=0)
    return q[0], q[1]


def _resolve_method(method: Method, n_species: int) -> str:
    """Return the method to use (``"auto"`` resolved by the number of species), checked."""
    if method == "auto":
        return "pca" if n_species > 3 else ("direct" if n_species == 3 else "colormap")
    if method not in ("pca", "direct", "colormap"):
        raise ParameterError(
            f"unknown method {method!r}; choose 'auto', 'pca', 'direct' or 'colormap'"
        )
    if method == "direct" and n_species > 3:
        raise ParameterError(
            f"method='direct' shows at most 3 species, got {n_species}; use 'pca'"
        )
    return method


def fit_pca_rgb(
    frames: np.ndarray,
    *,
    method: Method = "auto",
    species: int | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    noise_floor: float = DEFAULT_NOISE_FLOOR,
    cmap: str = "viridis",
    max_samples: int = 1_000_000,
    seed: int = 0,
    chunk_pixels: int = _CHUNK_PIXELS,
) -> PCAResult:
    """Fit the species → RGB mapping on a whole series.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(..., species, y, x)`` — e.g. a trajectory ``(time, batch, species, y, x)``; all
        leading axes are pooled, so colours are consistent across all of them.
    method : {"auto", "pca", "direct", "colormap"}
        ``"auto"`` (PCA for > 3 species, direct RGB for 3, colour map for ≤ 2), or force
        ``"pca"``, ``"direct"`` or ``"colormap"``.
    species : int or None, optional
        Species index for ``"colormap"``; default: the species with the largest variance over
        the series.
    percentiles : tuple of float, default DEFAULT_PERCENTILES
        Display range of each channel, in percent.
    noise_floor : float, default 1e-6
        Components (PCA) or species (direct) with a variance share below this are drawn
        black.
    cmap : str, default "viridis"
        Colour map for ``"colormap"``.
    max_samples : int, default 1_000_000
        At most this many pixels are used for the percentiles.
    seed : int, default 0
        Seed of that pixel sample.
    chunk_pixels : int, optional
        Pixels processed at a time (bounds memory).

    Returns
    -------
    PCAResult
        The mapping to pass to :func:`apply_pca_rgb`.

    Raises
    ------
    ParameterError
        For frames of another shape or without a finite pixel, an unknown method,
        ``"direct"`` with more than 3 species, a species index out of range, or bad
        percentiles.
    """
    stack, _ = _as_pixel_stack(frames)
    n_species = stack.shape[1]
    kind = _resolve_method(method, n_species)
    mean, cov, count = _fit_covariance(stack, chunk_pixels)
    var = np.clip(np.diag(cov), 0.0, None)
    total_var = float(var.sum())
    sample = _sample_pixels(stack, max_samples, seed)

    if kind == "pca":
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1]
        evals = np.clip(evals[order], 0.0, None)
        evecs = evecs[:, order]
        k = min(3, n_species)
        comps = evecs[:, :k].T.copy()
        # Deterministic signs: the largest-magnitude loading of each component is positive.
        big = np.argmax(np.abs(comps), axis=1)
        comps *= np.where(comps[np.arange(k), big] < 0, -1.0, 1.0)[:, None]
        total = float(evals.sum())
        evr = evals[:k] / total if total > 0 else np.zeros(k)
        proj = (sample - mean) @ comps.T
        lo, hi = _channel_ranges(proj, percentiles)
        return PCAResult(comps, mean, evr, lo, hi, "pca", _active(evr, lo, hi, noise_floor),
                         None, cmap, count)

    if kind == "direct":
        comps = np.eye(n_species)
        evr = var / total_var if total_var > 0 else np.zeros(n_species)
        lo, hi = _channel_ranges(sample, percentiles)
        return PCAResult(comps, np.zeros(n_species), evr, lo, hi, "direct",
                         _active(evr, lo, hi, noise_floor), None, cmap, count)

    # colormap
    if species is None:
        species = int(np.argmax(var))
    if not -n_species <= species < n_species:
        raise ParameterError(f"species index {species} out of range for {n_species} species")
    species = int(species) % n_species
    comps = np.zeros((1, n_species))
    comps[0, species] = 1.0
    evr = np.array([var[species] / total_var if total_var > 0 else 0.0])
    lo, hi = _channel_ranges(sample[:, [species]], percentiles)
    colormap_lut(cmap)  # validate the name now
    return PCAResult(comps, np.zeros(n_species), evr, lo, hi, "colormap",
                     np.ones(1, dtype=bool), species, cmap, count)


def _active(evr: np.ndarray, lo: np.ndarray, hi: np.ndarray, floor: float) -> np.ndarray:
    """Return which channels are shown: variance share ≥ ``floor`` and a non-flat range."""
    return (evr >= floor) & (hi > lo)


def apply_pca_rgb(
    frames: np.ndarray, result: PCAResult, *, chunk_pixels: int = _CHUNK_PIXELS
) -> np.ndarray:
    """Render frames with a fitted mapping.

    Any leading shape works, so a single frame ``(species, y, x)`` renders with the colours
    of the series the mapping was fitted on.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(..., species, y, x)``.
    result : PCAResult
        The mapping, from :func:`fit_pca_rgb`.
    chunk_pixels : int, optional
        Pixels processed at a time (bounds memory).

    Returns
    -------
    numpy.ndarray
        float32 RGB ``(..., y, x, 3)`` in [0, 1].

    Raises
    ------
    ParameterError
        For frames of another shape or another number of species than the mapping's.
    """
    stack, lead = _as_pixel_stack(frames)
    n_lead, n_species, ny, nx = stack.shape
    if n_species != result.n_species:
        raise ParameterError(
            f"frames have {n_species} species but the mapping was fitted on "
            f"{result.n_species}"
        )
    out = np.zeros((n_lead, ny, nx, 3), dtype=np.float32)
    lut = colormap_lut(result.cmap).astype(float) / 255.0 if result.method == "colormap" else None
    k = result.components.shape[0]
    # "direct" with < 3 species prepends zero channels: (0, 0, A) or (0, A, B).
    first = 3 - k if result.method == "direct" else 0
    for i, j in _chunks(n_lead, ny * nx, chunk_pixels):
        x = np.moveaxis(stack[i:j], 1, -1).astype(float, copy=False)  # (l, Y, X, S)
        bad = ~np.isfinite(x).all(axis=-1)
        if bad.any():
            x = np.where(bad[..., None], 0.0, x)
        proj = (x - result.mean) @ result.components.T  # (l, Y, X, k)
        if result.method == "colormap":
            u = np.clip(normalize(proj[..., 0], result.lo[0], result.hi[0]), 0.0, 1.0)
            idx = np.minimum((u * len(lut)).astype(np.intp), len(lut) - 1)
            rgb = lut[idx]
        else:
            rgb = np.zeros(proj.shape[:-1] + (3,))
            for c in range(k):
                if result.active[c]:
                    u = normalize(proj[..., c], result.lo[c], result.hi[c])
                    rgb[..., first + c] = contrast_sigmoid(u)
        if bad.any():
            rgb[bad] = BAD_COLOR
        out[i:j] = rgb
    return out.reshape(lead + (ny, nx, 3))


def pca_rgb(
    frames: np.ndarray,
    *,
    method: Method = "auto",
    species: int | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    noise_floor: float = DEFAULT_NOISE_FLOOR,
    cmap: str = "viridis",
    max_samples: int = 1_000_000,
    seed: int = 0,
) -> tuple[np.ndarray, PCAResult]:
    """Fit the mapping on the whole series and render it.

    ``result.explained_variance_ratio`` holds the variance share of the three components.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(..., species, y, x)``.
    method, species, percentiles, noise_floor, cmap, max_samples, seed : optional
        As in :func:`fit_pca_rgb`.

    Returns
    -------
    rgb : numpy.ndarray
        ``(..., y, x, 3)`` float32 in [0, 1].
    result : PCAResult
        The fitted mapping.

    Raises
    ------
    ParameterError
        As :func:`fit_pca_rgb`.
    """
    result = fit_pca_rgb(frames, method=method, species=species, percentiles=percentiles,
                         noise_floor=noise_floor, cmap=cmap, max_samples=max_samples,
                         seed=seed)
    return apply_pca_rgb(frames, result), result
