"""Rates and initial states fitted together: errors in variables for noisy first states.

:func:`~rdlab.discover.trajectory_fit.fit_trajectories` integrates every sample from its
first *measured* state, as if that state were exact. With noisy concentrations it is not:
each sample's start carries the same multiplicative noise ``η`` as every later point, and
every later point of that sample inherits the start's error through the dynamics. The rates
then absorb part of it; on the bundled Michaelis–Menten–Arrhenius data at ``η = 1e-3`` an
identifiable rate came out 5.2 % off, against 1.4 % when the same noisy data are fitted
from the exact starts.

Here the measured starts become parameters too (errors in variables, the
maximum-likelihood fit when every measurement is noisy):

* **Parameters**: the rates ``θ`` as in the trajectory fit, plus ``u = ln x0`` of every
  sample's positive initial concentrations (a species measured as exactly 0 stays 0: it
  carries no multiplicative noise).
* **Residuals**: every time *including the first*, ``(x − c)/(|c| + δ_s)``; the start's
  residual ties ``x0`` to its measurement, the later ones to the dynamics.
* **Gradients**: the state sensitivities ``∂x/∂ln x0`` (``S' = J S``, ``S(0) = diag(x0)``)
  are integrated with the rate sensitivities
  (:func:`~rdlab.discover.trajectory_fit.simulate` ``state_sensitivities``); the Jacobian is
  dense in ``θ`` and block-diagonal in the samples' ``u``.
* **Identifiability** of the rates marginalises the starts: each sample's ``θ`` columns are
  projected off its own ``u`` columns (the Schur complement of the Gauss–Newton matrix),
  so the standard errors include what the uncertain starts cost.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from rdlab.discover.data import ReactionData
from rdlab.discover.identifiability import MAX_STANDARD_ERROR
from rdlab.discover.trajectory_fit import (
    NOISE_FLOOR,
    RESIDUAL_FLOOR,
    FitTimeout,
    KineticModel,
    TrajectoryFit,
    TrajectoryProblem,
    carry_notes,
    fit_least_squares,
    fitted_mechanism,
    rate_identifiability,
    residual_autocorrelation,
    rms_per_species,
    start_parameters,
    temperature_offsets,
)

__all__ = ["fit_with_initial_states"]

#: Relative change of the cost at which the joint fit stops. With m residuals at noise σ a
#: change of 1e-6 of the cost is Δχ² ≈ 1e-6 m (0.009 for 100 samples × 11 times × 8
#: species): the rates move by far less than their standard errors. (The trajectory fit's
#: 1e-10 made hydrogen oxidation's joint fit spend 10 of its 13 evaluations at one cost.)
JOINT_FTOL = 1e-6
#: Largest dense Jacobian (entries) fitted by the exact trust-region solver; larger joint
#: problems use a sparse Jacobian and LSMR.
DENSE_ENTRIES = 20_000_000


class _JointProblem(TrajectoryProblem):
    """Residuals and Jacobian of rates and initial states together (cached per parameters)."""

    def __init__(self, model: KineticModel, data: ReactionData, x_temp: np.ndarray | None,
                 n_theta: int, floor: float, rtol: float, deadline: float | None):
        super().__init__(model, data, x_temp, floor, rtol, deadline)
        self.n_theta = n_theta
        c = data.concentrations
        self.free = np.argwhere(c[:, 0] > 0)  # (n_free, 2): sample, species
        n, n_t, S = c.shape
        # Jacobian rows of each free start: every time and species of its own sample
        sample, species = self.free[:, 0], self.free[:, 1]
        rows = (sample[:, None] * n_t + np.arange(n_t)[None, :])[:, :, None] * S \
            + np.arange(S)[None, None, :]
        self._u_rows = rows.reshape(-1)
        self._u_cols = np.repeat(n_theta + np.arange(len(self.free)), n_t * S)
        self._u_index = (sample, species)
        self.dense = c.size * (n_theta + len(self.free)) <= DENSE_ENTRIES

    def starts(self, params: np.ndarray) -> np.ndarray:
        """Return the ``(n, n_s)`` initial states of ``params``."""
        x0 = self.measured[:, 0].copy()
        x0[self._u_index] = np.exp(np.clip(params[self.n_theta:], -700.0, 700.0))
        return x0

    def run(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray | sp.spmatrix, bool]:
        """Return the residuals ``(n·n_t·n_s,)``, the Jacobian and the solver's success."""
        key = params.tobytes()
        if (hit := self.recall(key)) is not None:
            return hit
        theta, x0 = params[:self.n_theta], self.starts(params)
        x, sens, ok = self.integrate(theta, x0, state_sensitivities=True)
        self.evaluations += 1
        w = self.w
        r = np.nan_to_num((x - self.measured) * w, nan=1e3, posinf=1e3, neginf=-1e3)
        r = r.reshape(-1)
        sens = np.nan_to_num(sens * w[..., None], nan=0.0, posinf=0.0, neginf=0.0)
        j_theta = sens[..., :self.n_theta].reshape(r.size, self.n_theta)
        sample, species = self._u_index
        # column of start (i, j): ∂x_i(t, s)/∂ln x0_ij over sample i's rows
        j_u = sens[sample, :, :, self.n_theta + species].reshape(-1)
        n_p = self.n_theta + len(self.free)
        if self.dense:
            jac = np.zeros((r.size, n_p))
            jac[:, :self.n_theta] = j_theta
            jac[self._u_rows, self._u_cols] = j_u
        else:
            rows_t = np.repeat(np.arange(r.size), self.n_theta)
            cols_t = np.tile(np.arange(self.n_theta), r.size)
            jac = sp.csr_matrix((np.concatenate([j_theta.reshape(-1), j_u]),
                                 (np.concatenate([rows_t, self._u_rows]),
                                  np.concatenate([cols_t, self._u_cols]))),
                                shape=(r.size, n_p))
        return self.remember(key, params, r, jac, ok)

    def marginal_rate_jacobian(self, jac) -> np.ndarray:
        """Return the ``θ`` columns of ``jac`` projected off each sample's start columns.

        ``J_effᵀ J_eff`` is the Schur complement of the starts in ``JᵀJ``, so the rates'
        standard errors from ``J_eff`` include the uncertainty of the starts.
        """
        J = jac.toarray() if sp.issparse(jac) else np.asarray(jac)
        n, n_t, S = self.measured.shape
        j_theta = J[:, :self.n_theta].reshape(n, n_t * S, self.n_theta).copy()
        sample = self.free[:, 0]
        for i in np.unique(sample):
            cols = self.n_theta + np.flatnonzero(sample == i)
            block = J[i * n_t * S:(i + 1) * n_t * S][:, cols]
            q, _ = np.linalg.qr(block)
            j_theta[i] -= q @ (q.T @ j_theta[i])
        return j_theta.reshape(-1, self.n_theta)


