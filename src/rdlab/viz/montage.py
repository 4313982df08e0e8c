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
    """Place ``rgb (n, h, w, 3)`` panels on a white canvas; panel ``order[r, c]`` (−1: none)
    goes to row ``r``, column ``c``. Returns the canvas and each panel's top-left corner
    ``(n, 2)`` in canvas pixels.
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

    Args:
        path: output image (PNG, or any format matplotlib writes).
        images: ``(n, y, x)`` single fields or ``(n, species, y, x)`` states.
        labels: ``n`` texts, one above each panel (``None``: no labels).
        ncols: panels per row (default ``ceil(sqrt(n))``); panels fill rows left to right.
        species_names, species_to_show, vmin, vmax, cmap, pca: what to show and how, as in
            :func:`rdlab.viz.frames.render_frame`.
        shared_scale: one colour scale for all panels (default); ``False`` scales each panel
            on its own (no colour bar then).
        title: figure title.
        upscale: integer panel enlargement (default: panels at least 96 pixels).
        colorbar: colour bar for a single species with a shared scale.
        dpi: output resolution.

    Returns
    -------
        ``path`` as a :class:`~pathlib.Path`.
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
    rgb, info = _colorize_panels(panels, species_names, species_to_show, vmin, vmax, cmap,
                                 shared_scale, pca)
    rgb = upscale_stack(rgb, _panel_factor(panels.shape[-2:], upscale))
    label_px = math.ceil(LABEL_FONTSIZE * dpi / 72 * 1.6) if labels is not None else 0
    order = np.full(nrows * ncols, -1)
    order[:n] = np.arange(n)
    canvas, corners = _mosaic(rgb, nrows, ncols, label_px, order.reshape(nrows, ncols))
    cbar = colorbar and info is not None and info.mode == "species"
    note = _scale_note(info)
    fig, ax = image_figure(canvas.shape[0], canvas.shape[1],
                           _margins(title, cbar, note, 0.15, 0.1), dpi)
    show_image(ax, canvas)
    if labels is not None:
        w = rgb.shape[2]
        for k, text in enumerate(labels):
            y0, x0 = corners[k]
            ax.text(x0 + w / 2 - 0.5, y0 - 1.5, str(text), ha="center", va="bottom",
                    fontsize=LABEL_FONTSIZE, clip_on=False)
    return _finish(fig, ax, info, cbar, title, note, path)


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

    Args:
        path: output image.
        data: ``(n_samples, species, y, x)`` or ``(n_samples, y, x)`` with
            ``n_samples = len(values_a) · len(values_b)``.
        coord_a_name, values_a: name and values of the slow parameter (rows, y axis).
        coord_b_name, values_b: name and values of the fast parameter (columns, x axis).
        origin: ``"upper"`` puts ``values_a[0]`` on the top row (table order); ``"lower"``
            on the bottom row (plot order, ``a`` increasing upwards).
        value_format: format of the tick labels.
        Other arguments: as in :func:`save_montage`.

    Returns
    -------
        ``path`` as a :class:`~pathlib.Path`.
    """
    panels = _as_panels(data)
    values_a = list(np.asarray(values_a).ravel())
    values_b = list(np.asarray(values_b).ravel())
    na, nb = len(values_a), len(values_b)
    if na * nb != panels.shape[0]:
        raise ParameterError(
            f"{panels.shape[0]} samples do not form a {na} × {nb} sweep "
            f"({coord_a_name} × {coord_b_name})"
        )
    if origin not in ("upper", "lower"):
        raise ParameterError(f"origin must be 'upper' or 'lower', got {origin!r}")
    rgb, info = _colorize_panels(panels, species_names, species_to_show, vmin, vmax, cmap,
                                 shared_scale, pca)
    rgb = upscale_stack(rgb, _panel_factor(panels.shape[-2:], upscale))
    order = np.arange(na * nb).reshape(na, nb)
    row_values = values_a
    if origin == "lower":
        order = order[::-1]
        row_values = values_a[::-1]
    canvas, _ = _mosaic(rgb, na, nb, 0, order)
    cbar = colorbar and info is not None and info.mode == "species"
    note = _scale_note(info)
    fig, ax = image_figure(canvas.shape[0], canvas.shape[1],
                           _margins(title, cbar, note, 0.85, 0.6), dpi)
    show_image(ax, canvas)
    ax.set_axis_on()
    for spine in ax.spines.values():
        spine.set_visible(False)
    h, w = rgb.shape[1:3]
    ax.set_xticks([c * (w + GAP_PX) + w / 2 - 0.5 for c in range(nb)])
    ax.set_xticklabels([_format_value(v, value_format) for v in values_b], fontsize=7,
                       rotation=45 if nb > 6 else 0, ha="right" if nb > 6 else "center")
    ax.set_yticks([r * (h + GAP_PX) + h / 2 - 0.5 for r in range(na)])
    ax.set_yticklabels([_format_value(v, value_format) for v in row_values], fontsize=7)
    ax.tick_params(length=2, pad=2)
    ax.set_xlabel(coord_b_name, fontsize=9)
    ax.set_ylabel(coord_a_name, fontsize=9)
    return _finish(fig, ax, info, cbar, title, note, path)
