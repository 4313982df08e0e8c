"""The design engines in one run: an optimisation step, and the forward throughput.

    python benchmarks/design.py                  # kitchen sink, 5 species, 64², T = 64, batch 1
    python benchmarks/design.py --quick          # fewer repeats, shorter throughput timings
    python benchmarks/design.py --network dense-gs --steps 128 --dtype float64

One optimisation step is a roll-out of ``--steps`` forward-Euler steps of the design dynamics
(9-point Laplacian, clip to ``[0, 10]``) from an initial state that requires a gradient (as a
generator's output does), the loss

    L = mean((X_T[species 1] − target)²) + mean_t mean |ΔX_t|

(a target term and a step-size term over every state, as fig2a's loss; the step term is
design's own ``StepSize`` on the roll-out's ``Trajectory``) computed in torch, and
its backward pass to the initial state and all four parameter groups (rates, diffusion, flow,
feed). Timed in one process, same threads (``--threads`` for torch and numba), same data:

* **compiled** — :func:`rdlab.design.compiled_rollout.compiled_rollout` (``model.engine``
  ``compiled``, the CPU default through ``auto``): generated numba forward Euler and its exact
  discrete adjoint, one autograd node for the whole roll-out;
* **fused** — :func:`rdlab.design.dynamics.rollout` (``model.engine`` ``fused``): one
  analytic-backward autograd node per Euler step;
* **reference style** (skip with ``--no-reference-style``) — the straightforward autograd
  implementation in the style of the public Dense-RDN code (written below: channels last,
  ``c = 0 → 1e-10``, a power tensor reduced by ``prod``, an einsum, circular padding and a
  depthwise convolution). This is the plain-autograd baseline of issue 17: the fused step
  was "20× faster than plain autograd" against it (20.2× when the issue was written), and
  the 200× target is read against it;
* **plain autograd** — autograd through the model's one torch definition
  (:func:`rdlab.simulate.torch_model.model_step` with the clip, driven by
  :func:`~rdlab.simulate.torch_model.euler_iterates`), a baseline already written for speed
  (separable stencil, no power tensor); its ratio is printed without a target.

The process keeps freed memory for reuse (:func:`rdlab.heap_settings.keep_freed_memory`), as
``rdlab design`` does, for every engine alike.

Every engine takes one warm-up step first (the compiled engine's — compiling its kernels,
or loading them from the disk cache — is printed apart), and the compiled engine
``2 × SPLIT_TRIALS`` more untimed steps, which time both ways of sharing one sample's rows
over the threads before keeping the faster (:func:`rdlab.simulate.adjoint._timed_split`).
Then the engines are timed in ``--repeats`` interleaved rounds (:func:`paired_rounds`): a
block of :data:`COMPILED_BLOCK` compiled steps (after :data:`BLOCK_WARM_UP` untimed ones,
which re-warm caches and threads after the other engines' large steps), then one step of
every other engine, and a last compiled block. Each time printed is the median (and best)
of an engine's steps. Each ratio is the median over the rounds of an engine's step over the
compiled steps around it (read within a second of each other, so that a host whose speed
drifts over seconds does not decide it); the ratio of the medians is printed beside it.

Forward throughput, like for like: the compiled forward and the fast simulation engine
(``benchmarks/simulate.py``'s :func:`bench_fast`) on the same network, parameters, grid, batch,
dtype and threads, each timed the way ``benchmarks/simulate.py`` times the fast engine (best
rate of one long roll-out per timing, grown to ``--seconds``; the compiled one checkpointed, so
that it keeps no trajectory). The forward of the optimisation step itself (``--steps`` steps,
every state kept for the backward pass) is printed too.

A float64 run (same sizes) checks that both engines compute the loss and gradients of the
definition (largest relative difference per group).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rdlab.simulate import adjoint
from rdlab.simulate.fast_codegen import SIMD_BYTES_ENV, VECTOR_BYTES

#: Compiled steps timed in each block between the other engines' steps (each is a few ms;
#: ``(repeats + 1) × COMPILED_BLOCK`` in all).
COMPILED_BLOCK = 6
#: Untimed compiled steps opening each block: the first steps after another engine's
#: step (hundreds of MB of torch temporaries) run on cold caches and sleeping threads,
#: 1.3–2× the steady step, which no step of an optimisation (thousands in a row) pays.
BLOCK_WARM_UP = 2

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


def loss_of(traj, target: torch.Tensor) -> torch.Tensor:
    """MSE of species 1 at T to the target plus the mean |ΔX| over all steps.

    The step term is design's own :class:`rdlab.design.objectives.StepSize` (δ_max = 0) on
    the :class:`~rdlab.design.trajectory.Trajectory`, as a config's loss computes it.
    """
    from rdlab.design.objectives import StepSize

    fit = ((traj.states[-1][:, 1] - target) ** 2).mean()
    return fit + StepSize()(traj)


def as_trajectory(params, states: list[torch.Tensor], dt: float = 1.0):
    """Wrap a list of states ``X_0 … X_T`` as design's :class:`Trajectory`."""
    from rdlab.design.trajectory import Trajectory

    return Trajectory(states=states, dt=dt, rates=params.rates, diffusion=params.diffusion,
                      flow=params.flow, feed=params.feed, network=params.network)


