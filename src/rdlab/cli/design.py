"""``rdlab design``: the Design job (differentiable inverse design, Dense-RDN)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rdlab.checks import parse_float, time_budget_option
from rdlab.cli.errors import fail
from rdlab.errors import ParameterError, RdlabError


def design(
    config: Annotated[str | None, typer.Argument(
        help="Config file (YAML/TOML) or a bundled config name (see --list), e.g. "
             "fig2a-quick.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default runs/design/NAME, with --seeds runs/design/NAME-seeds). "
             "Rerun the same command to resume.")
    ] = None,
    target: Annotated[Path | None, typer.Option(
        help="Target image for the pattern loss (any image; replaces the config's).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config key, e.g. --set optimiser.steps=200 (a key of a "
        "section may also be given alone: --set steps=200; repeatable).")] = None,
    time_budget: Annotated[str | None, typer.Option(
        metavar="DURATION",
        help="Stop optimising after this long, with a unit: 90s, 20m, 1.5h (resumable; "
             "replaces the config's optimiser.time_budget_s).")] = None,
    minutes: Annotated[float | None, typer.Option(parser=parse_float,
        hidden=True, help="Deprecated: --time-budget Mm.")] = None,
    fresh: Annotated[bool, typer.Option(
        help="Start again instead of resuming; the folder's old run is kept until the new "
             "one has a result, then replaced whole.")] = False,
    evaluate: Annotated[bool, typer.Option(
        help="Run the checks, controls, figures and exports afterwards.")] = True,
    controls: Annotated[int | None, typer.Option(
        help="Randomisations per control condition (default: the config's).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the bundled configs.")] = False,
    seeds: Annotated[str | None, typer.Option(
        metavar="SEEDS",
        help="Run these seeds of the config, A:B (A to B-1) or 1,4,7, as dask tasks, each "
             "into OUT/seed-<n>, and summarise them in OUT/seeds.json and seeds.md "
             "(rerun to resume).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="With --seeds: a dask scheduler address (tcp://host:8786), or in-process to "
             "run the seeds one after another here (default: a local cluster).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="With --seeds: worker processes of the local cluster (default: one per "
             "core).")] = None,
) -> None:
    """Optimise a dense reaction–diffusion network against the behaviour in CONFIG's loss.

    Rates, diffusion, drive and the generator of initial conditions are optimised together.
    Config, --set values, target and the folder's checkpoint are checked first.
    The run folder is locked; a refused command changes nothing in it.
    Rerun the same command to resume; a rerun with other settings is refused.
    --fresh keeps the old run until the new one has a result (finished, or
    stopped by --time-budget), then replaces it whole; interrupted, it keeps the old.
    --seeds runs one run folder per seed (OUT/seed-<n>) and a summary of them.
    """
    try:
        from rdlab.design.config import (
            MAX_COUNT,
            bundled_configs,
            load_config,
            parse_overrides,
        )
        from rdlab.design.run import run_design

        if list_:
            for name, path in sorted(bundled_configs().items()):
                typer.echo(f"{name:22s} {path}")
            return
        if config is None:
            raise ParameterError("give a config file or a bundled config name (see --list)")
        seconds = time_budget_option(time_budget, minutes, "--minutes", "m")
        if controls is not None and not 1 <= controls <= MAX_COUNT:
            raise ParameterError(f"--controls must be at least 1 randomisation per control "
                                 f"condition (at most {MAX_COUNT:,}), got {controls}")
        cfg = load_config(config, **parse_overrides(set_))
        if target is not None:
            cfg = _with_target(cfg, target, config)
        default = cfg.name if seeds is None else f"{cfg.name}-seeds"
        folder = out if out is not None else Path("runs/design") / default
        _check_without_seeds(seeds, scheduler, workers)
        if seeds is not None:
            _run_seeds(cfg, seeds, folder, scheduler, workers, fresh=fresh,
                       time_budget_s=seconds, evaluate=evaluate, n_controls=controls)
            return
        done = run_design(cfg, folder, fresh=fresh, time_budget_s=seconds, evaluate=evaluate,
                          n_controls=controls)
        if done.finished:
            typer.echo(f"optimised: {folder} ({done.steps} steps)")
        else:
            typer.echo(f"stopped after {done.steps} steps; rerun the same command (without "
                       f"--fresh) to resume: {folder}")
        if done.metrics is not None:
            shown = {k: v for k, v in done.metrics.items() if k not in ("parameters",)}
            typer.echo(json.dumps(shown, indent=1, default=float)[:4000])
    except RdlabError as err:
        fail(err)


def _check_without_seeds(seeds: str | None, scheduler: str | None,
                         workers: int | None) -> None:
    """Refuse ``--scheduler`` or ``--workers`` without ``--seeds``."""
    if seeds is None and (scheduler is not None or workers is not None):
        raise ParameterError(f"--{'scheduler' if scheduler is not None else 'workers'} "
                             "is for --seeds; give --seeds too")


def _run_seeds(cfg, seeds: str, folder: Path, scheduler: str | None, workers: int | None,
               **options) -> None:
    """Run the seeds of ``--seeds``, print each result and the summary; exit 1 on a failure."""
    from rdlab.design.run import check_model
    from rdlab.design.seeds import check_cluster_options, parse_seeds, run_seeds

    chosen = parse_seeds(seeds)
    check_cluster_options(scheduler, workers)
    check_model(cfg)  # a bad model is refused here, not once per seed

    def show(r) -> None:
        value = "" if r.value is None else f" {r.metric} = {r.value:.4g}"
        typer.echo(f"seed {r.seed}: {r.status}{value}{' ' + r.error if r.error else ''} "
                   f"({r.folder})")

    summary = run_seeds(cfg, chosen, folder, scheduler=scheduler, n_workers=workers,
                        on_result=show, **options)
    typer.echo((folder / "seeds.md").read_text())
    if summary["failed"]:
        typer.echo(f"error: {len(summary['failed'])} of {len(chosen)} seeds failed "
                   f"(listed in {folder / 'seeds.json'})", err=True)
        raise typer.Exit(1)


def _with_target(cfg, target: Path, config: str):
    """Return ``cfg`` with the target loss's image replaced by ``target``.

    Refused by name when the config has no target loss, or ``target`` is not an image file.
    """
    if "target" not in cfg.loss:
        raise ParameterError(f"config {config!r} has no target loss to take --target")
    if target.is_dir():
        raise ParameterError(f"--target {str(target)!r} is a folder, not an image file")
    if not target.is_file():
        raise ParameterError(f"--target image {str(target)!r} does not exist")
    return cfg.replace(loss={**cfg.loss, "target": {**(cfg.loss["target"] or {}),
                                                  "image": str(target.resolve())}})

