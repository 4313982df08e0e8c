"""``rdlab classify``: the Classify job, one subcommand per step.

Subcommands: ``dataset``, ``scan``, ``train``, ``evaluate``, ``saliency``, ``label`` and
``paper``; ``rdlab classify RUN_FOLDER_OR_STORE [MODEL]`` (no subcommand name) runs
``label``; MODEL defaults to ``bundled``, the 2-D CNN shipped with rdlab (``bundled-3d`` is
the shipped time-stack CNN).

Every command checks its inputs (options, stores, model files) before it simulates, trains
or writes anything; stores and model folders are locked while written; one-shot outputs
(evaluate, saliency, label) appear whole or not at all.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rdlab.checks import parse_float
from rdlab.cli.default_group import DefaultCommandGroup
from rdlab.cli.errors import fail
from rdlab.errors import ParameterError, RdlabError

if TYPE_CHECKING:
    from rdlab.classify.pattern_runs import PatternRunSettings

Scheduler = Annotated[str | None, typer.Option(
    help="dask scheduler address (tcp://host:8786; given up after 10 s without an answer); "
    "default: a local cluster, one worker per core; 'in-process' runs without a cluster.")]
Workers = Annotated[int | None, typer.Option(help="Workers of the local cluster (≥ 1; "
                                             "default: one per core).")]
Model = Annotated[Path, typer.Argument(
    help="Model file, training folder (its best.pt), 'bundled' (the 2-D CNN shipped with "
    "rdlab) or 'bundled-3d' (the shipped time-stack CNN).")]


class ClassifyGroup(DefaultCommandGroup):
    """``rdlab classify``: its subcommands, ``label`` when none is named."""

    default_command = "label"


app = typer.Typer(
    cls=ClassifyGroup,
    name="classify",
    help="Classify Gray–Scott patterns with the CNN of the paper: simulate labelled datasets "
    "and (k, f) scans, train, evaluate, and label every scan point or every sample of an "
    "`rdlab simulate` run. The default subcommand is label: `rdlab classify RUN_OR_SCAN "
    "[MODEL]` is `rdlab classify label RUN_OR_SCAN [MODEL]`. MODEL is a model file, a "
    "training folder, 'bundled' (the 2-D CNN shipped with rdlab, the default for label) or "
    "'bundled-3d' (the shipped time-stack CNN).",
    short_help="Classify Gray–Scott patterns with the paper's CNN: dataset, scan, train, "
    "evaluate, saliency, label (the default), paper.",
    no_args_is_help=True,
)


def _report_store(path: Path, stats: dict, noun: str) -> None:
    """Print how many samples a store holds and how many were simulated (or repaired) now."""
    typer.echo(f"{path}: {stats['samples_total']} {noun} ({stats['samples_run']} simulated now "
               f"in {stats['wall_seconds']:.0f} s, {stats['early_stopped']} stopped early)")
    if stats.get("repaired"):
        typer.echo(f"{path}: {stats['repaired']} samples of damaged blocks were simulated "
                   f"again: {stats['damaged']}")


def _settings(mode: str, stack3d: bool, dtype: str, early_stop: bool) -> PatternRunSettings:
    """Return the paper's run settings with the options given (tests replace this)."""
    from rdlab.classify.pattern_runs import IMAGE_STEPS, STACK_STEPS, PatternRunSettings

    return PatternRunSettings(snapshot_steps=STACK_STEPS if stack3d else IMAGE_STEPS,
                              dtype=dtype, initial_mode=mode, early_stop=early_stop)


