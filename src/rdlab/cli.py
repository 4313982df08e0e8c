"""The ``rdlab`` command line: ``rdlab simulate | demo`` here, the Classify commands
(``dataset``, ``scan``, ``train``, ``evaluate``, ``saliency``, ``classify``, ``paper``) in
:mod:`rdlab.cli_patterns`.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from rdlab.checks import parse_float
from rdlab.chemistry.presets import n_species_help, preset_help
from rdlab.cli_design import register as register_design
from rdlab.cli_discover import register as register_discover
from rdlab.cli_errors import fail as _fail
from rdlab.cli_patterns import register as register_patterns
from rdlab.errors import OutputError, ParameterError, RdlabError
from rdlab.simulate.engines import engine_help

app = typer.Typer(
    help="rdlab: reaction networks and reaction–diffusion systems — simulate, classify, "
    "design, discover.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


@app.callback()
def _on_start() -> None:
    # SIGTERM (kill, a batch system's time limit) ends rdlab like Ctrl-C does: by an
    # exception, so that staging folders, temporary stores and owner files are removed on
    # the way out instead of being left beside the outputs until the next run.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def _parse_assignment(text: str, what: str) -> tuple[str, str]:
    """``"NAME=VALUE"`` → ``(NAME, VALUE)`` (stripped), or a ParameterError naming ``text``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ParameterError(f"{what} {text!r} is not of the form NAME=VALUE")
    return name.strip(), value.strip()


def _parse_species_values(text: str | None, what: str) -> dict[str, float] | None:
    """``"U=0.5,V=0.25"`` → ``{"U": 0.5, "V": 0.25}``: finite numbers, each name once."""
    if text is None:
        return None
    out: dict[str, float] = {}
    for item in text.split(","):
        name, value = _parse_assignment(item, what)
        if name in out:
            raise ParameterError(f"{what}: {name!r} is given twice in {text!r}")
        try:
            number = parse_float(value)
        except ValueError:
            raise ParameterError(f"{what}: {value!r} for {name!r} is not a number") from None
        if not math.isfinite(number):
            raise ParameterError(f"{what}: {value!r} for {name!r} is not a finite number")
        out[name] = number
    return out


def _add_parameter(params: dict[str, str], name: str, value: str, how: str) -> None:
    if name in params:
        raise ParameterError(f"parameter {name!r} is given twice ({how}); give each once")
    params[name] = value


