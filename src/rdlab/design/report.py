"""After optimisation: the checks, figures and files of a design run folder.

:func:`report` reads a finished (or interrupted) run folder and writes

* ``metrics.json`` — what was reached: the target correlation over the optimised window and
  at 10× the horizon (at ``dt`` and at ``dt``/divisor), the dissipation against the three
  controls (ratios), the bit accuracy at the configured times (32 z; at ``dt`` and at
  the finest ``dt``/divisor up to ``dt``/10), the parent–daughter
  correlation, optimisation steps and seconds;
* ``controls_<metric>.png`` — mean ± std over ``n`` runs of each control condition against
  time (paper Figs 2c, 3c, 7, 8), at ``dt``/divisor, and ``.npz`` of the curves;
* ``timelapse.png`` / ``timelapse.gif`` — PCA→RGB frames of the optimised pattern over the
  long horizon; ``loss.png`` — the loss history;
* ``reaction_graph.png`` — the designed network, arrow weight ∝ rate (appendix B.4);
* ``network.yaml``, ``network.ant``, ``network.xml`` — the designed network with its flow
  drive written as reactions (∅ → X_i at f·x_i, X_i → ∅ at f), starting from the feed x,
  for Tellurium/libroadrunner.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from rdlab.chemistry.export import write_antimony, write_sbml
from rdlab.chemistry.network import ReactionNetwork
from rdlab.design.evaluate import (
    MetricCurves,
    control_curves,
    finite_mean,
    rollout_metric,
)
from rdlab.design.generator import sample_z
from rdlab.design.objectives import Dissipation, Replication
from rdlab.design.optimise import DesignModel, load_model, read_history, simulate_design
from rdlab.design.run_files import METRICS, MODEL, staged_report, tidy
from rdlab.errors import ParameterError
from rdlab.viz.design_bands import plot_bands
from rdlab.viz.reaction_graph import plot_reaction_graph
from rdlab.viz.time_lapse import time_lapse_panel

__all__ = ["driven_network", "report"]


def driven_network(model: DesignModel) -> ReactionNetwork:
    """Return the designed network with the flow reactor written as reactions.

    For each species an inflow ∅ → X_i at rate f·x_i and an outflow X_i → ∅ at rate f (the
    drive f(x − X) exactly).

    Parameters
    ----------
    model : DesignModel
        The designed model; its parameters give the network, rates, flow f and feed x.

    Returns
    -------
    ReactionNetwork
        The network's reactions followed by the inflows and then the outflows, with rates.
    """
    p = model.params
    net = p.to_network()
    S = net.n_species
    eye = np.eye(S, dtype=np.int64)
    zero = np.zeros((S, S), dtype=np.int64)
    R = np.concatenate([net.reactant_matrix, zero, eye], axis=1)
    P = np.concatenate([net.product_matrix, eye, zero], axis=1)
    f = float(p.flow.detach())
    feed = p.feed.detach().numpy().astype(float)
    rates = list(np.asarray(net.default_rates, dtype=float)) + list(f * feed) + [f] * S
    return ReactionNetwork(net.species, R, P).with_rates(rates)


def _metric_name(model: DesignModel) -> str | None:
    if model.target is not None:
        return "correlation"
    if any(isinstance(t, Dissipation) for t in model.loss.terms):
        return "dissipation"
    return None


BIT_SAMPLES = 32  # z draws for the bit accuracy (512 bits with 16-bit z: steps of 0.2 %)


@torch.no_grad()
def _bit_accuracy(model: DesignModel, times: tuple[float, ...], n: int, seed: int,
                  dt: float | None = None) -> dict[str, float]:
    """Return the fraction of z's bits that E reads back from X_t at each of ``times`` (s).

    For ``n`` z drawn from ``seed``, rolled out under the configured (noisy) flow with step
    ``dt`` (default the config's).
    """
    cfg = model.config
    dt = cfg.model.dt if dt is None else dt
    gen = torch.Generator().manual_seed(seed)
    z = sample_z(n, cfg.generator.z_bits, gen).to(model.params.dtype)
    X0 = model.generator(z)
    steps = int(round(max(times) / dt))
    record = [int(round(t / dt)) for t in times]

    def acc(X, p):
        logits = model.encoder(2.0 * X - 1.0)
        return ((logits > 0) == (z > 0.5)).to(X.dtype).mean(dim=1)
    every = int(np.gcd.reduce(record)) or 1
    params = model.params.as_torch_parameters(n).detach()
    t, v, _ = rollout_metric(model, params, X0, steps, dt, acc, record_every=every,
                             seed=seed, engine="torch")
    out = {}
    for target_t, step in zip(times, record):
        out[f"t={target_t:g}"] = finite_mean(v[:, step // every])
    return out


def _plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    loss = np.array([h["loss"] for h in history])
    ax.plot(np.arange(1, loss.size + 1), loss, lw=0.8)
    for i in np.flatnonzero(np.diff([h["stage"] for h in history])):
        ax.axvline(i + 1, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("loss")
    if np.all(loss > 0):
        ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(folder: str | Path, *, n_controls: int | None = None, seed: int = 12345) -> dict:
    """Evaluate the run in ``folder`` and write the files listed in the module docstring.

    The files are written to a staging folder and replace the previous report together
    (:func:`~rdlab.design.run_files.staged_report`): a report that fails leaves the old
    one as it was, never a mixture. The caller holds the folder's lock.

    Parameters
    ----------
    folder : str or Path
        The design run folder (finished, or a checkpoint of a run still to resume).
    n_controls : int or None, optional
        Runs per control condition (a whole number ≥ 1); ``None`` (default) takes the
        config's ``evaluation.controls``.
    seed : int, optional
        Seeds the controls' and the read-outs' random draws (default 12345).

    Returns
    -------
    dict
        The metrics (also written to ``metrics.json``). ``metrics["finished"]`` says whether
        the optimisation had finished (``model.pt``) or the report is of a checkpoint.

    Raises
    ------
    ParameterError
        ``n_controls`` is not a whole number ≥ 1, or ``folder`` holds no ``model.pt`` or
        ``checkpoint.pt``.
    DataError
        A damaged model, checkpoint or history file (named in the message).
    """
    folder = Path(folder)
    if n_controls is not None and (isinstance(n_controls, bool) or not isinstance(
            n_controls, int) or n_controls < 1):
        raise ParameterError(f"controls must be a whole number ≥ 1, got {n_controls!r}")
    model = load_model(folder)
    history = read_history(folder)
    tidy(folder)
    with staged_report(folder) as staging:
        return _report(model, history, staging, n_controls=n_controls, seed=seed,
                       finished=(folder / MODEL).is_file())


def _report(model: DesignModel, history: list[dict], folder: Path, *,
            n_controls: int | None, seed: int, finished: bool) -> dict:
    """Write the report's files into ``folder`` and return its metrics."""
    t0 = time.perf_counter()
    cfg = model.config
    metrics = _run_summary(model, history, finished)
    if history:
        _plot_loss(history, folder / "loss.png")
    metric = _metric_name(model)
    if metric is not None:
        n = cfg.evaluation.controls if n_controls is None else n_controls
        metrics.update(_control_metrics(model, metric, n, seed, folder))
    if model.encoder is not None and cfg.evaluation.times:
        metrics.update(_bit_metrics(model, seed))
    rep = next((t for t in model.loss.terms if isinstance(t, Replication)), None)
    if rep is not None:
        per_species, pooled = _replication(model, rep, seed, folder)
        metrics["parent_daughter_correlation"] = per_species
        metrics["parent_daughter_correlation_pooled"] = pooled
    _write_network_files(model, folder)
    metrics["report_seconds"] = time.perf_counter() - t0
    (folder / METRICS).write_text(json.dumps(metrics, indent=1, default=float))
    return metrics


def _run_summary(model: DesignModel, history: list[dict], finished: bool) -> dict:
    """Return the run's bookkeeping: name, horizon, step, optimisation steps, time, loss."""
    cfg = model.config
    return {"name": cfg.name, "finished": finished, "horizon_steps": cfg.optimiser.stages[-1],
            "dt": cfg.model.dt, "optimisation_steps": len(history),
            "optimisation_seconds": float(sum(h["seconds"] for h in history)),
            "final_loss": history[-1]["loss"] if history else None,
            "parameters": model.params.describe()}


def _control_metrics(model: DesignModel, metric: str, n: int, seed: int,
                     folder: Path) -> dict:
    """Evaluate ``metric`` of the design and its controls; write their figures and time-lapse.

    Returns the entries ``metric`` (the optimised design at ``dt``), ``controls`` (one per
    ``dt`` divisor) and ``timelapse_dt``, each only where there is something to report.
    """
    cfg = model.config
    T = cfg.optimiser.stages[-1]
    long_steps = cfg.evaluation.factor * T
    # the optimised window and 10× it at dt, for the optimised design
    fn_curves = control_curves(model, metric, long_steps, cfg.model.dt, n=max(2, n // 4),
                               record_every=1, seed=seed, conditions=("Optimized",))
    out: dict = {metric: _optimised_summary(fn_curves, cfg.model.dt, T, long_steps)}
    # the time-lapse shows the finest roll-out that spans the long horizon: a design
    # can hold its pattern at dt/10 and still drift off the Euler step's stable range
    # at dt after the optimised window
    lapse = (fn_curves, cfg.model.dt)
    # the controls at a smaller step, over the long horizon (paper Figs 2c, 3c, 7, 8)
    for div in cfg.evaluation.dt_divisors:
        dt = cfg.model.dt / div
        steps = long_steps * div if div <= 10 else T * div
        curves = control_curves(model, metric, steps, dt, n=n, record_every=div, seed=seed)
        out.setdefault("controls", {})[f"dt/{div}"] = _controls_entry(
            curves, metric, dt, steps, n, T * cfg.model.dt)
        _save_controls(curves, metric, folder, f"controls_{metric}_dt{div}",
                       title=f"{cfg.name}: controls at dt = {dt:g}", t_opt=T * cfg.model.dt)
        if div <= 10 and curves.frames is not None and dt < lapse[1]:
            lapse = (curves, dt)
    lapse_curves, lapse_dt = lapse
    if lapse_curves.frames is not None:
        idx = np.linspace(0, lapse_curves.frames.shape[0] - 1, 8).round().astype(int)
        time_lapse_panel(lapse_curves.frames[idx], lapse_curves.times[idx],
                         folder / "timelapse.png", movie_path=folder / "timelapse.gif",
                         title=f"{cfg.name}: optimised pattern (dt = {lapse_dt:g})")
        out["timelapse_dt"] = lapse_dt
    return out


def _optimised_summary(curves: MetricCurves, dt: float, T: int, long_steps: int) -> dict:
    """Summarise the optimised design's metric over its window, the long horizon and at its end."""
    s = curves.summary(t_max=T * dt)["Optimized"]
    s_long = curves.summary()["Optimized"]
    end = curves.values["Optimized"][:, -1]
    return {"dt": dt, "optimised_window_mean": s["mean"],
            "whole_horizon_mean": s_long["mean"],
            "at_end": finite_mean(end),
            "finite_runs_at_end": int(np.isfinite(end).sum()),
            "horizon": long_steps * dt}


def _controls_entry(curves: MetricCurves, metric: str, dt: float, steps: int, n: int,
                    t_opt: float) -> dict:
    """Summarise the controls at one step ``dt`` (with ratios to them for dissipation)."""
    summary = curves.summary()
    opt_mean = summary["Optimized"]["mean"]
    entry = {"dt": dt, "horizon": steps * dt, "n": n, "summary": summary}
    if metric == "dissipation":
        entry["ratio_to_controls"] = {
            k: (opt_mean / v["mean"] if v["mean"] else float("inf"))
            for k, v in summary.items() if k != "Optimized"}
    entry["optimised_window_mean"] = curves.summary(t_max=t_opt)["Optimized"]["mean"]
    entry["at_end"] = {k: finite_mean(v[:, -1]) for k, v in curves.values.items()}
    return entry


def _save_controls(curves: MetricCurves, metric: str, folder: Path, stem: str, *, title: str,
                   t_opt: float) -> None:
    """Write the controls' mean ± std figure (``stem``.png) and their curves (``stem``.npz)."""
    ylabel = ("Pearson r with target" if metric == "correlation"
              else "entropy production σ (k_B = 1)")
    plot_bands(curves.times, curves.values, folder / f"{stem}.png", ylabel,
               title=title, t_opt=t_opt, logy=metric == "dissipation")
    np.savez(folder / f"{stem}.npz", times=curves.times,
             **{k.replace(" ", "_"): v for k, v in curves.values.items()})


def _bit_metrics(model: DesignModel, seed: int) -> dict:
    """Return the bit accuracy at ``dt`` and at the smallest step ≤ ``dt``/10 asked for."""
    cfg = model.config
    out = {"bit_accuracy": _bit_accuracy(model, cfg.evaluation.times, BIT_SAMPLES, seed)}
    # the same read-out with the smallest step ≤ dt/10 asked for: bits that last only
    # thanks to the Euler step would show up here
    fine = [d for d in cfg.evaluation.dt_divisors if d <= 10]
    if fine:
        div = max(fine)
        out[f"bit_accuracy_dt/{div}"] = _bit_accuracy(
            model, cfg.evaluation.times, BIT_SAMPLES, seed, dt=cfg.model.dt / div)
    return out


def _replication(model: DesignModel, rep: Replication, seed: int, folder: Path
                 ) -> tuple[float, float]:
    """Return the parent–daughter r per species and pooled; draw the time-lapse.

    See :meth:`rdlab.design.objectives.Replication.correlation` for the two definitions.
    """
    cfg = model.config
    T = cfg.optimiser.stages[-1]
    with torch.no_grad():
        traj = simulate_design(model, T, batch=1, rng=torch.Generator().manual_seed(seed))
        correlation = (rep.correlation(traj), rep.correlation(traj, pooled=True))
        frames = torch.stack([s[0] for s in traj.states]).numpy()
    idx = np.linspace(0, T, 8).round().astype(int)
    time_lapse_panel(frames[idx], idx * cfg.model.dt, folder / "timelapse.png",
                     movie_path=folder / "timelapse.gif",
                     title=f"{cfg.name}: parent (t = 0) to daughters (t = T)")
    return correlation


def _write_network_files(model: DesignModel, folder: Path) -> None:
    """Write the designed network's graph and its YAML, Antimony and SBML files."""
    cfg = model.config
    net = driven_network(model)
    plot_reaction_graph(model.params.network, model.params.rates.detach().numpy(),
                        folder / "reaction_graph.png", scale="relative",
                        title=f"{cfg.name}: designed network (arrow weight ∝ rate)")
    net.to_yaml(folder / "network.yaml")
    # the models start from the drive's feed x (the state the flow pulls towards)
    feed = model.params.feed.detach().cpu().double().numpy()
    write_antimony(net, folder / "network.ant", feed, name=cfg.name.replace("-", "_"))
    write_sbml(net, folder / "network.xml", feed, name=cfg.name.replace("-", "_"))
