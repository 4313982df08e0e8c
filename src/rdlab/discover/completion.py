"""Complete a fitted mechanism with the rows its residual asks for (a score test).

A search can end one row short and still look noise-limited: on noisy hydrogen oxidation
(seed 2 of the benchmark) the all-rows fit pruned H2 + O → H2O and the rates of
H + OH → H2 + O and H + OH → H2O took over its flux, leaving a residual noise of 1.16× the
level the element balances measure. Given an independent noise level σ, the missing row
shows in the residual: :func:`~rdlab.discover.balances.residual_screen` sets every small
integer row of the stoichiometric subspace against what the fit misses (the part a refit of
its own rates and of the noisy starts explains projected out) and picks the row explaining
the most energy, if that is at least :data:`~rdlab.discover.balances.MIN_CHI2` σ².
:func:`completed_mechanism` returns the fit's live rows plus the picks, in the free slots
of the mechanism; the caller refits and judges it.
"""

from __future__ import annotations

import math

import numpy as np

from rdlab.discover.balances import residual_screen
from rdlab.discover.data import ReactionData
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.subspace import (
    MAX_RANK,
    integer_rows,
    neutral_rates,
    stoichiometric_subspace,
    subsample,
)
from rdlab.discover.trajectory_fit import TrajectoryFit

__all__ = ["COMPLETION_SAMPLES", "completed_mechanism", "live_rows"]

#: Samples the residual screen of a completion reads (spread over the data, as
#: :func:`~rdlab.discover.subspace.subsample` picks them): a row carrying a few per cent of
#: a flux is below the noise on 5 samples and well above it on 20.
COMPLETION_SAMPLES = 20


def live_rows(fit: TrajectoryFit) -> np.ndarray:
    """Return the indices of ``fit``'s rows with a direction that was neither pruned nor 0."""
    m = fit.mechanism
    pruned = set(fit.pruned)
    kf, kr = np.asarray(m.kf, float), np.asarray(m.kr, float)
    return np.array([i for i in range(m.n_reactions)
                     if (kf[i] > 0 and f"kf_{i + 1}" not in pruned)
                     or (kr[i] > 0 and f"kr_{i + 1}" not in pruned)], dtype=int)


def completed_mechanism(fit: TrajectoryFit, data: ReactionData, n_reactions: int,
                        noise: float, *, samples: int = COMPLETION_SAMPLES,
                        deadline: float = math.inf) -> tuple[Mechanism, list[int]] | None:
    """Return ``fit``'s live rows plus the rows the residual screen picks, and where they are.

    Parameters
    ----------
    fit : TrajectoryFit
        A trajectory fit of a mechanism in V form (no reactant orders, no Arrhenius
        parameters) to ``data``.
    data : ReactionData
        The measured concentrations ``(n, n_t, n_s)``.
    n_reactions : int
        Rows the mechanism may have (a reversible pair counts as one); the picks fill the
        slots left by pruned rows.
    noise : float
        Multiplicative noise level σ of the concentrations, measured independently of the
        fit (e.g. :func:`~rdlab.discover.elements.balance_noise`).
    samples : int, default COMPLETION_SAMPLES
        Samples the screen reads.
    deadline : float, default inf
        ``time.perf_counter()`` time after which
        :class:`~rdlab.discover.trajectory_fit.FitTimeout` is raised.

    Returns
    -------
    (Mechanism, list of int) or None
        The completed mechanism (live rows at their fitted rates, added rows, reversible, at
        :func:`~rdlab.discover.subspace.neutral_rates`) and the indices of the added rows;
        ``None`` when there is no free slot, the subspace is too large to enumerate
        (rank above :data:`~rdlab.discover.subspace.MAX_RANK`), or nothing explains the
        residual beyond the noise.
    """
    m = fit.mechanism
    if m.orders is not None or m.arrhenius is not None or noise <= 0:
        return None
    live = live_rows(fit)
    free = n_reactions - live.size
    basis = stoichiometric_subspace(data)
    if free <= 0 or not 0 < basis.shape[0] <= MAX_RANK:
        return None
    V = np.round(np.asarray(m.V, float))[live] + 0.0
    kf, kr = np.asarray(m.kf, float)[live], np.asarray(m.kr, float)[live]
    # the screen reads one irreversible row per active direction
    directions = np.vstack([V[kf > 0], -V[kr > 0]])
    rates = np.concatenate([kf[kf > 0], kr[kr > 0]])
    if not len(directions):
        return None
    present = {tuple(r) for r in np.vstack([V, -V])}
    rows = integer_rows(basis)
    candidates = np.array([r for r in np.vstack([rows, -rows]) if tuple(r) not in present])
    if not len(candidates):
        return None
    screened = Mechanism(m.species, directions, rates, np.zeros(len(rates)))
    picks = residual_screen(screened, candidates, subsample(data, samples),
                            deadline=deadline, noise=noise)
    added: list[np.ndarray] = []
    for j, _, _ in picks:  # both directions of one row count once
        row = candidates[j]
        if not any(np.array_equal(row, a) or np.array_equal(row, -a) for a in added):
            added.append(row)
    added = added[:free]
    if not added:
        return None
    new = np.asarray(added)
    start = neutral_rates(new, data)
    completed = Mechanism(m.species, np.vstack([V, new]), np.concatenate([kf, start[:, 0]]),
                          np.concatenate([kr, start[:, 1]]))
    return completed, list(range(len(live), len(live) + len(added)))
