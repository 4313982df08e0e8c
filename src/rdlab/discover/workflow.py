"""One discovery run end to end: data (file or example) → fit (or n_r sweep) → outputs.

Outputs in the run folder: ``data.zarr`` (the data used), ``mechanism.yaml``,
``mechanism.txt`` (the paper's table), ``mechanism.antimony``, ``mechanism.xml`` (SBML),
``report.json`` (fit quality, timing, comparison with the truth for examples),
``trajectories.png`` (learned against true or measured trajectories) and, for a sweep,
``sweep.png`` and ``sweep.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rdlab.discover import derivatives as deriv_mod
from rdlab.discover.data import ReactionData, generate, load, save, trajectories
from rdlab.discover.estimator import ReactionDiscovery
from rdlab.discover.examples import Example, example
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.selection import sweep_reactions
from rdlab.errors import ParameterError

__all__ = ["DiscoverSettings", "run_discovery"]


@dataclass
class DiscoverSettings:
    """What to run. ``estimator`` holds :class:`ReactionDiscovery` parameters."""

    n_reactions: int | None = None
    sweep: tuple[int, ...] | None = None
    noise: float = 0.0
    derivatives: str | None = None  # estimate from concentrations: 'fd', 'spline', 'smoothing'
    n_samples: int = 100
    data_seed: int = 1
    estimator: dict = field(default_factory=dict)


def _prepare(source: str | Path | Example, settings: DiscoverSettings
             ) -> tuple[ReactionData, Example | None, dict]:
    """The data to fit, the example they come from (if any) and facts about them (generation
    time, the error of estimated derivatives against the exact ones)."""
    info: dict = {}
    ex = source if isinstance(source, Example) else None
    if ex is not None:
        t = time.perf_counter()
        data = generate(ex.mechanism, settings.n_samples, seed=settings.data_seed,
                        temperature_range=ex.temperature_range)
        info["data_seconds"] = time.perf_counter() - t
    else:
        data = load(source)
    if settings.derivatives is not None:
        exact = data if data.derivatives is not None else None
        data = deriv_mod.estimate(data, method=settings.derivatives)
        if exact is not None:
            info["derivative_estimate"] = _json_ready(deriv_mod.derivative_error(data, exact))
    if settings.noise:
        data = data.with_noise(settings.noise, seed=settings.data_seed)
    if data.derivatives is None:
        raise ParameterError("the data have no derivatives; pass derivatives='spline', 'fd' or "
                             "'smoothing' to estimate them from the concentrations")
    return data, ex, info


def _json_ready(obj):
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def trajectory_check(learned: Mechanism, reference: Mechanism | None, data: ReactionData,
                     t_end: float = 10.0, n_times: int = 100, seed: int = 7) -> dict:
    """Integrate the learned mechanism from one initial condition over ``[0, t_end]`` at
    ``n_times`` points (the paper's test) and compare with the true mechanism (or, without
    one, with the first measured sample over its own times). Returns times, both
    trajectories and the relative L2 error."""
    T = None
    if reference is not None:
        x0 = np.random.default_rng(seed).uniform(0, 1, (1, learned.n_species))
        times = np.linspace(0.0, t_end, n_times)
        if reference.arrhenius is not None:
            T = reference.reference_temperature
        ref, _ = trajectories(reference, x0, times, T)
    else:
        x0 = data.concentrations[:1, 0]
        times = data.times
        if data.temperatures is not None:
            T = data.temperatures[0]
        ref = data.concentrations[:1]
    lrn, _ = trajectories(learned, x0, times, T)
    err = float(np.linalg.norm(lrn - ref) / max(np.linalg.norm(ref), 1e-300))
    return {"times": times, "reference": ref[0], "learned": lrn[0], "relative_error": err}


def run_discovery(source: str | Path | Example | str, out: str | Path,
                  settings: DiscoverSettings | None = None, progress: bool = True) -> dict:
    """Run discovery on a data file or an example (name or :class:`Example`) and write the
    outputs to ``out``. Returns the report dict (also written as ``report.json``)."""
    from rdlab.chemistry.export import to_antimony, to_sbml
    from rdlab.viz.discovery_plots import save_reaction_sweep, save_trajectory_comparison

    settings = settings or DiscoverSettings()
    if isinstance(source, str) and not Path(source).exists():
        source = example(source)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data, ex, info = _prepare(source, settings)
    save(data, out / "data.zarr")
    params = dict(settings.estimator)
    params.setdefault("progress", progress)
    if ex is not None:
        params.setdefault("catalytic", ex.catalytic)
    if settings.noise:
        params.setdefault("noise_level", settings.noise)
    report: dict = {"source": ex.name if ex else str(source), **info}
    t0 = time.perf_counter()
    if settings.sweep:
        sw = sweep_reactions(data, settings.sweep, **params)
        est = sw.best
        report["sweep"] = sw.to_dict()
        (out / "sweep.json").write_text(json.dumps(_json_ready(sw.to_dict()), indent=1))
        (out / "sweep.txt").write_text(sw.table() + "\n")
        save_reaction_sweep(out / "sweep.png", sw.n_reactions, sw.train_error,
                            sw.validation_error, chosen=sw.chosen,
                            title=f"number of reactions: {report['source']}")
    else:
        n_r = settings.n_reactions or (ex.n_reactions if ex else None)
        if n_r is None:
            raise ParameterError("give the number of reactions (--reactions N) or a sweep "
                                 "(--sweep 1:4)")
        est = ReactionDiscovery(n_r, **params).fit(data)
    report["fit_seconds_total"] = time.perf_counter() - t0
    report["fit"] = est.report()
    mech = est.mechanism_
    if ex is not None:
        report["comparison"] = mech.compare(ex.mechanism)
        report["exact"] = report["comparison"]["exact"]
    if not est.converged_:
        report["warning"] = (
            f"did not converge: largest per-species validation error "
            f"{float(np.max(est.species_errors_)):.3g} > tolerance {est._tolerance():.3g}; "
            "the mechanism below is the best candidate found, not a verified one")
    (out / "mechanism.yaml").write_text(mech.to_yaml())
    (out / "mechanism.txt").write_text(mech.table() + "\n")
    try:
        net = mech.to_network(min_rate=0.0)
        T = mech.reference_temperature
        (out / "mechanism.antimony").write_text(to_antimony(net))
        (out / "mechanism.xml").write_text(to_sbml(net))
        if T is not None:
            report["export_temperature"] = T
    except Exception as exc:  # a non-physical best guess cannot always be exported
        report["export_error"] = str(exc)
    try:
        check = trajectory_check(mech, ex.mechanism if ex else None, data)
        report["trajectory_error"] = check["relative_error"]
        save_trajectory_comparison(
            out / "trajectories.png", check["times"], check["reference"], check["learned"],
            mech.species, reference_label="true" if ex else "data",
            title=f"{report['source']}: learned (dashed) vs "
                  f"{'true' if ex else 'measured'}, rel. error {check['relative_error']:.2e}")
    except Exception as exc:
        report["trajectory_error_message"] = str(exc)
    (out / "report.json").write_text(json.dumps(_json_ready(report), indent=1))
    return report
