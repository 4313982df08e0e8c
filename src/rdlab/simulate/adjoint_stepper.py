"""The compiled design engine (:mod:`rdlab.simulate.adjoint`) as a simulate() stepper.

The design engine's forward Euler (generated numba kernels, no clip) runs a
:class:`~rdlab.system.System` on a periodic grid: per-sample rates, D, f, x_feed; the
grid spacing enters as ``D/dx²``; a noisy flow is drawn as the NumPy reference draws it
(:mod:`rdlab.simulate.flow_noise`, one field per step from ``numpy.random.default_rng(seed)``),
so a seed gives the reference's run. Steps are taken in chunks up to each blow-up check;
the guard and the noise generator are the reference stepper's
(:class:`~rdlab.simulate.reference.NumpyStepper`).
"""

from __future__ import annotations

import numpy as np

from rdlab.simulate import adjoint, flow_noise
from rdlab.simulate.reference import NumpyStepper
from rdlab.simulate.trackers import RunawayGuard
from rdlab.system import System

__all__ = ["AdjointStepper"]

class AdjointStepper(NumpyStepper):
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
        super().__init__(system, np.asarray(state, dtype=dtype), dt, policy, seed)

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
