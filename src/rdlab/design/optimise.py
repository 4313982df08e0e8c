"""The optimisation loop of an inverse-design experiment (paper §2, appendix D).

:func:`optimise` builds the model of a :class:`~rdlab.design.config.DesignConfig` — the dense
network's parameters θΨ, the generator G(z) (θG) and, for the information loss, the encoder
E — and minimises the configured loss with Adam:

* each step draws ``z`` (and the noisy flow fields), generates X0 = G(z), rolls the model
  out for the stage's horizon T (:func:`~rdlab.design.dynamics.rollout`, or
  :func:`~rdlab.design.compiled_rollout.compiled_rollout` with ``model.engine``
  ``compiled``), evaluates the loss, clips the global gradient norm (or each tensor's),
  steps Adam and projects θΨ onto its constraints;
* with a ``hold`` loss term, on the steps it is due the roll-out is continued past the
  window to a drawn time (:func:`hold_extension`: warm without gradient, the last steps
  differentiable), its draws taken from the same seeded generator, so a resumed run stays
  the same bit for bit;
* the learning rate is halved at fixed steps (``halve_at``) and on a loss plateau, never
  below ``min_lr_ratio``·lr (torch's ``MultiStepLR`` and ``ReduceLROnPlateau``); a stage ends
  early when the loss has not improved for ``early_stop_patience`` steps;
* stages run horizons in turn, each with a fresh optimiser and schedules, carrying the
  parameters forward ("incremental optimisation", appendix D.3);
* a checkpoint (every model, optimiser, schedule, random state and the history length) is
  written atomically every ``checkpoint_every`` steps, at the end of each stage and on
  Ctrl-C between steps (Ctrl-C inside a step, or ``kill -9``, falls back to the last
  checkpoint); running the same command again resumes from it, and the result is the same
  as an uninterrupted run, bit for bit on the CPU. The history (one JSON line per step) is
  appended as it goes and trimmed to the checkpoint on resume.
* nothing is written before everything is checked (:func:`resume_point`); the run folder's
  files are described in :mod:`rdlab.design.run_files`.
* each stage runs on the shared :class:`~rdlab.training_loop.Loop` (its early stopping,
  time budget and JSON-lines history, as the CNN's training).

Everything is seeded from the config's ``seed``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from rdlab.atomic import atomic_torch_save, atomic_write_text
from rdlab.chemistry.dense import dense_gs_network, dense_network, kitchen_sink_network
from rdlab.design.config import SECTIONS, DesignConfig, bundled_target, normalised
from rdlab.design.dynamics import noisy_flow, rollout
from rdlab.design.generator import Encoder, Generator, sample_z
from rdlab.design.objectives import CompositeLoss, ContinuedRollout, load_target, make_term
from rdlab.design.parameters import DesignParameters
from rdlab.design.run_files import (
    CHECKPOINT,
    CONFIG,
    HISTORY,
    MODEL,
    START_AGAIN,
    clear_report,
    clear_run,
    read_history_lines,
    read_torch,
    tidy,
)
from rdlab.design.trajectory import Trajectory
from rdlab.errors import DataError, ParameterError
from rdlab.system import FlowNoise
from rdlab.torch_determinism import deterministic_algorithms
from rdlab.training_loop import (
    STOP_PATIENCE,
    STOP_TIME_BUDGET,
    EarlyStopping,
    History,
    Loop,
    TimeBudget,
)

__all__ = ["DesignModel", "build_model", "clip_gradients", "hold_extension", "load_model",
           "optimise", "read_history", "resume_point", "simulate_design"]


@dataclass(eq=False)
class DesignModel:
    """Everything that is optimised, plus the loss: θΨ, G, optional E.

    Parameters
    ----------
    config : DesignConfig
        The experiment.
    params : DesignParameters
        θΨ, the network's parameters.
    generator : Generator
        G(z), the initial conditions' generator (θG).
    encoder : Encoder or None
        E, for the information loss.
    loss : CompositeLoss
        The configured loss.
    noise : FlowNoise, optional
        The noisy flow, if configured.
    target : numpy.ndarray, optional
        The target image as the loss sees it.
    """

    config: DesignConfig
    params: DesignParameters
    generator: Generator
    encoder: Encoder | None
    loss: CompositeLoss
    noise: FlowNoise | None = None
    target: np.ndarray | None = field(default=None, repr=False)

    def modules(self) -> dict[str, torch.nn.Module]:
        """Return θΨ, G (and E) by name (``params``, ``generator``, ``encoder``)."""
        out: dict[str, torch.nn.Module] = {"params": self.params, "generator": self.generator}
        if self.encoder is not None:
            out["encoder"] = self.encoder
        return out

    def trainable(self) -> list[torch.nn.Parameter]:
        """Return the parameters that require gradients."""
        return [p for m in self.modules().values() for p in m.parameters() if p.requires_grad]

    def state_dict(self) -> dict:
        """Return each module's state dict, by name."""
        return {k: m.state_dict() for k, m in self.modules().items()}

    def load_state_dict(self, state: dict) -> None:
        """Load what :meth:`state_dict` returned."""
        for k, m in self.modules().items():
            m.load_state_dict(state[k])

    def to(self, device: str | torch.device) -> DesignModel:
        """Move θΨ, G and E (in place) to ``device``; return ``self``."""
        for m in self.modules().values():
            m.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """The device of θΨ."""
        return self.params.device


