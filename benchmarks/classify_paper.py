"""Time-to-result of the whole Gray–Scott CNN paper on this machine.

Runs :func:`rdlab.classify.paper_pipeline.run_paper` (datasets train/val/test, training,
evaluation, the 5481-point scan and its classification; ``--second-pass`` adds train2/val2,
retraining and reclassification) and prints each stage's wall time, the test accuracy and the
early-stopping saving. The figure to compare with: the reference code's authors quote about 31
hours on a 6-core machine for the first pass (2 h per dataset, 24 h scan, 1.4 h training);
rdlab's target is 90 minutes on 2 cores.

    python benchmarks/classify_paper.py --out runs/bench_paper [--second-pass]

Resumable like the workflow itself; stage times are those of the current call.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

from rdlab.classify.paper_pipeline import PaperSettings, run_paper
from rdlab.classify.pattern_runs import PatternRunSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_paper"))
    ap.add_argument("--second-pass", action="store_true")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--train-minutes", type=float, default=19.0,
                    help="training stops after the epoch that passes this budget")
    args = ap.parse_args()
    t0 = time.perf_counter()
    summary = run_paper(args.out, PaperSettings(runs=PatternRunSettings(dtype=args.dtype),
                                                workers=args.workers,
                                                train={"time_budget_s": 60 * args.train_minutes}),
                        second_pass=args.second_pass)
    total = time.perf_counter() - t0
    print(f"{'stage':<16}{'wall s':>10}{'min':>8}")
    for stage, s in summary["timings_s"].items():
        print(f"{stage:<16}{s:>10.1f}{s / 60:>8.1f}")
    print(f"{'total':<16}{total:>10.1f}{total / 60:>8.1f}")
    for key in ("evaluation", "evaluation2"):
        for name, r in summary.get(key, {}).items():
            print(f"{key}: {name} accuracy {r['accuracy']:.4f} ({r['samples']} samples)")
    scan = xr.open_zarr(args.out / "scan.zarr")
    stopped = scan["stopped_step"].values
    n_steps = 60000
    saved = np.where(stopped >= 0, n_steps - stopped, 0).sum() / (n_steps * stopped.size)
    print(f"scan early stops: {(stopped >= 0).sum()} of {stopped.size} runs, "
          f"{100 * saved:.1f} % of the scan's steps saved")
    if "second_pass" in summary:
        print("second pass:", json.dumps(summary["second_pass"], ensure_ascii=False))


if __name__ == "__main__":
    main()
