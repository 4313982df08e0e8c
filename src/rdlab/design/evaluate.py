"""Checks of an optimised design: long roll-outs, smaller time steps, the four controls.

The checks of appendix A.1 and D.4. A metric is followed along a roll-out without storing
it (memory stays at one state however long the horizon): the target correlation (Pearson r
of the target species with the target image), the entropy production of the configured
parts (σ_D and/or σ_R), or the encoder's bit accuracy. Roll-outs step the model's
definition (:mod:`rdlab.simulate.torch_model`, or the fast engine through
:func:`rdlab.simulate.simulate`) with one parameter set per sample, so all randomisations
of a control run as one batch.

Controls (paper D.4), ``n`` samples each:

* **Optimized** — X0 = G(z) for ``n`` random z, optimised θΨ;
* **Random X0** — X0 drawn i.i.d. per cell from N(mean, std) of the optimised X0 (per
  species), truncated at 0, optimised θΨ;
* **Initial θΨ** — the optimised X0 with θΨ at the paper's initialisation (``n`` seeds);
* **Random θΨ** — rates ~ N(mean, std) of the optimised rates, truncated at 0, and D ~
  N(mean, std) of the optimised D clipped to the stable range, with the optimised X0, flow
  and feed (the paper randomises "reaction network parameters and diffusion
  coefficients"; the authors' code also redrew flow and feed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rdlab.design.entropy import diffusion_entropy_production, reaction_entropy_production
from rdlab.design.generator import sample_z
from rdlab.design.objectives import Dissipation, pearson_correlation
from rdlab.design.optimise import DesignModel
from rdlab.design.parameters import DesignParameters
from rdlab.errors import ParameterError
from rdlab.simulate import simulate
from rdlab.simulate.torch_model import (
    C_MAX,
    NetworkTensors,
    StepFunction,
    TorchParameters,
    euler_iterates,
    intra_op_threads,
    model_step,
    noisy_flow_field,
)
from rdlab.simulate.trackers import RunawayGuard, RunView, Tracker
from rdlab.system import Grid, System

__all__ = ["CONTROL_CONDITIONS", "MetricCurves", "control_curves", "finite_mean",
           "metric_function", "rollout_metric"]

CONTROL_CONDITIONS = ("Optimized", "Random X0", "Initial θΨ", "Random θΨ")
Metric = Callable[[torch.Tensor, TorchParameters], torch.Tensor]


def finite_mean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Return the mean over the finite entries (runs that blew up are NaN).

    NaN where there are none, without numpy's "mean of empty slice" warning; the counts are
    reported alongside.

    Parameters
    ----------
    values : numpy.ndarray
        The values.
    axis : int or None
        Axis to average over; ``None`` averages everything.

    Returns
    -------
    numpy.ndarray or float
        The means (a float when ``axis`` is ``None``).
    """
    values = np.asarray(values, float)
    ok = np.isfinite(values)
    count = ok.sum(axis=axis)
    total = np.where(ok, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return float(mean) if axis is None else mean


@dataclass
class MetricCurves:
    """A metric against time for several conditions.

    Attributes
    ----------
    metric : str
        The metric's name.
    times : numpy.ndarray
        ``(n_times,)`` in seconds.
    values : dict of str to numpy.ndarray
        ``values[name]`` is ``(n_runs, n_times)`` (NaN after a run blew up).
    frames : numpy.ndarray or None
        ``(n_times, S, H, W)`` of the first optimized run, when kept.
    """

    metric: str
    times: np.ndarray
    values: dict[str, np.ndarray]
    frames: np.ndarray | None = None

    def summary(self, t_max: float | None = None) -> dict[str, dict[str, float]]:
        """Return the mean and std over runs and times per condition.

        Parameters
        ----------
        t_max : float or None
            Only times up to ``t_max`` (s); ``None`` for all.

        Returns
        -------
        dict
            Per condition: ``mean``, ``std``, ``runs`` (finite runs) and ``of`` (all runs).
        """
        keep = np.ones_like(self.times, bool) if t_max is None else self.times <= t_max
        out = {}
        for name, v in self.values.items():
            per_run = finite_mean(v[:, keep], axis=1) if v.size else v
            finite = per_run[np.isfinite(per_run)]
            out[name] = {"mean": float(np.mean(finite)) if finite.size else float("nan"),
                         "std": float(np.std(finite)) if finite.size else float("nan"),
                         "runs": int(finite.size), "of": int(per_run.size)}
        return out


#: The stabiliser of σ_D's denominator ``X + offset`` in the checks (the paper's 0.1). A
#: checked state with a concentration at or below ``−SIGMA_OFFSET`` gets σ = NaN.
SIGMA_OFFSET = 0.1


def metric_function(model: DesignModel, metric: str) -> Metric:
    """Return the function ``metric(X (B, S, H, W), params) → (B,)`` of a metric's name.

    Parameters
    ----------
    model : DesignModel
        The design (its target image, loss terms and network).
    metric : str
        ``correlation`` (of the target species with the target image), ``dissipation``
        (the parts the loss uses, σ_D by default), ``diffusion`` or ``reaction``. The σ
        metrics are NaN for a sample whose state has a concentration at or below
        ``−SIGMA_OFFSET`` (outside the physical range, where σ_D would change sign).

    Returns
    -------
    callable
        ``(X, params) → (B,)``.

    Raises
    ------
    ParameterError
        For an unknown metric, or ``correlation`` without a target image.
    """
    if metric == "correlation":
        if model.target is None:
            raise ParameterError("this design has no target image: no correlation to follow")
        target = torch.as_tensor(model.target, dtype=model.params.dtype)
        species = model.loss["target"].species if "target" in model.loss.names else 1

        def corr(X, p):
            return pearson_correlation(X[:, species], target)
        return corr
    parts: tuple[str, ...]
    if metric == "dissipation":
        term = next((t for t in model.loss.terms if isinstance(t, Dissipation)), None)
        parts = tuple(term.terms) if term is not None else ("diffusion",)
    elif metric in ("diffusion", "reaction"):
        parts = (metric,)
    else:
        raise ParameterError(f"unknown metric {metric!r}; choose correlation, dissipation, "
                             f"diffusion or reaction")
    network = model.params.network

    def sigma(X, p):
        total = X.new_zeros(X.shape[0])
        if "diffusion" in parts:
            total = total + diffusion_entropy_production(p.diffusion, X, SIGMA_OFFSET)
        if "reaction" in parts:
            total = total + reaction_entropy_production(network, p.rates, X)
        # the unclipped check may take a state below zero; where X + offset ≤ 0 σ_D's
        # denominator changes sign and the "entropy production" would come out negative:
        # such a state has left the model's physical range, and its σ is not a number
        outside = X.flatten(1).amin(dim=1) <= -SIGMA_OFFSET
        return torch.where(outside, torch.full_like(total, float("nan")), total)
    return sigma


def _fast_system(model: DesignModel, params: TorchParameters, shape) -> System:
    return System.build(model.params.network,
                        rates=params.rates.detach().double().numpy(),
                        diffusion=params.diffusion.detach().double().numpy(),
                        flow=params.flow.detach().double().numpy(),
                        feed=params.feed.detach().double().numpy(),
                        grid=Grid(shape[-2], shape[-1], stencil="9-point"))


class _Measurements(Tracker):
    """Follow ``metric`` at ``steps`` (after step 0) without storing the states.

    A sample stopped by the guard (it blew up) is NaN from then on; ``frames`` keeps the
    first sample's state at each step when asked.
    """

    def __init__(self, steps: list[int], metric: Metric, params: TorchParameters,
                 keep_frames: bool):
        self.steps, self.metric, self.params = steps, metric, params
        self.keep_frames = keep_frames
        self.values: list[np.ndarray] = []
        self.frames: list[np.ndarray] = []

    def due_steps(self, n_steps: int) -> list[int]:
        return self.steps

    def visit(self, view: RunView) -> None:
        if view.step not in self.steps:
            return
        state = np.nan_to_num(view.state)
        v = self.metric(torch.as_tensor(state, dtype=self.params.rates.dtype),
                        self.params).numpy().copy()
        v[~view.active | ~np.isfinite(v)] = np.nan
        self.values.append(v)
        if self.keep_frames:
            self.frames.append(view.state[0].copy())


@torch.no_grad()
def _rollout_metric_fast(model, params, X0, n_steps, dt, metric, record_every, keep_frames):
    """Do :func:`rollout_metric` on the fast engine (no flow noise), in float32.

    Through the front door; a sample that blows up is dropped (NaN from the check that
    found it on) while the others go on.
    """
    system = _fast_system(model, params, X0.shape)
    X = X0.detach().double().numpy()
    record = sorted(set(range(0, n_steps + 1, record_every)) | {n_steps})
    first = metric(torch.as_tensor(X, dtype=params.rates.dtype), params).numpy().copy()
    first[~np.isfinite(first)] = np.nan
    follow = _Measurements(record[1:], metric, params, keep_frames)
    simulate(system, X, dt=dt, n_steps=n_steps, snapshot_steps=[n_steps], engine="fast",
             dtype="float32", progress=False,
             trackers=[follow, RunawayGuard(on_blow_up="drop")])
    times = np.asarray(record, dtype=float) * dt
    values = np.stack([first, *follow.values], axis=1)
    frames = np.stack([X[0].copy(), *follow.frames]) if keep_frames else None
    return times, values, frames


@torch.no_grad()
def rollout_metric(model: DesignModel, params: TorchParameters, X0: torch.Tensor,
                   n_steps: int, dt: float, metric: Metric, record_every: int = 1,
                   seed: int = 0, keep_frames: bool = False, engine: str = "fast"
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Follow a metric along a roll-out without storing the states.

    ``engine="fast"`` (used without flow noise) steps the numba engine, which has no clip:
    the check runs the model's equations as written (the clip to [0, 10] is the authors'
    numerical safeguard during optimisation); ``"torch"`` steps the torch definition
    (:func:`rdlab.simulate.torch_model.euler_step`) with the config's clip (and the noisy
    flow, which the fast engine lacks).

    Parameters
    ----------
    model : DesignModel
        The design (network, config's clip, flow noise).
    params : TorchParameters
        Per-sample parameters.
    X0 : torch.Tensor
        Initial states ``(B, S, H, W)``.
    n_steps : int
        Number of Euler steps.
    dt : float
        Time step (s).
    metric : callable
        ``(X, params) → (B,)``, e.g. from :func:`metric_function`.
    record_every : int
        Steps between recorded values (the last step is always recorded).
    seed : int
        Seed of the flow noise draws (torch engine).
    keep_frames : bool
        Keep the first sample's states at the recorded times.
    engine : str
        ``"fast"`` or ``"torch"``.

    Returns
    -------
    times : numpy.ndarray
        ``(n,)`` recorded times (s).
    values : numpy.ndarray
        ``(B, n)``; a sample whose state stops being finite gets NaN from then on.
    frames : numpy.ndarray or None
        ``(n, S, H, W)`` when ``keep_frames``.
    """
    if model.noise is None and engine == "fast":
        return _rollout_metric_fast(model, params, X0, n_steps, dt, metric, record_every,
                                    keep_frames)
    grid = Grid(X0.shape[-2], X0.shape[-1], stencil="9-point")
    net = NetworkTensors.from_network(model.params.network, grid, X0.dtype)
    dead = torch.zeros(X0.shape[0], dtype=torch.bool)
    step = _zeroing_dead(model_step(net, params, dt, C_MAX if model.config.model.clip
                                    else None), dead)
    fields = None
    if model.noise is not None:
        rng = torch.Generator().manual_seed(seed)
        fields = functools.partial(_noise_field, params.flow, model.noise, rng, X0)
    # small states step faster on one thread (thread start-up dominates, worse when shared)
    with intra_op_threads(1 if X0.numel() * net.n_reactions < 2**22 else None):
        return _follow(step, fields, params, X0.clone(), n_steps, dt, metric, record_every,
                       keep_frames, dead)


def _noise_field(flow, noise, rng, X0, step: int) -> torch.Tensor:
    """Draw the noisy flow of one step (the same for every step index)."""
    return noisy_flow_field(flow, noise, rng, X0.shape, X0.dtype, X0.device)


def _zeroing_dead(step: StepFunction, dead: torch.Tensor) -> StepFunction:
    """Return ``step`` followed by marking non-finite samples in ``dead`` and zeroing them."""
    def guarded(X: torch.Tensor, ff: torch.Tensor | None) -> torch.Tensor:
        X = step(X, ff)
        bad = ~torch.isfinite(X.reshape(X.shape[0], -1)).all(dim=1)
        dead.logical_or_(bad)
        return torch.where(bad[:, None, None, None], torch.zeros_like(X), X)
    return guarded


def _follow(step, fields, params, X, n_steps, dt, metric, record_every, keep_frames, dead):
    """Step ``X`` for ``n_steps`` and record ``metric`` (NaN for ``dead`` samples)."""
    times, values, frames = [], [], []

    def record(t: int, X: torch.Tensor) -> None:
        v = metric(X, params)
        v = torch.where(dead | ~torch.isfinite(v), torch.full_like(v, float("nan")), v)
        times.append(t * dt)
        values.append(v.cpu().numpy())
        if keep_frames:
            frames.append(X[0].cpu().numpy())

    record(0, X)
    for t, (Y, _) in enumerate(euler_iterates(step, X, n_steps, fields), start=1):
        if t % record_every == 0 or t == n_steps:
            record(t, Y)
    return (np.asarray(times), np.stack(values, axis=1),
            np.stack(frames) if keep_frames else None)


def _random_x0(X_opt: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Draw X0 i.i.d. per cell from N(mean, std) of ``X_opt`` per species, truncated at 0."""
    mean = X_opt.mean(dim=(0, 2, 3), keepdim=True)
    std = X_opt.std(dim=(0, 2, 3), keepdim=True)
    return (mean + std * torch.randn(X_opt.shape, generator=gen,
                                     dtype=X_opt.dtype)).clamp(min=0.0)


def _initial_parameters(model: DesignModel, n: int, rng: np.random.Generator
                        ) -> TorchParameters:
    """Return ``n`` parameter sets at the paper's initialisation (one seed each)."""
    p_opt = model.params
    inits = [DesignParameters.initial(p_opt.network, int(s), p_opt.dtype,
                                      flow=model.config.model.flow)
             for s in rng.integers(0, 2**31, size=n)]
    return TorchParameters(torch.stack([q.rates.detach() for q in inits]),
                           torch.stack([q.diffusion.detach() for q in inits]),
                           torch.stack([q.flow.detach() for q in inits]),
                           torch.stack([q.feed.detach() for q in inits]))


def _random_parameters(model: DesignModel, params: TorchParameters,
                       rng: np.random.Generator) -> TorchParameters:
    """Redraw rates and D from N(mean, std) of the optimised ones (truncated, clipped)."""
    p_opt, n = model.params, params.batch_size
    k, D = p_opt.rates.detach().numpy(), p_opt.diffusion.detach().numpy()
    lo, hi = p_opt.diffusion_bounds.tolist()
    rates = np.clip(rng.normal(k.mean(), k.std(), size=(n, k.size)), 0.0, None)
    diff = np.clip(rng.normal(D.mean(), D.std(), size=(n, D.size)), lo, hi)
    return TorchParameters(torch.as_tensor(rates, dtype=p_opt.dtype),
                           torch.as_tensor(diff, dtype=p_opt.dtype), params.flow, params.feed)


def _condition_inputs(model: DesignModel, name: str, X_opt: torch.Tensor, n: int,
                      gen: torch.Generator, rng: np.random.Generator
                      ) -> tuple[TorchParameters, torch.Tensor]:
    """Return the parameters and initial states of control condition ``name``."""
    params = model.params.as_torch_parameters(n).detach()
    if name == "Random X0":
        return params, _random_x0(X_opt, gen)
    if name == "Initial θΨ":
        return _initial_parameters(model, n, rng), X_opt
    if name == "Random θΨ":
        return _random_parameters(model, params, rng), X_opt
    return params, X_opt


@torch.no_grad()
def control_curves(model: DesignModel, metric: str, n_steps: int, dt: float, *, n: int = 32,
                   record_every: int = 1, seed: int = 0,
                   conditions: tuple[str, ...] = CONTROL_CONDITIONS) -> MetricCurves:
    """Follow a metric against time for each control condition (module docstring).

    Parameters
    ----------
    model : DesignModel
        The optimised design.
    metric : str
        A name for :func:`metric_function`.
    n_steps : int
        Number of Euler steps.
    dt : float
        Time step (s).
    n : int
        Runs per condition.
    record_every : int
        Steps between recorded values.
    seed : int
        Seed of the draws (z, random X0 and θΨ, noise).
    conditions : tuple of str
        Some of :data:`CONTROL_CONDITIONS`.

    Returns
    -------
    MetricCurves
        The values per condition; the frames of the first optimized run.

    Raises
    ------
    ParameterError
        For an unknown condition or metric.
    """
    unknown = set(conditions) - set(CONTROL_CONDITIONS)
    if unknown:
        raise ParameterError(f"unknown control conditions {sorted(unknown)}; choose from "
                             f"{list(CONTROL_CONDITIONS)}")
    fn = metric_function(model, metric)
    gen = torch.Generator().manual_seed(seed)
    z = sample_z(n, model.config.generator.z_bits, gen)
    X_opt = model.generator(z.to(model.params.dtype)).detach()
    out: dict[str, np.ndarray] = {}
    frames = times = None
    rng = np.random.default_rng(seed)
    for name in conditions:
        params, X0 = _condition_inputs(model, name, X_opt, n, gen, rng)
        t, v, fr = rollout_metric(model, params, X0, n_steps, dt, fn, record_every, seed,
                                  keep_frames=name == "Optimized")
        out[name], times = v, t
        if fr is not None:
            frames = fr
    return MetricCurves(metric, times, out, frames)