def _network(config: DesignConfig):
    return {"kitchen-sink": kitchen_sink_network, "dense-gs": dense_gs_network,
            "dense": dense_network}[config.model.network](config.model.species)


def build_model(config: DesignConfig, device: str | torch.device | None = None
                ) -> DesignModel:
    """Build θΨ at the paper's initialisation, a fresh G (and E), and the loss, all seeded.

    Parameters
    ----------
    config : DesignConfig
        The experiment.
    device : str or torch.device, optional
        Where the model lives (default: the config's). The initial values do not depend on
        the device.

    Returns
    -------
    DesignModel
        The model.

    Raises
    ------
    ParameterError
        A target image on a domain that is not square.
    """
    torch.manual_seed(config.seed)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    network = _network(config)
    params = DesignParameters.initial(network, config.seed, dtype, fixed=config.model.fixed,
                                      flow=config.model.flow)
    if config.initial is not None:
        params.override_(config.initial)
    ny, nx = config.model.size
    generator = Generator(config.model.species, config.patch_size, config.generator.z_bits,
                          pad_to=None if config.patch_fills_domain else (ny, nx),
                          learn_background=config.generator.background)
    generator.to(dtype)
    encoder, target = None, None
    terms = []
    for kind, opts in config.loss.items():
        opts = dict(opts or {})
        if kind == "target":
            image = str(opts.pop("image", "bundled:portrait"))
            path = (bundled_target(image.split(":", 1)[1]) if image.startswith("bundled:")
                    else config.resolve_path(image))
            if (ny, nx) != (ny, ny):
                raise ParameterError(f"a target image needs a square domain, got {ny}×{nx}")
            target = load_target(path, ny)
            opts["target"] = target
        if kind == "hold":
            if target is None:
                raise ParameterError("loss: the hold term keeps the target term's image; "
                                     "list a target term before it")
            opts["target"] = target
            opts.setdefault("species", (config.loss.get("target") or {}).get("species", 1))
        if kind == "information":
            encoder = Encoder(config.model.species, min(config.model.size),
                              config.generator.z_bits).to(dtype)
            opts["encoder"] = encoder
        if kind == "information_hold":
            if encoder is None:
                raise ParameterError("loss: the information_hold term reads the bits with "
                                     "the information term's encoder; list an information "
                                     "term before it")
            opts["encoder"] = encoder
        terms.append(make_term(kind, **opts))
    noise = None
    if config.model.flow_noise is not None:
        noise = FlowNoise(float(config.model.flow_noise["amplitude"]),
                          float(config.model.flow_noise.get("sigma", 0.0)))
    model = DesignModel(config, params, generator, encoder, CompositeLoss(terms), noise, target)
    return model.to(config.device if device is None else device)


