"""Test accuracy of CNN training recipes over several seeds (how the defaults were chosen).

    python benchmarks/classify_recipes.py --data runs/bench_paper/data --device cuda
    python benchmarks/classify_recipes.py --data runs/bench_paper/data --recipes smoothing --seeds 0

``--data`` holds ``train.zarr``, ``val.zarr`` and ``test.zarr`` (``rdlab classify dataset`` or the
paper benchmark). Each recipe is trained once per seed (resumable: every run has its own
folder under ``--out``), its best checkpoint is evaluated on the test set with a single view
and with the 8-view average of :func:`rdlab.classify.training.predict`, and the script prints
one line per run and the mean per recipe, with the most frequent test errors (true class at
its (k, f) → predicted class). On 2 CPU cores a 60-epoch run takes about 18 minutes; on a GPU
(``--device cuda``) about half a minute.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np

from rdlab.classify.augment import AugmentConfig
from rdlab.classify.cnn import load_model
from rdlab.classify.evaluation import load_labelled
from rdlab.classify.paper_pipeline import train_model
from rdlab.classify.pattern_store import open_patterns
from rdlab.classify.training import evaluate

#: TrainConfig overrides of each recipe (the others keep TrainConfig's defaults).
RECIPES = {
    "plain": {"label_smoothing": 0.0},
    "smoothing": {"label_smoothing": 0.1},
    "smoothing-120": {"label_smoothing": 0.1, "epochs": 120},
    "zoom-0.35": {"label_smoothing": 0.0, "augment": AugmentConfig(zoom=0.35).to_dict()},
    "legacy-shift": {"label_smoothing": 0.0,
                     "augment": AugmentConfig(legacy_shift=True).to_dict()},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_recipes"))
    ap.add_argument("--recipes", nargs="+", default=["plain", "smoothing"],
                    choices=sorted(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=None,
                    help="override every recipe's epochs (e.g. 1 for a smoke test)")
    args = ap.parse_args()

    test = open_patterns(args.data / "test.zarr")
    k, f = test["k"].values, test["f"].values
    summary: dict[str, list[tuple[float, float]]] = {}
    labelled: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}  # read the test set once
    for recipe in args.recipes:
        for seed in args.seeds:
            folder = args.out / f"{recipe}_s{seed}"
            t0 = time.perf_counter()
            result = train_model(args.data / "train.zarr", args.data / "val.zarr", folder,
                                 {**RECIPES[recipe], "seed": seed, "patience": None,
                                  "device": args.device,
                                  **({"epochs": args.epochs} if args.epochs else {})},
                                 progress=False)
            seconds = time.perf_counter() - t0
            model, classes, _ = load_model(folder / "best.pt")
            if tuple(classes) not in labelled:
                labelled[tuple(classes)] = load_labelled(args.data / "test.zarr", classes)
            x, y = labelled[tuple(classes)]
            scores = evaluate(model, x, y, classes)
            wrong = collections.Counter(
                f"{classes[t]}({k[i]:.4g},{f[i]:.4g})→{classes[p]}"
                for i, (t, p) in enumerate(zip(y, scores["predicted"])) if t != p)
            summary.setdefault(recipe, []).append((scores["single_view_accuracy"],
                                                   scores["accuracy"]))
            print(json.dumps({"recipe": recipe, "seed": seed, "epochs": result["epochs_run"],
                              "train_s": round(seconds, 1),
                              "val": round(result["best_val_accuracy"], 4),
                              "test_single_view": round(scores["single_view_accuracy"], 4),
                              "test_8_views": round(scores["accuracy"], 4),
                              "errors": dict(wrong.most_common(4))}, ensure_ascii=False),
                  flush=True)
    print(f"\n{'recipe':<16}{'runs':>6}{'single view':>14}{'8 views':>10}{'min 8 views':>13}")
    for recipe, accs in summary.items():
        a = np.array(accs)
        print(f"{recipe:<16}{len(a):>6}{100 * a[:, 0].mean():>13.2f}%{100 * a[:, 1].mean():>9.2f}%"
              f"{100 * a[:, 1].min():>12.2f}%")


if __name__ == "__main__":
    main()
