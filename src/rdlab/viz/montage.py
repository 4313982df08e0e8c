"""Labelled grids of panels: one image per sample of a batch or a parameter sweep.

The panels are assembled into one mosaic array with NumPy and drawn as a single image, so a
montage of 63 panels of 128×128 takes well under a second or two (one ``imshow``, no
per-panel axes). All panels share one colour scale by default (one ``vmin``/``vmax``, or one
PCA fit over every panel), so colours can be compared across panels.

* :func:`save_montage` — panels in reading order with a text label above each.
* :func:`save_sweep_montage` — a 2-parameter Cartesian sweep: rows are the first (slowest)
  parameter, columns the second, with their values as tick labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from rdlab.errors import ParameterError
from rdlab.viz.colorize import Colorized, SpeciesChoice, colorize
from rdlab.viz.layout import (
    CBAR_GAP_IN,
    CBAR_LABEL_IN,
    CBAR_WIDTH_IN,
    Margins,
    add_colorbar,
    image_figure,
    save_figure,
    show_image,
)
from rdlab.viz.pca_rgb import PCAResult
from rdlab.viz.scaling import upscale_stack

#: Panels smaller than this (longer side, pixels) are enlarged by an integer factor.
MIN_PANEL_PX = 96
#: White space between panels, pixels.
GAP_PX = 4
#: Font size of panel labels, points.
LABEL_FONTSIZE = 7


def _as_panels(images: np.ndarray) -> np.ndarray:
    """``(n, y, x)`` → ``(n, 1, y, x)``; ``(n, species, y, x)`` unchanged."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ParameterError(
            f"panels must have shape (n, y, x) or (n, species, y, x); got {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ParameterError("no panel to draw")
    return arr


def _colorize_panels(
    panels: np.ndarray,
    species_names: Sequence[str] | None,
    species_to_show: SpeciesChoice,
    vmin: float | None,
    vmax: float | None,
    cmap: str,
    shared_scale: bool,
    pca: PCAResult | None,
) -> tuple[np.ndarray, Colorized | None]:
    """uint8 ``(n, y, x, 3)`` and the shared scale (``None`` when each panel has its own)."""
    if shared_scale:
        info = colorize(panels, species_names, species_to_show, vmin=vmin, vmax=vmax,
                        cmap=cmap, pca=pca)
        return info.rgb, info
    rgb = np.stack([
        colorize(p, species_names, species_to_show, vmin=vmin, vmax=vmax, cmap=cmap,
                 pca=pca).rgb
        for p in panels
    ])
    return rgb, None


