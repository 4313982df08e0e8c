"""Rates of a candidate mechanism fitted to measured concentration trajectories.

Derivatives estimated from a few samples (11 points, Δt = 0.1) can be wrong by 10–100 %
for stiff or fast kinetics, and rates fitted to them inherit the error. Here a candidate
(integer stoichiometry and orders from the structure search) is instead *integrated* from
each sample's first measured state with a stiff solver, and its log rate constants are fitted
so that the simulated concentrations reproduce the measured ones (the CRNN of Ji & Deng trains
through an ODE solver on concentrations in the same spirit).

Method
------
* **Parameters** ``θ``: one ``ln k`` per active direction (``kf_i``; ``kr_i`` of reversible
  rows), plus, with temperatures, one ``ε = Ea/(R T_ref)`` per direction:
  ``ln k(T) = ln k_ref − ε (T_ref/T − 1)``.
* **Solver**: a compiled variable-order BDF, sample by sample, from the analytic mass-action
  Jacobian ``J = ∂f/∂x`` (:func:`~rdlab.discover.mass_action_kernel.integrate_sample`).
  SciPy's BDF on all samples stacked, with its Newton systems solved block by block
  (:class:`~rdlab.discover.block_bdf.BlockBDF`), is the reference it is tested against
  (``simulate(..., solver="scipy")``).
* **Gradients**: forward sensitivities ``S = ∂x/∂θ`` integrated alongside the states:
  ``dS/dt = J S + ∂f/∂θ`` (analytic, no finite differences), solved exactly at each step's
  converged state (staggered direct method).
* **Residuals** (relative, i.e. first-order log, for data that span decades):
  ``r = (x_model − x_data) / (|x_data| + δ_s)`` with ``δ_s = floor · max x_s`` per species
  (default ``floor = 1e-4``). This is the maximum-likelihood weighting for multiplicative
  noise ``x_data = x (1 + η ξ)``: ``r ≈ η ξ``; the floor keeps concentrations that are
  consumed to (numerically) zero from dominating through solver round-off. The first time of
  each sample is the initial state and carries no residual.
* **Fit**: :func:`scipy.optimize.least_squares` (``trf``) on ``θ`` with the sensitivity
  Jacobian, plus a weak prior ``λ (θ − θ_start)`` (:data:`PRIOR_WEIGHT`) so that directions
  the data do not determine stay where the structure search put them.

Acceptance (:func:`acceptance_threshold`): a mechanism reproduces the data when the RMS of
every species' relative residual is at most ``3 · max(noise, floor_noise)``. ``noise`` is the
multiplicative noise level of the concentrations (given, or estimated from the best fit);
``floor_noise`` (default 1e-4) is the reproduction limit of noise-free data (solver
tolerance, rounding).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

from rdlab.chemistry.kinetics import GAS_CONSTANT
from rdlab.discover.block_bdf import BlockBDF, BlockJacobian
from rdlab.discover.data import ReactionData
from rdlab.discover.identifiability import MAX_STANDARD_ERROR, Identifiability, analyse
from rdlab.discover.mass_action_kernel import (
    FAILED_STEP_SIZE,
    SUCCESS,
    integrate_sample,
    mass_action_rates_jacobian,
)
from rdlab.discover.mechanism import NEGLIGIBLE_FLUX, ArrheniusRates, Mechanism
from rdlab.errors import ParameterError, SimulationError

__all__ = ["AUTOCORRELATION_MARGIN", "NOISE_FLOOR", "PRIOR_WEIGHT", "PRUNE_NFEV",
           "RESIDUAL_FLOOR", "REVIVE_GAIN", "REVIVE_SHARE", "REVIVE_TRIES", "FitTimeout",
           "KineticModel", "TrajectoryFit", "TrajectoryProblem", "acceptance_threshold",
           "carry_notes",
           "fit_least_squares", "fit_trajectories", "fitted_mechanism", "rate_identifiability",
           "relative_residuals", "residual_autocorrelation", "rms_per_species", "simulate",
           "start_parameters", "temperature_offsets", "time_groups", "trajectory_errors"]

#: Relative floor ``δ_s / max x_s`` of the residual weights.
RESIDUAL_FLOOR = 1e-4
#: Smallest noise level assumed: what noise-free data reproduce to (solver, rounding).
NOISE_FLOOR = 1e-4
#: Weight ``λ`` of the prior residuals ``λ (θ − θ_start)``: it keeps directions the data do
#: not determine (a fast equilibrium's ``ln kf + ln kr``) at their start instead of letting
#: the solver wander along them; on a direction with singular value ``s`` it biases ``θ`` by
#: ``(λ/s)² |θ − θ_start|``, below 4e-6 for every identifiable one (``s ≥ σ/0.02``).
PRIOR_WEIGHT = 1e-5
#: Bounds of every ``ln k`` (k from 1e-17 to 1e17 per unit time).
_LOG_K_BOUNDS = (-40.0, 40.0)
#: A direction whose mean flux is below this share of the typical flux is "stuck near 0"
#: and restarted when a fit does not reproduce the data (:func:`fit_trajectories`).
REVIVE_SHARE = 1e-3
#: How far the residual autocorrelation may exceed that of noise alone
#: (:attr:`TrajectoryFit.noise_like`).
AUTOCORRELATION_MARGIN = 0.15
#: Most single directions restarted, after one restart of all stuck directions together.
REVIVE_TRIES = 3
#: A restart is kept when the worst species' RMS residual falls to this share or below.
REVIVE_GAIN = 0.7
#: Most least-squares iterations of each trial removal while pruning.
PRUNE_NFEV = 20
#: A trial removal whose worst species' RMS residual is still above this many times its
#: bound after :data:`HOPELESS_EVALUATIONS` evaluations is given up: a row the data need
#: leaves residuals 10³–10⁸ times the bound, a removal that others take over converges
#: below it within a few evaluations. A revival's restart is given up the same way
#: against the residual it must reach (GRI-3.0 seed 2: restarts of 60 evaluations,
#: 157 s and 269 s, that ended at residual 1 against 3e-3).
HOPELESS_FACTOR = 100.0
HOPELESS_EVALUATIONS = 8


#: An evaluation of the residuals that takes this many times as long as the fit's first
#: (and at least :data:`SLOW_EVALUATION_MIN_S`) is stopped and scored as a failed
#: integration: a trust-region step that makes the rates absurdly stiff would otherwise
#: crawl through one integration for minutes (Michaelis-Menten, 0.1 % noise: one step
#: from a 0.5 s evaluation ate the 300 s budget); scored as failed, the step is shrunk.
SLOW_EVALUATION = 30.0
#: Floor of the time an evaluation may take before it counts as slow, in seconds.
SLOW_EVALUATION_MIN_S = 5.0


class FitTimeout(SimulationError):
    """An integration was stopped because the caller's deadline passed."""


class _SlowIntegration(Exception):
    """An integration ran past its own time limit (scored as a failed integration)."""


class _GoodEnough(Exception):  # noqa: N818 (a stop signal, not an error)
    """A pruning refit reached its target: every species' RMS residual within the bound."""

    def __init__(self, theta: np.ndarray) -> None:
        super().__init__("target reached")
        self.theta = theta


class _Hopeless(Exception):  # noqa: N818 (a stop signal, not an error)
    """A pruning refit stays far above its target (:data:`HOPELESS_FACTOR`): given up."""


