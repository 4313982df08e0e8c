"""Choosing the number of reactions (Remark 3.2).

Fit with n_r = 1, 2, …, keep the smallest that explains the data.

Proposed reactions beyond the true number end up as zero rows or duplicates and are pruned
by the estimator, so a larger n_r gives the same mechanism; a smaller one cannot fit.

Two rules keep a sweep from spending its whole budget on fits that cannot succeed:

* **lower bound** (:func:`stoichiometric_rank`): every reaction (a reversible pair counts
  as one) moves the concentrations along its own row of V, so the changes ``c(t) − c(t_0)``
  of every sample lie in the span of the rows, and ``n_r ≥ rank`` of those changes. Numbers
  of reactions below this rank cannot fit and are not tried (``skipped``); the rank counts
  only singular values above the noise (so it can come out too low, which only tries more,
  never too high). Derivatives are not needed.
* **stop early** (``stop_early``, what ``rdlab discover --sweep`` does): once an n_r
  converges, larger ones are not fitted — by Remark 3.2 they give the same mechanism, and the
  choice is the smallest that converged anyway.

``on_result`` is called after every fit with the sweep so far, so a caller can write each
result as it finishes (``rdlab discover`` rewrites ``sweep.json`` and ``sweep.txt``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from rdlab.discover.data import ReactionData
from rdlab.discover.estimator import ReactionDiscovery
from rdlab.errors import ParameterError

__all__ = ["ReactionSweep", "stoichiometric_rank", "sweep_reactions"]


@dataclass
class ReactionSweep:
    """One fit per proposed number of reactions (those not skipped).

    Parameters
    ----------
    n_reactions : list of int
        The numbers of reactions fitted.
    train_error, validation_error : list of float
        Errors of each fit.
    converged : list of bool
        Whether each fit converged.
    kept : list of int
        The number of reactions left after pruning, per fit.
    fits : list of ReactionDiscovery
        The fitted estimators.
    chosen : int or None
        The selected n_r (``None`` while the sweep is under way).
    seconds : list of float
        Wall time of each fit, s.
    skipped : dict of int to str
        The numbers of reactions not fitted, with the reason.
    lower_bound : int
        The rank lower bound on n_r (:func:`stoichiometric_rank`; 0 when not used).
    total_seconds : float
        Wall time of the whole sweep so far, s.
    """

    n_reactions: list[int]
    train_error: list[float]
    validation_error: list[float]
    converged: list[bool]
    kept: list[int]
    fits: list[ReactionDiscovery]
    chosen: int | None
    seconds: list[float] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    lower_bound: int = 0
    total_seconds: float = 0.0

    @property
    def best(self) -> ReactionDiscovery:
        """The fitted estimator of the chosen n_r."""
        return self.fits[self.n_reactions.index(self.chosen)]

    def table(self) -> str:
        """Return the sweep as a text table, the chosen row marked, skipped ones named.

        Returns
        -------
        str
            The table.
        """
        lines = ["n_r  kept  converged  train error  validation error  seconds"]
        rows = {n: i for i, n in enumerate(self.n_reactions)}
        for n in sorted({*rows, *self.skipped}):
            if n not in rows:
                lines.append(f"{n:>3}  not fitted: {self.skipped[n]}")
                continue
            i = rows[n]
            mark = "  ← chosen" if n == self.chosen else ""
            secs = self.seconds[i] if i < len(self.seconds) else float("nan")
            lines.append(f"{n:>3}  {self.kept[i]:>4}  {str(self.converged[i]):>9}  "
                         f"{self.train_error[i]:11.3e}  {self.validation_error[i]:16.3e}  "
                         f"{secs:7.1f}{mark}")
        lines.append(f"sweep: {len(self.fits)} fit(s) in {self.total_seconds:.1f} s")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Return the sweep as plain Python values (with each fit's mechanism).

        Returns
        -------
        dict
            The lists, ``chosen``, ``skipped`` (by n_r), ``lower_bound``, ``seconds``,
            ``total_seconds`` and ``mechanisms`` by n_r.
        """
        return {"n_reactions": self.n_reactions, "train_error": self.train_error,
                "validation_error": self.validation_error, "converged": self.converged,
                "kept": self.kept, "chosen": self.chosen, "seconds": self.seconds,
                "skipped": {str(n): why for n, why in self.skipped.items()},
                "lower_bound": self.lower_bound, "total_seconds": self.total_seconds,
                "mechanisms": {str(n): f.mechanism_.to_dict()
                               for n, f in zip(self.n_reactions, self.fits)}}


