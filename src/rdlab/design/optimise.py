"""The optimisation loop of an inverse-design experiment (paper §2, appendix D).

:func:`optimise` builds the model of a :class:`~rdlab.design.config.DesignConfig` — the dense
network's parameters θΨ, the generator G(z) (θG) and, for the information loss, the encoder
E — and minimises the configured loss with Adam:

* each step draws ``z`` (and the noisy flow fields), generates X0 = G(z), rolls the model
  out for the stage's horizon T (:func:`~rdlab.design.dynamics.rollout`), evaluates the loss,
  clips the global gradient norm, steps Adam and projects θΨ onto its constraints;
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

Everything is seeded from the config's ``seed``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from rdlab.atomic import atomic_torch_save, atomic_write_text
from rdlab.chemistry.dense import dense_gs_network, dense_network, kitchen_sink_network
from rdlab.design.config import SECTIONS, DesignConfig, bundled_target, normalised
from rdlab.design.dynamics import noisy_flow, rollout
from rdlab.design.generator import Encoder, Generator, sample_z
from rdlab.design.objectives import CompositeLoss, load_target, make_term
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

__all__ = ["DesignModel", "build_model", "load_model", "optimise", "read_history",
           "resume_point", "simulate_design"]


@dataclass(eq=False)
class DesignModel:
    """Everything that is optimised, plus the loss: θΨ, G, optional E."""

    config: DesignConfig
    params: DesignParameters
    generator: Generator
    encoder: Encoder | None
    loss: CompositeLoss
    noise: FlowNoise | None = None
    target: np.ndarray | None = field(default=None, repr=False)

    def modules(self) -> dict[str, torch.nn.Module]:
        out: dict[str, torch.nn.Module] = {"params": self.params, "generator": self.generator}
        if self.encoder is not None:
            out["encoder"] = self.encoder
        return out

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for m in self.modules().values() for p in m.parameters() if p.requires_grad]

    def state_dict(self) -> dict:
        return {k: m.state_dict() for k, m in self.modules().items()}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[k])

    def to(self, device: str | torch.device) -> DesignModel:
        """Move θΨ, G and E (in place) to ``device``; returns ``self``."""
        for m in self.modules().values():
            m.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.params.device


def _network(config: DesignConfig):
    return {"kitchen-sink": kitchen_sink_network, "dense-gs": dense_gs_network,
            "dense": dense_network}[config.model.network](config.model.species)


def build_model(config: DesignConfig, device: str | torch.device | None = None
                ) -> DesignModel:
    """θΨ at the paper's initialisation, a fresh G (and E), and the loss, all seeded; on
    ``device`` (default: the config's). The initial values do not depend on the device.
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
                          pad_to=None if (ny, nx) == (config.patch_size,) * 2 else (ny, nx))
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
        if kind == "information":
            encoder = Encoder(config.model.species, min(config.model.size),
                              config.generator.z_bits).to(dtype)
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
    """One roll-out of ``n_steps`` steps: X0 = G(z) (or ``X0``), noisy flow if configured.
    Differentiable when grad is enabled.
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
    traj = rollout(params, X0, n_steps, dt, flow_fields=fields, clip=cfg.model.clip)
    traj.z = z
    return traj


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
    """The config as a run folder keeps it (``config.yaml``, checkpoints, ``model.pt``)."""
    return {k: v for k, v in config.to_dict().items() if k != "source"}


def _make_optimiser(model: DesignModel, stage: int):
    cfg = model.config.optimiser
    lr = cfg.stage_lr(stage)
    opt = torch.optim.Adam(model.trainable(), lr=lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    steps = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.halve_at), gamma=0.5)
    plateau = None
    if cfg.plateau_patience is not None:
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=cfg.plateau_patience, threshold=1e-5,
            threshold_mode="abs", cooldown=50, min_lr=cfg.min_lr_ratio * lr)
    return opt, steps, plateau


def _floor_lr(opt, floor: float) -> None:
    for g in opt.param_groups:
        g["lr"] = max(g["lr"], floor)


def _flat(config: dict) -> dict:
    """A config dump with its sections spelled out as dotted keys (``optimiser.lr``)."""
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
    """What :func:`optimise` would resume in ``out``, checked without writing anything:
    the checkpoint (read whole, written by this config, its model and history intact),
    or ``None`` when the run starts from the beginning (no folder, an empty one, or one
    whose run was killed before its first checkpoint under this same config).

    Raises :class:`~rdlab.errors.DataError` for a damaged checkpoint or history and
    :class:`~rdlab.errors.ParameterError` when the folder holds another config's run.
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
    """Run (or resume) the experiment into folder ``out``; returns the optimised model.

    Writes ``config.yaml`` (when the run starts; a resumed run keeps it), ``history.jsonl``
    (one line per step: stage, horizon, loss, each term, lr, seconds), ``checkpoint.pt``
    (resumable state) and ``model.pt`` (final θΨ/G/E state dicts and the config).
    ``time_budget_s`` (seconds; or the config's ``optimiser.time_budget_s``) stops the run
    cleanly after the step that passes it, with a checkpoint to resume from.

    Everything is checked before anything is written: the model (target image, loss,
    ``initial``, ``init_from``) and, when resuming, the checkpoint (readable, written by
    this same config, its history complete). ``resume=False`` removes the folder's earlier
    run (and report) and starts again in place. The report of an earlier call is removed
    before the model moves on (it would describe another model). The caller holds the
    folder's lock (``rdlab design`` does, :func:`rdlab.output_lock.hold`).
    """
    out = Path(out)
    cfg_dump = config_dump(config)
    model = build_model(config)
    saved = resume_point(config, out) if resume else None
    if saved is None and config.init_from is not None:
        start_from(model, Path(config.resolve_path(config.init_from)))
    # -- checked; from here on the folder changes
    rng = torch.Generator(model.device).manual_seed(config.seed)
    state = _StageState()
    opt_state = None
    ck = out / CHECKPOINT
    if saved is not None:
        tidy(out)
        model.load_state_dict(saved["model"])
        if saved["config"].get("device", "cpu") == config.device:
            rng.set_state(saved["rng"].cpu())  # on another device the draws start afresh
        torch.set_rng_state(saved["torch_rng"])
        state = _StageState(**saved["state"])
        opt_state = saved["optimiser"]
        if not state.finished:
            clear_report(out)
        _truncate_history(out / HISTORY, state.history_lines)
    else:
        out.mkdir(parents=True, exist_ok=True)
        tidy(out)
        clear_run(out)
        atomic_write_text(out / CONFIG, yaml.safe_dump(cfg_dump, sort_keys=False))
    budget = time_budget_s if time_budget_s is not None else config.optimiser.time_budget_s
    t_start = time.perf_counter()
    total_planned = sum(config.optimiser.stage_steps(i)
                        for i in range(len(config.optimiser.stages)))
    bar = tqdm(total=total_planned, initial=state.total_steps, disable=not progress,
               desc=f"design {config.name}", unit="step", mininterval=1.0)
    opt = steps_sched = plateau = None
    in_step = False  # True while a step has changed the model but not yet the state
    try:
        while not state.finished and state.stage < len(config.optimiser.stages):
            T = config.optimiser.stages[state.stage]
            opt, steps_sched, plateau = _make_optimiser(model, state.stage)
            if opt_state is not None:
                opt.load_state_dict(opt_state["adam"])
                steps_sched.load_state_dict(opt_state["steps"])
                if plateau is not None and opt_state.get("plateau") is not None:
                    plateau.load_state_dict(opt_state["plateau"])
                opt_state = None
            floor = config.optimiser.min_lr_ratio * config.optimiser.stage_lr(state.stage)
            with (out / HISTORY).open("a") as hist:
                while state.step < config.optimiser.stage_steps(state.stage):
                    t0 = time.perf_counter()
                    opt.zero_grad(set_to_none=True)
                    traj = simulate_design(model, T, rng=rng)
                    total, values = model.loss(traj, rng)
                    if not torch.isfinite(total):
                        raise ParameterError(
                            f"the loss became {float(total)} at stage {state.stage} (T = {T}) "
                            f"step {state.step}: lower lr or raise the step-size weight")
                    total.backward()
                    torch.nn.utils.clip_grad_norm_(model.trainable(), config.optimiser.clip_norm)
                    lr = opt.param_groups[0]["lr"]
                    in_step = True
                    opt.step()
                    model.params.project_()
                    steps_sched.step()
                    loss_value = float(total.detach())
                    if plateau is not None:
                        plateau.step(loss_value)
                    _floor_lr(opt, floor)
                    line = {"stage": state.stage, "T": T, "step": state.step + 1,
                            "loss": loss_value, **values, "lr": lr,
                            "seconds": time.perf_counter() - t0}
                    hist.write(json.dumps(line) + "\n")
                    improved = loss_value < state.best - 1e-5
                    state = _StageState(
                        stage=state.stage, step=state.step + 1,
                        total_steps=state.total_steps + 1,
                        best=loss_value if improved else state.best,
                        since_best=0 if improved else state.since_best + 1,
                        history_lines=state.history_lines + 1)
                    in_step = False
                    bar.update(1)
                    bar.set_postfix(T=T, loss=f"{loss_value:.4g}", lr=f"{lr:.1e}")
                    stop_early = (config.optimiser.early_stop_patience is not None
                                  and state.since_best >= config.optimiser.early_stop_patience)
                    out_of_time = budget is not None and time.perf_counter() - t_start > budget
                    if (state.step % config.optimiser.checkpoint_every == 0 or stop_early
                            or out_of_time):
                        hist.flush()
                        _checkpoint(ck, model, rng, state, opt, steps_sched, plateau, cfg_dump)
                    if stop_early:
                        break
                    if out_of_time:
                        bar.close()
                        return model.to("cpu")
            state = _StageState(stage=state.stage + 1, total_steps=state.total_steps,
                                history_lines=state.history_lines,
                                finished=state.stage + 1 >= len(config.optimiser.stages))
            opt = None  # the next stage starts with a fresh optimiser
            _checkpoint(ck, model, rng, state, None, None, None, cfg_dump)
    except KeyboardInterrupt:
        # a checkpoint at a step boundary only: mid-step the model has moved on and the
        # state not yet (then the last periodic checkpoint stands)
        if not in_step:
            _checkpoint(ck, model, rng, state, opt, steps_sched, plateau, cfg_dump)
        bar.close()
        raise
    bar.close()
    model.to("cpu")
    if not (saved is not None and saved["state"]["finished"] and (out / MODEL).is_file()):
        atomic_torch_save({"config": cfg_dump, "model": model.state_dict(),
                           "parameters": model.params.describe()}, out / MODEL)
    return model


def start_from(model: DesignModel, source: Path) -> None:
    """Load θΨ/G/E of an earlier run (folder or ``model.pt``) into ``model`` (``init_from``)."""
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
    """A config dump in today's form (:func:`~rdlab.design.config.normalised`: a flat config
    of an older run reads as its sections), minus ``device`` (a run may resume on another
    device).
    """
    return {k: v for k, v in normalised(config).items() if k != "device"}


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
    """A fingerprint of the target image as the loss sees it (its file may change under the
    same name between a run and its resume).
    """
    if model.target is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(model.target, dtype=np.float64)).hexdigest()


def _truncate_history(path: Path, lines: int) -> None:
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    kept = "".join(s + "\n" for s in text.splitlines()[:lines])
    if kept != text:  # steps after the checkpoint, or a line cut off by a kill
        atomic_write_text(path, kept)


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> DesignModel:
    """The optimised model of a finished run folder (``model.pt``), or its latest checkpoint,
    on ``device`` (the CPU by default, whatever device it was optimised on).
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
    """The history records of a run folder (a last line cut off by a kill is skipped)."""
    return read_history_lines(Path(folder) / HISTORY)