def fit_with_initial_states(fit: TrajectoryFit, data: ReactionData, *,
                            noise: float | None = None, floor: float = RESIDUAL_FLOOR,
                            rtol: float = 1e-7, max_nfev: int = 20,
                            max_standard_error: float = MAX_STANDARD_ERROR,
                            deadline: float | None = None,
                            starts: np.ndarray | None = None) -> TrajectoryFit | None:
    """Refit ``fit``'s rates together with every sample's initial state.

    Parameters
    ----------
    fit : TrajectoryFit
        A converged trajectory fit; its mechanism's rows, its active directions (rate > 0)
        and its rates are kept as the start.
    data : ReactionData
        The data it was fitted to, ``(n, n_t, n_s)`` concentrations.
    noise : float or None, optional
        Multiplicative noise level, given; ``None``: the fit's own estimate is used for
        the identifiability analysis.
    floor, rtol : float
        Residual floor (:func:`~rdlab.discover.trajectory_fit.relative_residuals`) and
        solver tolerance.
    max_nfev : int, default 20
        Most least-squares iterations.
    max_standard_error : float, default MAX_STANDARD_ERROR
        Identifiability threshold.
    deadline : float or None, optional
        ``time.perf_counter()`` time to stop at.
    starts : numpy.ndarray or None, optional
        ``(n, n_s)`` initial states to start from (e.g. an earlier joint fit's); default
        the measured ones. Starts measured as 0 stay 0.

    Returns
    -------
    TrajectoryFit or None
        The refitted rates; ``initial_states`` holds the fitted ``(n, n_s)`` starts,
        ``species_rms`` and ``autocorrelation`` are over the later times (as for ``fit``),
        ``noise_estimate`` is over every time with the starts counted as parameters, and
        acceptance is ``fit``'s. When the deadline passes, the best point reached (the
        trust-region iterations only lower the cost). ``None`` when an integration
        failed, when the deadline passed before the first evaluation, or when the result
        fits worse than ``fit`` (the measured starts are one of its points; not checked
        from other ``starts``, from which the iterations only lowered the cost).
    """
    t0 = time.perf_counter()
    mech = fit.mechanism.normalised()
    T_ref, x_temp = temperature_offsets(data)
    model = KineticModel.from_mechanism(mech, np.asarray(mech.kr) > 0)
    theta0 = start_parameters(mech, model, T_ref)
    problem = _JointProblem(model, data, x_temp, theta0.size, floor, rtol, deadline)
    c0 = data.concentrations[:, 0]
    first = c0 if starts is None else np.where(c0 > 0, np.maximum(starts, 1e-300), c0)
    params0 = np.concatenate([theta0, np.log(first[problem._u_index])])
    params = fit_least_squares(problem, params0, max_nfev, ftol=JOINT_FTOL)
    try:
        r, jac, ok = problem.run(params)
    except FitTimeout:  # out of time: the best point reached (it only lowered the cost)
        if problem.best is None:
            return None
        _, params, r, jac, ok = problem.best
    if not ok:
        return None
    n, n_t, S = data.concentrations.shape
    later = r.reshape(n, n_t, S)[:, 1:].reshape(-1)
    old_rss = float(np.sum((fit.species_rms ** 2) * n * (n_t - 1)))
    if starts is None and float(r @ r) > old_rss * (1.0 + 1e-6):
        return None
    theta = params[:theta0.size]
    m = r.size - int(np.sum(c0 <= 0))  # a start fixed at 0 has no residual
    p = params.size
    noise_est = float(np.sqrt(float(r @ r) / max(m - p, 1)))
    sigma = noise if noise is not None else max(noise_est, NOISE_FLOOR)
    active = np.ones(model.n_directions, bool)
    ident = rate_identifiability(model, active, theta, problem.marginal_rate_jacobian(jac),
                                 max(sigma, NOISE_FLOOR), max_standard_error, T_ref)
    new_mech = fitted_mechanism(model, theta, active, T_ref)
    carry_notes(fit.mechanism, new_mech)
    names = model.names()
    names += [f"eps_{name}" for name in names] if T_ref is not None else []
    new = TrajectoryFit(new_mech, names, theta, rms_per_species(later, data),
                        float(np.max(np.abs(r))), noise_est, fit.threshold, fit.accepted,
                        ident, list(fit.pruned), time.perf_counter() - t0,
                        problem.evaluations, ok, False,
                        residual_autocorrelation(later, data), fit.null_autocorrelation,
                        problem.starts(params))
    new_mech.notes["trajectory_fit"] = new.summary()
    return new