def simulate_design(model: DesignModel, n_steps: int, *, z: torch.Tensor | None = None,
                    dt: float | None = None, batch: int | None = None,
                    rng: torch.Generator | None = None, X0: torch.Tensor | None = None,
                    params: DesignParameters | None = None) -> Trajectory:
    """Roll the model out for ``n_steps`` steps from X0 = G(z) (or ``X0``).

    The flow is noisy if configured. Differentiable when grad is enabled. The roll-out
    runs on the config's engine (:attr:`~rdlab.design.config.DesignConfig.rollout_engine`;
    the compiled one only for parameters on the CPU).

    Parameters
    ----------
    model : DesignModel
        The model.
    n_steps : int
        Euler steps.
    z : torch.Tensor, optional
        Latent codes of G (default: drawn from ``rng``, ``batch`` of them).
    dt : float, optional
        Time step (default: the config's).
    batch : int, optional
        Number of codes drawn when ``z`` is not given (default: the config's).
    rng : torch.Generator, optional
        Draws ``z`` and the noisy flow (default: seeded with the config's ``seed``).
    X0 : torch.Tensor, optional
        Initial state ``(batch, species, y, x)`` instead of G(z).
    params : DesignParameters, optional
        θΨ to use instead of the model's.

    Returns
    -------
    Trajectory
        The roll-out (its ``z`` set).
    """
    cfg = model.config
    rng = rng if rng is not None else torch.Generator(model.device).manual_seed(cfg.seed)
    params = params if params is not None else model.params
    dt = cfg.model.dt if dt is None else dt
    if X0 is None:
        if z is None:
            z = sample_z(batch or cfg.generator.batch, cfg.generator.z_bits, rng)
        X0 = model.generator(z.to(device=params.device, dtype=params.dtype))
    fields = None
    if model.noise is not None:
        draw = noisy_flow(params, model.noise, X0.shape, rng)
        fields = [draw(step) for step in range(n_steps)]
    run = rollout
    if cfg.rollout_engine == "compiled" and params.device.type == "cpu":
        from rdlab.design.compiled_rollout import compiled_rollout as run
    traj = run(params, X0, n_steps, dt, flow_fields=fields, clip=cfg.model.clip)
    traj.z = z
    return traj


def _hold_term(loss: CompositeLoss) -> ContinuedRollout | None:
    """Return the loss's term read past the window (hold or information_hold), or None."""
    return next((t for t in loss.terms if isinstance(t, ContinuedRollout)), None)


def hold_extension(model: DesignModel, traj: Trajectory, hold: ContinuedRollout,
                   rng: torch.Generator) -> Trajectory:
    """Continue a window's roll-out to a drawn time for a term read past the window.

    For :class:`~rdlab.design.objectives.Hold` and
    :class:`~rdlab.design.objectives.InformationHold`
    (:class:`~rdlab.design.objectives.ContinuedRollout`).

    ``t_s`` is drawn with ``rng`` (:meth:`ContinuedRollout.draw_time`); the steps up to
    ``t_s − grad_steps`` run without gradient from ``X_T`` detached, the last
    ``grad_steps`` with gradient; a continuation of at most ``grad_steps`` steps is
    differentiable from ``X_T`` itself.

    Parameters
    ----------
    model : DesignModel
        The model (its engine, noise and θΨ).
    traj : Trajectory
        The window's roll-out, ``T`` steps.
    hold : ContinuedRollout
        The term (its ``factor`` and ``grad_steps``).
    rng : torch.Generator
        The optimisation's source of draws (``t_s`` and any noisy flow).

    Returns
    -------
    Trajectory
        The differentiable last segment, ending at ``t_s``.
    """
    T = traj.n_steps
    extra = hold.draw_time(T, rng) - T
    X = traj.states[-1]
    warm = extra - hold.grad_steps
    if warm > 0:
        with torch.no_grad():
            X = simulate_design(model, warm, X0=X.detach(), rng=rng).states[-1]
        extra = hold.grad_steps
    return simulate_design(model, extra, X0=X, rng=rng)


# ---------------------------------------------------------------------------- checkpoints
@dataclass
class _StageState:
    stage: int = 0
    step: int = 0  # steps done in this stage
    total_steps: int = 0
    best: float = math.inf
    since_best: int = 0
    history_lines: int = 0
    finished: bool = False


CHECKPOINT_KEYS = ("config", "model", "rng", "torch_rng", "state", "optimiser")


def config_dump(config: DesignConfig) -> dict:
    """Return the config as a run folder keeps it (``config.yaml``, checkpoints, ``model.pt``).

    Parameters
    ----------
    config : DesignConfig
        The experiment.

    Returns
    -------
    dict
        ``config.to_dict()`` without ``source``.
    """
    return {k: v for k, v in config.to_dict().items() if k != "source"}


