"""Engines behind one door: the engine protocol, its capabilities, and the registry.

An engine is a class registered under its name with :func:`register_engine`; the front
door (:func:`rdlab.simulate.simulate`), the CLI's ``--engine`` help, the config check and
the engine tests all read the registry, so adding an engine is one class here. Each engine
declares what it can do (:class:`Capabilities`) and the front door refuses the rest with a
message naming the engines that can.

Stepping engines (forward Euler on the grid or well mixed) provide a
:class:`~rdlab.simulate.driver.Stepper`; the one loop in :mod:`rdlab.simulate.driver` calls
the trackers between chunks of steps. The ``adjoint`` engine is the compiled design
engine (:mod:`rdlab.simulate.adjoint`) run forward only, without design's clip (which
:class:`~rdlab.system.System` does not express); design reaches its gradients through
:mod:`rdlab.design.compiled_rollout`, not through :func:`simulate`. The ``ode`` engine
integrates with an adaptive stiff solver to the times the trackers need and replays its
solution through the same loop.
Heavy modules (numba kernels, torch, scipy) are imported only when an engine runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rdlab.errors import ParameterError
from rdlab.registry import Registry
from rdlab.simulate.driver import Stepper, drive
from rdlab.simulate.trackers import RunawayGuard, Tracker
from rdlab.system import System

__all__ = ["Capabilities", "Engine", "SteppingEngine", "available_engines", "engine_help",
           "get_engine", "register_engine"]

#: Precisions every engine is asked for by name.
DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass(frozen=True)
class Capabilities:
    """What an engine can run.

    Parameters
    ----------
    grid : bool
        Runs periodic 2-D grids.
    well_mixed : bool
        Runs ``grid=None`` systems.
    noise : bool
        Runs a noisy flow (``System.noise``).
    differentiable : bool, default False
        Gives gradients through the roll-out (its model functions are torch operations).
    dtypes : tuple of str, default ("float32", "float64")
        Precisions it computes in.
    devices : tuple of str, default ("cpu",)
        Where it runs.
    stepping : bool, default True
        Takes forward-Euler steps of ``dt`` (bounded by the explicit stability limit)
        rather than an adaptive ODE solver reporting at ``step·dt``.
    drop_blow_ups : bool, default True
        Can stop only the samples that blow up (``RunawayGuard(on_blow_up="drop")``).
    """

    grid: bool
    well_mixed: bool
    noise: bool
    differentiable: bool = False
    dtypes: tuple[str, ...] = ("float32", "float64")
    devices: tuple[str, ...] = ("cpu",)
    stepping: bool = True
    drop_blow_ups: bool = True


_REGISTRY: Registry[type[Engine]] = Registry("engine", ParameterError, sort_listing=False)


def register_engine(cls: type[Engine]) -> type[Engine]:
    """Register an engine class as ``engine=cls.name`` (a class decorator).

    Parameters
    ----------
    cls : type of Engine
        The engine class; its ``name`` attribute is the registered name.

    Returns
    -------
    type of Engine
        ``cls`` itself.

    Raises
    ------
    TypeError
        If ``cls`` has no name.
    ValueError
        If another engine is registered under that name.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"engine class {cls.__name__} has no name")
    _REGISTRY.add(name, cls)
    return cls


def available_engines() -> tuple[str, ...]:
    """Return the names of the registered engines, in registration order."""
    return tuple(_REGISTRY)


def get_engine(name: str) -> type[Engine]:
    """Return the engine class registered as ``name``.

    Parameters
    ----------
    name : str
        A name of :func:`available_engines`.

    Returns
    -------
    type of Engine
        The engine class.

    Raises
    ------
    ParameterError
        If the name is unknown (the engines are listed).
    """
    return _REGISTRY.lookup(name)


def engine_help() -> str:
    """Return one entry per engine for help texts: ``name: summary``."""
    return "; ".join(f"{n}: {c.summary}" for n, c in _REGISTRY.items())


def _able(flag: str) -> list[str]:
    """Return the engines whose capability ``flag`` is true."""
    return [n for n, c in _REGISTRY.items() if getattr(c.capabilities, flag)]


