"""Label every point of a scan with class probabilities and draw the results.

Writes a run folder (whole or not at all, see :func:`~rdlab.run_folder.staged_run_folder`):
``classification.zarr`` (``probabilities (sample, class)``, ``predicted (sample,)`` (the most
probable class), ``class_label (sample,)`` (the same, or −1 = unconfident), with the scan's
``k``, ``f``, ``seed``), ``phase_map.png`` (x = k, y = f, coloured by class, like the paper's
Fig. 6), one montage per class (and ``unconfident.png``), the self-contained
``explorer.html``, ``metrics.json`` (counts per class, the unconfident count and the
threshold) and, when compared with an earlier classification, ``changed_cells.json``. The
scan, the model and the earlier classification are verified before anything is written: a
damaged input is refused, never classified as NaN.

Out-of-distribution flag: a point whose largest (8-view averaged) probability is below
``min_confidence`` (:data:`DEFAULT_MIN_CONFIDENCE`) is labelled :data:`UNCONFIDENT` rather
than forced into a class. The helpers for this, and the batched prediction, are shared with
:mod:`rdlab.classify.label_run` (labels of ``rdlab simulate`` runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from rdlab import store_check
from rdlab.classify import pattern_store
from rdlab.errors import DataError, ParameterError
from rdlab.run_folder import check_run_folder, staged_run_folder

#: Samples per prediction batch (bounded memory however large the scan).
PREDICT_BATCH = 256
#: Default threshold on the largest averaged class probability below which a prediction is
#: flagged unconfident. Chosen on the paper's validation set with the bundled model
#: (``docs/classify.md``): it flags 3 of 742 correct predictions and 4 of the 8 wrong ones;
#: below one half the other classes together are more likely than the best one.
DEFAULT_MIN_CONFIDENCE = 0.5
#: Label of an unconfident prediction (the probabilities are kept).
UNCONFIDENT = -1
#: Name of the unconfident label in outputs and legends.
UNCONFIDENT_NAME = "unconfident"


def check_min_confidence(value: float) -> float:
    """Return the confidence threshold as a float in [0, 1], or refuse it.

    Parameters
    ----------
    value : float
        The threshold on the largest class probability.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    ParameterError
        When ``value`` is not a number in [0, 1].
    """
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"--min-confidence must be a probability in [0, 1], got {value!r}")
    return threshold


def confident_labels(probs: np.ndarray, min_confidence: float) -> np.ndarray:
    """Return the most probable class of each sample, or :data:`UNCONFIDENT` below a threshold.

    Parameters
    ----------
    probs : numpy.ndarray
        Class probabilities ``(n, n_classes)``.
    min_confidence : float
        A sample whose largest probability is below this is labelled :data:`UNCONFIDENT`.

    Returns
    -------
    numpy.ndarray
        Labels ``(n,)`` int64.
    """
    probs = np.asarray(probs)
    labels = probs.argmax(axis=1).astype(np.int64)
    labels[probs.max(axis=1) < min_confidence] = UNCONFIDENT
    return labels


def label_counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    """Count the samples per class, and the unconfident ones when there are any.

    Parameters
    ----------
    labels : numpy.ndarray
        Labels ``(n,)``: class indices or :data:`UNCONFIDENT`.
    classes : list of str
        The class symbols.

    Returns
    -------
    dict of str to int
        Class symbol → count (every class), then ``"unconfident"`` → count when not 0.
    """
    counts = {c: int((labels == i).sum()) for i, c in enumerate(classes)}
    unsure = int((labels == UNCONFIDENT).sum())
    return {**counts, UNCONFIDENT_NAME: unsure} if unsure else counts


def predict_batches(model, read: Callable[[int, int], np.ndarray], n: int,
                    progress: bool = True) -> np.ndarray:
    """Return the class probabilities of ``n`` samples read batch by batch.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network.
    read : callable
        ``read(a, b)`` returns the frames ``(b - a, channel, y, x)`` of samples ``a`` to
        ``b``; called for batches of :data:`PREDICT_BATCH`.
    n : int
        Number of samples.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        Probabilities ``(n, n_classes)`` (8-view averages, see
        :func:`~rdlab.classify.training.predict`).
    """
    from tqdm.auto import tqdm

    from rdlab.classify.training import predict

    parts = []
    for a in tqdm(range(0, n, PREDICT_BATCH), desc="classify", unit="batch",
                  disable=not progress):
        parts.append(predict(model, np.asarray(read(a, min(n, a + PREDICT_BATCH)),
                                               dtype=np.float32)))
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def predict_store(model, ds: xr.Dataset, progress: bool = True) -> np.ndarray:
    """Return the class probabilities of every sample of a pattern store.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network.
    ds : xarray.Dataset
        A pattern store; it is read in batches of :data:`PREDICT_BATCH`.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        Probabilities ``(n, n_classes)``.
    """
    return predict_batches(
        model, lambda a, b: ds["frames"].isel(sample=slice(a, b)).values,
        ds.sizes["sample"], progress)


def read_classification(path: str | Path) -> xr.Dataset:
    """Read a ``classification.zarr`` whole into memory and verify it.

    Verified are its metadata, every chunk of its variables (present, readable), finite
    probabilities and predictions that agree with them (a lost ``predicted`` chunk would read
    as class 0).

    Parameters
    ----------
    path : str or Path
        The store.

    Returns
    -------
    xarray.Dataset
        The classification, loaded.

    Raises
    ------
    DataError
        Naming the store and what is wrong.
    """
    path = Path(path)
    repair = "classify the scan again with `rdlab classify label`"
    ds = store_check.open_store(path, "classification", repair)
    needed = {"probabilities", "predicted", "k", "f", "class"}
    if not needed <= set(ds.variables):
        raise DataError(f"{str(path)!r} is a zarr store but not a classification (written by "
                        "`rdlab classify label`): it lacks "
                        f"{', '.join(sorted(needed - set(ds.variables)))}")
    # zarr leaves out chunks equal to the fill value, so a `predicted` chunk of class 0 may
    # rightly be absent: it is checked against the probabilities instead
    for name in sorted(needed - {"predicted"}):
        why = store_check.ArrayCheck(path, name).problem()
        if why is not None:
            raise DataError(f"classification {str(path)!r} is damaged: {name} cannot be "
                            f"trusted ({why}); {repair}")
    if store_check.ArrayCheck(path, "predicted").truncated():
        raise DataError(f"classification {str(path)!r} is damaged: predicted cannot be "
                        f"trusted (a chunk file is truncated); {repair}")
    try:
        ds = ds.load()
    except Exception as exc:  # noqa: BLE001 - a truncated or garbled chunk
        raise DataError(f"classification {str(path)!r} is damaged: a chunk cannot be read "
                        f"({type(exc).__name__}: {str(exc).strip()[:200]}); {repair}") from None
    probs, predicted = ds["probabilities"].values, ds["predicted"].values
    wrong = np.flatnonzero(probs.argmax(axis=1) != predicted)
    if wrong.size:
        raise DataError(f"classification {str(path)!r} is damaged: predicted classes of "
                        f"{store_check.describe_rows(int(wrong[0]), int(wrong[0]) + 1)} "
                        f"({wrong.size} in all) disagree with the stored probabilities; "
                        f"{repair}")
    return ds


def _check_same_scan(earlier: xr.Dataset, path: Path, k: np.ndarray, f: np.ndarray,
                     scan: str) -> None:
    if not (np.array_equal(earlier["k"].values, k) and np.array_equal(earlier["f"].values, f)):
        raise ParameterError(f"--compare {str(path)!r} classifies another scan than "
                             f"{scan!r} ({earlier.sizes['sample']} against {k.size} points, "
                             "or other (k, f))")


def classify_scan(scan_path: str | Path, model_path: str | Path, out: str | Path,
                  progress: bool = True, thumb_size: int = 48,
                  compare: str | Path | None = None,
                  min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> dict:
    """Classify the scan at ``scan_path`` with the model at ``model_path`` into the run folder.

    Parameters
    ----------
    scan_path : str or Path
        A pattern store written by ``rdlab classify scan``.
    model_path : str or Path
        A model file, a training folder or ``"bundled"``.
    out : str or Path
        The run folder to write.
    progress : bool, default True
        Show a progress bar.
    thumb_size : int, default 48
        Side in pixels of the pattern thumbnails of the explorer page.
    compare : str or Path or None, optional
        An earlier ``classification.zarr`` of the same scan: also report the cells that
        changed class.
    min_confidence : float, default DEFAULT_MIN_CONFIDENCE
        Points whose largest probability is below this are labelled unconfident (−1).

    Returns
    -------
    dict
        The metrics: ``points``, ``counts`` (per class, and ``"unconfident"`` when there
        are any), ``min_confidence``, and ``"compare"`` (the changed-cells report) when
        compared.

    Raises
    ------
    ParameterError
        When the model expects another number of channels than the scan has, ``compare``
        classifies another scan, or ``min_confidence`` is not in [0, 1].
    DataError
        When the scan, the model or ``compare`` cannot be read or is damaged.
    """
    from rdlab.classify.cnn import load_model

    min_confidence = check_min_confidence(min_confidence)
    ds = pattern_store.open_patterns(scan_path)  # verified: complete, readable, finite
    model, classes, _ = load_model(model_path)
    n_channels = ds.sizes["channel"]
    expected = getattr(model, "in_channels", n_channels)
    if expected != n_channels:
        raise ParameterError(f"model {str(model_path)!r} expects {expected} channels, the scan "
                             f"{str(scan_path)!r} has {n_channels}")
    k, f = ds["k"].values, ds["f"].values
    earlier = None
    if compare is not None:
        earlier = read_classification(compare)
        _check_same_scan(earlier, Path(compare), k, f, str(scan_path))
    inputs = (scan_path, model_path)  # --compare may lie in the run that this one replaces
    check_run_folder(out, inputs)
    probs = predict_store(model, ds, progress)
    predicted = probs.argmax(axis=1)
    labels = confident_labels(probs, min_confidence)
    result = xr.Dataset(
        {"probabilities": (("sample", "class"), probs.astype(np.float32)),
         "predicted": ("sample", predicted.astype(np.int64)),
         "class_label": ("sample", labels, {"unconfident": UNCONFIDENT,
                                            "min_confidence": min_confidence})},
        coords={"k": ds["k"], "f": ds["f"], "seed": ds["seed"], "class": classes},
        attrs={"scan": str(scan_path), "model": str(model_path),
               "min_confidence": min_confidence})
    with staged_run_folder(out, inputs=inputs) as folder:
        folder.write_dataset(result, "classification.zarr")
        _write_scan_figures(folder, ds, labels, classes, probs, thumb_size)
        metrics = {"points": int(len(k)), "counts": label_counts(labels, classes),
                   "min_confidence": min_confidence}
        if earlier is not None:
            report = compare_classifications(earlier, result)
            folder.write_metrics(report, "changed_cells.json")
        folder.write_metrics(metrics)
        if earlier is not None:
            metrics["compare"] = report
    return metrics


def _write_scan_figures(folder, ds: xr.Dataset, labels: np.ndarray, classes: list[str],
                        probs: np.ndarray, thumb_size: int) -> None:
    """Write the phase map, one montage per class (and the unconfident), and the explorer."""
    from rdlab import viz

    k, f = ds["k"].values, ds["f"].values
    viz.save_phase_map(folder.file("phase_map.png"), k, f, labels, classes,
                       dk=_spacing(k), df=_spacing(f),
                       title=f"CNN classification of {len(k)} runs",
                       unlabelled=UNCONFIDENT_NAME)
    frames = ds["frames"]
    groups = [(i, f"class_{i:02d}.png", f"predicted {c}") for i, c in enumerate(classes)]
    for i, name, what in [*groups, (UNCONFIDENT, "unconfident.png", UNCONFIDENT_NAME)]:
        idx = np.flatnonzero(labels == i)
        if idx.size:
            take = idx[np.linspace(0, idx.size - 1, min(idx.size, 64)).astype(int)]
            viz.save_class_montage(folder.file(name), frames.isel(sample=take).values,
                                   k[take], f[take], title=f"{what}: {idx.size} runs")
    viz.write_explorer(folder.file("explorer.html"), k, f, labels, classes, probs,
                       frames.values, thumb_size=thumb_size, unlabelled=UNCONFIDENT_NAME)


def _spacing(values: np.ndarray) -> float:
    d = np.diff(np.unique(np.round(values, 10)))
    d = d[d > 1e-12]
    return float(d.min()) if d.size else 1.0


def compare_classifications(da_: xr.Dataset, db: xr.Dataset, names=("a", "b")) -> dict:
    """Count the points of two classifications of one scan that changed class.

    Classes are matched by class symbol, so a 15-class and a 16-class model compare; each
    class of ``db`` that ``da_`` lacks is located.

    Parameters
    ----------
    da_, db : xarray.Dataset
        The two classifications.
    names : tuple of str, default ("a", "b")
        Their names in error messages.

    Returns
    -------
    dict
        ``{"points", "changed", "new_classes"}``; ``new_classes`` maps each new class to the
        ``{"k", "f"}`` of its points.

    Raises
    ------
    ParameterError
        When the two classify different scans.
    """
    if not (np.array_equal(da_["k"].values, db["k"].values)
            and np.array_equal(da_["f"].values, db["f"].values)):
        raise ParameterError(f"{names[0]} and {names[1]} classify different scans")
    ca, cb = list(da_["class"].values), list(db["class"].values)
    sa = np.asarray(ca)[da_["predicted"].values]
    sb = np.asarray(cb)[db["predicted"].values]
    changed = sa != sb
    new = {}
    for c in set(cb) - set(ca):
        idx = np.flatnonzero(sb == c)
        new[c] = [{"k": float(db["k"].values[i]), "f": float(db["f"].values[i])} for i in idx]
    return {"points": int(sa.size), "changed": int(changed.sum()), "new_classes": new}


def changed_cells(a: str | Path, b: str | Path) -> dict:
    """Run :func:`compare_classifications` on two ``classification.zarr`` stores.

    Each is verified by :func:`read_classification` first.

    Parameters
    ----------
    a, b : str or Path
        The two stores.

    Returns
    -------
    dict
        As :func:`compare_classifications`.

    Raises
    ------
    DataError
        When a store is damaged.
    ParameterError
        When the two classify different scans.
    """
    return compare_classifications(read_classification(a), read_classification(b),
                                   (str(a), str(b)))
