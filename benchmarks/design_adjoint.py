"""The compiled design engine against today's fused torch step, in one run.

    python benchmarks/design_adjoint.py                 # kitchen sink, 5 species, 64², T = 64
    python benchmarks/design_adjoint.py --dtype float64 --no-fast

One optimisation step is a roll-out of ``--steps`` forward-Euler steps of the design dynamics
(clip to ``[0, 10]``) from an initial state, the loss

    L = Σ_{t ∈ every 8th step and T} mean((X_t[species 1] − target)²)

and its gradient with respect to the initial state and all four parameter groups. Timed in
one process on the same data:

* **compiled** — :func:`rdlab.simulate.adjoint.forward` + :func:`~rdlab.simulate.adjoint.
  backward` (generated numba kernels, all of numba's threads), the loss's ``dL/dX_t`` in
  NumPy;
* **torch** — :func:`rdlab.design.dynamics.rollout` (the fused step with its hand-written
  backward) and ``.backward()``;
* **fast** — the forward-only fast engine on the same network, grid and batch, through
  ``benchmarks/simulate.py``'s :func:`bench_fast` (skip with ``--no-fast``).

Printed: forward cell-steps/s and forward+backward time of each engine, their ratios, and
the issue's targets (an optimisation step ≥ 10× faster than the fused torch step; forward
within 2× of the fast engine). The compiled forward is also timed the way
``benchmarks/simulate.py`` times the fast engine (best rate of one long roll-out per timing),
so that the two throughputs compare like for like. Compilation is excluded (one warm-up step
first); each time is the median of ``--repeats`` steps. The float64 gradients of the two
engines are compared too (largest relative difference per group).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch


def build(species: int, dtype: torch.dtype, size: int, batch: int):
    """Return the kitchen-sink parameters at the paper's initialisation, ``X0`` and a target."""
    from rdlab.chemistry.presets import preset_network
    from rdlab.design.parameters import DesignParameters

    params = DesignParameters.initial(preset_network("kitchen-sink", species), seed=0,
                                      dtype=dtype)
    g = torch.Generator().manual_seed(1)
    S = params.n_species
    x0 = (params.feed.detach().double().view(1, S, 1, 1)
          + 0.5 * torch.rand(batch, S, size, size, generator=g, dtype=torch.float64))
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    target = 0.3 + 0.2 * np.sin(2 * np.pi * yy / size) * np.cos(2 * np.pi * xx / size)
    return params, x0.to(dtype), target


def loss_steps(n_steps: int) -> list[int]:
    """Return the steps the loss reads: every 8th and the last."""
    return sorted({*range(8, n_steps + 1, 8), n_steps})


def torch_step(params, x0: torch.Tensor, target: np.ndarray, n_steps: int) -> dict:
    """Run one fused-torch optimisation step; return the loss and gradients."""
    from rdlab.design.dynamics import rollout

    params.zero_grad(set_to_none=True)
    x = x0.clone().requires_grad_(True)
    traj = rollout(params, x, n_steps, 1.0)
    tgt = torch.as_tensor(target, dtype=x.dtype)
    loss = sum(((traj.states[t][:, 1] - tgt) ** 2).mean() for t in loss_steps(n_steps))
    loss.backward()
    return {"loss": float(loss), "x0": x.grad, "rates": params.rates.grad,
            "diffusion": params.diffusion.grad, "flow": params.flow.grad,
            "feed": params.feed.grad}


def compiled_step(params, x0: torch.Tensor, target: np.ndarray, n_steps: int,
                  backward: bool = True) -> dict:
    """Run the compiled engine's forward (and backward) pass; return loss and gradients."""
    from rdlab.simulate import adjoint

    steps = loss_steps(n_steps)
    v = {k: t.detach().cpu().numpy().astype(np.float64) for k, t in params.clone_values().items()}
    tape = adjoint.forward(params.network, x0.numpy(), v["rates"], v["diffusion"],
                           float(v["flow"]), v["feed"], n_steps, 1.0, steps=steps)
    diff = tape.states[:, :, 1] - target
    loss = float(sum((d ** 2).mean() for d in diff))
    if not backward:
        return {"loss": loss}
    grads = np.zeros_like(tape.states)
    grads[:, :, 1] = 2.0 * diff / diff[0].size
    g = adjoint.backward(tape, grads)
    return {"loss": loss, "x0": g.x0, "rates": g.rates.sum(0), "diffusion": g.diffusion.sum(0),
            "flow": g.flow.sum(), "feed": g.feed.sum(0)}