@dataclass(frozen=True)
class KineticModel:
    """The active directed reactions of a candidate, as arrays.

    Parameters
    ----------
    species : tuple of str
        Names, length ``n_s``.
    reactants : numpy.ndarray
        ``(P, n_s)`` reactant orders of each direction.
    net : numpy.ndarray
        ``(P, n_s)`` net stoichiometry of each direction (products − reactants).
    directions : tuple of tuple of int
        ``(row, 0 forward | 1 reverse)`` of each direction in the source mechanism.
    V : numpy.ndarray
        ``(n_r, n_s)`` stoichiometry of the source mechanism.
    orders : numpy.ndarray or None
        ``(n_r, n_s)`` catalytic-form orders of the source mechanism, else ``None``.
    """

    species: tuple[str, ...]
    reactants: np.ndarray
    net: np.ndarray
    directions: tuple[tuple[int, int], ...]
    V: np.ndarray
    orders: np.ndarray | None = None

    @classmethod
    def from_mechanism(cls, mech: Mechanism, reversible: np.ndarray | None = None,
                       ) -> KineticModel:
        """Return the directions of ``mech``: every forward one, and reverse ones of V form.

        Parameters
        ----------
        mech : Mechanism
            The candidate (integer rows).
        reversible : numpy.ndarray or None, optional
            ``(n_r,)`` bool: rows whose reverse direction is fitted (default: all rows of a
            V-form mechanism; none in catalytic form).

        Returns
        -------
        KineticModel
            The model.
        """
        a, b = mech.reactant_orders()
        rev = (np.zeros(mech.n_reactions, bool) if mech.orders is not None
               else np.ones(mech.n_reactions, bool) if reversible is None
               else np.asarray(reversible, bool))
        reac, net, dirs = [], [], []
        for i in range(mech.n_reactions):
            if not np.any(mech.V[i]):
                continue
            reac.append(a[i])
            net.append(mech.V[i])
            dirs.append((i, 0))
            if rev[i]:
                reac.append(b[i])
                net.append(-mech.V[i])
                dirs.append((i, 1))
        n_s = mech.n_species
        return cls(mech.species, np.array(reac, float).reshape(-1, n_s),
                   np.array(net, float).reshape(-1, n_s), tuple(dirs), mech.V.copy(),
                   None if mech.orders is None else mech.orders.copy())

    @cached_property
    def whole_orders(self) -> bool:
        """Whether every reactant order is a whole number (mass action proper).

        Then the rates are polynomials, defined for the small negative values a stiff
        solver visits around an exhausted species, and :meth:`rates_jacobian` evaluates them
        there unchanged: read as 0 instead, the right-hand side had a kink at 0 that the
        solver's error estimate kept tripping over (simplified GRI-3.0, one sample: 1 700 LU
        factorisations and 7 600 evaluations over t = 0…1 instead of 85 and 1 050, with the
        same accuracy).
        """
        A = self.reactants
        return bool(np.all(A == np.round(A)))

    @property
    def n_directions(self) -> int:
        """Number of directions ``P``."""
        return len(self.directions)

    def names(self) -> list[str]:
        """Return ``kf_i`` / ``kr_i`` (1-based rows) of each direction."""
        return [f"{'kr' if d else 'kf'}_{i + 1}" for i, d in self.directions]

    def rates_jacobian(self, x: np.ndarray, k: np.ndarray,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the direction rates, the right-hand side and its Jacobian.

        Parameters
        ----------
        x : numpy.ndarray
            ``(n, n_s)`` concentrations. Negative solver excursions enter the polynomial
            as they are when every order is a whole number (so that the right-hand side stays
            smooth, see :attr:`whole_orders`), and are read as 0 otherwise.
        k : numpy.ndarray
            ``(n, P)`` rate constants.

        Returns
        -------
        r : numpy.ndarray
            ``(n, P)`` rates ``k ∏ x^a``.
        f : numpy.ndarray
            ``(n, n_s)`` ``dx/dt``.
        J : numpy.ndarray
            ``(n, n_s, n_s)`` ``∂f/∂x``.
        """
        if not self.whole_orders:
            x = np.maximum(x, 0.0)
        return mass_action_rates_jacobian(np.ascontiguousarray(x, dtype=float),
                                          np.ascontiguousarray(k, dtype=float),
                                          self._reactants_c, self._net_c)

    @cached_property
    def _reactants_c(self) -> np.ndarray:
        """``reactants`` as a C-contiguous float array (the compiled kernel's input)."""
        return np.ascontiguousarray(self.reactants, dtype=float)

    @cached_property
    def _net_c(self) -> np.ndarray:
        """``net`` as a C-contiguous float array (the compiled kernel's input)."""
        return np.ascontiguousarray(self.net, dtype=float)


def temperature_offsets(data: ReactionData) -> tuple[float | None, np.ndarray | None]:
    """Return the reference temperature (the mean) and ``T_ref/T − 1`` per sample.

    Parameters
    ----------
    data : ReactionData
        With or without ``temperatures`` ``(n,)`` in K.

    Returns
    -------
    T_ref : float or None
        Mean temperature, K (``None`` without temperatures).
    x_temp : numpy.ndarray or None
        ``(n,)`` ``T_ref/T − 1`` (``None`` without temperatures).
    """
    T = data.temperatures
    if T is None:
        return None, None
    T_ref = float(np.mean(T))
    return T_ref, T_ref / T - 1.0


def carry_notes(source: Mechanism, target: Mechanism) -> None:
    """Copy ``source``'s notes that ``target`` lacks, except its own ``trajectory_fit``.

    A refit of a mechanism keeps what the search found out about it (its notes), while
    its fit summary is the refit's.
    """
    for key, note in source.notes.items():
        if key != "trajectory_fit":
            target.notes.setdefault(key, note)


def _log_rates(theta: np.ndarray, P: int, x_temp: np.ndarray | None, n: int) -> np.ndarray:
    """Return ``ln k`` ``(n, P)``; ``x_temp = T_ref/T − 1`` per sample with Arrhenius."""
    ln_k = np.broadcast_to(theta[:P], (n, P))
    if x_temp is not None:
        ln_k = ln_k - x_temp[:, None] * theta[P:2 * P][None, :]
    return np.clip(ln_k, -700.0, 700.0)


def simulate(model: KineticModel, theta: np.ndarray, initial: np.ndarray, times: np.ndarray,
             x_temp: np.ndarray | None = None, *, sensitivities: bool = True,
             rtol: float = 1e-7, atol: float = 1e-12, deadline: float | None = None,
             give_up: float | None = None, state_sensitivities: bool = False,
             solver: str = "compiled", probes: np.ndarray | None = None,
             ) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Integrate ``model`` from ``initial`` over ``times``, with forward sensitivities.

    Parameters
    ----------
    model : KineticModel
        The directions.
    theta : numpy.ndarray
        ``(P,)`` ``ln k``, or ``(2P,)`` ``ln k_ref`` then ``ε`` when ``x_temp`` is given.
    initial : numpy.ndarray
        ``(n, n_s)`` states at ``times[0]``.
    times : numpy.ndarray
        ``(n_t,)`` increasing reporting times shared by the samples.
    x_temp : numpy.ndarray or None, optional
        ``(n,)`` ``T_ref/T − 1`` per sample for Arrhenius parameters.
    sensitivities : bool, default True
        Also integrate ``S = ∂x/∂θ``.
    rtol, atol : float, default 1e-7, 1e-12
        Solver tolerances (``atol`` relative to each species' largest initial value).
    deadline : float or None, optional
        ``time.perf_counter()`` time after which the integration stops (checked at every
        right-hand side evaluation).
    give_up : float or None, optional
        ``time.perf_counter()`` time after which this integration is abandoned as failed
        (``ok`` False), unlike ``deadline`` which stops the whole fit.
    state_sensitivities : bool, default False
        With ``sensitivities``, also integrate ``∂x/∂ln x0_j`` (``S' = J S``,
        ``S(0) = diag(x0)``), appended after the ``θ`` columns.
    solver : {"compiled", "scipy"}, default "compiled"
        ``"compiled"``: :func:`rdlab.discover.mass_action_kernel.integrate_sample`, sample by
        sample, each with its own steps (``deadline`` and ``give_up`` are checked between
        samples); ``"scipy"``: SciPy's BDF on the stacked samples
        (:class:`~rdlab.discover.block_bdf.BlockBDF`), the reference it is tested against.
    probes : numpy.ndarray or None, optional
        ``(m, n_s)`` rows in V form (reactant orders ``max(−v, 0)``) not in the model, whose
        first-order effect is wanted: with ``sensitivities``, ``∂x/∂k_v`` at ``k_v = 0``
        (``S' = J S + m_v(x) v``, a unit rate's linear response) is appended as ``m`` more
        columns, after all others. Compiled solver only; the probes' columns take part in the
        error test, so the steps (and the other columns, within the tolerance) differ
        from a run without them.

    Returns
    -------
    x : numpy.ndarray
        ``(n, n_t, n_s)``.
    S : numpy.ndarray or None
        ``(n, n_t, n_s, n_θ)``, or ``(n, n_t, n_s, n_θ + n_s)`` with
        ``state_sensitivities``.
    ok : bool
        False when the solver failed (``x`` then holds what it reached, padded with NaN).

    Raises
    ------
    FitTimeout
        When ``deadline`` passes during the integration.
    """
    x0 = np.asarray(initial, float)
    n, S_ = x0.shape
    P = model.n_directions
    n_par = theta.size if sensitivities else 0
    n_th = n_par + (S_ if sensitivities and state_sensitivities else 0)
    k = np.exp(_log_rates(theta, P, x_temp, n))
    blocks = 1 + n_th
    scale = np.maximum(np.max(x0, axis=0), 1e-30)

    if solver == "compiled":
        return _simulate_compiled(model, k, x0, np.asarray(times, float), x_temp, n_par,
                                  n_th, rtol, atol * scale, deadline, give_up,
                                  probes if sensitivities else None)
    if solver != "scipy":
        raise ParameterError(f"solver must be 'compiled' or 'scipy', got {solver!r}")
    if probes is not None:
        raise ParameterError("probes need the compiled solver (solver='compiled')")

    def rhs(_t, y):
        if deadline is not None or give_up is not None:
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                raise FitTimeout("the trajectory fit ran past its deadline")
            if give_up is not None and now > give_up:
                raise _SlowIntegration
        Y = y.reshape(n, blocks, S_)
        r, f, J = model.rates_jacobian(Y[:, 0], k)
        out = np.empty_like(Y)
        out[:, 0] = f
        if n_th:
            dfd = r[:, :, None] * model.net[None]  # (n, P, S): ∂f/∂ln k_p
            src = dfd if x_temp is None else np.concatenate(
                [dfd, -x_temp[:, None, None] * dfd], axis=1)
            out[:, 1:] = np.matmul(Y[:, 1:], np.transpose(J, (0, 2, 1)))
            out[:, 1:1 + n_par] += src  # the initial-state blocks have no source
        return out.reshape(-1)

    def jac(t, y):
        Y = y.reshape(n, blocks, S_)
        J = model.rates_jacobian(Y[:, 0], k)[2]
        return BlockJacobian(J, _coupling(rhs, t, Y, n, blocks, S_) if n_th else None)

    y0 = np.zeros((n, blocks, S_))
    y0[:, 0] = x0
    if n_th > n_par:
        y0[:, 1 + n_par:, :] = x0[:, None, :] * np.eye(S_)  # ∂x0/∂ln x0 = diag(x0)
    tol = np.broadcast_to(atol * scale, (n, blocks, S_)).reshape(-1)
    t = np.asarray(times, float)
    Y = np.full((n, blocks, S_, t.size), np.nan)
    try:
        with np.errstate(all="ignore"):
            sol = solve_ivp(rhs, (t[0], t[-1]), y0.reshape(-1), method=BlockBDF, t_eval=t,
                            block_jac=jac, blocks=(n, blocks, S_), rtol=rtol, atol=tol)
    except (RuntimeError, ValueError, np.linalg.LinAlgError, _SlowIntegration) as err:
        if isinstance(err, FitTimeout):
            raise
        # rates so extreme that the Newton matrix overflows or is singular, or that the
        # integration crawls: a failed integration (NaN states), which the fit scores as a
        # bad step, not a crash
        return np.transpose(Y[:, 0], (0, 2, 1)), (
            np.transpose(Y[:, 1:], (0, 3, 2, 1)) if n_th else None), False
    reached = len(sol.t)  # a solver that fails before the first report time returns y = []
    if reached:
        Y[..., :reached] = np.reshape(sol.y, (n, blocks, S_, reached))
    ok = bool(sol.success and reached == t.size and np.all(np.isfinite(Y)))
    x = np.transpose(Y[:, 0], (0, 2, 1))
    sens = np.transpose(Y[:, 1:], (0, 3, 2, 1)) if n_th else None
    return x, sens, ok


#: Steps after which one sample's integration is abandoned as failed (a GRI-3.0 sample
#: takes about 500 at ``rtol`` 1e-7; a step costs 5–25 µs).
MAX_STEPS = 50_000


#: Rate of a probe row (:func:`simulate`'s ``probes``) in the state's equations: far below
#: anything the state resolves; its sensitivity's source is scaled back by ``1/PROBE_RATE``.
PROBE_RATE = 1e-30


def _simulate_compiled(model: KineticModel, k: np.ndarray, x0: np.ndarray, t: np.ndarray,
                       x_temp: np.ndarray | None, n_par: int, n_th: int, rtol: float,
                       atol: np.ndarray, deadline: float | None, give_up: float | None,
                       probes: np.ndarray | None = None,
                       ) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """:func:`simulate` by :func:`~rdlab.discover.mass_action_kernel.integrate_sample`."""
    n, S_ = x0.shape
    P = model.n_directions
    A, net = model._reactants_c, model._net_c
    m = 0 if probes is None else len(probes)
    if m:  # appended directions at PROBE_RATE, each the source of one more column
        probes = np.asarray(probes, float)
        A = np.ascontiguousarray(np.vstack([A, np.maximum(-probes, 0.0)]))
        net = np.ascontiguousarray(np.vstack([net, probes]))
        k = np.hstack([k, np.full((n, m), PROBE_RATE)])
    n_all = n_th + m
    # the source of each sensitivity block: ∂f/∂ln k_p = r_p ν_p, ∂f/∂ε_p = −x_T r_p ν_p,
    # none for ∂x/∂ln x0
    src_dir = np.full(n_all, -1, np.int64)
    src_w = np.ones((n, n_all))
    src_dir[:min(n_par, P)] = np.arange(min(n_par, P))
    if n_par > P:
        src_dir[P:n_par] = np.arange(P)
        src_w[:, P:n_par] = -np.asarray(x_temp, float)[:, None]
    src_dir[n_th:] = P + np.arange(m)
    src_w[:, n_th:] = 1.0 / PROBE_RATE
    s0 = np.zeros((n_all, S_))
    Y = np.full((n, t.size, 1 + n_all, S_), np.nan)
    clip = not model.whole_orders
    ok = True
    with np.errstate(all="ignore"):
        for i in range(n):
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                raise FitTimeout("the trajectory fit ran past its deadline")
            if give_up is not None and now > give_up:
                ok = False
                break
            if n_th > n_par:
                s0[n_par:n_th] = np.diag(x0[i])  # ∂x0/∂ln x0 = diag(x0)
            try:
                status, _ = integrate_sample(x0[i], np.ascontiguousarray(k[i]), A, net, clip,
                                             src_dir, np.ascontiguousarray(src_w[i]), s0, t,
                                             rtol, atol, MAX_STEPS, Y[i])
            except (ZeroDivisionError, ValueError):
                status = FAILED_STEP_SIZE
            if status != SUCCESS:
                ok = False
                break
    ok = ok and bool(np.all(np.isfinite(Y)))
    x = Y[:, :, 0]
    sens = np.transpose(Y[:, :, 1:], (0, 1, 3, 2)) if n_all else None
    return x, sens, ok


def _coupling(rhs, t: float, Y: np.ndarray, n: int, blocks: int, S: int) -> np.ndarray:
    """Return ``∂(dS/dt)/∂x``, the sensitivity rows' dependence on the states (Newton only).

    The Newton matrix of the stacked system is block lower-triangular; with only its
    diagonal, Newton stalls in fast transients and the solver takes tiny steps. These blocks
    only shape the Newton iteration (the sensitivities themselves stay analytic), so they
    are taken by forward differences, one species of all samples at a time.
    """
    base = rhs(t, Y.reshape(-1)).reshape(n, blocks, S)
    x = Y[:, 0]
    cols = []
    for j in range(S):
        h = 1e-7 * np.maximum(np.abs(x[:, j]), 1e-8 * max(float(np.max(np.abs(x))), 1e-30))
        Yp = Y.copy()
        Yp[:, 0, j] += h
        cols.append((rhs(t, Yp.reshape(-1)).reshape(n, blocks, S) - base)[:, 1:]
                     / h[:, None, None])
    return np.stack(cols, axis=-1)  # (n, blocks − 1, S rows, S cols)


def relative_residuals(pred: np.ndarray, measured: np.ndarray,
                       floor: float = RESIDUAL_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(pred − measured)/(|measured| + δ_s)`` and the weights ``1/(|measured| + δ_s)``.

    Parameters
    ----------
    pred, measured : numpy.ndarray
        ``(n, n_t, n_s)`` concentrations.
    floor : float, default RESIDUAL_FLOOR
        ``δ_s = floor · max measured_s``.

    Returns
    -------
    residuals, weights : numpy.ndarray
        Each ``(n, n_t, n_s)``.
    """
    scale = np.max(np.abs(measured), axis=(0, 1))
    scale = np.where(scale > 0, scale, 1.0)
    w = 1.0 / (np.abs(measured) + floor * scale)
    return (pred - measured) * w, w


def residual_autocorrelation(r: np.ndarray, data: ReactionData) -> float:
    """Return the pooled lag-1 autocorrelation of the residuals along each sample's time.

    ``Σ r_t r_(t+1) / Σ r_t²`` over samples and species. Independent measurement noise
    gives about 0 (standard error ``1/sqrt(n (n_t − 2) n_s)``); a mechanism that misses
    the dynamics leaves residuals that vary smoothly in time, near 1.

    Parameters
    ----------
    r : numpy.ndarray
        Residuals ``(n · (n_t − 1) · n_s,)`` in the order of the fit (time 0 has none).
    data : ReactionData
        The data fitted (for the shape).

    Returns
    -------
    float
        The autocorrelation (0 with fewer than 3 times or zero residuals).
    """
    n, n_t, S = data.concentrations.shape
    if n_t < 3 or r.size != n * (n_t - 1) * S:
        return 0.0
    R = r.reshape(n, n_t - 1, S)
    den = float(np.sum(R * R))
    return float(np.sum(R[:, 1:] * R[:, :-1]) / den) if den > 0 else 0.0


def acceptance_threshold(noise: float | None, floor_noise: float = NOISE_FLOOR) -> float:
    """Return the per-species RMS relative residual a reproducing mechanism must reach.

    Parameters
    ----------
    noise : float or None
        Multiplicative noise level η of the concentrations (``None`` or 0: noise-free).
    floor_noise : float, default NOISE_FLOOR
        The reproduction limit of noise-free data.

    Returns
    -------
    float
        ``3 · max(η, floor_noise)``: an RMS of η is expected, 3η leaves room for the noise of
        the initial states (which the fit takes as exact).
    """
    return 3.0 * max(float(noise or 0.0), floor_noise)


@dataclass
class TrajectoryFit:
    """A candidate's rates fitted to the trajectories, and how well it reproduces them.

    Attributes
    ----------
    mechanism : Mechanism
        The fitted mechanism (same rows as the candidate; pruned directions have rate 0).
        ``notes["trajectory_fit"]`` holds :meth:`summary`.
    names : list of str
        Fitted parameters (``kf_i``, ``kr_i``; ``eps_kf_i`` = Ea/(R T_ref) with temperatures).
    theta : numpy.ndarray
        Their values (``ln k``; ``ε``).
    species_rms : numpy.ndarray
        ``(n_s,)`` RMS relative residual per species.
    max_residual : float
        Largest absolute relative residual.
    noise_estimate : float
        ``RMS · sqrt(m / (m − p))`` over all residuals: the noise level the fit implies.
    threshold : float
        :func:`acceptance_threshold` of the noise used.
    accepted : bool
        Every species' RMS is at most ``threshold``.
    identifiability : Identifiability
        What the data determine (:func:`rdlab.discover.identifiability.analyse`).
    pruned : list of str
        Directions removed as negligible against the data.
    seconds : float
        Wall time of the fit.
    evaluations : int
        Integrations (with sensitivities) made.
    success : bool
        The final integration succeeded.
    timed_out : bool
        The deadline passed before the fit finished: the rates are the best reached, the
        fit is not accepted, and pruning was skipped.
    autocorrelation : float
        Lag-1 autocorrelation of the residuals along time, pooled over samples and species
        (:func:`residual_autocorrelation`).
    null_autocorrelation : float or None
        The autocorrelation the same fit would show if the mechanism were right and the
        data carried multiplicative noise ``noise_estimate`` on every measurement, the
        initial states included (whose error every later residual inherits): from one
        synthetic draw (:func:`_null_autocorrelation`). Computed for fits that are not
        accepted as noise-free; ``None`` otherwise.
    initial_states : numpy.ndarray or None
        ``(n, n_s)`` initial states fitted with the rates
        (:func:`rdlab.discover.initial_states.fit_with_initial_states`); ``None`` when the
        measured first states were taken as exact.
    """

    @property
    def noise_like(self) -> bool:
        """Say whether the residuals look like measurement noise rather than a wrong model.

        True when :attr:`autocorrelation` exceeds :attr:`null_autocorrelation` by at most
        :data:`AUTOCORRELATION_MARGIN` (a wrong mechanism leaves residuals that vary
        smoothly in time: 0.6–0.9 against 0.2–0.3 on the bundled examples).

        Returns
        -------
        bool
            The verdict (False when the null was not computed).
        """
        return bool(self.null_autocorrelation is not None and self.autocorrelation
                    <= self.null_autocorrelation + AUTOCORRELATION_MARGIN)

    mechanism: Mechanism
    names: list[str]
    theta: np.ndarray
    species_rms: np.ndarray
    max_residual: float
    noise_estimate: float
    threshold: float
    accepted: bool
    identifiability: Identifiability
    pruned: list[str] = field(default_factory=list)
    seconds: float = 0.0
    evaluations: int = 0
    success: bool = True
    timed_out: bool = False
    autocorrelation: float = 0.0
    null_autocorrelation: float | None = None
    initial_states: np.ndarray | None = None

    @property
    def error(self) -> float:
        """The worst species' RMS relative residual."""
        return float(np.max(self.species_rms))

    def summary(self) -> dict:
        """Return a JSON-ready dict of the fit quality and identifiability.

        Returns
        -------
        dict
            ``accepted``, ``species_rms`` (by name), ``max_residual``, ``noise_estimate``,
            ``threshold``, ``pruned``, ``seconds``, ``evaluations``, ``timed_out``,
            ``autocorrelation``, ``initial_states_fitted`` and ``identifiability``.
        """
        return {"accepted": self.accepted,
                "species_rms": dict(zip(self.mechanism.species, map(float, self.species_rms))),
                "max_residual": self.max_residual, "noise_estimate": self.noise_estimate,
                "threshold": self.threshold, "pruned": list(self.pruned),
                "seconds": self.seconds, "evaluations": self.evaluations,
                "timed_out": self.timed_out, "autocorrelation": self.autocorrelation,
                "initial_states_fitted": self.initial_states is not None,
                "identifiability": self.identifiability.to_dict()}


class TrajectoryProblem:
    """A model and the data its trajectories are fitted to, and what the fit keeps.

    The common part of the least-squares problems of this module and
    :mod:`rdlab.discover.initial_states`: the measured concentrations and their residual
    weights, the samples grouped by time grid, the solver settings, and of the
    evaluations the last one (the optimiser asks for the residuals, then the Jacobian, at
    the same parameters) and the lowest-cost successful one (kept when the fit runs out
    of time).

    Parameters
    ----------
    model : KineticModel
        The directions.
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations.
    x_temp : numpy.ndarray or None
        ``(n,)`` ``T_ref/T − 1`` per sample (Arrhenius), or ``None``.
    floor, rtol : float
        Residual floor (:func:`relative_residuals`) and solver tolerance.
    deadline : float or None, optional
        ``time.perf_counter()`` time at which evaluations stop (:class:`FitTimeout`).

    Attributes
    ----------
    best : tuple or None
        ``(cost, parameters, residuals, Jacobian, ok)`` of the lowest-cost evaluation.
    """

    def __init__(self, model: KineticModel, data: ReactionData, x_temp: np.ndarray | None,
                 floor: float, rtol: float, deadline: float | None = None) -> None:
        self.model, self.x_temp, self.rtol, self.deadline = model, x_temp, rtol, deadline
        self.timed_out = False
        c = data.concentrations
        self.measured = c
        _, self.w = relative_residuals(c, c, floor)
        self.groups = time_groups(data)  # samples sharing a time grid go together
        self.evaluations = 0
        self.best: tuple | None = None
        self._cache: tuple | None = None

    def integrate(self, theta: np.ndarray, initial: np.ndarray, *,
                  give_up: float | None = None, state_sensitivities: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Integrate every time group from ``initial`` with sensitivities (:func:`simulate`).

        Parameters
        ----------
        theta : numpy.ndarray
            ``(n_θ,)`` parameters.
        initial : numpy.ndarray
            ``(n, n_s)`` initial states.
        give_up : float or None, optional
            ``time.perf_counter()`` time after which an integration counts as failed.
        state_sensitivities : bool, default False
            Also ``∂x/∂ln x0`` (appended after the ``θ`` columns).

        Returns
        -------
        x, S, ok
            ``(n, n_t, n_s)``, ``(n, n_t, n_s, n_θ [+ n_s])`` and the solvers' success.

        Raises
        ------
        FitTimeout
            Past the deadline (``timed_out`` is then set).
        """
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.timed_out = True
            raise FitTimeout("the trajectory fit ran past its deadline")
        n, n_t, S = self.measured.shape
        x = np.empty((n, n_t, S))
        sens = np.empty((n, n_t, S, theta.size + (S if state_sensitivities else 0)))
        ok = True
        for idx, t in self.groups:
            xt = None if self.x_temp is None else self.x_temp[idx]
            try:
                x[idx], sens[idx], good = simulate(
                    self.model, theta, initial[idx], t, xt, rtol=self.rtol,
                    deadline=self.deadline, give_up=give_up,
                    state_sensitivities=state_sensitivities)
            except FitTimeout:
                self.timed_out = True
                raise
            ok = ok and good
        return x, sens, ok

    def recall(self, key: bytes) -> tuple | None:
        """Return ``(residuals, Jacobian, ok)`` if the last evaluation was at ``key``."""
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1:]
        return None

    def remember(self, key: bytes, params: np.ndarray, r: np.ndarray, jac, ok: bool) -> tuple:
        """Keep an evaluation at ``params`` (bytes ``key``); return ``(r, jac, ok)``."""
        self._cache = (key, r, jac, ok)
        cost = float(r @ r)
        if self.best is None or (ok and cost < self.best[0]):
            self.best = (cost, params.copy(), r, jac, ok)
        return r, jac, ok

    def last_good(self, params0: np.ndarray) -> tuple:
        """Return ``(parameters, residuals, Jacobian, ok)`` of the best evaluation.

        ``(params0, None, None, False)`` when nothing was evaluated.
        """
        if self.best is None:
            return params0, None, None, False
        return self.best[1:]


class _Problem(TrajectoryProblem):
    """Residuals and sensitivity Jacobian of one model on one data set (cached per θ)."""

    def __init__(self, model: KineticModel, data: ReactionData, x_temp: np.ndarray | None,
                 floor: float, rtol: float, deadline: float | None = None,
                 target: float | None = None, hopeless: float | None = None):
        super().__init__(model, data, x_temp, floor, rtol, deadline)
        #: seconds of the first evaluation (the yardstick of :data:`SLOW_EVALUATION`)
        self._first_seconds: float | None = None
        #: a successful evaluation whose worst species' RMS residual is at most this ends
        #: the fit (:class:`_GoodEnough`): a pruning refit needs no more; one that stays
        #: above :data:`HOPELESS_FACTOR` times it is given up (:class:`_Hopeless`)
        self.target = target
        #: the bound of :class:`_Hopeless` (default :data:`HOPELESS_FACTOR` × ``target``):
        #: a revival gives up above it without stopping at a target
        self.hopeless = hopeless
        self._lowest_worst = math.inf

    def run(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Return the residuals ``(m,)``, the Jacobian ``(m, n_θ)`` and the solver's success."""
        key = theta.tobytes()
        if (hit := self.recall(key)) is not None:
            return hit
        start = time.perf_counter()
        give_up = None if self._first_seconds is None else start + max(
            SLOW_EVALUATION * self._first_seconds, SLOW_EVALUATION_MIN_S)
        x, sens, ok = self.integrate(theta, self.measured[:, 0], give_up=give_up)
        if self._first_seconds is None:
            self._first_seconds = time.perf_counter() - start
        self.evaluations += 1
        r = ((x - self.measured) * self.w)[:, 1:]
        jac = (sens * self.w[..., None])[:, 1:]
        r = np.nan_to_num(r, nan=1e3, posinf=1e3, neginf=-1e3).reshape(-1)
        jac = np.nan_to_num(jac, nan=0.0, posinf=0.0, neginf=0.0).reshape(r.size, -1)
        out = self.remember(key, theta, r, jac, ok)
        if self.target is not None or self.hopeless is not None:
            worst = float(np.max(np.sqrt(np.mean(r.reshape(-1, self.measured.shape[2]) ** 2,
                                                 axis=0)))) if ok else math.inf
            if self.target is not None and worst <= self.target:
                raise _GoodEnough(theta.copy())
            self._lowest_worst = min(self._lowest_worst, worst)
            limit = self.hopeless if self.hopeless is not None else HOPELESS_FACTOR * self.target
            if self.evaluations >= HOPELESS_EVALUATIONS and self._lowest_worst > limit:
                raise _Hopeless
        return out

    def last_good(self, theta0: np.ndarray) -> tuple:
        """Return ``(θ, residuals, Jacobian, ok)`` of the best evaluation after a timeout.

        With nothing evaluated, residuals of 1e3 and a zero Jacobian (a failed fit).
        """
        if self.best is None:
            m = self.measured[:, 1:].size
            return theta0, np.full(m, 1e3), np.zeros((m, theta0.size)), False
        return super().last_good(theta0)


def start_parameters(mechanism: Mechanism, model: KineticModel, T_ref: float | None) -> np.ndarray:
    """Return ``θ`` from the candidate's rates; absent directions start 1e-6 of their row."""
    kf, kr = mechanism.rates_at(T_ref)
    kf, kr = np.asarray(kf, float), np.asarray(kr, float)
    positive = np.concatenate([kf[kf > 0], kr[kr > 0]])
    typical = float(np.exp(np.mean(np.log(positive)))) if positive.size else 1.0
    ln_k = []
    for i, d in model.directions:
        k = (kf if d == 0 else kr)[i]
        other = (kr if d == 0 else kf)[i]
        ln_k.append(np.log(k) if k > 0 else np.log(1e-6 * (other if other > 0 else typical)))
    theta = np.clip(np.array(ln_k), *_LOG_K_BOUNDS)
    if T_ref is None:
        return theta
    arr = mechanism.arrhenius
    eps = []
    for i, d in model.directions:
        e = 0.0 if arr is None else (arr.energy_f if d == 0 else arr.energy_r)[i]
        g = GAS_CONSTANT if arr is None else arr.gas_constant
        eps.append(e / (g * T_ref))
    return np.concatenate([theta, np.array(eps)])


def fit_least_squares(problem: _Problem, theta0: np.ndarray, max_nfev: int,
                   ftol: float = 1e-10) -> np.ndarray:
    """Fit ``θ`` by trust-region least squares with the sensitivity Jacobian.

    ``ftol`` is the relative change of the cost at which the fit stops (scipy's).
    """
    P = problem.model.n_directions
    lo = np.full(theta0.size, -np.inf)
    hi = np.full(theta0.size, np.inf)
    lo[:P], hi[:P] = _LOG_K_BOUNDS
    x0 = np.clip(theta0, lo + 1e-9, hi - 1e-9)
    dense = getattr(problem, "dense", True)  # a large sparse Jacobian is solved by LSMR
    eye = PRIOR_WEIGHT * (np.eye(x0.size) if dense else sp.identity(x0.size, format="csr"))

    def fun(th):
        return np.concatenate([problem.run(th)[0], PRIOR_WEIGHT * (th - x0)])

    def jac(th):
        J = problem.run(th)[1]
        return np.vstack([J, eye]) if dense else sp.vstack([J, eye], format="csr")

    try:
        sol = least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf", x_scale=1.0,
                            max_nfev=max_nfev, xtol=1e-9, ftol=ftol, gtol=1e-10,
                            tr_solver="exact" if dense else "lsmr")
    except FitTimeout:
        return problem.last_good(x0)[0]
    except _GoodEnough as done:
        return done.theta
    except _Hopeless:
        return problem.last_good(x0)[0]
    return sol.x


def fitted_mechanism(model: KineticModel, theta: np.ndarray, active: np.ndarray,
               T_ref: float | None) -> Mechanism:
    """Return the candidate's rows with the fitted rates (inactive directions at 0)."""
    n_r = model.V.shape[0]
    P = model.n_directions
    k = np.where(active, np.exp(np.clip(theta[:P], -700, 700)), 0.0)
    kf, kr = np.zeros(n_r), np.zeros(n_r)
    for (i, d), kp in zip(model.directions, k):
        (kf if d == 0 else kr)[i] = kp
    if T_ref is None:
        return Mechanism(model.species, model.V, kf, kr, model.orders)
    eps = np.where(active, theta[P:], 0.0)
    ef, er = np.zeros(n_r), np.zeros(n_r)
    for (i, d), e in zip(model.directions, eps):
        (ef if d == 0 else er)[i] = e * GAS_CONSTANT * T_ref
    # ln k(T) = ln k_ref − ε (T_ref/T − 1): A = k_ref e^ε, Ea = ε R T_ref
    arr = ArrheniusRates.at_reference(kf, kr, ef, er, T_ref, GAS_CONSTANT)
    return Mechanism(model.species, model.V, kf, kr, model.orders, arr, T_ref)


def _submodel(model: KineticModel, active: np.ndarray) -> KineticModel:
    """Return ``model`` with only the ``active`` directions."""
    keep = np.flatnonzero(active)
    return KineticModel(model.species, model.reactants[keep], model.net[keep],
                        tuple(model.directions[j] for j in keep), model.V, model.orders)


def _active_problem(model: KineticModel, active: np.ndarray, data: ReactionData, x_temp,
                    opts: dict) -> tuple[_Problem, np.ndarray]:
    """Return the problem of the ``active`` directions and their columns of the full ``θ``."""
    return _Problem(_submodel(model, active), data, x_temp, opts["floor"], opts["rtol"],
                    opts.get("deadline"), opts.get("target"), opts.get("hopeless")
                    ), _active_columns(model, active, x_temp)


def _active_columns(model: KineticModel, active: np.ndarray, x_temp) -> np.ndarray:
    """Return the columns of the full ``θ`` (``ln k``, then ``ε``) of the active directions."""
    idx = np.flatnonzero(active)
    return idx if x_temp is None else np.concatenate([idx, model.n_directions + idx])


def _trial_fit(model: KineticModel, active: np.ndarray, theta: np.ndarray,
               data: ReactionData, x_temp, opts: dict, **overrides) -> tuple:
    """:func:`_fit_active` with ``overrides`` of ``opts`` for this fit only.

    ``max_nfev``, ``target`` or ``hopeless`` (see :class:`_Problem`); a timeout is recorded
    in ``opts`` so that the caller stops.
    """
    trial_opts = {**opts, **overrides}
    out = _fit_active(model, active, theta, data, x_temp, trial_opts)
    if trial_opts.get("timed_out"):
        opts["timed_out"] = True
    return out


def _fit_active(model: KineticModel, active: np.ndarray, theta: np.ndarray,
                data: ReactionData, x_temp, opts: dict) -> tuple:
    """Fit the active directions; return full ``θ``, residuals, evaluations, Jacobian, ok."""
    P = model.n_directions
    problem, cols = _active_problem(model, active, data, x_temp, opts)
    sub = fit_least_squares(problem, theta[cols], opts["max_nfev"])
    problem.target = problem.hopeless = None  # the fit is over: no more stop signals
    try:
        r, jac, ok = problem.run(sub)
    except FitTimeout:
        sub, r, jac, ok = problem.last_good(theta[cols])
    full = theta.copy()
    full[cols] = sub
    full[:P][~active] = _LOG_K_BOUNDS[0]
    opts["timed_out"] = opts.get("timed_out", False) or problem.timed_out
    return full, r, problem.evaluations, jac, ok


def rms_per_species(r: np.ndarray, data: ReactionData) -> np.ndarray:
    """Return the RMS of the residuals ``(n·(n_t−1)·n_s,)`` per species."""
    n, n_t, S = data.concentrations.shape
    return np.sqrt(np.mean(r.reshape(n, n_t - 1, S) ** 2, axis=(0, 1)))


def fit_trajectories(mechanism: Mechanism, data: ReactionData, *, noise: float | None = None,
                     prune: bool = True, floor: float = RESIDUAL_FLOOR, rtol: float = 1e-7,
                     max_nfev: int = 30, max_standard_error: float = MAX_STANDARD_ERROR,
                     reversible: np.ndarray | None = None, revive: bool = True,
                     deadline: float | None = None, max_rows: int | None = None,
                     drop_negligible: bool = True) -> TrajectoryFit:
    """Fit ``mechanism``'s rates to the concentration trajectories of ``data``.

    Parameters
    ----------
    mechanism : Mechanism
        Candidate with integer rows; its rates (and Arrhenius parameters) are the start.
        Directions with rate 0 start at 1e-6 of their row's other direction.
    data : ReactionData
        ``(n, n_t, n_s)`` concentrations (derivatives are not used); with ``temperatures``,
        ``ln k_ref`` and ``ε = Ea/(R T_ref)`` (``T_ref`` the mean temperature) are fitted.
    noise : float or None, optional
        Multiplicative noise level of the concentrations. ``None``: the acceptance judges
        the data as noise-free (:data:`NOISE_FLOOR`) and identifiability uses the fit's
        ``noise_estimate`` (a fit's own residual cannot tell noise from a wrong structure).
    prune : bool, default True
        Remove directions that are negligible against the data: each direction the data do
        not determine alone (standard error of ``ln k`` > 1) is set to 0 and the rest
        re-fitted; the removal stays when every species' RMS residual stays
        ≤ ``max(1.05 × before, max(noise, NOISE_FLOOR))``. Negligible fluxes go first, all
        together, then whole rows (largest first: of rows the data cannot tell apart the
        simplest stays), then single directions (:func:`_prune`). Pruned or not, a
        direction whose mean flux is below :data:`~rdlab.discover.mechanism.NEGLIGIBLE_FLUX`
        of the typical flux is removed at the end (:func:`_drop_negligible`) unless
        ``drop_negligible`` is false.
    floor : float, default RESIDUAL_FLOOR
        Relative floor of the residual weights (:func:`relative_residuals`).
    rtol : float, default 1e-7
        Solver tolerance.
    max_nfev : int, default 30
        Most least-squares iterations per fit.
    max_standard_error : float, default MAX_STANDARD_ERROR
        Identifiability threshold (:func:`rdlab.discover.identifiability.analyse`).
    reversible : numpy.ndarray or None, optional
        ``(n_r,)`` bool, rows whose reverse is fitted (default: every V-form row).
    revive : bool, default True
        When the fit does not reproduce the data, restart the directions whose flux is
        negligible (:data:`REVIVE_SHARE` of the typical flux) at the typical flux — all
        together, then up to :data:`REVIVE_TRIES` one at a time — and re-fit; keep a
        restart when every species' RMS residual falls by :data:`REVIVE_GAIN`; a restart
        still :data:`HOPELESS_FACTOR` times above that after
        :data:`HOPELESS_EVALUATIONS` evaluations is given up. A rate started near 0 sits
        on a plateau of the log-rate residual (its gradient ∝ k), which a local fit never
        leaves. With unknown noise, a fit whose residuals already
        look like noise (:attr:`TrajectoryFit.noise_like`) is not restarted.
    deadline : float or None, optional
        ``time.perf_counter()`` time at which to stop (integrations are interrupted): the
        fit then reports ``timed_out``, keeps the best rates reached, is not accepted and
        skips pruning.
    max_rows : int or None, optional
        Rows the mechanism is known to have: while more remain, pruning also tries removing
        rows whose rates the data determine (an over-complete start such as
        :func:`~rdlab.discover.subspace.fit_all_rows` can share a flux between rows in a
        way the data pin down, without needing both).
    drop_negligible : bool, default True
        Remove the directions of negligible flux at the end (see ``prune``); an
        intermediate fit that a later one continues from keeps them.

    Returns
    -------
    TrajectoryFit
        Fitted mechanism, fit quality, acceptance and identifiability.

    Raises
    ------
    ParameterError
        For data with fewer than 2 times, a species mismatch, or a negative noise level.
    """
    t0 = time.perf_counter()
    if data.concentrations.shape[1] < 2:
        raise ParameterError("trajectory fitting needs at least 2 times per sample")
    if tuple(data.species) != tuple(mechanism.species):
        raise ParameterError(f"data species {list(data.species)} differ from the mechanism's "
                             f"{list(mechanism.species)}")
    if noise is not None and (not np.isfinite(noise) or noise < 0):
        raise ParameterError(f"noise must be ≥ 0, got {noise!r}")
    T = data.temperatures
    T_ref, x_temp = temperature_offsets(data)
    model = KineticModel.from_mechanism(mechanism, reversible)
    opts = {"floor": floor, "rtol": rtol, "max_nfev": max_nfev, "deadline": deadline}
    active = np.ones(model.n_directions, bool)
    theta, r, evals, jac, ok = _fit_active(model, active, start_parameters(mechanism, model, T_ref),
                                           data, x_temp, opts)
    # the forward-only integration of _null_autocorrelation may take as long as 3
    # evaluations with sensitivities (each ~n_θ forward solves); a crawl past that fails it
    opts["give_up_s"] = max(3.0 * (time.perf_counter() - t0) / max(evals, 1),
                            SLOW_EVALUATION_MIN_S)
    sigma = max(noise if noise is not None else 0.0, NOISE_FLOOR)
    if revive and not opts.get("timed_out") and not _looks_like_noise(
            model, theta, r, data, x_temp, opts, noise):
        theta, r, jac, ok, extra = _revive(model, theta, r, jac, ok, data, x_temp, opts,
                                           acceptance_threshold(noise))
        evals += extra
    timed_out = bool(opts.get("timed_out"))  # pruning that runs out of time just stops
    names = model.names()
    if prune and model.n_directions and not timed_out:
        theta, r, jac, ok, active, extra = _prune(model, theta, r, jac, ok, data, x_temp,
                                                  opts, sigma, max_standard_error, max_rows)
        evals += extra
    if drop_negligible and model.n_directions and not timed_out:
        theta, r, jac, ok, active = _drop_negligible(model, theta, r, jac, ok, active, data,
                                                     x_temp, opts, sigma)
    pruned = [n for n, a in zip(names, active) if not a]
    rms = rms_per_species(r, data)
    m, p = r.size, int(active.sum()) * (1 if T is None else 2)
    noise_est = float(np.sqrt(np.mean(r * r) * m / max(m - p, 1)))
    threshold = acceptance_threshold(noise)  # unknown noise: judged as noise-free
    ident = rate_identifiability(model, active, theta, jac, sigma if noise is not None
                             else max(noise_est, NOISE_FLOOR), max_standard_error, T_ref)
    mech = fitted_mechanism(model, theta, active, T_ref)
    fit = TrajectoryFit(mech, names + ([f"eps_{n}" for n in names] if T is not None else []),
                        theta, rms, float(np.max(np.abs(r))) if r.size else 0.0, noise_est,
                        threshold, bool(ok and np.all(rms <= threshold) and not timed_out),
                        ident, pruned, time.perf_counter() - t0, evals, ok, timed_out,
                        residual_autocorrelation(r, data))
    if not fit.accepted and ok and not timed_out:
        fit.null_autocorrelation = _null_autocorrelation(model, theta, active, r, data,
                                                         x_temp, noise_est, opts)
    mech.notes["trajectory_fit"] = fit.summary()
    return fit


def _looks_like_noise(model: KineticModel, theta: np.ndarray, r: np.ndarray,
                      data: ReactionData, x_temp: np.ndarray | None, opts: dict,
                      noise: float | None) -> bool:
    """Say whether a full fit with unknown noise leaves residuals that look like noise.

    Its RMS above the noise-free threshold, residual autocorrelation at most
    :data:`AUTOCORRELATION_MARGIN` above :func:`_null_autocorrelation`'s.
    """
    if noise is not None or not r.size:
        return False
    if np.max(rms_per_species(r, data)) <= acceptance_threshold(None):
        return False
    m, p = r.size, model.n_directions * (1 if x_temp is None else 2)
    sigma = float(np.sqrt(np.mean(r * r) * m / max(m - p, 1)))
    null = _null_autocorrelation(model, theta, np.ones(model.n_directions, bool), r, data,
                                 x_temp, sigma, opts)
    return bool(null is not None
                and residual_autocorrelation(r, data) <= null + AUTOCORRELATION_MARGIN)


def _null_autocorrelation(model: KineticModel, theta: np.ndarray, active: np.ndarray,
                          r: np.ndarray, data: ReactionData, x_temp: np.ndarray | None,
                          sigma: float, opts: dict) -> float | None:
    """Return the residual autocorrelation of a right mechanism under noise ``sigma``.

    The measured initial states are taken as the truth ``c0``; synthetic data are
    ``x(c0)·(1 + σξ)`` and the synthetic fit starts from ``c0·(1 + σξ0)``, as the real fit
    starts from noisy measured states. ``x(c0)`` is the fit's own prediction, read back from
    its residuals ``r``; only the start from ``c0·(1 + σξ0)`` is integrated. Seeded, so a
    fit's verdict is reproducible.
    """
    sub, th = _submodel(model, active), theta[_active_columns(model, active, x_temp)]
    rng = np.random.default_rng(0)
    c = data.concentrations
    _, w = relative_residuals(c, c, opts["floor"])
    clean = c.copy()
    clean[:, 1:] += r.reshape(c.shape[0], c.shape[1] - 1, c.shape[2]) / w[:, 1:]
    c0_noisy = c[:, 0] * (1.0 + sigma * rng.standard_normal(c[:, 0].shape))
    give_up = time.perf_counter() + opts["give_up_s"] if "give_up_s" in opts else None
    try:
        start = _trajectories(sub, th, c0_noisy, data, x_temp, opts["rtol"],
                              opts.get("deadline"), give_up)
    except FitTimeout:
        return None
    if start is None:
        return None
    synthetic = clean * (1.0 + sigma * rng.standard_normal(c.shape))
    r_null, _ = relative_residuals(start, synthetic, opts["floor"])
    return residual_autocorrelation(r_null[:, 1:].reshape(-1), data)


def trajectory_errors(mechanism: Mechanism, data: ReactionData, *,
                      floor: float = RESIDUAL_FLOOR, rtol: float = 1e-7,
                      give_up_s: float | None = None) -> np.ndarray | None:
    """Return how well ``mechanism``, as it stands, reproduces the trajectories (no fit).

    Each sample is integrated (forward only) from its first measured state at its times,
    at its temperature for Arrhenius mechanisms (reference temperature: the mean).

    Parameters
    ----------
    mechanism : Mechanism
        V form or catalytic; its rates as given.
    data : ReactionData
        Concentrations ``(n, n_t, n_s)``, species as the mechanism's.
    floor, rtol : float
        Residual floor (:func:`relative_residuals`) and solver tolerance.
    give_up_s : float or None, optional
        Seconds after which the integration is abandoned.

    Returns
    -------
    numpy.ndarray or None
        ``(n_s,)`` RMS relative residual per species over the later times; ``None`` when
        the integration failed or gave up.
    """
    T_ref, x_temp = temperature_offsets(data)
    model = KineticModel.from_mechanism(mechanism, np.asarray(mechanism.kr) > 0)
    give_up = None if give_up_s is None else time.perf_counter() + give_up_s
    c = data.concentrations
    x = _trajectories(model, start_parameters(mechanism, model, T_ref), c[:, 0], data, x_temp, rtol,
                      None, give_up)
    if x is None:
        return None
    r, _ = relative_residuals(x, c, floor)
    return rms_per_species(r[:, 1:].reshape(-1), data)


def _trajectories(model: KineticModel, theta: np.ndarray, initial: np.ndarray,
                  data: ReactionData, x_temp: np.ndarray | None, rtol: float,
                  deadline: float | None, give_up: float | None) -> np.ndarray | None:
    """Return ``(n, n_t, n_s)`` forward solutions from ``initial`` at each sample's times.

    ``None`` when an integration failed or gave up; :class:`FitTimeout` past ``deadline``.
    """
    x = np.empty_like(data.concentrations)
    for ids, t in time_groups(data):
        xt = None if x_temp is None else x_temp[ids]
        x[ids], _, ok = simulate(model, theta, initial[ids], t, xt, sensitivities=False,
                                 rtol=rtol, deadline=deadline, give_up=give_up)
        if not ok:
            return None
    return x


def time_groups(data: ReactionData) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return ``(sample indices, times)`` of the samples that share a time grid."""
    times = data.sample_times
    keys: dict[bytes, list[int]] = {}
    for s in range(data.n_samples):
        keys.setdefault(times[s].tobytes(), []).append(s)
    return [(np.array(ids), times[ids[0]]) for ids in keys.values()]


def rate_identifiability(model: KineticModel, active: np.ndarray, theta: np.ndarray,
                     jac: np.ndarray, sigma: float, max_se: float,
                     T_ref: float | None) -> Identifiability:
    """Return the identifiability of the active parameters (Jacobian columns ``jac``)."""
    P = model.n_directions
    idx = np.flatnonzero(active)
    names = [model.names()[j] for j in idx]
    th = theta[idx]
    if T_ref is not None:
        names += [f"eps_{n}" for n in names]
        th = np.concatenate([th, theta[P + idx]])
    return analyse(jac, names, th, sigma, max_se)


def mean_monomials(concentrations: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Return the mean over all measured points of each mass-action monomial ``∏ c^a``.

    Parameters
    ----------
    concentrations : numpy.ndarray
        ``(..., n_s)`` concentrations (negative values read as 0).
    orders : numpy.ndarray
        ``(P, n_s)`` reactant orders of each direction.

    Returns
    -------
    numpy.ndarray
        ``(P,)`` mean monomials.
    """
    c = np.maximum(np.asarray(concentrations, float), 0.0).reshape(-1, orders.shape[1])
    A = np.ascontiguousarray(orders, dtype=float)
    ones = np.ones((c.shape[0], A.shape[0]))  # k = 1: the rates are the monomials
    return np.mean(mass_action_rates_jacobian(c, ones, A, np.zeros_like(A))[0], axis=0)


def _fluxes(model: KineticModel, theta: np.ndarray, data: ReactionData
            ) -> tuple[np.ndarray, np.ndarray]:
    """Return each direction's mean monomial ``∏ c^a`` and mean flux ``k ∏ c^a`` ``(P,)``."""
    P = model.n_directions
    mono = mean_monomials(data.concentrations, model.reactants)
    return mono, np.exp(np.clip(theta[:P], -700.0, 700.0)) * mono


def _typical_flux(flux: np.ndarray) -> float:
    """Return the geometric mean of the fluxes ≥ :data:`REVIVE_SHARE` × the largest (0: none)."""
    if not flux.size or not flux.max() > 0:
        return 0.0
    big = flux[flux >= REVIVE_SHARE * flux.max()]
    return float(np.exp(np.mean(np.log(big))))


def _revive(model, theta, r, jac, ok, data, x_temp, opts, threshold):
    """Restart directions stuck near 0 at the typical flux (see :func:`fit_trajectories`)."""
    P = model.n_directions
    evals = 0
    rms = np.max(rms_per_species(r, data))
    mono, flux = _fluxes(model, theta, data)
    typical = _typical_flux(flux)
    if rms <= threshold or not typical > 0:
        return theta, r, jac, ok, evals
    stuck = [int(j) for j in np.argsort(flux)
             if flux[j] < REVIVE_SHARE * typical and mono[j] > 0]
    groups = ([stuck] if len(stuck) > 1 else []) + [[j] for j in stuck[:REVIVE_TRIES]]
    for group in groups:
        trial = theta.copy()
        trial[group] = np.clip(np.log(typical / mono[group]), *_LOG_K_BOUNDS)
        if x_temp is not None:  # activation energies start at the others' median
            trial[P + np.array(group)] = float(np.median(np.delete(theta[P:2 * P], group)))
        # a restart still far above the fit it should improve is given up early
        th, rr, n_ev, jj, good = _trial_fit(model, np.ones(P, bool), trial, data, x_temp,
                                            opts, hopeless=HOPELESS_FACTOR * REVIVE_GAIN * rms)
        evals += n_ev
        if opts.get("timed_out"):
            break
        new_rms = np.max(rms_per_species(rr, data))
        if good and new_rms <= REVIVE_GAIN * rms:
            theta, r, jac, ok, rms = th, rr, jj, good, new_rms
            if rms <= threshold or len(group) > 1:
                break
    return theta, r, jac, ok, evals


def _drop_negligible(model, theta, r, jac, ok, active, data, x_temp, opts, sigma):
    """Remove the active directions whose mean flux is negligible, without a refit.

    A direction whose mean flux ``k ∏ c̄^a`` is below :data:`NEGLIGIBLE_FLUX` of the typical
    flux (:func:`_typical_flux`) changes the trajectories by less than the solver's
    tolerance; it is set to 0 and the residuals and Jacobian are evaluated once at the
    same rates, so that neither the reported mechanism nor the identifiability analysis
    carries a rate of 1e-14 the data cannot see. The removal is undone when the residual
    of any species grows past ``max(1.05 × before, sigma)`` (it cannot, short of a solver
    failure).
    """
    _, flux = _fluxes(model, theta, data)
    typical = _typical_flux(flux[active])
    drop = active & (flux < NEGLIGIBLE_FLUX * typical)
    if not drop.any() or drop.sum() == active.sum():
        return theta, r, jac, ok, active
    trial = active & ~drop
    P = model.n_directions
    problem, cols = _active_problem(model, trial, data, x_temp, opts)
    try:
        rr, jj, good = problem.run(theta[cols])
    except FitTimeout:
        return theta, r, jac, ok, active
    before = float(np.max(rms_per_species(r, data)))
    if not (good and np.max(rms_per_species(rr, data)) <= max(1.05 * before, sigma)):
        return theta, r, jac, ok, active
    th = theta.copy()
    th[:P][~trial] = _LOG_K_BOUNDS[0]
    return th, rr, jj, good, trial


def _log_rate_errors(jac: np.ndarray, sigma: float, vectors: np.ndarray) -> np.ndarray:
    """Return the standard errors ``σ‖diag(1/s) Wᵀ c‖`` of the combinations ``c · θ``.

    ``vectors`` is ``(k, p)`` over the Jacobian's columns; a combination along a singular
    direction with ``s ≈ 0`` gets an error near infinity.
    """
    J = np.nan_to_num(np.asarray(jac, float))
    _, s, Wt = np.linalg.svd(J, full_matrices=False)
    inv_s = 1.0 / np.maximum(s, 1e-300)
    return sigma * np.linalg.norm((vectors @ Wt.T) * inv_s[None, :], axis=1)


def _prune(model, theta, r, jac, ok, data, x_temp, opts, sigma, max_se, max_rows=None):
    """Remove directions negligible against the data (see :func:`fit_trajectories`).

    Three passes, each removal re-fitted (at most :data:`PRUNE_NFEV` iterations) and kept
    when every species' RMS residual stays ≤ ``max(1.05 × best, sigma)``. The refit stops
    at the first evaluation within that bound, and gives up when after
    :data:`HOPELESS_EVALUATIONS` evaluations it is still :data:`HOPELESS_FACTOR` times
    above it; what remains is fitted to convergence at the end (``opts["max_nfev"]``):

    1. the loose directions (standard error of ``ln k`` above 1) whose flux is negligible
       (:data:`REVIVE_SHARE` of the typical flux), all together;
    2. whole loose rows, the largest ``Σ|ν|`` first and, within a size, the smallest flux
       first, so that of rows the data cannot tell apart (``R ⇌ P`` and ``2R ⇌ 2P`` as a
       fast equilibrium) the simplest is kept; while more than ``max_rows`` rows remain,
       the determined rows are tried too, in the same order;
    3. single loose directions, smallest flux first, except those of a row whose
       ``kf/kr`` the data determine (a fast equilibrium needs both).

    Standard errors use the larger of ``sigma`` and the noise the unpruned fit implies.
    """
    P = model.n_directions
    active = np.ones(P, bool)
    count = [0]
    m = r.size
    noise_fit = float(np.sqrt(np.mean(r * r) * m / max(m - jac.shape[1], 1))) if m else 0.0
    sigma_se = max(sigma, noise_fit)
    state = (theta, r, jac, ok)
    best = [float(np.max(rms_per_species(r, data)))]
    trial_nfev = min(int(opts["max_nfev"]), PRUNE_NFEV)
    rows_of = np.array([i for i, _ in model.directions])
    size = np.abs(model.V).sum(axis=1)

    def errors(vectors_full: np.ndarray) -> np.ndarray:
        """Return the standard errors of combinations over the active ``ln k``."""
        idx = np.flatnonzero(active)
        cols = state[2].shape[1]
        vec = np.zeros((len(vectors_full), cols))
        vec[:, :idx.size] = vectors_full[:, idx]
        return _log_rate_errors(state[2], sigma_se, vec)

    def loose() -> np.ndarray:
        se = errors(np.eye(P))
        return active & ~(se <= 1.0)

    def attempt(drop) -> bool:
        nonlocal active, state
        trial = active.copy()
        trial[list(drop)] = False
        if not trial.any():
            return False
        bound = max(1.05 * best[0], sigma)
        # the refit stops once every species is within the bound: the removal is decided
        th, rr, n_ev, jj, good = _trial_fit(model, trial, state[0], data, x_temp, opts,
                                            max_nfev=trial_nfev, target=bound)
        count[0] += n_ev
        new = float(np.max(rms_per_species(rr, data)))
        if opts.get("timed_out") or not (good and new <= bound):
            return False
        active, state = trial, (th, rr, jj, good)
        best[0] = min(best[0], new)
        return True

    free = loose()
    if not free.any():
        return (*state, active, 0)
    _, flux = _fluxes(model, state[0], data)
    typical = _typical_flux(flux)
    negligible = np.flatnonzero(free & (flux < REVIVE_SHARE * typical))
    if negligible.size:
        attempt(negligible)
    tried: set[int] = set()
    while not opts.get("timed_out"):  # pass 2: whole rows
        _, flux = _fluxes(model, state[0], data)
        i = _next_row_to_drop(rows_of, active, loose(), flux, size, tried, max_rows)
        if i is None:
            break
        tried.add(i)
        attempt(np.flatnonzero((rows_of == i) & active))
    free = loose()
    _, flux = _fluxes(model, state[0], data)
    for j in sorted(np.flatnonzero(free), key=lambda j: flux[j]):
        if opts.get("timed_out"):
            break
        pair = np.flatnonzero((rows_of == rows_of[j]) & active)
        if pair.size == 2:
            ratio = np.zeros((1, P))
            ratio[0, pair[0]], ratio[0, pair[1]] = 1.0, -1.0
            if errors(ratio)[0] <= 1.0:
                continue
        elif pair.size == 1:
            continue  # the row itself was kept in pass 2
        attempt([j])
    if not active.all():
        state, n_ev = _converge_kept(model, active, state, data, x_temp, opts)
        count[0] += n_ev
    return (*state, active, count[0])


def _next_row_to_drop(rows_of, active, free, flux, size, tried, max_rows):
    """Return the next row pass 2 of :func:`_prune` tries to remove, or ``None``.

    Untried rows whose active directions are all loose, the largest ``Σ|ν|`` first and,
    within a size, the smallest flux first; while more than ``max_rows`` rows remain the
    determined rows are candidates too. ``None`` once fewer than two rows are left.
    """
    left = [i for i in np.unique(rows_of[active]) if i not in tried]
    rows = [i for i in left if np.all(free[(rows_of == i) & active])]
    n_rows = len(np.unique(rows_of[active]))
    if not rows and max_rows is not None and n_rows > max_rows:
        rows = left  # more rows than the mechanism has: try the determined ones too
    if n_rows < 2 or not rows:
        return None
    row_flux = {i: float(flux[(rows_of == i) & active].sum()) for i in rows}
    return min(rows, key=lambda i: (-size[i], row_flux[i], i))


def _converge_kept(model, active, state, data, x_temp, opts):
    """Fit what pruning kept to convergence; return ``(state, evaluations)``.

    Pruning refits stop at the first evaluation within their bound, so what follows
    (identifiability, a residual screen) would otherwise see an unconverged fit. The
    converged fit replaces ``state`` only when it is no worse.
    """
    if opts.get("timed_out"):
        return state, 0
    th, rr, n_ev, jj, good = _fit_active(model, active, state[0], data, x_temp, opts)
    if good and not opts.get("timed_out") and float(rr @ rr) <= float(state[1] @ state[1]):
        state = (th, rr, jj, good)
    return state, n_ev
