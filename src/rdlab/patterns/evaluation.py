"""Evaluate a trained pattern CNN on stored datasets: accuracy, confusion matrices, saliency.

Datasets and models carry their class symbols, and predictions are matched to the truth by
symbol, so a 16-class second-pass model is evaluated on the 15-class pass-1 test set without a
hand-written index remapping (the reference's l: 13→14, h: 14→15).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rdlab.errors import ParameterError
from rdlab.patterns import pattern_store

#: Within-class index of the sample whose saliency is drawn (the reference: ``class·50 + 25``).
SALIENCY_INDEX = 25


#: The model shipped with the package (PatternCNN, 15 classes, trained on the paper's train/val
#: sets; reproduce with the commands in ``docs/classify.md``).
BUNDLED_MODEL = "gray_scott_cnn.pt"


def bundled_model_path() -> Path:
    """Path of the CNN shipped in the package data."""
    from importlib.resources import files

    return Path(str(files("rdlab.patterns") / "data" / BUNDLED_MODEL))


def resolve_model_path(path: str | Path) -> Path:
    """A model file, a training folder (its ``best.pt``) or ``"bundled"`` (the shipped
    model)."""
    if str(path) == "bundled":
        return bundled_model_path()
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise ParameterError(f"no model at {path}; train one with `rdlab train`")
    return path


def load_labelled(path: str | Path, model_classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(n, C, y, x)`` float32 and true labels ``(n,)`` as indices into
    ``model_classes`` (matched by class symbol)."""
    ds = pattern_store.open_patterns(path)
    data_classes = pattern_store.class_list(ds)
    missing = sorted(set(data_classes) - set(model_classes))
    if missing:
        raise ParameterError(f"{path} has classes {missing} that the model does not know "
                             f"(model classes: {model_classes})")
    labels = ds["label"].values
    if (labels < 0).any():
        raise ParameterError(f"{path} is unlabelled (a scan?); evaluate needs a dataset")
    remap = np.array([model_classes.index(c) for c in data_classes])
    return ds["frames"].values, remap[labels]


def evaluate_datasets(model_path: str | Path, datasets: dict[str, str | Path],
                      out: str | Path) -> dict:
    """Accuracy and confusion matrix of the model on each named dataset.

    Writes ``confusion_{name}.png`` and ``.json`` per dataset, ``accuracy.png`` (the training
    history, when the model's folder holds ``history.json``) and ``evaluation.json``.
    """
    from rdlab.patterns.cnn import load_model
    from rdlab.patterns.training import evaluate
    from rdlab.viz.phase_map import save_confusion_matrix, save_history

    model_path = resolve_model_path(model_path)
    model, classes, _ = load_model(model_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    for name, path in datasets.items():
        x, y = load_labelled(path, classes)
        result = evaluate(model, x, y, classes)
        result = {"dataset": str(path), "samples": int(y.size), **result}
        (out / f"confusion_{name}.json").write_text(json.dumps(result, indent=1,
                                                               ensure_ascii=False))
        save_confusion_matrix(out / f"confusion_{name}.png", np.asarray(result["confusion"]),
                              classes, title=f"{name}: accuracy {result['accuracy']:.4f}")
        summary[name] = {"accuracy": result["accuracy"], "samples": int(y.size),
                         "single_view_accuracy": result["single_view_accuracy"]}
    history = model_path.parent / "history.json"
    if history.is_file():
        save_history(out / "accuracy.png", json.loads(history.read_text()))
    (out / "evaluation.json").write_text(json.dumps(summary, indent=1))
    return summary


def saliency_figures(model_path: str | Path, data_path: str | Path, out: str | Path,
                     index_in_class: int = SALIENCY_INDEX) -> list[Path]:
    """Gradient saliency of each class's logit for one sample of that class (the sample at
    ``index_in_class`` within the class, as in the reference), drawn over the last frame.
    Writes ``saliency.png`` (all classes) and ``saliency.npz`` (the maps)."""
    from rdlab.patterns.cnn import load_model
    from rdlab.patterns.training import saliency
    from rdlab.viz.saliency import save_saliency_grid

    model, classes, _ = load_model(resolve_model_path(model_path))
    x, y = load_labelled(data_path, classes)
    picks, names = [], []
    for c in range(len(classes)):
        idx = np.flatnonzero(y == c)
        if idx.size:
            picks.append(int(idx[min(index_in_class, idx.size - 1)]))
            names.append(classes[c])
    if not picks:
        raise ParameterError(f"{data_path} holds no sample of any class of the model")
    maps = np.stack([saliency(model, x[i:i + 1], int(y[i]))[0] for i in picks])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "saliency.npz", maps=maps, samples=np.asarray(picks),
                        classes=np.asarray(names))
    return [save_saliency_grid(out / "saliency.png", x[picks][:, -1], maps, names)]
