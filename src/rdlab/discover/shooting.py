"""Structure proposals from concentrations alone: the CRNN trained through a stiff integrator.

Derivatives estimated from 11 samples (Δt = 0.1) are 10–100 % wrong on stiff mechanisms, and
a CRNN trained on them learns the wrong structure. Here the CRNN of §3 (V form or catalytic
form, :class:`~rdlab.discover.crnn.PopulationCRNN`) is instead trained on the concentrations
themselves, the way Ji & Deng's CRNN trains through an ODE solver, made cheap by **multiple
shooting**: every pair of consecutive measured states ``c_j → c_{j+1}`` of every sample is one
independent initial-value problem over ``Δt_j``, started from the *measured* ``c_j``. All
pairs of all samples and all ``P`` candidates are integrated together as one batched tensor
computation; there is no long sequential solve and no error accumulation along a trajectory.

Integrator
----------
Rates of the bundled examples reach ``k c ~ 1e10`` per unit time against ``Δt = 0.1``, so an
explicit method would need ~1e9 substeps. Each interval is split into ``substeps`` equal
parts; the first part is graded (``graded`` backward-Euler steps growing geometrically from
:data:`GRADED_FIRST` of the part), which resolves the transient of a state far from a fast
equilibrium — on one large step Newton converges poorly there, or to a spurious root, and
the second SDIRK stage amplifies it (measured: relative errors 1e14 on Michaelis–Menten
without grading). The rest of the interval is stepped by the two-stage, L-stable, stiffly
accurate SDIRK2 (``γ = 1 − 1/√2``):

    Y₁ = y + hγ f(Y₁),   Y₂ = y + h(1 − γ) f(Y₁) + hγ f(Y₂),   y_next = Y₂,

second order for slow kinetics and exact in the limit of infinitely fast equilibria (a fast
pair is projected onto its equilibrium, which is all the data say about it). Each stage is
solved by Newton's method with the analytic Jacobian of the CRNN (``∂r/∂c_j = r a_j / c_j``),
``newton`` iterations without gradient, then **one** differentiable Newton step from the
converged point: its gradient is exactly the implicit-function-theorem gradient of the stage
(``dY/dθ = (I − hγJ)⁻¹ h γ ∂f/∂θ``), at the cost of one right-hand side per stage in the
backward pass. States are kept ≥ :data:`STATE_FLOOR` times each species' scale.

Loss and structure
------------------
The loss of a candidate is the mean square relative error of its predicted ``c_{j+1}``
(weights of :func:`~rdlab.discover.trajectory_fit.relative_residuals`, i.e. first-order log
error), plus ``λ (L1 + L2)`` of the stoichiometry and orders (sparsity). Partial-parameter
freezing (:func:`~rdlab.discover.freezing.row_status`, eq. 3.4) holds rows that reach an
integer; at a plateau all rows of a candidate are rounded and the integer structure is handed
to ``accept`` (the estimator's trajectory fit, which fits the final rates and decides); a
rejected candidate is started again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rdlab.discover import freezing
from rdlab.discover.crnn import PopulationCRNN
from rdlab.discover.data import ReactionData
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.trajectory_fit import relative_residuals
from rdlab.errors import NetworkError, ParameterError

__all__ = ["GAMMA", "GRADED_FIRST", "STATE_FLOOR", "ShootingPairs", "ShootingResult",
           "ShootingSettings", "population_rhs", "propose_by_shooting", "rounded_mechanism",
           "shoot"]

#: γ of the L-stable SDIRK2 scheme.
GAMMA = 1.0 - math.sqrt(0.5)
#: Smallest graded step at the start of an interval, relative to its first equal part.
GRADED_FIRST = 1e-5
#: Smallest state, relative to each species' largest measured value, the integrator keeps.
STATE_FLOOR = 1e-12


@dataclass(frozen=True)
class ShootingPairs:
    """The consecutive measured states of a data set, flattened into shooting intervals.

    Parameters
    ----------
    start : torch.Tensor
        ``(N, n_s)`` measured ``c_j``.
    end : torch.Tensor
        ``(N, n_s)`` measured ``c_{j+1}``.
    dt : torch.Tensor
        ``(N,)`` ``t_{j+1} − t_j``.
    weights : torch.Tensor
        ``(N, n_s)`` relative-residual weights ``1/(|c_{j+1}| + δ_s)``.
    floor : torch.Tensor
        ``(n_s,)`` smallest state kept by the integrator.
    """

    start: torch.Tensor
    end: torch.Tensor
    dt: torch.Tensor
    weights: torch.Tensor
    floor: torch.Tensor

    @classmethod
    def from_data(cls, data: ReactionData) -> ShootingPairs:
        """Return every interval of every sample of ``data``.

        Parameters
        ----------
        data : ReactionData
            Concentrations ``(n, n_t, n_s)`` at ``sample_times`` ``(n, n_t)``.

        Returns
        -------
        ShootingPairs
            ``N = n (n_t − 1)`` intervals.

        Raises
        ------
        ParameterError
            For fewer than 2 times per sample.
        """
        c = np.maximum(np.asarray(data.concentrations, float), 0.0)
        n, n_t, S = c.shape
        if n_t < 2:
            raise ParameterError(f"shooting needs at least 2 times per sample, got {n_t}")
        t = np.asarray(data.sample_times, float)
        _, w = relative_residuals(c, c)
        scale = np.maximum(c.max(axis=(0, 1)), 1e-30)
        as_t = torch.as_tensor
        return cls(as_t(c[:, :-1].reshape(-1, S)), as_t(c[:, 1:].reshape(-1, S)),
                   as_t(np.diff(t, axis=1).reshape(-1)), as_t(w[:, 1:].reshape(-1, S)),
                   as_t(STATE_FLOOR * scale))

    @property
    def n_pairs(self) -> int:
        """Number of intervals ``N``."""
        return int(self.dt.shape[0])

    def subset(self, idx: torch.Tensor) -> ShootingPairs:
        """Return the intervals ``idx`` only.

        Parameters
        ----------
        idx : torch.Tensor
            ``(m,)`` interval indices.

        Returns
        -------
        ShootingPairs
            ``m`` intervals.
        """
        return ShootingPairs(self.start[idx], self.end[idx], self.dt[idx], self.weights[idx],
                             self.floor)

    def steps(self, substeps: int, graded: int) -> torch.Tensor:
        """Return the step sizes ``(substeps + graded, N)`` of every interval.

        Each interval is split into ``substeps`` equal parts; the first part is covered by
        ``graded + 1`` geometrically growing steps, the smallest :data:`GRADED_FIRST` of the
        part, so that the transient of a reaction far faster than the sampling (a candidate
        started off its own fast equilibrium) is resolved instead of stepped over: Newton
        from a far state converges poorly, or to a spurious root, on a large step.

        Parameters
        ----------
        substeps : int
            Equal parts of an interval (≥ 1).
        graded : int
            Extra steps (≥ 0).

        Returns
        -------
        torch.Tensor
            ``(substeps + graded, N)``, each column summing to ``Δt``.
        """
        g = graded + 1
        rho = _growth(g, GRADED_FIRST) if g > 1 else 2.0
        part = rho ** np.arange(g) * (rho - 1.0) / (rho ** g - 1.0) if g > 1 else np.ones(1)
        frac = np.concatenate([part / substeps, np.full(substeps - 1, 1.0 / substeps)])
        return torch.as_tensor(frac)[:, None] * self.dt[None]


def _growth(n: int, first: float) -> float:
    """Return ``ρ > 1`` with ``(ρ − 1)/(ρⁿ − 1) = first`` (bisection)."""
    lo, hi = 1.0 + 1e-9, 100.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (mid - 1.0) / (mid ** n - 1.0) > first:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def population_rhs(model: PopulationCRNN, c: torch.Tensor, floor: torch.Tensor,
                   jacobian: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return each candidate's ``dc/dt`` at its own states, and its Jacobian.

    Parameters
    ----------
    model : PopulationCRNN
        ``P`` candidates (no Arrhenius parameters).
    c : torch.Tensor
        ``(P, N, n_s)`` concentrations.
    floor : torch.Tensor
        ``(n_s,)`` concentrations below are read as the floor.
    jacobian : bool, default True
        Also return ``∂f/∂c``.

    Returns
    -------
    f : torch.Tensor
        ``(P, N, n_s)``.
    J : torch.Tensor or None
        ``(P, N, n_s, n_s)``, ``J[..., k, j] = ∂f_k/∂c_j``.
    """
    a, b = model.reactant_orders()  # (P, R, S)
    cc = torch.maximum(c, floor)
    log_c = torch.log(cc)
    rf = torch.exp(torch.clamp(model.lf[:, :, None] + a @ log_c.transpose(1, 2), max=80.0))
    rr = None
    if b is not None:
        rr = torch.exp(torch.clamp(model.lr[:, :, None] + b @ log_c.transpose(1, 2), max=80.0))
    net = rf if rr is None else rf - rr  # (P, R, N)
    f = net.transpose(1, 2) @ model.V
    if not jacobian:
        return f, None
    # ∂r_i/∂c_j = r_i a_ij / c_j
    dr = rf.transpose(1, 2)[..., None] * a[:, None]  # (P, N, R, S)
    if rr is not None:
        dr = dr - rr.transpose(1, 2)[..., None] * b[:, None]
    J = torch.einsum("prk,pnrj->pnkj", model.V, dr) / cc[:, :, None, :]
    return f, J


