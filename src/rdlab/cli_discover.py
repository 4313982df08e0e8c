"""``rdlab discover``: the Discover job (reaction networks from concentration data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rdlab.cli_errors import fail as _fail
from rdlab.errors import ParameterError, RdlabError


def _parse_sweep(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        if ":" in text:
            lo, hi = (int(x) for x in text.split(":"))
            values = tuple(range(lo, hi + 1))
        else:
            values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ParameterError(f"--sweep takes LOW:HIGH or a comma list of integers, got "
                             f"{text!r}") from None
    if not values or min(values) < 1:
        raise ParameterError(f"--sweep needs numbers of reactions ≥ 1, got {text!r}")
    return values


def discover(
    data: Annotated[Path | None, typer.Argument(
        help="Concentrations (CSV: columns sample, time, [temperature], one per species, "
             "optional dX/dt columns; or a zarr store from `rdlab discover`).")] = None,
    example: Annotated[str | None, typer.Option(
        help="Run a built-in example instead: stiff, michaelis-menten, "
             "michaelis-menten-arrhenius, hydrogen-oxidation, zeldovich, gri30-simplified, "
             "autocatalytic.")] = None,
    reactions: Annotated[int | None, typer.Option(
        help="Number of proposed reactions (default: the example's).")] = None,
    sweep: Annotated[str | None, typer.Option(
        help="Try several numbers of reactions, e.g. 1:4, and keep the smallest that "
             "fits.")] = None,
    catalytic: Annotated[bool | None, typer.Option(
        "--catalytic/--no-catalytic",
        help="Learn reactant orders apart from stoichiometry (catalysis).")] = None,
    freezing: Annotated[bool, typer.Option(
        help="Partial-parameter freezing; --no-freezing is the paper's baseline.")] = True,
    noise: Annotated[float, typer.Option(
        help="Multiplicative Gaussian noise level added to the derivatives.")] = 0.0,
    derivatives: Annotated[str | None, typer.Option(
        help="Estimate derivatives from the concentrations: fd, spline or smoothing.")] = None,
    budget: Annotated[float, typer.Option(help="Time budget of the fit, seconds.")] = 120.0,
    tolerance: Annotated[float, typer.Option(
        help="Accept a mechanism when every species' relative derivative error is below "
             "this (or 3× the noise level).")] = 1e-4,
    seed: Annotated[int, typer.Option(help="Seed of the split and the initialisation.")] = 1,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default runs/discover/NAME).")] = None,
) -> None:
    """Learn a reaction mechanism (stoichiometry and rates) from concentration data."""
    from rdlab.discover.workflow import DiscoverSettings, run_discovery

    try:
        if (data is None) == (example is None):
            raise ParameterError("give either a DATA file or --example NAME (not both)")
        est: dict = {"freezing": freezing, "time_budget": budget, "tolerance": tolerance,
                     "seed": seed}
        if catalytic is not None:
            est["catalytic"] = catalytic
        settings = DiscoverSettings(n_reactions=reactions, sweep=_parse_sweep(sweep),
                                    noise=noise, derivatives=derivatives, estimator=est)
        name = example if example is not None else Path(data).stem
        folder = out or Path("runs/discover") / name
        report = run_discovery(example if example is not None else data, folder, settings)
    except RdlabError as exc:
        _fail(exc)
        return
    fit = report["fit"]
    typer.echo((folder / "mechanism.txt").read_text())
    status = "converged" if fit["converged"] else "NOT CONVERGED"
    typer.echo(f"{status}: validation error {fit['validation_error']:.3e} in "
               f"{fit['seconds']:.1f} s ({fit['epochs']} epochs, {fit['restarts']} restarts)")
    if "exact" in report:
        typer.echo(f"stoichiometry equals the truth: {report['exact']}; largest rate error "
                   f"{report['comparison']['max_rate_error']:.2e}")
    if "warning" in report:
        typer.secho(f"warning: {report['warning']}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"outputs in {folder}")


def register(app: typer.Typer) -> None:
    app.command()(discover)