class Engine(ABC):
    """The engine protocol.

    A name, a one-line summary, :class:`Capabilities`, the keyword options it takes, and
    :meth:`run`, which integrates ``state`` for ``n_steps`` of ``dt`` and calls
    ``trackers`` at its check points (see :mod:`rdlab.simulate.trackers`).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: keyword options of :meth:`run` beyond the common ones (e.g. ``device``, ``rtol``)
    options: ClassVar[tuple[str, ...]] = ()
    #: what the progress bar counts
    progress_unit: ClassVar[str] = "step"

    @classmethod
    def check(cls, system: System, dtype: str, guard: RunawayGuard,
              options: Mapping[str, object]) -> None:
        """Refuse what this engine cannot do, naming the engines that can.

        Parameters
        ----------
        system : System
            The system to run.
        dtype : str
            The requested precision.
        guard : RunawayGuard
            The blow-up policy.
        options : Mapping of str to object
            The engine options given.

        Raises
        ------
        ParameterError
            If an option is unknown, or the dtype, the grid (or its absence), flow noise,
            dropping blow-ups or the device is beyond :attr:`capabilities`.
        """
        caps = cls.capabilities
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            raise ParameterError(f"engine {cls.name!r} takes no option {unknown[0]!r}; its "
                                 f"options are {list(cls.options)}")
        if dtype not in caps.dtypes:
            raise ParameterError(f"engine {cls.name!r} runs in {' or '.join(caps.dtypes)}, "
                                 f"not {dtype}")
        if system.grid is not None and not caps.grid:
            g = system.grid
            raise ParameterError(
                f"the {cls.name} engine integrates a well-mixed reactor, but this system has "
                f"a {g.ny}×{g.nx} grid; build the System with grid=None, or use a grid engine "
                f"({', '.join(repr(n) for n in _able('grid'))})")
        if system.grid is None and not caps.well_mixed:
            raise ParameterError(f"the {cls.name} engine needs a grid; for a well-mixed "
                                 f"system use {' or '.join(repr(n) for n in _able('well_mixed'))}")
        if system.noise is not None and not caps.noise:
            raise ParameterError(f"the {cls.name} engine does not support flow noise; use "
                                 f"engine {' or '.join(repr(n) for n in _able('noise'))}")
        if guard.on_blow_up == "drop" and not caps.drop_blow_ups:
            raise ParameterError(f"the {cls.name} engine cannot drop samples that blow up "
                                 "(on_blow_up='drop'); it always raises")
        device = str(options.get("device", "cpu")).split(":")[0]
        if device not in caps.devices:
            raise ParameterError(f"the {cls.name} engine runs on {list(caps.devices)}, not "
                                 f"{options.get('device')!r}")

    @classmethod
    def check_time_step(cls, system: System, dt: float) -> None:
        """Refuse a time step this engine cannot take.

        A stepping engine needs a stable explicit step; an ODE solver any ``dt > 0``.

        Parameters
        ----------
        system : System
            The system to run.
        dt : float
            The time step.

        Raises
        ------
        StabilityError
            If a stepping engine's step is unstable (:meth:`System.check_time_step`).
        ParameterError
            If an ODE solver's ``dt`` is not a positive number.
        """
        if cls.capabilities.stepping:
            system.check_time_step(dt)
        elif not (isinstance(dt, (int, float, np.number)) and np.isfinite(dt) and dt > 0):
            raise ParameterError(f"dt must be a positive number, got {dt!r}")

    @classmethod
    @abstractmethod
    def run(cls, system: System, state: np.ndarray, *, dt: float, n_steps: int, dtype: str,
            seed: int | None, guard: RunawayGuard, trackers: Sequence[Tracker],
            **options) -> np.ndarray:
        """Integrate ``state``, calling ``trackers`` at the engine's check points.

        Parameters
        ----------
        system : System
            The system to run.
        state : numpy.ndarray
            The checked initial state ``(batch, species[, y, x])``.
        dt : float
            Time step.
        n_steps : int
            Number of steps.
        dtype : str
            Precision, a key of :data:`DTYPES`.
        seed : int or None
            Seed of the flow noise.
        guard : RunawayGuard
            The blow-up policy.
        trackers : sequence of Tracker
            Called during the run (see :mod:`rdlab.simulate.trackers`).
        **options
            The engine's own options (:attr:`options`).

        Returns
        -------
        numpy.ndarray
            ``stopped (batch,)``: the step at which each sample was stopped, −1 if never.
        """


class SteppingEngine(Engine):
    """An engine that takes forward-Euler steps through a :class:`Stepper`."""

    @classmethod
    @abstractmethod
    def stepper(cls, system: System, state: np.ndarray, dt: float, dtype: str,
                seed: int | None, guard: RunawayGuard, **options) -> Stepper:
        """Return the batch ready to be advanced.

        Parameters
        ----------
        system : System
            The system to run.
        state : numpy.ndarray
            The initial state ``(batch, species[, y, x])``.
        dt : float
            Time step.
        dtype : str
            Precision, a key of :data:`DTYPES`.
        seed : int or None
            Seed of the flow noise.
        guard : RunawayGuard
            The blow-up policy.
        **options
            The engine's own options.

        Returns
        -------
        Stepper
            The engine's stepper.
        """

    @classmethod
    def run(cls, system, state, *, dt, n_steps, dtype, seed, guard, trackers, **options):
        """Drive the :meth:`stepper` through :func:`~rdlab.simulate.driver.drive`."""
        stepper = cls.stepper(system, state, dt, dtype, seed, guard, **options)
        return drive(stepper, system.batch_size, int(n_steps), dt, trackers)


@register_engine
class FastEngine(SteppingEngine):
    """Forward Euler in generated multi-threaded numba kernels (the default)."""

    name = "fast"
    summary = "generated multi-threaded numba kernels (CPU; default)"
    capabilities = Capabilities(grid=True, well_mixed=True, noise=False)

    @classmethod
    def stepper(cls, system, state, dt, dtype, seed, guard, **options):
        from rdlab.simulate.fast import FastStepper

        return FastStepper(system, state, dt, DTYPES[dtype], guard)


@register_engine
class NumpyEngine(SteppingEngine):
    """Forward Euler in NumPy: the reference definition."""

    name = "numpy"
    summary = "the NumPy reference definition (slow, obvious)"
    capabilities = Capabilities(grid=True, well_mixed=True, noise=True)

    @classmethod
    def stepper(cls, system, state, dt, dtype, seed, guard, **options):
        from rdlab.simulate.reference import NumpyStepper

        return NumpyStepper(system, np.asarray(state).astype(DTYPES[dtype]), dt, guard, seed)


@register_engine
class TorchEngine(SteppingEngine):
    """Forward Euler in PyTorch, on CPU or CUDA (option ``device``)."""

    name = "torch"
    summary = "differentiable PyTorch (CPU or CUDA)"
    capabilities = Capabilities(grid=True, well_mixed=True, noise=True, differentiable=True,
                                devices=("cpu", "cuda"))
    options = ("device",)

    @classmethod
    def run(cls, system, state, *, dt, n_steps, dtype, seed, guard, trackers, **options):
        """Run as every stepping engine, without recording gradients."""
        import torch

        with torch.no_grad():
            return super().run(system, state, dt=dt, n_steps=n_steps, dtype=dtype,
                               seed=seed, guard=guard, trackers=trackers, **options)

    @classmethod
    def stepper(cls, system, state, dt, dtype, seed, guard, device="cpu", **options):
        from rdlab.simulate.torch_engine import TorchStepper

        return TorchStepper(system, state, dt, guard, DTYPES[dtype], device, seed)


@register_engine
class AdjointEngine(SteppingEngine):
    """The compiled design engine's forward Euler (numba; its adjoint serves design)."""

    name = "adjoint"
    summary = ("the design engine's generated numba forward Euler (CPU; grids only; its "
               "exact adjoint gives design's gradients)")
    capabilities = Capabilities(grid=True, well_mixed=False, noise=True)

    @classmethod
    def stepper(cls, system, state, dt, dtype, seed, guard, **options):
        from rdlab.simulate.adjoint_stepper import AdjointStepper

        return AdjointStepper(system, state, dt, DTYPES[dtype], guard, seed)


