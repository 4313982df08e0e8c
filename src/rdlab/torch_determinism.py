"""Torch's deterministic algorithms for one block of work: bit-reproducible runs on a GPU.

On the CPU every torch kernel rdlab uses gives the same bits run after run, so an
interrupted design run resumes to exactly the uninterrupted result. On CUDA some kernels
(cuDNN's convolution algorithms, atomic additions in backward passes, cuBLAS with a
free-sized workspace) do not: two identical runs of the tiny test config differ by about
1e-6 after eight Adam steps (measured on an H200), and the difference grows with the run.
:func:`deterministic_algorithms` switches torch to its deterministic kernels (and cuBLAS to
a fixed workspace, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless the environment sets one) for
the block and restores the previous settings afterwards. It costs speed on the GPU and
nothing on the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["CUBLAS_WORKSPACE", "deterministic_algorithms"]

#: The cuBLAS workspace setting torch asks for in deterministic mode (see torch's
#: reproducibility notes); ``":16:8"`` also works and uses less memory.
CUBLAS_WORKSPACE = ":4096:8"
_CUBLAS_VAR = "CUBLAS_WORKSPACE_CONFIG"


@contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """Run the block with torch's deterministic algorithms (when ``enabled``).

    Parameters
    ----------
    enabled : bool, default True
        False leaves everything as it is (so a caller can pass a config flag).

    Raises
    ------
    RuntimeError
        From torch, inside the block, for an operation that has no deterministic
        implementation on its device.
    """
    if not enabled:
        yield
        return
    was_on = torch.are_deterministic_algorithms_enabled()
    was_benchmark = torch.backends.cudnn.benchmark
    env_before = os.environ.get(_CUBLAS_VAR)
    os.environ.setdefault(_CUBLAS_VAR, CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_on)
        torch.backends.cudnn.benchmark = was_benchmark
        if env_before is None:
            os.environ.pop(_CUBLAS_VAR, None)