def stoichiometric_rank(data: ReactionData, noise_level: float = 0.0) -> int:
    """Return the rank of the concentration changes: a lower bound on the number of reactions.

    The changes ``c(t_i) − c(t_0)`` of all samples, ``(N, n_s)``, lie in the span of the rows
    of V (one per reaction, a reversible pair counting once). A singular value counts when it
    is above both ``1e-6`` of the largest and the noise: ``3·√2·σ·(√N + √n_s)``, the largest
    singular value of an ``N × n_s`` matrix of differences of noise of standard deviation
    ``σ = max(noise_level·rms(c), σ̂)``, with ``σ̂`` read off the second differences in time
    (``mean(Δ²c²)/6``; curvature makes it too large, which only lowers the bound).

    Parameters
    ----------
    data : ReactionData
        The data (concentrations only are used).
    noise_level : float, default 0.0
        Known multiplicative noise on the concentrations.

    Returns
    -------
    int
        The rank, 0 … n_s.
    """
    c = np.asarray(data.concentrations, dtype=float)
    if c.shape[1] < 2:
        return 0
    dc = (c[:, 1:] - c[:, :1]).reshape(-1, c.shape[2])
    sv = np.linalg.svd(dc, compute_uv=False)
    if sv.size == 0 or sv[0] == 0:
        return 0
    rms = float(np.sqrt(np.mean(c ** 2)))
    sigma = noise_level * rms
    if c.shape[1] >= 3:
        d2 = c[:, 2:] - 2.0 * c[:, 1:-1] + c[:, :-2]
        sigma = max(sigma, float(np.sqrt(np.mean(d2 ** 2) / 6.0)))
    floor = 3.0 * np.sqrt(2.0) * sigma * (np.sqrt(dc.shape[0]) + np.sqrt(dc.shape[1]))
    return int(np.sum(sv > max(1e-6 * sv[0], floor)))


def _choose(values: list[int], conv: list[bool], va: list[float], factor: float) -> int:
    """Return the smallest converged n_r, else the smallest within ``factor`` of the best."""
    if any(conv):
        return values[conv.index(True)]
    best = min(va)
    return next(n for n, e in zip(values, va) if e <= factor * best)


def sweep_reactions(data: ReactionData, n_values: Sequence[int] = (1, 2, 3, 4), *,
                    factor: float = 10.0, lower_bound: bool = True, stop_early: bool = False,
                    on_result: Callable[[ReactionSweep], None] | None = None,
                    **estimator_params) -> ReactionSweep:
    """Fit ``data`` once per ``n_r`` in ``n_values`` and choose one.

    The choice is the smallest n_r that converged (every species within the estimator's
    tolerance); when none did, the smallest whose validation error is within ``factor`` of
    the best one. See the module docstring for the lower bound and stopping early.

    Parameters
    ----------
    data : ReactionData
        The data.
    n_values : sequence of int, default (1, 2, 3, 4)
        Numbers of reactions, each ≥ 1.
    factor : float, default 10.0
        Tolerance on the validation error when no fit converged.
    lower_bound : bool, default True
        Skip numbers of reactions below :func:`stoichiometric_rank` (unless that would
        leave none: then only the largest is fitted).
    stop_early : bool, default False
        Stop after the first n_r that converges (``False`` fits every one, as the paper's
        Fig. 4.5 does).
    on_result : callable or None, optional
        Called with the sweep so far after each fit.
    **estimator_params
        Parameters of :class:`ReactionDiscovery` (``progress`` also shows a bar over n_r).

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
    t0 = time.perf_counter()
    sw = ReactionSweep([], [], [], [], [], [], None)
    if lower_bound:
        sw.lower_bound = stoichiometric_rank(data, estimator_params.get("noise_level", 0.0))
        below = [n for n in values if n < sw.lower_bound][:len(values) - 1]
        sw.skipped = {n: f"below the lower bound {sw.lower_bound} (rank of the concentration "
                         "changes)" for n in below}
    todo = [n for n in values if n not in sw.skipped]
    bar = tqdm(todo, desc="sweep n_r", unit="fit",
               disable=not estimator_params.get("progress", False))
    for n in bar:
        if stop_early and any(sw.converged):
            sw.skipped[n] = f"n_r = {sw.n_reactions[sw.converged.index(True)]} converged"
            continue
        bar.set_postfix(n_r=n)
        t = time.perf_counter()
        est = ReactionDiscovery(n, **estimator_params).fit(data)
        sw.seconds.append(time.perf_counter() - t)
        sw.fits.append(est)
        sw.n_reactions.append(n)
        sw.train_error.append(float(est.train_error_))
        sw.validation_error.append(float(est.validation_error_))
        sw.converged.append(bool(est.converged_))
        sw.kept.append(int(np.sum(np.any(est.mechanism_.V != 0, axis=1))))
        sw.total_seconds = time.perf_counter() - t0
        if on_result is not None:
            on_result(sw)
    bar.close()
    sw.chosen = _choose(sw.n_reactions, sw.converged, sw.validation_error, factor)
    sw.total_seconds = time.perf_counter() - t0
    return sw
