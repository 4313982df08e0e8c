"""Label the samples of an ``rdlab simulate`` run folder (one run or a sweep) with a CNN.

The model sees what it was trained on or nothing: :func:`check_run` compares the run's
setting with the model's training data (:func:`training_settings`) — the network must be
Gray–Scott (species U, V; reactions U + 2V → 3V at rate 1 and V → ∅; feed (1, 0); no flow
noise), with the training data's Du, Dv, grid (size, dx = 1), stencil and dt — and refuses a
run that differs, naming each difference with both values. ``k`` and ``f`` are free (they
are what the classes describe). The frames are U at the training data's snapshot steps,
taken from the run's stored snapshots; a run that lacks one is refused with the
``rdlab simulate`` options that store them. Nothing is resampled.

:func:`classify_run` then writes, into the run folder and atomically (the folder is rebuilt
in a hidden staging folder with its unchanged files hard-linked, and swapped in whole;
see :func:`~rdlab.run_folder.staged_run_folder`):

* ``data.zarr`` gains the coordinate ``class (class)``, the variable
  ``probabilities (sample, class)`` float32 and the coordinates ``class_label (sample)``
  (class index, −1 = unconfident) and ``class_name (sample)`` (class symbol or
  ``"unconfident"``);
* ``labels.json`` (model, threshold, frame steps, counts, every sample's parameters, label
  and probabilities), ``labels.png`` (a montage of the last frame the model reads, each
  panel captioned with its label, probability and swept value, or ``#sample`` for a sweep
  over several parameters), and for a sweep over exactly ``k`` and ``f`` also
  ``phase_map.png`` and ``explorer.html``;
* ``metrics.json`` keeps the run's metrics and gains ``labels`` (the counts).

A rerun replaces the earlier labels whole. The scan path (pattern stores) stays in
:mod:`rdlab.classify.label_scan`; the prediction, the threshold and the counts are shared.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from rdlab.classify.label_scan import (
    DEFAULT_MIN_CONFIDENCE,
    UNCONFIDENT,
    UNCONFIDENT_NAME,
    check_min_confidence,
    confident_labels,
    label_counts,
    predict_batches,
)
from rdlab.classify.pattern_runs import (
    DATA_SETTINGS_KEY,
    IMAGE_STEPS,
    STACK_STEPS,
    PatternRunSettings,
)
from rdlab.errors import DataError, ParameterError
from rdlab.run_folder import RunFolder, staged_run_folder
from rdlab.system import System

#: Variables and coordinates a labelling adds to a run's ``data.zarr`` (a rerun drops them).
LABEL_VARIABLES = ("class", "probabilities", "class_label", "class_name")
#: Files a labelling adds to a run folder (a rerun replaces them).
LABEL_FILES = ("labels.json", "labels.png", "phase_map.png", "explorer.html")
#: Most panels of ``labels.png`` (beyond it, evenly spaced samples are shown).
MONTAGE_PANELS = 100
#: Relative tolerance when comparing the run's values with the training data's.
RTOL = 1e-9


@dataclass(frozen=True)
class TrainingData:
    """What a model was trained on: the run settings of its data and where they came from.

    Parameters
    ----------
    settings : PatternRunSettings
        Du, Dv, dt, grid size, stencil and the snapshot steps of the frames.
    source : str
        ``"as the model records them"`` or a note that the paper's settings are assumed.
    """

    settings: PatternRunSettings
    source: str


def training_settings(model, meta: dict, model_path: str | Path) -> TrainingData:
    """Return the settings of the data a model was trained on.

    They are the model's metadata entry :data:`DATA_SETTINGS_KEY` when it has one; a model
    without one (such as the bundled model) is taken to have been trained on the paper's
    runs: :class:`PatternRunSettings` defaults with the 3 image steps (2-D network with 3
    channels) or the 10 stack steps (3-D network with 10 frames).

    Parameters
    ----------
    model : torch.nn.Module
        The loaded network.
    meta : dict
        Its metadata.
    model_path : str or Path
        The model file, for messages.

    Returns
    -------
    TrainingData
        The settings and their source.

    Raises
    ------
    DataError
        When the metadata's settings are unreadable, or the model records none and is not
        one of the paper's shapes, or the settings' frame count differs from the model's
        input.
    """
    channels = int(getattr(model, "in_channels", 0))
    if DATA_SETTINGS_KEY in meta:
        try:
            settings = PatternRunSettings.from_dict(meta[DATA_SETTINGS_KEY])
        except (ParameterError, TypeError, AttributeError) as exc:
            raise DataError(f"model {str(model_path)!r} has unreadable training settings "
                            f"({exc})") from None
        data = TrainingData(settings, "as the model records them")
    else:
        steps = {("2d", 3): IMAGE_STEPS, ("3d", 10): STACK_STEPS}.get(
            (getattr(model, "architecture", ""), channels))
        if steps is None:
            raise DataError(f"model {str(model_path)!r} records no training settings "
                            f"({DATA_SETTINGS_KEY!r} in its metadata) and is not shaped like "
                            "the paper's networks, so its frames' steps are unknown")
        data = TrainingData(PatternRunSettings(snapshot_steps=steps),
                            "the paper's runs; the model records no settings")
    if data.settings.n_channels != channels:
        raise DataError(f"model {str(model_path)!r} reads {channels} frames but its training "
                        f"settings store {data.settings.n_channels}")
    return data


def _values(array: np.ndarray) -> str:
    """Return the distinct values of a per-sample array in words."""
    distinct = np.unique(np.asarray(array, dtype=float))
    shown = ", ".join(f"{v:g}" for v in distinct[:4])
    return shown + (f", … ({distinct.size} values)" if distinct.size > 4 else "")


def _differs(array: np.ndarray, want: float) -> bool:
    """Tell whether any value of ``array`` differs from ``want``."""
    return not np.allclose(np.asarray(array, dtype=float), want, rtol=RTOL, atol=0.0)


def _network_differences(system: System) -> list[str]:
    """Return how the run's network differs from Gray–Scott (species, reactions, rate 1)."""
    from rdlab.chemistry import gray_scott_network

    gs, net = gray_scott_network(), system.network
    if list(net.species) != list(gs.species):
        return [f"species {', '.join(net.species)} (the run) against "
                f"{', '.join(gs.species)} (Gray–Scott, the training data)"]

    def reactions(n) -> list[str]:
        return sorted(n.reaction_text(r, with_rate=False) for r in range(n.n_reactions))

    if reactions(net) != reactions(gs):
        return [f"reactions {'; '.join(reactions(net))} (the run) against "
                f"{'; '.join(reactions(gs))} (Gray–Scott, the training data)"]
    out = []
    texts = [gs.reaction_text(q, with_rate=False) for q in range(gs.n_reactions)]
    for r in range(net.n_reactions):
        text = net.reaction_text(r, with_rate=False)
        q = texts.index(text)
        if gs.rate_names[q] == "k":  # the decay rate k is free: the classes describe it
            continue
        want = gs.default_rates[q]
        if _differs(system.rates[:, r], want):
            out.append(f"rate of {text} {_values(system.rates[:, r])} (the run) against "
                       f"{want:g} (the training data)")
    return out


