"""``rdlab design``: the Design job (differentiable inverse design, Dense-RDN)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from rdlab.cli_errors import fail as _fail
from rdlab.errors import ParameterError, RdlabError


def _overrides(pairs: list[str] | None) -> dict:
    out = {}
    for text in pairs or []:
        if "=" not in text:
            raise ParameterError(f"--set takes KEY=VALUE (VALUE in YAML), got {text!r}")
        key, value = text.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def design(
    config: Annotated[str | None, typer.Argument(
        help="Config file (YAML/TOML) or a bundled config name (see --list), e.g. "
             "fig2a-quick.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default runs/design/NAME). Rerun the same command to resume.")
    ] = None,
    target: Annotated[Path | None, typer.Option(
        help="Target image for the pattern loss (any image; replaces the config's).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config key, e.g. --set steps=200 (repeatable).")] = None,
    minutes: Annotated[float | None, typer.Option(
        help="Stop optimising after this many minutes (resumable).")] = None,
    fresh: Annotated[bool, typer.Option(
        help="Start again instead of resuming from the folder's checkpoint.")] = False,
    evaluate: Annotated[bool, typer.Option(
        help="Run the checks, controls, figures and exports afterwards.")] = True,
    controls: Annotated[int | None, typer.Option(
        help="Randomisations per control condition (default: the config's).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the bundled configs.")] = False,
) -> None:
    """Optimise a dense reaction–diffusion network (rates, diffusion, drive, generator of
    initial conditions) against the behaviour written in CONFIG's loss."""
    try:
        from rdlab.design.config import bundled_configs, load_config
        from rdlab.design.optimise import optimise
        from rdlab.design.report import report

        if list_:
            for name, path in sorted(bundled_configs().items()):
                typer.echo(f"{name:22s} {path}")
            return
        if config is None:
            raise ParameterError("give a config file or a bundled config name (see --list)")
        overrides = _overrides(set_)
        cfg = load_config(config, **overrides)
        if target is not None:
            if "target" not in cfg.loss:
                raise ParameterError(f"config {config!r} has no target loss to take --target")
            if not target.is_file():
                raise ParameterError(f"target image {str(target)!r} does not exist")
            cfg.loss["target"] = {**cfg.loss["target"], "image": str(target.resolve())}
        folder = out if out is not None else Path("runs/design") / cfg.name
        seconds = None if minutes is None else 60.0 * minutes
        optimise(cfg, folder, resume=not fresh, max_seconds=seconds)
        typer.echo(f"optimised: {folder}")
        if evaluate:
            metrics = report(folder, n_controls=controls)
            shown = {k: v for k, v in metrics.items() if k not in ("parameters",)}
            typer.echo(json.dumps(shown, indent=1, default=float)[:4000])
    except RdlabError as err:
        _fail(err)


def register(app: typer.Typer) -> None:
    app.command()(design)
