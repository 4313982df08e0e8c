"""Mean ± standard-deviation bands of a metric against time, one band per condition.

The Dense-RDN control figures (2c, 3c, 7, 8) compare an optimised model with its ablations —
"Optimized", "Random X0", "Initial θΨ", "Random θΨ" — by the mean of a metric (correlation
with the target, dissipation rate) over ``n`` randomised runs, drawn as a solid line, and a
band of ± one standard deviation. The optimised time window ``t ≤ T_opt`` can be shaded.

A control may blow up (NaN/Inf). Such values are never plotted and never silently averaged:
by default a run with any non-finite value is left out of its condition entirely (its late
times would otherwise be averaged over the survivors only), and the legend says how many runs
were used and how many were excluded. ``nan_policy="point"`` instead leaves out only the
non-finite points, so the number of runs may vary with time (the legend gives its range).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.figure import Figure

from rdlab.errors import ParameterError
from rdlab.viz.layout import save_figure

NanPolicy = Literal["run", "point"]

#: The four control conditions of the paper, in its colour order (tab10 blue, orange, green,
#: red).
CONTROL_CONDITIONS: tuple[str, ...] = ("Optimized", "Random X0", "Initial θΨ", "Random θΨ")


@dataclass(frozen=True, eq=False)
class BandStats:
    """Statistics of one condition.

    Attributes
    ----------
    mean : numpy.ndarray
        ``(T,)`` mean over the runs used (NaN where no run is usable).
    std : numpy.ndarray
        ``(T,)`` standard deviation (``ddof`` as requested; NaN where fewer than
        ``ddof + 1`` runs are usable).
    count : numpy.ndarray
        ``(T,)`` number of runs used at each time.
    n_runs : int
        Runs given.
    n_excluded : int
        Runs left out entirely (``nan_policy="run"``: runs with any non-finite value;
        ``"point"``: runs with no finite value at all).
    """

    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    n_runs: int
    n_excluded: int

    @property
    def n_used(self) -> int:
        """Runs contributing to at least one time point."""
        return self.n_runs - self.n_excluded


def _as_runs(values: np.ndarray | Sequence[float], name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ParameterError(
            f"{name} must have shape (n_runs, T) with n_runs, T ≥ 1; got {np.shape(values)}"
        )
    return arr


def band_statistics(
    values: np.ndarray | Sequence[float], *, nan_policy: NanPolicy = "run", ddof: int = 0
) -> BandStats:
    """Return the mean and standard deviation over runs of ``values``.

    Parameters
    ----------
    values : array_like
        ``(n_runs, T)`` the metric of each run at each time (``(T,)``: one run).
    nan_policy : {"run", "point"}, optional
        ``"run"`` (default) drops every run holding a NaN/Inf; ``"point"`` drops only the
        non-finite points.
    ddof : int, optional
        Delta degrees of freedom of the standard deviation (0, default: population std, as
        ``numpy.std``; 1: sample std).

    Returns
    -------
    BandStats
        Computed without warnings: time points with no usable run get a NaN mean (a gap in
        the plot), not an error.

    Raises
    ------
    ParameterError
        An unknown ``nan_policy``, a negative or non-integer ``ddof``, or ``values`` not of
        shape ``(n_runs, T)`` with ``n_runs, T ≥ 1``.
    """
    if nan_policy not in ("run", "point"):
        raise ParameterError(f"nan_policy must be 'run' or 'point', got {nan_policy!r}")
    if int(ddof) != ddof or ddof < 0:
        raise ParameterError(f"ddof must be a non-negative integer, got {ddof!r}")
    arr = _as_runs(values)
    finite = np.isfinite(arr)
    if nan_policy == "run":
        ok_run = finite.all(axis=1)
        use = np.broadcast_to(ok_run[:, None], arr.shape)
    else:
        ok_run = finite.any(axis=1)
        use = finite
    count = use.sum(axis=0)
    x = np.where(use, arr, 0.0)
    has = count > 0
    mean = np.full(arr.shape[1], np.nan)
    mean[has] = x[:, has].sum(axis=0) / count[has]
    dev = np.where(use, x - np.where(has, mean, 0.0), 0.0)
    enough = count > ddof
    std = np.full(arr.shape[1], np.nan)
    std[enough] = np.sqrt((dev[:, enough] ** 2).sum(axis=0) / (count[enough] - ddof))
    return BandStats(mean, std, count.astype(int), int(arr.shape[0]),
                     int(arr.shape[0] - ok_run.sum()))


def band_label(name: str, st: BandStats, nan_policy: NanPolicy = "run") -> str:
    """Return the legend text of a condition with its run count.

    Parameters
    ----------
    name : str
        The condition.
    st : BandStats
        Its statistics (:func:`band_statistics`).
    nan_policy : {"run", "point"}, optional
        The policy ``st`` was computed with (default ``"run"``).

    Returns
    -------
    str
        E.g. ``"Random θΨ (n = 30 of 32; 2 non-finite runs excluded)"``.
    """
    if st.n_used == 0:
        return f"{name} (all {st.n_runs} runs non-finite, not drawn)"
    if nan_policy == "point":
        lo, hi = int(st.count.min()), int(st.count.max())
        n = f"n = {hi}" if lo == hi else f"n = {lo}–{hi} of {st.n_runs}"
    else:
        n = f"n = {st.n_used}" if st.n_excluded == 0 else f"n = {st.n_used} of {st.n_runs}"
    if st.n_excluded:
        n += f"; {st.n_excluded} non-finite run{'s' if st.n_excluded > 1 else ''} excluded"
    elif nan_policy == "point" and int(st.count.min()) < st.n_runs:
        n += "; non-finite points excluded"
    return f"{name} ({n})"


def plot_bands(
    times: np.ndarray | Sequence[float],
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
    *,
    t_opt: float | None = None,
    xlabel: str = "time (s)",
    colors: Mapping[str, str] | None = None,
    nan_policy: NanPolicy = "run",
    ddof: int = 0,
    band_alpha: float = 0.25,
    size_in: tuple[float, float] = (6.4, 4.0),
    dpi: int = 150,
) -> Path:
    """Plot each condition's mean (solid line) and ± 1 std band against time; save it.

    Parameters
    ----------
    times : array_like
        ``(T,)`` times of the samples, in ``xlabel``'s unit.
    curves : Mapping[str, numpy.ndarray]
        Condition name → ``(n_runs, T)`` metric values (``(T,)``: one run); drawn in
        mapping order with matplotlib's default colours (so the paper's four conditions, in
        :data:`CONTROL_CONDITIONS` order, come out blue, orange, green, red).
    path : str or Path
        Output image (parent folders are created).
    ylabel : str
        What the metric is, with its unit (e.g. ``"Pearson r with target"``).
    title : str or None, optional
        Figure title.
    logy : bool, optional
        Logarithmic y axis (band parts ≤ 0 are cut at the axis bottom).
    t_opt : float or None, optional
        Shade ``t ≤ t_opt`` and draw a dashed line at ``t_opt``: the time window the
        optimisation saw.
    xlabel : str, optional
        x axis label (default ``"time (s)"``).
    colors : Mapping[str, str] or None, optional
        Colour per condition name (default matplotlib's cycle).
    nan_policy, ddof : optional
        As in :func:`band_statistics` (defaults ``"run"`` and 0).
    band_alpha : float, optional
        Opacity of the bands (default 0.25).
    size_in : (float, float), optional
        Figure size, inches; the image is ``size_in · dpi`` pixels.
    dpi : int, optional
        Resolution (default 150).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        Times that are not a finite 1-d array, no curve, a curve whose number of time
        points differs from ``times``, a non-finite ``t_opt``, or a bad ``nan_policy`` or
        ``ddof``.
    """
    t, stats = _checked_stats(times, curves, t_opt, nan_policy, ddof)
    fig = Figure(figsize=size_in, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    if logy:
        ax.set_yscale("log")
    if t_opt is not None:
        _shade_window(ax, float(t[0]), float(t_opt))
    _draw_bands(ax, t, stats, colors, nan_policy, band_alpha)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _checked_stats(times: np.ndarray | Sequence[float], curves: Mapping[str, np.ndarray],
                   t_opt: float | None, nan_policy: NanPolicy, ddof: int
                   ) -> tuple[np.ndarray, dict[str, BandStats]]:
    """Return the checked times and each condition's :class:`BandStats`."""
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
        raise ParameterError(f"times must be a finite 1-d array; got shape {t.shape}")
    if not curves:
        raise ParameterError("no curve to plot: curves is empty")
    if t_opt is not None and not np.isfinite(t_opt):
        raise ParameterError(f"t_opt must be finite, got {t_opt!r}")
    stats: dict[str, BandStats] = {}
    for name, values in curves.items():
        arr = _as_runs(values, f"curves[{name!r}]")
        if arr.shape[1] != t.size:
            raise ParameterError(
                f"curves[{name!r}] has {arr.shape[1]} time points, times has {t.size}")
        stats[name] = band_statistics(arr, nan_policy=nan_policy, ddof=ddof)
    return t, stats


def _shade_window(ax, t0: float, t_opt: float) -> None:
    """Shade the optimised window ``t ≤ t_opt`` and mark its end with a dashed line."""
    ax.axvspan(t0, t_opt, color="0.5", alpha=0.12, lw=0,
               label=f"optimised window (t ≤ {t_opt:g})")
    ax.axvline(t_opt, color="0.35", ls="--", lw=1.0)


def _draw_bands(ax, t: np.ndarray, stats: dict[str, BandStats],
                colors: Mapping[str, str] | None, nan_policy: NanPolicy,
                band_alpha: float) -> None:
    """Draw each condition's band and mean line, labelled with its run count."""
    for i, (name, st) in enumerate(stats.items()):
        color = (colors or {}).get(name, f"C{i % 10}")
        label = band_label(name, st, nan_policy)
        if st.n_used == 0:
            ax.plot([], [], color=color, label=label)
            continue
        lo, hi = st.mean - np.nan_to_num(st.std), st.mean + np.nan_to_num(st.std)
        ax.fill_between(t, lo, hi, color=color, alpha=band_alpha, lw=0)
        ax.plot(t, st.mean, color=color, lw=1.6, label=label)