# ---------------------------------------------------------------------------- roll-outs
def compiled_rollout(params, x0: torch.Tensor, n_steps: int):
    """Roll out on the compiled engine (:func:`rdlab.design.compiled_rollout.compiled_rollout`)."""
    from rdlab.design.compiled_rollout import compiled_rollout as run

    return run(params, x0, n_steps, 1.0)


def fused_rollout(params, x0: torch.Tensor, n_steps: int):
    """Roll out with the fused step (:func:`rdlab.design.dynamics.rollout`), as design does."""
    from rdlab.design.dynamics import rollout

    return rollout(params, x0, n_steps, 1.0)


def autograd_rollout(params, x0: torch.Tensor, n_steps: int, dt: float = 1.0,
                     c_max: float = 10.0):
    """Roll out the model's one torch definition with plain autograd.

    :func:`rdlab.simulate.torch_model.model_step` with the clip, driven by
    :func:`~rdlab.simulate.torch_model.euler_iterates` (exact mass action).
    """
    from rdlab.simulate import torch_model as tm
    from rdlab.system import Grid

    net = tm.NetworkTensors.from_network(params.network, Grid(*x0.shape[2:]), x0.dtype,
                                         x0.device)
    step = tm.model_step(net, params.as_torch_parameters(x0.shape[0]), dt, c_max)
    return as_trajectory(params, [x0, *(x for x, _ in tm.euler_iterates(step, x0, n_steps))],
                         dt)


def reference_style_rollout(params, x0: torch.Tensor, n_steps: int, dt: float = 1.0,
                            c_max: float = 10.0):
    """Roll out the reference-style implementation (states as ``(B, S, y, x)`` views)."""
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
    return as_trajectory(params, out, dt)


ENGINES = {"compiled": compiled_rollout, "fused": fused_rollout,
           "plain autograd": autograd_rollout, "reference style": reference_style_rollout}


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


def _step_time(fn, params, x0, target, n_steps) -> float:
    """Return the wall time of one optimisation step."""
    _sync(x0.device)
    t0 = time.perf_counter()
    one_step(fn, params, x0, target, n_steps)
    _sync(x0.device)
    return time.perf_counter() - t0