def _extra_parameters(args: list[str], params: dict[str, str] | None = None
                      ) -> dict[str, str]:
    """``--f 0.02:0.06:9 --k 0.05`` (or ``--f=...``) left over by the option parser, added
    to ``params`` (a parameter given twice is refused).
    """
    params = {} if params is None else params
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise ParameterError(f"unexpected argument {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if not name:
            raise ParameterError(f"unexpected argument {arg!r}")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ParameterError(f"parameter --{name} needs a value")
            value = args[i + 1]
            i += 1
        _add_parameter(params, name, value, f"--{name}")
        i += 1
    return params


def _set_threads(threads: int) -> None:
    import numba

    most = int(numba.config.NUMBA_NUM_THREADS)
    if not 1 <= threads <= most:
        raise ParameterError(f"--threads must be between 1 and {most} (the cores numba may "
                             f"use), got {threads}")
    import torch

    numba.set_num_threads(threads)
    torch.set_num_threads(threads)


def _given(ctx: typer.Context, names) -> list[str]:
    """The options among ``names`` that were given on the command line."""
    # compared by name: typer may bring its own copy of click's ParameterSource
    return [n for n in names
            if getattr(ctx.get_parameter_source(n), "name", None) == "COMMANDLINE"]


#: Options that may accompany ``--config`` (the rest would be ignored, so they are refused).
_WITH_CONFIG = {"config", "out", "threads"}


def _default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def simulate(
    ctx: typer.Context,
    preset: Annotated[str, typer.Option(
        help=f"Preset network — {preset_help()}.")] = "gray-scott",
    network: Annotated[Path | None, typer.Option(
        help="Network file: YAML, SBML (.xml/.sbml) or Antimony (.ant/.antimony); "
        "overrides --preset.")] = None,
    n_species: Annotated[int | None, typer.Option(help=n_species_help())] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--set", help="Parameter NAME=VALUE; VALUE may be a sweep 'start:stop:count' or "
        "'v1,v2'. Shortcut: --NAME VALUE, e.g. --f 0.02:0.06:9 --k 0.04:0.07:7.")] = None,
    grid: Annotated[str | None, typer.Option(help="'NYxNX', 'N' or 'none' (well mixed).")
                    ] = None,
    dx: Annotated[float, typer.Option(parser=parse_float, help="Cell size (length units).")] = 1.0,
    stencil: Annotated[str, typer.Option(help="5-point or 9-point Laplacian.")] = "9-point",
    dt: Annotated[float | None, typer.Option(parser=parse_float, help="Time step.")] = None,
    steps: Annotated[int | None, typer.Option(help="Number of time steps.")] = None,
    snapshots: Annotated[int, typer.Option(
        help="Snapshots stored, evenly spaced from the first to the last step (≥ 2; at most "
        "steps + 1 distinct ones).")] = 40,
    initial: Annotated[str | None, typer.Option(
        help="Initial state: squares, random or uniform.")] = None,
    square: Annotated[str | None, typer.Option(
        help="Concentrations inside the squares, e.g. 'U=0.5,V=0.25'.")] = None,
    n_squares: Annotated[int | None, typer.Option(help="Number of squares.")] = None,
    square_size: Annotated[int | None, typer.Option(help="Square side in cells.")] = None,
    base: Annotated[str | None, typer.Option(
        help="Background concentrations, e.g. 'U=1,V=0' (default: the feed).")] = None,
    noise: Annotated[float | None, typer.Option(parser=parse_float,
        help="Multiplicative noise on the squares state.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (≥ 0).")] = 0,
    engine: Annotated[str, typer.Option(
        help=f"{engine_help()} (default: fast; ode when --grid none).")] = "fast",
    dtype: Annotated[str, typer.Option(help="float32 or float64.")] = "float64",
    movie: Annotated[str, typer.Option(help="gif, mp4 (needs ffmpeg) or none.")] = "gif",
    runaway_limit: Annotated[float | None, typer.Option(parser=parse_float,
        help="A concentration beyond ±this counts as a blow-up and stops the run (NaN/Inf "
        "always do; default 1e6). Raise it for large but stable systems.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/NAME-TIME).")
                   ] = None,
    config: Annotated[Path | None, typer.Option(
        help="Rerun from a run folder's config.yaml (only --out and --threads may be "
        "given with it).")] = None,
    threads: Annotated[int | None, typer.Option(help="Worker threads (default: all cores).")
                       ] = None,
) -> None:
    """Simulate a network on a grid (or well mixed); write a run folder with the config,
    a zarr dataset, pictures and a movie. Sweeps run as one batch.

    Everything is checked before the simulation starts; the run folder changes only when
    the run succeeds (a failed run leaves the previous one as it was).
    """
    from rdlab.simulate_job.run import run_simulation
    from rdlab.simulate_job.spec import SimulationSpec

    try:
        if config is not None:
            others = sorted(set(_given(ctx, ctx.params)) - _WITH_CONFIG)
            if others or ctx.args:
                shown = [f"--{n.replace('_', '-')}" for n in others] + list(ctx.args)
                raise ParameterError(
                    f"--config reruns {str(config)!r} as it is; {' '.join(shown)} would be "
                    "ignored (only --out and --threads may be given with --config)")
            spec = SimulationSpec.from_file(config)
        else:
            params: dict[str, str] = {}
            for p in param or []:
                _add_parameter(params, *_parse_assignment(p, "--set"), "--set")
            _extra_parameters(list(ctx.args), params)
            init_opts: dict = {}
            for key, value in (("square", _parse_species_values(square, "--square")),
                               ("base", _parse_species_values(base, "--base")),
                               ("n_squares", n_squares), ("size", square_size),
                               ("noise", noise)):
                if value is not None:
                    init_opts[key] = value
            if grid is not None and grid.strip().lower() == "none" \
                    and not _given(ctx, ["engine"]):
                engine = "ode"
            spec = SimulationSpec(
                preset=None if network else preset,
                network_file=str(network) if network else None,
                n_species=n_species, parameters=params, grid=grid, dx=dx, stencil=stencil,
                dt=dt, steps=steps, snapshots=snapshots, initial=initial,
                initial_options=init_opts, seed=seed, engine=engine, dtype=dtype, movie=movie,
                **({} if runaway_limit is None else {"runaway_limit": runaway_limit}),
            )
            spec.validate()
        if threads is not None:
            _set_threads(threads)
        folder = out or _default_out(spec.name)
        metrics = run_simulation(spec, folder)
    except RdlabError as exc:
        _fail(exc)
        return
    except OSError as exc:  # e.g. a full disk while writing
        _fail(OutputError(f"cannot write {str(exc.filename or out)!r}: "
                          f"{exc.strerror or exc}"))
        return
    typer.echo(f"wrote {folder}  ({metrics['samples']} sample(s), {metrics['steps']} steps, "
               f"{metrics['wall_seconds']:.1f} s, "
               f"{metrics['cell_updates_per_second'] / 1e6:.0f} M cell-updates/s)")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("runs/demo"),
    quick: Annotated[bool, typer.Option(help="Shorter runs (for tests).")] = False,
) -> None:
    """A tour: a Gray–Scott gallery of pattern classes and a 5-species dense network,
    written as an HTML report. The report folder changes only when the whole tour
    succeeds.
    """
    from rdlab.demo import run_demo

    try:
        report = run_demo(out, quick=quick)
    except RdlabError as exc:
        _fail(exc)
        return
    except OSError as exc:
        _fail(OutputError(f"cannot write {str(exc.filename or out)!r}: "
                          f"{exc.strerror or exc}"))
        return
    typer.echo(f"open {report}")


register_patterns(app)
register_discover(app)
register_design(app)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