def setting_differences(system: System, dt: float, settings: PatternRunSettings) -> list[str]:
    """Return every way a run's setting differs from a model's training data, with both values.

    Parameters
    ----------
    system : System
        The run's system (per-sample parameters).
    dt : float
        The run's time step.
    settings : PatternRunSettings
        The training data's settings.

    Returns
    -------
    list of str
        One line per difference (empty when the run matches).
    """
    out = _network_differences(system)
    grid = system.grid
    if grid is None:
        return [*out, f"a well-mixed run (no grid) against a {settings.size}×{settings.size} "
                "grid (the training data)"]
    if (grid.ny, grid.nx) != (settings.size, settings.size):
        out.append(f"grid {grid.ny}×{grid.nx} (the run) against {settings.size}×"
                   f"{settings.size} (the training data)")
    if _differs(grid.dx, 1.0):
        out.append(f"dx {grid.dx:g} (the run) against 1 (the training data)")
    if grid.stencil != settings.stencil:
        out.append(f"stencil {grid.stencil} (the run) against {settings.stencil} "
                   "(the training data)")
    if _differs(dt, settings.dt):
        out.append(f"dt {dt:g} (the run) against {settings.dt:g} (the training data)")
    if list(system.network.species) == ["U", "V"]:
        for i, (name, want) in enumerate((("D_U", settings.du), ("D_V", settings.dv))):
            if _differs(system.diffusion[:, i], want):
                out.append(f"{name} {_values(system.diffusion[:, i])} (the run) against "
                           f"{want:g} (the training data)")
        for i, (name, want) in enumerate((("feed_U", 1.0), ("feed_V", 0.0))):
            if _differs(system.feed[:, i], want):
                out.append(f"{name} {_values(system.feed[:, i])} (the run) against {want:g} "
                           "(the training data)")
    if system.noise is not None:
        out.append("a noisy flow (the run) against a constant flow (the training data)")
    return out