def time_steps(fn, params, x0, target, n_steps, repeats, settle: int = 0
               ) -> tuple[float, list[float]]:
    """Return the warm-up step's time and the wall times of ``repeats`` steps after it.

    ``settle`` more steps run untimed between the two (the compiled engine's first steps
    time both ways of sharing a step's rows over the threads, see
    :func:`rdlab.simulate.adjoint._timed_split`; an optimisation of thousands of steps
    runs the chosen way after them).
    """
    t0 = time.perf_counter()
    one_step(fn, params, x0, target, n_steps)
    warm = time.perf_counter() - t0
    for _ in range(settle):
        one_step(fn, params, x0, target, n_steps)
    return warm, [_step_time(fn, params, x0, target, n_steps) for _ in range(repeats)]


def _simulate_bench():
    """Return ``benchmarks/simulate.py`` as a module (its timing and fast-engine bench)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import simulate

    return simulate


def _values(params) -> dict[str, np.ndarray]:
    """Return the parameter values as float64 NumPy arrays."""
    return {k: t.detach().cpu().double().numpy() for k, t in params.clone_values().items()}


def fast_engine_rate(params, x0: torch.Tensor, seconds: float, repeat: int) -> float:
    """Return the fast engine's forward cell-steps/s on the same network, grid and batch."""
    from rdlab.system import Grid, System

    v = _values(params)
    system = System.build(params.network, rates=v["rates"], diffusion=v["diffusion"],
                          flow=float(v["flow"]), feed=v["feed"], grid=Grid(*x0.shape[2:]))
    dtype = x0.numpy().dtype
    # dt = 1e-3: the fast engine does not clip; its throughput does not depend on dt
    return _simulate_bench().bench_fast(system, x0.double().numpy(), dtype, seconds, repeat,
                                        dt=1e-3)


def compiled_forward_rate(params, x0: torch.Tensor, seconds: float, repeat: int) -> float:
    """Return the compiled forward's cell-steps/s, timed as the fast engine's is.

    One long roll-out per timing (checkpointed, so its memory stays small), its length grown
    until it takes ``seconds``; the best of ``repeat`` timings.
    """
    from rdlab.simulate import adjoint

    v = _values(params)
    X0 = x0.numpy()
    cells = X0.shape[0] * X0.shape[2] * X0.shape[3]

    def go(n: int) -> None:
        adjoint.forward(params.network, X0, v["rates"], v["diffusion"], float(v["flow"]),
                        v["feed"], n, 1.0, steps=[n], store=False)

    return _simulate_bench()._best_rate(go, cells, seconds, repeat, start=64)


def step_forward_time(fn, params, x0, n_steps: int, repeats: int) -> float:
    """Return the median time of the optimisation step's forward alone (no gradient kept)."""
    times = []
    with torch.no_grad():
        fn(params, x0, n_steps)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(params, x0, n_steps)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def float64_check(args, names) -> dict[str, dict[str, float]]:
    """Return each engine's largest relative differences from the definition in float64."""
    params = build(args.network, args.species, torch.float64, args.device)
    x0, target = problem(params, args.size, args.batch, torch.float64)
    la, ga = one_step(autograd_rollout, params, x0, target, args.steps)
    out = {}
    for name in names:
        lb, gb = one_step(ENGINES[name], params, x0, target, args.steps)
        diff = {"loss": abs(float(la - lb)) / abs(float(la))}
        for k in ga:
            scale = ga[k].abs().max().clamp_min(1e-300)
            diff[k] = float((ga[k] - gb[k]).abs().max() / scale)
        out[name] = diff
    return out


# ---------------------------------------------------------------------------- report
def _arguments(argv) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=None, help="default 7, quick 3")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of one throughput timing (default 1.5, quick 0.3)")
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads")
    parser.add_argument("--network", choices=NETWORKS + tuple(OLD_NAMES),
                        default="kitchen-sink")
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--no-reference-style", dest="reference_style",
                        action="store_false",
                        help="skip the reference-style autograd baseline (about 1 s a step)")
    parser.add_argument("--no-check", action="store_true", help="skip the float64 check")
    parser.add_argument("--no-fast", action="store_true", help="skip the fast engine")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.seconds = args.seconds or (0.3 if args.quick else 1.5)
    return args