def _stage(model, base, h, floor, newton: int, start=None) -> torch.Tensor:
    """Solve ``Y = base + h f(Y)`` (``h`` ``(N,)``); differentiable through one Newton step.

    Newton runs on ``z = ln Y`` (mass action is smooth there and ``Y`` stays positive), each
    step limited to ``|Δz| ≤ 2``, up to ``newton`` iterations or until converged.
    """
    eye = torch.eye(base.shape[-1], dtype=base.dtype)
    hh = h[None, :, None]
    with torch.no_grad():
        b0 = base.detach()
        Y = torch.maximum(b0 if start is None else start.detach(), floor)
        for _ in range(newton):
            f, J = population_rhs(model, Y, floor)
            G = Y - b0 - hh * f
            if float(torch.max(torch.abs(G) / (torch.abs(Y) + floor * 1e6))) < 1e-10:
                break
            M = (eye - hh[..., None] * J) * Y[..., None, :]
            dz = torch.clamp(_solve(M, G), -2.0, 2.0)
            Y = torch.maximum(Y * torch.exp(-dz), floor)
        _, J = population_rhs(model, Y, floor)
        M = eye - hh[..., None] * J
    f, _ = population_rhs(model, Y, floor, jacobian=False)
    G = Y - base - hh * f
    return torch.maximum(Y - _solve(M, G), floor)


