"""Comparing two classifications of one scan: changed cells and where a new class lies."""

import numpy as np
import xarray as xr

from rdlab.classify.label_scan import changed_cells
from rdlab.classify.paper_pipeline import _second_pass_summary


def _classification(path, classes, predicted, k, f):
    n = len(predicted)
    probs = np.eye(len(classes))[predicted]
    xr.Dataset({"probabilities": (("sample", "class"), probs),
                "predicted": ("sample", np.asarray(predicted))},
               coords={"k": ("sample", k), "f": ("sample", f), "seed": ("sample", np.arange(n)),
                       "class": classes}).to_zarr(path, zarr_format=2)
    return path


def test_changed_cells_matches_classes_by_symbol(tmp_path):
    k = np.array([0.05, 0.055, 0.06, 0.060625, 0.060625, 0.065])
    f = np.array([0.02, 0.03, 0.05, 0.068, 0.0705, 0.05])
    pass1 = ["ι", "κ", "L", "H"]
    pass2 = ["ι", "κ", "π", "L", "H"]  # π inserted: indices of L and H move
    a = _classification(tmp_path / "a.zarr", pass1, [0, 1, 2, 0, 0, 3], k, f)
    b = _classification(tmp_path / "b.zarr", pass2, [0, 1, 3, 2, 2, 4], k, f)
    report = changed_cells(a, b)
    assert report["points"] == 6
    assert report["changed"] == 2  # the two ι cells that became π; L and H unchanged
    summary = _second_pass_summary(report)
    pi = summary["new_classes"]["π"]
    assert pi["cells"] == 2
    assert np.isclose(pi["k_mean"], 0.060625)
    assert np.isclose(pi["f_mean"], 0.06925)
