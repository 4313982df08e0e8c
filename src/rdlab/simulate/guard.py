"""Run guards shared by every engine: stop on NaN/Inf or runaway concentrations.

Engines check the state every few steps (checking every step would cost time); when a check
fails they replay the failing sample from its last good state one step at a time, so that the
error names the **first** step at which a value went bad, not the check point.

The runaway limit is an option (``runaway_limit`` in a run's config, ``--runaway-limit`` on
the command line): a large but stable system may legitimately exceed the default.
"""

from __future__ import annotations

import numpy as np

from rdlab.checks import positive_number
from rdlab.errors import SimulationError

#: Default: a concentration whose magnitude exceeds this is treated as a numerical blow-up.
RUNAWAY_LIMIT = 1e6


def check_limit(limit) -> float:
    """``limit`` as a positive finite float, or a ParameterError naming it."""
    return positive_number(limit, "runaway limit")


def bad_samples(state: np.ndarray, limit: float = RUNAWAY_LIMIT) -> np.ndarray:
    """Boolean per sample (axis 0): holds NaN, ±Inf or a value beyond ±limit."""
    flat = np.abs(state.reshape(state.shape[0], -1))
    return ~(flat <= limit).all(axis=1)  # NaN compares False, so it counts as bad


def first_bad_sample(state: np.ndarray, limit: float = RUNAWAY_LIMIT) -> int | None:
    """Index of the first sample (axis 0) holding NaN, ±Inf or a value beyond ±limit."""
    bad = bad_samples(state, limit)
    return int(np.argmax(bad)) if bad.any() else None


def describe_sample(system, b: int) -> str:
    """The parameters of sample ``b`` of a :class:`~rdlab.system.System`, for messages."""
    net = system.network
    names = [n if n else f"k{r}" for r, n in enumerate(net.rate_names)]
    parts = [f"f={system.flow[b]:g}"]
    parts += [f"{n}={system.rates[b, r]:g}" for r, n in enumerate(names)][:12]
    if net.n_reactions > 12:
        parts.append("…")
    parts += [f"D_{s}={system.diffusion[b, i]:g}" for i, s in enumerate(net.species)][:8]
    coords = ", ".join(f"{k}={v[b]:g}" for k, v in system.coords.items())
    return ", ".join(parts) + (f" (sweep point {coords})" if coords else "")


def raise_blow_up(state_sample: np.ndarray, sample: int, step: int,
                  last_good_step: int | None = None, parameters: str = "",
                  limit: float = RUNAWAY_LIMIT, exact: bool = False) -> None:
    """Raise :class:`SimulationError` describing a blow-up of ``sample`` at ``step``.

    exact: ``step`` is the first step at which the state was bad (every earlier step was
    checked); otherwise it is the check point where it was found.
    """
    finite = np.isfinite(state_sample)
    what = ("NaN/Inf" if not finite.all()
            else f"runaway values (|X| up to {np.abs(state_sample).max():.3g} > the runaway "
                 f"limit {limit:g})")
    if exact:
        when = f"at step {step} (the first bad step)"
    else:
        window = (f", last checked good at step {last_good_step}"
                  if last_good_step is not None and last_good_step < step - 1 else "")
        when = f"at step {step} (found at this check{window})"
    hint = ("Reduce dt or check the parameters" if not finite.all() else
            "Reduce dt or check the parameters; if values this large are expected, raise "
            "the runaway limit (--runaway-limit)")
    raise SimulationError(
        f"simulation blew up: {what} in sample {sample} {when}"
        + (f"; parameters {parameters}" if parameters else "")
        + f". {hint}; nothing from this run was written."
    )


def check_state(state: np.ndarray, step: int, last_good_step: int | None = None,
                describe_sample=None, limit: float = RUNAWAY_LIMIT) -> None:
    """Raise if any sample of ``state`` (axis 0 = batch) has blown up at ``step``.

    describe_sample: optional callable ``sample -> str`` naming its parameters.
    """
    b = first_bad_sample(state, limit)
    if b is not None:
        raise_blow_up(state[b], b, step, last_good_step,
                      describe_sample(b) if describe_sample else "", limit)
