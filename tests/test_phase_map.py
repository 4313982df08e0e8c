"""Tests of rdlab.viz.classify_figures: phase map, confusion matrix, training curves,
class montage."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from rdlab import viz
from rdlab.errors import ParameterError
from rdlab.viz.classify_figures import (
    HIGH_COLOR,
    LOW_COLOR,
    PALETTE,
    cell_size,
    rgb_channels,
)
from rdlab.viz.layout import save_figure

#: The paper's classes (Fig. 6): α … ν, the new class π, homogeneous low / high.
CLASSES = [*"αβγδεζηθικλμν", "π", "L", "H"]


def _scan(nk: int = 20, nf: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``nk × nf`` grid of k ∈ [0.03, 0.07], f ∈ [0, 0.1] labelled by a rule: 4 × 4
    blocks, block (i, j) → class 4 i + j, so every one of the 16 classes occurs."""
    kk, ff = np.meshgrid(np.linspace(0.03, 0.07, nk), np.linspace(0.0, 0.1, nf))
    k, f = kk.ravel(), ff.ravel()
    return k, f, _rule(k, f)


def _rule(k: np.ndarray, f: np.ndarray) -> np.ndarray:
    i = np.minimum((k - 0.03) / 0.04 * 4, 3.999).astype(int)
    j = np.minimum(f / 0.1 * 4, 3.999).astype(int)
    return 4 * i + j


def _pixel(png: Image.Image, ax, x: float, y: float) -> tuple[int, int, int]:
    """RGB of the saved image at data coordinates ``(x, y)`` of ``ax``."""
    px, py = ax.transData.transform((x, y))
    return png.getpixel((int(px), png.height - 1 - int(py)))[:3]


# ----------------------------------------------------------------------------- colours


def test_class_colors_are_fixed_and_distinct():
    colors = viz.class_colors(CLASSES)
    assert colors.shape == (16, 3) and colors.dtype == np.uint8
    assert tuple(colors[CLASSES.index("L")]) == LOW_COLOR
    assert tuple(colors[CLASSES.index("H")]) == HIGH_COLOR
    np.testing.assert_array_equal(colors[:14], PALETTE[:14])
    assert len({tuple(c) for c in colors}) == 16
    # Beyond the palette: still distinct, and the first colours do not move.
    many = viz.class_colors([f"c{i}" for i in range(30)])
    assert len({tuple(c) for c in many}) == 30
    np.testing.assert_array_equal(many[:18], PALETTE)


# ----------------------------------------------------------------------------- phase map