def _make_optimiser(model: DesignModel, stage: int):
    cfg = model.config.optimiser
    lr = cfg.stage_lr(stage)
    # fused: one kernel for all parameters instead of ~10 ops per tensor (the generator has
    # about 2 M parameters; on 1 CPU thread 9 ms a step instead of 36 ms)
    groups = model.trainable()
    if cfg.theta_lr_scale != 1.0:  # θΨ in a group of its own (the first stays at lr)
        theta = {id(p) for p in model.params.parameters()}
        groups = [{"params": [p for p in groups if id(p) not in theta]},
                  {"params": [p for p in groups if id(p) in theta],
                   "lr": lr * cfg.theta_lr_scale}]
    opt = torch.optim.Adam(groups, lr=lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                           fused=True)
    steps = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.stage_halvings(stage),
                                                 gamma=0.5)
    plateau = None
    if cfg.plateau_patience is not None:
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=cfg.plateau_patience, threshold=1e-5,
            threshold_mode="abs", cooldown=50,
            min_lr=[cfg.min_lr_ratio * g["initial_lr"] for g in opt.param_groups])
    return opt, steps, plateau


def clip_gradients(parameters: list[torch.nn.Parameter], max_norm: float,
                   per_tensor: bool = False) -> None:
    """Scale the gradients (in place) so that their norm is at most ``max_norm``.

    Parameters
    ----------
    parameters : list of torch.nn.Parameter
        Tensors whose ``.grad`` is clipped (those without one are skipped).
    max_norm : float
        The largest norm kept.
    per_tensor : bool, default False
        Clip each tensor's gradient on its own (Keras's ``clipnorm`` under TF 2.5, as in
        the authors' code) instead of all of them together by their global norm.
    """
    if not per_tensor:
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        return
    for p in parameters:
        torch.nn.utils.clip_grad_norm_(p, max_norm)


def _floor_lr(opt, ratio: float) -> None:
    """Keep each group's LR at ``ratio`` times its stage's starting LR or above."""
    for g in opt.param_groups:
        g["lr"] = max(g["lr"], ratio * g["initial_lr"])


def _flat(config: dict) -> dict:
    """Return a config dump with its sections spelled out as dotted keys (``optimiser.lr``)."""
    out = {}
    for k, v in config.items():
        if k in SECTIONS and isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _differences(saved: dict, wanted: dict) -> str:
    saved, wanted = _flat(saved), _flat(wanted)
    keys = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    return "; ".join(f"{k}: {saved.get(k)!r} there, {wanted.get(k)!r} here" for k in keys[:4])


def resume_point(config: DesignConfig, out: str | Path) -> dict | None:
    """Return what :func:`optimise` would resume in ``out``, checked without writing.

    Parameters
    ----------
    config : DesignConfig
        The experiment.
    out : str or pathlib.Path
        The run folder.

    Returns
    -------
    dict or None
        The checkpoint (read whole, written by this config, its model and history intact),
        or ``None`` when the run starts from the beginning (no folder, an empty one, or one
        whose run was killed before its first checkpoint under this same config).

    Raises
    ------
    DataError
        A damaged checkpoint or history.
    ParameterError
        The folder holds another config's run.
    """
    out = Path(out)
    wanted = _without_device(config_dump(config))
    ck = out / CHECKPOINT
    if ck.exists():
        saved = read_torch(ck, "design checkpoint", CHECKPOINT_KEYS)
        there = _without_device(saved["config"] if isinstance(saved["config"], dict) else {})
        if there != wanted:
            raise ParameterError(
                f"{str(ck)!r} was written by a different config ({_differences(there, wanted)}"
                f"); rerun with that folder's settings to resume it, or {START_AGAIN}")
        try:
            state = _StageState(**saved["state"])
            model = build_model(config, "cpu")
            model.load_state_dict(saved["model"])
        except (TypeError, KeyError, RuntimeError) as err:
            raise DataError(f"{str(ck)!r} does not hold this config's model and state "
                            f"({type(err).__name__}); {START_AGAIN}") from None
        if saved.get("target_digest", _target_digest(model)) != _target_digest(model):
            raise ParameterError(f"the target image of {str(out)!r} has changed since its run "
                                 f"started; restore it to resume, or {START_AGAIN}")
        read_history_lines(out / HISTORY, state.history_lines)
        return saved
    cfg_file = out / CONFIG
    if cfg_file.exists():
        try:
            there = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            there = None
        if not isinstance(there, dict) or _without_device(there) != wanted:
            diff = _differences(_without_device(there), wanted) if isinstance(there, dict) \
                else "unreadable"
            raise ParameterError(f"{str(out)!r} holds the config of another run ({diff}) "
                                 f"and no checkpoint; {START_AGAIN}")
    return None


