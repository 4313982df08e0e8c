"""Throughput of the simulation engines on this machine.

    python benchmarks/simulate.py            # full run (about a minute)
    python benchmarks/simulate.py --quick    # short measurements

Figures are cell-updates per second: grid cells × steps × batch / wall time, where one
cell-update advances one cell (all species) by one forward-Euler step. Compilation is
excluded (every kernel is warmed up first); each figure is the best of ``--repeat`` timed
runs of at least ``--seconds`` each.

Measured: the fast engine (:mod:`rdlab.simulate.fast`) for Gray–Scott at 128×128 with the
9-point stencil, batch 64, float32 and float64; the same for the dense 5-species network
(``dense_gs_network(5)``, 40 reactions) at 64×64, batch 64; a plain single-threaded NumPy
``np.roll`` implementation of the Gray–Scott 9-point step (float64, batch 1, 128×128) as the
baseline; and, when the torch engine is importable, its forward and forward+backward time per
step (:func:`bench_torch`).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _best_rate(fn, work: float, seconds: float, repeat: int, start: int = 1,
               max_n: int = 1 << 30) -> float:
    """Best ``work``-units per second of ``fn(n)`` (which does ``n`` units). ``n`` is doubled
    from ``start`` until a call takes half of ``seconds``, then scaled so that one call takes
    about ``seconds`` (capped at ``max_n``, with calls then repeated until ``seconds`` have
    passed); the best of ``repeat`` such timings is kept. One long call per timing keeps
    per-call overheads (allocation, layout conversion) out of the figure."""
    n = start
    while True:
        t0 = time.perf_counter()
        fn(n)
        el = time.perf_counter() - t0
        if el >= 0.5 * seconds or n >= max_n:
            break
        n *= 2
    n = min(max_n, max(1, int(n * seconds / el)))
    best = 0.0
    for _ in range(repeat):
        done, t0 = 0, time.perf_counter()
        while True:
            fn(n)
            done += n
            el = time.perf_counter() - t0
            if el >= 0.9 * seconds:
                break
        best = max(best, done * work / el)
    return best


# ---------------------------------------------------------------------------- systems
def gray_scott_system(n: int = 128, batch: int = 64, stencil: str = "9-point"):
    from rdlab.chemistry import gray_scott_network
    from rdlab.system import Grid, System

    side = int(round(np.sqrt(batch)))
    f = np.linspace(0.02, 0.06, side)
    k = np.linspace(0.05, 0.065, batch // side)
    system = System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=0.04,
                          feed=[1.0, 0.0], grid=Grid(n, n, stencil=stencil)).sweep(f=f, k=k)
    rng = np.random.default_rng(0)
    state = np.zeros(system.state_shape())
    state[:, 0] = 1.0
    c = slice(n // 2 - 8, n // 2 + 8)
    state[:, 0, c, c] = 0.5
    state[:, 1, c, c] = 0.25
    state += 0.02 * rng.random(state.shape)
    return system, state


def dense_system(n: int = 64, batch: int = 64, n_species: int = 5):
    from rdlab.chemistry import dense_gs_network
    from rdlab.chemistry.dense import dense_code_initial_parameters
    from rdlab.system import Grid, System

    net = dense_gs_network(n_species)
    p = dense_code_initial_parameters(net, np.random.default_rng(0))
    system = System.build(net, rates=p["rates"], diffusion=p["diffusion"], flow=p["flow"],
                          feed=p["feed"], grid=Grid(n, n))
    system = system.sweep(f=np.linspace(0.02, 0.04, batch))
    state = np.broadcast_to(p["feed"][None, :, None, None], system.state_shape()).copy()
    state += 0.1 * np.random.default_rng(1).random(state.shape)
    return system, state


# ---------------------------------------------------------------------------- engines
def bench_fast(system, state, dtype, seconds: float, repeat: int, dt: float = 1.0) -> float:
    from rdlab.simulate import fast

    fast.warm_up(system, dtype)
    cells = system.batch_size * system.grid.ny * system.grid.nx

    def go(n_steps: int) -> None:
        fast.run(system, state, dt, n_steps, [n_steps], dtype=dtype)

    return _best_rate(go, cells, seconds, repeat, start=64)


def numpy_gray_scott_step(u, v, du, dv, f, k, dt):
    """One forward-Euler step of Gray–Scott with the isotropic 9-point Laplacian, written
    the plain way with ``np.roll`` (the baseline)."""

    def lap(a):
        edges = (np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1))
        corners = (np.roll(a, (1, 1), (0, 1)) + np.roll(a, (1, -1), (0, 1))
                   + np.roll(a, (-1, 1), (0, 1)) + np.roll(a, (-1, -1), (0, 1)))
        return 0.5 * edges + 0.25 * corners - 3.0 * a

    uvv = u * v * v
    u_new = u + dt * (du * lap(u) - uvv + f * (1.0 - u))
    v_new = v + dt * (dv * lap(v) + uvv - (f + k) * v)
    return u_new, v_new


def bench_numpy(seconds: float, repeat: int, n: int = 128) -> float:
    system, state = gray_scott_system(n, batch=1)
    u, v = state[0, 0].copy(), state[0, 1].copy()
    f, k = float(system.flow[0]), float(system.rates[0, 1])

    def go(n_steps: int) -> None:
        a, b = u, v
        for _ in range(n_steps):
            a, b = numpy_gray_scott_step(a, b, 0.2, 0.1, f, k, 1.0)

    return _best_rate(go, n * n, seconds, repeat)


def bench_torch(seconds: float, repeat: int, n: int = 128, batch: int = 64) -> dict | None:
    """Torch engine (CPU), Gray–Scott 128×128 9-point, batch 64, float32: seconds per step
    of the forward pass (no autograd) and of forward + backward (gradient of a scalar loss of
    the final state with respect to all parameters). ``None`` when the engine is missing."""
    try:
        import torch

        from rdlab.simulate.torch_engine import NetworkTensors, TorchParameters, rollout
    except ImportError:
        return None
    system, state = gray_scott_system(n, batch)
    net = NetworkTensors.from_system(system, torch.float32)
    x0 = torch.tensor(state, dtype=torch.float32)

    def forward(n_steps: int) -> None:
        params = TorchParameters.from_system(system, torch.float32)
        with torch.no_grad():
            rollout(net, params, x0, 1.0, n_steps)

    def backward(n_steps: int) -> None:
        params = TorchParameters.from_system(system, torch.float32, requires_grad=True)
        out = rollout(net, params, x0, 1.0, n_steps)
        out[-1, :, 1].mean().backward()

    forward(2)
    backward(2)
    fwd = _best_rate(forward, 1.0, seconds, repeat, max_n=50)
    bwd = _best_rate(backward, 1.0, seconds, repeat, max_n=10)  # memory ∝ steps
    return {"threads": torch.get_num_threads(), "forward_s_per_step": 1.0 / fwd,
            "forward_backward_s_per_step": 1.0 / bwd, "cells": batch * n * n}


# ---------------------------------------------------------------------------- main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short measurements")
    parser.add_argument("--seconds", type=float, default=None,
                        help="minimum duration of one timed run (default 1.5, quick 0.3)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed runs per figure, best kept (default 3, quick 1)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch engine")
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.3 if args.quick else 1.5)
    repeat = args.repeat or (1 if args.quick else 3)

    import numba

    from rdlab.simulate.fast_codegen import VECTOR_BYTES

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numba {numba.__version__} with {numba.get_num_threads()} threads, "
          f"SIMD vectors of {VECTOR_BYTES * 8} bits")
    print(f"timing: best of {repeat} run(s) of ≥ {seconds:g} s each, compilation excluded\n")

    gs, gs_state = gray_scott_system()
    results = {}
    for name, dtype in (("float32", np.float32), ("float64", np.float64)):
        results[f"gs {name}"] = bench_fast(gs, gs_state, dtype, seconds, repeat)
        print(f"fast  Gray–Scott 128×128 9-point, batch 64, {name}: "
              f"{results[f'gs {name}'] / 1e9:6.2f} G cell-updates/s")
    dense, dense_state = dense_system()
    for name, dtype in (("float32", np.float32), ("float64", np.float64)):
        results[f"dense {name}"] = bench_fast(dense, dense_state, dtype, seconds, repeat)
        print(f"fast  dense_gs_network(5) (40 reactions) 64×64, batch 64, {name}: "
              f"{results[f'dense {name}'] / 1e9:6.2f} G cell-updates/s")
    base = bench_numpy(seconds, repeat)
    print(f"numpy np.roll Gray–Scott 128×128 9-point, batch 1, float64, 1 thread: "
          f"{base / 1e9:6.3f} G cell-updates/s")
    print(f"ratio fast/baseline: float64 {results['gs float64'] / base:6.1f}×, "
          f"float32 {results['gs float32'] / base:6.1f}×")

    targets = [("Gray–Scott float32 ≥ 3.0 G/s", results["gs float32"] >= 3.0e9),
               ("Gray–Scott float64 ≥ 2.0 G/s", results["gs float64"] >= 2.0e9),
               ("float64 ≥ 20× NumPy baseline", results["gs float64"] >= 20 * base)]
    print("targets: " + "; ".join(f"{t}: {'met' if ok else 'MISSED'}" for t, ok in targets))

    if not args.no_torch:
        torch_result = bench_torch(seconds, repeat)
        if torch_result is None:
            print("\ntorch engine: not available")
        else:
            cells = torch_result["cells"]
            fwd, bwd = (torch_result["forward_s_per_step"],
                        torch_result["forward_backward_s_per_step"])
            print(f"\ntorch Gray–Scott 128×128 9-point, batch 64, float32, CPU, "
                  f"{torch_result['threads']} threads: forward {fwd * 1e3:.2f} ms/step "
                  f"({cells / fwd / 1e9:.3f} G cell-updates/s), forward+backward "
                  f"{bwd * 1e3:.2f} ms/step")


if __name__ == "__main__":
    main()
