"""The time-stack (3-D) CNN of the Gray–Scott CNN paper on this machine: data, training, accuracy.

    python benchmarks/classify_3d.py --out runs/bench_3d                  # the shipped recipe
    python benchmarks/classify_3d.py --out runs/bench_3d --seeds 0 1 2 --recipe 2d-recipe

1. The paper's train / val / test sets as 10-frame stacks (U at steps 45 600 + 1600·q) are
   simulated in float32 by the same resumable dask pipeline as ``rdlab classify dataset NAME
   --3d`` into ``OUT/data`` (``--data`` reuses stores made elsewhere: ``train.zarr``,
   ``val.zarr``, ``test.zarr``).
2. For each seed the 3-D network is trained with the recipe's :class:`TrainConfig` overrides
   and a wall-time budget (``--train-minutes``, default 30; training stops after the epoch
   that passes it), in ``OUT/RECIPE_sSEED`` (resumable).
3. Its best checkpoint (chosen on validation accuracy) is scored on val and test, one view
   and the 8-view average of :func:`rdlab.classify.training.predict`.

Prints one JSON line per stage and seed, then a table; the paper's 3-D model reached 97.3 %
validation accuracy after about 14 h of training on a 6-core i7 (the authors' README).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rdlab.classify.cnn import load_model
from rdlab.classify.evaluation import load_labelled
from rdlab.classify.paper_pipeline import PaperSettings, make_dataset, train_model
from rdlab.classify.pattern_runs import STACK_STEPS, PatternRunSettings
from rdlab.classify.training import RECIPE_3D, evaluate

#: TrainConfig overrides of each recipe (``--recipe``).
RECIPES = {
    "2d-recipe": {"architecture": "3d"},  # TrainConfig defaults: the 2-D recipe (batch 128)
    "shipped": dict(RECIPE_3D),
}


def make_data(folder: Path) -> None:
    """Simulate (or finish) the three 3-D stores in ``folder``, printing each one's time."""
    settings = PaperSettings(runs=PatternRunSettings(snapshot_steps=STACK_STEPS,
                                                     dtype="float32"))
    for name in ("train", "val", "test"):
        t0 = time.perf_counter()
        make_dataset(name, folder / f"{name}.zarr", settings)
        print(json.dumps({"dataset": name, "seconds": round(time.perf_counter() - t0, 1)}),
              flush=True)


def score(model_file: Path, data: Path) -> dict[str, float]:
    """Return val/test accuracy of a model file, one view and 8 views."""
    model, classes, _ = load_model(model_file)
    out = {}
    for name in ("val", "test"):
        x, y = load_labelled(data / f"{name}.zarr", classes)
        result = evaluate(model, x, y, classes)
        out[f"{name}_1"] = result["single_view_accuracy"]
        out[f"{name}_8"] = result["accuracy"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_3d"))
    ap.add_argument("--data", type=Path, default=None,
                    help="folder of train/val/test.zarr 3-D stores (default OUT/data, made "
                    "there when missing)")
    ap.add_argument("--recipe", default="shipped", choices=sorted(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--train-minutes", type=float, default=30.0)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="extra TrainConfig overrides, e.g. batch_size=64 epochs=80")
    args = ap.parse_args()
    data = args.data or args.out / "data"
    make_data(data)
    overrides = {**RECIPES[args.recipe], "time_budget_s": 60 * args.train_minutes,
                 **{k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}}
    rows = []
    for seed in args.seeds:
        folder = args.out / f"{args.recipe}_s{seed}"
        result = train_model(data / "train.zarr", data / "val.zarr", folder,
                             {**overrides, "seed": seed}, progress=False)
        row = {"seed": seed, "epochs": result["epochs_run"], "best_epoch": result["best_epoch"],
               "train_min": round(result["train_seconds"] / 60, 2),
               **{k: round(v, 4) for k, v in score(folder / "best.pt", data).items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nrecipe {args.recipe}: {json.dumps(overrides)}")
    print(f"{'seed':>5}{'epochs':>8}{'train min':>11}{'val 1':>8}{'val 8':>8}{'test 1':>8}"
          f"{'test 8':>8}")
    for r in rows:
        print(f"{r['seed']:>5}{r['epochs']:>8}{r['train_min']:>11.1f}"
              + "".join(f"{100 * r[k]:>7.2f}%" for k in ("val_1", "val_8", "test_1", "test_8")))
    if len(rows) > 1:
        mean = {k: np.mean([r[k] for r in rows]) for k in ("val_1", "val_8", "test_1", "test_8")}
        print(f"{'mean':>5}{'':>19}" + "".join(f"{100 * v:>7.2f}%" for v in mean.values()))


if __name__ == "__main__":
    main()
