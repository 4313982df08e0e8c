"""The torch engine: the model of :mod:`rdlab.simulate.torch_model`, stepped for simulate().

It runs :func:`rdlab.simulate.simulate`'s ``engine="torch"`` on CPU or CUDA, in float32 or
float64, without gradients.

:func:`run` is the plain NumPy-in/NumPy-out entry point; :class:`TorchStepper` is the engine
as a :class:`~rdlab.simulate.driver.Stepper` for the one stepping loop. The model itself (the
right-hand side, the Euler step, the noisy flow, the differentiable roll-out) is defined once
in :mod:`rdlab.simulate.torch_model`; its names are re-exported here for the modules that
import them from the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from rdlab.errors import ParameterError
from rdlab.simulate import guard
from rdlab.simulate.driver import PythonStepper, drive
from rdlab.simulate.torch_model import (
    NetworkTensors,
    TorchParameters,
    check_snapshot_steps,
    euler_step,
    flow_field,
    laplacian,
    noisy_flow_field,
    raw_noise,
    reaction_rates,
    rhs,
    rollout,
    smooth_periodic,
    torch_dtype,
)
from rdlab.simulate.trackers import RunawayGuard, StepCounter, Storage
from rdlab.system import System

__all__ = [
    "NetworkTensors",
    "TorchParameters",
    "TorchStepper",
    "euler_step",
    "flow_field",
    "laplacian",
    "raw_noise",
    "reaction_rates",
    "rhs",
    "rollout",
    "run",
    "smooth_periodic",
    "torch_dtype",
]


# ---------------------------------------------------------------------------- NumPy entry
def run(
    system: System,
    state: np.ndarray,
    dt: float,
    n_steps: int,
    snapshot_steps: Sequence[int],
    *,
    dtype=np.float64,
    check_every: int = 64,
    progress: Callable[[int], None] | None = None,
    device: str = "cpu",
    seed: int | None = None,
    runaway_limit: float = guard.RUNAWAY_LIMIT,
) -> np.ndarray:
    """Integrate by forward Euler on a torch device and return the snapshots.

    Every ``check_every`` steps (and at each snapshot and the end) the state is checked for
    NaN/Inf or runaway values (:mod:`rdlab.simulate.guard`, naming the sample and step).

    Parameters
    ----------
    system : rdlab.system.System
        The batch of samples.
    state : numpy.ndarray
        Initial state ``(batch, species, *spatial)`` (one sample is broadcast).
    dt : float
        Time step (s), within the explicit stability limit.
    n_steps : int
        Number of steps.
    snapshot_steps : sequence of int
        Steps whose states are returned (0 = the initial state).
    dtype : numpy.dtype or str
        float32 or float64, the precision of the computation and of the result.
    check_every : int
        Steps between blow-up checks, a whole number ≥ 1.
    progress : callable or None
        Called after each check with the steps done since its last call.
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ...).
    seed : int or None
        Seed of the ``torch.Generator`` of a noisy flow (``system.noise``); its stream
        differs from the NumPy engine's.
    runaway_limit : float
        Largest absolute value a state may reach.

    Returns
    -------
    numpy.ndarray
        ``(time, batch, species, *spatial)`` of ``dtype``, one entry per distinct snapshot
        step.

    Raises
    ------
    ParameterError
        For bad steps, dtype, device or state.
    StabilityError
        For a time step beyond the explicit stability limit.
    SimulationError
        When a sample blows up (naming it and the step).
    """
    x0 = system.check_state(state)
    wanted = check_snapshot_steps(snapshot_steps, n_steps)
    if (not isinstance(check_every, (int, np.integer)) or isinstance(check_every, bool)
            or check_every < 1):
        raise ParameterError(f"check_every must be a whole number ≥ 1, got {check_every!r}")
    stepper = TorchStepper(system, x0, dt, RunawayGuard(runaway_limit, check_every), dtype,
                           device, seed)
    storage = Storage(wanted, stepper.np_dtype)
    trackers = [storage] + ([StepCounter(progress)] if progress is not None else [])
    with torch.no_grad():
        drive(stepper, system.batch_size, int(n_steps), dt, trackers)
    return storage.data


def _torch_device(device: str) -> torch.device:
    """Return ``device`` as a torch device, refusing unknown ones and CUDA without a GPU."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(f"unknown torch device {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return dev


def _seeded_generator(device: torch.device, seed: int | None) -> torch.Generator:
    """Return a generator on ``device`` seeded with ``seed`` (fresh entropy if ``None``)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


class TorchStepper(PythonStepper):
    """The torch engine as a :class:`~rdlab.simulate.driver.Stepper` (no gradients).

    Each step is :func:`rdlab.simulate.torch_model.euler_step`, with a fresh
    :func:`~rdlab.simulate.torch_model.noisy_flow_field` when the system has flow noise.

    Parameters
    ----------
    system : rdlab.system.System
        The batch of samples.
    state : numpy.ndarray
        Initial state ``(batch, species, *spatial)``.
    dt : float
        Time step (s), within the explicit stability limit.
    policy : rdlab.simulate.trackers.RunawayGuard
        The blow-up guard's limit, check interval and policy.
    dtype : numpy.dtype or str
        float32 or float64.
    device : str
        Torch device the state lives on.
    seed : int or None
        Seed of the ``torch.Generator`` of a noisy flow.

    Raises
    ------
    ParameterError
        For a bad dtype or device, or flow noise on a well-mixed system.
    StabilityError
        For a time step beyond the explicit stability limit.
    """

    def __init__(self, system: System, state: np.ndarray, dt: float, policy: RunawayGuard,
                 dtype=np.float64, device: str = "cpu", seed: int | None = None):
        system.check_time_step(dt)
        if system.noise is not None and system.grid is None:
            raise ParameterError("flow noise needs a grid; this system is well mixed")
        self.tdtype = torch_dtype(dtype)
        self.np_dtype = np.float32 if self.tdtype == torch.float32 else np.float64
        self.dev, self.dt = _torch_device(device), dt
        self.net = NetworkTensors.from_system(system, self.tdtype, self.dev)
        self.params = TorchParameters.from_system(system, self.tdtype, self.dev)
        self.generator = (None if system.noise is None
                          else _seeded_generator(self.dev, seed))
        x = torch.tensor(np.asarray(state), dtype=self.tdtype, device=self.dev)
        super().__init__(system, x, policy)

    def _step(self, x):
        """Take one Euler step of the current batch."""
        noise = self.system.noise
        ff = None if noise is None else noisy_flow_field(
            self.params.flow, noise, self.generator, x.shape, self.tdtype, self.dev)
        return euler_step(self.net, self.params, x, self.dt, ff)

    def _bad(self, x) -> np.ndarray:
        """Return which samples are non-finite or beyond the runaway limit."""
        limit = self.policy.limit
        return (~(x.reshape(x.shape[0], -1).abs() <= limit).all(dim=1)).cpu().numpy()

    def _numpy(self, x) -> np.ndarray:
        """Return ``x`` as a NumPy array."""
        return x.cpu().numpy()

    def _copy(self, x):
        """Return a copy of ``x``."""
        return x.clone()

    def _select(self, x, idx: np.ndarray):
        """Return the samples ``idx`` of ``x``."""
        return x[torch.as_tensor(idx, device=x.device)]

    def _subset(self, idx: np.ndarray) -> None:
        """Rebuild the parameters for the samples kept."""
        self.params = TorchParameters.from_system(self.system, self.tdtype, self.dev)

    def _rng_state(self):
        """Return the noise generator's state (``None`` without noise)."""
        return None if self.generator is None else self.generator.get_state()

    def _set_rng_state(self, state) -> None:
        """Restore the noise generator's state."""
        if self.generator is not None:
            self.generator.set_state(state)
