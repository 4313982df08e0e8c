"""Reaction discovery benchmark: time-to-exact-stoichiometry and success rate per example.

For every example and seed: generate the §4 data (100 initial conditions, t = 0…1 by 0.1),
fit with partial-parameter freezing under a 120 s budget on one core, and check the learned
mechanism against the truth (same integer rows up to order and sign, rates within 1 %).
Two seeds run at a time (one per core). Then: the no-freezing baseline, hydrogen oxidation
with derivative noise 1e-3 and 1e-4 (Table 4.6, Fig. 4.8), the n_r sweep of Table 4.2 /
Fig. 4.5, and catalysis. Prints tables; writes JSON and figures to --out.

    python benchmarks/discover.py --out runs/bench/discover [--seeds 10] [--examples ...]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

EXAMPLES = ["stiff", "michaelis-menten", "michaelis-menten-arrhenius", "hydrogen-oxidation",
            "zeldovich", "gri30-simplified", "autocatalytic"]


def _one(args):
    name, seed, budget, extra = args
    import torch

    torch.set_num_threads(1)
    from rdlab.discover.data import generate
    from rdlab.discover.estimator import ReactionDiscovery
    from rdlab.discover.examples import example

    ex = example(name)
    t = time.perf_counter()
    data = generate(ex.mechanism, seed=seed, temperature_range=ex.temperature_range)
    if extra.get("noise"):
        data = data.with_noise(extra["noise"], seed=seed)
    t_data = time.perf_counter() - t
    params = {"catalytic": ex.catalytic, "time_budget_s": budget, "seed": seed,
              "noise_level": extra.get("noise", 0.0)}
    params.update(extra.get("estimator", {}))
    params.setdefault("warm_start", extra.get("warm_start", True))
    est = ReactionDiscovery(extra.get("n_reactions", ex.n_reactions), **params).fit(data)
    cmp = est.mechanism_.compare(ex.mechanism)
    return {"example": name, "seed": seed, "data_seconds": t_data,
            "fit_seconds": est.fit_seconds_, "time_to_structure": est.time_to_structure_,
            "converged": est.converged_, "exact": cmp["exact"],
            "max_rate_error": cmp["max_rate_error"], "validation_error": est.validation_error_,
            "max_species_error": float(np.max(est.species_errors_)),
            "epochs": est.n_epochs_, "restarts": est.restarts_, "warm_start": est.warm_start_,
            "rates_within_1pct": bool(cmp["exact"] and cmp["max_rate_error"] < 1e-2),
            "matched": cmp["matched"], "table": est.mechanism_.table(),
            "mechanism": est.mechanism_.to_dict()}


def _pool(jobs, workers):
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_one, jobs))


def _duration(text: str) -> float:
    """A ``--time-budget`` value in seconds (rdlab's parser; argparse reports the error)."""
    from rdlab.checks import parse_duration
    from rdlab.errors import ParameterError

    try:
        return parse_duration(text, "--time-budget")
    except ParameterError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/discover"))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--time-budget", dest="budget", type=_duration, default=120.0,
                    metavar="DURATION", help="time budget of each fit: 90s, 20m, 1.5h")
    ap.add_argument("--budget", dest="budget", type=float, help=argparse.SUPPRESS)  # old name
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--examples", nargs="*", default=EXAMPLES)
    ap.add_argument("--no-warm-start", action="store_true",
                    help="run the CRNN from the paper's random start only (no sparse-regression "
                         "proposal)")
    ap.add_argument("--skip", nargs="*", default=[],
                    help="parts to skip: success baseline noise sweep catalysis")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    t_all = time.perf_counter()

    if "success" not in a.skip:
        runs = _pool([(n, s, a.budget, {"warm_start": not a.no_warm_start})
                      for n in a.examples for s in range(1, a.seeds + 1)], a.workers)
        results["success"] = runs
        start = "random start only" if a.no_warm_start else "sparse-regression warm start"
        print(f"\n== time-to-exact-stoichiometry (PPF, {start}, budget "
              f"{a.budget:.0f} s, 1 core per run, {a.seeds} seeds)")
        print(f"{'example':28s} {'exact+1%':>8s} {'flagged':>8s} {'median s':>9s} {'max s':>7s}"
              f" {'max rate err':>12s}")
        for n in a.examples:
            rs = [r for r in runs if r["example"] == n]
            ok = [r for r in rs if r["rates_within_1pct"]]
            times = [r["time_to_structure"] for r in ok]
            silent = [r for r in rs if r["converged"] and not r["exact"]]
            flagged = sum(not r["converged"] for r in rs)
            print(f"{n:28s} {len(ok):>4d}/{len(rs):<3d} {flagged:>8d} "
                  f"{np.median(times) if times else float('nan'):9.1f} "
                  f"{max(times) if times else float('nan'):7.1f} "
                  f"{max((r['max_rate_error'] for r in ok), default=float('nan')):12.2e}"
                  + (f"   SILENT WRONG: {len(silent)}" if silent else ""))
        (a.out / "success.json").write_text(json.dumps(runs, indent=1, default=float))

    if "baseline" not in a.skip:
        base = _pool([(n, 1, 60.0, {"estimator": {"freezing": False, "population": 1}})
                      for n in ("stiff", "michaelis-menten", "hydrogen-oxidation")], a.workers)
        results["baseline"] = base
        print("\n== without freezing (60 s each, seed 1): the paper's baseline")
        for r in base:
            print(f"-- {r['example']}: exact {r['exact']}, converged {r['converged']}, "
                  f"validation E {r['validation_error']:.2e}, epochs {r['epochs']}")
            print(r["table"])

    if "noise" not in a.skip:
        from rdlab.discover.examples import example
        from rdlab.discover.mechanism import Mechanism
        from rdlab.discover.workflow import trajectory_check
        from rdlab.viz.discover_figures import save_trajectory_comparison

        noisy = _pool([("hydrogen-oxidation", 1, a.budget, {"noise": lvl})
                       for lvl in (1e-3, 1e-4)], a.workers)
        results["noise"] = noisy
        truth = example("hydrogen-oxidation").mechanism
        print("\n== hydrogen oxidation with derivative noise (Table 4.6)")
        for lvl, r in zip((1e-3, 1e-4), noisy):
            print(f"-- noise {lvl:g}: exact stoichiometry {r['exact']}, converged "
                  f"{r['converged']}, time {r['fit_seconds']:.1f} s")
            print("   reaction   kf         kf rel.err   kr         kr rel.err")
            for m in r["matched"]:
                if m["learned"] is None:
                    print(f"   {m['reaction'] + 1}: not found")
                    continue
                print(f"   {m['reaction'] + 1}        {m['kf']:.4e} {m['kf_error']:.3e}    "
                      f"{m['kr']:.4e} {m['kr_error']:.3e}")
            learned = Mechanism.from_dict(r["mechanism"])
            chk = trajectory_check(learned, truth, None, t_end=10.0, n_times=100)
            r["trajectory_error"] = chk["relative_error"]
            print(f"   trajectory error on [0, 10] (100 points): {chk['relative_error']:.3e}")
            save_trajectory_comparison(a.out / f"hydrogen_noise_{lvl:g}.png", chk["times"],
                                       chk["reference"], chk["learned"], truth.species,
                                       title=f"hydrogen oxidation, noise {lvl:g}: learned "
                                             f"(dashed) vs true")

    if "sweep" not in a.skip:
        from rdlab.discover.data import generate
        from rdlab.discover.examples import example
        from rdlab.discover.selection import sweep_reactions
        from rdlab.viz.discover_figures import save_reaction_sweep

        t = time.perf_counter()
        sw = sweep_reactions(generate(example("stiff").mechanism, seed=1), (1, 2, 3, 4),
                             time_budget_s=60.0, seed=1)
        results["sweep"] = sw.to_dict()
        print(f"\n== n_r sweep, stiff example (Table 4.2 / Fig. 4.5), "
              f"{time.perf_counter() - t:.0f} s")
        print(sw.table())
        for n, f in zip(sw.n_reactions, sw.fits):
            print(f"-- n_r = {n}\n{f.mechanism_.table()}")
        save_reaction_sweep(a.out / "sweep_stiff.png", sw.n_reactions, sw.train_error,
                            sw.validation_error, chosen=sw.chosen, title="stiff example")

    if "catalysis" not in a.skip:
        cat = _pool([("autocatalytic", 1, 30.0, {"estimator": {"catalytic": False}}),
                     ("autocatalytic", 1, 30.0, {})], a.workers)
        results["catalysis"] = cat
        print("\n== catalysis: X + Y -> 2Y, Y -> Z")
        for label, r in zip(("V form (paper)", "catalytic form"), cat):
            print(f"-- {label}: exact {r['exact']}, converged {r['converged']}, largest "
                  f"species error {r['max_species_error']:.2e}")
            print(r["table"])

    print(f"\ntotal wall time {time.perf_counter() - t_all:.0f} s")
    (a.out / "results.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