def snapshot_options(needed: tuple[int, ...] | list[int]) -> str:
    """Return the ``rdlab simulate`` options whose evenly spaced snapshots include ``needed``.

    Parameters
    ----------
    needed : sequence of int
        Steps that must be stored.

    Returns
    -------
    str
        ``--steps N --snapshots M`` (snapshots every ``gcd(needed)`` steps up to the last).
    """
    last = int(max(needed))
    spacing = math.gcd(*[int(s) for s in needed]) or last or 1
    return f"--steps {last} --snapshots {last // spacing + 1}"


def check_run(system: System, dt: float, stored_steps, training: TrainingData,
              run: str) -> None:
    """Refuse a run that differs from the training data or lacks the frames the model reads.

    Parameters
    ----------
    system : System
        The run's system.
    dt : float
        The run's time step.
    stored_steps : array_like of int
        The steps of the run's snapshots.
    training : TrainingData
        What the model was trained on.
    run : str
        The run, for messages.

    Raises
    ------
    ParameterError
        Naming every difference with the run's and the training data's values, or the
        missing steps with the options that store them.
    """
    differences = setting_differences(system, dt, training.settings)
    if differences:
        raise ParameterError(
            f"{run} differs from the model's training data ({training.source}): "
            f"{'; '.join(differences)}; nothing was classified (simulate with the training "
            "data's setting, or train a model on runs like these)")
    needed = [int(s) for s in training.settings.snapshot_steps]
    stored = {int(s) for s in np.asarray(stored_steps).ravel()}
    missing = [s for s in needed if s not in stored]
    if missing:
        shown = sorted(stored)
        have = (", ".join(map(str, shown)) if len(shown) <= 6 else
                f"{shown[0]}, {shown[1]}, …, {shown[-1]} ({len(shown)} snapshots)")
        raise ParameterError(
            f"{run} did not store the frames the model reads: U at steps "
            f"{', '.join(map(str, needed))} (t = {', '.join(f'{s * dt:g}' for s in needed)}); "
            f"it stored steps {have}; simulate with {snapshot_options(needed)} (snapshots "
            "are evenly spaced from step 0) to store them")


@dataclass(frozen=True)
class _Run:
    """A run folder's dataset and what the check needs from it."""

    path: Path
    ds: xr.Dataset
    system: System
    dt: float


