"""Single frames and movies of a reaction-diffusion state.

* :func:`render_frame` — ``state (species, y, x)`` → uint8 RGB image.
* :func:`save_png` — a PNG with title and, for a single species, a colour bar.
* :func:`save_movie` — ``frames (time, species, y, x)`` → GIF (Pillow, always available) or
  MP4 (matplotlib's ``FFMpegWriter``, needs ``ffmpeg`` on the PATH).

What is shown follows :func:`rdlab.viz.colorize.colorize`: one species through a colour map,
3 species as RGB, more as PCA→RGB. A movie uses one colour scale for all its frames (fixed
``vmin``/``vmax`` or one PCA fit), so brightness never flickers. Small grids are enlarged by
an integer nearest-neighbour factor (a 64×64 grid becomes 256×256 pixels by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rdlab.errors import ParameterError, RdlabError
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
from rdlab.viz.scaling import (
    BAD_COLOR_U8,
    auto_upscale,
    colormap_lut,
    to_uint8,
    upscale_nearest,
    upscale_stack,
)


class FFmpegNotFoundError(RdlabError, RuntimeError):
    """MP4 output was asked for but no ``ffmpeg`` executable is available."""


def _as_state(state: np.ndarray) -> np.ndarray:
    """Return ``(y, x)`` as ``(1, y, x)``; ``(species, y, x)`` unchanged."""
    arr = np.asarray(state)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim != 3:
        raise ParameterError(f"a state must have shape (species, y, x) or (y, x); got {arr.shape}")
    return arr


def render_frame(
    state: np.ndarray,
    species_names: Sequence[str] | None = None,
    species_to_show: SpeciesChoice = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    upscale: int = 1,
    pca: PCAResult | None = None,
) -> np.ndarray:
    """Render one state to an image.

    Parameters
    ----------
    state : numpy.ndarray
        ``(species, y, x)`` concentrations (or a single field ``(y, x)``).
    species_names : sequence of str or None, optional
        Names along the species axis (e.g. ``network.species``).
    species_to_show : None, str or int, optional
        ``None`` (automatic), a species name or index, ``"pca"`` or ``"rgb"`` (see
        :mod:`rdlab.viz.colorize`).
    vmin, vmax : float or None, optional
        Fixed colour range for a single species (default: the frame's min/max).
    cmap : str, default "viridis"
        Colour map for a single species.
    upscale : int, default 1
        Integer nearest-neighbour enlargement.
    pca : PCAResult or None, optional
        A mapping fitted on a whole trajectory, so this frame gets the same colours.

    Returns
    -------
    numpy.ndarray
        uint8 RGB ``(y·upscale, x·upscale, 3)``.

    Raises
    ------
    ParameterError
        For a state of another shape or a bad ``species_to_show``.
    """
    c = colorize(_as_state(state), species_names, species_to_show, vmin=vmin, vmax=vmax,
                 cmap=cmap, pca=pca)
    return upscale_nearest(c.rgb, upscale)


ImageKind = Literal["auto", "image", "state", "field"]


def _classify(arr: np.ndarray, kind: ImageKind) -> str:
    """Return what ``arr`` is (``"image"``, ``"state"`` or ``"field"``), guessed or as ``kind``."""
    if kind != "auto":
        if kind not in ("image", "state", "field"):
            raise ParameterError(f"kind must be 'auto', 'image', 'state' or 'field'; got {kind!r}")
        return kind
    if arr.ndim == 2:
        return "field"
    if arr.ndim == 3 and arr.dtype == np.uint8 and arr.shape[-1] in (3, 4):
        return "image"
    if arr.ndim == 3:
        return "state"
    raise ParameterError(
        f"expected an image (y, x, 3) uint8, a state (species, y, x) or a field (y, x); "
        f"got shape {arr.shape}"
    )


def save_png(
    path: str | Path,
    image_or_state: np.ndarray,
    title: str | None = None,
    *,
    species_names: Sequence[str] | None = None,
    species_to_show: SpeciesChoice = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    upscale: int | None = None,
    colorbar: bool = True,
    pca: PCAResult | None = None,
    kind: ImageKind = "auto",
    dpi: int = 100,
) -> Path:
    """Save a PNG of an image, a state or a single field.

    Parameters
    ----------
    path : str or Path
        Output file (parent folders are created).
    image_or_state : numpy.ndarray
        ``(y, x, 3|4)`` uint8 image (shown as is), ``(species, y, x)`` state, or ``(y, x)``
        field of one species. ``kind`` overrides the guess (``"image"`` also takes float RGB
        in [0, 1]).
    title : str or None, optional
        Drawn above the image.
    species_names, species_to_show, vmin, vmax, cmap, pca : optional
        As in :func:`render_frame`.
    upscale : int or None, optional
        Integer enlargement (default: longer side near 256 pixels).
    colorbar : bool, default True
        Add a colour bar when a single species is shown.
    kind : {"auto", "image", "state", "field"}
        What ``image_or_state`` is (default: guessed from its shape).
    dpi : int, default 100
        Output resolution; the image itself is drawn one pixel per (upscaled) cell.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        For an array of no recognised shape, an unknown ``kind``, or a bad
        ``species_to_show``.
    """
    arr = np.asarray(image_or_state)
    what = _classify(arr, kind)
    info: Colorized | None = None
    if what == "image":
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
            raise ParameterError(f"an image must have shape (y, x, 3|4); got {arr.shape}")
        rgb = arr if arr.dtype == np.uint8 else to_uint8(arr)
    else:
        info = colorize(_as_state(arr), species_names, species_to_show, vmin=vmin, vmax=vmax,
                        cmap=cmap, pca=pca)
        rgb = info.rgb
    factor = auto_upscale(rgb.shape[:2]) if upscale is None else upscale
    rgb = upscale_nearest(rgb, factor)
    with_cbar = colorbar and info is not None and info.mode == "species"
    margins = Margins(
        left=0.1,
        right=(CBAR_GAP_IN + CBAR_WIDTH_IN + CBAR_LABEL_IN) if with_cbar else 0.1,
        top=0.4 if title else 0.1,
        bottom=0.1,
    )
    fig, ax = image_figure(rgb.shape[0], rgb.shape[1], margins, dpi)
    show_image(ax, rgb)
    if title:
        ax.set_title(title, fontsize=10)
    if with_cbar:
        assert info is not None and info.vmin is not None and info.vmax is not None
        add_colorbar(fig, ax, info.vmin, info.vmax, info.cmap, info.label)
    return save_figure(fig, path)


def _as_frames(frames: np.ndarray) -> np.ndarray:
    """Return ``(time, y, x)`` as ``(time, 1, y, x)``; ``(time, species, y, x)`` unchanged."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 5:
        raise ParameterError(
            f"frames have shape {arr.shape}, (time, batch, species, y, x)? A movie shows one "
            f"sample: pass frames[:, i]"
        )
    if arr.ndim != 4:
        raise ParameterError(
            f"frames must have shape (time, species, y, x) or (time, y, x); got {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ParameterError("frames hold no time point")
    return arr


def render_movie_frames(
    frames: np.ndarray,
    species_names: Sequence[str] | None = None,
    species_to_show: SpeciesChoice = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    upscale: int | None = None,
    frame_labels: Sequence[str] | None = None,
    pca: PCAResult | None = None,
) -> tuple[np.ndarray, Colorized]:
    """Render frames with one colour scale.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(time, species, y, x)`` or ``(time, y, x)``.
    species_names, species_to_show, vmin, vmax, cmap, pca : optional
        As in :func:`render_frame`; the scale is the same for every frame.
    upscale : int or None, optional
        Integer enlargement ``k`` (default: longer side near 256 pixels).
    frame_labels : sequence of str or None, optional
        Text per frame, written in the top-left corner.

    Returns
    -------
    rgb : numpy.ndarray
        uint8 RGB ``(time, y·k, x·k, 3)`` with each ``frame_labels[t]`` written in.
    scale : Colorized
        The scale (whose ``rgb`` is the un-enlarged, unlabelled stack).

    Raises
    ------
    ParameterError
        For frames of another shape, or a number of labels other than of frames.
    """
    arr = _as_frames(frames)
    if frame_labels is not None and len(frame_labels) != arr.shape[0]:
        raise ParameterError(
            f"{len(frame_labels)} frame labels given for {arr.shape[0]} frames"
        )
    info = colorize(arr, species_names, species_to_show, vmin=vmin, vmax=vmax, cmap=cmap,
                    pca=pca)
    factor = auto_upscale(arr.shape[-2:]) if upscale is None else upscale
    rgb = upscale_stack(info.rgb, factor)
    if frame_labels is not None:
        rgb = rgb.copy()
        font = _font(max(10, rgb.shape[1] // 20))
        for t, text in enumerate(frame_labels):
            rgb[t] = _draw_label(rgb[t], str(text), font)
    return rgb, info


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Return Pillow's default font at ``size`` (a fixed bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _draw_label(image: np.ndarray, text: str, font) -> np.ndarray:
    """Return ``image`` with ``text`` written in its top-left corner, white on a black outline."""
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    pad = max(2, image.shape[0] // 64)
    try:
        draw.text((pad, pad), text, font=font, fill=(255, 255, 255), stroke_width=1,
                  stroke_fill=(0, 0, 0))
    except (TypeError, ValueError, OSError):
        draw.text((pad, pad), text, font=font, fill=(255, 255, 255))
    return np.asarray(im)


_SPECIAL_COLOURS = [(0, 0, 0), (255, 255, 255), BAD_COLOR_U8]


def _gif_palette(rgb: np.ndarray, info: Colorized) -> Image.Image:
    """Return one palette for every frame, so colours never shift between frames.

    The colour map's own colours for a single species, else a median-cut palette of frames
    sampled over the movie; plus black, white (labels) and the bad-value colour.
    """
    n = 256 - len(_SPECIAL_COLOURS)
    if info.mode == "species":
        colours = [tuple(int(v) for v in c) for c in colormap_lut(info.cmap, n)]
    else:
        t_idx = np.unique(np.linspace(0, rgb.shape[0] - 1, min(rgb.shape[0], 16)).astype(int))
        sample = rgb[t_idx].reshape(-1, 3)
        if sample.shape[0] > 500_000:
            sample = sample[:: -(-sample.shape[0] // 500_000)]
        q = Image.fromarray(np.ascontiguousarray(sample[:, None, :])).quantize(
            colors=n, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        flat = q.getpalette() or []
        used = sorted(i for _, i in (q.getcolors(256) or []))
        colours = [tuple(flat[3 * i:3 * i + 3]) for i in used if 3 * i + 3 <= len(flat)]
    colours = colours + _SPECIAL_COLOURS
    pal = Image.new("P", (1, 1))
    pal.putpalette([v for c in colours for v in c] + [0] * (3 * (256 - len(colours))))
    return pal


def _write_gif(path: Path, rgb: np.ndarray, info: Colorized, fps: float, loop: int) -> None:
    """Write ``rgb`` frames as a GIF with one palette, at ``fps``."""
    palette = _gif_palette(rgb, info)
    images = [
        Image.fromarray(np.ascontiguousarray(f)).quantize(palette=palette,
                                                          dither=Image.Dither.NONE)
        for f in rgb
    ]
    duration = max(10, int(round(1000.0 / fps)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=loop,
                   optimize=False)


def ffmpeg_available() -> bool:
    """Return whether matplotlib finds an ``ffmpeg`` executable for MP4 output.

    Returns
    -------
    bool
        True when MP4 can be written.
    """
    from matplotlib.animation import FFMpegWriter

    return bool(FFMpegWriter.isAvailable())


def _require_ffmpeg(path: Path) -> None:
    """Raise :class:`FFmpegNotFoundError` naming ``path`` when ``ffmpeg`` is missing."""
    if not ffmpeg_available():
        import matplotlib

        exe = matplotlib.rcParams["animation.ffmpeg_path"]
        raise FFmpegNotFoundError(
            f"cannot write {path.name}: MP4 needs the ffmpeg executable, which was not found "
            f"(matplotlib rcParams['animation.ffmpeg_path'] = {exe!r}); "
            f"save as .gif instead, which needs only Pillow"
        )


def _write_mp4(path: Path, rgb: np.ndarray, fps: float, dpi: int = 100) -> None:
    """Write ``rgb`` frames as an H.264 MP4 at ``fps`` (odd sizes padded to even)."""
    _require_ffmpeg(path)
    from matplotlib.animation import FFMpegWriter

    # H.264 with yuv420p needs even dimensions: pad by repeating the last row/column.
    pad_y, pad_x = rgb.shape[1] % 2, rgb.shape[2] % 2
    if pad_y or pad_x:
        rgb = np.pad(rgb, ((0, 0), (0, pad_y), (0, pad_x), (0, 0)), mode="edge")
    fig, ax = image_figure(rgb.shape[1], rgb.shape[2], Margins(0, 0, 0, 0), dpi)
    im = ax.imshow(rgb[0], interpolation="nearest", origin="upper", aspect="equal")
    writer = FFMpegWriter(fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"])
    with writer.saving(fig, str(path), dpi):
        for frame in rgb:
            im.set_data(frame)
            writer.grab_frame()


def save_movie(
    path: str | Path,
    frames: np.ndarray,
    species_names: Sequence[str] | None = None,
    species_to_show: SpeciesChoice = None,
    *,
    fps: float = 10,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    upscale: int | None = None,
    frame_labels: Sequence[str] | None = None,
    pca: PCAResult | None = None,
    loop: int = 0,
) -> Path:
    """Save a movie of one sample's trajectory.

    Pillow merges *identical* consecutive frames of a GIF into one longer frame, so a movie
    that reaches a steady state may hold fewer frames than ``frames`` (the playing time is
    unchanged).

    Parameters
    ----------
    path : str or Path
        ``.gif`` (written with Pillow) or ``.mp4`` (matplotlib's ``FFMpegWriter``).
    frames : numpy.ndarray
        ``(time, species, y, x)`` or ``(time, y, x)``; for a trajectory
        ``(time, batch, species, y, x)`` pass ``traj[:, i]``.
    species_names, species_to_show, vmin, vmax, cmap, pca : optional
        As in :func:`render_frame`; the scale (``vmin``/``vmax`` default: min/max over all
        frames, or one PCA fit) is the same for every frame.
    fps : float, default 10
        Frames per second, > 0.
    upscale : int or None, optional
        Integer enlargement (default: longer side near 256 pixels).
    frame_labels : sequence of str or None, optional
        Text per frame (e.g. ``f"t = {t:g}"``), top-left.
    loop : int, default 0
        GIF loop count (0 = forever).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        For another file format, ``fps`` ≤ 0, or bad frames or labels.
    FFmpegNotFoundError
        For ``.mp4`` when ``ffmpeg`` is missing.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ParameterError(f"movie format {path.suffix!r} not supported; use .gif or .mp4")
    if not (np.isfinite(fps) and fps > 0):
        raise ParameterError(f"fps must be positive, got {fps!r}")
    if suffix == ".mp4":
        _require_ffmpeg(path)  # fail before any rendering work
    rgb, info = render_movie_frames(
        frames, species_names, species_to_show, vmin=vmin, vmax=vmax, cmap=cmap,
        upscale=upscale, frame_labels=frame_labels, pca=pca,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        _write_gif(path, rgb, info, fps, loop)
    else:
        _write_mp4(path, rgb, fps)
    return path