def optimise(config: DesignConfig, out: str | Path, *, progress: bool = True,
             resume: bool = True, time_budget_s: float | None = None) -> DesignModel:
    """Run (or resume) the experiment into folder ``out``; return the optimised model.

    Writes ``config.yaml`` (when the run starts; a resumed run keeps it), ``history.jsonl``
    (one line per step: stage, horizon, loss, each term, lr, seconds), ``checkpoint.pt``
    (resumable state) and ``model.pt`` (final θΨ/G/E state dicts and the config).

    Everything is checked before anything is written: the model (target image, loss,
    ``initial``, ``init_from``) and, when resuming, the checkpoint (readable, written by
    this same config, its history complete). The report of an earlier call is removed
    before the model moves on (it would describe another model). The caller holds the
    folder's lock (``rdlab design`` does, :func:`rdlab.output_lock.hold`).

    Parameters
    ----------
    config : DesignConfig
        The experiment.
    out : str or pathlib.Path
        The run folder.
    progress : bool, default True
        Show a tqdm bar over the steps.
    resume : bool, default True
        Resume the folder's run; ``False`` removes the folder's earlier run (and report)
        and starts again in place.
    time_budget_s : float, optional
        Seconds (default: the config's ``optimiser.time_budget_s``; ``None`` for no limit)
        of this call: the run stops cleanly after the step that passes it, with a
        checkpoint to resume from.

    Returns
    -------
    DesignModel
        The optimised model, on the CPU.

    Raises
    ------
    ParameterError
        A folder of another config, or a loss that becomes non-finite.
    DataError
        A damaged checkpoint or history.
    """
    out = Path(out)
    model = build_model(config)
    saved = resume_point(config, out) if resume else None
    if saved is None and config.init_from is not None:
        start_from(model, Path(config.resolve_path(config.init_from)))
    # -- checked; from here on the folder changes
    run = _Optimisation(model, out, time_budget_s, progress)
    with deterministic_algorithms(config.deterministic):
        run.start(saved)
        try:
            if not run.run_stages():
                return model.to("cpu")  # out of time: the checkpoint is there to resume from
        finally:
            run.close()
    model.to("cpu")
    if not (saved is not None and saved["state"]["finished"] and (out / MODEL).is_file()):
        atomic_torch_save({"config": run.cfg_dump, "model": model.state_dict(),
                           "parameters": model.params.describe()}, out / MODEL)
    return model