def open_run(path: str | Path) -> _Run:
    """Open a run folder of ``rdlab simulate`` and rebuild its system.

    Parameters
    ----------
    path : str or Path
        The run folder.

    Returns
    -------
    _Run
        Its dataset (lazy), system and time step.

    Raises
    ------
    DataError
        When the folder holds no readable ``data.zarr`` written by ``rdlab simulate``.
    """
    from rdlab import store_check

    path = Path(path)
    repair = "rerun the simulation with `rdlab simulate --config` on its config.yaml"
    if not (path / "data.zarr").is_dir():
        raise DataError(f"{str(path)!r} is not a run folder of `rdlab simulate` (no data.zarr)")
    ds = store_check.open_store(path / "data.zarr", "run dataset", repair)
    if "concentration" not in ds.variables or not {"system", "config"} <= set(ds.attrs):
        raise DataError(f"{str(path / 'data.zarr')!r} is not a dataset of `rdlab simulate` "
                        "(it lacks concentration or its system/config attributes)")
    try:
        system = System.from_description(json.loads(ds.attrs["system"]))
        dt = float(json.loads(ds.attrs["config"])["dt"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{str(path / 'data.zarr')!r} has unreadable system/config "
                        f"attributes ({type(exc).__name__}: {exc}); {repair}") from None
    return _Run(path, ds, system, dt)


def run_folder_of(path: str | Path) -> Path | None:
    """Return the ``rdlab simulate`` run folder that ``path`` names, or ``None``.

    Parameters
    ----------
    path : str or Path
        A run folder, or its ``data.zarr``.

    Returns
    -------
    Path or None
        The run folder; ``None`` when ``path`` is neither (e.g. a scan store).
    """
    path = Path(path)
    if path.name == "data.zarr" and (path.parent / "config.yaml").is_file():
        return path.parent
    if (path / "data.zarr").is_dir() and (path / "config.yaml").is_file():
        return path
    return None


def _frame_reader(run: _Run, steps: tuple[int, ...]):
    """Return ``read(a, b)``: U at ``steps`` of samples a…b−1, ``(n, len(steps), y, x)``."""
    index = [int(np.flatnonzero(run.ds["step"].values == s)[0]) for s in steps]
    u = run.ds["concentration"].sel(species="U").isel(time=index)

    def read(a: int, b: int) -> np.ndarray:
        return u.isel(sample=slice(a, b)).transpose("sample", "time", "y", "x").values

    return read


def classify_run(run_path: str | Path, model_path: str | Path = "bundled",
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, progress: bool = True) -> dict:
    """Label every sample of a run folder and write the labels into it.

    Parameters
    ----------
    run_path : str or Path
        A run folder of ``rdlab simulate`` (one run or a sweep).
    model_path : str or Path, default "bundled"
        A model file, a training folder or ``"bundled"``.
    min_confidence : float, default DEFAULT_MIN_CONFIDENCE
        A sample whose largest probability is below this is labelled unconfident (−1).
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    dict
        The ``labels`` summary written to ``metrics.json``: ``model``, ``min_confidence``,
        ``frame_steps``, ``counts`` (per class, ``"unconfident"`` when any) and
        ``mean_confidence`` (per label present).

    Raises
    ------
    DataError
        When the run folder or the model cannot be read.
    ParameterError
        When the run differs from the model's training data, lacks its frames, or
        ``min_confidence`` is not in [0, 1].
    OutputError
        When the run folder is locked by another writer.
    """
    from rdlab.classify.cnn import load_model
    from rdlab.classify.evaluation import resolve_model_path

    min_confidence = check_min_confidence(min_confidence)
    model_file = resolve_model_path(model_path)
    model, classes, meta = load_model(model_file)
    training = training_settings(model, meta, model_file)
    run = open_run(run_path)
    check_run(run.system, run.dt, run.ds["step"].values, training, f"run {str(run_path)!r}")
    steps = tuple(int(s) for s in training.settings.snapshot_steps)
    read = _frame_reader(run, steps)
    probs = predict_batches(model, read, run.ds.sizes["sample"], progress)
    labels = confident_labels(probs, min_confidence)
    summary = _summary(str(model_path), classes, probs, labels, min_confidence, steps)
    with staged_run_folder(run.path, command="rdlab classify") as folder:
        _copy_run(run.path, folder.path)
        _append_labels(folder.file("data.zarr"), classes, probs, labels)
        _write_label_files(folder, run, read, classes, probs, labels, summary)
    return summary


def _summary(model: str, classes: list[str], probs: np.ndarray, labels: np.ndarray,
             min_confidence: float, steps: tuple[int, ...]) -> dict:
    """Return the labels summary: model, threshold, frame steps, counts, mean confidence."""
    top = probs.max(axis=1) if probs.size else np.zeros(0)
    names = [*classes, UNCONFIDENT_NAME]
    mean = {names[i]: round(float(top[labels == i].mean()), 4)
            for i in sorted(set(labels.tolist()), key=lambda i: (i < 0, i))}
    return {"model": model, "min_confidence": min_confidence, "frame_steps": list(steps),
            "counts": label_counts(labels, classes), "mean_confidence": mean}


def _copy_run(source: Path, target: Path) -> None:
    """Fill the staging folder with the run's files, except an earlier labelling.

    Data files are hard-linked (copied where links are impossible); metadata files (names
    starting with a dot, which zarr and rdlab may rewrite in place) are copied.
    """
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if rel.parts[0] in LABEL_FILES or (rel.parts[0] == "data.zarr" and len(rel.parts) > 1
                                           and rel.parts[1] in LABEL_VARIABLES):
            continue
        dest = target / rel
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.name.startswith("."):
            shutil.copy2(path, dest)
            continue
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)


