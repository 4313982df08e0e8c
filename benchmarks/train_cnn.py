"""Training throughput of the pattern CNN on this machine.

    python benchmarks/train_cnn.py              # full run (a few minutes on 2 cores)
    python benchmarks/train_cnn.py --quick      # fewer repetitions
    python benchmarks/train_cnn.py --threads 2 --batch 128 --size 128

Measured, each as the best of ``--repeat`` timed calls after one warm-up call (the best, not
the mean, estimates what the code does when it has the cores to itself):

* forward+backward+Adam step of :class:`~rdlab.classify.cnn.PatternCNN` (3 channels) on a
  batch of ``--batch`` random images, in four set-ups: memory layout contiguous (NCHW) or
  channels-last (NHWC), each with the oneDNN (mkldnn) convolutions on and off;
* inference (``predict``-style, no grad) of 256 images in the same set-ups;
* augmentation (:func:`~rdlab.classify.augment.augment` with the default configuration) of a
  batch;
* forward+backward of the fastest set-up at batches of 32 and 64 (more optimiser steps per
  epoch, at some cost in throughput);
* the 3-D variant's forward+backward on 10-frame stacks (``--skip-3d`` leaves it out);
* the estimated time of one epoch on a 750-sample training set with validation on 750
  samples (6 training batches, the last one partial, plus 3 inference batches), for the
  fastest set-up.

The machine's load average is printed alongside: on a shared machine the figures scale with
the share of the cores this process actually gets.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
import torch.nn.functional as F

from rdlab.classify.augment import AugmentConfig, augment
from rdlab.classify.cnn import PatternCNN, PatternCNN3D


def _best_time(fn, repeat: int) -> float:
    fn()  # warm-up (oneDNN primitive creation, allocator)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     repeat: int) -> float:
    """Seconds per forward+backward+Adam step on the batch ``x``."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return _best_time(step, repeat)


def bench_inference(model: torch.nn.Module, x: torch.Tensor, repeat: int) -> float:
    """Seconds per no-grad forward pass of the batch ``x``."""
    model.eval()

    def run():
        with torch.inference_mode():
            model(x)

    return _best_time(run, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="repeat 2")
    ap.add_argument("--skip-3d", action="store_true")
    args = ap.parse_args()
    repeat = 2 if args.quick else args.repeat
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, s = args.batch, args.size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn available: {torch.backends.mkldnn.is_available()}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    x = torch.rand(b, 3, s, s)
    y = torch.randint(0, 15, (b,))
    x_inf = torch.rand(256, 3, s, s)
    results = {}
    for mkldnn in (True, False):
        for layout in ("contiguous", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            torch.backends.mkldnn.enabled = mkldnn
            try:
                model = PatternCNN(3, 15).to(memory_format=fmt)
                t_train = bench_train_step(model, x.contiguous(memory_format=fmt), y, repeat)
                t_inf = bench_inference(model, x_inf.contiguous(memory_format=fmt), repeat)
            finally:
                torch.backends.mkldnn.enabled = True
            results[(mkldnn, layout)] = (t_train, t_inf)
            print(f"2-D CNN  mkldnn={'on ' if mkldnn else 'off'} {layout:13s}: "
                  f"train {b / t_train:6.1f} samples/s ({t_train:.2f} s/batch of {b}), "
                  f"inference {256 / t_inf:6.1f} samples/s")

    gen = torch.Generator().manual_seed(0)
    cfg = AugmentConfig()
    t_aug = _best_time(lambda: augment(x, cfg, gen), max(repeat, 5))
    print(f"augmentation: {t_aug * 1e3:.1f} ms per batch of {b}×3×{s}×{s} "
          f"({b / t_aug:.0f} samples/s)")
    torch.set_num_threads(1)
    t_aug1 = _best_time(lambda: augment(x, cfg, gen), max(repeat, 5))
    torch.set_num_threads(args.threads)
    print(f"augmentation, 1 thread: {t_aug1 * 1e3:.1f} ms per batch")

    best = min(results, key=lambda k: results[k][0] + results[k][1] / 3)
    t_train, t_inf = results[best]
    n_train = n_val = 750
    steps = math.ceil(n_train / b)
    epoch = n_train / b * (t_train + t_aug) + n_val / 256 * t_inf
    print(f"fastest: mkldnn={'on' if best[0] else 'off'}, {best[1]}; estimated epoch "
          f"(750 train in {steps} batches + 750 val): {epoch:.1f} s "
          f"→ {1200 / epoch:.0f} epochs in 20 min")

    fmt = torch.channels_last if best[1] == "channels_last" else torch.contiguous_format
    torch.backends.mkldnn.enabled = best[0]
    for small in sorted({32, 64} - {b}):
        model = PatternCNN(3, 15).to(memory_format=fmt)
        t_small = bench_train_step(model, x[:small].contiguous(memory_format=fmt), y[:small],
                                   repeat)
        print(f"2-D CNN, fastest set-up, batch {small:3d}: train {small / t_small:6.1f} "
              f"samples/s ({t_small:.2f} s/batch; {math.ceil(n_train / small)} steps per "
              f"750-sample epoch)")
    torch.backends.mkldnn.enabled = True

    if not args.skip_3d:
        x3 = torch.rand(b, 10, s, s)
        model3 = PatternCNN3D(10, 15)
        t3 = bench_train_step(model3, x3, y, repeat)
        t3i = bench_inference(model3, torch.rand(256, 10, s, s), repeat)
        print(f"3-D CNN (10 frames): train {b / t3:6.1f} samples/s ({t3:.2f} s/batch), "
              f"inference {256 / t3i:6.1f} samples/s; epoch ≈ "
              f"{n_train / b * (t3 + t_aug * 10 / 3) + n_val / 256 * t3i:.1f} s")


if __name__ == "__main__":
    main()