@app.command()
def dataset(
    name: Annotated[str, typer.Argument(help="train, val, test, train2 or val2.")],
    out: Annotated[Path | None, typer.Option(help="zarr store (default runs/patterns/"
                                             "NAME[_3d].zarr).")] = None,
    mode: Annotated[str, typer.Option(help="Initial states: 'default' (numpy Generator, both "
                                      "shifts) or 'legacy' (the reference's draws).")] = "default",
    stack3d: Annotated[bool, typer.Option("--3d", help="Store the 10-frame stack of the 3-D "
                                          "variant instead of 3 frames.")] = False,
    dtype: Annotated[str, typer.Option(help="float64 (paper) or float32.")] = "float64",
    early_stop: Annotated[bool, typer.Option(help="Stop runs that are provably steady and "
                                             "homogeneous.")] = True,
    scheduler: Scheduler = None,
    workers: Workers = None,
    block: Annotated[int, typer.Option(help="Samples per task.")] = 8,
) -> None:
    """Simulate a labelled Gray–Scott dataset of the paper (resumable: rerun to finish)."""
    from rdlab.classify.catalogue import dataset_table
    from rdlab.classify.paper_pipeline import PaperSettings, make_dataset

    try:
        dataset_table(name)
        settings = PaperSettings(runs=_settings(mode, stack3d, dtype, early_stop),
                                 scheduler=scheduler, workers=workers, block=block)
        path = out or Path("runs/patterns") / f"{name}{'_3d' if stack3d else ''}.zarr"
        stats = make_dataset(name, path, settings)
    except RdlabError as exc:
        fail(exc)
    _report_store(path, stats, "samples")


def _scan_points(k: str | None, f: str | None):
    """Return the (k, f) points of ``--k``/``--f`` (None: the reference layout)."""
    import numpy as np

    from rdlab.classify.scan_layout import value_grid
    from rdlab.simulate_job.spec import parse_values

    if (k is None) != (f is None):
        raise ParameterError("give both --k and --f, or neither for the reference layout")
    if k is None:
        return None
    given = {"k": k, "f": f}
    values = {name: parse_values(name, text) for name, text in given.items()}
    for name, v in values.items():
        u, counts = np.unique(v, return_counts=True)
        if (counts > 1).any():
            raise ParameterError(f"--{name} {given[name]!r} lists {name} = "
                                 f"{u[counts > 1][0]:g} twice; give each value once")
    return value_grid(values["k"], values["f"])


@app.command()
def scan(
    out: Annotated[Path, typer.Option(help="zarr store.")] = Path("runs/patterns/scan.zarr"),
    k: Annotated[str | None, typer.Option(help="k values: 'min:max:count' or 'v1,v2,...' "
                                          "(default: the reference's 5481-point "
                                          "layout).")] = None,
    f: Annotated[str | None, typer.Option(help="f values: 'min:max:count' or "
                                          "'v1,v2,...'.")] = None,
    mode: Annotated[str, typer.Option(help="Initial states: default or legacy.")] = "default",
    dtype: Annotated[str, typer.Option(help="float64 (paper) or float32.")] = "float64",
    early_stop: Annotated[bool, typer.Option(help="Stop provably steady runs.")] = True,
    scheduler: Scheduler = None,
    workers: Workers = None,
    block: Annotated[int, typer.Option(help="Samples per task.")] = 8,
) -> None:
    """Simulate a (k, f) scan into one zarr store (resumable: rerun to finish)."""
    from rdlab.classify.paper_pipeline import PaperSettings, make_scan

    try:
        points = _scan_points(k, f)
        settings = PaperSettings(runs=_settings(mode, False, dtype, early_stop),
                                 scheduler=scheduler, workers=workers, block=block)
        stats = make_scan(out, settings, points)
    except RdlabError as exc:
        fail(exc)
    _report_store(out, stats, "points")


