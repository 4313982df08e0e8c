"""Speed of the trajectory fit's stiff solver: the compiled BDF against SciPy's, same process.

    python benchmarks/discover_solver.py            # about a minute
    python benchmarks/discover_solver.py --quick

Each row integrates one bundled example's true mechanism from the first states of ``n``
samples over t = 0…1 (11 reporting times) with forward sensitivities to every ``ln k`` and
every initial state, as one evaluation of a fit does (``rtol`` 1e-7, ``atol`` 1e-12 of each
species' largest value). ``compiled`` is
:func:`rdlab.discover.mass_action_kernel.integrate_sample`, sample by sample; ``scipy`` is
SciPy's BDF on the stacked samples with block Newton solves (:mod:`rdlab.discover.block_bdf`,
the solver of the trajectory fit until stop 45). Times are
the best of ``--repeat`` runs after a warm-up (compilation excluded); the last columns are the
largest differences between the two (states relative to each species' largest value,
sensitivities relative to their column's largest value).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rdlab.discover.data import generate
from rdlab.discover.examples import example
from rdlab.discover.trajectory_fit import (
    KineticModel,
    simulate,
    start_parameters,
    temperature_offsets,
)

EXAMPLES = ["gri30-simplified", "hydrogen-oxidation", "michaelis-menten-arrhenius", "stiff"]


def _best(args: tuple, solver: str, repeat: int) -> tuple[float, tuple]:
    """Best time of ``simulate(*args)`` with ``solver``, and its result."""
    out = simulate(*args, state_sensitivities=True, solver=solver)  # warm-up (compilation)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = simulate(*args, state_sensitivities=True, solver=solver)
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", nargs="*", default=EXAMPLES)
    ap.add_argument("--samples", nargs="*", type=int, default=[5, 20, 100])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="5 and 20 samples, 1 repeat")
    a = ap.parse_args()
    if a.quick:
        a.samples, a.repeat = [5, 20], 1
    print(f"{'example':28s} {'n':>4s} {'n_θ':>4s} {'compiled s':>11s} {'scipy s':>9s} "
          f"{'speed-up':>8s} {'max dx':>9s} {'max dS':>9s}")
    for name in a.examples:
        ex = example(name)
        data = generate(ex.mechanism, n_samples=max(a.samples), seed=1,
                        temperature_range=ex.temperature_range)
        model = KineticModel.from_mechanism(ex.mechanism)
        T_ref, x_temp = temperature_offsets(data)
        theta = start_parameters(ex.mechanism, model, T_ref)
        t = data.times if data.times.ndim == 1 else data.times[0]
        for n in a.samples:
            c0 = data.concentrations[:n, 0]
            xt = None if x_temp is None else x_temp[:n]
            runs = {s: _best((model, theta, c0, t, xt), s, a.repeat)
                    for s in ("compiled", "scipy")}
            (t1, (x1, s1, ok1)), (t2, (x2, s2, ok2)) = runs["compiled"], runs["scipy"]
            dx = np.max(np.abs(x1 - x2) / np.max(np.abs(x2), axis=(0, 1)))
            ds = np.max(np.abs(s1 - s2) / np.maximum(np.max(np.abs(s2), axis=(0, 1, 2)), 1e-300))
            flag = "" if ok1 and ok2 else f"  (ok: compiled {ok1}, scipy {ok2})"
            print(f"{name:28s} {n:4d} {s1.shape[-1]:4d} {t1:11.4f} {t2:9.4f} {t2 / t1:8.1f} "
                  f"{dx:9.1e} {ds:9.1e}{flag}")


if __name__ == "__main__":
    main()
