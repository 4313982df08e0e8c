"""``rdlab discover``: the Discover job (reaction networks from concentration data)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from rdlab.checks import parse_float, time_budget_option
from rdlab.cli.errors import fail
from rdlab.discover.examples import example_help
from rdlab.errors import ParameterError, RdlabError

#: Time budget of a fit when the command gives none, seconds.
DEFAULT_TIME_BUDGET_S = 120.0


def _parse_sweep(text: str | None, most: int) -> tuple[int, ...] | None:
    """``LOW:HIGH`` or ``N1,N2,...``: numbers of reactions, each in 1 … ``most``."""
    if text is None:
        return None
    form = "--sweep takes LOW:HIGH (e.g. 1:4) or a comma list of integers (e.g. 1,2,4)"
    try:
        parts = [int(x) for x in text.split(":" if ":" in text else ",")]
    except ValueError:
        raise ParameterError(f"{form}, got {text!r}") from None
    if ":" in text:
        if len(parts) != 2:
            raise ParameterError(f"{form}, got {text!r}")
        lo, hi = parts
        if lo > hi:
            raise ParameterError(f"--sweep {text!r} is empty: LOW ({lo}) is above HIGH "
                                 f"({hi})")
        if hi > most:
            raise ParameterError(f"--sweep {text!r}: numbers of reactions must be in 1 … "
                                 f"{most}, got {hi}")
        values = tuple(range(lo, hi + 1))
    else:
        values = tuple(parts)
    bad = [n for n in values if not 1 <= n <= most]
    if bad:
        raise ParameterError(f"--sweep {text!r}: numbers of reactions must be in 1 … {most}, "
                             f"got {bad[0]}")
    return values


def _check_options(reactions: int | None, noise: float, derivatives: str | None,
                   tolerance: float, seed: int, most: int) -> None:
    """Refuse options no run can use, before any data are read or generated."""
    from rdlab.discover.derivatives import METHODS

    if reactions is not None and not 1 <= reactions <= most:
        raise ParameterError(f"--reactions must be a number of reactions in 1 … {most}, got "
                             f"{reactions}")
    if not math.isfinite(tolerance) or tolerance <= 0:
        raise ParameterError(f"--tolerance must be a finite number > 0, got {tolerance}")
    if not math.isfinite(noise) or noise < 0:
        raise ParameterError(f"--noise must be a finite number ≥ 0, got {noise}")
    if derivatives is not None and derivatives not in METHODS:
        raise ParameterError(f"--derivatives must be one of {', '.join(METHODS)}; got "
                             f"{derivatives!r}")
    if not 0 <= seed < 2**32:
        raise ParameterError(f"--seed must be an integer in 0 … {2**32 - 1}, got {seed}")


def discover(
    data: Annotated[Path | None, typer.Argument(
        help="Concentrations (CSV: columns sample, time, \\[temperature], one per species, "
             "optional dX/dt columns; or a zarr store from `rdlab discover`).")] = None,
    example: Annotated[str | None, typer.Option(
        help=f"Run a built-in example instead: {example_help()}.")] = None,
    reactions: Annotated[int | None, typer.Option(
        help="Number of proposed reactions, ≥ 1; a reversible pair (A <-> B) counts as one "
             "(default: the example's; for a data file, a sweep of 1 … one per species).")
    ] = None,
    sweep: Annotated[str | None, typer.Option(
        help="Try several numbers of reactions, e.g. 1:4, and keep the smallest that "
             "fits; numbers below the rank of the concentration changes are skipped and "
             "the sweep stops at the first that converges.")] = None,
    catalytic: Annotated[bool | None, typer.Option(
        "--catalytic/--no-catalytic",
        help="Learn reactant orders apart from stoichiometry (catalysis).")] = None,
    freezing: Annotated[bool, typer.Option(
        help="Partial-parameter freezing; --no-freezing is the paper's baseline.")] = True,
    noise: Annotated[float, typer.Option(parser=parse_float,
        help="Multiplicative Gaussian noise level put on the concentrations (seeded by "
             "--seed); exact derivatives of an example are kept, --derivatives estimates "
             "them from the noisy concentrations.")] = 0.0,
    noise_on: Annotated[str, typer.Option(
        help="What --noise perturbs: concentrations (a measurement's noise) or derivatives "
             "(the paper's §4 test: an example's exact derivatives, concentrations "
             "exact).")] = "concentrations",
    derivatives: Annotated[str | None, typer.Option(
        help="Estimate derivatives from the concentrations: fd, spline or smoothing.")] = None,
    target: Annotated[str | None, typer.Option(
        help="What the mechanism must reproduce: trajectories (the measured "
             "concentrations, integrated from each sample's first state), derivatives, or "
             "auto (default: trajectories when the data have no derivatives).")] = None,
    time_budget: Annotated[str | None, typer.Option(
        metavar="DURATION",
        help="Time budget of the fit (of each n_r in a sweep), with a unit: 90s, 20m, 1.5h "
             "(default 2m).")] = None,
    budget: Annotated[float | None, typer.Option(parser=parse_float,
        hidden=True, help="Deprecated: --time-budget Ns.")] = None,
    tolerance: Annotated[float, typer.Option(parser=parse_float,
        help="Derivative target: accept a mechanism when every species' relative "
             "derivative error is below this (or 3× the noise level).")] = 1e-4,
    seed: Annotated[int, typer.Option(
        help="Seed of the split, the initialisation, an example's data and the noise.")] = 1,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default runs/discover/NAME).")] = None,
) -> None:
    """Learn a reaction mechanism (stoichiometry and rates) from concentration data."""
    from rdlab.discover.examples import example as get_example
    from rdlab.discover.workflow import (
        MAX_REACTIONS,
        DiscoverSettings,
        run_discovery,
    )

    try:
        if (data is None) == (example is None):
            raise ParameterError("give either a DATA file or --example NAME (not both)")
        if reactions is not None and sweep is not None:
            raise ParameterError("give --reactions N or --sweep LOW:HIGH, not both")
        seconds = time_budget_option(time_budget, budget, "--budget", "s")
        _check_options(reactions, noise, derivatives, tolerance, seed, MAX_REACTIONS)
        n_values = _parse_sweep(sweep, MAX_REACTIONS)
        source = get_example(example) if example is not None else Path(data)
        est = _estimator_params(freezing, seconds, tolerance, seed, catalytic, target)
        settings = DiscoverSettings(n_reactions=reactions, sweep=n_values, noise=noise,
                                    noise_on=noise_on,
                                    derivatives=derivatives, data_seed=seed, estimator=est)
        name = example if example is not None else Path(data).stem
        folder = out or Path("runs/discover") / name
        report = run_discovery(source, folder, settings)
    except RdlabError as exc:
        fail(exc)
    _print_report(report, folder)


def _estimator_params(freezing: bool, seconds: float | None, tolerance: float, seed: int,
                      catalytic: bool | None, target: str | None) -> dict:
    """Return the :class:`~rdlab.discover.estimator.ReactionDiscovery` parameters of the options."""
    est: dict = {"freezing": freezing,
                 "time_budget_s": DEFAULT_TIME_BUDGET_S if seconds is None else seconds,
                 "tolerance": tolerance,
                 "seed": seed}
    if catalytic is not None:
        est["catalytic"] = catalytic
    if target is not None:
        est["target"] = target
    return est


def _print_report(report: dict, folder: Path) -> None:
    """Print the mechanism, the fit, the warnings and what was (not) written."""
    fit = report["fit"]
    if (folder / "mechanism.txt").is_file():
        typer.echo((folder / "mechanism.txt").read_text())
    status = "converged" if fit["converged"] else "NOT CONVERGED"
    if fit.get("target"):
        status += f" ({fit['target']} target)"
    typer.echo(f"{status}: validation error {fit['validation_error']:.3e} in "
               f"{fit['seconds']:.1f} s ({fit['epochs']} epochs, {fit['restarts']} restarts)")
    if fit.get("element_balances"):
        typer.echo(f"conserved elements from the species formulas: "
                   f"{', '.join(fit['element_balances'])} (the data conserve them)")
    done = fit.get("completion")
    if done and done.get("orphans"):
        said = "; ".join(f"{o['species']} ({o['chi2']:.0f} σ²)" for o in done["orphans"])
        verdict = ("kept: the completed fit reproduces the data better" if done["accepted"]
                   else "not kept")
        typer.echo(f"species that no reaction of the fit changes but the data do: {said}; "
                   f"added {'; '.join(done['added'])} ({verdict})")
    elif done:
        verdict = ("kept: the completed fit agrees with their noise" if done["accepted"]
                   else "not kept: it did not reproduce the data to their noise")
        typer.echo(f"the search's fit missed the data by more than the element balances' noise; "
                   f"added {'; '.join(done['added'])} ({verdict})")
    if "default_sweep" in report:
        typer.echo(report["default_sweep"])
    if "sweep" in report:
        sw = report["sweep"]
        typer.echo(f"sweep: {len(sw['n_reactions'])} fit(s), n_r = {sw['chosen']} chosen, in "
                   f"{report['fit_seconds_total']:.1f} s in all (sweep.txt)")
    if report.get("pruned"):
        typer.echo(f"dropped as negligible against the data: {'; '.join(report['pruned'])}")
    if "exact" in report:
        typer.echo(f"stoichiometry equals the truth: {report['exact']}; largest rate error "
                   f"{report['comparison']['max_rate_error']:.2e}")
    for warning in report["warnings"]:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    written = [n for n in report["outputs"] if (folder / n).exists()]
    missing = [*report["missing_outputs"],
               *(n for n in report["outputs"] if n not in written)]
    typer.echo(f"outputs in {folder}: {', '.join(written)}")
    if missing:
        typer.secho(f"not written: {', '.join(missing)} (see the warnings and report.json)",
                    fg=typer.colors.YELLOW, err=True)
