"""The slow, obvious NumPy reference of the model — the definition every engine is tested
against. Clarity over speed: explicit ``np.roll`` stencils, explicit loops over reactions.

State ``X``: ``(batch, species, y, x)`` on a grid, ``(batch, species)`` well mixed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from rdlab.chemistry.kinetics import mass_action_rates
from rdlab.system import STENCILS, System


def laplacian(field: np.ndarray, stencil: str = "9-point", dx: float = 1.0) -> np.ndarray:
    """Periodic discrete Laplacian over the last two axes (y, x)."""
    w = STENCILS[stencil]
    out = np.zeros_like(field)
    for a, b in itertools.product(range(3), range(3)):
        if w[a, b] != 0.0:
            # neighbour at offset (a-1, b-1): rolling by -(offset) brings it to the centre
            out = out + w[a, b] * np.roll(field, shift=(1 - a, 1 - b), axis=(-2, -1))
    return out / dx**2


def rhs(system: System, state: np.ndarray, flow_field: np.ndarray | None = None) -> np.ndarray:
    """``dX/dt = S·v(X) + D∘∇²X + f·(x_feed − X)``.

    flow_field: optional flow rate per cell replacing ``f`` (noisy drive), shape broadcastable
    to the state, e.g. ``(batch, 1, y, x)`` or ``(batch, species, y, x)``.
    """
    net = system.network
    spatial = state.shape[2:]
    expand = (slice(None), slice(None)) + (None,) * len(spatial)
    v = mass_action_rates(net.reactant_matrix, state, system.rates)
    S = net.stoichiometry
    out = np.zeros_like(state)
    for i in range(net.n_species):
        for r in range(net.n_reactions):
            if S[i, r] != 0:
                out[:, i] += S[i, r] * v[:, r]
    if system.grid is not None:
        out += system.diffusion[expand] * laplacian(state, system.grid.stencil, system.grid.dx)
    f = system.flow.reshape((-1,) + (1,) * (state.ndim - 1)) if flow_field is None else flow_field
    out += f * (system.feed[expand] - state)
    return out


def euler_step(system: System, state: np.ndarray, dt: float,
               flow_field: np.ndarray | None = None) -> np.ndarray:
    """One forward-Euler step ``X + dt·rhs(X)``."""
    return state + dt * rhs(system, state, flow_field)


def run(system: System, state: np.ndarray, dt: float, n_steps: int,
        snapshot_steps: Sequence[int], flow_fields=None) -> np.ndarray:
    """Forward Euler for ``n_steps``; returns the states after each step in ``snapshot_steps``
    (0 = the initial state), shape ``(time, batch, species, *spatial)``.

    flow_fields: optional callable ``step -> flow field`` for a noisy drive.
    """
    wanted = sorted(set(int(s) for s in snapshot_steps))
    out = np.empty((len(wanted),) + state.shape, dtype=state.dtype)
    x = state.copy()
    j = 0
    for step in range(n_steps + 1):
        while j < len(wanted) and wanted[j] == step:
            out[j] = x
            j += 1
        if step == n_steps:
            break
        ff = flow_fields(step) if flow_fields is not None else None
        x = euler_step(system, x, dt, ff)
    return out


def run_checked(system: System, state: np.ndarray, dt: float, n_steps: int,
                snapshot_steps: Sequence[int], *, seed: int | None = None,
                check_every: int = 64, progress=None, runaway_limit: float | None = None
                ) -> np.ndarray:
    """:func:`run` with the run guards of every engine: blow-up checks every ``check_every``
    steps (raising :class:`~rdlab.errors.SimulationError` that names the first bad step,
    found by replaying from the last good check), the noisy flow drawn from
    ``numpy.random.default_rng(seed)``, and ``progress(n_steps_done)`` callbacks."""
    from rdlab.simulate import guard

    limit = guard.check_limit(guard.RUNAWAY_LIMIT if runaway_limit is None else runaway_limit)
    system.check_time_step(dt)
    rng = np.random.default_rng(seed)
    wanted = sorted(set(int(s) for s in snapshot_steps))
    out = np.empty((len(wanted),) + state.shape, dtype=state.dtype)
    x = state.copy()
    good = (0, x.copy(), rng.bit_generator.state)
    j, done = 0, 0
    for step in range(n_steps + 1):
        if step % check_every == 0 or (j < len(wanted) and wanted[j] == step) \
                or step == n_steps:
            b = guard.first_bad_sample(x, limit)
            if b is not None:
                _raise_first_bad(system, good, step, b, dt, state.dtype, limit)
            good = (step, x.copy(), rng.bit_generator.state)
            if progress is not None and step > done:
                progress(step - done)
                done = step
        while j < len(wanted) and wanted[j] == step:
            out[j] = x
            j += 1
        if step == n_steps:
            break
        x = _step(system, x, dt, rng, state.dtype)
    return out


def _step(system: System, x: np.ndarray, dt: float, rng: np.random.Generator, dtype):
    from rdlab.simulate import flow_noise

    ff = None
    if system.noise is not None:
        raw = flow_noise.raw_noise(rng, system.noise, x.shape)
        ff = flow_noise.flow_field(system.flow, system.noise, raw).astype(x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # the guard reports blow-ups
        return euler_step(system, x, dt, ff).astype(dtype, copy=False)


def _raise_first_bad(system: System, good: tuple, found: int, sample: int, dt: float, dtype,
                     limit: float) -> None:
    """Replay from the last good check one step at a time and raise at the first bad step
    (the whole batch is replayed, so a noisy flow draws the same numbers)."""
    from rdlab.simulate import guard

    step, x, rng_state = good
    rng = np.random.default_rng()
    rng.bit_generator.state = rng_state
    x = x.copy()
    while step < found:
        x = _step(system, x, dt, rng, dtype)
        step += 1
        bad = guard.bad_samples(x, limit)
        if bad.any():
            b = int(np.argmax(bad))
            guard.raise_blow_up(x[b], b, step, good[0], guard.describe_sample(system, b), limit,
                                exact=True)
    guard.raise_blow_up(x[sample], sample, found, good[0],
                        guard.describe_sample(system, sample), limit)