def _header(args, params, x0, heap_kept: bool) -> None:
    """Print the machine, the problem and the heap setting."""
    import numba

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, numba {numba.__version__} with "
          f"{numba.get_num_threads()} threads")
    print(f"vector width: rdlab kernels {VECTOR_BYTES * 8} bits ({SIMD_BYTES_ENV} forces one), "
          f"torch CPU capability {torch.backends.cpu.get_cpu_capability()} "
          "(ATEN_CPU_CAPABILITY forces one)")
    if x0.device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(x0.device)}")
    print("heap: freed blocks kept for reuse (rdlab.heap_settings, as `rdlab design`)"
          if heap_kept else "heap: glibc defaults (rdlab.heap_settings not in force)")
    print(f"problem: {args.network} network, {args.species} species, "
          f"{params.n_reactions} reactions, {args.size}×{args.size}, batch {args.batch}, "
          f"T = {args.steps}, {args.dtype}\n")


def paired_rounds(engines: dict, params, x0, target, n_steps: int, rounds: int,
                  block: int = COMPILED_BLOCK) -> tuple[list[float], dict[str, list[float]],
                                                        dict[str, list[float]]]:
    """Time the engines in interleaved rounds; return the compiled and the other times.

    Round ``i`` is ``block`` compiled steps (after :data:`BLOCK_WARM_UP` untimed ones),
    then one step of every other engine; a last block of compiled steps closes the run.
    The ratio of round ``i`` is each other step's time over the median of the two compiled
    blocks around it, so both sides of a ratio are read within about a second of each
    other: a machine whose speed drifts over seconds (a shared host: medians of 50
    compiled steps drifting by 2× within one process were measured) gives the same ratio
    as a steady one.

    Parameters
    ----------
    engines : dict
        Name → roll-out function; ``"compiled"`` must be among them.
    params, x0, target, n_steps
        The problem (see :func:`one_step`).
    rounds : int
        Number of rounds (steps of each other engine), ≥ 1.
    block : int
        Compiled steps per block.

    Returns
    -------
    compiled : list of float
        Every compiled step's time (s).
    others : dict
        Name → the time of each of its steps (s).
    ratios : dict
        Name → the ratio of each round.
    """
    blocks = []
    others = {n: [] for n in engines if n != "compiled"}
    for i in range(rounds + 1):
        for _ in range(BLOCK_WARM_UP):
            one_step(engines["compiled"], params, x0, target, n_steps)
        blocks.append([_step_time(engines["compiled"], params, x0, target, n_steps)
                       for _ in range(block)])
        if i == rounds:
            break
        for name in others:
            others[name].append(_step_time(engines[name], params, x0, target, n_steps))
    ratios = {n: [t / statistics.median(blocks[i] + blocks[i + 1]) for i, t in enumerate(ts)]
              for n, ts in others.items()}
    return [t for b in blocks for t in b], others, ratios


