"""Reaction discovery as a scikit-learn-style estimator.

:class:`ReactionDiscovery` learns a mechanism (stoichiometry and rate constants) from
concentrations and their time derivatives with Algorithm 1 of the paper (partial-parameter
freezing, PPF), made fast and reliable:

* ``population`` candidates train together as one batched computation (see
  :mod:`rdlab.discover.crnn`); the first one whose frozen mechanism fits the validation data
  to ``tolerance`` wins;
* once all rows of a candidate are frozen, its rates are the exact least-squares solution
  (:mod:`rdlab.discover.rate_fit`) instead of a second long Adam run;
* a candidate whose frozen mechanism does not fit is started again, so a bad draw costs a
  restart instead of a silently wrong answer; when time runs out, the best candidate is
  returned with ``converged_ = False``;
* rows that keep rounding to zero or to an already frozen reaction are dropped, which is how
  too many proposed reactions are pruned (Remark 3.2);
* with ``warm_start`` (default) a sparse regression on mass-action monomials
  (:mod:`rdlab.discover.library`) proposes a structure first. It is accepted only if its
  fitted rates pass the same validation test as any frozen candidate; otherwise it seeds the
  first CRNN candidate and Algorithm 1 runs as usual.

``freezing=False`` is the plain baseline of the paper's tables (no PPF, rates as learned).
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from rdlab.chemistry.kinetics import GAS_CONSTANT
from rdlab.discover import freezing
from rdlab.discover.alternatives import (
    EQUIVALENT_CHI2,
    Alternative,
    choose,
    differing_rows,
    residual_sum_of_squares,
    rival_fits,
)
from rdlab.discover.balances import (
    DEEP_FLOOR,
    SOLVER_RESIDUAL,
    BalanceSearch,
    fit_balance_rows,
)
from rdlab.discover.completion import completed_mechanism, orphan_completion
from rdlab.discover.crnn import PopulationCRNN
from rdlab.discover.data import CONCENTRATION_FLOOR, ReactionData, split
from rdlab.discover.derivatives import estimate as estimate_derivatives
from rdlab.discover.elements import balance_noise, element_changes, known_balances
from rdlab.discover.initial_states import fit_with_initial_states
from rdlab.discover.library import propose_structure
from rdlab.discover.mechanism import ArrheniusRates, Mechanism
from rdlab.discover.rate_fit import (
    fit_arrhenius,
    fit_rates,
    point_weights,
    refine_integers,
    relative_errors,
)
from rdlab.discover.shooting import propose_by_shooting
from rdlab.discover.simpler_forms import redundant_rows, simpler_forms, swapped
from rdlab.discover.subspace import (
    MAX_RANK,
    equilibrated,
    equilibrium_mechanism,
    exhausted_species,
    fit_all_rows,
    screen_subspace,
    stoichiometric_subspace,
    subsample,
    without_minor_directions,
)
from rdlab.discover.trajectory_fit import (
    NOISE_FLOOR,
    RESIDUAL_FLOOR,
    FitTimeout,
    TrajectoryFit,
    carry_notes,
    fit_trajectories,
)
from rdlab.discover.weak_form import propose_from_integrals
from rdlab.errors import NetworkError, ParameterError

__all__ = ["MAX_ESTIMATED_NOISE", "NOISE_AGREEMENT", "SHOOTING_SHARE", "TARGETS",
           "ReactionDiscovery", "best_candidate"]

#: What a fit to data at equilibrium determines (report, warnings and exported notes).
EQUILIBRIUM_NOTE = (
    "every sample is at equilibrium from its second measured time on: the data determine "
    "the stoichiometric subspace and one equilibrium constant kf/kr per independent "
    "reaction, not which reactions span the subspace nor how fast they run. The reactions "
    "shown are the simplest spanning set, with rates fast enough to equilibrate within the "
    "first interval; only their kf/kr ratios are measured")
#: Largest concentration noise an unexplained residual is taken for (trajectory target with
#: unknown noise): a best fit whose relative residual is larger is a wrong mechanism.
MAX_ESTIMATED_NOISE = 0.02
#: Share of the time left after the proposals that the shooting CRNN may use before the
#: derivative-trained CRNN gets the rest (trajectory target).
SHOOTING_SHARE = 0.6
#: Share of the time budget the weak-form proposal's trajectory fit may use (trajectory
#: target): it is refitted on :data:`SUBSPACE_SAMPLES` samples, then verified on all.
WEAK_SHARE = 0.2
#: Samples on which the subspace candidates are screened and refitted before the best is
#: verified on all the data (trajectory target; :mod:`rdlab.discover.subspace`).
SUBSPACE_SAMPLES = 10
#: Most of the best-ranked subspace candidates refitted and verified on all the data.
SUBSPACE_TRIES = 3
#: Largest ratio of an accepted fit's noise estimate (initial states refitted) to the element
#: balances' one, when the noise is estimated. On hydrogen oxidation with 0.1 % noise the
#: ten exact fits give 0.98–1.02 (each estimate is good to 1–2 %); a fit with H2 + O ⇌ H2O
#: missing and two neighbouring rates 2.5× off gave 1.155 (seed 2).
NOISE_AGREEMENT = 1.1
#: Rounds of :meth:`ReactionDiscovery._completed` (each adds the rows one residual screen
#: picks, then refits).
COMPLETION_ROUNDS = 2
#: Least-squares iterations of the refit of a completed mechanism on every sample. The rates
#: that had taken over the missing row's flux must move back: on hydrogen oxidation seed 2
#: (0.1 % noise) 30 iterations left them 76 % off, 200 converged to within 1.5 %.
COMPLETION_NFEV = 200
#: Least-squares iterations of the final refit of the chosen mechanism on every sample
#: (trajectory target). Candidates are verified with 3, enough to judge the fit but not to
#: converge along weakly determined directions, where an unconverged Jacobian reads a
#: fast pair's ``kf`` and ``kr`` as measured (Michaelis-Menten, 0.1 % noise: kf called
#: known to 3 % while 2.2× off).
POLISH_NFEV = 20
#: Evaluation times (of the chosen fit's) that an equally-good alternative may take.
ALTERNATIVE_EVALUATIONS = 30
#: Evaluation times (of the chosen fit's) that the final fit with free initial states may
#: take (its evaluations integrate n_s more sensitivities; 13 of them on hydrogen oxidation).
INITIAL_STATE_EVALUATIONS = 40
#: What :class:`ReactionDiscovery` can make a mechanism reproduce (its ``target``).
TARGETS = ("auto", "trajectories", "derivatives")


def best_candidate(candidates: list) -> object:
    """Return the candidate with the smallest worst-species error, physical ones first on ties.

    Two candidates whose worst-species errors agree to 6 significant digits count as equally
    good (e.g. ``A + B -> -2A + 4B`` and ``A + B -> 2B`` share their derivatives); of those a
    physical mechanism (:meth:`~rdlab.discover.mechanism.Mechanism.is_physical`) wins, then
    the smaller overall error.

    Parameters
    ----------
    candidates : list
        Objects with ``mechanism``, ``species_errors`` (array) and ``error`` (float).

    Returns
    -------
    object
        The chosen candidate.
    """
    return min(candidates, key=lambda c: (float(f"{np.max(c.species_errors):.6g}"),
                                          not c.mechanism.is_physical(), c.error))


@dataclass
class _Candidate:
    """A finished candidate: integer structure, fitted rates and its validation errors."""

    mechanism: Mechanism
    error: float
    species_errors: np.ndarray
    epoch: int
    seconds: float


@dataclass
class _FreezeState:
    """Partial-parameter freezing of a population: frozen rows and plateau bookkeeping."""

    frozen: np.ndarray  # (P, R) bool: rows frozen
    V: torch.Tensor  # (P, R, S): the frozen rows' integer values
    orders: torch.Tensor | None  # (P, R, S): their reactant orders (catalytic form only)
    mask: torch.Tensor  # (P, R) bool: ``frozen`` as a tensor
    prev_best: np.ndarray  # (P,): best loss before the last window
    since_reset: np.ndarray  # (P,): epochs since the candidate last changed
    stalls: np.ndarray  # (P,): plateaus in a row without a new frozen row

    @classmethod
    def start(cls, model: PopulationCRNN) -> _FreezeState:
        """Return the state of a population with nothing frozen yet."""
        P, R, S = model.population, model.n_reactions, model.n_species
        return cls(
            frozen=np.zeros((P, R), bool),
            V=torch.zeros(P, R, S, dtype=model.V.dtype),
            orders=torch.zeros(P, R, S, dtype=model.V.dtype) if model.catalytic else None,
            mask=torch.zeros(P, R, dtype=torch.bool),
            prev_best=np.full(P, np.inf),
            since_reset=np.zeros(P, int),
            stalls=np.zeros(P, int),
        )

    def hold(self, model: PopulationCRNN) -> None:
        """Put the frozen rows back after an optimiser step."""
        if self.mask.any():
            with torch.no_grad():
                model.V[self.mask] = self.V[self.mask]
                if self.orders is not None:
                    model.orders[self.mask] = self.orders[self.mask]

    def freeze(self, model: PopulationCRNN, p: int, epsilon: float,
               max_stalls: int) -> tuple[list[int], list[int]]:
        """Freeze candidate ``p``'s ready rows; drop its free rows after too many stalls.

        Returns the rows frozen now and the rows still free.
        """
        V = model.V[p].detach().numpy()
        orders_ = None if not model.catalytic else torch.relu(model.orders[p]).detach().numpy()
        status = freezing.row_status(V, orders_, self.frozen[p], epsilon)
        new = [j for j, s in enumerate(status) if s == freezing.FREEZE and not self.frozen[p, j]]
        for j in new:
            self.frozen[p, j] = True
            self.V[p, j] = torch.round(model.V[p, j].detach())
            if self.orders is not None:
                self.orders[p, j] = torch.round(torch.relu(model.orders[p, j].detach()))
        self.stalls[p] = 0 if new else self.stalls[p] + 1
        free = [j for j in range(self.frozen.shape[1]) if not self.frozen[p, j]]
        if free and self.stalls[p] >= max_stalls:
            for j in free:  # keeps coming back as nothing new: drop it
                self.frozen[p, j] = True
                self.V[p, j] = 0.0
                if self.orders is not None:
                    self.orders[p, j] = 0.0
            free = []
        self.mask[p] = torch.as_tensor(self.frozen[p])
        return new, free


def _reset_adam(model: PopulationCRNN, opt: torch.optim.Adam, p: int,
                rows: list[int] | None = None) -> None:
    """Zero Adam's moments of candidate ``p`` (only of ``rows`` of the row parameters)."""
    for param in model.parameters():
        st = opt.state.get(param)
        if not st:
            continue
        for key in ("exp_avg", "exp_avg_sq"):
            if rows is None:
                st[key][p] = 0.0
            elif param.dim() == 3:
                st[key][p, rows] = 0.0


