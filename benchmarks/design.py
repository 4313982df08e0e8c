"""Time per optimisation step of the design dynamics against a reference-style baseline.

    python benchmarks/design.py                         # kitchen sink, 5 species, 64², T = 64
    python benchmarks/design.py --network dense-gs --steps 128

One optimisation step is a roll-out of ``--steps`` forward-Euler steps from an initial state
that requires a gradient (as a generator's output does), the loss

    L = mean((X_T[species 1] − target)²) + mean_t mean |ΔX_t|

and its backward pass to the initial state and all four parameter groups (rates, diffusion,
flow, feed). Measured in one process, same threads, same data:

* **rdlab** — :func:`rdlab.design.dynamics.rollout` (the fused step: one analytic-backward
  autograd node per Euler step), as used (``threads="auto"``: one intra-op thread inside the
  steps at these sizes) and with torch's thread setting inside the steps too
  (``threads=None``);
* **baseline** — the straightforward autograd implementation in the style of the public
  Dense-RDN code (written below): channels-last state ``(B, y, x, S)``, ``c = 0 → 1e-10``, a
  ``(B, y, x, S, R)`` power tensor reduced by ``prod``, an einsum with ``S``, circular padding
  plus a depthwise convolution for the 9-point Laplacian, the drive, and the clip to
  ``[0, 10]``.

Each figure is the median (and best) of ``--repeats`` timed steps after one warm-up step.
A float64 run (same sizes) checks that rdlab computes the same loss and gradients as the
baseline and as plain autograd through the model's one definition
(:mod:`rdlab.simulate.torch_model`, its step and clip driven by its stepping loop).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

#: The design's network families (the presets' names); the old ``gs``/``paper`` still read.
NETWORKS = ("kitchen-sink", "dense-gs", "dense")
OLD_NAMES = {"gs": "dense-gs", "paper": "dense"}


def build(network: str, species: int, dtype: torch.dtype, device: str = "cpu"):
    """Return the design parameters at the paper's initialisation (seed 0).

    Parameters
    ----------
    network : str
        A family of :data:`NETWORKS` (or an old name).
    species : int
        Number of species.
    dtype : torch.dtype
        Precision.
    device : str
        Torch device.

    Returns
    -------
    rdlab.design.parameters.DesignParameters
        The parameters on ``device``.
    """
    from rdlab.chemistry.presets import preset_network
    from rdlab.design.parameters import DesignParameters

    net = preset_network(OLD_NAMES.get(network, network), species)
    return DesignParameters.initial(net, seed=0, dtype=dtype).to(device)


def problem(params, size: int, batch: int, dtype: torch.dtype):
    """Return an initial state (feed + noise, the generator's stand-in) and a smooth target."""
    g = torch.Generator().manual_seed(1)
    S = params.n_species
    x0 = (params.feed.detach().cpu().double().view(1, S, 1, 1)
          + 0.5 * torch.rand(batch, S, size, size, generator=g, dtype=torch.float64))
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                            torch.arange(size, dtype=torch.float64), indexing="ij")
    target = 0.3 + 0.2 * torch.sin(2 * torch.pi * yy / size) * torch.cos(2 * torch.pi * xx / size)
    return x0.to(params.device, dtype), target.to(params.device, dtype)


