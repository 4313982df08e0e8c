"""A time-lapse of one sample: a row of labelled frames and, optionally, the movie.

This is a thin composition of existing pieces: the colour mapping is fitted **once on the
whole series** (:func:`rdlab.viz.pca_rgb.fit_pca_rgb` — PCA→RGB for more than 3 species,
Dense-RDN appendix A.2; or one colour range for a single species), then the chosen frames are
laid out by :func:`rdlab.viz.montage.save_montage` with a ``"t = …"`` label each, and the
movie, if asked for, is written by :func:`rdlab.viz.frames.save_movie` with the same mapping,
so the panel and the movie have identical colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rdlab.errors import ParameterError
from rdlab.viz.colorize import SpeciesChoice, resolve_choice
from rdlab.viz.frames import save_movie
from rdlab.viz.montage import save_montage
from rdlab.viz.pca_rgb import PCAResult, fit_pca_rgb
from rdlab.viz.scaling import finite_min_max


def panel_indices(n_times: int, n_panels: int | None) -> np.ndarray:
    """Return the indices of ``n_panels`` frames evenly spread over ``n_times``.

    The first and last are included; all frames when ``n_panels`` is ``None`` or ≥
    ``n_times``.

    Parameters
    ----------
    n_times : int
        Number of frames.
    n_panels : int or None
        Number of panels, ≥ 1.

    Returns
    -------
    numpy.ndarray
        The frame indices.

    Raises
    ------
    ParameterError
        For ``n_panels`` that is not a positive integer.
    """
    if n_panels is None or n_panels >= n_times:
        return np.arange(n_times)
    if int(n_panels) != n_panels or n_panels < 1:
        raise ParameterError(f"n_panels must be a positive integer, got {n_panels!r}")
    if n_panels == 1:
        return np.array([n_times - 1])
    return np.unique(np.round(np.linspace(0, n_times - 1, int(n_panels))).astype(int))


def time_lapse_panel(
    frames: np.ndarray,
    times: Sequence[float] | np.ndarray,
    path: str | Path,
    *,
    n_panels: int | None = None,
    species_names: Sequence[str] | None = None,
    species_to_show: SpeciesChoice = None,
    time_format: str = "t = {:g}",
    title: str | None = None,
    movie_path: str | Path | None = None,
    fps: float = 5.0,
    upscale: int | None = None,
    pca: PCAResult | None = None,
    cmap: str = "viridis",
    dpi: int = 100,
) -> Path:
    """Save a row of frames of one trajectory, coloured consistently over the whole series.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(T, species, y, x)`` concentrations of one sample (or ``(T, y, x)``).
    times : sequence of float or numpy.ndarray
        ``(T,)`` time of each frame (e.g. seconds).
    path : str or Path
        Output image of the panel row.
    n_panels : int or None, optional
        Show this many frames, evenly spread (default: all ``T``).
    species_names : sequence of str or None, optional
        Names along the species axis (e.g. ``network.species``).
    species_to_show : None, str or int, optional
        ``None`` (PCA→RGB for > 3 species, RGB for 3, one colour-mapped species for ≤ 2), a
        species name or index, ``"pca"`` or ``"rgb"``.
    time_format : str, default "t = {:g}"
        Label of each panel, formatted with its time.
    title : str or None, optional
        Figure title.
    movie_path : str or Path or None, optional
        Also write the whole series as a movie (``.gif``, or ``.mp4`` with ffmpeg), every
        frame labelled, with the same colours.
    fps : float, default 5.0
        Movie frames per second.
    upscale : int or None, optional
        Integer enlargement of each frame (default: panels at least 96 pixels; the movie's
        longer side near 256 pixels).
    pca : PCAResult or None, optional
        A mapping fitted elsewhere (e.g. on several samples) to use instead of fitting on
        ``frames``.
    cmap : str, default "viridis"
        Colour map when a single species is shown.
    dpi : int, default 100
        Panel image resolution.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        For frames of another shape, a number of times other than of frames, or a
        ``time_format`` that cannot format a time.
    """
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise ParameterError(
            f"frames must have shape (T, species, y, x) or (T, y, x); got {np.shape(frames)}")
    t = np.asarray(times, dtype=float).ravel()
    if t.size != arr.shape[0]:
        raise ParameterError(f"{t.size} times given for {arr.shape[0]} frames")
    try:
        labels = [time_format.format(v) for v in t]
    except (ValueError, IndexError, KeyError) as exc:
        raise ParameterError(f"time_format {time_format!r} cannot format a time: {exc}") from None
    mode, species = resolve_choice(species_to_show, arr.shape[1], species_names, arr)
    vmin = vmax = None
    if mode == "species":
        assert species is not None
        vmin, vmax = finite_min_max(arr[:, species])
    elif pca is None:
        pca = fit_pca_rgb(arr, method="direct" if mode == "rgb" else "pca")
    show: SpeciesChoice = species if mode == "species" else mode
    idx = panel_indices(arr.shape[0], n_panels)
    out = save_montage(path, arr[idx], [labels[i] for i in idx], ncols=len(idx),
                       species_names=species_names, species_to_show=show, vmin=vmin,
                       vmax=vmax, cmap=cmap, title=title, upscale=upscale, pca=pca, dpi=dpi)
    if movie_path is not None:
        save_movie(movie_path, arr, species_names, show, fps=fps, vmin=vmin, vmax=vmax,
                   cmap=cmap, upscale=upscale, frame_labels=labels, pca=pca)
    return out
