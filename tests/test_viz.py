"""Tests of rdlab.viz: PCA→RGB, frames, movies, montages and the HTML report."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from PIL import Image

from rdlab import viz
from rdlab.errors import ParameterError
from rdlab.viz.colorize import resolve_choice
from rdlab.viz.scaling import auto_upscale, contrast_sigmoid, robust_range


def _fields(n_time: int, ny: int = 24, nx: int = 20) -> np.ndarray:
    """Three smooth, moving latent fields ``(3, time, y, x)``."""
    t = np.arange(n_time)[:, None, None]
    yy, xx = np.mgrid[0:ny, 0:nx] / max(ny, nx)
    return np.stack([
        np.sin(2 * np.pi * (3 * xx + t / 7)),
        np.cos(2 * np.pi * (2 * yy - t / 5)),
        0.5 * np.sin(2 * np.pi * 4 * (xx + yy) + t / 3),
    ])


def _mix(latent: np.ndarray, n_species: int, rng, noise: float) -> np.ndarray:
    """Species = random linear mixture of the latent fields + offset + noise:
    ``(time, species, y, x)``."""
    mixing = rng.normal(size=(n_species, latent.shape[0]))
    frames = np.einsum("sk,ktyx->tsyx", mixing, latent) + rng.uniform(1, 2, n_species)[:, None,
                                                                                         None]
    return frames + noise * rng.normal(size=frames.shape)


# ----------------------------------------------------------------------------- PCA → RGB


def test_pca_three_dimensional_subspace_explains_everything(rng):
    frames = _mix(_fields(8), 5, rng, noise=1e-4)
    rgb, result = viz.pca_rgb(frames)
    assert result.method == "pca"
    assert rgb.shape == (8, 24, 20, 3)
    assert rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    evr = result.explained_variance_ratio
    assert evr.shape == (3,)
    assert evr.sum() > 0.999
    assert np.all(np.diff(evr) <= 0)  # largest first
    assert result.components.shape == (3, 5)
    np.testing.assert_allclose(result.components @ result.components.T, np.eye(3), atol=1e-10)
    assert result.active.all()


def test_pca_two_active_directions_third_component_is_zero(rng):
    frames = _mix(_fields(6)[:2], 5, rng, noise=1e-7)
    rgb, result = viz.pca_rgb(frames)
    evr = result.explained_variance_ratio
    assert evr[:2].sum() > 0.999999
    assert evr[2] < 1e-9
    # The noise-only component is not stretched into vivid colour: its channel stays black.
    assert not result.active[2]
    assert np.all(rgb[..., 2] == 0.0)
    assert rgb[..., :2].std() > 0.1


def test_pca_colours_consistent_over_time_and_batch(rng):
    traj = _mix(_fields(10), 6, rng, noise=1e-3).reshape(5, 2, 6, 24, 20)  # (time, batch,...)
    # Plant the same concentration vector at two times, samples and places.
    traj[4, 1, :, 3, 7] = traj[0, 0, :, 10, 11]
    rgb, result = viz.pca_rgb(traj)
    assert rgb.shape == (5, 2, 24, 20, 3)
    np.testing.assert_array_equal(rgb[4, 1, 3, 7], rgb[0, 0, 10, 11])
    # A single frame rendered with the series' fit gets exactly the series' colours.
    np.testing.assert_array_equal(viz.apply_pca_rgb(traj[2, 1], result), rgb[2, 1])


def test_pca_display_scaling_matches_paper_recipe(rng):
    frames = _mix(_fields(5), 4, rng, noise=1e-3)
    rgb, result = viz.pca_rgb(frames)
    proj = np.einsum("ks,tsyx->tyxk", result.components, frames - result.mean[:, None, None])
    for c in range(3):
        lo, hi = np.percentile(proj[..., c], [0.1, 99.9])
        assert result.lo[c] == pytest.approx(lo, rel=1e-9, abs=1e-12)
        assert result.hi[c] == pytest.approx(hi, rel=1e-9, abs=1e-12)
        u = (proj[..., c] - lo) / (hi - lo)
        expected = np.clip(1 / (1 + np.exp(-(10 * u - 4))), 0, 1)
        np.testing.assert_allclose(rgb[..., c], expected, atol=1e-6)


def test_pca_sampled_percentiles_and_chunked_fit_agree(rng):
    frames = _mix(_fields(12), 5, rng, noise=1e-3)
    exact = viz.fit_pca_rgb(frames)
    chunked = viz.fit_pca_rgb(frames, max_samples=2000, chunk_pixels=500)
    np.testing.assert_allclose(chunked.explained_variance_ratio,
                               exact.explained_variance_ratio, rtol=1e-8)
    np.testing.assert_allclose(chunked.components, exact.components, atol=1e-8)
    np.testing.assert_allclose(chunked.lo, exact.lo, atol=0.1 * (exact.hi - exact.lo).max())


def test_few_species_paths(rng):
    latent = _fields(4)
    three = _mix(latent, 3, rng, noise=1e-3)
    rgb3, r3 = viz.pca_rgb(three)
    assert r3.method == "direct" and rgb3.shape == (4, 24, 20, 3)
    assert r3.explained_variance_ratio.sum() == pytest.approx(1.0)

    two = _mix(latent[:2], 2, rng, noise=1e-3)
    two[:, 0] *= 0.01  # species 1 varies most → chosen
    rgb2, r2 = viz.pca_rgb(two)
    assert r2.method == "colormap" and r2.species == 1
    assert rgb2.shape == (4, 24, 20, 3) and 0 <= rgb2.min() and rgb2.max() <= 1

    padded, rp = viz.pca_rgb(two, method="direct")  # zero channels prepended: (0, A, B)
    assert rp.method == "direct"
    assert np.all(padded[..., 0] == 0) and padded[..., 2].std() > 0

    with pytest.raises(ParameterError):
        viz.pca_rgb(_mix(latent, 4, rng, 0.0), method="direct")


def test_pca_marks_non_finite_pixels(rng):
    frames = _mix(_fields(3), 5, rng, noise=1e-3)
    frames[1, 2, 4, 4] = np.nan
    rgb, result = viz.pca_rgb(frames)
    assert result.n_pixels == frames.shape[0] * 24 * 20 - 1
    np.testing.assert_array_equal(rgb[1, 4, 4], np.array([1, 0, 1], dtype=np.float32))
    assert np.isfinite(rgb).all()


def test_contrast_sigmoid_and_ranges():
    assert contrast_sigmoid(np.array(0.4)) == pytest.approx(0.5)
    out = contrast_sigmoid(np.array([-1e9, 0.0, 1.0, 1e9]))
    assert np.all((out >= 0) & (out <= 1)) and np.all(np.diff(out) > 0)
    assert robust_range(np.arange(1001.0)) == pytest.approx((1.0, 999.0))
    assert auto_upscale((64, 64)) == 4 and auto_upscale((512, 300)) == 1


# ----------------------------------------------------------------------- colour choices


def test_resolve_species_choice():
    names = ["U", "V", "W", "Z"]
    assert resolve_choice(None, 4, names) == ("pca", None)
    assert resolve_choice(None, 3) == ("rgb", None)
    assert resolve_choice(None, 1) == ("species", 0)
    assert resolve_choice("W", 4, names) == ("species", 2)
    assert resolve_choice(-1, 4, names) == ("species", 3)
    with pytest.raises(ParameterError, match="unknown species 'Q'"):
        resolve_choice("Q", 4, names)
    with pytest.raises(ParameterError):
        resolve_choice(7, 4, names)
    with pytest.raises(ParameterError):
        resolve_choice("rgb", 4, names)


def test_render_frame_single_species_fixed_scale(rng):
    state = rng.random((2, 16, 12))
    img = viz.render_frame(state, ["U", "V"], "V", vmin=0.0, vmax=1.0, upscale=3)
    assert img.shape == (48, 36, 3) and img.dtype == np.uint8
    # Same value, same colour, whatever the rest of the frame holds (fixed vmin/vmax).
    other = state.copy()
    other[1, 5:, :] = 0.0
    img2 = viz.render_frame(other, ["U", "V"], "V", vmin=0.0, vmax=1.0)
    np.testing.assert_array_equal(img2[0, 0], img[0, 0])
    lut = viz.apply_colormap(np.array([0.0, 1.0]), 0.0, 1.0)
    np.testing.assert_array_equal(viz.render_frame(np.zeros((1, 3, 3)), vmin=0, vmax=1)[0, 0],
                                  lut[0])
    assert viz.render_frame(rng.random((6, 16, 12)), species_to_show="pca").shape == (16, 12, 3)


# -------------------------------------------------------------------------- files


def test_save_png_sizes(tmp_path, rng):
    state = rng.random((2, 32, 32))
    p = viz.save_png(tmp_path / "rgb.png", rng.integers(0, 255, (40, 30, 3), dtype=np.uint8),
                     upscale=2, dpi=100)
    with Image.open(p) as im:
        assert im.size == (60 + 20, 80 + 20)  # image + 0.1-inch margins
    p = viz.save_png(tmp_path / "v.png", state, "V <final>", species_names=["U", "V"],
                     species_to_show="V")
    with Image.open(p) as im:
        w, h = im.size
        assert h == 32 * 8 + 50 and w > 32 * 8 + 100  # title room; colour bar on the right
    p = viz.save_png(tmp_path / "field.png", state[0], upscale=1, colorbar=False)
    with Image.open(p) as im:
        assert im.size == (52, 52)


def test_save_movie_gif_frames(tmp_path, rng):
    frames = _mix(_fields(7, 16, 16), 5, rng, noise=1e-3)
    p = viz.save_movie(tmp_path / "pca.gif", frames, fps=5,
                       frame_labels=[f"t = {t}" for t in range(7)])
    with Image.open(p) as im:
        assert im.n_frames == 7
        assert im.size == (256, 256)  # 16×16 grid upscaled ×16
        assert im.info["duration"] == 200
    p = viz.save_movie(tmp_path / "v.gif", frames[:, :2], ["U", "V"], "U", upscale=2)
    with Image.open(p) as im:
        assert im.n_frames == 7 and im.size == (32, 32)
        # The palette is the colour map: single-species colours are reproduced exactly.
        first = np.asarray(im.convert("RGB"))
    expected = viz.render_frame(frames[0, :2], ["U", "V"], "U", upscale=2,
                                vmin=frames[:, 0].min(), vmax=frames[:, 0].max())
    assert np.abs(first.astype(int) - expected.astype(int)).max() <= 3


def test_save_movie_errors(tmp_path, rng, monkeypatch):
    frames = rng.random((3, 2, 8, 8))
    with pytest.raises(ParameterError, match=".gif or .mp4"):
        viz.save_movie(tmp_path / "m.avi", frames)
    with pytest.raises(ParameterError, match=r"frames\[:, i\]"):
        viz.save_movie(tmp_path / "m.gif", rng.random((3, 2, 2, 8, 8)))
    monkeypatch.setattr(viz.frames, "ffmpeg_available", lambda: False)
    with pytest.raises(viz.FFmpegNotFoundError, match=r"\.gif"):
        viz.save_movie(tmp_path / "m.mp4", frames)
    assert not (tmp_path / "m.mp4").exists()


def test_montages(tmp_path, rng):
    data = rng.random((12, 2, 20, 20))
    p = viz.save_montage(tmp_path / "m.png", data, [f"sample {i}" for i in range(12)],
                         ncols=4, species_names=["U", "V"], species_to_show="V", title="t")
    with Image.open(p) as im:
        assert im.size[0] > 4 * 100 and im.size[1] > 3 * 100
    p = viz.save_sweep_montage(tmp_path / "sweep.png", data, "f", [0.02, 0.03, 0.04], "k",
                               [0.05, 0.055, 0.06, 0.065], species_names=["U", "V"])
    with Image.open(p) as im:
        assert im.size[0] > 4 * 100
    pca = rng.random((5, 6, 16, 16))
    viz.save_montage(tmp_path / "pca.png", pca, list("abcde"), shared_scale=False)
    with pytest.raises(ParameterError, match="3 × 4"):
        viz.save_sweep_montage(tmp_path / "bad.png", data[:11], "f", [1, 2, 3], "k",
                               [1, 2, 3, 4])


def test_sweep_montage_63_panels_is_fast(tmp_path, rng):
    import time

    data = rng.random((63, 2, 128, 128))
    t0 = time.perf_counter()
    viz.save_sweep_montage(tmp_path / "big.png", data, "f", np.linspace(0.02, 0.06, 9), "k",
                           np.linspace(0.04, 0.07, 7), species_names=["U", "V"])
    assert time.perf_counter() - t0 < 15


def test_html_report(tmp_path, rng):
    img = viz.save_png(tmp_path / "figs" / "a b.png", rng.random((8, 8)))
    report = viz.HtmlReport("Sweep <f & k>")
    report.add_heading("Reactions: A + 2B -> 3B")
    report.add_paragraph('Rates "k" < 1 & f > 0')
    report.add_image("figs/a b.png", caption="final <V>")
    report.add_image(img.resolve())  # absolute: made relative to the report
    report.add_table([["spots", 0.0123456, 3], ["<stripes>", np.float64(2.5), np.int64(7)]],
                     header=["class", "f", "n"])
    out = report.write(tmp_path / "report.html")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.count('src="figs/a%20b.png"') == 2
    assert "<title>Sweep &lt;f &amp; k&gt;</title>" in text
    assert "A + 2B -&gt; 3B" in text
    assert html.escape('Rates "k" < 1 & f > 0') in text
    assert "&lt;stripes&gt;" in text and "<stripes>" not in text
    assert "0.01235" in text and ">7<" in text
    assert "final &lt;V&gt;" in text
    # Every tag in the body is one we wrote: user text never opens a tag.
    tags = set(re.findall(r"<([a-z0-9]+)", text))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p",
                    "figure", "img", "figcaption", "table", "thead", "tbody", "tr", "th",
                    "td"}
    missing = viz.HtmlReport("x")
    missing.add_image("nope.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        missing.write(tmp_path / "x.html")
