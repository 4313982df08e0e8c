"""Stiff ODE integration of the well-mixed reactor with an analytic Jacobian.

For a system with ``grid=None`` every sample is integrated on its own with
:func:`scipy.integrate.solve_ivp`::

    dX/dt = S·v(X) + f·(x_feed − X)        J = ∂(dX/dt)/∂X = S·∂v/∂X − f·I

with ``∂v/∂X`` from :func:`rdlab.chemistry.kinetics.mass_action_jacobian`. :func:`solve`
returns the states at the requested times and the exact time derivatives there (the model's
right-hand side evaluated at the returned states), which reaction discovery regresses on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.integrate import solve_ivp

from rdlab.checks import positive_number
from rdlab.chemistry.kinetics import mass_action_jacobian
from rdlab.errors import ParameterError, SimulationError
from rdlab.simulate import guard
from rdlab.system import System

__all__ = ["METHODS", "jacobian", "rhs", "solve"]

#: Implicit solvers of :func:`scipy.integrate.solve_ivp` that use the Jacobian.
METHODS = ("Radau", "BDF", "LSODA")


class _Model:
    """Right-hand side and Jacobian of one sample, vectorised over reactions.

    Reaction ``r`` multiplies its rate constant by its reactant concentrations in species
    order (the order of :func:`~rdlab.chemistry.kinetics.mass_action_rates`).
    """

    def __init__(self, system: System, sample: int):
        net = system.network
        R = np.asarray(net.reactant_matrix)
        self.R = R
        self.S = net.stoichiometry.astype(float)
        n_s, n_r = R.shape
        max_order = int(R.sum(axis=0).max(initial=0))
        self.factors = np.full((max_order, n_r), n_s, dtype=np.int64)
        for r in range(n_r):
            species = np.repeat(np.arange(n_s), R[:, r])
            self.factors[: species.size, r] = species
        self.k = system.rates[sample]
        self.f = float(system.flow[sample])
        self.feed = system.feed[sample]
        self.n_species = n_s

    def rates(self, x: np.ndarray) -> np.ndarray:
        """Return the reaction rates ``v (R, *extra)`` for ``x (S, *extra)``."""
        padded = np.concatenate([x, np.ones((1, *x.shape[1:]))], axis=0)
        v = self.k.reshape(self.k.shape + (1,) * (x.ndim - 1))
        for row in self.factors:
            v = v * padded[row]
        return v

    def rhs(self, x: np.ndarray) -> np.ndarray:
        """Return ``dX/dt`` for ``x (S,)`` or ``x (S, n)`` (columns = states)."""
        feed = self.feed.reshape(self.feed.shape + (1,) * (x.ndim - 1))
        return self.S @ self.rates(x) + self.f * (feed - x)

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """Return the Jacobian ``(S, S)`` at ``x (S,)``."""
        dv = mass_action_jacobian(self.R, x[None, :], self.k[None, :])[0]  # (R, S)
        return self.S @ dv - self.f * np.eye(self.n_species)


def _check_well_mixed(system: System) -> None:
    """Refuse a system with a grid or flow noise."""
    if system.grid is not None:
        g = system.grid
        raise ParameterError(
            f"the ode engine integrates a well-mixed reactor, but this system has a "
            f"{g.ny}×{g.nx} grid; build the System with grid=None, or use a grid engine "
            "('fast', 'torch', 'numpy')"
        )
    if system.noise is not None:
        raise ParameterError("the ode engine does not take flow noise (system.noise is set)")


def rhs(system: System, state: np.ndarray) -> np.ndarray:
    """Return ``dX/dt = S·v(X) + f·(x_feed − X)`` of the well-mixed model.

    Parameters
    ----------
    system : System
        A well-mixed system (``grid=None``, no flow noise).
    state : numpy.ndarray
        ``(batch, species)``.

    Returns
    -------
    numpy.ndarray
        ``(batch, species)``.

    Raises
    ------
    ParameterError
        If the system has a grid or flow noise, or the state is invalid.
    """
    _check_well_mixed(system)
    x = system.check_state(state, "state")
    return np.stack([_Model(system, b).rhs(x[b]) for b in range(system.batch_size)])


def jacobian(system: System, state: np.ndarray) -> np.ndarray:
    """Return the analytic Jacobian ``J = S·∂v/∂X − f·I`` of the well-mixed model.

    Parameters
    ----------
    system : System
        A well-mixed system (``grid=None``, no flow noise).
    state : numpy.ndarray
        ``(batch, species)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(batch, species, species)``, ``J[b, i, j] = ∂Ẋ_i/∂X_j``.

    Raises
    ------
    ParameterError
        If the system has a grid or flow noise, or the state is invalid.
    """
    _check_well_mixed(system)
    x = system.check_state(state, "state")
    return np.stack([_Model(system, b).jacobian(x[b]) for b in range(system.batch_size)])


def _check_times(times) -> np.ndarray:
    """Return the output times as a 1-D float array: finite, ≥ 0 and sorted."""
    try:
        t = np.asarray(times, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"output times must be numbers, got {times!r}") from None
    if t.ndim != 1 or t.size == 0:
        raise ParameterError(f"output times must be a non-empty 1-D list, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        i = int(np.argmax(~np.isfinite(t)))
        raise ParameterError(f"output time {t[i]!r} (index {i}) is not finite")
    if np.any(t < 0):
        i = int(np.argmax(t < 0))
        raise ParameterError(f"output time {t[i]!r} (index {i}) is negative; the initial "
                             "state is at time 0")
    if np.any(np.diff(t) < 0):
        i = int(np.argmax(np.diff(t) < 0))
        raise ParameterError(f"output times must be sorted: {t[i]!r} (index {i}) comes "
                             f"before {t[i + 1]!r}")
    return t


def solve(
    system: System,
    state: np.ndarray,
    times: Sequence[float] | np.ndarray,
    *,
    method: str = "Radau",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    progress: Callable[[int], None] | None = None,
    runaway_limit: float = guard.RUNAWAY_LIMIT,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate each sample of the well-mixed ``system`` and report it at ``times``.

    Parameters
    ----------
    system : System
        A well-mixed system (``grid=None``, no flow noise).
    state : numpy.ndarray
        The state at time 0: ``(batch, species)`` or ``(species,)`` (broadcast over the
        batch).
    times : sequence of float or numpy.ndarray
        Output times, sorted, ≥ 0.
    method : str, default "Radau"
        ``'Radau'``, ``'BDF'`` or ``'LSODA'``, all given the analytic Jacobian.
    rtol, atol : float, default 1e-8, 1e-10
        The solver's relative and absolute tolerances.
    progress : callable, optional
        Called with ``1`` after each sample is done (``batch`` calls in all).
    runaway_limit : float, default RUNAWAY_LIMIT
        A concentration beyond ±this counts as a blow-up.

    Returns
    -------
    tuple of numpy.ndarray
        ``(states, derivatives)``, both ``(time, batch, species)``: the solution at
        ``times`` and ``dX/dt`` evaluated exactly at those states.

    Raises
    ------
    SimulationError
        Naming the sample when the solver fails or the solution blows up.
    ParameterError
        For a grid or flow noise, an unknown method, bad tolerances, limit, state or times.
    """
    _check_well_mixed(system)
    if method not in METHODS:
        raise ParameterError(f"unknown ODE method {method!r}; choose one of {list(METHODS)}")
    rtol = positive_number(rtol, "rtol")
    atol = positive_number(atol, "atol")
    limit = guard.check_limit(runaway_limit)
    x0 = system.check_state(state)
    t = _check_times(times)
    t_eval = np.unique(t)
    where = np.searchsorted(t_eval, t)  # duplicates map to one solver output
    t_end = float(t_eval[-1])
    B, n_s = x0.shape
    states = np.empty((t.size, B, n_s))
    derivs = np.empty((t.size, B, n_s))
    for b in range(B):
        model = _Model(system, b)
        if t_end == 0.0:
            ys = np.repeat(x0[b][:, None], t_eval.size, axis=1)
        else:
            ys = _integrate(model, x0[b], t_eval, method, rtol, atol, b)
        bad_times = guard.bad_samples(ys.T, limit)  # (time,)
        if bad_times.any():
            i = int(np.argmax(bad_times))
            raise SimulationError(
                f"ODE solution of sample {b} blew up (NaN/Inf or |X| beyond the runaway "
                f"limit {limit:g}) at t = {float(t_eval[i]):g}, the first reported time at "
                f"which it was bad; parameters {guard.describe_sample(system, b)}. Check the "
                "parameters, or raise the runaway limit (--runaway-limit) if values this "
                "large are expected"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            d = model.rhs(ys)
        states[:, b] = ys[:, where].T
        derivs[:, b] = d[:, where].T
        if progress is not None:
            progress(1)
    return states, derivs


def _integrate(model: _Model, x0: np.ndarray, t_eval: np.ndarray, method: str,
               rtol: float, atol: float, sample: int) -> np.ndarray:
    """Return one sample's solution at ``t_eval``, shape ``(species, time)``."""
    reached = [0.0]

    def fun(t, x):
        """Return the right-hand side, noting the latest time reached."""
        reached[0] = max(reached[0], t)
        return model.rhs(x)

    def jac(_t, x):
        """Return the Jacobian."""
        return model.jacobian(x)

    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            sol = solve_ivp(fun, (0.0, float(t_eval[-1])), x0, method=method, t_eval=t_eval,
                            jac=jac, rtol=rtol, atol=atol)
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
        raise SimulationError(
            f"ODE solver {method} failed on sample {sample}: {exc}"
        ) from None
    if not sol.success or sol.y.shape[1] != t_eval.size:
        raise SimulationError(
            f"ODE solver {method} failed on sample {sample} near t = {reached[0]:g} (of "
            f"{float(t_eval[-1]):g}): {sol.message}"
        )
    return sol.y
