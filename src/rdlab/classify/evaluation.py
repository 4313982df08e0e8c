"""Evaluate a trained pattern CNN on stored datasets: accuracy, confusion matrices, saliency.

Datasets and models carry their class symbols, and predictions are matched to the truth by
symbol, so a 16-class second-pass model is evaluated on the 15-class pass-1 test set without a
hand-written index remapping (the reference's l: 13→14, h: 14→15).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rdlab.atomic import atomic_write, atomic_write_text
from rdlab.classify import pattern_store
from rdlab.errors import DataError, ParameterError
from rdlab.run_folder import check_run_folder, staged_run_folder

#: Within-class index of the sample whose saliency is drawn (the reference: ``class·50 + 25``).
SALIENCY_INDEX = 25


#: The models shipped with the package, by the name the commands accept for MODEL (15 classes,
#: trained on the paper's train/val sets; reproduce with the commands in ``docs/classify.md``):
#: ``bundled`` is PatternCNN (3 snapshots), ``bundled-3d`` PatternCNN3D (10-frame time stacks).
BUNDLED_MODELS = {"bundled": "gray_scott_cnn.pt", "bundled-3d": "gray_scott_cnn_3d.pt"}


def bundled_model_path(name: str = "bundled") -> Path:
    """Return the path of a CNN shipped in the package data.

    Parameters
    ----------
    name : str, default "bundled"
        A key of :data:`BUNDLED_MODELS`.

    Returns
    -------
    Path
        The bundled model file.

    Raises
    ------
    ParameterError
        Naming ``name`` when rdlab ships no model of that name.
    """
    from importlib.resources import files

    if name not in BUNDLED_MODELS:
        raise ParameterError(f"no bundled model {name!r}; bundled models: "
                             f"{sorted(BUNDLED_MODELS)}")
    return Path(str(files("rdlab.classify") / "data" / BUNDLED_MODELS[name]))


def resolve_model_path(path: str | Path) -> Path:
    """Find the model file meant by a path.

    Parameters
    ----------
    path : str or Path
        A model file, a training folder (its ``best.pt``), ``"bundled"`` (the shipped 2-D
        model) or ``"bundled-3d"`` (the shipped time-stack model).

    Returns
    -------
    Path
        The model file.

    Raises
    ------
    DataError
        Naming the path when there is no model there.
    """
    if str(path) in BUNDLED_MODELS:
        return bundled_model_path(str(path))
    path = Path(path)
    if path.is_dir():
        if not (path / "best.pt").is_file():
            raise DataError(f"model folder {str(path)!r} holds no best.pt; give a model file "
                            "or a folder written by `rdlab classify train`")
        path = path / "best.pt"
    if not path.is_file():
        raise DataError(f"no model at {str(path)!r}; train one with `rdlab classify train`")
    return path


def _labelled(path: str | Path, model_classes: list[str]):
    """Return the verified labelled store at ``path`` and its labels as model class indices.

    The labels are indices into ``model_classes``, matched by class symbol.
    """
    ds = pattern_store.open_patterns(path)
    data_classes = pattern_store.class_list(ds)
    labels = ds["label"].values
    if ds.attrs.get("kind") == "scan" or (labels < 0).any():
        raise DataError(f"{str(path)!r} has no labels (a scan?); this command needs a dataset "
                        "written by `rdlab classify dataset`")
    missing = sorted(set(data_classes) - set(model_classes))
    if missing:
        raise ParameterError(f"{path} has classes {missing} that the model does not know "
                             f"(model classes: {model_classes})")
    remap = np.array([model_classes.index(c) for c in data_classes])
    return ds, remap[labels]


def load_labelled(path: str | Path, model_classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a labelled dataset with its labels as indices into the model's classes.

    The store is verified first; labels are matched by class symbol.

    Parameters
    ----------
    path : str or Path
        A dataset store written by ``rdlab classify dataset``.
    model_classes : list of str
        The model's class symbols.

    Returns
    -------
    frames : numpy.ndarray
        Frames ``(n, C, y, x)`` float32.
    labels : numpy.ndarray
        True labels ``(n,)`` as indices into ``model_classes``.

    Raises
    ------
    DataError
        When the store has no labels (a scan) or fails verification.
    ParameterError
        When the store has classes the model does not know.
    """
    ds, labels = _labelled(path, model_classes)
    return ds["frames"].values, labels


def _read_history(model_path: Path) -> list | None:
    """Return the training history beside a model file, or ``None`` when there is none."""
    from rdlab.training_loop import read_history

    for name in ("history.jsonl", "history.json"):  # today's, then older rdlab's
        if (model_path.parent / name).is_file():
            return read_history(model_path.parent / name) or None
    return None


