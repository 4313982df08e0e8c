"""Line plots of well-mixed trajectories: concentration of every species against time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rdlab.errors import ParameterError
from rdlab.viz.layout import save_figure


def save_time_series(
    path: str | Path,
    values: np.ndarray,
    times: np.ndarray,
    species_names: Sequence[str],
    *,
    title: str | None = None,
    max_samples: int = 8,
    log_y: bool = False,
) -> Path:
    """Plot concentrations against time and save the figure.

    Parameters
    ----------
    path : str or Path
        Output image (PNG or any format matplotlib writes).
    values : numpy.ndarray
        ``(time, species)`` for one run or ``(sample, time, species)`` for a batch; at most
        ``max_samples`` samples are drawn (one panel each).
    times : numpy.ndarray
        ``(time,)`` in the model's time unit.
    species_names : sequence of str
        One name per species (legend).
    title : str or None, optional
        Figure title.
    max_samples : int, default 8
        Most samples drawn.
    log_y : bool, default False
        Logarithmic concentration axis (for stiff kinetics spanning decades).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        When ``values`` does not match the times and species.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 2:
        arr = arr[None]
    t = np.asarray(times, dtype=float)
    if arr.ndim != 3 or arr.shape[1] != t.size or arr.shape[2] != len(species_names):
        raise ParameterError(
            f"time series of shape {np.shape(values)} does not match {t.size} times and "
            f"{len(species_names)} species; expected (sample, time, species)")
    n = min(arr.shape[0], max_samples)
    fig = Figure(figsize=(6.0, 2.6 * n), dpi=100)
    axes = fig.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
    for i, ax in enumerate(axes):
        for s, name in enumerate(species_names):
            ax.plot(t, arr[i, :, s], label=name, lw=1.4)
        if log_y:
            ax.set_yscale("log")
        ax.set_ylabel("concentration")
        if arr.shape[0] > 1:
            ax.set_title(f"sample {i}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=min(len(species_names), 6), loc="best")
    axes[-1].set_xlabel("time")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
