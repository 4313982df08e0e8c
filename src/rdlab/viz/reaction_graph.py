"""A reaction network as a graph of complexes (Dense-RDN paper, appendix B.4 / figure 6).

Nodes are *complexes* — the two sides of a reaction, e.g. ``"A + 2B"`` — and every directed
reaction is an edge from its reactant complex to its product complex, so a reversible pair
shows as two arrows in opposite directions. The strength of a reaction is its rate constant:
darker, thicker arrows for larger constants, and a spring layout whose springs are as stiff as
the reactions are strong, so strongly reacting complexes sit close together.

A dense network (100 reactions for 5 species) is unreadable in full, so reactions whose rate
constant is below ``min_fraction`` of the largest are hidden; the figure says how many. The
graph itself is a :class:`networkx.DiGraph` (``reaction_graph``); ``plot_reaction_graph`` draws
it with plain matplotlib patches (no pyplot) and writes a PNG.

Rate constants are mass-action constants in concentration^(1 − order)/time; only their ratios
matter here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import networkx as nx
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from rdlab.chemistry.network import ReactionNetwork
from rdlab.chemistry.reaction_text import format_side
from rdlab.errors import ParameterError
from rdlab.viz.layout import save_figure

#: Default threshold: reactions with ``k < DEFAULT_MIN_FRACTION · max(k)`` are hidden.
DEFAULT_MIN_FRACTION = 0.05
#: Floor of an edge's opacity (and of its spring stiffness in the layout).
MIN_ALPHA = 0.05

WeightScale = Literal["linear", "log", "relative"]


def _rates(network: ReactionNetwork, rates: Sequence[float] | np.ndarray | None) -> np.ndarray:
    """Return validated ``(n_reactions,)`` float rate constants (default: the network's)."""
    if rates is None:
        if any(k is None for k in network.default_rates):
            raise ParameterError(
                "no rates given and the network lacks default rates for reactions "
                f"{[r for r, k in enumerate(network.default_rates) if k is None]}"
            )
        rates = [float(k) for k in network.default_rates]  # type: ignore[arg-type]
    k = np.asarray(rates, dtype=float)
    if k.shape != (network.n_reactions,):
        raise ParameterError(
            f"rates have shape {k.shape}; expected ({network.n_reactions},), one per reaction"
        )
    bad = np.flatnonzero(~np.isfinite(k) | (k < 0))
    if bad.size:
        raise ParameterError(
            f"rate constants must be finite and ≥ 0; reaction {int(bad[0])} has {k[bad[0]]!r}"
        )
    return k


def complex_name(network: ReactionNetwork, column: np.ndarray) -> str:
    """Return the name of the complex with species coefficients ``column``.

    Parameters
    ----------
    network : ReactionNetwork
        The network (its species order).
    column : numpy.ndarray
        ``(n_species,)`` coefficients.

    Returns
    -------
    str
        E.g. ``"A + 2B"`` (species in network order; the empty complex is ``"0"``).
    """
    return format_side({s: int(c) for s, c in zip(network.species, column) if c})


def edge_weights(rates: np.ndarray, scale: WeightScale = "linear") -> np.ndarray:
    """Return the strengths in [0, 1] of ``rates``, monotone in rate.

    Parameters
    ----------
    rates : numpy.ndarray
        ``(n,)`` rate constants, all > 0.
    scale : {"linear", "log", "relative"}, optional
        Min–max normalised (``"linear"``, the authors' figure; default), min–max of
        ``log k`` (``"log"``, for constants spanning decades), or ``k / max k``
        (``"relative"``: proportional to the rate, so nearly equal rates look equal).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` weights; equal rates all get weight 1.

    Raises
    ------
    ParameterError
        An unknown ``scale``.
    """
    if scale not in ("linear", "log", "relative"):
        raise ParameterError(f"weight scale must be 'linear', 'log' or 'relative', got "
                             f"{scale!r}")
    k = np.asarray(rates, dtype=float)
    if k.size == 0:
        return k.copy()
    if scale == "relative":
        return np.clip(k / float(k.max()), 0.0, 1.0)
    v = np.log(k) if scale == "log" else k
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        return np.ones_like(v)
    return np.clip((v - lo) / (hi - lo), 0.0, 1.0)


def reaction_graph(
    network: ReactionNetwork,
    rates: Sequence[float] | np.ndarray | None = None,
    *,
    min_fraction: float = DEFAULT_MIN_FRACTION,
    max_reactions: int | None = None,
    scale: WeightScale = "linear",
) -> nx.DiGraph:
    """Return the network's complex graph, keeping only its strong reactions.

    Parameters
    ----------
    network : ReactionNetwork
        The reaction network (``R``/``P`` give the complexes).
    rates : array_like or None, optional
        Rate constant of every directed reaction ``(n_reactions,)``, ≥ 0; default the
        network's ``default_rates``.
    min_fraction : float, optional
        A reaction is shown when ``k > 0`` and ``k ≥ min_fraction · max(k)`` (0 shows every
        reaction with a non-zero rate); default 0.05.
    max_reactions : int or None, optional
        Additionally keep at most this many of the strongest reactions.
    scale : {"linear", "log", "relative"}, optional
        How edge weights are normalised (:func:`edge_weights`): ``"linear"`` (min–max of
        ``k``, the paper's; default), ``"log"`` (min–max of ``log k``) or ``"relative"``
        (``k / max k``).

    Returns
    -------
    networkx.DiGraph
        Nodes are complex names with attribute ``composition`` (``{species: coefficient}``);
        only complexes of shown reactions appear. Each edge (reactant complex → product
        complex) has ``rate`` (its constant; the sum if several reactions join the same
        complexes), ``reaction`` (index of the first such reaction), ``reactions`` (all
        their indices), ``text`` (``"A + 2B -> 3B"``) and ``weight`` (in [0, 1], over the
        shown edges, monotone in ``rate``). ``graph.graph`` holds ``n_reactions``,
        ``shown`` and ``hidden`` (reaction indices), ``threshold`` (the absolute rate
        cut-off: the smallest shown rate when ``max_reactions`` cut deeper),
        ``min_fraction``, ``max_reactions`` (the cap when it hid reactions, else ``None``)
        and ``scale``.

    Raises
    ------
    ParameterError
        Missing, badly shaped, negative or non-finite rates, ``min_fraction`` outside
        [0, 1], a non-positive ``max_reactions`` or an unknown ``scale``.
    """
    k = _rates(network, rates)
    if not (np.isfinite(min_fraction) and 0.0 <= min_fraction <= 1.0):
        raise ParameterError(f"min_fraction must lie in [0, 1], got {min_fraction!r}")
    if max_reactions is not None and (int(max_reactions) != max_reactions or max_reactions < 1):
        raise ParameterError(f"max_reactions must be a positive integer, got {max_reactions!r}")
    keep, threshold, capped = _strong_reactions(k, min_fraction, max_reactions)
    graph = nx.DiGraph(
        n_reactions=network.n_reactions,
        shown=tuple(int(r) for r in np.flatnonzero(keep)),
        hidden=tuple(int(r) for r in np.flatnonzero(~keep)),
        threshold=float(threshold),
        min_fraction=float(min_fraction),
        max_reactions=int(max_reactions) if capped and max_reactions is not None else None,
        scale=scale,
    )
    _add_reactions(graph, network, k, np.flatnonzero(keep))
    edges = list(graph.edges)
    weights = edge_weights(np.array([graph.edges[e]["rate"] for e in edges]), scale)
    for e, w in zip(edges, weights):
        graph.edges[e]["weight"] = float(w)
    return graph


def _strong_reactions(k: np.ndarray, min_fraction: float, max_reactions: int | None
                      ) -> tuple[np.ndarray, float, bool]:
    """Return which reactions are shown, the rate threshold, and whether the cap cut deeper."""
    k_max = float(k.max(initial=0.0))
    threshold = min_fraction * k_max
    keep = (k > 0) & (k >= threshold)
    capped = max_reactions is not None and keep.sum() > max_reactions
    if capped:
        order = np.argsort(-k, kind="stable")
        top = np.zeros_like(keep)
        top[order[: int(max_reactions)]] = True
        keep &= top
        threshold = float(k[keep].min())
    return keep, threshold, capped


def _add_reactions(graph: nx.DiGraph, network: ReactionNetwork, k: np.ndarray,
                   shown: np.ndarray) -> None:
    """Add each shown reaction as an edge between its complexes (rates of repeats summed)."""
    R, P = network.reactant_matrix, network.product_matrix
    for r in shown:
        a, b = complex_name(network, R[:, r]), complex_name(network, P[:, r])
        for name, col in ((a, R[:, r]), (b, P[:, r])):
            if name not in graph:
                graph.add_node(name, composition={
                    s: int(c) for s, c in zip(network.species, col) if c})
        if graph.has_edge(a, b):
            edge = graph.edges[a, b]
            edge["rate"] += float(k[r])
            edge["reactions"] += (int(r),)
        else:
            graph.add_edge(a, b, rate=float(k[r]), reaction=int(r), reactions=(int(r),),
                           text=f"{a} -> {b}")


def graph_layout(graph: nx.DiGraph, *, seed: int = 0, iterations: int = 100
                 ) -> dict[str, np.ndarray]:
    """Return node positions ``{node: (x, y)}`` in about [−1, 1]², deterministic given ``seed``.

    A spring layout (``k = 5/√n``) on the undirected graph whose spring between two complexes
    is the sum of ``max(MIN_ALPHA, weight)`` over the reactions joining them, so strongly
    reacting complexes sit closer together.

    Parameters
    ----------
    graph : networkx.DiGraph
        A graph of :func:`reaction_graph`.
    seed : int, optional
        Seed of the layout (default 0).
    iterations : int, optional
        Spring-layout iterations (default 100).

    Returns
    -------
    dict[str, numpy.ndarray]
        ``(2,)`` position per node (empty for an empty graph, the origin for one node).
    """
    springs = nx.Graph()
    springs.add_nodes_from(graph.nodes)
    for a, b, w in graph.edges(data="weight"):
        if a == b:
            continue
        s = max(MIN_ALPHA, float(w))
        if springs.has_edge(a, b):
            springs.edges[a, b]["weight"] += s
        else:
            springs.add_edge(a, b, weight=s)
    n = springs.number_of_nodes()
    if n == 0:
        return {}
    if n == 1:
        return {next(iter(springs.nodes)): np.zeros(2)}
    pos = nx.spring_layout(springs, k=5.0 / np.sqrt(n), iterations=iterations,
                           weight="weight", seed=seed)
    return {node: np.asarray(p, dtype=float) for node, p in pos.items()}


def graph_caption(graph: nx.DiGraph) -> str:
    """Return the figure's caption: reactions shown and hidden (and why).

    Parameters
    ----------
    graph : networkx.DiGraph
        A graph of :func:`reaction_graph`.

    Returns
    -------
    str
        E.g. ``"53 of 100 reactions shown; 47 hidden (k < 0.136 = 0.05 × max k, or k = 0)"``.
    """
    n_all = graph.graph["n_reactions"]
    n_shown = len(graph.graph["shown"])
    n_hidden = len(graph.graph["hidden"])
    text = f"{n_shown} of {n_all} reactions shown"
    threshold = graph.graph["threshold"]
    if n_hidden and threshold > 0:
        why = f"k < {threshold:.3g}"
        if graph.graph.get("max_reactions") is not None:
            why += f": only the {graph.graph['max_reactions']} largest kept"
        else:
            why += f" = {graph.graph['min_fraction']:g} × max k"
        text += f"; {n_hidden} hidden ({why})"
    elif n_hidden:
        text += f"; {n_hidden} hidden (k = 0)"
    loops = sum(1 for a, b in graph.edges if a == b)
    if loops:
        text += f"; {loops} reaction(s) without net change not drawn"
    return text


def _legend_handles(rates: np.ndarray, scale: WeightScale, min_width: float,
                    max_width: float) -> list[Line2D]:
    """Sample arrows for the largest, middle and smallest shown rate constant."""
    k_lo, k_hi = float(rates.min()), float(rates.max())
    if not k_hi > k_lo:
        samples = [(k_hi, 1.0)]
    else:
        k_mid = np.sqrt(k_lo * k_hi) if scale == "log" else 0.5 * (k_lo + k_hi)
        samples = [(k_hi, 1.0), (float(k_mid), 0.5), (k_lo, 0.0)]
    return [Line2D([], [], color=(0.0, 0.0, 0.0, max(MIN_ALPHA, w)),
                   lw=min_width + (max_width - min_width) * w, label=f"k = {k:.3g}")
            for k, w in samples]


def plot_reaction_graph(
    network: ReactionNetwork,
    rates: Sequence[float] | np.ndarray | None,
    path: str | Path,
    title: str | None = None,
    *,
    min_fraction: float = DEFAULT_MIN_FRACTION,
    max_reactions: int | None = None,
    scale: WeightScale = "linear",
    seed: int = 0,
    size_in: tuple[float, float] = (8.0, 8.0),
    dpi: int = 150,
    max_width: float = 4.0,
    min_width: float = 0.5,
    curvature: float = 0.2,
    font_size: float = 9.0,
) -> Path:
    """Draw the reaction graph of ``network`` with ``rates`` and save it (PNG).

    Edges curve (``arc3``, ``rad = curvature``) so a reverse pair shows as two arrows; an
    edge's opacity is ``max(0.05, w)`` and its line width ``min_width + (max_width −
    min_width)·w`` points, ``w`` its weight in [0, 1]. Nodes are labelled with their complex.
    The caption under the graph counts the reactions shown and hidden.

    Parameters
    ----------
    network, rates, min_fraction, max_reactions, scale
        As in :func:`reaction_graph`.
    path : str or Path
        Output image (parent folders are created).
    title : str or None, optional
        Figure title.
    seed : int, optional
        Layout seed; the same seed gives the same picture (default 0).
    size_in : (float, float), optional
        Figure size, inches; the image is ``size_in · dpi`` pixels.
    dpi : int, optional
        Output resolution (default 150).
    max_width, min_width : float, optional
        Line widths (points) of the strongest and weakest shown edge (default 4 and 0.5).
    curvature : float, optional
        Edge bend (default 0.2; 0: straight, reverse pairs then overlap).
    font_size : float, optional
        Node label size, points (default 9).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        Not ``0 ≤ min_width ≤ max_width``, or bad rates or options as in
        :func:`reaction_graph`.
    """
    if not (0.0 <= min_width <= max_width):
        raise ParameterError(
            f"need 0 ≤ min_width ≤ max_width, got min_width={min_width!r}, "
            f"max_width={max_width!r}")
    graph = reaction_graph(network, rates, min_fraction=min_fraction,
                           max_reactions=max_reactions, scale=scale)
    pos = graph_layout(graph, seed=seed)
    fig = Figure(figsize=size_in, dpi=dpi)
    ax = fig.add_axes((0.03, 0.07, 0.94, 0.85 if title else 0.9))
    ax.set_axis_off()
    if pos:
        _fit_limits(ax, pos)
    labels = _node_labels(ax, graph, pos, font_size)
    # Text boxes get their display positions only when drawn; do that once so the arrows can
    # be clipped to the boxes' outlines.
    fig.draw_without_rendering()
    _draw_arrows(ax, graph, pos, labels, curvature, min_width, max_width)
    _rate_legend(ax, graph, scale, min_width, max_width)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.text(0.02, 0.02, graph_caption(graph), fontsize=8, color="0.3", ha="left", va="bottom")
    return save_figure(fig, path)


def _rate_legend(ax, graph: nx.DiGraph, scale: WeightScale, min_width: float,
                 max_width: float) -> None:
    """Add the legend of sample arrows for the shown rate constants (none if none shown)."""
    rates_shown = np.array([data["rate"] for _, _, data in graph.edges(data=True)])
    if rates_shown.size:
        ax.legend(handles=_legend_handles(rates_shown, scale, min_width, max_width),
                  loc="lower right", fontsize=8, frameon=False, title="rate constant",
                  title_fontsize=8)


def _fit_limits(ax, pos: dict[str, np.ndarray]) -> None:
    """Set the axes' limits to the node positions with a margin for the labels."""
    xy = np.array(list(pos.values()))
    span = np.maximum(xy.max(axis=0) - xy.min(axis=0), 1e-9)
    lo, hi = xy.min(axis=0) - 0.12 * span - 0.1, xy.max(axis=0) + 0.12 * span + 0.1
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])


