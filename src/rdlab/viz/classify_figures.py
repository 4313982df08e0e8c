"""Pictures of a parameter scan and of a classifier.

The (k, f) phase map, confusion matrices, training curves and montages of the patterns
assigned to one class.

A scan is ``n`` points ``(k_i, f_i)`` of the Gray–Scott model, each with a predicted class
index ``labels[i]`` into ``classes`` (−1: unclassified) and optionally a row of class
probabilities. Class symbols are short strings such as the Greek letters ``"α"`` … ``"ν"``
plus ``"L"`` and ``"H"`` for the homogeneous low / high states; every figure colours a class
with :func:`class_colors`, so the same class has the same colour in every picture (and in
the HTML explorer of :mod:`rdlab.viz.classify_explorer`).

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot) and written with
:func:`rdlab.viz.layout.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from rdlab.errors import ParameterError
from rdlab.viz.classify_map_inputs import (
    check_classes,
    check_coords,
    check_labels,
    check_positive_ints,
    check_probabilities,
)
from rdlab.viz.layout import Margins, image_figure, save_figure, show_image
from rdlab.viz.scaling import BAD_COLOR_U8, to_uint8, upscale_stack

#: The distinguishable colours, RGB uint8, given in order to the classes other than L and H:
#: matplotlib's ``tab20`` with its two greys removed, the saturated half first.
PALETTE: np.ndarray = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207),
        (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
        (196, 156, 148), (247, 182, 210), (219, 219, 141), (158, 218, 229),
    ],
    dtype=np.uint8,
)
PALETTE.flags.writeable = False
#: Colour of the homogeneous low state ``"L"`` (dark grey), RGB uint8.
LOW_COLOR: tuple[int, int, int] = (77, 77, 77)
#: Colour of the homogeneous high state ``"H"`` (light grey), RGB uint8.
HIGH_COLOR: tuple[int, int, int] = (191, 191, 191)
#: Fill of unclassified points (label −1), RGB uint8; they are also hatched in figures.
UNCLASSIFIED_COLOR: tuple[int, int, int] = (255, 255, 255)
#: Legend text of unclassified points.
UNCLASSIFIED_NAME = "unclassified"


# --------------------------------------------------------------------------------------------
# Colours and input checks (shared with rdlab.viz.classify_explorer)
# --------------------------------------------------------------------------------------------


def _extra_colors(n: int) -> np.ndarray:
    """Return ``n`` colours beyond :data:`PALETTE`, evenly spaced hues, uint8 ``(n, 3)``."""
    from matplotlib.colors import hsv_to_rgb

    golden = 0.618033988749895
    hues = (0.05 + golden * np.arange(n)) % 1.0
    sat = np.where(np.arange(n) % 2 == 0, 0.85, 0.55)
    val = np.where(np.arange(n) % 3 == 2, 0.65, 0.9)
    return to_uint8(hsv_to_rgb(np.stack([hues, sat, val], axis=1)))


def class_colors(classes: Sequence[str]) -> np.ndarray:
    """Return the fixed display colours of ``classes``.

    ``"L"`` (low homogeneous state) is dark grey, ``"H"`` (high) light grey (case-insensitive);
    every other class takes the next colour of :data:`PALETTE` (``tab20`` order without its
    greys) in the order given, and beyond 18 such classes evenly spread hues. The colour of a
    class therefore depends only on its position in ``classes``: pass the model's full class
    list, not only the classes present, to keep colours consistent across pictures.

    Parameters
    ----------
    classes : sequence of str
        The class symbols.

    Returns
    -------
    numpy.ndarray
        uint8 RGB ``(len(classes), 3)``.

    Raises
    ------
    ParameterError
        For a string, an empty list or repeated symbols.
    """
    names = check_classes(classes)
    out = np.zeros((len(names), 3), dtype=np.uint8)
    others = [i for i, c in enumerate(names) if c.strip().upper() not in ("L", "H")]
    extra = _extra_colors(max(0, len(others) - len(PALETTE)))
    for j, i in enumerate(others):
        out[i] = PALETTE[j] if j < len(PALETTE) else extra[j - len(PALETTE)]
    for i, c in enumerate(names):
        if c.strip().upper() == "L":
            out[i] = LOW_COLOR
        elif c.strip().upper() == "H":
            out[i] = HIGH_COLOR
    return out


def _min_spacing(values: np.ndarray) -> float | None:
    """Return the smallest positive spacing of the distinct ``values``, ignoring jitter.

    Differences below 1e-6 of the range (as from ``np.arange`` endpoints) are ignored;
    ``None`` when all values coincide.
    """
    u = np.unique(values)
    if u.size < 2:
        return None
    span = float(u[-1] - u[0])
    d = np.diff(u)
    d = d[d > 1e-6 * span]
    return float(d.min()) if d.size else None


def cell_size(k: np.ndarray, f: np.ndarray, dk: float | None = None, df: float | None = None,
              ) -> tuple[float, float]:
    """Return the width ``dk`` and height ``df`` of a phase-map cell (units of ``k``, ``f``).

    Parameters
    ----------
    k, f : numpy.ndarray
        ``(n,)`` coordinates of the points.
    dk, df : float or None, optional
        Values given are checked (finite, > 0); missing ones are the smallest positive
        spacing of the distinct values of that axis, or of the other axis when all points
        share one value, or 1e-3 when both are single-valued.

    Returns
    -------
    dk, df : float
        The cell size.

    Raises
    ------
    ParameterError
        For a given size that is not a positive finite number.
    """
    sizes: list[float | None] = []
    for name, given, values in (("dk", dk, k), ("df", df, f)):
        if given is None:
            sizes.append(_min_spacing(np.asarray(values, dtype=float)))
            continue
        try:
            g = float(given)
        except (TypeError, ValueError):
            g = math.nan
        if not (math.isfinite(g) and g > 0):
            raise ParameterError(f"{name} must be a positive finite number, got {given!r}")
        sizes.append(g)
    w = sizes[0] if sizes[0] is not None else sizes[1]
    h = sizes[1] if sizes[1] is not None else sizes[0]
    return (1e-3, 1e-3) if w is None or h is None else (w, h)


# --------------------------------------------------------------------------------------------
# Phase map
# --------------------------------------------------------------------------------------------


def _rect_vertices(x: np.ndarray, y: np.ndarray, w: float, h: float) -> np.ndarray:
    """Return the ``(n, 4, 2)`` corners of ``w × h`` rectangles centred on ``(x, y)``."""
    dx = np.array([-0.5, 0.5, 0.5, -0.5]) * w
    dy = np.array([-0.5, -0.5, 0.5, 0.5]) * h
    return np.stack([x[:, None] + dx, y[:, None] + dy], axis=-1)


def phase_map_figure(
    k: np.ndarray | Sequence[float],
    f: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    classes: Sequence[str],
    *,
    dk: float | None = None,
    df: float | None = None,
    title: str | None = None,
    probabilities: np.ndarray | None = None,
    dpi: int = 100,
    unlabelled: str = UNCLASSIFIED_NAME,
) -> Figure:
    """Return the figure drawn by :func:`save_phase_map`, not yet saved.

    Its only axes holds two :class:`~matplotlib.collections.PolyCollection` objects (classified
    cells, then unclassified cells) and the legend.

    Parameters
    ----------
    k, f : array_like of float
        ``(n,)`` coordinates of each point.
    labels : array_like of int
        ``(n,)`` class index per point, −1 for unclassified.
    classes : sequence of str
        The class symbols.
    dk, df : float or None, optional
        Cell width and height (default: see :func:`cell_size`).
    title : str or None, optional
        Axes title.
    probabilities : numpy.ndarray or None, optional
        ``(n, len(classes))`` class probabilities (opacity of each cell).
    dpi : int, default 100
        Resolution of the figure.
    unlabelled : str, default UNCLASSIFIED_NAME
        Legend text of the points labelled −1 (e.g. ``"unconfident"``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ParameterError
        As :func:`save_phase_map`.
    """
    k_arr, f_arr = check_coords(k, f)
    names = check_classes(classes)
    n = k_arr.size
    lab = check_labels(labels, n, len(names))
    prob = None if probabilities is None else check_probabilities(probabilities, n, len(names))
    w, h = cell_size(k_arr, f_arr, dk, df)
    colors = class_colors(names).astype(float) / 255.0

    # Size the axes so that cells are square on screen, longest side 6 inches.
    nx = (float(k_arr.max() - k_arr.min()) + w) / w
    ny = (float(f_arr.max() - f_arr.min()) + h) / h
    scale = 6.0 / max(nx, ny)
    ax_w = max(2.5, nx * scale)
    ax_h = max(2.5, ny * scale)
    present = [c for c in range(len(names)) if np.any(lab == c)]
    n_entries = len(present) + int(np.any(lab < 0)) + (2 if prob is not None else 1)  # + title
    margins = Margins(left=0.8, right=1.6, top=0.5 if title else 0.2, bottom=0.6)
    # The legend hangs from the axes' top right: a tall one makes the figure taller.
    fig_h = margins.top + max(ax_h + margins.bottom, 0.22 * n_entries + 0.2)
    fig_w = ax_w + margins.left + margins.right
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes((margins.left / fig_w, (fig_h - margins.top - ax_h) / fig_h,
                       ax_w / fig_w, ax_h / fig_h))

    verts = _rect_vertices(k_arr, f_arr, w, h)
    ok = lab >= 0
    rgba = np.ones((n, 4))
    rgba[ok, :3] = colors[lab[ok]]
    if prob is not None:
        rgba[:, 3] = prob.max(axis=1)
    ax.add_collection(PolyCollection(verts[ok], facecolors=rgba[ok], edgecolors="none",
                                     linewidths=0.0, antialiased=False))
    if not ok.all():
        ax.add_collection(PolyCollection(
            verts[~ok], facecolors=np.array(UNCLASSIFIED_COLOR) / 255.0,
            edgecolors="0.55", linewidths=0.3, hatch="////"))
    ax.set_xlim(float(k_arr.min()) - w / 2, float(k_arr.max()) + w / 2)
    ax.set_ylim(float(f_arr.min()) - h / 2, float(f_arr.max()) + h / 2)
    ax.set_xlabel("k")
    ax.set_ylabel("f")
    ax.tick_params(labelsize=8)
    if title:
        ax.set_title(title, fontsize=11)

    handles = [Patch(facecolor=colors[c], edgecolor="0.3", linewidth=0.5, label=names[c])
               for c in present]
    if not ok.all():
        handles.append(Patch(facecolor="white", edgecolor="0.55", hatch="////",
                             label=unlabelled))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  frameon=False, fontsize=9, handlelength=1.2, borderaxespad=0.0,
                  title="class\n(opacity = max p)" if prob is not None else "class",
                  title_fontsize=8)
    return fig


def save_phase_map(
    path: str | Path,
    k: np.ndarray | Sequence[float],
    f: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    classes: Sequence[str],
    *,
    dk: float | None = None,
    df: float | None = None,
    title: str | None = None,
    probabilities: np.ndarray | None = None,
    unlabelled: str = UNCLASSIFIED_NAME,
) -> Path:
    """Save the phase map of a scan: one filled ``dk × df`` rectangle per point, coloured by class.

    The axes are x = k, y = f. Later points are drawn over earlier ones at the same place.

    Parameters
    ----------
    path : str or Path
        Output image (PNG, or any format matplotlib writes).
    k, f : array_like of float
        ``(n,)`` parameters of each point (dimensionless rates, the Gray–Scott ``k`` and
        ``f``).
    labels : array_like of int
        ``(n,)`` integer class index into ``classes`` per point; −1 marks an unclassified
        point (drawn white and hatched, legend entry "unclassified").
    classes : sequence of str
        The class symbols (e.g. ``["α", …, "ν", "L", "H"]``); colours from
        :func:`class_colors`. The legend lists the classes present, in this order.
    dk, df : float or None, optional
        Cell width and height (units of ``k`` and ``f``); default: the smallest positive
        spacing of the distinct ``k`` (``f``) values.
    title : str or None, optional
        Axes title.
    probabilities : numpy.ndarray or None, optional
        ``(n, len(classes))`` class probabilities (rows sum to 1 within 1e-3); each cell is
        then drawn with opacity = its largest probability.
    unlabelled : str, default UNCLASSIFIED_NAME
        Legend text of the points labelled −1 (``"unconfident"`` where a classification
        flags predictions below its confidence threshold).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        Length mismatches, non-finite coordinates, labels outside ``[-1, len(classes))``,
        badly shaped or unnormalised probabilities.
    """
    fig = phase_map_figure(k, f, labels, classes, dk=dk, df=df, title=title,
                           probabilities=probabilities, unlabelled=unlabelled)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Confusion matrix and training history
# --------------------------------------------------------------------------------------------


def confusion_matrix_figure(
    matrix: np.ndarray, classes: Sequence[str], *, title: str | None = None,
    normalize: bool = False, dpi: int = 100,
) -> Figure:
    """Return the figure drawn by :func:`save_confusion_matrix`, not yet saved.

    Parameters
    ----------
    matrix : numpy.ndarray
        ``(n_classes, n_classes)`` non-negative counts.
    classes : sequence of str
        The class symbols.
    title : str or None, optional
        Axes title.
    normalize : bool, default False
        Show each row divided by its total.
    dpi : int, default 100
        Resolution of the figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ParameterError
        For a matrix of the wrong shape or with negative or non-finite entries, or bad
        classes.
    """
    names = check_classes(classes)
    m = np.asarray(matrix, dtype=float)
    nc = len(names)
    if m.shape != (nc, nc):
        raise ParameterError(
            f"confusion matrix must have shape ({nc}, {nc}) for {nc} classes, got {m.shape}"
        )
    finite = np.isfinite(m)
    negative = np.zeros_like(finite)
    negative[finite] = m[finite] < 0
    bad = np.argwhere(~finite | negative)
    if bad.size:
        i, j = bad[0]
        raise ParameterError(f"confusion matrix entry [{i}, {j}] = {float(m[i, j])} must be finite "
                             f"and ≥ 0")
    counts = m
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        shown = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
        vmax = 1.0
    else:
        shown = m
        vmax = max(float(m.max()), 1.0)

    cell_in = 0.42 if nc <= 16 else max(0.22, 6.7 / nc)
    side = max(2.0, nc * cell_in)
    margins = Margins(left=0.9, right=0.3, top=0.6 if title else 0.3, bottom=0.8)
    fig_w, fig_h = side + margins.left + margins.right, side + margins.top + margins.bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes((margins.left / fig_w, margins.bottom / fig_h, side / fig_w,
                       side / fig_h))
    ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest",
              origin="upper", aspect="auto")
    ax.set_xticks(range(nc), names)
    ax.set_yticks(range(nc), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fontsize = 8 if nc <= 16 else 6
    ax.tick_params(labelsize=fontsize + 1, length=0)
    integral = bool(np.all(counts == np.round(counts)))
    for i in range(nc):
        for j in range(nc):
            v = shown[i, j]
            if normalize:
                text = "0" if counts[i, j] == 0 else f"{v:.2f}"
            else:
                text = f"{int(v)}" if integral else f"{v:.3g}"
            color = "white" if v > 0.55 * vmax else ("0.6" if counts[i, j] == 0 else "black")
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color)
    if title:
        ax.set_title(title, fontsize=11)
    return fig


def save_confusion_matrix(
    path: str | Path,
    matrix: np.ndarray,
    classes: Sequence[str],
    *,
    title: str | None = None,
    normalize: bool = False,
) -> Path:
    """Save a confusion matrix with every cell annotated.

    Parameters
    ----------
    path : str or Path
        Output image.
    matrix : numpy.ndarray
        ``(n_classes, n_classes)`` non-negative counts; row ``i`` = true class
        ``classes[i]``, column ``j`` = predicted class ``classes[j]`` (the sklearn
        convention).
    classes : sequence of str
        The class symbols, tick labels of both axes.
    title : str or None, optional
        Axes title.
    normalize : bool, default False
        Show each row divided by its total (the recall of each true class; rows with no
        sample stay 0) instead of the counts.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        For a matrix of the wrong shape or with negative or non-finite entries, or bad
        classes.
    """
    fig = confusion_matrix_figure(matrix, classes, title=title, normalize=normalize)
    return save_figure(fig, path)


#: Keys of one epoch of a training history (Keras' names): always, then optionally.
_HISTORY_REQUIRED = ("epoch", "loss", "accuracy")
_HISTORY_OPTIONAL = ("val_loss", "val_accuracy")


def _history_columns(history: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Return the history as float columns; missing / ``None`` optional values are NaN."""
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence):
        raise ParameterError(
            f"history must be a list of dicts (one per epoch), got {type(history).__name__}"
        )
    if len(history) == 0:
        raise ParameterError("history is empty: no epoch to draw")
    cols: dict[str, list[float]] = {key: [] for key in _HISTORY_REQUIRED + _HISTORY_OPTIONAL}
    for i, row in enumerate(history):
        if not isinstance(row, Mapping):
            raise ParameterError(f"history[{i}] must be a dict, got {type(row).__name__}")
        for key, column in cols.items():
            value = row.get(key)
            if value is None and key in _HISTORY_REQUIRED:
                raise ParameterError(f"history[{i}] has no {key!r} (keys: {sorted(row)!r})")
            try:
                column.append(math.nan if value is None else float(value))
            except (TypeError, ValueError):
                raise ParameterError(f"history[{i}][{key!r}] = {value!r} is not a number") from None
    return {key: np.asarray(v, dtype=float) for key, v in cols.items()}