@app.command()
def train(
    train_data: Annotated[Path, typer.Argument(
        help="Training store (rdlab classify dataset train).")],
    val_data: Annotated[Path, typer.Argument(help="Validation store.")],
    out: Annotated[Path, typer.Option(help="Model folder: best.pt, last.pt, "
                                      "history.jsonl.")] = Path("runs/models/cnn"),
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    patience: Annotated[int | None, typer.Option(help="Early-stopping patience "
                                                 "(epochs).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    legacy_shift: Annotated[bool, typer.Option(help="Augment with the reference's ±1 px shift "
                                               "instead of a periodic translation.")] = False,
    architecture: Annotated[str, typer.Option(help="2d (Table II) or 3d (time-stack variant "
                                              "with its own recipe, docs/classify.md; needs "
                                              "`rdlab classify dataset --3d` stores).")] = "2d",
    time_budget: Annotated[str | None, typer.Option(
        metavar="DURATION",
        help="Wall-time budget with a unit (90s, 20m, 1.5h): stop after the epoch that passes "
             "it.")] = None,
    minutes: Annotated[float | None, typer.Option(parser=parse_float,
        hidden=True, help="Deprecated: --time-budget Mm.")] = None,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, ...")] = "cpu",
) -> None:
    """Train the pattern CNN (resumable: rerun the same command to continue)."""
    from rdlab.checks import time_budget_option
    from rdlab.classify.paper_pipeline import train_model
    from rdlab.classify.training import RECIPE_3D

    overrides: dict[str, Any] = dict(RECIPE_3D) if architecture == "3d" else {}
    overrides.update({k: v for k, v in (("epochs", epochs), ("patience", patience),
                                        ("seed", seed)) if v is not None})
    overrides["architecture"] = architecture
    overrides["device"] = device
    if legacy_shift:
        from rdlab.classify.augment import AugmentConfig

        overrides["augment"] = AugmentConfig(legacy_shift=True).to_dict()
    try:
        seconds = time_budget_option(time_budget, minutes, "--minutes", "m")
        if seconds is not None:
            overrides["time_budget_s"] = seconds
        result = train_model(train_data, val_data, out, overrides)
    except RdlabError as exc:
        fail(exc)
    best = result.get("best_val_accuracy")
    typer.echo(f"{out}: best val accuracy "
               f"{'none (no validation)' if best is None else f'{best:.4f}'} "
               f"(epoch {result.get('best_epoch')}, {result['epochs_run']} epochs, stopped by "
               f"{result['stop_reason']})")


