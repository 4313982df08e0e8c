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
    """Return ``limit`` as a positive finite float.

    Parameters
    ----------
    limit : float
        A runaway limit.

    Returns
    -------
    float
        The limit.

    Raises
    ------
    ParameterError
        If ``limit`` is not a positive finite number (naming it).
    """
    return positive_number(limit, "runaway limit")


def bad_samples(state: np.ndarray, limit: float = RUNAWAY_LIMIT) -> np.ndarray:
    """Return which samples (axis 0) hold NaN, ±Inf or a value beyond ±limit.

    Parameters
    ----------
    state : numpy.ndarray
        A batched state, batch on axis 0.
    limit : float, default RUNAWAY_LIMIT
        The runaway limit.

    Returns
    -------
    numpy.ndarray
        Boolean, shape ``(batch,)``.
    """
    flat = np.abs(state.reshape(state.shape[0], -1))
    return ~(flat <= limit).all(axis=1)  # NaN compares False, so it counts as bad


def first_bad_sample(state: np.ndarray, limit: float = RUNAWAY_LIMIT) -> int | None:
    """Return the first sample (axis 0) holding NaN, ±Inf or a value beyond ±limit.

    Parameters
    ----------
    state : numpy.ndarray
        A batched state, batch on axis 0.
    limit : float, default RUNAWAY_LIMIT
        The runaway limit.

    Returns
    -------
    int or None
        Its index, or ``None`` when every sample is good.
    """
    bad = bad_samples(state, limit)
    return int(np.argmax(bad)) if bad.any() else None


def describe_sample(system, b: int) -> str:
    """Describe the parameters of one sample of a system, for messages.

    Parameters
    ----------
    system : System
        The system.
    b : int
        The sample.

    Returns
    -------
    str
        ``f``, the first 12 rate constants, the first 8 diffusion coefficients and the
        sweep coordinates, if any.
    """
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

    Parameters
    ----------
    state_sample : numpy.ndarray
        The bad sample's state.
    sample : int
        Its index.
    step : int
        The step at which it was found bad.
    last_good_step : int, optional
        The last check at which it was good.
    parameters : str, default ""
        Its parameters (:func:`describe_sample`).
    limit : float, default RUNAWAY_LIMIT
        The runaway limit.
    exact : bool, default False
        ``step`` is the first step at which the state was bad (every earlier step was
        checked); otherwise it is the check point where it was found.

    Raises
    ------
    SimulationError
        Always.
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

    Parameters
    ----------
    state : numpy.ndarray
        A batched state.
    step : int
        The step it is at.
    last_good_step : int, optional
        The last check at which it was good.
    describe_sample : callable, optional
        ``sample -> str`` naming its parameters.
    limit : float, default RUNAWAY_LIMIT
        The runaway limit.

    Raises
    ------
    SimulationError
        If a sample holds NaN, ±Inf or a value beyond ±limit.
    """
    b = first_bad_sample(state, limit)
    if b is not None:
        raise_blow_up(state[b], b, step, last_good_step,
                      describe_sample(b) if describe_sample else "", limit)