def _append_labels(store: Path, classes: list[str], probs: np.ndarray,
                   labels: np.ndarray) -> None:
    """Add class, probabilities, label and label_name to the (staged) dataset ``store``."""
    import zarr

    zarr.consolidate_metadata(str(store))  # forget the variables of an earlier labelling
    names = np.array([*classes, UNCONFIDENT_NAME])[labels]  # −1 → the last: unconfident
    extra = xr.Dataset(
        {"probabilities": (("sample", "class"), probs.astype(np.float32))},
        coords={"class": np.array(classes),
                "class_label": ("sample", labels.astype(np.int64),
                                {"unconfident": UNCONFIDENT}),
                "class_name": ("sample", names)},
        # xarray rewrites the group's attributes on append: keep the run's (config, system)
        attrs=dict(xr.open_zarr(store, consolidated=True).attrs))
    extra.to_zarr(store, mode="a", consolidated=True, zarr_format=2, write_empty_chunks=True)


def _caption(i: int, name: str, p: float, coords: dict[str, np.ndarray]) -> str:
    """Return a panel's one-line caption: label, probability, the swept value or the sample."""
    where = (f"{next(iter(coords))}={next(iter(coords.values()))[i]:.3g}" if len(coords) == 1
             else f"#{i}" if coords else "")
    return f"{name} {p:.2f} {where}".strip()


def _write_label_files(folder: RunFolder, run: _Run, read, classes: list[str],
                       probs: np.ndarray, labels: np.ndarray, summary: dict) -> None:
    """Write labels.json, labels.png, the (k, f) phase map and explorer, and metrics.json."""
    from rdlab import viz

    n = probs.shape[0]
    coords = {name: np.asarray(v, dtype=float) for name, v in run.system.coords.items()}
    names = [*classes, UNCONFIDENT_NAME]
    samples = [{"sample": i, **{c: float(v[i]) for c, v in coords.items()},
                "label": names[labels[i]], "probability": round(float(probs[i].max()), 6),
                "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs[i],
                                                                      strict=True)}}
               for i in range(n)]
    folder.write_metrics({**summary, "classes": classes, "samples": samples}, "labels.json")
    take = np.unique(np.linspace(0, n - 1, min(n, MONTAGE_PANELS)).round().astype(int))
    last = np.concatenate([read(int(i), int(i) + 1)[:, -1] for i in take])
    captions = [_caption(i, names[labels[i]], float(probs[i].max()), coords) for i in take]
    viz.save_montage(folder.file("labels.png"), last, captions, vmin=0.0, vmax=1.0,
                     species_names=["U"],
                     title=f"CNN labels of {n} samples" + (
                         f" ({take.size} shown)" if take.size < n else ""))
    if set(coords) == {"k", "f"}:
        k, f = coords["k"], coords["f"]
        viz.save_phase_map(folder.file("phase_map.png"), k, f, labels, classes,
                           title=f"CNN labels of {n} runs", probabilities=probs,
                           unlabelled=UNCONFIDENT_NAME)
        viz.write_explorer(folder.file("explorer.html"), k, f, labels, classes, probs,
                           read(0, n), thumb_size=48, unlabelled=UNCONFIDENT_NAME)
    metrics_file = run.path / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    folder.write_metrics({**metrics, "labels": summary})