@dataclass(eq=False)
class _Optimisation:
    """The design job on the shared :class:`~rdlab.training_loop.Loop`, stage by stage."""

    model: DesignModel
    out: Path
    time_budget_s: float | None
    progress: bool = True
    cfg_dump: dict = field(init=False)
    rng: torch.Generator = field(init=False)
    state: _StageState = field(default_factory=_StageState)
    history: History = field(init=False)
    budget: TimeBudget = field(init=False)
    early: EarlyStopping = field(init=False)
    opt_state: dict | None = None
    schedules: tuple = (None, None, None)  # Adam, MultiStepLR, ReduceLROnPlateau
    in_step: bool = False  # True while a step has changed the model but not yet the state
    bar: Any = None

    def __post_init__(self) -> None:
        config = self.model.config
        self.cfg_dump = config_dump(config)
        self.rng = torch.Generator(self.model.device).manual_seed(config.seed)
        self.history = History(self.out / HISTORY)
        budget = (self.time_budget_s if self.time_budget_s is not None
                  else config.optimiser.time_budget_s)
        self.budget = TimeBudget(budget)

    def start(self, saved: dict | None) -> None:
        """Resume from the checkpoint ``saved``, or start the folder afresh."""
        out, config = self.out, self.model.config
        if saved is not None:
            tidy(out)
            self.model.load_state_dict(saved["model"])
            if saved["config"].get("device", "cpu") == config.device:
                self.rng.set_state(saved["rng"].cpu())  # on another device draws start afresh
            torch.set_rng_state(saved["torch_rng"])
            self.state = _StageState(**saved["state"])
            self.opt_state = saved["optimiser"]
            if not self.state.finished:
                clear_report(out)
            self.history.resume(read_history_lines(out / HISTORY, self.state.history_lines))
        else:
            out.mkdir(parents=True, exist_ok=True)
            tidy(out)
            clear_run(out)
            atomic_write_text(out / CONFIG, yaml.safe_dump(self.cfg_dump, sort_keys=False))
        opt = config.optimiser
        total = sum(opt.stage_steps(i) for i in range(len(opt.stages)))
        self.bar = tqdm(total=total, initial=self.state.total_steps, disable=not self.progress,
                        desc=f"design {config.name}", unit="step", mininterval=1.0)

    def run_stages(self) -> bool:
        """Run the remaining stages; return ``False`` when the time budget stopped them."""
        stages = self.model.config.optimiser.stages
        try:
            while not self.state.finished and self.state.stage < len(stages):
                if self._run_stage() == STOP_TIME_BUDGET:
                    return False
                stage = self.state.stage
                self.state = _StageState(stage=stage + 1, total_steps=self.state.total_steps,
                                         history_lines=self.state.history_lines,
                                         finished=stage + 1 >= len(stages))
                self.schedules = (None, None, None)  # the next stage starts a fresh optimiser
                self._checkpoint()
        except (KeyboardInterrupt, SystemExit):
            # Ctrl-C, or SIGTERM (which the rdlab command turns into SystemExit): a
            # checkpoint at a step boundary only: mid-step the model has moved on and the
            # state not yet (then the last periodic checkpoint stands)
            if not self.in_step:
                self._checkpoint()
            raise
        return True

    def _run_stage(self) -> str:
        """Run the current stage from its step (fresh or resumed); return the stop reason."""
        opt_cfg, state = self.model.config.optimiser, self.state
        self.schedules = _make_optimiser(self.model, state.stage)
        opt, steps_sched, plateau = self.schedules
        if self.opt_state is not None:
            opt.load_state_dict(self.opt_state["adam"])
            steps_sched.load_state_dict(self.opt_state["steps"])
            if plateau is not None and self.opt_state.get("plateau") is not None:
                plateau.load_state_dict(self.opt_state["plateau"])
            self.opt_state = None
        self.early = EarlyStopping("loss", "min", opt_cfg.early_stop_patience, 1e-5,
                                   best=state.best, since_best=state.since_best)
        loop = Loop(self._step, opt_cfg.stage_steps(state.stage), self.history, self.early,
                    self.budget, self._end_step)
        return loop.run(state.step)

    def _step(self, index: int) -> dict:
        """Run step ``index + 1`` of the current stage; return its history record."""
        model, cfg, stage = self.model, self.model.config.optimiser, self.state.stage
        opt, steps_sched, plateau = self.schedules
        T = cfg.stages[stage]
        opt.zero_grad(set_to_none=True)
        traj = simulate_design(model, T, rng=self.rng)
        hold = _hold_term(model.loss)
        if hold is not None and hold.weight > 0 and hold.due(index):
            traj.extension = hold_extension(model, traj, hold, self.rng)
        total, values = model.loss(traj, self.rng)
        if not torch.isfinite(total):
            raise ParameterError(f"the loss became {float(total)} at stage {stage} (T = {T}) "
                                 f"step {index}: lower lr or raise the step-size weight")
        total.backward()
        clip_gradients(model.trainable(), cfg.clip_norm, cfg.clip_per_tensor)
        lr = opt.param_groups[0]["lr"]
        self.in_step = True
        opt.step()
        model.params.project_()
        model.generator.project_()  # a clamped value left outside its range gets no gradient
        steps_sched.step()
        loss_value = float(total.detach())
        if plateau is not None:
            plateau.step(loss_value)
        _floor_lr(opt, cfg.min_lr_ratio)
        return {"stage": stage, "T": T, "step": index + 1, "loss": loss_value, **values,
                "lr": lr}

    def _end_step(self, index: int, record: dict, reason: str | None) -> None:
        """Count the step in the state; checkpoint periodically and when stopping early."""
        state = self.state
        self.state = _StageState(stage=state.stage, step=index + 1,
                                 total_steps=state.total_steps + 1, best=self.early.best,
                                 since_best=self.early.since_best,
                                 history_lines=len(self.history))
        self.in_step = False
        self.bar.update(1)
        self.bar.set_postfix(T=record["T"], loss=f"{record['loss']:.4g}",
                             lr=f"{record['lr']:.1e}")
        if ((index + 1) % self.model.config.optimiser.checkpoint_every == 0
                or reason in (STOP_PATIENCE, STOP_TIME_BUDGET)):
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Write the checkpoint of the current state (atomically)."""
        _checkpoint(self.out / CHECKPOINT, self.model, self.rng, self.state,
                    *self.schedules, self.cfg_dump)

    def close(self) -> None:
        """Close the progress bar and the history file."""
        if self.bar is not None:
            self.bar.close()
        self.history.close()


def start_from(model: DesignModel, source: Path) -> None:
    """Load θΨ/G/E of an earlier run into ``model`` (``init_from``).

    Parameters
    ----------
    model : DesignModel
        The model to load into.
    source : pathlib.Path
        A finished run folder or its ``model.pt``.

    Raises
    ------
    ParameterError
        ``source`` is not a finished run, or its model does not fit this config.
    """
    path = source / MODEL if source.is_dir() else source
    if not path.is_file():
        raise ParameterError(f"init_from: {str(source)!r} is not a finished run folder or a "
                             f"model.pt file")
    saved = read_torch(path, "design model (init_from)", ("model",))
    try:
        model.load_state_dict(saved["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        raise ParameterError(f"init_from: the model in {str(path)!r} does not fit this config "
                             f"(species, network, size, patch, z_bits and loss terms must "
                             f"match): {str(err).splitlines()[0]}") from None


def _without_device(config: dict) -> dict:
    """Return a config dump in today's form, minus ``device``, ``deterministic``, ``model.engine``.

    Today's form: :func:`~rdlab.design.config.normalised` (a flat config of an older run
    reads as its sections); without ``device``, the choice of deterministic kernels and the
    roll-out engine since a run may resume on another device, kernels or engine (they
    compute the same model).
    """
    out = {k: v for k, v in normalised(config).items() if k not in ("device", "deterministic")}
    if isinstance(out.get("model"), dict):
        out["model"] = {k: v for k, v in out["model"].items() if k != "engine"}
    return out


def _checkpoint(path: Path, model: DesignModel, rng: torch.Generator, state: _StageState,
                opt, steps_sched, plateau, cfg_dump: dict) -> None:
    optimiser = None
    if opt is not None and state.step > 0:  # at step 0 a stage starts a fresh optimiser
        optimiser = {"adam": opt.state_dict(), "steps": steps_sched.state_dict(),
                     "plateau": None if plateau is None else plateau.state_dict()}
    atomic_torch_save({"config": cfg_dump, "model": model.state_dict(), "rng": rng.get_state(),
                       "torch_rng": torch.get_rng_state(), "state": state.__dict__.copy(),
                       "optimiser": optimiser, "target_digest": _target_digest(model)}, path)


def _target_digest(model: DesignModel) -> str | None:
    """Return a fingerprint of the target image as the loss sees it.

    Its file may change under the same name between a run and its resume.
    """
    if model.target is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(model.target, dtype=np.float64)).hexdigest()


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> DesignModel:
    """Return the optimised model of a run folder.

    Parameters
    ----------
    folder : str or pathlib.Path
        A finished run folder (``model.pt``), or one with a checkpoint (its latest state).
    device : str or torch.device, default "cpu"
        Where to put the model, whatever device it was optimised on.

    Returns
    -------
    DesignModel
        The model.

    Raises
    ------
    ParameterError
        The folder holds neither file.
    DataError
        The file is damaged or does not hold a model of its config.
    """
    folder = Path(folder)
    path = folder / MODEL
    if not path.is_file():
        path = folder / CHECKPOINT
    if not path.is_file():
        raise ParameterError(f"{str(folder)!r} holds no model.pt or checkpoint.pt")
    saved = read_torch(path, "design model", ("config", "model"))
    try:
        config = DesignConfig.from_dict({**saved["config"], "device": "cpu"})
        model = build_model(config, device)
        model.load_state_dict(saved["model"])
    except (TypeError, KeyError, RuntimeError) as err:
        raise DataError(f"{str(path)!r} does not hold a design model of its config "
                        f"({type(err).__name__}); {START_AGAIN}") from None
    return model


def read_history(folder: str | Path) -> list[dict]:
    """Return the history records of a run folder.

    Parameters
    ----------
    folder : str or pathlib.Path
        The run folder (its ``history.jsonl``; a last line cut off by a kill is skipped).

    Returns
    -------
    list of dict
        One record per step: stage, horizon ``T``, step, loss, each term, lr, seconds.
    """
    return read_history_lines(Path(folder) / HISTORY)
