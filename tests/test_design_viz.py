"""Tests of the inverse-design figures: reaction graphs, mean ± std bands, time-lapse panels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rdlab.chemistry.dense import kitchen_sink_network
from rdlab.chemistry.network import ReactionNetwork
from rdlab.errors import ParameterError
from rdlab.viz.design_bands import CONTROL_CONDITIONS, band_label, band_statistics, plot_bands
from rdlab.viz.montage import GAP_PX
from rdlab.viz.reaction_graph import (
    edge_weights,
    graph_caption,
    graph_layout,
    plot_reaction_graph,
    reaction_graph,
)
from rdlab.viz.time_lapse import panel_indices, time_lapse_panel


@pytest.fixture
def tiny() -> ReactionNetwork:
    """A + 2B <-> 3B and B <-> A: reactions 0..3 with rates 1, .1, .5, .02."""
    return ReactionNetwork.from_text(["A + 2B <-> 3B : 1.0, 0.1", "B <-> A : 0.5, 0.02"])


# ----------------------------------------------------------------------------- reaction graph


def test_graph_nodes_and_edges_of_a_tiny_network(tiny):
    g = reaction_graph(tiny, min_fraction=0.0)
    assert set(g.nodes) == {"A + 2B", "3B", "B", "A"}
    assert g.nodes["A + 2B"]["composition"] == {"A": 1, "B": 2}
    expected = {("A + 2B", "3B"): (0, 1.0), ("3B", "A + 2B"): (1, 0.1),
                ("B", "A"): (2, 0.5), ("A", "B"): (3, 0.02)}
    assert set(g.edges) == set(expected)
    for e, (r, k) in expected.items():
        assert g.edges[e]["reaction"] == r
        assert g.edges[e]["rate"] == pytest.approx(k)
        assert g.edges[e]["text"] == tiny.reaction_text(r, with_rate=False)
    assert g.graph["hidden"] == ()
    # min–max over the shown reactions: the largest gets 1, the smallest 0
    assert g.edges["A + 2B", "3B"]["weight"] == pytest.approx(1.0)
    assert g.edges["A", "B"]["weight"] == pytest.approx(0.0)
    assert g.edges["B", "A"]["weight"] == pytest.approx((0.5 - 0.02) / (1.0 - 0.02))


def test_weak_reactions_are_hidden_and_counted(tiny):
    g = reaction_graph(tiny, [1.0, 0.1, 0.5, 0.02], min_fraction=0.2)
    assert g.graph["hidden"] == (1, 3)
    assert g.graph["shown"] == (0, 2)
    assert set(g.edges) == {("A + 2B", "3B"), ("B", "A")}
    assert g.graph["threshold"] == pytest.approx(0.2)
    assert "2 of 4 reactions shown; 2 hidden" in graph_caption(g)
    # zero rates are never shown, even with no threshold
    g0 = reaction_graph(tiny, [1.0, 0.0, 0.5, 0.02], min_fraction=0.0)
    assert g0.graph["hidden"] == (1,)
    assert "1 hidden (k = 0)" in graph_caption(g0)
    # a cap on the number of reactions keeps the strongest
    gc = reaction_graph(tiny, min_fraction=0.0, max_reactions=2)
    assert gc.graph["shown"] == (0, 2)
    assert "only the 2 largest kept" in graph_caption(gc)


def test_weights_in_unit_interval_and_monotone_in_rate(rng):
    net = kitchen_sink_network(4)
    k = rng.lognormal(-2.0, 1.5, net.n_reactions)
    for scale in ("linear", "log"):
        g = reaction_graph(net, k, min_fraction=0.01, scale=scale)
        assert len(g.graph["shown"]) + len(g.graph["hidden"]) == net.n_reactions
        assert g.number_of_edges() == len(g.graph["shown"])
        rates = np.array([d["rate"] for *_, d in g.edges(data=True)])
        w = np.array([d["weight"] for *_, d in g.edges(data=True)])
        assert np.all((w >= 0) & (w <= 1))
        assert w.max() == pytest.approx(1.0) and w.min() == pytest.approx(0.0)
        order = np.argsort(rates)
        assert np.all(np.diff(w[order]) >= -1e-15)
        assert np.all(rates >= 0.01 * k.max())
    assert np.array_equal(edge_weights(np.array([2.0, 2.0])), [1.0, 1.0])


def test_reactions_joining_the_same_complexes_share_an_edge():
    net = ReactionNetwork.from_text(["A -> B : 1", "A -> B : 2", "B -> A : 3"])
    g = reaction_graph(net, min_fraction=0.0)
    assert g.edges["A", "B"]["rate"] == pytest.approx(3.0)
    assert g.edges["A", "B"]["reactions"] == (0, 1)


def test_bad_rates_are_refused(tiny):
    with pytest.raises(ParameterError, match="shape"):
        reaction_graph(tiny, [1.0, 2.0])
    with pytest.raises(ParameterError, match="reaction 2"):
        reaction_graph(tiny, [1.0, 0.1, -0.5, 0.02])
    with pytest.raises(ParameterError, match="nan"):
        reaction_graph(tiny, [1.0, np.nan, 0.5, 0.02])
    with pytest.raises(ParameterError, match="min_fraction"):
        reaction_graph(tiny, min_fraction=1.5)
    with pytest.raises(ParameterError, match="scale"):
        reaction_graph(tiny, scale="cubic")


def test_layout_is_deterministic_given_a_seed(tiny):
    g = reaction_graph(tiny, min_fraction=0.0)
    a, b = graph_layout(g, seed=3), graph_layout(g, seed=3)
    assert a.keys() == set(g.nodes)
    assert all(np.array_equal(a[n], b[n]) for n in a)


def test_plot_reaction_graph_writes_a_png(tmp_path, tiny, rng):
    out = plot_reaction_graph(tiny, None, tmp_path / "g" / "tiny.png", title="tiny",
                              size_in=(4.0, 3.0), dpi=100, seed=1)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (400, 300)
        pixels = np.asarray(im.convert("L"))
    assert pixels.min() < 100  # something dark was drawn (arrows, labels)
    again = plot_reaction_graph(tiny, None, tmp_path / "again.png", title="tiny",
                                size_in=(4.0, 3.0), dpi=100, seed=1)
    with Image.open(again) as im:
        assert np.array_equal(np.asarray(im.convert("L")), pixels)
    net = kitchen_sink_network(5)
    dense = plot_reaction_graph(net, rng.lognormal(-2.0, 1.5, net.n_reactions),
                                tmp_path / "dense.png", size_in=(5.0, 5.0), dpi=80)
    with Image.open(dense) as im:
        assert im.size == (400, 400)


# ----------------------------------------------------------------------------- bands


def test_band_statistics_match_numpy(rng):
    v = rng.normal(size=(7, 11))
    st = band_statistics(v)
    assert np.allclose(st.mean, v.mean(axis=0))
    assert np.allclose(st.std, v.std(axis=0))
    assert np.array_equal(st.count, np.full(11, 7))
    assert (st.n_runs, st.n_excluded, st.n_used) == (7, 0, 7)
    assert np.allclose(band_statistics(v, ddof=1).std, v.std(axis=0, ddof=1))
    one = band_statistics(v[0])
    assert np.allclose(one.mean, v[0]) and np.allclose(one.std, 0.0)


def test_non_finite_runs_are_excluded_and_counted(rng):
    v = rng.normal(size=(6, 9))
    v[1, 4:] = np.nan  # a control that blew up
    v[4, 8] = np.inf
    st = band_statistics(v)
    good = v[[0, 2, 3, 5]]
    assert (st.n_excluded, st.n_used) == (2, 4)
    assert np.allclose(st.mean, good.mean(axis=0))
    assert np.allclose(st.std, good.std(axis=0))
    assert "n = 4 of 6; 2 non-finite runs excluded" in band_label("Random θΨ", st)

    pt = band_statistics(v, nan_policy="point")
    assert pt.n_excluded == 0
    assert np.array_equal(pt.count, [6, 6, 6, 6, 5, 5, 5, 5, 4])
    col = v[np.isfinite(v[:, 6]), 6]
    assert pt.mean[6] == pytest.approx(col.mean())
    assert pt.std[6] == pytest.approx(col.std())
    assert "n = 4–6 of 6" in band_label("x", pt, "point")

    dead = band_statistics(np.full((3, 5), np.nan))
    assert dead.n_used == 0 and np.isnan(dead.mean).all() and np.isnan(dead.std).all()
    assert "all 3 runs non-finite" in band_label("Random θΨ", dead)


def test_plot_bands_writes_a_png(tmp_path, rng):
    t = np.linspace(0.0, 100.0, 51)
    curves = {name: rng.normal(0.8 - 0.2 * i, 0.05, size=(8, t.size))
              for i, name in enumerate(CONTROL_CONDITIONS)}
    curves["Random θΨ"][2, 30:] = np.nan
    curves["dead"] = np.full((2, t.size), np.inf)
    out = plot_bands(t, curves, tmp_path / "b" / "corr.png", "Pearson r", title="controls",
                     t_opt=32.0, size_in=(5.0, 3.0), dpi=100)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (500, 300)
    log = plot_bands(t, {k: np.abs(v) for k, v in curves.items()}, tmp_path / "log.png",
                     "dissipation rate", logy=True, nan_policy="point")
    assert log.stat().st_size > 0
    with pytest.raises(ParameterError, match="Optimized"):
        plot_bands(t[:-1], curves, tmp_path / "bad.png", "r")
    with pytest.raises(ParameterError, match="empty"):
        plot_bands(t, {}, tmp_path / "bad.png", "r")


# ----------------------------------------------------------------------------- time lapse


def _series(n_time: int, n_species: int = 4, n: int = 24) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n] / n
    return np.stack([
        np.stack([np.sin(2 * np.pi * ((s + 1) * xx + 0.1 * t)) * np.cos(2 * np.pi * yy * (t + 1))
                  + s for s in range(n_species)])
        for t in range(n_time)
    ])


def _segments(row: np.ndarray) -> int:
    """Runs of non-white pixels in an RGB row ``(x, 3)``."""
    ink = (row < 255).any(axis=-1).astype(int)
    return int(np.count_nonzero(np.diff(np.concatenate([[0], ink])) == 1))


def test_time_lapse_panel_has_one_panel_per_frame(tmp_path):
    frames = _series(5)
    out = time_lapse_panel(frames, np.arange(5) * 8.0, tmp_path / "tl.png", upscale=2,
                           movie_path=tmp_path / "tl.gif", time_format="t = {:g} s")
    with Image.open(out) as im:
        # montage: 5 panels of 48 px with GAP_PX between, plus 0.15 in margins each side
        assert im.size[0] == 5 * 48 + 4 * GAP_PX + 30
    with Image.open(tmp_path / "tl.gif") as gif:
        assert gif.n_frames == 5
    # one species through a colour map (never white): count the panels along a row
    single = time_lapse_panel(frames[:, :1], np.arange(5), tmp_path / "one.png", upscale=2)
    with Image.open(single) as im:
        rgb = np.asarray(im.convert("RGB"))
    rgb = rgb[:, : 15 + 5 * 48 + 4 * GAP_PX]  # the panels, not the colour bar
    ink = (rgb < 255).any(axis=-1).sum(axis=1)
    assert _segments(rgb[int(np.argmax(ink))]) == 5


def test_time_lapse_panel_subsets_and_errors(tmp_path):
    assert np.array_equal(panel_indices(5, 3), [0, 2, 4])
    assert np.array_equal(panel_indices(5, None), np.arange(5))
    assert np.array_equal(panel_indices(5, 1), [4])
    out = time_lapse_panel(_series(5), np.arange(5), tmp_path / "three.png", n_panels=3,
                           upscale=2)
    with Image.open(out) as im:
        assert im.size[0] == 3 * 48 + 2 * GAP_PX + 30
    with pytest.raises(ParameterError, match="4 times"):
        time_lapse_panel(_series(5), np.arange(4), tmp_path / "bad.png")
    with pytest.raises(ParameterError, match="shape"):
        time_lapse_panel(np.zeros((2, 3)), np.arange(2), tmp_path / "bad.png")
