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
* :func:`save_phase_map`, :func:`class_colors` — a (k, f) parameter scan coloured by class
  (paper Fig. 6); :func:`save_confusion_matrix`, :func:`save_history` (training curves),
  :func:`save_class_montage` (the patterns of one class), :func:`pattern_rgb`.
* :func:`write_explorer` — a self-contained interactive HTML phase map (hover a cell: its
  pattern, k, f and class probabilities).
"""

from rdlab.viz.classify_explorer import write_explorer
from rdlab.viz.classify_figures import (
    class_colors,
    confusion_matrix_figure,
    history_figure,
    pattern_rgb,
    phase_map_figure,
    save_class_montage,
    save_confusion_matrix,
    save_history,
    save_phase_map,
)
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
    "class_colors",
    "colorize",
    "confusion_matrix_figure",
    "contrast_sigmoid",
    "ffmpeg_available",
    "fit_pca_rgb",
    "history_figure",
    "pattern_rgb",
    "pca_rgb",
    "phase_map_figure",
    "render_frame",
    "render_movie_frames",
    "save_class_montage",
    "save_confusion_matrix",
    "save_history",
    "save_montage",
    "save_movie",
    "save_phase_map",
    "save_png",
    "save_sweep_montage",
    "save_time_series",
    "to_uint8",
    "upscale_nearest",
    "write_explorer",
]
