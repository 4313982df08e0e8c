"""``rdlab simulate``: the Simulate job (one run or a sweep, written as a run folder)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rdlab.checks import parse_float
from rdlab.chemistry.presets import n_species_help, preset_help
from rdlab.cli.errors import fail, write_error
from rdlab.cli.options import (
    add_parameter,
    extra_parameters,
    given,
    parse_assignment,
    parse_species_values,
)
from rdlab.errors import ParameterError, RdlabError
from rdlab.simulate.engines import engine_help

if TYPE_CHECKING:
    from rdlab.simulate_job.spec import SimulationSpec

#: Options that may accompany ``--config`` (the rest would be ignored, so they are refused).
WITH_CONFIG = {"config", "out", "threads", "classify"}


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
    classify: Annotated[bool, typer.Option(
        "--classify", metavar="[MODEL]",
        help="Then label every sample with a Gray–Scott pattern CNN (as `rdlab classify RUN "
        "MODEL`): 'bundled' (the default) or 'bundled-3d' (the shipped 2-D and time-stack "
        "CNNs), a model file or training folder. The run must match the model's training data "
        "and store its frames; both are checked before simulating.")] = False,
) -> None:
    """Simulate a network on a grid (or well mixed) and write a run folder.

    The run folder holds the config, a zarr dataset, pictures and a movie. Sweeps run as
    one batch. Everything is checked before the simulation starts; the run folder changes
    only when the run succeeds (a failed run leaves the previous one as it was).
    """
    from rdlab.simulate_job.run import run_simulation

    labels, model = None, None
    try:
        if classify:
            model, ctx.args = _classify_model(list(ctx.args))
        spec = _spec_from_config(ctx, config) if config is not None else _spec_from_options(ctx)
        if model is not None:
            _check_classifiable(spec, model)
        if threads is not None:
            _set_threads(threads)
        folder = out or _default_out(spec.name)
        metrics = run_simulation(spec, folder)
        if model is not None:
            from rdlab.classify.label_run import classify_run

            labels = classify_run(folder, model)
    except RdlabError as exc:
        fail(exc)
    except OSError as exc:  # e.g. a full disk while writing
        fail(write_error(exc, out))
    typer.echo(f"wrote {folder}  ({metrics['samples']} sample(s), {metrics['steps']} steps, "
               f"{metrics['wall_seconds']:.1f} s, "
               f"{metrics['cell_updates_per_second'] / 1e6:.3g} M cell-updates/s)")
    if labels is not None:
        from rdlab.cli.classify import print_run_labels

        print_run_labels(folder, labels)


def _classify_model(args: list[str]) -> tuple[str, list[str]]:
    """Return the MODEL of ``--classify [MODEL]`` ('bundled' when none) and the other leftovers.

    The option parser leaves MODEL among the leftover ``--NAME VALUE`` parameters: it is the
    one argument that is neither a ``--NAME`` nor the value after one.
    """
    rest, strays, i = [], [], 0
    while i < len(args):
        if args[i].startswith("--") and "=" not in args[i] and i + 1 < len(args) \
                and not args[i + 1].startswith("--"):
            rest += args[i:i + 2]
            i += 2
            continue
        (rest if args[i].startswith("--") else strays).append(args[i])
        i += 1
    if len(strays) > 1:
        raise ParameterError(f"--classify takes one MODEL, got {' '.join(strays)}")
    return (strays[0] if strays else "bundled"), rest


def _check_classifiable(spec: SimulationSpec, model: str) -> None:
    """Refuse, before simulating, a run that ``--classify MODEL`` could not label."""
    import copy

    from rdlab.classify.cnn import load_model
    from rdlab.classify.evaluation import resolve_model_path
    from rdlab.classify.label_run import check_run, training_settings
    from rdlab.simulate_job.run import snapshot_steps

    path = resolve_model_path(model)
    network, classes, meta = load_model(path)
    resolved = copy.deepcopy(spec)
    system, _ = resolved.resolve()
    check_run(system, float(resolved.dt), snapshot_steps(int(resolved.steps),
                                                         int(resolved.snapshots)),
              training_settings(network, meta, path), "this run")


def _spec_from_config(ctx: typer.Context, config: Path) -> SimulationSpec:
    """Read the spec of ``--config``, refusing other options that it would ignore."""
    from rdlab.simulate_job.spec import SimulationSpec

    others = sorted(set(given(ctx, ctx.params)) - WITH_CONFIG)
    if others or ctx.args:
        shown = [f"--{n.replace('_', '-')}" for n in others] + list(ctx.args)
        raise ParameterError(
            f"--config reruns {str(config)!r} as it is; {' '.join(shown)} would be "
            "ignored (only --out and --threads may be given with --config)")
    return SimulationSpec.from_file(config)


def _spec_from_options(ctx: typer.Context) -> SimulationSpec:
    """Build and check the spec from the parsed options (``ctx.params``) and leftovers."""
    from rdlab.simulate_job.spec import SimulationSpec

    p = ctx.params
    engine = p["engine"]
    if p["grid"] is not None and p["grid"].strip().lower() == "none" \
            and not given(ctx, ["engine"]):
        engine = "ode"
    network = p["network"]
    runaway = p["runaway_limit"]
    spec = SimulationSpec(
        preset=None if network else p["preset"],
        network_file=str(network) if network else None,
        n_species=p["n_species"], parameters=_parameters(p["param"], list(ctx.args)),
        grid=p["grid"], dx=p["dx"], stencil=p["stencil"], dt=p["dt"], steps=p["steps"],
        snapshots=p["snapshots"], initial=p["initial"], initial_options=_initial_options(p),
        seed=p["seed"], engine=engine, dtype=p["dtype"], movie=p["movie"],
        **({} if runaway is None else {"runaway_limit": runaway}),
    )
    spec.validate()
    return spec


def _parameters(assignments: list[str] | None, leftovers: list[str]) -> dict[str, str]:
    """Collect ``--set NAME=VALUE`` and ``--NAME VALUE`` parameters, each name once."""
    params: dict[str, str] = {}
    for text in assignments or []:
        add_parameter(params, *parse_assignment(text, "--set"), "--set")
    return extra_parameters(leftovers, params)


def _initial_options(p: dict[str, Any]) -> dict[str, Any]:
    """Collect the initial-state options that were given (squares, base, noise)."""
    options: dict[str, Any] = {}
    for key, value in (("square", parse_species_values(p["square"], "--square")),
                       ("base", parse_species_values(p["base"], "--base")),
                       ("n_squares", p["n_squares"]), ("size", p["square_size"]),
                       ("noise", p["noise"])):
        if value is not None:
            options[key] = value
    return options


def _set_threads(threads: int) -> None:
    """Let numba and torch use ``threads`` threads (1 … the cores numba may use)."""
    import numba

    most = int(numba.config.NUMBA_NUM_THREADS)
    if not 1 <= threads <= most:
        raise ParameterError(f"--threads must be between 1 and {most} (the cores numba may "
                             f"use), got {threads}")
    import torch

    numba.set_num_threads(threads)
    torch.set_num_threads(threads)


def _default_out(name: str) -> Path:
    """Return ``runs/NAME-YYYYmmdd-HHMMSS``."""
    return Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
