"""glibc keeps freed large blocks for reuse once :func:`keep_freed_memory` ran.

Measured in fresh interpreters (the setting is process-wide and for good): allocating four
8 MiB arrays and freeing them, 40 times over (as a design step does with its trajectory-sized
arrays), faults their pages in every time with glibc's defaults (the freed 32 MiB exceed the
trim threshold, twice the largest block, and go back to the system) and about once with the
setting; a user's own ``MALLOC_*`` variables win.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

_LOOP = """
import resource, sys
import numpy as np
from rdlab.heap_settings import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "on" else None
np.ones(1 << 20)  # warm numpy up
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    a = [np.ones(1 << 20) for _ in range(4)]  # 4 × 8 MiB, written through, then freed
    del a
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict | None = None) -> tuple[str, int]:
    """Return what keep_freed_memory returned and the minor page faults of the loop."""
    import os

    out = subprocess.run([sys.executable, "-c", _LOOP, mode], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})}).stdout.split()
    return out[0], int(out[1])


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    """40 × 4 × 8 MiB: ≥ 40 × 1500 faults by default (about 81 000 measured: an array's
    2048 pages every round), < 12 000 with the setting (about 1 500 measured)."""
    applied, on = _faults("on")
    if applied != "True":
        pytest.skip("not glibc")
    _, off = _faults("off")
    assert off >= 40 * 1500, off
    assert on < 12000, on


def test_the_users_malloc_variables_win():
    """With MALLOC_TRIM_THRESHOLD_ set, nothing is changed and False is returned."""
    applied, _ = _faults("on", {"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert applied == "False"