def _optimisation_steps(args, params, x0, target) -> dict[str, float]:
    """Time and print an optimisation step of each engine; return the median times."""
    names = [n for n in ENGINES if not (n == "reference style" and not args.reference_style)
             and not (n == "compiled" and x0.device.type != "cpu")]
    cells = args.batch * args.size * args.size * args.steps
    warm = {}
    settle = 2 * adjoint.SPLIT_TRIALS
    for name in names:  # warm-ups, untimed in the medians
        warm[name], _ = time_steps(ENGINES[name], params, x0, target, args.steps, 0,
                                   settle if name == "compiled" else 0)
    engines = {n: ENGINES[n] for n in names}
    if "compiled" in engines:
        compiled, times, ratios = paired_rounds(engines, params, x0, target, args.steps,
                                                args.repeats)
        times = {"compiled": compiled, **times}
    else:
        times = {n: [_step_time(f, params, x0, target, args.steps)
                     for _ in range(args.repeats)] for n, f in engines.items()}
        ratios = {}
    print("optimisation step (forward + backward), median (best) of the steps timed:")
    print(f"  {'engine':<18}{'ms / step':>12}{'best':>10}{'M cell-steps/s':>16}{'steps':>7}")
    med = {}
    for name in names:
        med[name] = statistics.median(times[name])
        print(f"  {name:<18}{1e3 * med[name]:>12.2f}{1e3 * min(times[name]):>10.2f}"
              f"{cells / med[name] / 1e6:>16.2f}{len(times[name]):>7}")
    if "compiled" in med:
        print(f"  (compiled: warm-up step {warm['compiled']:.2f} s, kernels compiled or loaded "
              f"from the disk cache; then {settle} untimed steps choosing how a step's rows "
              f"share the threads; timed in {args.repeats + 1} blocks of {COMPILED_BLOCK} "
              f"steps, each after {BLOCK_WARM_UP} untimed ones, between which every other "
              "engine takes one step)")
        print("ratios, median over the rounds of (the engine's step / the compiled steps "
              "around it), and the ratio of the medians above:")
        for other, target_x in (("fused", 10), ("reference style", 200),
                                ("plain autograd", None)):
            if other not in med:
                continue
            r = statistics.median(ratios[other])
            verdict = ("no target" if target_x is None else
                       f"target ≥ {target_x}×: {'met' if r >= target_x else 'MISSED'}")
            print(f"  {other} / compiled: {r:.1f}× (rounds {min(ratios[other]):.3g}–"
                  f"{max(ratios[other]):.3g}×; of the medians "
                  f"{med[other] / med['compiled']:.1f}×) ({verdict})")
    return med


def _throughput(args, params, x0) -> None:
    """Print the forward cell-steps/s of the compiled engine and the fast engine."""
    cells = args.batch * args.size * args.size * args.steps
    t_c = step_forward_time(compiled_rollout, params, x0, args.steps, args.repeats)
    t_f = step_forward_time(fused_rollout, params, x0, args.steps, args.repeats)
    print(f"\nforward only, the optimisation step's roll-out (T = {args.steps}, states kept): "
          f"compiled {cells / t_c / 1e6:.1f}, fused {cells / t_f / 1e6:.1f} M cell-steps/s")
    if args.no_fast:
        return
    repeat = 1 if args.quick else 3
    mine = compiled_forward_rate(params, x0, args.seconds, repeat)
    fast = fast_engine_rate(params, x0, args.seconds, repeat)
    print(f"forward, long roll-outs (best of {repeat} × ≥ {args.seconds:g} s, same network, "
          f"grid, batch, dtype, threads):")
    print(f"  compiled {mine / 1e6:8.1f} M cell-steps/s   fast engine {fast / 1e6:8.1f} M "
          f"cell-steps/s   compiled/fast {mine / fast:.2f} (target ≥ 0.5: "
          f"{'met' if mine >= 0.5 * fast else 'MISSED'})")


def main(argv=None) -> None:
    """Run the benchmark (see the module docstring and ``--help``)."""
    args = _arguments(argv)
    from rdlab.heap_settings import keep_freed_memory

    kept = keep_freed_memory()  # as `rdlab design` does, for every engine alike
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    dtype = getattr(torch, args.dtype)
    params = build(args.network, args.species, dtype, args.device)
    x0, target = problem(params, args.size, args.batch, dtype)
    _header(args, params, x0, kept)
    _optimisation_steps(args, params, x0, target)
    if x0.device.type == "cpu":
        _throughput(args, params, x0)
    if not args.no_check:
        names = ["compiled", "fused"] if x0.device.type == "cpu" else ["fused"]
        print("\nfloat64 check, max |engine − definition| / max |definition| (loss and each "
              "gradient):")
        for other, diff in float64_check(args, names).items():
            print(f"  {other:<10}" + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))


if __name__ == "__main__":
    main()
