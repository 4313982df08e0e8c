"""Gray–Scott runs as the CNN paper makes them: U at a few late times, one image per (k, f).

The model (Du = 0.2, Dv = 0.1, dt = 0.25, dx = 1, 128² periodic grid, isotropic 9-point
Laplacian, forward Euler, 60 000 steps to t = 15 000) is integrated by the fast engine, a whole
block of (k, f, seed) points as one batch. The stored image is U at steps 59 760, 59 880 and
60 000 (t = 14 940, 14 970, 15 000) as three channels; the 3-D variant stores U at t = 11 400 +
400·q, q = 0…9.

Early stopping: runs that have settled into a homogeneous, linearly stable fixed point (the
classes L and H; see :mod:`rdlab.simulate.steady`) are stopped at the next check and their
remaining snapshots are the current state. Tolerances (:data:`STEADY_TOLERANCES`) follow the
dtype: in float64 a run stops when U and V are uniform to 1e-6 and the well-mixed rate is below
1e-9. Float32 cannot resolve the approach to a fixed point: once ``dt·rate`` is below half an
ulp of U (3e-8 near U = 1) the update rounds to nothing, and e.g. the trivial state stalls at
U ≈ 1 − 5e-5 with 1.5e-5 of spatial ripple; there the thresholds are 1e-4 (uniform) and 1e-6
(rate), and stopped frames differ from full float32 runs by at most about 1e-4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rdlab.chemistry import gray_scott_network
from rdlab.classify.initial_conditions import MODES, gray_scott_initial_batch
from rdlab.errors import ParameterError
from rdlab.settings import Settings
from rdlab.simulate import simulate
from rdlab.simulate.result import CONCENTRATION
from rdlab.simulate.steady import SteadyStop
from rdlab.simulate.trackers import RunView, Tracker
from rdlab.system import Grid, System

#: (uniform_tol, rate_tol) of the steadiness test per simulation dtype.
STEADY_TOLERANCES = {"float64": (1e-6, 1e-9), "float32": (1e-4, 1e-6)}

#: Snapshot steps of the 2-D images (t = 14 940, 14 970, 15 000 at dt = 0.25).
IMAGE_STEPS = (59760, 59880, 60000)
#: Snapshot steps of the 3-D stack (t = 11 400 + 400·q, q = 0…9).
STACK_STEPS = tuple(45600 + 1600 * q for q in range(10))
#: Metadata key under which a trained model records the ``PatternRunSettings`` (as a dict) of
#: its training data.
DATA_SETTINGS_KEY = "data_settings"


@dataclass(frozen=True)
class PatternRunSettings(Settings):
    """How each pattern is simulated (defaults: the paper).

    A config of the common base (:class:`rdlab.settings.Settings`: types checked from the
    annotations, unknown keys refused); :meth:`to_dict` is the JSON a pattern store keeps in
    its ``settings`` attribute and compares, as text, when a run resumes.

    Parameters
    ----------
    du, dv : float, default 0.2, 0.1
        Diffusion coefficients of U and V, ≥ 0.
    dt : float, default 0.25
        Time step, > 0.
    size : int, default 128
        Grid side in cells, ≥ 32.
    stencil : str, default "9-point"
        Laplacian stencil of the grid.
    n_steps : int, default 60000
        Number of steps, ≥ 1.
    snapshot_steps : tuple of int, default IMAGE_STEPS
        Steps at which U is stored (the image channels): sorted, unique, within
        0..``n_steps``.
    dtype : {"float32", "float64"}
        Precision of the simulation.
    initial_mode : str, default "default"
        Initial-condition mode (see :mod:`rdlab.classify.initial_conditions`).
    early_stop : bool, default True
        Stop runs that have settled into a homogeneous fixed point.
    check_every : int, default 4000
        Steps between steadiness checks, ≥ 1.

    Raises
    ------
    ParameterError
        For a field of the wrong type or outside the ranges above.
    """

    du: float = 0.2
    dv: float = 0.1
    dt: float = 0.25
    size: int = 128
    stencil: str = "9-point"
    n_steps: int = 60000
    snapshot_steps: tuple[int, ...] = IMAGE_STEPS
    dtype: Literal["float32", "float64"] = "float64"
    initial_mode: str = "default"
    early_stop: bool = True
    check_every: int = 4000  # steps between steadiness checks

    _what = "pattern run settings"

    def __post_init__(self) -> None:
        """Check the field types and ranges."""
        self.check_types()  # types, finite numbers and the dtype's choices
        steps = list(self.snapshot_steps)
        if not steps or steps != sorted(set(steps)) or steps[0] < 0 \
                or steps[-1] > self.n_steps:
            raise ParameterError(f"snapshot steps {steps} must be sorted, unique and within "
                                 f"0..{self.n_steps}")
        if self.initial_mode not in MODES:
            raise ParameterError(f"initial-condition mode must be one of {', '.join(MODES)}, "
                                 f"got {self.initial_mode!r}")
        for name, low in (("size", 32), ("n_steps", 1)):
            value = getattr(self, name)
            if value < low:
                raise ParameterError(f"{name} must be an integer ≥ {low}, got {value!r}")
        for name in ("du", "dv", "dt"):
            value = getattr(self, name)
            if value < 0 or (name == "dt" and value == 0):
                raise ParameterError(f"{name} must be a finite number "
                                     f"{'> 0' if name == 'dt' else '≥ 0'}, got {value!r}")
        if self.check_every < 1:
            raise ParameterError(f"check_every must be ≥ 1, got {self.check_every!r}")

    @property
    def n_channels(self) -> int:
        """Number of image channels (one per snapshot step)."""
        return len(self.snapshot_steps)


def pattern_system(k: Sequence[float], f: Sequence[float],
                   settings: PatternRunSettings) -> System:
    """Return the Gray–Scott system with one sample per (k, f) pair.

    Parameters
    ----------
    k, f : sequence of float
        Kill and feed rates, 1-D of equal length.
    settings : PatternRunSettings
        Diffusion coefficients, grid size and stencil.

    Returns
    -------
    System
        The batched system.

    Raises
    ------
    ParameterError
        When ``k`` and ``f`` are not 1-D of equal length.
    """
    k, f = np.asarray(k, dtype=float), np.asarray(f, dtype=float)
    if k.shape != f.shape or k.ndim != 1:
        raise ParameterError(f"k and f must be 1-D of equal length, got shapes {k.shape} "
                             f"and {f.shape}")
    base = System.build(gray_scott_network(), diffusion=[settings.du, settings.dv], flow=0.0,
                        feed=[1.0, 0.0],
                        grid=Grid(settings.size, settings.size, 1.0, settings.stencil))
    return base.samples(f=f, k=k)


def simulate_patterns(k: Sequence[float], f: Sequence[float], seeds: Sequence[int],
                      settings: PatternRunSettings = PatternRunSettings(),
                      progress: Callable[[int], None] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one pattern per (k, f, seed).

    Parameters
    ----------
    k, f : sequence of float
        Kill and feed rates, one per sample.
    seeds : sequence of int
        Initial-condition seeds, one per sample.
    settings : PatternRunSettings, default PatternRunSettings()
        How each pattern is simulated.
    progress : callable or None, optional
        ``progress(n)`` is called with completed sample-steps / n_samples in units of steps
        (so a bar over ``n_steps`` works for the whole block).

    Returns
    -------
    frames : numpy.ndarray
        ``(n, channels, size, size)`` float32: U at the snapshot steps.
    stopped : numpy.ndarray
        ``(n,)`` int64: the step at which a sample was found steady and stopped, or −1 when
        it ran to the end.

    Raises
    ------
    ParameterError
        When the number of seeds differs from the number of (k, f) points.
    """
    system = pattern_system(k, f, settings)
    n = system.batch_size
    state = gray_scott_initial_batch([int(s) for s in seeds], mode=settings.initial_mode,
                                     size=settings.size)
    if state.shape[0] != n:
        raise ParameterError(f"{len(seeds)} seeds for {n} (k, f) points")
    steps = [int(s) for s in settings.snapshot_steps]
    # steadiness checks every check_every steps up to the first snapshot
    checks = range(settings.check_every, steps[0] + 1, settings.check_every) \
        if settings.early_stop else ()
    trackers: list[Tracker] = [SteadyStop(system, checks, *STEADY_TOLERANCES[settings.dtype])]
    if progress is not None:
        trackers.append(_SampleStepProgress(progress, n))
    ds = simulate(system, state, dt=settings.dt, n_steps=settings.n_steps,
                  snapshot_steps=steps, engine="fast", dtype=settings.dtype, progress=False,
                  trackers=trackers)
    frames = ds[CONCENTRATION].values[:, :, 0].astype(np.float32)
    return frames, ds["stopped_step"].values.astype(np.int64)


class _SampleStepProgress(Tracker):
    """Report ``progress(m)``: steps done since the last call × running samples / all samples."""

    every_check_point = True

    def __init__(self, progress: Callable[[int], None], n: int):
        self.progress, self.n, self.done = progress, n, 0

    def visit(self, view: RunView) -> None:
        if view.step > self.done:
            self.progress((view.step - self.done) * int(view.active.sum()) // self.n)
            self.done = view.step
