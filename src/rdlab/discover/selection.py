"""Choosing the number of reactions (Remark 3.2).

Fit with n_r = 1, 2, …, keep the smallest that explains the data.

Proposed reactions beyond the true number end up as zero rows or duplicates and are pruned
by the estimator, so a larger n_r gives the same mechanism; a smaller one cannot fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rdlab.discover.data import ReactionData
from rdlab.discover.estimator import ReactionDiscovery
from rdlab.errors import ParameterError

__all__ = ["ReactionSweep", "sweep_reactions"]


@dataclass
class ReactionSweep:
    """One fit per proposed number of reactions.

    Parameters
    ----------
    n_reactions : list of int
        The numbers of reactions proposed.
    train_error, validation_error : list of float
        Errors of each fit.
    converged : list of bool
        Whether each fit converged.
    kept : list of int
        The number of reactions left after pruning, per fit.
    fits : list of ReactionDiscovery
        The fitted estimators.
    chosen : int
        The selected n_r.
    """

    n_reactions: list[int]
    train_error: list[float]
    validation_error: list[float]
    converged: list[bool]
    kept: list[int]
    fits: list[ReactionDiscovery]
    chosen: int

    @property
    def best(self) -> ReactionDiscovery:
        """The fitted estimator of the chosen n_r."""
        return self.fits[self.n_reactions.index(self.chosen)]

    def table(self) -> str:
        """Return the sweep as a text table, the chosen row marked.

        Returns
        -------
        str
            The table.
        """
        lines = ["n_r  kept  converged  train error  validation error"]
        for n, k, c, tr, va in zip(self.n_reactions, self.kept, self.converged,
                                   self.train_error, self.validation_error):
            mark = "  ← chosen" if n == self.chosen else ""
            lines.append(f"{n:>3}  {k:>4}  {str(c):>9}  {tr:11.3e}  {va:16.3e}{mark}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Return the sweep as plain Python values (with each fit's mechanism).

        Returns
        -------
        dict
            The lists, ``chosen`` and ``mechanisms`` by n_r.
        """
        return {"n_reactions": self.n_reactions, "train_error": self.train_error,
                "validation_error": self.validation_error, "converged": self.converged,
                "kept": self.kept, "chosen": self.chosen,
                "mechanisms": {str(n): f.mechanism_.to_dict()
                               for n, f in zip(self.n_reactions, self.fits)}}


def sweep_reactions(data: ReactionData, n_values: Sequence[int] = (1, 2, 3, 4), *,
                    factor: float = 10.0, **estimator_params) -> ReactionSweep:
    """Fit ``data`` once per ``n_r`` in ``n_values`` and choose one.

    The choice is the smallest n_r that converged (every species within the estimator's
    tolerance); when none did, the smallest whose validation error is within ``factor`` of
    the best one.

    Parameters
    ----------
    data : ReactionData
        The data.
    n_values : sequence of int, default (1, 2, 3, 4)
        Numbers of reactions, each ≥ 1.
    factor : float, default 10.0
        Tolerance on the validation error when no fit converged.
    **estimator_params
        Parameters of :class:`ReactionDiscovery`.

    Returns
    -------
    ReactionSweep
        The fits and the choice.

    Raises
    ------
    ParameterError
        For a number of reactions below 1.
    """
    values = sorted({int(n) for n in n_values})
    if not values or values[0] < 1:
        raise ParameterError(f"numbers of reactions must be ≥ 1, got {list(n_values)}")
    fits, tr, va, conv, kept = [], [], [], [], []
    for n in values:
        est = ReactionDiscovery(n, **estimator_params).fit(data)
        fits.append(est)
        tr.append(float(est.train_error_))
        va.append(float(est.validation_error_))
        conv.append(bool(est.converged_))
        kept.append(int(np.sum(np.any(est.mechanism_.V != 0, axis=1))))
    if any(conv):
        chosen = values[conv.index(True)]
    else:
        best = min(va)
        chosen = next(n for n, e in zip(values, va) if e <= factor * best)
    return ReactionSweep(values, tr, va, conv, kept, fits, chosen)
