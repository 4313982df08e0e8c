"""When a run on a grid has provably settled into a homogeneous steady state.

A sample is declared steady when three things hold at once:

1. it is uniform: every species deviates from its spatial mean by at most ``uniform_tol``;
2. the mean is a fixed point of the well-mixed dynamics: ``|S·v(x̄) + f(x_feed − x̄)|`` is at
   most ``rate_tol`` for every species;
3. that fixed point is linearly stable against every Fourier mode the periodic grid carries:
   for each discrete wavenumber q, all eigenvalues of ``J − diag(D)·λ_q/dx²`` (J the reaction
   plus flow Jacobian, λ_q ≥ 0 minus the stencil's symbol) have negative real part.

Then the remaining perturbation (≤ ``uniform_tol``) decays and the state stays within
``uniform_tol`` of the fixed point it has reached: stopping early changes no snapshot by more
than that tolerance. :class:`SteadyStop` is the tracker that stops such samples during a run.
"""

from __future__ import annotations

import numpy as np

from rdlab.chemistry.kinetics import mass_action_jacobian, mass_action_rates
from rdlab.simulate.trackers import RunView, Tracker
from rdlab.system import System, stencil_eigenvalue

#: Default tolerances: concentration units, and concentration units per time unit.
UNIFORM_TOL = 1e-6
RATE_TOL = 1e-9


def _mode_symbols(system: System) -> np.ndarray:
    """Return the distinct values of −(stencil symbol)/dx² over the grid's wavenumbers.

    Shape ``(m,)``, each ≥ 0.
    """
    g = system.grid
    ky = 2 * np.pi * np.fft.fftfreq(g.ny)
    kx = 2 * np.pi * np.fft.fftfreq(g.nx)
    lam = -stencil_eigenvalue(g.stencil, ky[:, None], kx[None, :]) / g.dx**2
    return np.unique(np.round(lam.ravel(), 12))


def homogeneous_steady(system: System, state: np.ndarray, uniform_tol: float = UNIFORM_TOL,
                       rate_tol: float = RATE_TOL) -> np.ndarray:
    """Return which samples sit in a uniform, linearly stable fixed point.

    See the module docstring for the three conditions.

    Parameters
    ----------
    system : System
        The system, with a grid.
    state : numpy.ndarray
        ``(batch, species, y, x)``.
    uniform_tol : float, default UNIFORM_TOL
        Largest deviation of a species from its spatial mean (concentration units).
    rate_tol : float, default RATE_TOL
        Largest well-mixed rate of change at the mean (concentration units per time unit).

    Returns
    -------
    numpy.ndarray
        Boolean, shape ``(batch,)``.
    """
    x = np.asarray(state, dtype=np.float64)
    mean = x.mean(axis=(2, 3))  # (B, S)
    uniform = np.abs(x - mean[:, :, None, None]).max(axis=(1, 2, 3)) <= uniform_tol
    out = np.zeros(x.shape[0], dtype=bool)
    idx = np.flatnonzero(uniform)
    if idx.size == 0:
        return out
    net = system.network
    R, S = net.reactant_matrix, net.stoichiometry
    c, k = mean[idx], system.rates[idx]
    flow, feed = system.flow[idx], system.feed[idx]
    rate = mass_action_rates(R, c, k) @ S.T + flow[:, None] * (feed - c)  # (b, S)
    fixed = np.abs(rate).max(axis=1) <= rate_tol
    dv = mass_action_jacobian(R, c, k)  # (b, R, S)
    jac = np.einsum("sr,brj->bsj", S, dv) - flow[:, None, None] * np.eye(net.n_species)
    lam = _mode_symbols(system)  # (m,)
    d = system.diffusion[idx]  # (b, S)
    modes = jac[:, None] - lam[None, :, None, None] * (d[:, None, :, None]
                                                        * np.eye(net.n_species))
    growth = np.linalg.eigvals(modes).real.max(axis=(1, 2))  # (b,)
    out[idx] = fixed & (growth < 0)
    return out


class SteadyStop(Tracker):
    """Stop each sample at the first of ``steps`` where it is provably steady.

    Steady as :func:`homogeneous_steady` says; its later snapshots are its state then.

    Parameters
    ----------
    system : System
        The whole batch the run was started with.
    steps : iterable of int
        The steps at which to check.
    uniform_tol : float, default UNIFORM_TOL
        See :func:`homogeneous_steady`.
    rate_tol : float, default RATE_TOL
        See :func:`homogeneous_steady`.
    """

    def __init__(self, system: System, steps, uniform_tol: float = UNIFORM_TOL,
                 rate_tol: float = RATE_TOL):
        self.system = system
        self.steps = sorted(int(s) for s in steps)
        self.uniform_tol, self.rate_tol = uniform_tol, rate_tol

    def due_steps(self, n_steps: int):
        """Return the check steps."""
        return self.steps

    def visit(self, view: RunView) -> np.ndarray | None:
        """Stop the running samples that are steady at a check step."""
        if view.step not in self.steps:
            return None
        active = np.flatnonzero(view.active)
        if active.size == 0:
            return None
        steady = homogeneous_steady(self.system.select(active), view.state[active],
                                    self.uniform_tol, self.rate_tol)
        stop = np.zeros(view.active.shape, bool)
        stop[active[steady]] = True
        return stop