def _solve(M: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Return ``M⁻¹ G`` batched; singular systems fall back to least squares."""
    sol, info = torch.linalg.solve_ex(M, G[..., None])
    if bool(torch.any(info != 0)) or not bool(torch.all(torch.isfinite(sol))):
        sol = torch.linalg.lstsq(M, G[..., None]).solution
        sol = torch.nan_to_num(sol, nan=0.0, posinf=0.0, neginf=0.0)
    return sol[..., 0]


def shoot(model: PopulationCRNN, pairs: ShootingPairs, substeps: int = 4, graded: int = 6,
          newton: int = 10) -> torch.Tensor:
    """Integrate every candidate from every measured ``c_j`` over its ``Δt_j``.

    Parameters
    ----------
    model : PopulationCRNN
        ``P`` candidates.
    pairs : ShootingPairs
        ``N`` intervals.
    substeps : int, default 4
        Equal parts of an interval (:meth:`ShootingPairs.steps`).
    graded : int, default 6
        Extra steps grading the start of every interval (backward Euler on the ``graded``
        smallest; SDIRK2 on the rest).
    newton : int, default 10
        Most Newton iterations per stage before the differentiable one.

    Returns
    -------
    torch.Tensor
        ``(P, N, n_s)`` predicted ``c_{j+1}``.
    """
    y = pairs.start[None].expand(model.population, -1, -1)
    steps = pairs.steps(substeps, graded)
    for i, h in enumerate(steps):
        if i < graded:  # the small graded steps: backward Euler (its base stays positive)
            y = _stage(model, y, h, pairs.floor, newton)
            continue
        y1 = _stage(model, y, GAMMA * h, pairs.floor, newton)
        f1, _ = population_rhs(model, y1, pairs.floor, jacobian=False)
        base = y + ((1.0 - GAMMA) * h)[None, :, None] * f1
        y = _stage(model, base, GAMMA * h, pairs.floor, newton, start=y1)
    return y


@dataclass
class ShootingResult:
    """What :func:`propose_by_shooting` tried and found.

    Attributes
    ----------
    accepted : Mechanism or None
        The first rounded candidate ``accept`` took, else ``None``.
    tried : list of Mechanism
        Every distinct rounded candidate handed to ``accept``, in order.
    epochs : int
        Adam steps made.
    restarts : int
        Candidates started again after a rejected structure.
    seconds : float
        Wall time.
    losses : list of float
        Best candidate loss at each check.
    """

    accepted: Mechanism | None = None
    tried: list[Mechanism] = field(default_factory=list)
    epochs: int = 0
    restarts: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        """Return a JSON-ready dict (``accepted``, ``tried``, epochs, restarts, seconds).

        Returns
        -------
        dict
            The summary.
        """
        return {"accepted": self.accepted is not None, "tried": len(self.tried),
                "epochs": self.epochs, "restarts": self.restarts, "seconds": self.seconds}


@dataclass
class ShootingSettings:
    """Settings of :func:`propose_by_shooting` (defaults measured on the bundled examples).

    Parameters
    ----------
    population : int
        Candidates trained together.
    batch : int
        Intervals per Adam step (a random subset; the same for every candidate).
    learning_rate : float
        Adam step of the stoichiometry and orders.
    rate_learning_rate : float
        Adam step of the log rate constants (they must travel to ``ln k`` ~ 25).
    regularisation : float
        λ of the L1 + L2 penalty on the stoichiometry and orders.
    epsilon : float
        Integer threshold of eq. (3.4).
    check_every : int
        Steps between freezing checks.
    plateau : float
        Relative improvement of a window's mean loss below which a candidate is on a plateau.
    integer_weight : float
        Weight of the integer attraction ``mean sin²(π v)`` of the free stoichiometry and
        orders, ramped up linearly over ``integer_ramp`` steps of a candidate's life: the
        shooting loss alone is content with fractional rows that round to nonsense.
    integer_ramp : int
        Steps over which the integer attraction reaches its weight.
    substeps, graded, newton : int
        Integrator settings (:func:`shoot`).
    """

    population: int = 4
    batch: int = 64
    learning_rate: float = 2e-2
    rate_learning_rate: float = 0.1
    regularisation: float = 1e-5
    epsilon: float = 0.05
    check_every: int = 100
    plateau: float = 2e-2
    integer_weight: float = 1e-4
    integer_ramp: int = 1000
    substeps: int = 2
    graded: int = 4
    newton: int = 8


def _seed_model(model: PopulationCRNN, seeds: list[Mechanism]) -> None:
    """Load the structures and rates of ``seeds`` into the first candidates."""
    with torch.no_grad():
        for p, mech in enumerate(seeds[:model.population]):
            rows = min(mech.n_reactions, model.n_reactions)
            model.V[p, :rows] = torch.as_tensor(mech.V[:rows], dtype=model.V.dtype)
            kf = np.asarray(mech.kf, float)[:rows]
            model.lf[p, :rows] = torch.as_tensor(np.log(np.maximum(kf, 1e-12)))
            if model.lr is not None:
                kr = np.asarray(mech.kr, float)[:rows]
                model.lr[p, :rows] = torch.as_tensor(np.log(np.maximum(kr, 1e-12)))
            if model.orders is not None and mech.orders is not None:
                model.orders[p, :rows] = torch.as_tensor(mech.orders[:rows],
                                                         dtype=model.V.dtype)


def rounded_mechanism(model: PopulationCRNN, p: int, species: tuple[str, ...],
                      ) -> Mechanism | None:
    """Return candidate ``p`` with every row rounded, its rates ``exp(l)``; ``None`` if empty.

    Parameters
    ----------
    model : PopulationCRNN
        The population.
    p : int
        The candidate.
    species : tuple of str
        Names of the columns.

    Returns
    -------
    Mechanism or None
        Rows that round to zero are dropped; ``None`` when none is left or the rows do not
        form a valid mechanism.
    """
    V = np.round(model.V[p].detach().numpy())
    orders = (None if model.orders is None
              else np.round(torch.relu(model.orders[p]).detach().numpy()))
    kf = np.exp(np.clip(model.lf[p].detach().numpy(), -60, 60))
    kr = (np.zeros_like(kf) if model.lr is None
          else np.exp(np.clip(model.lr[p].detach().numpy(), -60, 60)))
    keep = np.any(V != 0, axis=1)
    if orders is not None:
        keep &= np.all(orders + V >= 0, axis=1)
    if not keep.any():
        return None
    try:
        return Mechanism(species, V[keep], kf[keep], kr[keep],
                         None if orders is None else orders[keep])
    except (NetworkError, ParameterError):
        return None


def _key(mech: Mechanism) -> tuple:
    """Return a hashable key of a rounded structure (its rows, sorted)."""
    o = mech.orders if mech.orders is not None else np.zeros_like(mech.V)
    rows = sorted(tuple(np.concatenate([v, a]).tolist()) for v, a in zip(mech.V, o))
    return tuple(rows)


class _Trainer:
    """Adam on the shooting loss with partial-parameter freezing, for one population."""

    def __init__(self, model: PopulationCRNN, pairs: ShootingPairs, cfg: ShootingSettings,
                 gen: torch.Generator):
        self.model, self.pairs, self.cfg, self.gen = model, pairs, cfg, gen
        P, R, S = model.population, model.n_reactions, model.n_species
        rows = [model.V] + ([model.orders] if model.orders is not None else [])
        rates = [q for q in (model.lf, model.lr) if q is not None]
        self.opt = torch.optim.Adam([{"params": rows, "lr": cfg.learning_rate},
                                     {"params": rates, "lr": cfg.rate_learning_rate}])
        self.frozen = np.zeros((P, R), bool)
        self.V = torch.zeros(P, R, S, dtype=model.V.dtype)
        self.orders = torch.zeros(P, R, S, dtype=model.V.dtype)
        self.window = np.zeros(P)
        self.prev = np.full(P, np.inf)
        self.age = np.zeros(P, int)

    def losses(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Return each candidate's loss on the intervals ``idx`` (all: ``None``)."""
        pairs = self.pairs if idx is None else self.pairs.subset(idx)
        c = self.cfg
        pred = shoot(self.model, pairs, c.substeps, c.graded, c.newton)
        r = (pred - pairs.end[None]) * pairs.weights[None]
        r = torch.nan_to_num(r, nan=1e3, posinf=1e3, neginf=-1e3)
        reg, attract = 0.0, 0.0
        ramp = torch.as_tensor(np.minimum(1.0, self.age / c.integer_ramp))
        for q in (self.model.V, self.model.orders):
            if q is not None:
                flat = q.reshape(q.shape[0], -1)
                reg = reg + flat.abs().sum(1) + (flat * flat).sum(1)
                attract = attract + torch.sin(math.pi * flat).pow(2).mean(1)
        return ((r * r).mean(dim=(1, 2)) + c.regularisation * reg
                + c.integer_weight * ramp * attract)

    def step(self) -> np.ndarray:
        """Take one Adam step on a random batch; hold frozen rows; return the losses."""
        n = self.pairs.n_pairs
        idx = torch.randperm(n, generator=self.gen)[:min(self.cfg.batch, n)]
        self.opt.zero_grad(set_to_none=True)
        loss = self.losses(idx)
        loss.sum().backward()
        self.opt.step()
        self.hold()
        out = loss.detach().numpy()
        self.window += out
        self.age += 1
        return out

    def hold(self) -> None:
        """Put the frozen rows back."""
        mask = torch.as_tensor(self.frozen)
        if mask.any():
            with torch.no_grad():
                self.model.V[mask] = self.V[mask]
                if self.model.orders is not None:
                    self.model.orders[mask] = self.orders[mask]

    def freeze(self, p: int) -> bool:
        """Freeze candidate ``p``'s rows that reached integers; return whether all are."""
        m = self.model
        V = m.V[p].detach().numpy()
        o = None if m.orders is None else torch.relu(m.orders[p]).detach().numpy()
        status = freezing.row_status(V, o, self.frozen[p], self.cfg.epsilon)
        for j, st in enumerate(status):
            if st == freezing.FREEZE and not self.frozen[p, j]:
                self.frozen[p, j] = True
                self.V[p, j] = torch.round(m.V[p, j].detach())
                if o is not None:
                    self.orders[p, j] = torch.round(torch.relu(m.orders[p, j].detach()))
        return bool(self.frozen[p].all())

    def on_plateau(self, p: int) -> bool:
        """Say whether candidate ``p``'s last window improved by less than ``plateau``."""
        cur = self.window[p] / self.cfg.check_every
        plateau = self.age[p] >= 3 * self.cfg.check_every and not (
            cur < self.prev[p] * (1.0 - self.cfg.plateau))
        self.prev[p] = min(self.prev[p], cur)
        self.window[p] = 0.0
        return plateau

    def restart(self, p: int) -> None:
        """Start candidate ``p`` again from a random draw; clear its Adam moments."""
        self.model.redraw_member(p)
        self.frozen[p] = False
        self.prev[p], self.window[p], self.age[p] = np.inf, 0.0, 0
        for q in self.model.parameters():
            st = self.opt.state.get(q)
            if st:
                for key in ("exp_avg", "exp_avg_sq"):
                    st[key][p] = 0.0


def propose_by_shooting(data: ReactionData, n_reactions: int, *,
                        accept: Callable[[Mechanism], bool], deadline: float = math.inf,
                        catalytic: bool = False, seeds: list[Mechanism] | None = None,
                        seed: int = 1, settings: ShootingSettings | None = None,
                        max_epochs: int = 100_000) -> ShootingResult:
    """Train a CRNN population through the integrator on ``data`` until a structure is accepted.

    At every check (``check_every`` steps) each candidate freezes the rows that reached an
    integer; a candidate with every row frozen, or on a plateau, is rounded whole
    (:func:`rounded_mechanism`) and handed to ``accept`` (each distinct structure once). A
    rejected candidate on a plateau is started again.

    Parameters
    ----------
    data : ReactionData
        Concentrations ``(n, n_t, n_s)`` (no temperatures; derivatives are not used).
    n_reactions : int
        Rows per candidate (reversible pairs count as one in V form).
    accept : callable
        ``accept(mechanism) -> bool``: the final judge (e.g. a trajectory fit).
    deadline : float, default inf
        ``time.perf_counter()`` time at which to stop.
    catalytic : bool, default False
        Catalytic form (orders learned separately; irreversible rows).
    seeds : list of Mechanism or None, optional
        Structures (and rates) loaded into the first candidates, e.g. other proposals.
    seed : int, default 1
        Seeds the draws and batches.
    settings : ShootingSettings or None, optional
        Training settings (default :class:`ShootingSettings`).
    max_epochs : int, default 100000
        Most Adam steps.

    Returns
    -------
    ShootingResult
        The accepted structure (or ``None``) and what was tried.

    Raises
    ------
    ParameterError
        For data with temperatures, or ``n_reactions`` < 1.
    """
    t0 = time.perf_counter()
    if data.temperatures is not None:
        raise ParameterError("the shooting proposal does not learn Arrhenius parameters; "
                             "these data have temperatures")
    if n_reactions < 1:
        raise ParameterError(f"n_reactions must be ≥ 1, got {n_reactions!r}")
    cfg = settings or ShootingSettings()
    gen = torch.Generator().manual_seed(seed)
    model = PopulationCRNN(cfg.population, n_reactions, len(data.species), catalytic=catalytic,
                           generator=gen)
    _seed_model(model, list(seeds or []))
    trainer = _Trainer(model, ShootingPairs.from_data(data), cfg, gen)
    result = ShootingResult()
    seen: set = set()
    while result.epochs < max_epochs and time.perf_counter() < deadline:
        for _ in range(cfg.check_every):
            last = trainer.step()
        result.epochs += cfg.check_every
        result.losses.append(float(np.min(last)))
        for p in range(model.population):
            done = trainer.freeze(p)
            if not (trainer.on_plateau(p) or done):
                continue
            mech = rounded_mechanism(model, p, tuple(data.species))
            if mech is not None and _key(mech) not in seen:
                seen.add(_key(mech))
                result.tried.append(mech)
                if accept(mech):
                    result.accepted = mech
                    break
            trainer.restart(p)
            result.restarts += 1
        if result.accepted is not None:
            break
    result.seconds = time.perf_counter() - t0
    return result
