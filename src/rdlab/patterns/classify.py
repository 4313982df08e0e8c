"""Label every point of a scan with class probabilities and draw the results.

Writes into a run folder: ``classification.zarr`` (``probabilities (sample, class)``,
``predicted (sample,)``, with the scan's ``k``, ``f``, ``seed``), ``phase_map.png`` (x = k,
y = f, coloured by class, like the paper's Fig. 6), one montage per predicted class, the
self-contained ``explorer.html`` and ``metrics.json`` (counts per class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from rdlab.errors import ParameterError
from rdlab.patterns import pattern_store
from rdlab.run_folder import RunFolder

#: Samples per prediction batch (bounded memory however large the scan).
PREDICT_BATCH = 256


def predict_store(model, ds: xr.Dataset, progress: bool = True) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` for every sample of a pattern store, read in
    batches of :data:`PREDICT_BATCH`."""
    from tqdm.auto import tqdm

    from rdlab.patterns.training import predict

    n = ds.sizes["sample"]
    parts = []
    for a in tqdm(range(0, n, PREDICT_BATCH), desc="classify", unit="batch",
                  disable=not progress):
        frames = ds["frames"].isel(sample=slice(a, a + PREDICT_BATCH)).values
        parts.append(predict(model, frames))
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def classify_scan(scan_path: str | Path, model_path: str | Path, out: str | Path,
                  progress: bool = True, thumb_size: int = 48) -> dict:
    """Classify the scan at ``scan_path`` with the model at ``model_path``; write ``out``."""
    from rdlab import viz
    from rdlab.patterns.cnn import load_model

    ds = pattern_store.open_patterns(scan_path)
    model, classes, _ = load_model(model_path)
    n_channels = ds.sizes["channel"]
    expected = getattr(model, "in_channels", n_channels)
    if expected != n_channels:
        raise ParameterError(f"model expects {expected} channels, the scan has {n_channels}")
    probs = predict_store(model, ds, progress)
    predicted = probs.argmax(axis=1)
    folder = RunFolder(out)
    result = xr.Dataset(
        {"probabilities": (("sample", "class"), probs.astype(np.float32)),
         "predicted": ("sample", predicted.astype(np.int64))},
        coords={"k": ds["k"], "f": ds["f"], "seed": ds["seed"], "class": classes},
        attrs={"scan": str(scan_path), "model": str(model_path)})
    folder.write_dataset(result, "classification.zarr")
    k, f = ds["k"].values, ds["f"].values
    viz.save_phase_map(folder.file("phase_map.png"), k, f, predicted, classes,
                       dk=_spacing(k), df=_spacing(f),
                       title=f"CNN classification of {len(k)} runs")
    counts = {c: int((predicted == i).sum()) for i, c in enumerate(classes)}
    frames = ds["frames"]
    for i, c in enumerate(classes):
        idx = np.flatnonzero(predicted == i)
        if idx.size:
            take = idx[np.linspace(0, idx.size - 1, min(idx.size, 64)).astype(int)]
            viz.save_class_montage(folder.file(f"class_{i:02d}.png"),
                                   frames.isel(sample=take).values, k[take], f[take],
                                   title=f"predicted {c}: {idx.size} runs")
    viz.write_explorer(folder.file("explorer.html"), k, f, predicted, classes, probs,
                       frames.values, thumb_size=thumb_size)
    metrics = {"points": int(len(k)), "counts": counts}
    folder.write_metrics(metrics)
    return metrics


def _spacing(values: np.ndarray) -> float:
    d = np.diff(np.unique(np.round(values, 10)))
    d = d[d > 1e-12]
    return float(d.min()) if d.size else 1.0


def changed_cells(a: str | Path, b: str | Path, classes_a: list[str] | None = None) -> dict:
    """Compare two classifications of the same scan: how many points changed class (matched
    by class symbol, so a 15-class and a 16-class model compare), and where each class of
    ``b`` that ``a`` lacks was found."""
    da_, db = xr.open_zarr(a), xr.open_zarr(b)
    if not (np.array_equal(da_["k"].values, db["k"].values)
            and np.array_equal(da_["f"].values, db["f"].values)):
        raise ParameterError(f"{a} and {b} classify different scans")
    ca, cb = list(da_["class"].values), list(db["class"].values)
    sa = np.asarray(ca)[da_["predicted"].values]
    sb = np.asarray(cb)[db["predicted"].values]
    changed = sa != sb
    new = {}
    for c in set(cb) - set(ca):
        idx = np.flatnonzero(sb == c)
        new[c] = [{"k": float(db["k"].values[i]), "f": float(db["f"].values[i])} for i in idx]
    return {"points": int(sa.size), "changed": int(changed.sum()), "new_classes": new}
