"""Visualisation of reaction-diffusion states: images, movies, montages and HTML reports.

Arrays follow the package convention: a state is ``(species, y, x)``, a batch
``(batch, species, y, x)``, a trajectory ``(time, batch, species, y, x)``; species names come
from ``ReactionNetwork.species``. Everything renders off-screen (Agg / Pillow).

* :func:`pca_rgb`, :func:`fit_pca_rgb`, :func:`apply_pca_rgb` — species → RGB (PCA for > 3
  species, Dense-RDN appendix A.2), fitted once per series so colours stay consistent.
* :func:`colorize` — the shared "what to show" logic (one species, RGB or PCA), uint8 out.
* :func:`render_frame`, :func:`save_png`, :func:`save_movie` — single frames and GIF/MP4.
* :func:`save_montage`, :func:`save_sweep_montage` — labelled grids of panels.
* :func:`save_time_series` — well-mixed concentrations against time.
* :class:`HtmlReport` — a static HTML page referencing images by relative path.
"""

from rdlab.viz.colorize import Colorized, colorize
from rdlab.viz.frames import (
    FFmpegNotFoundError,
    ffmpeg_available,
    render_frame,
    render_movie_frames,
    save_movie,
    save_png,
)
from rdlab.viz.montage import save_montage, save_sweep_montage
from rdlab.viz.pca_rgb import PCAResult, apply_pca_rgb, fit_pca_rgb, pca_rgb
from rdlab.viz.report import HtmlReport
from rdlab.viz.scaling import apply_colormap, contrast_sigmoid, to_uint8, upscale_nearest
from rdlab.viz.time_series import save_time_series

__all__ = [
    "Colorized",
    "FFmpegNotFoundError",
    "HtmlReport",
    "PCAResult",
    "apply_colormap",
    "apply_pca_rgb",
    "colorize",
    "contrast_sigmoid",
    "ffmpeg_available",
    "fit_pca_rgb",
    "pca_rgb",
    "render_frame",
    "render_movie_frames",
    "save_montage",
    "save_movie",
    "save_png",
    "save_sweep_montage",
    "save_time_series",
    "to_uint8",
    "upscale_nearest",
]
