"""Matplotlib figures whose image axes are exactly the image's size in pixels.

Images are drawn one data pixel per output pixel (after integer upscaling), so grids stay
crisp; margins for titles, tick labels and colour bars are given in inches. Figures are built
with :class:`matplotlib.figure.Figure` directly — no pyplot, no global state, no window — and
saved through the Agg canvas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

#: Width of a colour bar and the gap before it, inches.
CBAR_WIDTH_IN = 0.15
CBAR_GAP_IN = 0.12
#: Room to the right of a colour bar for its tick labels and label, inches.
CBAR_LABEL_IN = 1.0


@dataclass(frozen=True)
class Margins:
    """Space around the image axes, inches.

    Parameters
    ----------
    left, right, top, bottom : float, default 0.1
        The margins.
    """

    left: float = 0.1
    right: float = 0.1
    top: float = 0.1
    bottom: float = 0.1


def image_figure(
    height_px: int, width_px: int, margins: Margins | None = None, dpi: int = 100
) -> tuple[Figure, Axes]:
    """Return a figure holding one axes of exactly ``height_px × width_px`` pixels at ``dpi``.

    The axes is surrounded by ``margins`` and has no frame, ticks or labels.

    Parameters
    ----------
    height_px, width_px : int
        Size of the axes in pixels.
    margins : Margins or None, optional
        Space around the axes (default :class:`Margins`).
    dpi : int, default 100
        Resolution.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure.
    ax : matplotlib.axes.Axes
        The axes.
    """
    margins = margins or Margins()
    w_in = width_px / dpi
    h_in = height_px / dpi
    fig_w = w_in + margins.left + margins.right
    fig_h = h_in + margins.top + margins.bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes((margins.left / fig_w, margins.bottom / fig_h, w_in / fig_w, h_in / fig_h))
    ax.set_axis_off()
    return fig, ax


def show_image(ax: Axes, image: np.ndarray) -> None:
    """Draw an image with pixel-centred data coordinates.

    x runs from −0.5 to width − 0.5, y downwards.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes.
    image : numpy.ndarray
        uint8 RGB ``(y, x, 3)``.
    """
    ax.imshow(image, interpolation="nearest", origin="upper", aspect="equal")


def add_colorbar(
    fig: Figure, ax: Axes, vmin: float, vmax: float, cmap: str, label: str = ""
) -> None:
    """Add a vertical colour bar for ``Normalize(vmin, vmax)`` × ``cmap`` to the right of ``ax``.

    The figure must leave :data:`CBAR_GAP_IN` + :data:`CBAR_WIDTH_IN` + :data:`CBAR_LABEL_IN`
    inches there.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    ax : matplotlib.axes.Axes
        The image axes.
    vmin, vmax : float
        The colour range.
    cmap : str
        The colour map.
    label : str, default ""
        Label of the bar.
    """
    fig_w, _ = fig.get_size_inches()
    x0, y0, w, h = ax.get_position().bounds
    cax = fig.add_axes((x0 + w + CBAR_GAP_IN / fig_w, y0, CBAR_WIDTH_IN / fig_w, h))
    mappable = ScalarMappable(norm=Normalize(vmin=vmin, vmax=vmax), cmap=cmap)
    cbar = fig.colorbar(mappable, cax=cax)
    cbar.ax.tick_params(labelsize=8)
    if label:
        cbar.set_label(label, fontsize=9)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` (format from the suffix) at its own dpi, creating parent folders.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or Path
        Output file.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)
    return path