def loss_of(states: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """MSE of species 1 at T to the target plus the mean |ΔX| over all steps."""
    fit = ((states[-1][:, 1] - target) ** 2).mean()
    steps = torch.stack([b - a for a, b in zip(states[:-1], states[1:])])
    return fit + steps.abs().mean()


# ---------------------------------------------------------------------------- baseline
def baseline_rollout(params, x0: torch.Tensor, n_steps: int, dt: float = 1.0,
                     c_max: float = 10.0) -> list[torch.Tensor]:
    """Roll out the reference-style implementation; return ``(B, S, y, x)`` views."""
    from rdlab.system import STENCILS

    net = params.network
    S_n = net.n_species
    Rt = torch.tensor(net.reactant_matrix, dtype=x0.dtype, device=x0.device)  # (S, R)
    stoich = torch.tensor(net.stoichiometry, dtype=x0.dtype, device=x0.device)  # (S, R)
    kernel = torch.as_tensor(STENCILS["9-point"], dtype=x0.dtype,
                             device=x0.device).expand(S_n, 1, 3, 3)
    k, D, f, feed = params.rates, params.diffusion, params.flow, params.feed
    c = x0.permute(0, 2, 3, 1)  # (B, y, x, S), channels last as the TF code
    out = [x0]
    for _ in range(n_steps):
        cc = torch.where(c == 0, torch.full_like(c, 1e-10), c)
        power = cc.unsqueeze(-1) ** Rt  # (B, y, x, S, R)
        v = k * power.prod(dim=-2)  # (B, y, x, R)
        rxn = torch.einsum("sr,bhwr->bhws", stoich, v)
        padded = F.pad(c.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="circular")
        lap = F.conv2d(padded, kernel, groups=S_n).permute(0, 2, 3, 1)
        dc = rxn + D * lap + f * (feed - c)
        c = torch.clamp(c + dt * dc, 0.0, c_max)
        out.append(c.permute(0, 3, 1, 2))
    return out


def rdlab_rollout(params, x0: torch.Tensor, n_steps: int, threads="auto"
                  ) -> list[torch.Tensor]:
    """Roll out with the fused step (:func:`rdlab.design.dynamics.rollout`)."""
    from rdlab.design.dynamics import rollout

    return rollout(params, x0, n_steps, 1.0, threads=threads).states


def rdlab_all_threads(params, x0: torch.Tensor, n_steps: int) -> list[torch.Tensor]:
    """Roll out with torch's thread setting inside the fused steps too (``threads=None``)."""
    return rdlab_rollout(params, x0, n_steps, threads=None)


def engine_rollout(params, x0: torch.Tensor, n_steps: int, dt: float = 1.0,
                   c_max: float = 10.0) -> list[torch.Tensor]:
    """Roll out the definition with plain autograd.

    :func:`rdlab.simulate.torch_model.model_step` with the clip, driven by
    :func:`~rdlab.simulate.torch_model.euler_iterates` (exact mass action, no 1e-10
    substitution).
    """
    from rdlab.simulate import torch_model as tm
    from rdlab.system import Grid

    net = tm.NetworkTensors.from_network(params.network, Grid(*x0.shape[2:]), x0.dtype,
                                         x0.device)
    step = tm.model_step(net, params.as_torch_parameters(x0.shape[0]), dt, c_max)
    return [x0, *(x for x, _ in tm.euler_iterates(step, x0, n_steps))]


# ---------------------------------------------------------------------------- timing
def one_step(fn, params, x0, target, n_steps):
    """Take one optimisation step (roll-out, loss, backward); return loss and gradients."""
    params.zero_grad(set_to_none=True)
    x = x0.detach().clone().requires_grad_(True)
    loss = loss_of(fn(params, x, n_steps), target)
    loss.backward()
    grads = {"X0": x.grad}
    grads.update({n: getattr(params, n).grad for n in ("rates", "diffusion", "flow", "feed")})
    return loss.detach(), grads


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(fn, params, x0, target, n_steps, repeats) -> list[float]:
    """Return the wall times of ``repeats`` optimisation steps after one warm-up step."""
    one_step(fn, params, x0, target, n_steps)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(x0.device)
        t0 = time.perf_counter()
        one_step(fn, params, x0, target, n_steps)
        _sync(x0.device)
        times.append(time.perf_counter() - t0)
    return times


def float64_check(args) -> dict[str, dict[str, float]]:
    """Return the relative differences of loss and gradients in float64.

    rdlab against the baseline and against the definition (:func:`engine_rollout`).
    """
    params = build(args.network, args.species, torch.float64, args.device)
    x0, target = problem(params, args.size, args.batch, torch.float64)
    la, ga = one_step(rdlab_rollout, params, x0, target, args.steps)
    out = {}
    for name, fn in (("baseline", baseline_rollout), ("definition", engine_rollout)):
        lb, gb = one_step(fn, params, x0, target, args.steps)
        diff = {"loss": abs(float(la - lb)) / abs(float(lb))}
        for k in ga:
            scale = gb[k].abs().max().clamp_min(1e-300)
            diff[k] = float((ga[k] - gb[k]).abs().max() / scale)
        out[name] = diff
    return out


def main(argv=None) -> None:
    """Run the benchmark (see the module docstring and ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--network", choices=NETWORKS + tuple(OLD_NAMES),
                        default="kitchen-sink")
    parser.add_argument("--no-check", action="store_true", help="skip the float64 check")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    params = build(args.network, args.species, torch.float32, args.device)
    x0, target = problem(params, args.size, args.batch, torch.float32)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    if x0.device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(x0.device)}")
    print(f"problem: {args.network} network, {args.species} species, "
          f"{params.n_reactions} reactions, {args.size}×{args.size}, batch {args.batch}, "
          f"T = {args.steps}, float32; median (best) of {args.repeats} optimisation steps\n")

    results = {}
    for name, fn in (("rdlab", rdlab_rollout), ("rdlab threads=None", rdlab_all_threads),
                     ("baseline", baseline_rollout)):
        results[name] = time_steps(fn, params, x0, target, args.steps, args.repeats)
    print(f"{'implementation':<20}{'s / opt. step':>14}{'best':>10}{'ms / Euler step':>18}")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"{name:<20}{med:>14.4f}{min(times):>10.4f}{1e3 * med / args.steps:>18.3f}")
    ratio = statistics.median(results["baseline"]) / statistics.median(results["rdlab"])
    best_ratio = min(results["baseline"]) / min(results["rdlab"])
    print(f"\nratio baseline / rdlab: {ratio:.1f}× (median), {best_ratio:.1f}× (best); "
          f"target ≥ 5×: {'met' if ratio >= 5 else 'MISSED'}")

    if not args.no_check:
        print("\nfloat64 check, max |rdlab − other| / max |other| (loss and each gradient):")
        for other, diff in float64_check(args).items():
            print(f"  vs {other:<13}" + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))
        print("  (the baseline replaces c = 0 by 1e-10, so it differs by ~1e-9 where the clip"
              " holds a\n   concentration at 0; the definition is torch_model's exact step)")


if __name__ == "__main__":
    main()
