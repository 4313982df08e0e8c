"""Figures of reaction discovery.

Learned against true trajectories (the paper's Fig. 4.8) and the error against the number
of proposed reactions (Fig. 4.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rdlab.errors import ParameterError
from rdlab.viz.layout import save_figure

__all__ = ["save_reaction_sweep", "save_trajectory_comparison"]


def save_trajectory_comparison(path: str | Path, times: np.ndarray, reference: np.ndarray,
                               learned: np.ndarray, species: Sequence[str], *,
                               title: str | None = None,
                               reference_label: str = "true") -> Path:
    """Save the concentrations of every species against time, reference and learned.

    ``reference`` is drawn as solid lines, ``learned`` as dashed lines of the same colour.

    Parameters
    ----------
    path : str or Path
        Output image.
    times : numpy.ndarray
        ``(n_t,)``.
    reference, learned : numpy.ndarray
        ``(n_t, n_s)`` each.
    species : sequence of str
        The species names, ``n_s``.
    title : str or None, optional
        Axes title.
    reference_label : str, default "true"
        Legend label of the reference.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        For trajectories of other shapes, or a wrong number of names.
    """
    ref = np.asarray(reference, dtype=float)
    lrn = np.asarray(learned, dtype=float)
    if ref.shape != lrn.shape or ref.ndim != 2 or ref.shape[0] != len(times):
        raise ParameterError(f"trajectories must both be (n_t={len(times)}, n_s); got "
                             f"{ref.shape} and {lrn.shape}")
    if ref.shape[1] != len(species):
        raise ParameterError(f"{len(species)} species names for {ref.shape[1]} columns")
    fig = Figure(figsize=(7.0, 4.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    colors = [f"C{i % 10}" for i in range(len(species))]
    for k, name in enumerate(species):
        ax.plot(times, ref[:, k], color=colors[k], lw=1.8, label=f"{name} ({reference_label})")
        ax.plot(times, lrn[:, k], color=colors[k], lw=1.2, ls="--", label=f"{name} (learned)")
    ax.set_xlabel("time")
    ax.set_ylabel("concentration")
    ax.legend(fontsize=7, ncol=2, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def save_reaction_sweep(path: str | Path, n_reactions: Sequence[int],
                        train_error: Sequence[float], validation_error: Sequence[float], *,
                        chosen: int | None = None, title: str | None = None) -> Path:
    """Save the relative error of the derivatives against the number of proposed reactions.

    Parameters
    ----------
    path : str or Path
        Output image.
    n_reactions : sequence of int
        The numbers of reactions proposed.
    train_error, validation_error : sequence of float
        Relative L2 errors of du/dt of each fit.
    chosen : int or None, optional
        The chosen n_r, marked by a vertical line.
    title : str or None, optional
        Axes title.

    Returns
    -------
    Path
        ``path``.
    """
    n = np.asarray(n_reactions)
    fig = Figure(figsize=(5.0, 3.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ax.semilogy(n, np.maximum(train_error, 1e-16), "o-", label="train")
    ax.semilogy(n, np.maximum(validation_error, 1e-16), "s--", label="validation")
    if chosen is not None:
        ax.axvline(chosen, color="0.5", lw=0.8, ls=":", label=f"chosen n_r = {chosen}")
    ax.set_xticks(n)
    ax.set_xlabel("number of proposed reactions n_r")
    ax.set_ylabel("relative L2 error of du/dt")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