@app.command()
def evaluate(
    model: Model,
    data: Annotated[list[Path], typer.Argument(help="Labelled stores (NAME.zarr).")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/evaluation"),
) -> None:
    """Write accuracy curves and confusion matrices (PNG + JSON) of a model on datasets."""
    from rdlab.classify.evaluation import evaluate_datasets

    try:
        names = [p.stem for p in data]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ParameterError(f"two datasets are named {twice[0]!r} (their results would "
                                 "share one file); evaluate them in separate runs")
        summary = evaluate_datasets(model, dict(zip(names, data, strict=True)), out)
    except RdlabError as exc:
        fail(exc)
    for name, r in summary.items():
        typer.echo(f"{name}: accuracy {r['accuracy']:.4f} on {r['samples']} samples")


@app.command()
def saliency(
    model: Model,
    data: Annotated[Path, typer.Argument(help="Labelled store.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/saliency"),
) -> None:
    """Draw the gradient saliency map of each class (the reference's recipe)."""
    from rdlab.classify.evaluation import saliency_figures

    try:
        paths = saliency_figures(model, data, out)
    except RdlabError as exc:
        fail(exc)
    typer.echo(f"wrote {paths[0]}")


@app.command()
def label(
    data: Annotated[Path, typer.Argument(
        metavar="RUN_FOLDER_OR_STORE",
        help="A run folder of `rdlab simulate` (one run or a sweep; the labels are written "
        "into it) or a scan store (rdlab classify scan).")],
    model: Model = Path("bundled"),
    out: Annotated[Path | None, typer.Option(
        help="Output folder of a scan's labels (default runs/classification); a run "
        "folder's labels are written into the run folder.")] = None,
    compare: Annotated[Path | None, typer.Option(help="An earlier classification.zarr of the "
                                                 "same scan: report changed cells.")] = None,
    min_confidence: Annotated[float, typer.Option(
        parser=parse_float,
        help="Flag a sample 'unconfident' (label −1, probabilities kept) when its largest "
        "averaged class probability is below this (0.5 was chosen on the validation set; "
        "see docs/classify.md).")] = 0.5,
) -> None:
    """Label every scan point or run sample with class probabilities (the default subcommand).

    A scan gets a phase map, per-class montages and the HTML explorer in --out; a run
    folder gets the labels in its data.zarr, labels.json, a labelled montage (and a (k, f)
    phase map for a k × f sweep). MODEL defaults to 'bundled'.
    """
    from rdlab.classify.evaluation import resolve_model_path
    from rdlab.classify.label_run import classify_run, run_folder_of
    from rdlab.classify.label_scan import classify_scan

    try:
        run = run_folder_of(data)
        if run is not None:
            for name, value in (("--out", out), ("--compare", compare)):
                if value is not None:
                    raise ParameterError(f"{name} is for scan stores; the labels of the run "
                                         f"folder {str(data)!r} are written into it")
            print_run_labels(run, classify_run(run, model, min_confidence))
            return
        out = out or Path("runs/classification")
        metrics = classify_scan(data, resolve_model_path(model), out, compare=compare,
                                min_confidence=min_confidence)
    except RdlabError as exc:
        fail(exc)
    typer.echo(f"{out}: {metrics['points']} points: " + ", ".join(
        f"{c} {n}" for c, n in metrics["counts"].items() if n))
    report = metrics.get("compare")
    if report is not None:
        typer.echo(f"{report['changed']} of {report['points']} cells changed class")


def print_run_labels(run: Path, summary: dict) -> None:
    """Print what a run's labelling found: a header, then one line per label present.

    Parameters
    ----------
    run : Path
        The run folder.
    summary : dict
        What :func:`rdlab.classify.label_run.classify_run` returned.
    """
    counts = summary["counts"]
    typer.echo(f"{run}: {sum(counts.values())} sample(s) labelled by {summary['model']} "
               f"(U at steps {', '.join(map(str, summary['frame_steps']))}; unconfident "
               f"below p = {summary['min_confidence']:g})")
    for name, mean in summary["mean_confidence"].items():
        n = counts[name]
        typer.echo(f"  {name}: {n} sample{'s' if n != 1 else ''}, mean top probability "
                   f"{mean:.2f}")
    typer.echo(f"{run}: labels in data.zarr (class_label, class_name, probabilities), labels.json "
               "and labels.png")


@app.command()
def paper(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/paper"),
    second_pass: Annotated[bool, typer.Option(help="Also run the second pass (π, train2/"
                                              "val2, retrain, reclassify).")] = False,
    dtype: Annotated[str, typer.Option(help="float64 (paper) or float32.")] = "float64",
    mode: Annotated[str, typer.Option(help="Initial states: default or legacy.")] = "default",
    scheduler: Scheduler = None,
    workers: Workers = None,
) -> None:
    """Run the whole paper: datasets, training, evaluation, scan, labelling (resumable)."""
    from rdlab.classify.paper_pipeline import PaperSettings, run_paper

    try:
        summary = run_paper(out, PaperSettings(runs=_settings(mode, False, dtype, True),
                                               scheduler=scheduler, workers=workers),
                            second_pass=second_pass)
    except RdlabError as exc:
        fail(exc)
    typer.echo(json.dumps(summary["timings_s"], indent=1))


#: The Classify commands that were top-level commands before ``rdlab classify`` grouped them.
MOVED = {"dataset": dataset, "scan": scan, "train": train, "evaluate": evaluate,
         "saliency": saliency, "paper": paper}


def _moved(name: str, command: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``command`` to say on stderr that ``rdlab NAME`` is now ``rdlab classify NAME``."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        typer.echo(f"note: 'rdlab {name}' is now 'rdlab classify {name}'", err=True)
        command(*args, **kwargs)

    return run


def add_moved_commands(root: typer.Typer) -> None:
    """Keep the old top-level names (``rdlab train`` …) as hidden commands for one release.

    Parameters
    ----------
    root
        The ``rdlab`` app; each old name runs the same code after a one-line note on
        stderr.
    """
    for name, command in MOVED.items():
        root.command(name, hidden=True)(_moved(name, command))
