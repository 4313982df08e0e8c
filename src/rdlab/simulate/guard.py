"""Run guards shared by every engine: stop on NaN/Inf or runaway concentrations."""

from __future__ import annotations

import numpy as np

from rdlab.errors import SimulationError

#: A concentration whose magnitude exceeds this is treated as a numerical blow-up.
RUNAWAY_LIMIT = 1e6


def first_bad_sample(state: np.ndarray, limit: float = RUNAWAY_LIMIT) -> int | None:
    """Index of the first sample (axis 0) holding NaN, ±Inf or a value beyond ±limit."""
    flat = np.abs(state.reshape(state.shape[0], -1))
    bad = ~(flat <= limit).all(axis=1)  # NaN compares False, so it counts as bad
    return int(np.argmax(bad)) if bad.any() else None


def raise_blow_up(state_sample: np.ndarray, sample: int, step: int,
                  last_good_step: int | None = None, parameters: str = "") -> None:
    """Raise :class:`SimulationError` describing a blow-up of ``sample`` found at ``step``."""
    finite = np.isfinite(state_sample)
    what = ("NaN/Inf" if not finite.all()
            else f"runaway values (|X| up to {np.abs(state_sample).max():.3g} > {RUNAWAY_LIMIT:g})")
    window = (f" (last checked good at step {last_good_step})"
              if last_good_step is not None and last_good_step < step - 1 else "")
    raise SimulationError(
        f"simulation blew up: {what} in sample {sample} at step {step}{window}"
        + (f"; parameters {parameters}" if parameters else "")
        + ". Reduce dt or check the parameters; nothing from this run was written."
    )


def check_state(state: np.ndarray, step: int, last_good_step: int | None = None,
                describe_sample=None) -> None:
    """Raise if any sample of ``state`` (axis 0 = batch) has blown up at ``step``.

    describe_sample: optional callable ``sample -> str`` naming its parameters."""
    b = first_bad_sample(state)
    if b is not None:
        raise_blow_up(state[b], b, step, last_good_step,
                      describe_sample(b) if describe_sample else "")