def test_phase_map_png_size_and_cell_colours(tmp_path):
    k, f, labels = _scan()
    path = viz.save_phase_map(tmp_path / "sub" / "phase_map.png", k, f, labels, CLASSES,
                              title="CNN classification")
    fig = viz.phase_map_figure(k, f, labels, CLASSES, title="CNN classification")
    w, h = (fig.get_size_inches() * fig.dpi).round().astype(int)
    with Image.open(path) as im:
        assert im.size == (w, h)
    # 20 × 15 cells drawn square, the longer side 6 inches at 100 dpi: 840 × 560 in all.
    assert (w, h) == (840, 560)

    # Same figure, saved here, so that its axes transform locates each cell's pixels.
    save_figure(fig, tmp_path / "same.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "k" and ax.get_ylabel() == "f"
    colors = viz.class_colors(CLASSES)
    with Image.open(tmp_path / "same.png") as im:
        png = im.convert("RGB")
        for i in (0, 7, 123, 150, 299):
            assert _pixel(png, ax, k[i], f[i]) == tuple(colors[labels[i]]), i
        # A quarter cell off the centre is still the same cell.
        dk, df = cell_size(k, f)
        assert _pixel(png, ax, k[42] + dk / 4, f[42] - df / 4) == tuple(colors[labels[42]])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == CLASSES  # all 16 present, in class order


def test_phase_map_legend_lists_present_classes_and_unclassified(tmp_path):
    k, f, labels = _scan(8, 6)
    labels = np.where(labels % 2 == 0, labels, 15)  # even classes and "H"
    labels[3] = -1
    fig = viz.phase_map_figure(k, f, labels, CLASSES)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [c for i, c in enumerate(CLASSES) if i % 2 == 0 or c == "H"] + [
        "unclassified"]
    save_figure(fig, tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        png = im.convert("RGB")
    colors = {tuple(c) for c in viz.class_colors(CLASSES)}
    assert _pixel(png, fig.axes[0], k[4], f[4]) in colors
    # The unclassified cell is hatched white / grey: no class colour.
    assert _pixel(png, fig.axes[0], k[3], f[3]) not in colors


def test_phase_map_opacity_from_probabilities(tmp_path):
    k, f, labels = _scan(6, 5)
    n = k.size
    probs = np.zeros((n, len(CLASSES)))
    probs[np.arange(n), labels] = 0.5
    probs[np.arange(n), (labels + 1) % 16] = 0.5
    probs[0] = 0.0
    probs[0, labels[0]] = 1.0
    fig = viz.phase_map_figure(k, f, labels, CLASSES, probabilities=probs)
    save_figure(fig, tmp_path / "p.png")
    colors = viz.class_colors(CLASSES).astype(int)
    with Image.open(tmp_path / "p.png") as im:
        png = im.convert("RGB")
    assert _pixel(png, fig.axes[0], k[0], f[0]) == tuple(colors[labels[0]])
    half = np.array(_pixel(png, fig.axes[0], k[9], f[9]))
    np.testing.assert_allclose(half, (colors[labels[9]] + 255) / 2, atol=1.5)


def test_greek_symbols_render_without_warnings(tmp_path):
    k, f, labels = _scan(4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph … missing from font" would be a UserWarning
        viz.save_phase_map(tmp_path / "p.png", k, f, labels, CLASSES, title="α … ν, π")
        viz.save_confusion_matrix(tmp_path / "c.png", np.eye(16), CLASSES)


def test_single_point_and_explicit_cell_size(tmp_path):
    path = viz.save_phase_map(tmp_path / "one.png", [0.05], [0.03], [0], ["α"])
    assert path.exists()
    assert cell_size(np.array([0.05]), np.array([0.03])) == (1e-3, 1e-3)
    fig = viz.phase_map_figure([0.05, 0.06], [0.03, 0.03], [0, 0], ["α"], dk=0.01, df=0.002)
    assert fig.axes[0].get_xlim() == pytest.approx((0.045, 0.065))
    assert fig.axes[0].get_ylim() == pytest.approx((0.029, 0.031))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": [0.03, 0.04, 0.05]}, "3 k values but 2 f values"),
        ({"labels": [0, 1, 2]}, "3 labels for 2 points"),
        ({"labels": [0, 16]}, "label 16 at index 1 is out of range"),
        ({"labels": [-2, 0]}, "label -2 at index 0"),
        ({"labels": [0.5, 1]}, "0.5"),
        ({"k": [0.03, float("nan")]}, r"k\[1\] = nan is not finite"),
        ({"f": [float("inf"), 0.1]}, r"f\[0\] = inf is not finite"),
        ({"classes": CLASSES[:-1] + ["α"]}, "duplicate class symbols"),
        ({"classes": "αβ"}, "string 'αβ'"),
        ({"dk": -0.01}, "dk must be a positive finite number, got -0.01"),
        ({"df": float("nan")}, "df must be a positive finite number, got nan"),
        ({"probabilities": np.full((2, 16), 0.5)}, "row 0 sums to 8.0"),
        ({"probabilities": np.full((2, 3), 1 / 3)}, r"got \(2, 3\)"),
    ],
)
def test_phase_map_bad_inputs(tmp_path, kwargs, match):
    args = {"k": [0.03, 0.04], "f": [0.01, 0.02], "labels": [0, 1], "classes": CLASSES,
            **kwargs}
    with pytest.raises(ParameterError, match=match):
        viz.save_phase_map(tmp_path / "bad.png", args.pop("k"), args.pop("f"),
                           args.pop("labels"), args.pop("classes"), **args)
    assert not (tmp_path / "bad.png").exists()


# ----------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_numbers(tmp_path):
    classes = ["α", "β", "L"]
    m = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]])
    path = viz.save_confusion_matrix(tmp_path / "cm.png", m, classes, title="test set")
    with Image.open(path) as im:
        assert im.size[0] > 100 and im.size[1] > 100
    fig = viz.confusion_matrix_figure(m, classes)
    ax = fig.axes[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    assert texts == {(i, j): str(m[i, j]) for i in range(3) for j in range(3)}
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    np.testing.assert_array_equal(ax.images[0].get_array(), m)

    norm = viz.confusion_matrix_figure(m, classes, normalize=True)
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in norm.axes[0].texts}
    assert texts[(0, 0)] == "0.83" and texts[(1, 1)] == "0.70" and texts[(2, 2)] == "1.00"
    assert texts[(0, 2)] == "0"


@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        (np.ones((2, 2)), r"shape \(3, 3\) for 3 classes, got \(2, 2\)"),
        (np.array([[1, 0, 0], [0, -1, 0], [0, 0, 1]]), r"\[1, 1\] = -1.0"),
        (np.array([[1, 0, 0], [0, np.nan, 0], [0, 0, 1]]), r"\[1, 1\] = nan"),
    ],
)
def test_confusion_matrix_bad_inputs(matrix, match):
    with pytest.raises(ParameterError, match=match):
        viz.confusion_matrix_figure(matrix, ["α", "β", "L"])