def _node_labels(ax, graph: nx.DiGraph, pos: dict[str, np.ndarray], font_size: float
                 ) -> dict:
    """Write each complex in a rounded box at its position; return the text artists."""
    return {
        node: ax.text(*pos[node], node, ha="center", va="center", fontsize=font_size,
                      zorder=3, bbox=dict(boxstyle="round,pad=0.3", fc="#f3f6fa", ec="0.45",
                                          lw=0.8))
        for node in graph.nodes
    }


def _draw_arrows(ax, graph: nx.DiGraph, pos: dict[str, np.ndarray], labels: dict,
                 curvature: float, min_width: float, max_width: float) -> None:
    """Draw each reaction as a curved arrow between the label boxes, weakest first."""
    for a, b, data in sorted(graph.edges(data=True), key=lambda e: e[2]["weight"]):
        if a == b:
            continue
        w = data["weight"]
        arrow = FancyArrowPatch(
            pos[a], pos[b], arrowstyle="-|>", connectionstyle=f"arc3,rad={curvature}",
            mutation_scale=8.0 + 8.0 * w, lw=min_width + (max_width - min_width) * w,
            color=(0.0, 0.0, 0.0, max(MIN_ALPHA, w)), patchA=labels[a].get_bbox_patch(),
            patchB=labels[b].get_bbox_patch(), shrinkA=1.0, shrinkB=1.0, zorder=2,
        )
        ax.add_patch(arrow)
