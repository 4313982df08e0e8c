"""Run one design config over many seeds, as ``dask.distributed`` tasks, and summarise them.

Each seed is an ordinary design run folder ``OUT/seed-<n>`` (the config with ``seed = n``),
optimised by :func:`~rdlab.design.run.run_design`, so a rerun of the same command skips
the seeds that finished and resumes the others. The tasks go to a local cluster (one worker
process per core by default), to any running cluster given by its scheduler address, or,
with :data:`IN_PROCESS`, run one after another in this process. When they are done,
``OUT/seeds.json`` and a short ``OUT/seeds.md`` table are written (atomically): the
config's headline metric per seed (:func:`headline`), mean ± std, the best seed and its
folder; seeds that failed are listed with their error.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rdlab.atomic import atomic_write_text
from rdlab.dask_cluster import IN_PROCESS, connect
from rdlab.design.config import DesignConfig
from rdlab.design.run_files import HISTORY, MODEL
from rdlab.errors import ParameterError
from rdlab.output_lock import hold

#: Most seeds in one command.
MAX_SEEDS = 10_000
#: The summary files written into the output folder.
SUMMARY_JSON, SUMMARY_MD = "seeds.json", "seeds.md"
METRICS = "metrics.json"


@dataclass
class SeedResult:
    """What one seed's run gave.

    Parameters
    ----------
    seed : int
        The config's seed.
    folder : str
        Its run folder.
    status : str
        ``"finished"``, ``"stopped"`` (by the time budget; resumable) or ``"failed"``.
    metric : str or None
        The headline metric's name (see :func:`headline`); None when failed.
    value : float or None
        The headline metric's value; None when failed or not finite.
    error : str or None
        The error of a failed seed.
    """

    seed: int
    folder: str
    status: str
    metric: str | None = None
    value: float | None = None
    error: str | None = None


def parse_seeds(text: str) -> list[int]:
    """Return the seeds of ``--seeds``: ``A:B`` (half-open, as in Python) or ``1,4,7``.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    list of int
        The seeds, in the order given.

    Raises
    ------
    ParameterError
        Naming the value: not whole numbers, negative, an empty range, a repeated seed, or
        more than :data:`MAX_SEEDS`.
    """
    value = str(text).strip()
    hint = "give A:B (seeds A to B-1) or a list such as 1,4,7"
    try:
        if ":" in value:
            a, b = (int(p) for p in value.split(":"))
        else:
            seeds = [int(p) for p in value.split(",")]
    except ValueError:
        raise ParameterError(f"--seeds {text!r} is not a seed range or list; {hint}") from None
    if ":" in value:
        if b - a > MAX_SEEDS:
            raise ParameterError(f"--seeds {text!r} asks for {b - a:,} seeds, at most "
                                 f"{MAX_SEEDS:,}")
        seeds = list(range(a, b))
    if not seeds:
        raise ParameterError(f"--seeds {text!r} is an empty range; {hint}")
    if min(seeds) < 0 or max(seeds) >= 2**63:
        raise ParameterError(f"--seeds {text!r}: seeds must lie in [0, 2**63)")
    if len(set(seeds)) != len(seeds):
        raise ParameterError(f"--seeds {text!r} repeats a seed")
    if len(seeds) > MAX_SEEDS:
        raise ParameterError(f"--seeds {text!r} asks for {len(seeds):,} seeds, at most "
                             f"{MAX_SEEDS:,}")
    return seeds


def check_cluster_options(scheduler: str | None, n_workers: int | None) -> None:
    """Refuse bad ``--scheduler`` / ``--workers`` values before any work starts.

    Parameters
    ----------
    scheduler : str or None
        A dask scheduler address (``tcp://host:8786``), :data:`IN_PROCESS`, or None for a
        local cluster.
    n_workers : int or None
        Worker processes of the local cluster (default one per core).

    Raises
    ------
    ParameterError
        An empty scheduler, a worker count outside 1 … 4 per core, or workers given
        together with a scheduler.
    """
    if scheduler is not None and not scheduler.strip():
        raise ParameterError(f"--scheduler must be a dask address such as tcp://host:8786 or "
                             f"{IN_PROCESS!r}, got {scheduler!r}")
    most = 4 * (os.cpu_count() or 1)
    if n_workers is not None and not 1 <= n_workers <= most:
        raise ParameterError(f"--workers must be between 1 and {most} (4 per core), "
                             f"got {n_workers}")
    if scheduler is not None and n_workers is not None:
        raise ParameterError(f"--workers {n_workers} is for the local cluster; it cannot go "
                             f"with --scheduler {scheduler!r}; leave one of them out")


def headline(metrics: dict) -> tuple[str, float | None, bool]:
    """Return the headline metric of a design run's ``metrics.json``.

    By objective: replication → ``parent_daughter_correlation``; information → the lowest
    ``bit_accuracy`` over the evaluation times; a target → ``correlation`` over the optimised
    window; dissipation → σ over the optimised window at the finest step of the checks
    (``controls["dt/N"]``, largest N; at dt itself without them: the design is optimised
    at dt, but its σ is the continuous model's, which the Euler step at dt may not resolve);
    otherwise (or without a report) the final loss.

    Parameters
    ----------
    metrics : dict
        The report's metrics (or ``{"final_loss": …}`` for a run without a report).

    Returns
    -------
    name : str
        The metric's name.
    value : float or None
        Its value (None when missing or not finite).
    higher_is_better : bool
        Whether a larger value is a better design.
    """
    if "parent_daughter_correlation" in metrics:
        name, value, up = "parent_daughter_correlation", metrics[
            "parent_daughter_correlation"], True
    elif isinstance(metrics.get("bit_accuracy"), dict) and metrics["bit_accuracy"]:
        name, value, up = "bit_accuracy (lowest over t)", min(
            metrics["bit_accuracy"].values()), True
    elif isinstance(metrics.get("correlation"), dict):
        name, value, up = "correlation (optimised window)", metrics["correlation"].get(
            "optimised_window_mean"), True
    elif isinstance(metrics.get("dissipation"), dict):
        name, value, up = _dissipation_headline(metrics)
    else:
        name, value, up = "final_loss", metrics.get("final_loss"), False
    value = float(value) if isinstance(value, int | float) and math.isfinite(value) else None
    return name, value, up


def _dissipation_headline(metrics: dict) -> tuple[str, float | None, bool]:
    """Return the dissipation headline: window σ at the finest dt checked."""
    finest = None
    for key, check in (metrics.get("controls") or {}).items():
        if (isinstance(check, dict) and "optimised_window_mean" in check
                and key.startswith("dt/") and key[3:].isdigit()
                and (finest is None or int(key[3:]) > int(finest[3:]))):
            finest = key
    if finest is None:
        return ("dissipation (optimised window)",
                metrics["dissipation"].get("optimised_window_mean"), True)
    return (f"dissipation (optimised window, {finest})",
            metrics["controls"][finest]["optimised_window_mean"], True)


def run_seed(config: DesignConfig, seed: int, folder: str, *, fresh: bool = False,
             time_budget_s: float | None = None, evaluate: bool = True,
             n_controls: int | None = None, threads: int | None = None) -> SeedResult:
    """Optimise ``config`` with ``seed`` into ``folder`` (resuming it) and return its result.

    A folder whose run has finished (and been reported, with ``evaluate``) is read, not run
    again, unless ``fresh``. Any error is caught and returned in the result, so that one
    failed seed does not stop the others.

    Parameters
    ----------
    config : DesignConfig
        The experiment (its seed is replaced).
    seed : int
        The seed.
    folder : str
        The seed's run folder.
    fresh : bool, default False
        Start again (see :func:`~rdlab.design.run.run_design`).
    time_budget_s : float or None, optional
        Seconds of optimisation at most for this seed in this call.
    evaluate : bool, default True
        Write the report (the headline comes from its ``metrics.json``; without it, from
        the final loss of the history).
    n_controls : int or None, optional
        Randomisations per control condition of the report (default: the config's).
    threads : int or None, optional
        Torch threads for this task (a cluster worker runs one seed per core).

    Returns
    -------
    SeedResult
        The seed's status and headline metric, or its error.
    """
    path = Path(folder)
    try:
        if not fresh and _is_done(path, evaluate):
            return _result(seed, path, True, evaluate)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        from rdlab.design.run import run_design

        done = run_design(config.replace(seed=seed), path, fresh=fresh,
                          time_budget_s=time_budget_s, evaluate=evaluate,
                          n_controls=n_controls, progress=False)
        return _result(seed, path, done.finished, evaluate)
    except Exception as exc:  # noqa: BLE001 - one seed's failure is reported, not raised
        text = str(exc).strip().splitlines()
        return SeedResult(seed, str(path), "failed",
                          error=f"{type(exc).__name__}: {text[0] if text else ''}".strip())


def _is_done(folder: Path, evaluate: bool) -> bool:
    """Return whether ``folder`` holds a finished run (and its report, with ``evaluate``)."""
    return (folder / MODEL).is_file() and (not evaluate or (folder / METRICS).is_file())


def _result(seed: int, folder: Path, finished: bool, evaluate: bool) -> SeedResult:
    """Return the result of the run in ``folder`` from its ``metrics.json`` or history."""
    if evaluate:
        metrics = json.loads((folder / METRICS).read_text())
    else:
        from rdlab.design.optimise import read_history

        history = read_history(folder) if (folder / HISTORY).is_file() else []
        metrics = {"final_loss": history[-1]["loss"] if history else None}
    name, value, _ = headline(metrics)
    return SeedResult(seed, str(folder), "finished" if finished else "stopped", name, value)


def run_seeds(config: DesignConfig, seeds: list[int], out: str | Path, *,
              scheduler: str | None = None, n_workers: int | None = None,
              on_result: Callable[[SeedResult], None] | None = None, **options) -> dict:
    """Run ``config`` for each of ``seeds`` into ``out/seed-<n>`` and write the summary.

    Parameters
    ----------
    config : DesignConfig
        The experiment.
    seeds : list of int
        The seeds (see :func:`parse_seeds`).
    out : str or Path
        The folder of the seed folders and the summary (locked for the whole command).
    scheduler : str or None, optional
        A dask scheduler address (``tcp://host:8786``), :data:`IN_PROCESS` to run the seeds
        one after another in this process, or None (default) for a local cluster.
    n_workers : int or None, optional
        Worker processes of the local cluster (default one per core).
    on_result : callable, optional
        Called with each :class:`SeedResult` as it arrives.
    **options
        ``fresh``, ``time_budget_s``, ``evaluate``, ``n_controls`` of :func:`run_seed`.

    Returns
    -------
    dict
        The summary, as written to ``out/seeds.json``.

    Raises
    ------
    ParameterError
        Bad cluster options, or a scheduler that does not answer.
    OutputError
        When another command holds ``out``.
    """
    check_cluster_options(scheduler, n_workers)
    out = Path(out)
    jobs = [(seed, str(out / f"seed-{seed}")) for seed in seeds]
    # the scheduler is reached first: one that does not answer leaves nothing behind
    with connect(scheduler, n_workers) as client, hold(out):
        out.mkdir(parents=True, exist_ok=True)
        if client is None:
            results = []
            for seed, folder in jobs:
                results.append(run_seed(config, seed, folder, **options))
                if on_result is not None:
                    on_result(results[-1])
        else:
            results = _on_cluster(client, config, jobs, on_result, options)
        summary = summarise(config.name, results, out)
        write_summary(out, summary)
    return summary


def _on_cluster(client, config: DesignConfig, jobs: list[tuple[int, str]], on_result,
                options: dict) -> list[SeedResult]:
    """Run the seeds as dask tasks of ``client`` and return their results as they arrive."""
    from dask.distributed import as_completed

    futures = [client.submit(run_seed, config, seed, folder, threads=1, pure=False, **options)
               for seed, folder in jobs]
    results = []
    for future in as_completed(futures, loop=client.loop):
        results.append(future.result())
        if on_result is not None:
            on_result(results[-1])
    return results


def summarise(name: str, results: list[SeedResult], out: str | Path) -> dict:
    """Return the summary of the seeds' results: per seed, mean ± std, best seed.

    Parameters
    ----------
    name : str
        The config's name.
    results : list of SeedResult
        One per seed, in any order.
    out : str or Path
        The output folder (named in the summary).

    Returns
    -------
    dict
        ``config``, ``folder``, ``metric``, ``higher_is_better``, ``seeds`` (one entry per
        seed, by seed), ``mean``, ``std`` (population, over the seeds with a value), ``n``,
        ``best`` (seed, folder, value; None without values) and ``failed`` (the seeds).
    """
    results = sorted(results, key=lambda r: r.seed)
    named = next((r.metric for r in results if r.metric is not None), None)
    up = named != "final_loss" if named is not None else True
    values = [(r.value, r) for r in results if r.value is not None]
    nums = [v for v, _ in values]
    mean = sum(nums) / len(nums) if nums else None
    std = math.sqrt(sum((v - mean) ** 2 for v in nums) / len(nums)) if nums else None
    best = (max if up else min)(values, key=lambda vr: vr[0])[1] if values else None
    return {"config": name, "folder": str(out), "metric": named, "higher_is_better": up,
            "seeds": [asdict(r) for r in results], "n": len(nums), "mean": mean, "std": std,
            "best": None if best is None else {"seed": best.seed, "folder": best.folder,
                                               "value": best.value},
            "failed": [r.seed for r in results if r.status == "failed"]}


def write_summary(out: str | Path, summary: dict) -> None:
    """Write ``summary`` to ``out/seeds.json`` and its table to ``out/seeds.md``, atomically.

    Parameters
    ----------
    out : str or Path
        The output folder.
    summary : dict
        From :func:`summarise`.
    """
    out = Path(out)
    atomic_write_text(out / SUMMARY_JSON, json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / SUMMARY_MD, summary_table(summary))


def _fmt(value: float | None) -> str:
    """Return ``value`` to 4 significant digits, or a dash."""
    return "–" if value is None else f"{value:.4g}"


def summary_table(summary: dict) -> str:
    """Return the summary as a short Markdown table (one row per seed, then mean ± std, best).

    Parameters
    ----------
    summary : dict
        From :func:`summarise`.

    Returns
    -------
    str
        The Markdown text.
    """
    better = "higher" if summary["higher_is_better"] else "lower"
    lines = [f"# {summary['config']}: {len(summary['seeds'])} seeds", "",
             f"Headline: {summary['metric']} ({better} is better).", "",
             "| seed | status | value | folder |", "|---:|---|---:|---|"]
    for r in summary["seeds"]:
        note = f" ({r['error']})" if r["error"] else ""
        lines.append(f"| {r['seed']} | {r['status']}{note} | {_fmt(r['value'])} "
                     f"| {r['folder']} |")
    lines += ["", f"Mean ± std over {summary['n']} seeds: {_fmt(summary['mean'])} ± "
                  f"{_fmt(summary['std'])}."]
    if summary["best"] is not None:
        b = summary["best"]
        lines.append(f"Best: seed {b['seed']} ({_fmt(b['value'])}), {b['folder']}.")
    if summary["failed"]:
        lines.append(f"Failed: seeds {', '.join(map(str, summary['failed']))}.")
    return "\n".join(lines) + "\n"