class _SolutionStepper:
    """An ODE solution at fixed steps, replayed through the driver."""

    def __init__(self, states: np.ndarray, steps: np.ndarray):
        self.states, self.steps = states, steps  # (time, batch, species), (time,)
        self.samples = np.arange(states.shape[1])
        self.at = 0
        self.chunk = 1 << 62

    def advance(self, n: int, step0: int) -> tuple[np.ndarray, np.ndarray]:
        self.at = step0 + n
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)

    def state(self) -> np.ndarray:
        """Return the solution at the latest solved step ≤ the current one."""
        i = max(0, int(np.searchsorted(self.steps, self.at, side="right")) - 1)
        return self.states[i][self.samples]

    def keep(self, idx: np.ndarray) -> None:
        self.samples = self.samples[idx]


@register_engine
class OdeEngine(Engine):
    """A well-mixed stiff ODE solver, replayed at the steps the trackers need."""

    name = "ode"
    summary = "well-mixed stiff ODE solver (scipy, analytic Jacobian)"
    capabilities = Capabilities(grid=False, well_mixed=True, noise=False, stepping=False,
                                drop_blow_ups=False)
    options = ("method", "rtol", "atol")
    progress_unit = "sample"

    @classmethod
    def run(cls, system, state, *, dt, n_steps, dtype, seed, guard, trackers, **options):
        """Solve to the steps some tracker is due at, then replay them through the driver."""
        from rdlab.simulate import ode

        # the steps some tracker is due at (explicit steps, intervals); elsewhere (the check
        # points of progress bars) trackers see the latest of these
        wanted: set[int] = set()
        for t in trackers:
            wanted |= {int(s) for s in t.due_steps(n_steps)}
            if t.interval is not None:
                wanted |= set(range(0, int(n_steps) + 1, int(t.interval)))
        steps = np.array(sorted(s for s in wanted if 0 <= s <= n_steps) or [0])
        for t in trackers:
            t.start(n_steps, system.batch_size)

        def done(n):
            for t in trackers:
                t.sample_done(n)

        states, _ = ode.solve(system, state, steps * dt, progress=done,
                              runaway_limit=guard.limit, **options)
        stepper = _SolutionStepper(states.astype(DTYPES[dtype]), steps)
        return drive(stepper, system.batch_size, int(n_steps), dt, trackers, started=True)
