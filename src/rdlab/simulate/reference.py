"""The slow, obvious NumPy reference of the model: the definition every engine is tested against.

Clarity over speed: explicit ``np.roll`` stencils, explicit loops over reactions.

State ``X``: ``(batch, species, y, x)`` on a grid, ``(batch, species)`` well mixed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from rdlab.chemistry.kinetics import mass_action_rates
from rdlab.simulate import guard
from rdlab.simulate.driver import PythonStepper, drive
from rdlab.simulate.trackers import RunawayGuard, StepCounter, Storage
from rdlab.system import STENCILS, System


def laplacian(field: np.ndarray, stencil: str = "9-point", dx: float = 1.0) -> np.ndarray:
    """Return the periodic discrete Laplacian over the last two axes (y, x).

    Parameters
    ----------
    field : numpy.ndarray
        Any array whose last two axes are (y, x).
    stencil : str, default "9-point"
        A name of :data:`~rdlab.system.STENCILS`.
    dx : float, default 1.0
        Grid spacing.

    Returns
    -------
    numpy.ndarray
        Shape of ``field``.
    """
    w = STENCILS[stencil]
    out = np.zeros_like(field)
    for a, b in itertools.product(range(3), range(3)):
        if w[a, b] != 0.0:
            # neighbour at offset (a-1, b-1): rolling by -(offset) brings it to the centre
            out = out + w[a, b] * np.roll(field, shift=(1 - a, 1 - b), axis=(-2, -1))
    return out / dx**2


def rhs(system: System, state: np.ndarray, flow_field: np.ndarray | None = None) -> np.ndarray:
    """Return ``dX/dt = S·v(X) + D∘∇²X + f·(x_feed − X)``.

    Parameters
    ----------
    system : System
        The system.
    state : numpy.ndarray
        ``(batch, species, y, x)`` on a grid, ``(batch, species)`` well mixed.
    flow_field : numpy.ndarray, optional
        Flow rate per cell replacing ``f`` (noisy drive), shape broadcastable to the state,
        e.g. ``(batch, 1, y, x)`` or ``(batch, species, y, x)``.

    Returns
    -------
    numpy.ndarray
        Shape of ``state``.
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
    """Return one forward-Euler step ``X + dt·rhs(X)``.

    Parameters
    ----------
    system : System
        The system.
    state : numpy.ndarray
        ``(batch, species, y, x)`` or ``(batch, species)``.
    dt : float
        Time step.
    flow_field : numpy.ndarray, optional
        Flow rate per cell replacing ``f`` (see :func:`rhs`).

    Returns
    -------
    numpy.ndarray
        The next state.
    """
    return state + dt * rhs(system, state, flow_field)


def run(system: System, state: np.ndarray, dt: float, n_steps: int,
        snapshot_steps: Sequence[int], flow_fields=None) -> np.ndarray:
    """Integrate with forward Euler for ``n_steps``, without run guards.

    Parameters
    ----------
    system : System
        The system.
    state : numpy.ndarray
        Initial state ``(batch, species, *spatial)``.
    dt : float
        Time step.
    n_steps : int
        Number of steps.
    snapshot_steps : sequence of int
        Steps to keep (0 = the initial state).
    flow_fields : callable, optional
        ``step -> flow field`` for a noisy drive.

    Returns
    -------
    numpy.ndarray
        The states after each snapshot step, shape ``(time, batch, species, *spatial)``.
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
    """Run :func:`run` with the run guards of every engine.

    Parameters
    ----------
    system : System
        The system.
    state : numpy.ndarray
        Initial state ``(batch, species, *spatial)``.
    dt : float
        Time step; must be stable.
    n_steps : int
        Number of steps.
    snapshot_steps : sequence of int
        Steps to keep (0 = the initial state).
    seed : int, optional
        Seed of ``numpy.random.default_rng`` for the noisy flow.
    check_every : int, default 64
        Steps between blow-up checks.
    progress : callable, optional
        ``progress(n_steps_done)``, called with the steps done since its previous call.
    runaway_limit : float, optional
        A concentration beyond ±this counts as a blow-up (default
        :data:`~rdlab.simulate.guard.RUNAWAY_LIMIT`).

    Returns
    -------
    numpy.ndarray
        The states after each snapshot step, shape ``(time, batch, species, *spatial)``.

    Raises
    ------
    SimulationError
        Naming the first bad step, found by replaying from the last good check.
    StabilityError
        If ``dt`` is unstable.
    """
    limit = guard.RUNAWAY_LIMIT if runaway_limit is None else runaway_limit
    stepper = NumpyStepper(system, state, dt, RunawayGuard(limit, check_every), seed)
    storage = Storage(sorted(set(int(s) for s in snapshot_steps)), state.dtype)
    trackers = [storage] + ([StepCounter(progress)] if progress is not None else [])
    drive(stepper, system.batch_size, int(n_steps), dt, trackers)
    return storage.data


class NumpyStepper(PythonStepper):
    """The reference engine as a :class:`~rdlab.simulate.driver.Stepper`.

    Parameters
    ----------
    system : System
        The system.
    state : numpy.ndarray
        Initial state, kept in its own dtype.
    dt : float
        Time step; must be stable.
    policy : RunawayGuard
        The blow-up policy.
    seed : int, optional
        Seed of ``numpy.random.default_rng`` for the noisy flow.

    Raises
    ------
    StabilityError
        If ``dt`` is unstable.
    SimulationError
        If the initial state already counts as a blow-up.
    """

    def __init__(self, system: System, state: np.ndarray, dt: float, policy: RunawayGuard,
                 seed: int | None = None):
        system.check_time_step(dt)
        self.dt = dt
        self.rng = np.random.default_rng(seed)
        super().__init__(system, np.array(state, copy=True), policy)

    def _step(self, x):
        """Return the state one step on."""
        return _step(self.system, x, self.dt, self.rng, x.dtype)

    def _bad(self, x):
        """Return a ``(batch,)`` mask of the samples that blew up."""
        return guard.bad_samples(x, self.policy.limit)

    def _numpy(self, x):
        """Return ``x`` (already a NumPy array)."""
        return x

    def _rng_state(self):
        """Return the noise generator's state."""
        return self.rng.bit_generator.state

    def _set_rng_state(self, state) -> None:
        """Restore the noise generator's state."""
        self.rng.bit_generator.state = state


def _step(system: System, x: np.ndarray, dt: float, rng: np.random.Generator, dtype):
    """Return one Euler step of ``x`` in ``dtype``, drawing the flow noise if any."""
    from rdlab.simulate import flow_noise

    ff = None
    if system.noise is not None:
        raw = flow_noise.raw_noise(rng, system.noise, x.shape)
        ff = flow_noise.flow_field(system.flow, system.noise, raw).astype(x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # the guard reports blow-ups
        return euler_step(system, x, dt, ff).astype(dtype, copy=False)