# ----------------------------------------------------------------------------- history


def _history(n: int = 6, val: bool = True) -> list[dict]:
    rows = []
    for e in range(1, n + 1):
        row = {"epoch": e, "loss": 1.0 / e, "accuracy": 1.0 - 0.5 / e}
        if val:
            row |= {"val_loss": 1.2 / e, "val_accuracy": 1.0 - 0.6 / e}
        rows.append(row)
    return rows


def test_history_curves(tmp_path):
    history = _history()
    path = viz.save_history(tmp_path / "history.png", history)
    with Image.open(path) as im:
        assert im.size == (900, 360)
    ax_loss, ax_acc = viz.history_figure(history).axes
    assert ax_loss.get_ylabel() == "loss" and ax_acc.get_ylabel() == "accuracy"
    train, val = ax_acc.get_lines()
    np.testing.assert_allclose(train.get_xdata(), [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(train.get_ydata(), [r["accuracy"] for r in history])
    np.testing.assert_allclose(val.get_ydata(), [r["val_accuracy"] for r in history])
    assert ax_acc.get_ylim() == (0.0, 1.02)
    # Without validation values there is one curve per axes.
    assert [len(ax.get_lines()) for ax in viz.history_figure(_history(3, val=False)).axes] == [
        1, 1]


@pytest.mark.parametrize(
    ("history", "match"),
    [
        ([], "history is empty"),
        ({"epoch": 1}, "list of dicts"),
        ([{"epoch": 1, "loss": 0.5}], r"history\[0\] has no 'accuracy'"),
        ([{"epoch": 1, "loss": "x", "accuracy": 0.5}], r"history\[0\]\['loss'\] = 'x'"),
        ([3], r"history\[0\] must be a dict"),
    ],
)
def test_history_bad_inputs(tmp_path, history, match):
    with pytest.raises(ParameterError, match=match):
        viz.save_history(tmp_path / "h.png", history)


# ----------------------------------------------------------------------------- montage


def test_pattern_rgb_channels():
    assert rgb_channels(1) == [0, 0, 0]
    assert rgb_channels(3) == [0, 1, 2]
    assert rgb_channels(5) == [0, 2, 4]
    frames = np.zeros((2, 3, 4, 5))
    frames[:, 0] = 1.0
    frames[1, 2, 0, 0] = np.nan
    rgb = viz.pattern_rgb(frames)
    assert rgb.shape == (2, 4, 5, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 1, 1]) == (255, 0, 0)
    assert tuple(rgb[1, 0, 0]) == (255, 0, 255)  # NaN → the "bad" colour
    grey = viz.pattern_rgb(np.full((1, 4, 4), 0.5))
    assert (grey == 128).all()
    with pytest.raises(ParameterError, match=r"\(n, C, y, x\), got \(4, 4\)"):
        viz.pattern_rgb(np.zeros((4, 4)))


def test_class_montage(tmp_path, rng):
    n = 11
    frames = rng.uniform(0, 1, (n, 3, 32, 32)).astype(np.float32)
    k = np.linspace(0.03, 0.07, n)
    f = np.full(n, 0.05)
    path = viz.save_class_montage(tmp_path / "m.png", frames, k, f, title="predicted α: 11")
    with Image.open(path) as im:
        # 8 columns of 32 px patterns enlarged ×3 to 96 px, 4 px gaps, margins.
        assert im.size[0] == 8 * 96 + 7 * 4 + 30
        png = np.asarray(im.convert("RGB"))
    assert png.shape[0] > 2 * 96
    # Too many patterns: evenly spaced samples, and the title says so.
    many = viz.save_class_montage(tmp_path / "many.png", frames, k, f, title="α",
                                  max_panels=4, ncols=2)
    with Image.open(many) as im:
        assert im.size[0] == 350  # narrow grids get the minimum width (title room)


def test_class_montage_bad_inputs(tmp_path):
    frames = np.zeros((3, 3, 8, 8))
    with pytest.raises(ParameterError, match="images of shape"):
        viz.save_class_montage(tmp_path / "m.png", frames, [0.03, 0.04], [0.01, 0.02],
                               title="x")
    with pytest.raises(ParameterError, match=r"k\[2\] = nan"):
        viz.save_class_montage(tmp_path / "m.png", frames, [0.03, 0.04, np.nan],
                               [0.01, 0.02, 0.03], title="x")
    with pytest.raises(ParameterError, match="max_panels must be a positive integer, got 0"):
        viz.save_class_montage(tmp_path / "m.png", frames, [0.03, 0.04, 0.05],
                               [0.01, 0.02, 0.03], title="x", max_panels=0)