def evaluate_datasets(model_path: str | Path, datasets: dict[str, str | Path],
                      out: str | Path) -> dict:
    """Compute the accuracy and confusion matrix of the model on each named dataset.

    Writes the run folder ``out`` (whole or not at all): ``confusion_{name}.png`` and
    ``.json`` per dataset, ``accuracy.png`` (the training history, when the model's folder
    holds ``history.jsonl``, or an older version's ``history.json``) and ``evaluation.json``.
    The model and every dataset are verified before anything is written.

    Parameters
    ----------
    model_path : str or Path
        A model file, a training folder or ``"bundled"`` (see :func:`resolve_model_path`).
    datasets : dict of str to str or Path
        Dataset stores by name.
    out : str or Path
        The run folder to write.

    Returns
    -------
    dict
        The summary written to ``evaluation.json``.

    Raises
    ------
    DataError
        When the model or a dataset is missing or unreadable.
    """
    from rdlab.classify.cnn import load_model
    from rdlab.classify.training import evaluate
    from rdlab.viz.classify_figures import save_confusion_matrix, save_history

    model_path = resolve_model_path(model_path)
    model, classes, _ = load_model(model_path)
    stores = {name: _labelled(path, classes) for name, path in datasets.items()}
    history = _read_history(model_path)
    inputs = (model_path, *datasets.values())
    check_run_folder(out, inputs)
    summary: dict[str, dict] = {}
    with staged_run_folder(out, inputs=inputs) as folder:
        for name, (ds, y) in stores.items():
            result = evaluate(model, ds["frames"].values, y, classes)
            result = {"dataset": str(datasets[name]), "samples": int(y.size), **result}
            atomic_write_text(folder.file(f"confusion_{name}.json"),
                              json.dumps(result, indent=1, ensure_ascii=False))
            save_confusion_matrix(folder.file(f"confusion_{name}.png"),
                                  np.asarray(result["confusion"]), classes,
                                  title=f"{name}: accuracy {result['accuracy']:.4f}")
            summary[name] = {"accuracy": result["accuracy"], "samples": int(y.size),
                             "single_view_accuracy": result["single_view_accuracy"]}
        if history is not None:
            save_history(folder.file("accuracy.png"), history)
        atomic_write_text(folder.file("evaluation.json"), json.dumps(summary, indent=1))
    return summary


def saliency_figures(model_path: str | Path, data_path: str | Path, out: str | Path,
                     index_in_class: int = SALIENCY_INDEX) -> list[Path]:
    """Draw the gradient saliency of each class's logit for one sample of that class.

    The sample is the one at ``index_in_class`` within the class, as in the reference; the
    map is drawn over the last frame. Writes the run folder ``out`` (whole or not at all):
    ``saliency.png`` (all classes) and ``saliency.npz`` (the maps).

    Parameters
    ----------
    model_path : str or Path
        A model file, a training folder or ``"bundled"`` (see :func:`resolve_model_path`).
    data_path : str or Path
        A labelled dataset store.
    out : str or Path
        The run folder to write.
    index_in_class : int, default SALIENCY_INDEX
        Which sample of each class to explain (25, as in the reference).

    Returns
    -------
    Path
        The final path of ``saliency.png``.

    Raises
    ------
    ParameterError
        When the dataset holds no sample of any class of the model.
    """
    from rdlab.classify.cnn import load_model
    from rdlab.classify.training import saliency
    from rdlab.viz.classify_saliency import save_saliency_grid

    model, classes, _ = load_model(resolve_model_path(model_path))
    ds, y = _labelled(data_path, classes)
    picks, names = [], []
    for c in range(len(classes)):
        idx = np.flatnonzero(y == c)
        if idx.size:
            picks.append(int(idx[min(index_in_class, idx.size - 1)]))
            names.append(classes[c])
    if not picks:
        raise ParameterError(f"{data_path} holds no sample of any class of the model")
    inputs = (resolve_model_path(model_path), data_path)
    check_run_folder(out, inputs)
    x = ds["frames"].isel(sample=picks).values
    maps = np.stack([saliency(model, x[j:j + 1], int(y[i]))[0] for j, i in enumerate(picks)])
    with staged_run_folder(out, inputs=inputs) as folder:
        def save_npz(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, maps=maps, samples=np.asarray(picks),
                                    classes=np.asarray(names))

        atomic_write(folder.file("saliency.npz"), save_npz)
        save_saliency_grid(folder.file("saliency.png"), x[:, -1], maps, names)
    return [Path(out) / "saliency.png"]