class ReactionDiscovery:
    """Learn a mass-action mechanism from (concentration, derivative) pairs.

    Parameters
    ----------
    n_reactions : int, optional
        Number of proposed reactions ``n_r`` (reversible pairs in V form); default 2.
    freezing : bool, optional
        Use partial-parameter freezing (Algorithm 1, default); ``False`` is the paper's
        baseline.
    catalytic : bool, optional
        Learn reactant orders separately from stoichiometry (irreversible reactions), so
        catalytic steps such as X + Y → 2Y can be found; default ``False``.
    epsilon : float, optional
        Integer threshold of eq. (3.4) (paper and default: 0.05).
    tolerance : float, optional
        A frozen mechanism is accepted when, for every species, the RMS of the point-wise
        relative error of its derivatives on the validation data is at most this
        (:func:`~rdlab.discover.rate_fit.relative_errors`; default 1e-4). Noise-free data
        fit to ~1e-8; with multiplicative derivative noise pass ``noise_level`` instead.
    noise_level : float, optional
        Multiplicative derivative noise level η of the data (default 0): the tolerance
        becomes ``max(tolerance, 3η)``.
    learning_rate : float, optional
        Adam step size (paper: 1e-3; default 1e-2).
    regularisation : float, optional
        λ of eq. (3.2) (paper and default: 1e-8).
    population : int, optional
        Candidates trained at once (default 8).
    check_every : int, optional
        Epochs between plateau checks (default 500).
    plateau : float, optional
        A candidate is on a plateau when its best loss of the last ``check_every`` epochs
        improved on the previous window's by less than this (relative; default 1e-2).
    max_stalls : int, optional
        Plateaus in a row without a new frozen row before the free rows are dropped
        (default 3).
    max_epochs : int, optional
        Stop after this many epochs (default 1 000 000) or ``time_budget_s``, whichever
        comes first.
    time_budget_s : float or None, optional
        Stop after this many seconds of the whole fit, derivative estimates and proposals
        included (default 120); ``None``: no time limit. Settings
        files' ``time_budget``, its old name, is read as this
        (:class:`~rdlab.discover.workflow.DiscoverSettings`).
    validation_fraction : float, optional
        Share of the points held out (paper and default: 1/5).
    scale_species : bool, optional
        Divide each species' derivative error by the spread (std) of its derivatives, so
        species moved only by slow reactions weigh as much as those moved by fast ones
        (default; ``False``: the paper's plain MSE).
    search_points : int or None, optional
        Points (a random subset of the training points) on which the structure is searched
        (default 256); ``None`` uses all. The rates and the acceptance test always use all
        points.
    refine : bool, optional
        After freezing, try each coefficient one unit up and down with exactly re-fitted
        rates and keep what lowers the residual
        (:func:`~rdlab.discover.rate_fit.refine_integers`); repairs rows PPF froze one unit
        off. Default ``True``.
    probe_sweeps : int, optional
        Integer-search sweeps of the probe made at every plateau check (one candidate per
        check, round-robin: all its rows rounded, repaired, accepted if it fits); default 3.
    warm_start : bool, optional
        Propose a structure by sparse regression on monomials before training
        (:func:`~rdlab.discover.library.propose_structure`; not used with temperatures or
        without freezing); default ``True``. ``False`` runs the CRNN from the paper's random
        initialisation.
    library_order : int, optional
        Highest reactant order in the warm start's monomial library (default 4).
    target : {"auto", "trajectories", "derivatives"}, optional
        What an accepted mechanism must reproduce. ``"derivatives"``: the (given or
        estimated) time derivatives, as in the paper. ``"trajectories"``: the measured
        concentrations — derivative estimates (``derivative_method``) and the weak-form
        proposal (:func:`~rdlab.discover.weak_form.propose_from_integrals`) only start the
        structure search; every candidate structure is refitted by integrating it
        (:func:`~rdlab.discover.trajectory_fit.fit_trajectories`) and the first that
        reproduces every trajectory to the noise level wins. ``"auto"`` (default):
        trajectories for :class:`~rdlab.discover.data.ReactionData` without derivatives,
        derivatives otherwise.
    concentration_noise : float or None, optional
        Multiplicative noise level of the concentrations (trajectory target). ``None``
        (default): a candidate is first judged as on noise-free data
        (:data:`~rdlab.discover.trajectory_fit.NOISE_FLOOR`); when none passes, the noise
        is estimated from the best candidate's residual and it is accepted when that
        estimate is at most :data:`MAX_ESTIMATED_NOISE` (2 %) and no species is fitted
        worse than 3× it (``report()["noise"]`` says which). On noisy data (given or
        estimated) the accepted fit's rates are finally refitted together with every
        sample's initial state (:func:`~rdlab.discover.initial_states.fit_with_initial_states`:
        the measured first states are as noisy as the rest), and the estimate updated.
    derivative_method : str, optional
        How derivatives are estimated for the trajectory target's starting point
        (:func:`~rdlab.discover.derivatives.estimate`; default ``"spline"``).
    shooting : bool, optional
        Trajectory target without temperatures: when the weak-form and sparse-regression
        proposals are not accepted, train a CRNN population through a stiff integrator on
        the measured concentrations by multiple shooting
        (:func:`~rdlab.discover.shooting.propose_by_shooting`, seeded with those proposals)
        for up to :data:`SHOOTING_SHARE` of the time left; its rounded structures are judged
        by the trajectory fit. Default ``False`` (opt-in): from a random start it recovers
        A + B → C, C → A (1600 epochs, one restart, 18 s; the trajectory fit prunes what
        its rounded rows have too many), a case too small to make it a default.
    subspace : bool, optional
        Trajectory target (V form), default ``True``: when the weak-form proposal is not
        accepted, search the data's stoichiometric subspace (the span of the measured
        changes ``c(t) − c(0)``, exact however fast a reaction is;
        :mod:`rdlab.discover.subspace`). First every small integer row in it is fitted at
        once through the solver on :data:`SUBSPACE_SAMPLES` samples and pruned
        (:func:`~rdlab.discover.subspace.fit_all_rows`); if at most ``n_reactions`` rows
        survive they are verified on every sample. Otherwise the sets of ``n_reactions``
        rows that span the subspace are ranked by a short fit and the best verified
        (:func:`~rdlab.discover.subspace.screen_subspace`). ``False`` skips both.
    seed : int, optional
        Seeds the split and every random draw (default 1).
    progress : bool, optional
        Show a progress bar (default ``False``).
    """

    def __init__(self, n_reactions: int = 2, *, freezing: bool = True, catalytic: bool = False,
                 epsilon: float = 0.05, tolerance: float = 1e-4, noise_level: float = 0.0,
                 learning_rate: float = 1e-2, regularisation: float = 1e-8,
                 population: int = 8, check_every: int = 500, plateau: float = 1e-2,
                 max_stalls: int = 3, max_epochs: int = 1_000_000,
                 time_budget_s: float | None = 120.0,
                 validation_fraction: float = 0.2, scale_species: bool = True,
                 search_points: int | None = 256, refine: bool = True, probe_sweeps: int = 3,
                 warm_start: bool = True, library_order: int = 4,
                 target: str = "auto", concentration_noise: float | None = None,
                 derivative_method: str = "spline", shooting: bool = False,
                 subspace: bool = True, seed: int = 1, progress: bool = False):
        self.n_reactions = n_reactions
        self.freezing = freezing
        self.catalytic = catalytic
        self.epsilon = epsilon
        self.tolerance = tolerance
        self.noise_level = noise_level
        self.learning_rate = learning_rate
        self.regularisation = regularisation
        self.population = population
        self.check_every = check_every
        self.plateau = plateau
        self.max_stalls = max_stalls
        self.max_epochs = max_epochs
        self.time_budget_s = time_budget_s
        self.validation_fraction = validation_fraction
        self.scale_species = scale_species
        self.search_points = search_points
        self.refine = refine
        self.probe_sweeps = probe_sweeps
        self.warm_start = warm_start
        self.library_order = library_order
        self.target = target
        self.concentration_noise = concentration_noise
        self.derivative_method = derivative_method
        self.shooting = shooting
        self.subspace = subspace
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ sklearn API
    @classmethod
    def _param_names(cls) -> list[str]:
        """Return the constructor's parameters, read from its signature.

        scikit-learn's rule: every parameter is stored unchanged under its own name, so the
        signature is the list.
        """
        return [name for name, p in inspect.signature(cls.__init__).parameters.items()
                if name != "self" and p.kind is not p.VAR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict:
        """Return the constructor parameters and their values.

        Parameters
        ----------
        deep : bool, optional
            Accepted for scikit-learn compatibility; no parameter is itself an estimator.

        Returns
        -------
        dict
            ``{name: value}`` of every constructor parameter, in signature order.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> ReactionDiscovery:
        """Set constructor parameters by name (scikit-learn's convention).

        Parameters
        ----------
        **params
            New values of constructor parameters.

        Returns
        -------
        ReactionDiscovery
            This estimator.

        Raises
        ------
        ParameterError
            A name that is not a constructor parameter (the known ones are listed).
        """
        for k, v in params.items():
            if k not in self._param_names():
                raise ParameterError(f"unknown parameter {k!r} of ReactionDiscovery; known "
                                     f"parameters are {self._param_names()}")
            setattr(self, k, v)
        return self

    def check_params(self) -> None:
        """Refuse parameters no fit can use, naming the parameter and its value.

        Raises
        ------
        ParameterError
            A count that is not a positive integer, a seed outside 0 … 2³² − 1, a
            non-positive or non-finite ``epsilon``, ``tolerance``, ``learning_rate``,
            ``time_budget_s`` or ``plateau``, ``epsilon`` ≥ 0.5, or a negative
            ``regularisation`` or ``noise_level``.
        """
        for name in ("n_reactions", "population", "check_every", "max_stalls", "max_epochs",
                     "library_order"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ParameterError(f"{name} must be a positive integer, got {v!r}")
        if (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))
                or not 0 <= self.seed < 2**32):
            raise ParameterError(f"seed must be an integer in 0 … {2**32 - 1}, got "
                                 f"{self.seed!r}")
        for name in ("epsilon", "tolerance", "learning_rate", "time_budget_s", "plateau"):
            v = getattr(self, name)
            if name == "time_budget_s" and v is None:
                continue
            if (isinstance(v, bool) or not isinstance(v, (int, float, np.number))
                    or not np.isfinite(v) or v <= 0):
                raise ParameterError(f"{name} must be a finite number > 0, got {v!r}")
        if not 0 < self.epsilon < 0.5:
            raise ParameterError(f"epsilon must be in (0, 0.5), got {self.epsilon!r}")
        if self.regularisation < 0 or self.noise_level < 0:
            raise ParameterError("regularisation and noise_level must be ≥ 0")
        if self.target not in TARGETS:
            raise ParameterError(f"target must be one of {TARGETS}, got {self.target!r}")
        c = self.concentration_noise
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float, np.number))
                              or not np.isfinite(c) or c < 0):
            raise ParameterError(f"concentration_noise must be None or a number ≥ 0, got {c!r}")

    @staticmethod
    def _arrays(X, y, temperature, species):
        if isinstance(X, ReactionData):
            if X.derivatives is None:
                raise ParameterError("these data have no derivatives; estimate them first "
                                     "(rdlab.discover.derivatives.estimate)")
            u, du, T = X.points()
            return u, du, T, X.species
        u = np.asarray(X, dtype=float)
        if u.ndim != 2:
            raise ParameterError(f"X must be concentrations (n_points, n_species), got shape "
                                 f"{u.shape}")
        if y is None:
            raise ParameterError("y (derivatives, same shape as X) is required")
        du = np.asarray(y, dtype=float)
        if du.shape != u.shape:
            raise ParameterError(f"y has shape {du.shape}, X has {u.shape}")
        for name, a in (("X", u), ("y", du)):
            if not np.all(np.isfinite(a)):
                i = np.argwhere(~np.isfinite(a))[0]
                raise ParameterError(f"{name}[{i[0]}, {i[1]}] is {a[tuple(i)]}")
        if np.any(u < -1e-8):
            i = np.argwhere(u < -1e-8)[0]
            raise ParameterError(f"negative concentration X[{i[0]}, {i[1]}] = {u[tuple(i)]}")
        T = None if temperature is None else np.asarray(temperature, dtype=float).reshape(-1)
        if T is not None and T.shape != (u.shape[0],):
            raise ParameterError(f"temperature needs one value per point ({u.shape[0]}), got "
                                 f"{T.shape}")
        names = tuple(species) if species is not None else tuple(
            f"X{i}" for i in range(u.shape[1]))
        if len(names) != u.shape[1]:
            raise ParameterError(f"{len(names)} species names for {u.shape[1]} columns")
        return np.maximum(u, CONCENTRATION_FLOOR), du, T, names

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, temperature=None, species=None) -> ReactionDiscovery:
        """Learn the mechanism.

        Parameters
        ----------
        X : ReactionData or array_like
            :class:`~rdlab.discover.data.ReactionData` (with derivatives), or concentrations
            ``(N, n_s)``.
        y : array_like, optional
            Derivatives ``(N, n_s)`` (per unit time) when ``X`` is an array.
        temperature : array_like, optional
            ``(N,)`` temperatures in K when ``X`` is an array; given, Arrhenius parameters
            are learned.
        species : sequence of str, optional
            Names of the columns (default ``X0``, ``X1``, ...).

        Returns
        -------
        ReactionDiscovery
            This estimator, fitted: ``mechanism_``, ``converged_``, ``validation_error_``,
            ``species_errors_`` and the rest of :meth:`report`.

        Raises
        ------
        ParameterError
            Unusable parameters (:meth:`check_params`), data without derivatives, badly
            shaped, non-finite or negative data (the first bad entry named).
        """
        self.check_params()
        self._t0 = time.perf_counter()
        self.target_ = self._resolve_target(X)
        if self.target_ == "trajectories":
            X = self._start_trajectories(X)
        u, du, T, names = self._arrays(X, y, temperature, species)
        train, val = split(u.shape[0], 1.0 - self.validation_fraction, self.seed)
        self.species_ = names
        self.n_features_in_ = len(names)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        t0 = self._t0  # the budget counts the derivative estimates and proposals too
        log_u = np.log(u)
        T_ref = float(np.mean(T)) if T is not None else None
        data = self._search_data(log_u, du, T, train, T_ref)
        self._fit_data = (log_u, du, T, train, val, T_ref)
        model = PopulationCRNN(self.population, self.n_reactions, len(names),
                               catalytic=self.catalytic, arrhenius=T is not None, generator=gen)
        opt = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        self.warm_start_ = None
        result = None
        self.equilibrium_only_ = False
        self.exhausted_species_ = (exhausted_species(self._traj_data)
                                   if self.target_ == "trajectories" else [])
        known = known_balances(self._traj_data) if self.target_ == "trajectories" else None
        self.element_balances_ = [] if known is None else list(known[0])
        self._elements = known
        self.element_noise_ = (None if known is None
                               else balance_noise(self._traj_data, known[1]))
        self.weak_proposal_ = None
        self.subspace_ = None
        if self.target_ == "trajectories":
            result = self._search_from_trajectories(t0)
        # the searches above stop at the time budget; a spent budget starts no new one
        # (on noisy GRI-3.0 the sparse-regression proposal of 16 species ran minutes past it)
        if (result is None and self.freezing and self.warm_start and T is None
                and self._time_left(t0)):
            result = self._try_warm_start(model, t0)
        self.shooting_ = None
        self.alternatives_ = []
        self.completion_ = None
        self.simplified_ = None
        if (result is None and self.target_ == "trajectories" and self.shooting and T is None
                and self._time_left(t0)):
            result = self._try_shooting(t0)
        if result is not None:
            self.n_epochs_, self.restarts_, self.history_ = 0, 0, []
        elif self.freezing:
            result = self._train_ppf(model, opt, data, t0)
        else:
            result = self._train_plain(model, opt, data, t0)
        self._keep_result(result, u[train], du[train], None if T is None else T[train])
        if self.target_ == "trajectories":
            self._keep_trajectory_result(result)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    # ------------------------------------------------------------------ trajectory target
    def _resolve_target(self, X) -> str:
        """Return ``"trajectories"`` or ``"derivatives"`` for ``X`` (``target="auto"``)."""
        is_data = isinstance(X, ReactionData)
        if self.target == "trajectories" and not is_data:
            raise ParameterError("target='trajectories' needs ReactionData (concentrations at "
                                 "times), not bare arrays")
        if self.target == "auto":
            return "trajectories" if is_data and X.derivatives is None else "derivatives"
        return self.target

    def _start_trajectories(self, X: ReactionData) -> ReactionData:
        """Keep the measured data; return them with derivative estimates for the search."""
        self._traj_data = X
        self._traj_fits: dict[tuple, TrajectoryFit | None] = {}
        if X.derivatives is not None:
            return X
        return estimate_derivatives(X, self.derivative_method)

    def _trajectory_fit(self, mech: Mechanism) -> TrajectoryFit | None:
        """Return the trajectory fit of ``mech``'s structure (cached; ``None``: unphysical).

        Unphysical: non-integer coefficients, negative products, or a row that changes an
        element total the data conserve.
        """
        V = np.round(mech.V)
        key = (V.tobytes(), None if mech.orders is None else np.round(mech.orders).tobytes())
        if key not in self._traj_fits:
            fit = None
            if mech.is_physical() and np.any(V != 0) and self._conserves_elements(V):
                fit = fit_trajectories(mech, self._traj_data, noise=self.concentration_noise,
                                       deadline=self._deadline(self._t0))
            self._traj_fits[key] = fit
        return self._traj_fits[key]

    def _conserves_elements(self, V: np.ndarray) -> bool:
        """Whether every row of ``V`` keeps the element totals that the data conserve.

        True when the species are no formulas or the data do not conserve their elements
        (:func:`~rdlab.discover.elements.known_balances`); a row that creates or destroys
        atoms is no reaction, however well it fits.
        """
        known = getattr(self, "_elements", None)
        return known is None or not np.any(element_changes(V, known[1]))

    def _search_from_trajectories(self, t0: float) -> _Candidate | None:
        """Try the concentration-only searches in turn; return the first that holds.

        Equilibrium-only data, then the weak-form proposal and the subspace search. Above
        :data:`~rdlab.discover.subspace.MAX_RANK` the balance search goes first: the
        weak-form proposal of simplified GRI-3.0 (16 species) was never accepted (0 of 10
        seeds) and its check took 25 s of the 5-minute budget that the search needs.
        """
        result = self._try_equilibrium(t0) if equilibrated(self._traj_data) else None
        weak_last = (self.subspace
                     and stoichiometric_subspace(self._traj_data).shape[0] > MAX_RANK)
        if result is None and not weak_last:
            result = self._try_weak_proposal(t0)
        if result is None and self.subspace:
            result = self._try_subspace(t0)
        if result is None and weak_last:
            result = self._try_weak_proposal(t0)
        return result

    def _try_weak_proposal(self, t0: float) -> _Candidate | None:
        """Trajectory-fit the weak-form proposal; return it when it reproduces the data."""
        T_ref = self._fit_data[5]
        prop = propose_from_integrals(self._traj_data, self.n_reactions,
                                      catalytic=self.catalytic)
        self.weak_proposal_ = {"proposed": 0 if prop is None else int(prop.V.shape[0])}
        if prop is None:
            return None
        n = prop.V.shape[0]
        kf = np.ones(n) if prop.kf is None else np.maximum(prop.kf, 0.0)
        kr = np.zeros(n) if prop.kr is None else np.maximum(prop.kr, 0.0)
        try:
            mech = Mechanism(self.species_, prop.V, kf, kr, prop.orders, None, T_ref)
        except (NetworkError, ParameterError):
            return None
        if not mech.is_physical() or not np.any(np.round(mech.V)):
            self.weak_proposal_["accepted"] = False
            return None
        end = self._deadline(t0)  # a bad guess must not eat the budget of the searches after it
        now = time.perf_counter()
        if math.isfinite(end):
            end = now + WEAK_SHARE * max(0.0, end - now)
        fit = self._verified_fit(mech, end)
        self.weak_proposal_["accepted"] = bool(fit is not None and not fit.timed_out and (
            fit.accepted or self._noise_limited(fit)))
        return self._score(fit.mechanism, 0, t0) if self.weak_proposal_["accepted"] else None

    def _try_subspace(self, t0: float) -> _Candidate | None:
        """Screen the integer mechanisms of the data's reaction subspace; verify the best.

        :func:`~rdlab.discover.subspace.screen_subspace` ranks the sets of integer rows that
        span the measured increments by a short trajectory fit on :data:`SUBSPACE_SAMPLES`
        samples; the best (up to :data:`SUBSPACE_TRIES`, each within 10× of the first's
        error) are refitted there with pruning and verified on every sample. A verified fit
        that reproduces the data is returned, and so is one that does so to an estimated
        noise level (unknown noise) when the runner-up of the screen is at least 3× worse.
        """
        end = self._deadline(t0)
        found = self._try_all_rows(end)
        if found is not None:
            return self._score(found.mechanism, 0, t0)
        if self.catalytic:  # the screen below is of the V form
            return None
        search = screen_subspace(self._traj_data, self.n_reactions, deadline=end,
                                 samples=SUBSPACE_SAMPLES)
        self.subspace_.update(search.summary())
        ranked = search.ranked
        separated = len(ranked) == 1 or (len(ranked) > 1
                                         and ranked[1].error >= 3.0 * ranked[0].error)
        for k, screened in enumerate(ranked[:SUBSPACE_TRIES]):
            if k and screened.error > 10.0 * ranked[0].error:
                break
            fit = self._verified_fit(screened.mechanism, end)
            if fit is None:
                break
            self.subspace_["verified"] = fit.summary()
            if fit.accepted or (k == 0 and separated and self._noise_limited(fit)):
                return self._score(fit.mechanism, 0, t0)
        return None

    def _try_equilibrium(self, t0: float) -> _Candidate | None:
        """Fit the equilibrium constants of data that show only equilibria.

        Such data fix the stoichiometric subspace and one equilibrium constant per
        independent direction, nothing else: any rows spanning the subspace, with any
        rates fast enough, reproduce them. The simplest spanning set
        (:func:`~rdlab.discover.subspace.equilibrium_mechanism`) is fitted and returned,
        and ``equilibrium_only_`` is set so that the report says so.
        """
        mech = equilibrium_mechanism(self._traj_data, self.n_reactions)
        if mech is None:
            return None
        fit = self._verify_on_all(mech, self._deadline(t0))
        if not (fit.accepted or self._noise_limited(fit)):
            return None
        self.equilibrium_only_ = True
        fit.mechanism.notes["identifiable"] = EQUILIBRIUM_NOTE
        return self._score(fit.mechanism, 0, t0)

    def _try_all_rows(self, end: float) -> TrajectoryFit | None:
        """Fit all subspace rows at once and prune; return the verified fit if it holds.

        :func:`~rdlab.discover.subspace.fit_all_rows` on :data:`SUBSPACE_SAMPLES`
        samples, or, for a subspace of rank above
        :data:`~rdlab.discover.subspace.MAX_RANK`, the rows proposed by the species
        balances and residual screens of :func:`~rdlab.discover.balances.fit_balance_rows`
        (their counts and times in ``subspace_["balances"]``, one entry per residual floor
        tried): first at the trajectory fit's floor, then, if that is not accepted, at
        :data:`~rdlab.discover.balances.DEEP_FLOOR`, where the late levels of quasi-steady
        species count. When at most ``n_reactions`` rows survive, they are verified on
        every sample. The fit's summary goes to ``subspace_["all_rows"]``.
        """
        basis = stoichiometric_subspace(self._traj_data)
        self.subspace_ = {}
        if basis.shape[0] <= MAX_RANK:
            fit = fit_all_rows(self._traj_data, deadline=end, samples=SUBSPACE_SAMPLES,
                               noise=self.concentration_noise, n_reactions=self.n_reactions,
                               catalytic=self.catalytic)
            return self._verify_survivors(fit, end)
        if self.catalytic:  # the balances propose V-form rows
            return None
        # too many rows to fit all: propose from the balances
        self.subspace_["balances"] = []
        for floor in (RESIDUAL_FLOOR, DEEP_FLOOR):
            if time.perf_counter() > end:
                break
            search = BalanceSearch()
            fit = fit_balance_rows(self._traj_data, basis, deadline=end,
                                   noise=self.concentration_noise,
                                   n_reactions=self.n_reactions, log=search, floor=floor)
            self.subspace_["balances"].append({"floor": floor, **search.summary()})
            verified = self._verify_survivors(fit, end)
            if verified is not None:
                return verified
        return None

    def _verify_survivors(self, fit: TrajectoryFit | None, end: float) -> TrajectoryFit | None:
        """Verify ``fit``'s surviving rows on every sample; return the fit if it holds."""
        self.subspace_["all_rows"] = None if fit is None else fit.summary()
        if fit is None:
            return None
        m = fit.mechanism
        kept = np.flatnonzero((np.asarray(m.kf) > 0) | (np.asarray(m.kr) > 0))
        self.subspace_["all_rows"]["kept"] = int(kept.size)
        # in catalytic form every direction is a row of its own
        allowed = self.n_reactions * (2 if m.orders is not None else 1)
        if kept.size > allowed and m.orders is None and time.perf_counter() < end:
            # too many rows to be the answer, but verified all the same: if nothing holds,
            # the fit with the lowest error is reported, and without this one that was a
            # CRNN candidate (noisy GRI-3.0 seeds 6 and 10: 1 of the 12 true rows, against
            # 10 in this fit of 15)
            self._verify_on_all(m.subset(kept), end)
        if not 0 < kept.size <= allowed:
            return None
        verified = without_minor_directions(self._verify_on_all(m.subset(kept), end),
                                            self._traj_data, self.concentration_noise, end)
        self.subspace_["verified"] = verified.summary()
        ok = verified.accepted or self._noise_limited(verified)
        return verified if ok else None

    def _verified_fit(self, mech: Mechanism, end: float) -> TrajectoryFit | None:
        """Refit ``mech`` on a subset (pruned), then on every sample from there (cached)."""
        sub = subsample(self._traj_data, SUBSPACE_SAMPLES)
        refined = fit_trajectories(mech, sub, noise=self.concentration_noise, max_nfev=40,
                                   deadline=end)
        if refined.timed_out:
            return None
        return self._verify_on_all(refined.mechanism, end)

    def _refit_on_all(self, mech: Mechanism, end: float, max_nfev: int) -> TrajectoryFit:
        """Refit ``mech`` (no pruning, its zero reverses kept out) on every sample."""
        m = mech.normalised()
        m.notes.clear()
        return fit_trajectories(m, self._traj_data, noise=self.concentration_noise,
                                prune=False, max_nfev=max_nfev,
                                reversible=np.asarray(m.kr) > 0, deadline=end)

    def _verify_on_all(self, mech: Mechanism, end: float) -> TrajectoryFit:
        """Refit ``mech`` on every sample with 3 iterations (cached by structure)."""
        fit = self._refit_on_all(mech, end, max_nfev=3)
        V = np.round(fit.mechanism.V)
        self._traj_fits[(V.tobytes(), None)] = fit
        return fit

    def _noise_limited(self, fit: TrajectoryFit) -> bool:
        """Say whether ``fit`` reproduces the data to its own noise estimate (unknown noise).

        The residual must also look like noise (:attr:`TrajectoryFit.noise_like`): a wrong
        mechanism can miss noise-free data by under 1 %, which no residual size tells from
        1 % noise, but its residuals vary smoothly in time.
        """
        sigma = max(fit.noise_estimate, NOISE_FLOOR)
        return bool(self.concentration_noise is None and fit.success and not fit.timed_out
                    and fit.noise_estimate <= MAX_ESTIMATED_NOISE and fit.error <= 3.0 * sigma
                    and fit.noise_like)

    def _try_shooting(self, t0: float) -> _Candidate | None:
        """Train the CRNN through the integrator; return its structure once a fit accepts it."""
        seeds = [f.mechanism for f in self._traj_fits.values() if f is not None]
        end = self._deadline(t0)
        now = time.perf_counter()
        if math.isfinite(end):
            end = now + SHOOTING_SHARE * max(0.0, end - now)

        def accept(mech: Mechanism) -> bool:
            fit = self._trajectory_fit(mech)
            return bool(fit is not None and fit.accepted)

        res = propose_by_shooting(self._traj_data, self.n_reactions, accept=accept,
                                  deadline=end, catalytic=self.catalytic, seeds=seeds,
                                  seed=self.seed, max_epochs=self.max_epochs)
        self.shooting_ = res.summary()
        if res.accepted is None:
            return None
        return self._score(self._trajectory_fit(res.accepted).mechanism, 0, t0)

    def _keep_trajectory_result(self, result: _Candidate) -> None:
        """Store the trajectory-fitted mechanism of ``result`` (or the best one) as the fit."""
        fit = self._trajectory_fit(result.mechanism)
        fits = [f for f in self._traj_fits.values() if f is not None]
        # the search's result when it holds (to its own noise estimate when the noise is not
        # known), else the best of what was fitted
        if fit is None or not (fit.accepted or self._noise_limited(fit)):
            accepted = [f for f in fits if f.accepted and not self._extra_reactions(f)]
            fit = accepted[0] if accepted else min(fits, key=lambda f: f.error, default=None)
        if fit is not None:
            fit = self._polished(fit)
        self.noise_ = self._prior_noise()
        if fit is None:
            self.trajectory_fit_ = None
            self.converged_ = False
            return
        fit = self._finished(fit)
        fit = self._completed(fit)
        fit = self._simplified(fit)
        self.trajectory_fit_ = fit
        self.mechanism_ = fit.mechanism.normalised()
        self.mechanism_.notes["trajectory_fit"] = fit.summary()
        if self.alternatives_:
            self.mechanism_.notes["equally_good"] = [a.to_dict() for a in self.alternatives_]
        self.validation_error_ = fit.error
        self.species_errors_ = fit.species_rms
        self.converged_ = (fit.accepted and not self._extra_reactions(fit)
                           and not (self.completion_ or {}).get("unresolved"))
        self.time_to_structure_ = fit.seconds if self.converged_ else None

    def _extra_reactions(self, fit: TrajectoryFit) -> int:
        """Return how many more reactions ``fit`` keeps than ``n_reactions`` (0 if none).

        A reversible pair counts as one; in catalytic form each direction is a reaction
        and twice ``n_reactions`` are allowed, as in the search.
        """
        m = fit.mechanism
        live = int(np.count_nonzero((np.asarray(m.kf) > 0) | (np.asarray(m.kr) > 0)))
        return max(0, live - self.n_reactions * (2 if m.orders is not None else 1))

    def _prior_noise(self) -> dict:
        """Return ``noise_`` before a fit is judged: the given level, else noise-free."""
        noise = self.concentration_noise
        return ({"value": noise, "source": "given"} if noise is not None
                else {"value": 0.0, "source": "noise-free"})

    def _finished(self, fit: TrajectoryFit) -> TrajectoryFit:
        """Judge ``fit``, choose among its rivals, refit its starts, check it against elements."""
        self._judge(fit)
        if fit.accepted and not self.equilibrium_only_:  # there no row is determined
            fit, self.alternatives_ = self._rivals(fit)
            self._judge(fit)
        fit = self._with_initial_states(fit)
        self._check_against_elements(fit)
        return fit

    def _completed(self, fit: TrajectoryFit) -> TrajectoryFit:
        """Add the rows a fit is missing, when the data show it and the completed fit holds.

        Two tests propose rows (:meth:`_completion_proposal`): a fit that the element
        balances contradict gets the picks of the residual screen of
        :func:`~rdlab.discover.completion.completed_mechanism` for the slots it left free;
        an accepted fit in which some species changes in the data but in no row gets that
        species' best maker (:func:`~rdlab.discover.completion.orphan_completion`, scored on
        every sample). The completed mechanism is fitted on every sample
        (:meth:`_completion_fit`). It replaces ``fit`` only
        when accepted, no longer contradicted, within ``n_reactions`` and, for a maker,
        with a lower noise estimate; at most :data:`COMPLETION_ROUNDS` rounds, none past
        the budget. A maker's completion with more rows than allowed first drops the row
        that other rows add up to and the data miss least (:meth:`_without_redundant`;
        ``completion_["dropped"]``). What was tried goes to ``completion_``; a maker that
        could not be fitted in the budget leaves the fit unconverged
        (``completion_["unresolved"]``).
        """
        self.completion_ = None
        for _ in range(COMPLETION_ROUNDS):
            if not self._time_left(self._t0):
                break
            start = time.perf_counter()
            end = self._deadline(self._t0)
            try:
                got = self._completion_proposal(fit, end)
            except FitTimeout:
                got = None
            if got is None:
                break
            mech, added, makers = got
            lines = [mech.reaction_lines()[i] for i in added]
            self.completion_ = {"added": lines, "accepted": False}
            if makers:
                self.completion_["orphans"] = [o.to_dict(mech.species) for o in makers]
            saved = (dict(self.noise_), list(self.alternatives_))
            new = self._completion_fit(fit, mech, bool(makers), end)
            self.completion_["seconds"] = time.perf_counter() - start
            if new is None or new.timed_out:
                self.noise_, self.alternatives_ = saved
                if makers:
                    self.completion_["unresolved"] = self._unresolved(
                        makers, "the completed mechanism could not be fitted in the time budget")
                break
            extra = self._extra_reactions(new)
            better = new.noise_estimate < fit.noise_estimate
            if makers and better and extra and new.accepted:
                slim = self._without_redundant(new, end)
                if slim is not None:
                    new, self.completion_["dropped"] = slim
                    self.completion_["seconds"] = time.perf_counter() - start
                    extra = self._extra_reactions(new)
                    better = new.noise_estimate < fit.noise_estimate
            self.completion_.update(noise_estimate=new.noise_estimate, fitted_accepted=new.accepted,
                                    extra_reactions=extra)
            if new.accepted and not self.noise_.get("disagrees") and not extra and (
                    better or not makers):
                self.completion_["accepted"] = True
                new.seconds += fit.seconds
                fit = new
                continue
            self.noise_, self.alternatives_ = saved
            if makers and better:  # the data want the maker, but the mechanism cannot hold it
                self.completion_["unresolved"] = self._unresolved(
                    makers, f"the completed mechanism fits better (noise estimate "
                    f"{new.noise_estimate:.4g} against {fit.noise_estimate:.4g}) but "
                    + (f"keeps {extra} reaction(s) more than the {self.n_reactions} asked for "
                       "(--reactions)" if extra else "is not accepted"))
            break
        return fit

    def _completion_proposal(self, fit: TrajectoryFit, end: float):
        """Return ``(mechanism, added rows, makers)`` to complete ``fit`` with, or ``None``.

        ``makers`` is empty for the element balances' screen, the orphan species' picks
        (:class:`~rdlab.discover.completion.OrphanMaker`) otherwise.
        """
        noise = self.element_noise_ or 0.0
        if self.noise_.get("disagrees"):
            got = completed_mechanism(fit, self._traj_data, self.n_reactions, noise,
                                      deadline=end)
            return None if got is None else (*got, [])
        if (not fit.accepted or self._extra_reactions(fit) or self.equilibrium_only_
                or noise <= SOLVER_RESIDUAL):  # below it: the solver's error, not noise
            return None
        return orphan_completion(fit, self._traj_data, noise, deadline=end)

    def _completion_fit(self, fit: TrajectoryFit, mech: Mechanism, maker: bool,
                        end: float) -> TrajectoryFit | None:
        """Fit a completed mechanism on every sample; ``None`` when the fit failed.

        Rows for a fit the element balances contradict are fitted from the measured
        starts (pruned, up to :data:`COMPLETION_NFEV` iterations), then finished as the
        search's fit (:meth:`_finished`). A maker added to an accepted fit is fitted
        jointly with the starts from where ``fit`` left them, unpruned: its flux is
        within the pruning's tolerance of the measured starts' residual (noisy GRI-3.0,
        seed 2: the CO2 maker, 89 σ² in the score test, was pruned), and the score test
        that proposed it already weighed it against the noise.
        """
        if maker:
            return self._refit_from_starts(fit, mech, end)
        try:
            self.noise_ = self._prior_noise()
            new = fit_trajectories(mech, self._traj_data, noise=self.concentration_noise,
                                   max_nfev=COMPLETION_NFEV, deadline=end)
        except (NetworkError, ParameterError, FitTimeout):
            return None
        return new if new.timed_out else self._finished(new)

    def _refit_from_starts(self, fit: TrajectoryFit, mech: Mechanism,
                           end: float) -> TrajectoryFit | None:
        """Fit ``mech`` jointly with the starts from where ``fit`` left them, unpruned.

        ``None`` when the fit failed; with the noise estimated, ``noise_`` is updated and
        the fit checked against the element balances.
        """
        try:
            new = fit_with_initial_states(replace(fit, mechanism=mech), self._traj_data,
                                          noise=self.concentration_noise, deadline=end,
                                          starts=fit.initial_states)
        except (NetworkError, ParameterError, FitTimeout):
            return None
        if new is not None and self.noise_["source"] == "estimated":
            self.noise_ = {"value": new.noise_estimate, "source": "estimated"}
            self._check_against_elements(new)
        return new

    def _without_redundant(self, fit: TrajectoryFit,
                           end: float) -> tuple[TrajectoryFit, str] | None:
        """Drop from an over-full fit the row the data miss least, of those others add up to.

        Each row of :func:`~rdlab.discover.simpler_forms.redundant_rows` is left out in
        turn and the rest refitted jointly with the starts (:meth:`_refit_from_starts`);
        the best refit that is accepted and whose residual sum of squares is within
        :data:`~rdlab.discover.alternatives.EQUIVALENT_CHI2` σ² of ``fit``'s (σ the element
        balances' noise) is returned with the dropped reaction (text); ``None`` when none
        holds. ``noise_`` is left as for the returned fit.
        """
        if not (self.element_noise_ or 0.0) > 0:
            return None
        saved, best = dict(self.noise_), None
        for i in redundant_rows(fit):
            if time.perf_counter() >= end:
                break
            keep = np.array([j for j in range(fit.mechanism.n_reactions) if j != i])
            new = self._refit_from_starts(fit, fit.mechanism.subset(keep), end)
            noise_after, self.noise_ = dict(self.noise_), dict(saved)
            if new is None or new.timed_out or not new.accepted:
                continue
            delta = self._delta_chi2(new, fit)
            if delta <= EQUIVALENT_CHI2 and (best is None or delta < best[0]):
                best = (delta, new, fit.mechanism.reaction_lines()[i], noise_after)
        if best is None:
            return None
        self.noise_ = best[3]
        return best[1], best[2]

    def _delta_chi2(self, new: TrajectoryFit, old: TrajectoryFit) -> float:
        """Return ``new``'s residual sum of squares minus ``old``'s, in units of σ².

        σ is the element balances' noise (> 0 where this is called).
        """
        c = self._traj_data.concentrations
        per_species = c.shape[0] * (c.shape[1] - 1)
        return ((residual_sum_of_squares(new, per_species)
                 - residual_sum_of_squares(old, per_species)) / self.element_noise_ ** 2)

    def _simplified(self, fit: TrajectoryFit) -> TrajectoryFit:
        """Swap rows the data cannot tell from rows with no more molecules, when that holds.

        Two rounds of :meth:`_simplify_round` on an accepted fit of noisy data: the rows'
        sums with other rows first, then also the makers of species one row alone changes
        (``makers``; read in a fit whose twins the first round may have mended: on noisy
        GRI-3.0, seed 7, the true CO2 maker ranked first only then). What was tried goes
        to ``simplified_`` (one entry per round that proposed a swap).
        """
        self.simplified_ = None
        noise = self.element_noise_ or 0.0
        if (not fit.accepted or self._extra_reactions(fit) or self.equilibrium_only_
                or noise <= SOLVER_RESIDUAL or (self.completion_ or {}).get("unresolved")):
            return fit
        rounds = []
        for makers in (False, True):
            if not self._time_left(self._t0):
                break
            fit, said = self._simplify_round(fit, makers, noise)
            if said is not None:
                rounds.append(said)
        self.simplified_ = rounds or None
        return fit

    def _simplify_round(self, fit: TrajectoryFit, makers: bool,
                        noise: float) -> tuple[TrajectoryFit, dict | None]:
        """Return ``fit`` with the swaps of one round when they hold, and what was tried.

        :func:`~rdlab.discover.simpler_forms.simpler_forms` proposes the swaps; the swapped
        mechanism is fitted jointly with the starts from where ``fit`` left them
        (:meth:`_refit_from_starts`) and replaces ``fit`` when it is accepted, keeps every
        swapped row, stays within ``n_reactions`` and its residual sum of squares is within
        :data:`~rdlab.discover.alternatives.EQUIVALENT_CHI2` σ² of ``fit``'s (σ the element
        balances' noise). ``fit`` is then listed as equally good. ``None`` for what was
        tried when nothing was proposed.
        """
        start, end = time.perf_counter(), self._deadline(self._t0)
        try:
            forms = simpler_forms(fit, self._traj_data, noise, deadline=end, makers=makers)
        except FitTimeout:
            return fit, None
        if not forms:
            return fit, None
        said = {"makers": makers, "swaps": [f.to_dict(fit.mechanism.species) for f in forms],
                "accepted": False}
        saved = dict(self.noise_)
        new = self._refit_from_starts(fit, swapped(fit.mechanism, forms), end)
        said["seconds"] = time.perf_counter() - start
        if new is None or new.timed_out:
            self.noise_ = saved
            return fit, said
        delta = self._delta_chi2(new, fit)
        kept = all(new.mechanism.kf[f.row] > 0 for f in forms)
        said.update(delta_chi2=delta, fitted_accepted=new.accepted)
        if not (new.accepted and kept and not self._extra_reactions(new)
                and delta <= EQUIVALENT_CHI2):
            self.noise_ = saved
            return fit, said
        said["accepted"] = True
        replaced, by = differing_rows(new.mechanism, fit.mechanism)
        self.alternatives_ = [Alternative(fit.mechanism.normalised(), replaced, by, "",
                                          fit.error, -delta)] + list(self.alternatives_)
        new.seconds += fit.seconds
        return new, said

    def _unresolved(self, makers: list, why: str) -> str:
        """Return why a fit with species the data change but no row does is not converged."""
        said = "; ".join(f"{o.species} changes in the data ({o.chi2:.0f} σ² beyond the noise) "
                         f"but no reaction changes it (best candidate: "
                         f"{o.to_dict(self._traj_data.species)['reaction']})" for o in makers)
        return f"{said}; {why}"

    def _judge(self, fit: TrajectoryFit) -> None:
        """With unknown noise, judge a fit that is not noise-free by the estimated noise.

        :meth:`_noise_limited` decides (threshold 3σ); the estimate goes to ``noise_``.
        """
        if not fit.accepted and self.concentration_noise is None:
            self.noise_ = {"value": fit.noise_estimate, "source": "estimated"}
            fit.accepted = self._noise_limited(fit)
            fit.threshold = 3.0 * max(fit.noise_estimate, NOISE_FLOOR)

    def _rivals(self, fit: TrajectoryFit) -> tuple[TrajectoryFit, list]:
        """Return the fit the data prefer among ``fit`` and its rivals, and the equal ones.

        The rivals are ``fit``'s rows swapped through its fast equilibria
        (:mod:`rdlab.discover.alternatives`).

        Each swap is refitted with 3 iterations on every sample, and polished
        (:data:`POLISH_NFEV`) only when that is within 2× of ``fit``'s error. Each gets
        at most :data:`ALTERNATIVE_EVALUATIONS` of ``fit``'s evaluation times (at least
        5 s; a stiffer rival can crawl), and nothing runs past the budget.
        """
        end = self._deadline(self._t0)
        per_evaluation = fit.seconds / max(fit.evaluations, 1)
        cap = max(ALTERNATIVE_EVALUATIONS * per_evaluation, 5.0)

        def refit(mech: Mechanism) -> TrajectoryFit:
            end_one = min(end, time.perf_counter() + cap)
            quick = self._refit_on_all(mech, end_one, max_nfev=3)
            if quick.timed_out or not quick.success or quick.error > 2.0 * fit.error:
                return quick
            return self._refit_on_all(quick.mechanism, end_one, POLISH_NFEV)

        def reproduces(alt: TrajectoryFit) -> bool:
            return bool(alt.accepted or self._noise_limited(alt))

        c = self._traj_data.concentrations
        times = np.asarray(self._traj_data.sample_times, float)
        rivals = rival_fits(fit, refit, reproduces, states=c[:, 1],
                            interval=float(np.min(times[:, 1] - times[:, 0])))
        n, n_t, _ = c.shape
        sigma = (fit.noise_estimate if self.concentration_noise is None
                 else self.concentration_noise)
        return choose(fit, rivals, sigma, n * (n_t - 1))

    def _with_initial_states(self, fit: TrajectoryFit) -> TrajectoryFit:
        """Refit an accepted fit of noisy data with every sample's initial state free.

        Noisy first states bias the rates (errors in variables,
        :mod:`rdlab.discover.initial_states`); the joint fit replaces ``fit`` unless it
        failed. It may take :data:`INITIAL_STATE_EVALUATIONS` of ``fit``'s evaluation
        times; out of time, it keeps the best point reached. Noise-free data (given, or
        accepted as such) keep ``fit``, and so do data that show only equilibria (no rate
        is determined there; their sensitivities are the stiffest to integrate).
        """
        noisy = (self.concentration_noise or 0.0) > 0 or self.noise_["source"] == "estimated"
        if (not (noisy and fit.accepted) or fit.timed_out or not fit.success
                or self.equilibrium_only_):
            return fit
        cap = max(INITIAL_STATE_EVALUATIONS * fit.seconds / max(fit.evaluations, 1), 10.0)
        try:
            new = fit_with_initial_states(fit, self._traj_data,
                                          noise=self.concentration_noise,
                                          deadline=min(self._deadline(self._t0),
                                                       time.perf_counter() + cap))
        except (NetworkError, ParameterError):
            return fit
        if new is None:
            return fit
        new.seconds += fit.seconds
        if self.noise_["source"] == "estimated":
            self.noise_ = {"value": new.noise_estimate, "source": "estimated"}
        return new

    def _check_against_elements(self, fit: TrajectoryFit) -> None:
        """Withdraw the acceptance of a fit whose noise the element balances contradict.

        With the noise estimated from the fit's own residual, a wrong mechanism that misses
        the data by a little more than their noise reads as noise-limited. The element
        balances measure the noise independently of any mechanism
        (:func:`~rdlab.discover.elements.balance_noise`); after the initial states are
        refitted the fit's estimate must be within :data:`NOISE_AGREEMENT` of it (both
        values go to ``noise_``). Equilibrium-only data and fits without refitted starts
        are left as they are: their estimates carry the noisy starts.
        """
        known = self.element_noise_
        if (self.noise_["source"] != "estimated" or not fit.accepted or known is None
                or known < NOISE_FLOOR or fit.initial_states is None):
            return
        self.noise_["elements"] = known
        if fit.noise_estimate > NOISE_AGREEMENT * known:
            fit.accepted = False
            self.noise_["disagrees"] = (
                f"the fit leaves a residual noise of {fit.noise_estimate:.3g}, "
                f"{fit.noise_estimate / known:.2f}× the {known:.3g} that the element balances "
                "measure: the mechanism does not reproduce the data to their noise")

    def _polished(self, fit: TrajectoryFit) -> TrajectoryFit:
        """Refit ``fit``'s mechanism on every sample until converged (:data:`POLISH_NFEV`).

        The rates and the identifiability analysis are read at a converged optimum; the
        polished fit replaces ``fit`` unless it ran out of time or reproduces the data
        worse.
        """
        if fit.timed_out or not fit.success:
            return fit
        try:
            new = self._refit_on_all(fit.mechanism, self._deadline(self._t0), POLISH_NFEV)
        except (NetworkError, ParameterError):
            return fit
        if new.timed_out or not new.success or new.error > fit.error * (1.0 + 1e-6):
            return fit
        new.seconds += fit.seconds
        carry_notes(fit.mechanism, new.mechanism)  # what the search found out stays
        return new

    def _search_data(self, log_u: np.ndarray, du: np.ndarray, T: np.ndarray | None,
                     train: np.ndarray, T_ref: float | None) -> dict:
        """Return the structure search's tensors: its points, scaled derivatives, weights."""
        # weight each species by its derivative scale, so a species moved only by a slow
        # reaction counts as much as one moved by a fast one
        scale = np.std(du[train], axis=0) if self.scale_species else np.ones(du.shape[1])
        scale = np.where(scale > 0, scale, 1.0)
        self._species_scale = scale
        # the structure search runs on a random subset (a step costs ∝ points); rates and
        # the acceptance test use every point
        search = train
        if self.search_points is not None and train.size > self.search_points:
            rng = np.random.default_rng(self.seed)
            search = np.sort(rng.choice(train, self.search_points, replace=False))
        self._search = search
        return {
            "log_u": torch.as_tensor(log_u[search]),
            "du": torch.as_tensor(du[search] / scale),
            "w": torch.as_tensor(1.0 / scale),
            "x": None if T is None else torch.as_tensor(T_ref / T[search]),
        }

    def _keep_result(self, result: _Candidate, u_train: np.ndarray, du_train: np.ndarray,
                     T_train: np.ndarray | None) -> None:
        """Store the winning candidate as the fitted mechanism, with its errors."""
        self.mechanism_ = result.mechanism.normalised()
        self.validation_error_ = result.error
        self.species_errors_ = result.species_errors
        self.converged_ = bool(np.max(result.species_errors) <= self.acceptance_tolerance())
        self.time_to_structure_ = result.seconds if self.converged_ else None
        total, _ = relative_errors(self.mechanism_.rhs(u_train, T_train), du_train)
        self.train_error_ = total

    def _try_warm_start(self, model: PopulationCRNN, t0: float) -> _Candidate | None:
        """Propose a structure by sparse regression; return it if it passes validation.

        Otherwise load it into candidate 0 of ``model`` and return ``None``.
        """
        log_u, du, T, train, val, T_ref = self._fit_data
        proposal = propose_structure(log_u[train], du[train], max_order=self.library_order,
                                     catalytic=self.catalytic,
                                     tolerance=max(1e-6, 2.0 * self.noise_level))
        if proposal is None:
            self.warm_start_ = {"proposed": 0}
            return None
        n = proposal.V.shape[0]
        self.warm_start_ = {"proposed": n, "max_deviation": proposal.max_deviation,
                            "skipped_monomials": proposal.skipped}
        if n <= self.n_reactions:
            cand = self._frozen_mechanism(proposal.V.copy(), None if proposal.orders is None
                                          else proposal.orders.copy(), 0, t0)
            self.warm_start_["accepted"] = self._fits(cand)
            if self.warm_start_["accepted"]:
                return cand
        rows = min(n, self.n_reactions)
        with torch.no_grad():
            model.V[0, :rows] = torch.as_tensor(proposal.V[:rows], dtype=model.V.dtype)
            if model.catalytic and proposal.orders is not None:
                model.orders[0, :rows] = torch.as_tensor(proposal.orders[:rows],
                                                         dtype=model.V.dtype)
        return None

    def acceptance_tolerance(self) -> float:
        """Return the relative derivative error a mechanism must reach on every species.

        Returns
        -------
        float
            ``tolerance``, or 3× ``noise_level`` when the data are noisier.
        """
        return max(self.tolerance, 3.0 * self.noise_level)

    # ------------------------------------------------------------------ training loops
    def _step(self, model, opt, data) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        losses = model.losses(data["log_u"], data["du"], data["x"], self.regularisation,
                              data["w"])
        losses.sum().backward()
        opt.step()
        return losses.detach()

    def _out_of_time(self, epoch: int, t0: float) -> bool:
        return epoch >= self.max_epochs or time.perf_counter() > self._deadline(t0)

    def _deadline(self, t0: float) -> float:
        """When the time budget started at ``t0`` runs out (``perf_counter`` seconds)."""
        return math.inf if self.time_budget_s is None else t0 + self.time_budget_s

    def _time_left(self, t0: float) -> bool:
        """Say whether the time budget started at ``t0`` has time left."""
        return time.perf_counter() < self._deadline(t0)

    def _train_plain(self, model, opt, data, t0) -> _Candidate:
        """Train the paper's baseline: Adam on everything, no freezing, rates as learned."""
        epoch, last = 0, None
        bar = tqdm(total=self.max_epochs, disable=not self.progress, desc="fit (no freezing)",
                   unit="epoch", mininterval=1.0)
        while not self._out_of_time(epoch, t0):
            for _ in range(self.check_every):
                last = self._step(model, opt, data)
            epoch += self.check_every
            bar.update(self.check_every)
            bar.set_postfix(loss=f"{float(last.min()):.3e}")
        bar.close()
        self.n_epochs_ = epoch
        self.restarts_ = 0
        self.history_ = []
        best = int(torch.argmin(last))
        mech = self._raw_mechanism(model, best)
        return self._score(mech, epoch, t0)

    def _raw_mechanism(self, model, p: int) -> Mechanism:
        """Candidate ``p`` as it stands, V not rounded, rates exp(l)."""
        log_u, du, T, train, val, T_ref = self._fit_data
        V = model.V[p].detach().numpy().copy()
        orders = None if not model.catalytic else torch.relu(model.orders[p]).detach().numpy()
        kf = np.exp(model.lf[p].detach().numpy())
        kr = np.zeros_like(kf) if model.catalytic else np.exp(model.lr[p].detach().numpy())
        arr = None
        if T is not None:
            R = GAS_CONSTANT
            ef = model.ef[p].detach().numpy() * R * T_ref
            er = (np.zeros_like(ef) if model.catalytic
                  else model.er[p].detach().numpy() * R * T_ref)
            arr = ArrheniusRates(kf, kr, ef, er, R)
            kf, kr = arr.rates(T_ref)
        return Mechanism(self.species_, V, kf, kr, orders, arr, T_ref)

    def _score(self, mech: Mechanism, epoch: int, t0: float) -> _Candidate:
        log_u, du, T, train, val, T_ref = self._fit_data
        u_val = np.exp(log_u[val])
        with np.errstate(all="ignore"):
            pred = mech.rhs(u_val, None if T is None else T[val])
            total, per = relative_errors(pred, du[val])
        if not np.isfinite(total) or not np.all(np.isfinite(per)):  # overflowing candidate
            total, per = np.inf, np.full(du.shape[1], np.inf)
        return _Candidate(mech, total, per, epoch, time.perf_counter() - t0)

    def _frozen_mechanism(self, V: np.ndarray, orders: np.ndarray | None, epoch: int,
                          t0: float, sweeps: int = 20) -> _Candidate:
        """Rates of an integer structure by least squares on the training points."""
        log_u, du, T, train, val, T_ref = self._fit_data
        if self.refine and T is None:
            s = self._search
            V, orders, _ = refine_integers(V, orders, log_u[s], du[s], point_weights(du[s]),
                                           max_sweeps=sweeps, deadline=self._deadline(t0))
        keep = np.any(V != 0, axis=1)
        V, orders = V[keep], None if orders is None else orders[keep]
        if orders is None:
            of, orr = np.maximum(0.0, -V), np.maximum(0.0, V)
        else:
            of, orr = orders, None
        arr = None
        if T is None:
            kf, kr, _ = fit_rates(V, of, orr, log_u[train], du[train],
                                  point_weights(du[train]))
        else:
            p = fit_arrhenius(V, of, orr, log_u[train], du[train], T[train])
            arr = ArrheniusRates(p["Af"], p["Ar"], p["Ef"], p["Er"])
            kf, kr = arr.rates(T_ref)
        mech = Mechanism(self.species_, V, kf, kr, orders, arr, T_ref)
        return self._score(mech, epoch, t0)

    def _train_ppf(self, model, opt, data, t0) -> _Candidate:
        """Run Algorithm 1: train, freeze rows at plateaus, fit whole candidates, restart."""
        state = _FreezeState.start(model)
        finished: list[_Candidate] = []
        self.restarts_ = 0
        self.history_ = []
        epoch, winner = 0, None
        bar = tqdm(disable=not self.progress, desc="fit (PPF)", unit="epoch", mininterval=1.0)
        while winner is None and not self._out_of_time(epoch, t0):
            cur_best = self._ppf_window(model, opt, data, state)
            epoch += self.check_every
            state.since_reset += self.check_every
            bar.update(self.check_every)
            winner = self._plateau_checks(model, opt, state, cur_best, epoch, t0, finished)
            if winner is None and self.refine:
                winner = self._probe(model, state, epoch, t0, finished)
            bar.set_postfix(frozen=int(state.frozen.sum(1).max()), restarts=self.restarts_,
                            loss=f"{float(cur_best.min()):.2e}")
        bar.close()
        self.n_epochs_ = epoch
        if winner is not None:
            return winner
        # out of time: best of the finished ones and of the live candidates rounded now
        for p in range(model.population):
            cand = self._rounded_candidate(model, state, p, epoch, t0)
            if cand is not None:
                finished.append(cand)
        return best_candidate(finished)

    def _ppf_window(self, model, opt, data, state: _FreezeState) -> np.ndarray:
        """Take ``check_every`` Adam steps, frozen rows held; return each candidate's best loss."""
        window: list[torch.Tensor] = []
        for _ in range(self.check_every):
            window.append(self._step(model, opt, data))
            state.hold(model)
        return torch.stack(window).min(dim=0).values.numpy()

    def _plateau_checks(self, model, opt, state: _FreezeState, cur_best: np.ndarray,
                        epoch: int, t0: float, finished: list[_Candidate]) -> _Candidate | None:
        """Make a freezing round for every candidate on a plateau; return one that fits."""
        for p in range(model.population):
            if state.since_reset[p] < 2 * self.check_every:
                state.prev_best[p] = min(state.prev_best[p], cur_best[p]) if np.isfinite(
                    state.prev_best[p]) else cur_best[p]
                continue
            improving = cur_best[p] < state.prev_best[p] * (1.0 - self.plateau)
            state.prev_best[p] = min(state.prev_best[p], cur_best[p])
            if improving:
                continue
            cand = self._freezing_round(model, opt, state, p, float(cur_best[p]), epoch, t0)
            if cand is None:
                continue
            finished.append(cand)
            if self._fits(cand):
                return cand
            self._restart(model, opt, state, p)
        return None

    def _freezing_round(self, model, opt, state: _FreezeState, p: int, loss: float,
                        epoch: int, t0: float) -> _Candidate | None:
        """Freeze candidate ``p``'s ready rows; fit it if all are frozen, else redraw the rest."""
        new, free = state.freeze(model, p, self.epsilon, self.max_stalls)
        self.history_.append({"epoch": epoch, "candidate": p, "loss": loss,
                              "frozen": int(state.frozen[p].sum()), "new": len(new)})
        if free:
            model.redraw_rows(p, free)
            _reset_adam(model, opt, p, free)
            state.prev_best[p] = np.inf
            state.since_reset[p] = 0
            return None
        return self._frozen_mechanism(state.V[p].numpy().copy(), None if state.orders is None
                                      else state.orders[p].numpy().copy(), epoch, t0)

    def _restart(self, model, opt, state: _FreezeState, p: int) -> None:
        """Start candidate ``p`` again from a new random draw (its frozen mechanism failed)."""
        model.redraw_member(p)
        state.frozen[p] = False
        state.mask[p] = False
        _reset_adam(model, opt, p)
        state.prev_best[p] = np.inf
        state.since_reset[p] = 0
        state.stalls[p] = 0
        self.restarts_ += 1

    def _probe(self, model, state: _FreezeState, epoch: int, t0: float,
               finished: list[_Candidate]) -> _Candidate | None:
        """Round one candidate (round-robin) whole, repair it; return it if it already fits."""
        # probe one candidate per check (round-robin): round all its rows, repair
        # them by integer search, and accept it if it already fits
        p = (epoch // self.check_every) % model.population
        cand = self._rounded_candidate(model, state, p, epoch, t0, sweeps=self.probe_sweeps)
        if cand is None:
            return None
        finished.append(cand)
        return cand if self._fits(cand) else None

    def _fits(self, cand: _Candidate) -> bool:
        """Say whether ``cand`` passes the validation test on every species.

        With the trajectory target: whether its structure, with rates fitted to the
        trajectories, reproduces them (:func:`~rdlab.discover.trajectory_fit.fit_trajectories`),
        or, with unknown noise, reproduces them to its own noise estimate with residuals that
        look like noise (:meth:`_noise_limited`).
        """
        if getattr(self, "target_", "derivatives") == "trajectories":
            fit = self._trajectory_fit(cand.mechanism)
            return bool(fit is not None and (fit.accepted or self._noise_limited(fit)))
        return bool(np.max(cand.species_errors) <= self.acceptance_tolerance())

    def _rounded_candidate(self, model, state: _FreezeState, p: int, epoch: int, t0: float,
                           sweeps: int = 20) -> _Candidate | None:
        """Return candidate ``p`` with its free rows rounded too, then fitted."""
        frozen = state.frozen[p][:, None]
        V = np.where(frozen, state.V[p].numpy(), np.round(model.V[p].detach().numpy()))
        orders_ = None
        if model.catalytic:
            orders_ = np.where(frozen, state.orders[p].numpy(),
                               np.round(torch.relu(model.orders[p]).detach().numpy()))
            if np.any(orders_ + V < 0) and not self.refine:
                return None
        try:
            return self._frozen_mechanism(V, orders_, epoch, t0, sweeps)
        except NetworkError:
            return None

    # ------------------------------------------------------------------ use
    def _check_fitted(self) -> None:
        if not hasattr(self, "mechanism_"):
            raise ParameterError("this ReactionDiscovery is not fitted yet; call fit first")

    def predict(self, X, temperature=None) -> np.ndarray:
        """Return the derivatives ``(N, n_s)`` of the learned mechanism at ``X``.

        Parameters
        ----------
        X : ReactionData or array_like
            Concentrations ``(N, n_s)``, or :class:`~rdlab.discover.data.ReactionData`
            (its points and temperatures).
        temperature : array_like, optional
            ``(N,)`` temperatures in K, for a mechanism with Arrhenius rates.

        Returns
        -------
        numpy.ndarray
            ``(N, n_s)`` derivatives per unit time.

        Raises
        ------
        ParameterError
            The estimator is not fitted, or ``X`` does not have ``n_features_in_`` columns.
        """
        self._check_fitted()
        u = np.asarray(X.points()[0] if isinstance(X, ReactionData) else X, dtype=float)
        if isinstance(X, ReactionData):
            temperature = X.points()[2]
        if u.ndim != 2 or u.shape[1] != self.n_features_in_:
            raise ParameterError(f"X must be (n_points, {self.n_features_in_}), got {u.shape}")
        return self.mechanism_.rhs(np.maximum(u, CONCENTRATION_FLOOR), temperature)

    def score(self, X, y=None, temperature=None) -> float:
        """Return ``1 − E`` with E the paper's relative L2 error of the derivatives.

        Parameters
        ----------
        X : ReactionData or array_like
            Concentrations ``(N, n_s)``, or :class:`~rdlab.discover.data.ReactionData`
            (its points, derivatives and temperatures).
        y : array_like, optional
            True derivatives ``(N, n_s)`` when ``X`` is an array.
        temperature : array_like, optional
            ``(N,)`` temperatures in K, for a mechanism with Arrhenius rates.

        Returns
        -------
        float
            ``1 − E`` (1 for a perfect fit).
        """
        if isinstance(X, ReactionData):
            _, y, temperature = X.points()
        total, _ = relative_errors(self.predict(X, temperature), np.asarray(y, dtype=float))
        return 1.0 - total

    def report(self) -> dict:
        """Return the fit quality and bookkeeping as a JSON-ready dict.

        Returns
        -------
        dict
            ``converged``, ``validation_error``, ``species_errors`` (per species),
            ``tolerance``, ``train_error``, ``epochs``, ``restarts``, ``seconds``,
            ``time_to_structure``, ``warm_start``, ``mechanism`` (its dict form) and
            ``target``. With the trajectory target also ``noise`` (value and whether given,
            estimated or noise-free), ``weak_proposal``, ``shooting``
            (:meth:`~rdlab.discover.shooting.ShootingResult.summary`, or ``None`` when it did
            not run), ``subspace`` (``all_rows``: the all-rows fit's summary and rows
            ``kept``; :meth:`~rdlab.discover.subspace.SubspaceSearch.summary` when sets
            were screened; the ``verified`` fit's summary; ``None`` when it did not run),
            ``completion`` (rows added to a fit the element balances contradicted, or
            makers of species that no row changed, ``orphans`` with their scores in σ²;
            whether that was accepted, the completed fit's ``noise_estimate`` and
            ``extra_reactions``, ``unresolved`` when the data want a maker the mechanism
            could not take, and its seconds: :meth:`_completed`; ``None`` when not
            tried), ``simplified`` (per round, rows swapped for ones with no more molecules
            that explain the data as well, ``swaps`` with their scores in σ², whether the
            refit was accepted and its ``delta_chi2``: :meth:`_simplified`; ``None`` when
            nothing was proposed), ``equilibrium_only`` (the data show only equilibria:
            :data:`EQUILIBRIUM_NOTE`), ``exhausted_species`` (used up within the first
            interval: :func:`~rdlab.discover.subspace.exhausted_species`),
            ``equally_good`` (mechanisms that reproduce the data as well, a row swapped
            through a fast equilibrium or for a simpler form:
            :meth:`~rdlab.discover.alternatives.Alternative.to_dict`), ``candidates_fitted`` and
            ``trajectory_fit`` (:meth:`TrajectoryFit.summary`: per-species RMS relative
            residuals, threshold, pruned directions and ``identifiability`` — which rates or
            combinations such as ``kf_2/kr_2`` the data determine, with standard errors);
            ``validation_error`` and ``species_errors`` are then trajectory residuals.

        Raises
        ------
        ParameterError
            The estimator is not fitted.
        """
        self._check_fitted()
        out = self._derivative_report()
        out["target"] = self.target_
        if self.target_ == "trajectories":
            fit = self.trajectory_fit_
            out["tolerance"] = None if fit is None else fit.threshold
            out["noise"] = self.noise_
            out["weak_proposal"] = self.weak_proposal_
            out["trajectory_fit"] = None if fit is None else fit.summary()
            out["candidates_fitted"] = len(self._traj_fits)
            out["shooting"] = self.shooting_
            out["subspace"] = self.subspace_
            out["equilibrium_only"] = self.equilibrium_only_
            out["exhausted_species"] = list(self.exhausted_species_)
            out["element_balances"] = list(self.element_balances_)
            out["completion"] = self.completion_
            out["simplified"] = self.simplified_
            out["equally_good"] = [a.to_dict() for a in self.alternatives_]
        return out

    def rejection(self) -> str | None:
        """Return why the fitted mechanism was not accepted; ``None`` when it converged.

        A fit of the trajectories fails the first test of, in order: fitted at all, within
        the time budget, integrated, at most ``n_reactions`` reactions, a noise level the
        element balances agree with (:meth:`_check_against_elements`), then reproducing
        the data to the tolerance (given or noise-free data) or, with the noise estimated,
        a residual small enough to be noise (:data:`MAX_ESTIMATED_NOISE`), errors within 3×
        that estimate and residuals that look like noise
        (:attr:`~rdlab.discover.trajectory_fit.TrajectoryFit.noise_like`). A fit of the
        derivatives fails on its largest per-species error.

        Returns
        -------
        str or None
            One clause naming the test that failed, with its numbers.
        """
        self._check_fitted()
        if self.converged_:
            return None
        if self.target_ != "trajectories":
            worst = float(np.max(self.species_errors_))
            return (f"largest per-species validation error {worst:.3g} > tolerance "
                    f"{self.acceptance_tolerance():.3g}")
        fit = self.trajectory_fit_
        if fit is None:
            return "no candidate mechanism could be fitted to the trajectories"
        if fit.timed_out:
            return (f"the time budget ran out during the trajectory fit ({fit.seconds:.0f} s); "
                    "give it more time (--time-budget)")
        if not fit.success:
            return "the stiff solver failed on the best candidate's trajectories"
        if extra := self._extra_reactions(fit):
            return (f"the best fit keeps {extra} reaction(s) more than the {self.n_reactions} "
                    "asked for (--reactions)")
        disagrees = (self.noise_ or {}).get("disagrees")
        if disagrees:
            return disagrees
        if unresolved := (self.completion_ or {}).get("unresolved"):
            return unresolved
        if self.concentration_noise is not None or fit.null_autocorrelation is None:
            return (f"largest per-species trajectory error {fit.error:.3g} > tolerance "
                    f"{fit.threshold:.3g}")
        sigma = max(fit.noise_estimate, NOISE_FLOOR)
        if fit.noise_estimate > MAX_ESTIMATED_NOISE:
            return (f"the residual ({fit.noise_estimate:.3g} relative RMS) is larger than "
                    f"{MAX_ESTIMATED_NOISE:g}, the most taken for measurement noise")
        if fit.error > 3.0 * sigma:
            return (f"largest per-species trajectory error {fit.error:.3g} > 3× the "
                    f"residual's noise estimate ({3.0 * sigma:.3g})")
        return (f"the residuals vary smoothly in time (lag-1 autocorrelation "
                f"{fit.autocorrelation:.2f}, where noise of this size gives "
                f"{fit.null_autocorrelation:.2f}): a systematic misfit, not noise")

    def limits(self) -> list[str]:
        """Return what, in these data, is beyond the concentration-only search.

        Returns
        -------
        list of str
            One sentence each: species used up within the first interval (their consuming
            reactions' rates are bounded from below only), a fit whose noise the element
            balances contradict (:data:`NOISE_AGREEMENT`), a stoichiometric subspace of
            rank above :data:`~rdlab.discover.subspace.MAX_RANK` (not enumerated).
        """
        self._check_fitted()
        out = []
        gone = getattr(self, "exhausted_species_", [])
        if gone:
            out.append(
                f"{', '.join(gone)} fall to under 1e-3 of their initial level within the first "
                "sampling interval: the reactions that consume them finish before the second "
                "measured time, so the data bound their rates from below only (measure earlier "
                "times to determine them)")
        disagrees = (getattr(self, "noise_", None) or {}).get("disagrees")
        if disagrees:
            out.append(disagrees)
        rank = (self.subspace_ or {}).get("rank", 0) if self.target_ == "trajectories" else 0
        if rank > MAX_RANK:
            out.append(
                f"the concentration changes span {rank} independent directions, more than "
                f"the exhaustive structure search covers ({MAX_RANK}): the candidate rows "
                "came from species balances and residual screens, which can miss minor routes")
        return out

    def _derivative_report(self) -> dict:
        """Return the report entries common to both targets."""
        return {
            "converged": self.converged_,
            "validation_error": self.validation_error_,
            "species_errors": dict(zip(self.species_, map(float, self.species_errors_))),
            "tolerance": self.acceptance_tolerance(),
            "train_error": self.train_error_,
            "epochs": self.n_epochs_,
            "restarts": self.restarts_,
            "seconds": self.fit_seconds_,
            "time_to_structure": self.time_to_structure_,
            "warm_start": self.warm_start_,
            "mechanism": self.mechanism_.to_dict(),
        }