def _mosaic(
    rgb: np.ndarray, nrows: int, ncols: int, label_px: int, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Place ``rgb (n, h, w, 3)`` panels on a white canvas.

    Panel ``order[r, c]`` (−1: none) goes to row ``r``, column ``c``. Returns the canvas and
    each panel's top-left corner ``(n, 2)`` in canvas pixels.
    """
    n, h, w, _ = rgb.shape
    H = nrows * (label_px + h) + (nrows - 1) * GAP_PX
    W = ncols * w + (ncols - 1) * GAP_PX
    canvas = np.full((H, W, 3), 255, dtype=np.uint8)
    corners = np.zeros((n, 2), dtype=int)
    for r in range(nrows):
        for c in range(ncols):
            k = order[r, c]
            if k < 0:
                continue
            y0 = r * (label_px + h + GAP_PX) + label_px
            x0 = c * (w + GAP_PX)
            canvas[y0:y0 + h, x0:x0 + w] = rgb[k]
            corners[k] = (y0, x0)
    return canvas, corners


def _panel_factor(shape: tuple[int, int], upscale: int | None) -> int:
    if upscale is not None:
        return upscale
    return max(1, math.ceil(MIN_PANEL_PX / max(shape[0], shape[1], 1)))


def _scale_note(info: Colorized | None) -> str:
    if info is not None and info.pca is not None:
        return info.pca.describe()
    return ""


def _margins(title: str | None, cbar: bool, note: str, left: float, bottom: float) -> Margins:
    return Margins(
        left=left,
        right=(CBAR_GAP_IN + CBAR_WIDTH_IN + CBAR_LABEL_IN) if cbar else 0.15,
        top=0.45 if title else 0.1,
        bottom=bottom + (0.25 if note else 0.0),
    )


def _finish(fig, ax, info: Colorized | None, cbar: bool, title: str | None, note: str,
            path: str | Path) -> Path:
    if title:
        fig.suptitle(title, fontsize=11, y=1.0 - 0.08 / fig.get_size_inches()[1], va="top")
    if cbar and info is not None and info.vmin is not None and info.vmax is not None:
        add_colorbar(fig, ax, info.vmin, info.vmax, info.cmap, info.label)
    if note:
        fig.text(0.01, 0.06 / fig.get_size_inches()[1], note, fontsize=7, va="bottom",
                 ha="left", color="0.3")
    return save_figure(fig, path)


def _panel_rgb(
    panels: np.ndarray,
    upscale: int | None,
    species_names: Sequence[str] | None,
    species_to_show: SpeciesChoice,
    vmin: float | None,
    vmax: float | None,
    cmap: str,
    shared_scale: bool,
    pca: PCAResult | None,
) -> tuple[np.ndarray, Colorized | None]:
    """Return the panels coloured and enlarged, and the shared scale if there is one."""
    rgb, info = _colorize_panels(panels, species_names, species_to_show, vmin, vmax, cmap,
                                 shared_scale, pca)
    return upscale_stack(rgb, _panel_factor(panels.shape[-2:], upscale)), info


def _canvas_figure(canvas: np.ndarray, info: Colorized | None, colorbar: bool,
                   title: str | None, left: float, bottom: float, dpi: int):
    """Draw ``canvas`` in a figure with room for title, colour bar and scale note.

    Returns ``(fig, ax, cbar, note)``: whether a colour bar is drawn, and the note's text.
    """
    cbar = colorbar and info is not None and info.mode == "species"
    note = _scale_note(info)
    fig, ax = image_figure(canvas.shape[0], canvas.shape[1],
                           _margins(title, cbar, note, left, bottom), dpi)
    show_image(ax, canvas)
    return fig, ax, cbar, note


def save_montage(
    path: str | Path,
    images: np.ndarray,
    labels: Sequence[str] | None = None,
    ncols: int | None = None,
    *,
    species_names: Sequence[str] | None = None,
    species_to_show: SpeciesChoice = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    shared_scale: bool = True,
    title: str | None = None,
    upscale: int | None = None,
    colorbar: bool = True,
    pca: PCAResult | None = None,
    dpi: int = 100,
) -> Path:
    """Save a grid of labelled panels.

    Parameters
    ----------
    path : str or Path
        Output image (PNG, or any format matplotlib writes).
    images : numpy.ndarray
        ``(n, y, x)`` single fields or ``(n, species, y, x)`` states.
    labels : sequence of str or None, optional
        ``n`` texts, one above each panel (``None``: no labels).
    ncols : int or None, optional
        Panels per row (default ``ceil(sqrt(n))``); panels fill rows left to right.
    species_names, species_to_show, vmin, vmax, cmap, pca : optional
        What to show and how, as in :func:`rdlab.viz.frames.render_frame`.
    shared_scale : bool, optional
        One colour scale for all panels (default); ``False`` scales each panel on its own
        (no colour bar then).
    title : str or None, optional
        Figure title.
    upscale : int or None, optional
        Integer panel enlargement (default: panels at least 96 pixels).
    colorbar : bool, optional
        Colour bar for a single species with a shared scale (default ``True``).
    dpi : int, optional
        Output resolution (default 100).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        Badly shaped or no images, a label count other than ``n``, or a non-positive
        ``ncols``.
    """
    panels = _as_panels(images)
    n = panels.shape[0]
    if labels is not None and len(labels) != n:
        raise ParameterError(f"{len(labels)} labels given for {n} panels")
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if int(ncols) != ncols or ncols < 1:
        raise ParameterError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(int(ncols), n)
    nrows = math.ceil(n / ncols)
    rgb, info = _panel_rgb(panels, upscale, species_names, species_to_show, vmin, vmax, cmap,
                           shared_scale, pca)
    label_px = math.ceil(LABEL_FONTSIZE * dpi / 72 * 1.6) if labels is not None else 0
    order = np.full(nrows * ncols, -1)
    order[:n] = np.arange(n)
    canvas, corners = _mosaic(rgb, nrows, ncols, label_px, order.reshape(nrows, ncols))
    fig, ax, cbar, note = _canvas_figure(canvas, info, colorbar, title, 0.15, 0.1, dpi)
    if labels is not None:
        _label_panels(ax, labels, corners, rgb.shape[2])
    return _finish(fig, ax, info, cbar, title, note, path)


def _label_panels(ax, labels: Sequence[str], corners: np.ndarray, w: int) -> None:
    """Write each panel's label centred above it (panel width ``w`` pixels)."""
    for k, text in enumerate(labels):
        y0, x0 = corners[k]
        ax.text(x0 + w / 2 - 0.5, y0 - 1.5, str(text), ha="center", va="bottom",
                fontsize=LABEL_FONTSIZE, clip_on=False)


def _format_value(v, fmt: str) -> str:
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def save_sweep_montage(
    path: str | Path,
    data: np.ndarray,
    coord_a_name: str,
    values_a: Sequence[float] | np.ndarray,
    coord_b_name: str,
    values_b: Sequence[float] | np.ndarray,
    *,
    species_names: Sequence[str] | None = None,
    species_to_show: SpeciesChoice = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    shared_scale: bool = True,
    title: str | None = None,
    upscale: int | None = None,
    colorbar: bool = True,
    origin: Literal["upper", "lower"] = "upper",
    value_format: str = "{:.4g}",
    pca: PCAResult | None = None,
    dpi: int = 100,
) -> Path:
    """Save the final states of a 2-parameter Cartesian sweep as a grid.

    Sample ``i·len(values_b) + j`` has ``a = values_a[i]`` and ``b = values_b[j]`` (the first
    parameter varies slowest, the layout of :meth:`rdlab.system.System.sweep` with ``a``
    named first). Row ``i`` shows ``a = values_a[i]``, column ``j`` shows
    ``b = values_b[j]``; the values label the axes.

    Parameters
    ----------
    path : str or Path
        Output image.
    data : numpy.ndarray
        ``(n_samples, species, y, x)`` or ``(n_samples, y, x)`` with
        ``n_samples = len(values_a) · len(values_b)``.
    coord_a_name, values_a : str, array_like
        Name and values of the slow parameter (rows, y axis).
    coord_b_name, values_b : str, array_like
        Name and values of the fast parameter (columns, x axis).
    origin : {"upper", "lower"}, optional
        ``"upper"`` (default) puts ``values_a[0]`` on the top row (table order); ``"lower"``
        on the bottom row (plot order, ``a`` increasing upwards).
    value_format : str, optional
        Format of the tick labels (default ``"{:.4g}"``).
    species_names, species_to_show, vmin, vmax, cmap, shared_scale : optional
        As in :func:`save_montage`.
    title, upscale, colorbar, pca, dpi : optional
        As in :func:`save_montage`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        Badly shaped data, a sample count other than ``len(values_a) · len(values_b)``, or
        an unknown ``origin``.
    """
    panels = _as_panels(data)
    values_a, values_b = _sweep_values(panels.shape[0], values_a, values_b, coord_a_name,
                                       coord_b_name, origin)
    na, nb = len(values_a), len(values_b)
    rgb, info = _panel_rgb(panels, upscale, species_names, species_to_show, vmin, vmax, cmap,
                           shared_scale, pca)
    order = np.arange(na * nb).reshape(na, nb)
    row_values = values_a[::-1] if origin == "lower" else values_a
    canvas, _ = _mosaic(rgb, na, nb, 0, order[::-1] if origin == "lower" else order)
    fig, ax, cbar, note = _canvas_figure(canvas, info, colorbar, title, 0.85, 0.6, dpi)
    _sweep_axes(ax, rgb.shape[1:3], [_format_value(v, value_format) for v in row_values],
                [_format_value(v, value_format) for v in values_b], coord_a_name,
                coord_b_name)
    return _finish(fig, ax, info, cbar, title, note, path)


def _sweep_values(n: int, values_a: Sequence[float] | np.ndarray,
                  values_b: Sequence[float] | np.ndarray, coord_a_name: str,
                  coord_b_name: str, origin: str) -> tuple[list, list]:
    """Return the sweep's values as lists, checked to form ``n`` samples, and ``origin``."""
    values_a = list(np.asarray(values_a).ravel())
    values_b = list(np.asarray(values_b).ravel())
    na, nb = len(values_a), len(values_b)
    if na * nb != n:
        raise ParameterError(
            f"{n} samples do not form a {na} × {nb} sweep ({coord_a_name} × {coord_b_name})"
        )
    if origin not in ("upper", "lower"):
        raise ParameterError(f"origin must be 'upper' or 'lower', got {origin!r}")
    return values_a, values_b


def _sweep_axes(ax, panel_hw: tuple[int, int], row_labels: list[str], col_labels: list[str],
                row_name: str, col_name: str) -> None:
    """Label the sweep's rows and columns with their parameter values and names."""
    ax.set_axis_on()
    for spine in ax.spines.values():
        spine.set_visible(False)
    h, w = panel_hw
    na, nb = len(row_labels), len(col_labels)
    ax.set_xticks([c * (w + GAP_PX) + w / 2 - 0.5 for c in range(nb)])
    ax.set_xticklabels(col_labels, fontsize=7,
                       rotation=45 if nb > 6 else 0, ha="right" if nb > 6 else "center")
    ax.set_yticks([r * (h + GAP_PX) + h / 2 - 0.5 for r in range(na)])
    ax.set_yticklabels(row_labels, fontsize=7)
    ax.tick_params(length=2, pad=2)
    ax.set_xlabel(col_name, fontsize=9)
    ax.set_ylabel(row_name, fontsize=9)