def median_time(fn, repeats: int) -> float:
    """Return the median wall time of ``fn()`` over ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fast_engine_rate(params, x0: torch.Tensor, dtype, seconds: float) -> float:
    """Return the fast engine's forward cell-updates/s on the same network, grid and batch."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from simulate import bench_fast

    from rdlab.system import Grid, System

    v = {k: t.detach().double().numpy() for k, t in params.clone_values().items()}
    size = x0.shape[-1]
    system = System.build(params.network, rates=v["rates"], diffusion=v["diffusion"],
                          flow=float(v["flow"]), feed=v["feed"], grid=Grid(size, size))
    # dt = 1e-3: the fast engine does not clip, and the throughput does not depend on dt
    return bench_fast(system, x0.double().numpy(), dtype, seconds, 1, dt=1e-3)


def compiled_forward_rate(params, x0: torch.Tensor, seconds: float) -> float:
    """Return the compiled forward's cell-updates/s measured as the fast engine's is.

    ``benchmarks/simulate.py``'s best-rate timing: one long roll-out per timing (checkpointed,
    so its memory stays small), its length grown until it takes ``seconds``.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from simulate import _best_rate

    from rdlab.simulate import adjoint

    v = {k: t.detach().cpu().numpy().astype(np.float64) for k, t in params.clone_values().items()}
    X0 = x0.numpy()
    cells = X0.shape[0] * X0.shape[2] * X0.shape[3]

    def go(n: int) -> None:
        adjoint.forward(params.network, X0, v["rates"], v["diffusion"], float(v["flow"]),
                        v["feed"], n, 1.0, steps=[n], store=False)

    return _best_rate(go, cells, seconds, 1, start=64)


def check_gradients(species: int, size: int, n_steps: int) -> None:
    """Print the largest relative difference of the two engines' float64 gradients."""
    params, x0, target = build(species, torch.float64, size, 1)
    a = torch_step(params, x0, target, n_steps)
    b = compiled_step(params, x0, target, n_steps)
    parts = [f"loss {abs(a['loss'] - b['loss']) / abs(a['loss']):.1e}"]
    for k in ("x0", "rates", "diffusion", "flow", "feed"):
        ref = a[k].numpy()
        parts.append(f"{k} {np.abs(b[k] - ref).max() / max(np.abs(ref).max(), 1e-300):.1e}")
    print("float64 agreement (max relative difference): " + ", ".join(parts))


def main(argv=None) -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-fast", action="store_true", help="skip the fast engine")
    args = parser.parse_args(argv)
    import numba

    dtype = getattr(torch, args.dtype)
    params, x0, target = build(args.species, dtype, args.size, args.batch)
    cells = args.batch * args.size * args.size * args.steps
    print(f"kitchen-sink({args.species}), {args.size}×{args.size}, T = {args.steps}, batch "
          f"{args.batch}, {args.dtype}; {os.cpu_count()} CPUs, numba {numba.get_num_threads()}"
          f" threads, torch {torch.get_num_threads()} threads; median of {args.repeats}")
    t_cf = median_time(lambda: compiled_step(params, x0, target, args.steps, False),
                       args.repeats)
    t_cb = median_time(lambda: compiled_step(params, x0, target, args.steps), args.repeats)
    with torch.no_grad():
        from rdlab.design.dynamics import rollout

        t_tf = median_time(lambda: rollout(params, x0, args.steps, 1.0), args.repeats)
    t_tb = median_time(lambda: torch_step(params, x0, target, args.steps), args.repeats)
    print(f"{'':24s}{'forward':>22s}{'forward+backward':>26s}")
    for name, tf, tb in (("compiled (numba)", t_cf, t_cb), ("fused torch step", t_tf, t_tb)):
        print(f"{name:24s}{cells / tf / 1e6:10.1f} M cell-steps/s {tb * 1e3:10.1f} ms "
              f"({cells / tb / 1e6:6.1f} M cell-steps/s)")
    print(f"ratio torch/compiled: forward {t_tf / t_cf:.1f}×, forward+backward "
          f"{t_tb / t_cb:.1f}× (target ≥ 10×: {'met' if t_tb / t_cb >= 10 else 'MISSED'})")
    if not args.no_fast:
        rate = fast_engine_rate(params, x0, np.dtype(args.dtype), 1.0)
        mine = compiled_forward_rate(params, x0, 1.0)
        print(f"fast engine forward (same network, grid, batch): {rate / 1e6:.1f} M cell-steps/s"
              f"; compiled/fast {cells / t_cf / rate:.2f} (target ≥ 0.5: "
              f"{'met' if cells / t_cf >= 0.5 * rate else 'MISSED'})")
        print(f"  measured alike (best rate of long roll-outs): compiled {mine / 1e6:.1f} M, "
              f"fast {rate / 1e6:.1f} M cell-steps/s; compiled/fast {mine / rate:.2f}")
    check_gradients(args.species, args.size, args.steps)


if __name__ == "__main__":
    main()