def history_figure(history: Sequence[Mapping[str, float]], dpi: int = 100) -> Figure:
    """Return the figure drawn by :func:`save_history`: two axes, loss (left) and accuracy (right).

    Parameters
    ----------
    history : sequence of mapping
        One dict per epoch (see :func:`save_history`).
    dpi : int, default 100
        Resolution of the figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ParameterError
        As :func:`save_history`.
    """
    c = _history_columns(history)
    fig = Figure(figsize=(9.0, 3.6), dpi=dpi, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.plot(c["epoch"], c[key], color="tab:blue", lw=1.2, marker=".", label="train")
        if np.isfinite(c[f"val_{key}"]).any():
            ax.plot(c["epoch"], c[f"val_{key}"], color="tab:orange", lw=1.2, marker=".",
                    label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(True, lw=0.4, alpha=0.5)
        ax.legend(fontsize=8, frameon=False)
        ax.tick_params(labelsize=8)
    acc = np.concatenate([c["accuracy"], c["val_accuracy"]])
    acc = acc[np.isfinite(acc)]
    if acc.size and acc.min() >= 0.0 and acc.max() <= 1.0:
        ax_acc.set_ylim(0.0, 1.02)
    return fig


def save_history(path: str | Path, history: Sequence[Mapping[str, float]]) -> Path:
    """Save training curves: loss and accuracy against epoch, training and validation.

    Parameters
    ----------
    path : str or Path
        Output image.
    history : sequence of mapping
        One dict per epoch with keys ``epoch``, ``loss``, ``accuracy`` and, optionally,
        ``val_loss``, ``val_accuracy`` (missing or ``None`` values leave gaps; a validation
        curve never given is not drawn). Accuracies are fractions in [0, 1] (the axis is then
        fixed to [0, 1]) or any other unit.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        An empty history, a row without ``epoch``, ``loss`` or ``accuracy``, a value that is
        not a number.
    """
    return save_figure(history_figure(history), path)


# --------------------------------------------------------------------------------------------
# Class montage
# --------------------------------------------------------------------------------------------

#: Fixed display range of U in pattern images (values outside are clipped).
U_RANGE: tuple[float, float] = (0.0, 1.0)
#: Panels smaller than this (longer side, pixels) are enlarged by an integer factor.
_MIN_PANEL_PX = 96
_GAP_PX = 4
_LABEL_FONTSIZE = 7
#: Narrowest montage figure, inches (so that the title fits).
_MIN_MONTAGE_IN = 3.5


def rgb_channels(n_channels: int) -> list[int]:
    """Return which of ``n_channels`` snapshots are shown as R, G and B.

    The first, the middle and the last: ``[0, 1, 2]`` for the paper's three snapshots,
    ``[0, 0, 0]`` (grey) for one.

    Parameters
    ----------
    n_channels : int
        Number of snapshots.

    Returns
    -------
    list of int
        Three channel indices.
    """
    return [0, (n_channels - 1) // 2, n_channels - 1]


def pattern_rgb(images: np.ndarray) -> np.ndarray:
    """Return the display colours of pattern images.

    Values are mapped with the fixed range :data:`U_RANGE` = [0, 1] (clipped); pixels with
    a NaN/Inf get :data:`~rdlab.viz.scaling.BAD_COLOR_U8`.

    Parameters
    ----------
    images : numpy.ndarray
        ``(n, y, x)`` (one field, shown grey) or ``(n, C, y, x)``: U at ``C`` snapshot times,
        the first, middle and last shown as R, G, B (see :func:`rgb_channels`), so a
        stationary pattern is grey and change shows as colour.

    Returns
    -------
    numpy.ndarray
        uint8 ``(n, y, x, 3)``.

    Raises
    ------
    ParameterError
        For another shape.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or 0 in arr.shape[1:]:
        raise ParameterError(
            f"pattern images must have shape (n, y, x) or (n, C, y, x), got {arr.shape}"
        )
    rgb = np.moveaxis(arr[:, rgb_channels(arr.shape[1])], 1, 3).astype(float)
    lo, hi = U_RANGE
    out = to_uint8((rgb - lo) / (hi - lo))
    bad = ~np.isfinite(rgb).all(axis=3)
    if bad.any():
        out[bad] = BAD_COLOR_U8
    return out


def save_class_montage(
    path: str | Path,
    images: np.ndarray,
    k: np.ndarray | Sequence[float],
    f: np.ndarray | Sequence[float],
    *,
    title: str,
    max_panels: int = 64,
    ncols: int = 8,
) -> Path:
    """Save the patterns of one (predicted) class as a grid, each panel labelled with ``k``, ``f``.

    Parameters
    ----------
    path : str or Path
        Output image.
    images : numpy.ndarray
        ``(n, y, x)`` fields or ``(n, C, y, x)`` U at ``C`` snapshot times (the first, middle
        and last shown as R, G, B); U is shown with the fixed range [0, 1], clipped (see
        :func:`pattern_rgb`).
    k, f : array_like of float
        ``(n,)`` parameters of each pattern.
    title : str
        Figure title (e.g. ``"class α (predicted)"``); the number shown of the total is
        appended when not all fit.
    max_panels : int, default 64
        At most this many panels; beyond it, evenly spaced samples of the given order are
        shown.
    ncols : int, default 8
        Panels per row (fewer when there are fewer panels).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        Non-finite or mismatched ``k``, ``f``, images of another count or shape,
        non-positive ``max_panels`` or ``ncols``.
    """
    k_arr, f_arr = check_coords(k, f)
    n = k_arr.size
    arr = np.asarray(images)
    if arr.ndim not in (3, 4) or arr.shape[0] != n:
        raise ParameterError(
            f"length mismatch: images of shape {arr.shape} for {n} (k, f) points "
            f"(expected (n, y, x) or (n, C, y, x) with n = {n})"
        )
    check_positive_ints(max_panels=max_panels, ncols=ncols)
    idx = np.arange(n)
    if n > max_panels:
        idx = np.unique(np.round(np.linspace(0, n - 1, int(max_panels))).astype(int))
        title = f"{title} ({idx.size} of {n})"
    rgb = pattern_rgb(arr[idx])
    rgb = upscale_stack(rgb, max(1, math.ceil(_MIN_PANEL_PX / max(rgb.shape[1:3]))))
    m, h, w, _ = rgb.shape
    cols = min(int(ncols), m)
    rows = math.ceil(m / cols)
    dpi = 100
    label_px = math.ceil(2 * _LABEL_FONTSIZE * dpi / 72 * 1.3)  # two lines: k, f
    height = rows * (label_px + h) + (rows - 1) * _GAP_PX
    width = cols * w + (cols - 1) * _GAP_PX
    side = max(0.15, (_MIN_MONTAGE_IN - width / dpi) / 2)  # room for the title
    fig, ax = image_figure(height, width, Margins(left=side, right=side, top=0.5, bottom=0.1),
                           dpi)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for p in range(m):
        r, c = divmod(p, cols)
        y0 = r * (label_px + h + _GAP_PX) + label_px
        x0 = c * (w + _GAP_PX)
        canvas[y0:y0 + h, x0:x0 + w] = rgb[p]
        ax.text(x0 + w / 2 - 0.5, y0 - 1.5, f"k = {k_arr[idx[p]]:.6g}\nf = {f_arr[idx[p]]:.6g}",
                ha="center", va="bottom", fontsize=_LABEL_FONTSIZE, linespacing=1.1,
                clip_on=False)
    show_image(ax, canvas)
    fig.suptitle(title, fontsize=11, y=1.0 - 0.08 / fig.get_size_inches()[1], va="top")
    return save_figure(fig, path)
