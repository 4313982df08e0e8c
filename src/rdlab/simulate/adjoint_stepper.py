"""The compiled design engine (:mod:`rdlab.simulate.adjoint`) as a simulate() stepper.

The design engine's forward Euler (generated numba kernels, no clip) runs a
:class:`~rdlab.system.System` on a periodic grid: per-sample rates, D, f, x_feed; the
grid spacing enters as ``D/dx²``; a noisy flow is drawn as the NumPy reference draws it
(:mod:`rdlab.simulate.flow_noise`, one field per step from ``numpy.random.default_rng(seed)``),
so a seed gives the reference's run. Steps are taken in chunks up to each blow-up check;
the guard is :class:`~rdlab.simulate.driver.PythonStepper`'s.
"""

from __future__ import annotations

import numpy as np

from rdlab.simulate import adjoint, flow_noise, guard
from rdlab.simulate.driver import PythonStepper
from rdlab.simulate.trackers import RunawayGuard
from rdlab.system import System

__all__ = ["AdjointStepper"]

_NONE = np.zeros(0, dtype=np.int64)


class AdjointStepper(PythonStepper):
    """A batch on a grid advanced by the compiled design engine.

    Parameters
    ----------
    system : System
        The system; it needs a grid.
    state : numpy.ndarray
        Initial state ``(batch, species, y, x)``.
    dt : float
        Time step; must be stable.
    dtype : numpy dtype
        float32 or float64.
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

    def __init__(self, system: System, state: np.ndarray, dt: float, dtype,
                 policy: RunawayGuard, seed: int | None = None):
        system.check_time_step(dt)
        self.dt = dt
        self.rng = np.random.default_rng(seed)
        super().__init__(system, np.array(state, dtype=dtype, copy=True), policy)

    def _steps(self, x: np.ndarray, n: int) -> np.ndarray:
        """Return the state ``n`` steps on from ``x``."""
        s = self.system
        fields = None
        if s.noise is not None:
            fields = np.stack([
                flow_noise.flow_field(s.flow, s.noise,
                                      flow_noise.raw_noise(self.rng, s.noise, x.shape))
                for _ in range(n)]).astype(x.dtype, copy=False)
        tape = adjoint.forward(s.network, x, s.rates, s.diffusion / s.grid.dx**2, s.flow,
                               s.feed, n, self.dt, steps=[n], flow_fields=fields, clip=False,
                               stencil=s.grid.stencil, store=False)
        return tape.states[0]

    def _step(self, x):
        """Return the state one step on."""
        return self._steps(x, 1)

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

    def advance(self, n: int, step0: int) -> tuple[np.ndarray, np.ndarray]:
        """Take ``n`` steps from ``step0``, one kernel call per stretch between checks."""
        every = self.policy.check_every
        x, step, end = self.x, step0, step0 + n
        while step < end:
            nxt = min(end, (step // every + 1) * every)
            x = self._steps(x, nxt - step)
            step = nxt
            bad = self._bad(x)
            if bad.any():
                if self.policy.on_blow_up == "drop":
                    self.x, self.step = x, step
                    idx = np.flatnonzero(bad)
                    return idx, np.full(idx.size, step, dtype=np.int64)
                self._raise_first_bad(step, int(np.argmax(bad)))
            self.good = (step, self._copy(x), self._rng_state())
        self.x, self.step = x, end
        return _NONE, _NONE
