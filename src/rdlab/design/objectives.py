"""Composable loss terms for inverse design (Dense-RDN eqs. 7–15).

Every term is a small object with a ``name``, a ``weight`` (≥ 0) and
``term(traj, generator=None) → scalar tensor``, the *unweighted* value computed from a
:class:`~rdlab.design.trajectory.Trajectory`; :class:`CompositeLoss` weights and sums them and
reports each unweighted value for logging. Randomness (the random stored frame of eqs. 7 and
11) is drawn from the ``torch.Generator`` passed in, so a seeded generator gives the same loss.

Terms (``name``: class — equation):

* ``"target"``: :class:`TargetPattern` — match a target image (eqs. 7–8);
* ``"step_size"``: :class:`StepSize` — penalise large Euler steps (eq. 15, and ``λΔ‖ΔX‖₁`` of
  eq. 8 when ``delta_max = 0``);
* ``"dissipation"``: :class:`Dissipation` — maximise entropy production, steadily
  (eqs. 9–10);
* ``"information"``: :class:`Information` — keep the generator's bits decodable (eq. 11);
* ``"replication"``: :class:`Replication` — parent at t = 0, two daughters at t = T
  (eqs. 13–14);
* ``"mean_drift"``: :class:`MeanDrift` — keep each species' spatial mean (the authors'
  propagation x-loss);
* ``"hold"``: :class:`Hold` — keep the target after the optimised window (rdlab's, not the
  paper's: truncated roll-outs to a time drawn up to ``factor``·T).
* ``"information_hold"``: :class:`InformationHold` — keep the bits decodable after the
  window, read with the information term's encoder on the same kind of continued roll-out.

Stored frames: like the authors' code, a random frame is one of the frames a roll-out of
``T`` steps would store, ``{0, P, 2P, …, T}`` with ``P = max(T // 32, 1)`` (``T`` is added if
it is not a multiple of ``P``), drawn independently for every sample of the batch.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rdlab.checks import nonnegative_number
from rdlab.design.entropy import (
    GRADIENTS,
    diffusion_entropy_production,
    reaction_entropy_production,
)
from rdlab.design.step_excess_kernels import excess_gradient, excess_sums
from rdlab.design.trajectory import Trajectory
from rdlab.errors import ParameterError

__all__ = [
    "TERM_TYPES",
    "CompositeLoss",
    "ContinuedRollout",
    "Dissipation",
    "Hold",
    "Information",
    "InformationHold",
    "LossTerm",
    "MeanDrift",
    "Replication",
    "StepSize",
    "TargetPattern",
    "bit_accuracy",
    "build_loss",
    "check_hold_options",
    "dissipation_series",
    "load_target",
    "make_term",
    "normalise_target",
    "parent_daughter_correlation",
    "pearson_correlation",
    "random_frame",
    "stored_frame_indices",
]

DISSIPATION_PARTS = ("diffusion", "reaction")


# ---------------------------------------------------------------------------- helpers
def _check_choice(value: str, choices: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else refuse it naming ``what``."""
    if value not in choices:
        raise ParameterError(f"unknown {what} {value!r}; choose one of {list(choices)}")
    return value


def _state_shape(traj: Trajectory) -> tuple[int, int, int, int]:
    """Return ``(B, S, H, W)`` of the trajectory's states, checking they all agree."""
    if not traj.states:
        raise ParameterError("the trajectory holds no states")
    shape = tuple(traj.states[0].shape)
    if len(shape) != 4:
        raise ParameterError(f"states have shape {shape}; expected (batch, species, y, x)")
    stacked = traj.stacked_states
    if stacked is not None and tuple(stacked.shape) == (len(traj.states), *shape):
        return shape  # type: ignore[return-value]  # one tensor: every state has this shape
    for t, X in enumerate(traj.states):
        if tuple(X.shape) != shape:
            raise ParameterError(f"state {t} has shape {tuple(X.shape)}; state 0 has {shape}")
    return shape  # type: ignore[return-value]


def _require_steps(traj: Trajectory, what: str) -> int:
    """Return the trajectory's number of steps, refusing a trajectory without steps."""
    T = traj.n_steps
    if T < 1:
        raise ParameterError(f"{what} needs a trajectory of at least one step, got T = {T}")
    return T


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Return ``√x`` for ``x ≥ 0`` with gradient 0 (not NaN) where ``x = 0``."""
    positive = x > 0
    root = torch.sqrt(torch.where(positive, x, torch.ones_like(x)))
    return torch.where(positive, root, torch.zeros_like(x))


def _as_x(c: torch.Tensor) -> torch.Tensor:
    """Return the networks' view of a concentration: ``x = 2c − 1``."""
    return 2.0 * c - 1.0


def stored_frame_indices(n_steps: int) -> list[int]:
    """Return the stored frames ``{0, P, 2P, …, T}`` of a ``T``-step roll-out.

    ``P = max(T // 32, 1)``; ``T`` itself is always included.

    Parameters
    ----------
    n_steps : int
        ``T``, ≥ 0.

    Returns
    -------
    list of int
        The step indices of the stored frames.

    Raises
    ------
    ParameterError
        For a negative ``n_steps``.
    """
    if n_steps < 0:
        raise ParameterError(f"number of steps must be ≥ 0, got {n_steps}")
    period = max(n_steps // 32, 1)
    frames = list(range(0, n_steps + 1, period))
    if frames[-1] != n_steps:
        frames.append(n_steps)
    return frames


def _draw_frames(n_steps: int, batch: int, generator: torch.Generator | None) -> list[int]:
    """Draw one stored frame index per sample, uniformly, with ``generator``."""
    frames = stored_frame_indices(n_steps)
    device = generator.device if generator is not None else "cpu"
    idx = torch.randint(len(frames), (batch,), generator=generator, device=device)
    return [frames[i] for i in idx.tolist()]


def random_frame(traj: Trajectory, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return for each sample a state drawn uniformly from the stored frames.

    Parameters
    ----------
    traj : Trajectory
        The roll-out.
    generator : torch.Generator or None, optional
        The source of the draws (see :func:`stored_frame_indices` for the frames).

    Returns
    -------
    torch.Tensor
        ``X_rand (B, S, H, W)``.
    """
    B = _state_shape(traj)[0]
    chosen = _draw_frames(traj.n_steps, B, generator)
    return torch.stack([traj.states[t][b] for b, t in enumerate(chosen)])


# ---------------------------------------------------------------------------- base class
class LossTerm(abc.ABC):
    """One loss term: ``name``, ``weight`` (≥ 0) and an unweighted scalar value.

    Subclasses set ``default_name`` and implement :meth:`__call__`; :meth:`parameters`
    yields trainable parameters the term owns (e.g. an encoder's), for the optimiser.

    Parameters
    ----------
    weight : float, default 1.0
        Weight of the term in the sum, ≥ 0.
    name : str or None, optional
        Name of the term (default: the class's ``default_name``).

    Raises
    ------
    ParameterError
        For a negative weight or an empty name.
    """

    default_name: ClassVar[str] = "term"

    def __init__(self, weight: float = 1.0, name: str | None = None) -> None:
        self.weight = weight
        self.name = self.default_name if name is None else str(name)
        if not self.name:
            raise ParameterError("a loss term needs a non-empty name")

    @property
    def weight(self) -> float:
        """Weight of the term in the sum (≥ 0)."""
        return self._weight

    @weight.setter
    def weight(self, value: float) -> None:
        self._weight = nonnegative_number(value, f"weight of {type(self).__name__}")

    @abc.abstractmethod
    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value, a 0-d tensor differentiable w.r.t. everything in ``traj``.

        Parameters
        ----------
        traj : Trajectory
            The roll-out.
        generator : torch.Generator or None, optional
            The source of any random draw (e.g. a random stored frame).

        Returns
        -------
        torch.Tensor
            The value, 0-d.
        """

    def parameters(self) -> Iterator[nn.Parameter]:
        """Yield the trainable parameters the term owns (none by default).

        Yields
        ------
        torch.nn.Parameter
            Each parameter, for the optimiser.
        """
        return iter(())

    def __repr__(self) -> str:
        """Return the class, name and weight."""
        return f"{type(self).__name__}(name={self.name!r}, weight={self.weight:g})"


# ---------------------------------------------------------------------------- target
def pearson_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Compute Pearson's r per sample.

    Biased covariance over the pixels divided by ``σ_a σ_b + 1e-16`` (population standard
    deviations), as the authors' ``pearson_corr``; a constant image gives 0.

    Parameters
    ----------
    a : torch.Tensor
        Images ``(B, H, W)``.
    b : torch.Tensor
        An image ``(H, W)`` or images ``(B, H, W)``.

    Returns
    -------
    torch.Tensor
        ``(B,)``.

    Raises
    ------
    ParameterError
        For other shapes.
    """
    if not isinstance(b, torch.Tensor):
        b = torch.as_tensor(np.asarray(b), dtype=a.dtype, device=a.device)
    if a.ndim != 3 or b.shape not in (a.shape, a.shape[1:]):
        raise ParameterError(
            f"pearson_correlation needs a (B, H, W) and b (H, W) or (B, H, W); got a "
            f"{tuple(a.shape)}, b {tuple(b.shape)}"
        )
    b = b.to(a.dtype).expand_as(a)
    da = a - a.mean(dim=(-2, -1), keepdim=True)
    db = b - b.mean(dim=(-2, -1), keepdim=True)
    cov = (da * db).mean(dim=(-2, -1))
    sa = _safe_sqrt((da * da).mean(dim=(-2, -1)))
    sb = _safe_sqrt((db * db).mean(dim=(-2, -1)))
    return cov / (sa * sb + 1e-16)


def species_correlation(X: torch.Tensor, species: int, target: torch.Tensor) -> torch.Tensor:
    """Return Pearson's r of one species with a target at several times at once.

    Parameters
    ----------
    X : torch.Tensor
        States ``(n, B, S, H, W)``.
    species : int
        Index of the species compared.
    target : torch.Tensor
        An image ``(H, W)``.

    Returns
    -------
    torch.Tensor
        ``(n, B)``: :func:`pearson_correlation` of ``X[t, :, species]`` with ``target``.
    """
    n, B, _, H, W = X.shape
    return pearson_correlation(X[:, :, species].reshape(n * B, H, W), target).view(n, B)


def normalise_target(image) -> torch.Tensor:
    """Return the target as the loss sees it: z-scored (population std), then clipped at ≥ −1.

    The authors' ``load_and_normalize_image``.

    Parameters
    ----------
    image : array_like or torch.Tensor
        The image ``(H, W)``.

    Returns
    -------
    torch.Tensor
        A float64 tensor ``(H, W)``.

    Raises
    ------
    ParameterError
        For another shape, NaN/Inf values, or a constant image.
    """
    t = torch.as_tensor(np.asarray(image, dtype=np.float64)) if not isinstance(
        image, torch.Tensor) else image.detach().to(torch.float64)
    if t.ndim != 2 or min(t.shape) < 1:
        raise ParameterError(f"target image has shape {tuple(t.shape)}; expected (H, W)")
    if not torch.isfinite(t).all():
        raise ParameterError("target image has NaN/Inf values")
    std = t.std(unbiased=False)
    if std <= 0:
        raise ParameterError("target image is constant: it cannot be z-scored")
    return ((t - t.mean()) / std).clamp(min=-1.0)


def load_target(source, size: int) -> np.ndarray:
    """Read a target image as a ``(size, size)`` float64 grayscale array.

    Resized with Pillow's bicubic filter. The authors resize an RGB JPEG and use its red
    channel; grayscale is used here.

    Parameters
    ----------
    source : str or Path or array_like
        An image file (anything Pillow reads; converted to 8-bit grayscale "L", values
        0–255) or an array ``(H, W)`` or ``(H, W, 3|4)`` (RGB(A) → luma
        0.299 R + 0.587 G + 0.114 B, Pillow's weights).
    size : int
        Side of the result in pixels, > 0.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float64.

    Raises
    ------
    ParameterError
        For a bad size, a missing, unreadable or animated file, or an array of another shape.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ParameterError(f"target size must be a positive integer, got {size!r}")
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ParameterError(f"target image {str(path)!r} does not exist")
        try:
            with Image.open(path) as im:
                if getattr(im, "n_frames", 1) > 1:
                    raise ParameterError(
                        f"target image {str(path)!r} is animated ({im.n_frames} frames); "
                        "save the frame you mean as a single image")
                if im.mode.startswith("I;16") or im.mode == "I":
                    # 16-bit grayscale: scale to 0–255 (convert("L") would clip at 255)
                    gray = np.asarray(im, dtype=np.float32) * np.float32(255 / 65535)
                elif im.mode == "F":
                    gray = np.asarray(im, dtype=np.float32)
                else:
                    gray = np.asarray(im.convert("L"), dtype=np.float32)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            raise ParameterError(
                f"target image {str(path)!r} is not an image Pillow can read ({err})"
            ) from None
    else:
        arr = np.asarray(source, dtype=np.float64)
        if arr.ndim == 3 and arr.shape[-1] in (3, 4):
            arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114])
        if arr.ndim != 2 or min(arr.shape) < 1:
            raise ParameterError(
                f"target array has shape {arr.shape}; expected (H, W) or (H, W, 3|4)"
            )
        gray = arr.astype(np.float32)
    resized = Image.fromarray(gray).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float64)


class TargetPattern(LossTerm):
    """Match one species to a target image (eqs. 7–8, as the authors compute it).

    The target is normalised once (:func:`normalise_target`); the state's species
    ``species`` is mapped to ``x = 2c − 1`` and compared by the RMSD over pixels (or the mean
    squared error, ``metric="mse"``), per sample, then averaged over the batch and the frames:

    ``frames="random+last"`` (default, the authors')
        the mean of the value at a random stored frame ``x_rand`` (see module doc) and at
        ``x_T``;
    ``"all"``
        the mean over all stored frames (deterministic; the expectation of the random draw);
    ``"last"``
        ``x_T`` only.

    Parameters
    ----------
    target : array_like or torch.Tensor
        Image ``(H, W)`` of the domain's size.
    species : int, default 1
        Index of the species compared (the authors: 1).
    weight : float, default 1.0
        Weight of the term.
    frames : {"random+last", "all", "last"}
        Which frames are compared (see above).
    metric : {"rmsd", "mse"}
        The distance.
    name : str or None, optional
        Name of the term (default ``"target"``).

    Raises
    ------
    ParameterError
        For a bad target, a negative or non-integer species, or an unknown choice.
    """

    default_name = "target"
    FRAMES = ("random+last", "all", "last")
    METRICS = ("rmsd", "mse")

    def __init__(self, target, species: int = 1, weight: float = 1.0,
                 frames: str = "random+last", metric: str = "rmsd",
                 name: str | None = None) -> None:
        super().__init__(weight, name)
        self.target = normalise_target(target)
        if isinstance(species, bool) or not isinstance(species, int | np.integer) or species < 0:
            raise ParameterError(f"species index must be an integer ≥ 0, got {species!r}")
        self.species = int(species)
        self.frames = _check_choice(frames, self.FRAMES, "frames")
        self.metric = _check_choice(metric, self.METRICS, "metric")

    def _target_for(self, traj: Trajectory) -> torch.Tensor:
        """Return the target on the trajectory's dtype and device, checking species and shape."""
        B, S, H, W = _state_shape(traj)
        if self.species >= S:
            raise ParameterError(f"target species index {self.species} but the state has "
                                 f"{S} species")
        if tuple(self.target.shape) != (H, W):
            raise ParameterError(f"target has shape {tuple(self.target.shape)}; the domain is "
                                 f"({H}, {W})")
        X0 = traj.states[0]
        return self.target.to(dtype=X0.dtype, device=X0.device)

    def distance(self, X: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the per-sample RMSD (or MSE) between ``2X[:, species] − 1`` and ``target``.

        Parameters
        ----------
        X : torch.Tensor
            States ``(B, S, H, W)``, or ``(n, B, S, H, W)`` (several times at once).
        target : torch.Tensor
            The normalised target ``(H, W)``.

        Returns
        -------
        torch.Tensor
            ``(B,)``, or ``(n, B)``.
        """
        mse = ((_as_x(X[..., self.species, :, :]) - target) ** 2).mean(dim=(-2, -1))
        return _safe_sqrt(mse) if self.metric == "rmsd" else mse

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value (see the class docstring)."""
        target = self._target_for(traj)
        if self.frames == "random+last":
            chosen = torch.stack([random_frame(traj, generator), traj.states[-1]])
        elif self.frames == "all":
            chosen = traj.stacked()[stored_frame_indices(traj.n_steps)]
        else:
            chosen = traj.states[-1].unsqueeze(0)
        return self.distance(chosen, target).mean()

    def correlation(self, traj: Trajectory) -> torch.Tensor:
        """Return Pearson's r of the species with the target at every state.

        Parameters
        ----------
        traj : Trajectory
            The roll-out.

        Returns
        -------
        torch.Tensor
            ``(T + 1, B)``.
        """
        return species_correlation(traj.stacked(), self.species, self._target_for(traj))


# ---------------------------------------------------------------------------- step size
class _StepExcess(torch.autograd.Function):
    """``mean_{t,…} max(|X_{t+1} − X_t| − δ, 0)`` of states ``X (T + 1, …)``, one node.

    The backward writes ``∂L/∂X_t = s_{t−1} − s_t`` (``s = sign(ΔX)·[|ΔX| > δ]/N``) into one
    tensor, instead of autograd's zero-filled full-size gradient per slice (about half the
    time of the term over 65 states of 64×64×5). On the CPU both directions are one pass of
    :mod:`rdlab.design.step_excess_kernels` (the same gradient to the bit).
    """

    @staticmethod
    def forward(ctx, X: torch.Tensor, delta: float) -> torch.Tensor:
        """Return the mean excess step."""
        ctx.delta = delta
        n = (X.shape[0] - 1) * X[0].numel()
        rows = _kernel_rows(X)
        ctx.kernels = rows is not None
        if ctx.kernels:
            ctx.save_for_backward(X)
            return torch.tensor(float(excess_sums(rows, delta).sum()) / n, dtype=X.dtype)
        d = X[1:] - X[:-1]
        a = d.abs()
        if delta > 0:
            a = torch.relu_(a - delta)
        ctx.save_for_backward(d)
        return a.mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        """Return ``∂L/∂X``."""
        (saved,) = ctx.saved_tensors
        if ctx.kernels:
            n = (saved.shape[0] - 1) * saved[0].numel()
            scale = float((grad / n).to(saved.dtype))
            return torch.from_numpy(excess_gradient(_kernel_rows(saved), ctx.delta,
                                                    scale)).view(saved.shape), None
        d = saved
        s = torch.sign(d)
        if ctx.delta > 0:
            s.mul_(d.abs() > ctx.delta)
        s.mul_(grad / d.numel())
        g = torch.empty((d.shape[0] + 1, *d.shape[1:]), dtype=d.dtype, device=d.device)
        g[0] = -s[0]
        torch.sub(s[:-1], s[1:], out=g[1:-1])
        g[-1] = s[-1]
        return g, None


def _kernel_rows(X: torch.Tensor) -> np.ndarray | None:
    """Return ``X (T + 1, …, n)`` as ``(T + 1, R, n)`` NumPy rows for the numba kernels.

    On the CPU in float32/float64, when ``X`` is rows of cells (the compiled engine's
    states are a view of padded rows, read in place, without a copy); None otherwise
    (:class:`_StepExcess` then runs torch's formula).
    """
    if X.device.type != "cpu" or X.dtype not in (torch.float32, torch.float64):
        return None
    if X.ndim < 2 or X.shape[0] < 2:
        return None
    try:
        return X.detach().view(X.shape[0], -1, X.shape[-1]).numpy()
    except RuntimeError:  # rows that do not merge into one stride
        return None


class StepSize(LossTerm):
    """Penalise large Euler steps (eq. 15).

    The value is ``mean_{t,b,i,u,v} max(|ΔX_t| − δ_max, 0)`` over the ``T`` steps
    ``ΔX_t = X_{t+1} − X_t``; with ``delta_max = 0`` it is the ``‖ΔX‖₁`` term of eq. 8 per
    cell.

    The mean runs over steps as in eq. 15 (``1/(UVT)``); the authors' fixed-target script
    sums the per-step means instead (the same as weight × T). Paper weights: λΔ = 100 (§3.1),
    λδ = 1000 with δ_max = .05, and 1 with .3 (§3.3).

    Parameters
    ----------
    delta_max : float, default 0.0
        δ_max, ≥ 0.
    weight : float, default 1.0
        Weight of the term.
    name : str or None, optional
        Name of the term (default ``"step_size"``).

    Raises
    ------
    ParameterError
        For a negative ``delta_max`` or weight.
    """

    default_name = "step_size"

    def __init__(self, delta_max: float = 0.0, weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__(weight, name)
        self.delta_max = nonnegative_number(delta_max, "delta_max")

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value (see the class docstring)."""
        _state_shape(traj)
        _require_steps(traj, "StepSize")
        # every step has the same number of entries: the mean over all is the mean of the
        # per-step means
        return _StepExcess.apply(traj.stacked(), self.delta_max)


# ---------------------------------------------------------------------------- dissipation
def _check_parts(terms: Sequence[str] | str) -> tuple[str, ...]:
    """Return the chosen dissipation parts as a tuple, refusing none, unknown or repeated parts."""
    parts = (terms,) if isinstance(terms, str) else tuple(terms)
    if not parts:
        raise ParameterError(f"choose at least one dissipation part of {list(DISSIPATION_PARTS)}")
    for p in parts:
        _check_choice(p, DISSIPATION_PARTS, "dissipation part")
    if len(set(parts)) != len(parts):
        raise ParameterError(f"dissipation part listed twice: {list(parts)}")
    return parts


def _sigma(traj: Trajectory, X: torch.Tensor, part: str, offset: float, floor: float,
           gradient: str) -> torch.Tensor:
    """Return σ of one part at the states ``X (n, B, S, H, W)``: ``(n, B)`` (k_B = 1).

    The ``n`` times go through the entropy functions as one batch of ``n·B`` states
    (per-sample parameters repeated to match).
    """
    n, B = X.shape[:2]
    flat = X.reshape(n * B, *X.shape[2:])

    def per_state(value: torch.Tensor) -> torch.Tensor:
        return value.repeat(n, 1) if value.ndim == 2 else value

    if part == "diffusion":
        sigma = diffusion_entropy_production(per_state(traj.diffusion), flat, offset, gradient)
    else:
        sigma = reaction_entropy_production(traj.network, per_state(traj.rates), flat, floor)
    return sigma.view(n, B)


def dissipation_series(traj: Trajectory, terms: Sequence[str] | str = ("diffusion",),
                       offset: float = 0.1, floor: float = 1e-5,
                       gradient: str = "central") -> torch.Tensor:
    """Return the entropy production rate ``σ(X_t)`` at every state ``t = 0 … T``.

    For plots and controls (detach it yourself if needed).

    Parameters
    ----------
    traj : Trajectory
        The roll-out.
    terms : sequence of str or str, default ("diffusion",)
        The parts summed: ``"diffusion"`` and/or ``"reaction"`` (k_B = 1).
    offset : float, default 0.1
        Stabiliser of the diffusion part (see :mod:`rdlab.design.entropy`).
    floor : float, default 1e-5
        Floor of each mass-action rate in the reaction part.
    gradient : {"central", "forward", "reference"}
        The difference rule of the diffusion part.

    Returns
    -------
    torch.Tensor
        ``(T + 1, B)``.
    """
    parts = _check_parts(terms)
    _state_shape(traj)
    X = traj.stacked()
    return sum(_sigma(traj, X, p, offset, floor, gradient) for p in parts)


class Dissipation(LossTerm):
    """Maximise entropy production, steadily (eqs. 9–10).

    With ``σ_t`` the chosen parts' σ (k_B = 1, :mod:`rdlab.design.entropy`) at the states
    each step starts from, ``t = 0 … T−1`` (``on="start"``, default, as the authors' step
    layer) or ends at, ``t = 1 … T`` (``on="end"``)::

        s_t = mean_b exp(−σ_{t,b})                       (batch="mean_exp", default)
        s_t = exp(−mean_b σ_{t,b})                       (batch="exp_mean", the authors')
        loss = mean_t s_t + variance_weight · spread_t(s_t)

    ``spread="variance"`` (population variance over t, eq. 10) or ``"mad"`` (mean absolute
    deviation from the mean, the authors' choice for §3.2.1). ``combine="total"`` (eq. 9)
    puts ``σ_R + σ_D`` in one exponential; ``"separate"`` (the authors' code) applies the
    formula to each part and sums the results. Both give a loss in ``(0, 1 + …]``, 1 for a
    state that dissipates nothing.

    On the authors' ``×T``: they weight each step by ``w/T`` and multiply the per-step losses
    by ``T`` before the spread, i.e. they take the spread of ``w·s_t``. Here the spread is of
    ``s_t`` itself: the same for MAD, and for the variance their λσ equals ours divided by
    ``w``. σ is a rate and is not multiplied by ``dt`` (their σ_D is, with Δt = 1).

    Parameters
    ----------
    terms : sequence of str or str, default ("diffusion",)
        The parts: ``"diffusion"`` and/or ``"reaction"``.
    weight : float, default 1.0
        Weight of the term.
    variance_weight : float, default 0.0
        Weight of the spread, ≥ 0.
    spread : {"variance", "mad"}
        The spread over t.
    on : {"start", "end"}
        The states σ is taken at.
    batch : {"mean_exp", "exp_mean"}
        How the batch is reduced.
    combine : {"total", "separate"}
        One exponential of the sum, or one per part.
    offset : float, default 0.1
        Stabiliser of the diffusion part, ≥ 0.
    floor : float, default 1e-5
        Floor of each mass-action rate in the reaction part, > 0.
    gradient : {"central", "forward", "reference"}
        The difference rule of the diffusion part.
    name : str or None, optional
        Name of the term (default ``"dissipation"``).

    Raises
    ------
    ParameterError
        For an unknown choice or part, a negative weight or offset, or ``floor`` ≤ 0.
    """

    default_name = "dissipation"
    SPREADS = ("variance", "mad")
    ON = ("start", "end")
    BATCH = ("mean_exp", "exp_mean")
    COMBINE = ("total", "separate")

    def __init__(self, terms: Sequence[str] | str = ("diffusion",), weight: float = 1.0,
                 variance_weight: float = 0.0, spread: str = "variance", on: str = "start",
                 batch: str = "mean_exp", combine: str = "total", offset: float = 0.1,
                 floor: float = 1e-5, gradient: str = "central",
                 name: str | None = None) -> None:
        super().__init__(weight, name)
        self.terms = _check_parts(terms)
        self.variance_weight = nonnegative_number(variance_weight, "variance_weight")
        self.spread = _check_choice(spread, self.SPREADS, "spread")
        self.on = _check_choice(on, self.ON, "on")
        self.batch = _check_choice(batch, self.BATCH, "batch")
        self.combine = _check_choice(combine, self.COMBINE, "combine")
        self.offset = nonnegative_number(offset, "offset")
        if floor <= 0:
            raise ParameterError(f"floor must be > 0, got {floor}")
        self.floor = float(floor)
        self.gradient = _check_choice(gradient, GRADIENTS, "gradient")

    def _states(self, traj: Trajectory) -> torch.Tensor:
        """Return the states σ is taken at (``on``), ``(T, B, S, H, W)``."""
        _state_shape(traj)
        _require_steps(traj, "Dissipation")
        X = traj.stacked()
        return X[:-1] if self.on == "start" else X[1:]

    def _reduce(self, sigma: torch.Tensor) -> torch.Tensor:
        """Reduce ``σ (n_t, B)`` to ``s (n_t,)``."""
        if self.batch == "mean_exp":
            return torch.exp(-sigma).mean(dim=1)
        return torch.exp(-sigma.mean(dim=1))

    def series(self, traj: Trajectory) -> list[torch.Tensor]:
        """Return ``s_t`` per group.

        Parameters
        ----------
        traj : Trajectory
            The roll-out.

        Returns
        -------
        list of torch.Tensor
            One ``(n_t,)`` tensor (``combine="total"``) or one per part.
        """
        states = self._states(traj)
        sigmas = {p: _sigma(traj, states, p, self.offset, self.floor, self.gradient)
                  for p in self.terms}
        if self.combine == "total":
            return [self._reduce(sum(sigmas.values()))]
        return [self._reduce(s) for s in sigmas.values()]

    def _spread(self, s: torch.Tensor) -> torch.Tensor:
        """Return the spread of ``s`` over t (population variance or mean absolute deviation)."""
        if self.spread == "variance":
            return s.var(unbiased=False)
        return (s - s.mean()).abs().mean()

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value (see the class docstring)."""
        total = 0.0
        for s in self.series(traj):
            total = total + s.mean()
            if self.variance_weight > 0:
                total = total + self.variance_weight * self._spread(s)
        return total


# ---------------------------------------------------------------------------- information
def _encode(encoder: nn.Module, X: torch.Tensor, z: torch.Tensor, centre: bool) -> torch.Tensor:
    """Return the encoder's logits for ``X`` (``2X − 1`` when ``centre``), checked against ``z``."""
    logits = encoder(_as_x(X) if centre else X)
    if tuple(logits.shape) != tuple(z.shape):
        raise ParameterError(
            f"encoder output has shape {tuple(logits.shape)}; the bits z have {tuple(z.shape)}"
        )
    return logits


def bit_accuracy(encoder: nn.Module, X: torch.Tensor, z: torch.Tensor,
                 centre: bool = True) -> float:
    """Return the fraction of bits the encoder gets right (logit > 0 ⇔ bit 1).

    Parameters
    ----------
    encoder : torch.nn.Module
        ``(B, S, H, W) → logits (B, n_bits)``.
    X : torch.Tensor
        States ``(B, S, H, W)``.
    z : torch.Tensor
        Bits ``(B, n_bits)`` in {0, 1}.
    centre : bool, default True
        Feed the encoder ``2X − 1`` (as in training).

    Returns
    -------
    float
        The fraction of bits right.

    Raises
    ------
    ParameterError
        When the encoder's output does not match the shape of ``z``.
    """
    with torch.no_grad():
        logits = _encode(encoder, X, z, centre)
        return float(((logits > 0) == (z > 0.5)).to(torch.float64).mean())


class Information(LossTerm):
    """Keep the generator's bits ``z`` decodable from the state (eq. 11).

    ``Σ_k w_k · BCE(z, E(X_k))`` (binary cross-entropy with logits, mean over batch and bits)
    at ``X_0``, a random stored frame and ``X_T``. The encoder's parameters are returned by
    :meth:`parameters` for the optimiser.

    Parameters
    ----------
    encoder : torch.nn.Module
        Any module ``(B, S, H, W) → logits (B, n_bits)``.
    weight : float, default 1.0
        Weight of the term.
    frame_weights : sequence of float, default (1.0, 0.4, 1.0)
        ``w_k`` of ``X_0``, the random frame and ``X_T`` (the authors').
    centre : bool, default True
        The encoder sees ``2X − 1`` (the authors' networks work on ``x = 2c − 1``).
    name : str or None, optional
        Name of the term (default ``"information"``).

    Raises
    ------
    ParameterError
        When ``encoder`` is not a module or ``frame_weights`` is not three values.
    """

    default_name = "information"

    def __init__(self, encoder: nn.Module, weight: float = 1.0,
                 frame_weights: Sequence[float] = (1.0, 0.4, 1.0), centre: bool = True,
                 name: str | None = None) -> None:
        super().__init__(weight, name)
        if not isinstance(encoder, nn.Module):
            raise ParameterError(f"encoder must be a torch.nn.Module, got "
                                 f"{type(encoder).__name__}")
        self.encoder = encoder
        fw = tuple(frame_weights)
        if len(fw) != 3:
            raise ParameterError(f"frame_weights needs 3 values (X_0, X_rand, X_T), got {fw}")
        self.frame_weights = tuple(nonnegative_number(w, "frame weight") for w in fw)
        self.centre = bool(centre)

    def parameters(self) -> Iterator[nn.Parameter]:
        """Yield the encoder's parameters.

        Yields
        ------
        torch.nn.Parameter
            Each parameter of the encoder.
        """
        return self.encoder.parameters()

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value (see the class docstring)."""
        B = _state_shape(traj)[0]
        z = traj.z
        if z is None:
            raise ParameterError("Information needs the generator's bits: trajectory.z is None")
        if z.ndim != 2 or z.shape[0] != B:
            raise ParameterError(f"z has shape {tuple(z.shape)}; expected ({B}, n_bits)")
        frames = (traj.states[0], random_frame(traj, generator), traj.states[-1])
        total = 0.0
        for w, X in zip(self.frame_weights, frames):
            logits = _encode(self.encoder, X, z, self.centre)
            total = total + w * F.binary_cross_entropy_with_logits(logits, z.to(logits.dtype))
        return total


# ---------------------------------------------------------------------------- replication
class Replication(LossTerm):
    """Parent at ``t = 0``, two displaced daughters at ``t = T`` (eqs. 13–14).

    Geometry: ``box = (y0, y1, x0, x1)`` (half-open) is the parent window of ``X_0``;
    the daughters are the windows of ``X_T`` of the same size displaced by ``−shift`` and
    ``+shift`` along ``axis`` (``"x"`` or ``"y"``), wrapping around the periodic domain.
    Defaults, resolved on the first trajectory: for ``axis="x"`` the centred ``H × H`` square
    and ``shift = H // 2`` — on the paper's 48 × 96 domain the parent is columns 24–71 and
    the daughters are columns 0–47 and 48–95, tiling the domain (the authors' geometry).

    Loss: ``Σ_d MSE(parent, daughter_d) + std_weight · floor``, the MSE a mean over batch,
    species and pixels. The standard-deviation floor (``std`` = population std over pixels):

    ``std_on="daughters"`` (default, the authors' code, with ``std_weight = .5``, ``beta = .5``)
        ``Σ_d mean_{b,i} max(0, β* − std(daughter_d^i))²``;
    ``std_on="state"`` (eq. 14, whole ``X_T``; use ``std_weight = 1``)
        ``mean_{b,i} max(0, β* − std(X_T^i))²``.

    The paper's stages used β* = 1.0 (T = 256, 320) then 0.5 (T = 352).

    Parameters
    ----------
    box : sequence of int or None, optional
        ``(y0, y1, x0, x1)`` of the parent window (default: see above).
    shift : int or None, optional
        Displacement of the daughters in cells (default: see above).
    axis : {"x", "y"}
        Axis of the displacement.
    weight : float, default 1.0
        Weight of the term.
    std_weight : float, default 0.5
        Weight of the standard-deviation floor, ≥ 0.
    beta : float, default 0.5
        β*, ≥ 0.
    std_on : {"daughters", "state"}
        Where the floor is applied.
    name : str or None, optional
        Name of the term (default ``"replication"``).

    Raises
    ------
    ParameterError
        For a box that is not four integers, a non-integer shift, a negative weight, or an
        unknown choice.
    """

    default_name = "replication"
    AXES = {"y": -2, "x": -1}
    STD_ON = ("daughters", "state")

    def __init__(self, box: Sequence[int] | None = None, shift: int | None = None,
                 axis: str = "x", weight: float = 1.0, std_weight: float = 0.5,
                 beta: float = 0.5, std_on: str = "daughters",
                 name: str | None = None) -> None:
        super().__init__(weight, name)
        self.axis = _check_choice(axis, tuple(self.AXES), "axis")
        if box is not None:
            box = tuple(int(v) for v in box)
            if len(box) != 4:
                raise ParameterError(f"box must be (y0, y1, x0, x1), got {box}")
        self.box = box
        if shift is not None and (isinstance(shift, bool) or int(shift) != shift):
            raise ParameterError(f"shift must be an integer number of cells, got {shift!r}")
        self.shift = None if shift is None else int(shift)
        self.std_weight = nonnegative_number(std_weight, "std_weight")
        self.beta = nonnegative_number(beta, "beta")
        self.std_on = _check_choice(std_on, self.STD_ON, "std_on")

    def geometry(self, H: int, W: int) -> tuple[tuple[int, int, int, int], int]:
        """Return ``(box, shift)`` on an ``H × W`` domain, defaults resolved and checked.

        Parameters
        ----------
        H, W : int
            The domain's size in cells.

        Returns
        -------
        box : tuple of int
            ``(y0, y1, x0, x1)``.
        shift : int
            The daughters' displacement in cells.

        Raises
        ------
        ParameterError
            When the parent box does not fit the domain.
        """
        if self.box is None:
            if self.axis == "x":
                x0 = (W - H) // 2
                box = (0, H, x0, x0 + H)
            else:
                y0 = (H - W) // 2
                box = (y0, y0 + W, 0, W)
        else:
            box = self.box
        y0, y1, x0, x1 = box
        if not (0 <= y0 < y1 <= H and 0 <= x0 < x1 <= W):
            raise ParameterError(f"parent box {box} does not fit in the {H} × {W} domain")
        length = (x1 - x0) if self.axis == "x" else (y1 - y0)
        shift = length // 2 if self.shift is None else self.shift
        return box, shift

    def windows(self, traj: Trajectory) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return the parent window and the two daughter windows.

        Parameters
        ----------
        traj : Trajectory
            The roll-out.

        Returns
        -------
        parent : torch.Tensor
            ``(B, S, h, w)`` of ``X_0``.
        daughters : list of torch.Tensor
            The daughters at −shift and +shift of ``X_T``, each ``(B, S, h, w)``.
        """
        _, _, H, W = _state_shape(traj)
        (y0, y1, x0, x1), shift = self.geometry(H, W)
        dim = self.AXES[self.axis]
        parent = traj.states[0][..., y0:y1, x0:x1]
        XT = traj.states[-1]
        # roll by +s brings the cell at i − s to i: the window displaced by −s
        daughters = [torch.roll(XT, s, dims=dim)[..., y0:y1, x0:x1] for s in (shift, -shift)]
        return parent, daughters

    @staticmethod
    def _std_penalty(X: torch.Tensor, beta: float) -> torch.Tensor:
        """Return ``mean_{b,i} max(0, β − std(X^i))²``."""
        std = _safe_sqrt(X.var(dim=(-2, -1), unbiased=False))
        return torch.relu(beta - std).pow(2).mean()

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value (see the class docstring)."""
        _require_steps(traj, "Replication")
        parent, daughters = self.windows(traj)
        loss = sum(((parent - d) ** 2).mean() for d in daughters)
        if self.std_weight > 0:
            if self.std_on == "daughters":
                floor = sum(self._std_penalty(d, self.beta) for d in daughters)
            else:
                floor = self._std_penalty(traj.states[-1], self.beta)
            loss = loss + self.std_weight * floor
        return loss

    def correlation(self, traj: Trajectory, pooled: bool = False) -> float:
        """Return the mean Pearson r between the parent and each daughter.

        ``pooled=False`` (rdlab's headline): one r per species and sample, over the window's
        cells, then the mean; a species constant over the parent or a daughter counts as
        r = 0, so every species must be copied. ``pooled=True``: one r per sample over the
        window's cells **and species together**, the authors' ``pearson_corr`` (their
        ``x_corr_loss`` metric, by which the paper reports .893). The pooled r also rewards
        species whose levels differ: a roll-out that keeps the fed species at its feed and
        every other one at 0 scores about .63 on it against a zero-padded parent (per
        species: about 0).

        Parameters
        ----------
        traj : Trajectory
            The roll-out.
        pooled : bool, default False
            Pool the species (the authors' definition) instead of one r per species.

        Returns
        -------
        float
            The mean r.
        """
        parent, daughters = self.windows(traj)
        B, S, h, w = parent.shape
        shape = (B, S * h, w) if pooled else (B * S, h, w)
        with torch.no_grad():
            p = parent.reshape(shape)
            rs = [pearson_correlation(d.reshape(shape), p) for d in daughters]
            return float(torch.stack(rs).mean())


def parent_daughter_correlation(traj: Trajectory, box: Sequence[int] | None = None,
                                shift: int | None = None, axis: str = "x",
                                pooled: bool = False) -> float:
    """Return the mean parent–daughter Pearson r of :class:`Replication` with this geometry.

    Parameters
    ----------
    traj : Trajectory
        The roll-out.
    box : sequence of int or None, optional
        ``(y0, y1, x0, x1)`` of the parent window (default: as :class:`Replication`).
    shift : int or None, optional
        Displacement of the daughters in cells.
    axis : {"x", "y"}
        Axis of the displacement.
    pooled : bool, default False
        One r over species and cells together (the authors' definition) instead of one
        per species (see :meth:`Replication.correlation`).

    Returns
    -------
    float
        The mean r.
    """
    return Replication(box=box, shift=shift, axis=axis).correlation(traj, pooled=pooled)


# ---------------------------------------------------------------------------- mean drift
class MeanDrift(LossTerm):
    """Keep each species' amount (the authors' propagation x-loss).

    The value is ``mean_{b,i} (⟨X_T^i⟩ − ⟨X_0^i⟩)²``, ⟨·⟩ the spatial mean.

    Parameters
    ----------
    weight : float, default 1.0
        Weight of the term.
    name : str or None, optional
        Name of the term (default ``"mean_drift"``).
    """

    default_name = "mean_drift"

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value (see the class docstring)."""
        _state_shape(traj)
        drift = traj.states[-1].mean(dim=(-2, -1)) - traj.states[0].mean(dim=(-2, -1))
        return (drift**2).mean()


# ---------------------------------------------------------------------------- hold
#: The options of the ``hold`` term a config may set (the target comes from the target term).
HOLD_OPTIONS = ("weight", "factor", "every", "grad_steps", "metric", "name")
#: The options of the ``information_hold`` term (the encoder is the information term's).
INFORMATION_HOLD_OPTIONS = ("weight", "factor", "every", "grad_steps", "name")


def _whole(value, name: str, low: int) -> int:
    """Return ``value`` if it is a whole number ≥ ``low``, else refuse it naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ParameterError(f"hold {name} must be a whole number ≥ {low}, got {value!r}")
    return int(value)


def check_hold_options(options: Mapping[str, Any], kind: str = "hold") -> dict[str, Any]:
    """Check the config options of the ``hold`` or ``information_hold`` term; return them.

    Parameters
    ----------
    options : mapping
        Some of :data:`HOLD_OPTIONS` (:data:`INFORMATION_HOLD_OPTIONS`).
    kind : {"hold", "information_hold"}
        The term.

    Returns
    -------
    dict
        The options, as given.

    Raises
    ------
    ParameterError
        For an unknown option or a bad value, naming it.
    """
    options = dict(options or {})
    allowed = HOLD_OPTIONS if kind == "hold" else INFORMATION_HOLD_OPTIONS
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ParameterError(f"{kind}: unknown option(s) {unknown}; choose from "
                             f"{list(allowed)}")
    if "weight" in options:
        nonnegative_number(options["weight"], f"{kind} weight")
    _whole(options.get("factor", 10), "factor", 2)
    _whole(options.get("every", 1), "every", 1)
    _whole(options.get("grad_steps", 32), "grad_steps", 1)
    if kind == "hold":
        _check_choice(options.get("metric", "rmsd"), Hold.METRICS, "hold metric")
    return options


class ContinuedRollout(LossTerm):
    """A term read on the roll-out continued past the optimised window (rdlab's).

    On the steps it is due (every ``every``-th step of a stage, :meth:`due`) the
    optimisation continues the roll-out from ``X_T`` to a time ``t_s`` drawn uniformly from
    ``T + 1 … factor·T`` steps (:meth:`draw_time`): the first ``t_s − T − grad_steps`` steps
    without gradient from ``X_T`` detached, then ``grad_steps`` steps with gradient
    (truncated back-propagation: the cost of one long roll-out forward plus ``grad_steps``
    backward); when ``t_s − T ≤ grad_steps`` the whole continuation is differentiable from
    ``X_T``. That segment is the trajectory's ``extension``
    (:func:`rdlab.design.optimise.hold_extension`); the term is 0 on steps without one.
    A loss has at most one such term.

    Parameters
    ----------
    weight : float
        Weight of the term.
    factor : int
        ``t_s`` is drawn up to ``factor``·T steps, ≥ 2.
    every : int
        The term is due on every ``every``-th step of a stage (the first included), ≥ 1.
    grad_steps : int
        Differentiable steps at the end of the continuation, ≥ 1.
    name : str or None
        Name of the term.
    """

    def __init__(self, weight: float = 1.0, factor: int = 10, every: int = 1,
                 grad_steps: int = 32, name: str | None = None) -> None:
        super().__init__(weight, name)
        self.factor = _whole(factor, "factor", 2)
        self.every = _whole(every, "every", 1)
        self.grad_steps = _whole(grad_steps, "grad_steps", 1)

    def due(self, step: int) -> bool:
        """Return whether the term is due at step ``step`` (0-based) of a stage.

        Parameters
        ----------
        step : int
            The step's index in its stage.

        Returns
        -------
        bool
            True every ``every``-th step, the first included.
        """
        return step % self.every == 0

    def draw_time(self, n_steps: int, generator: torch.Generator | None = None) -> int:
        """Draw ``t_s``, uniform in ``T + 1 … factor·T`` steps.

        Parameters
        ----------
        n_steps : int
            The window ``T`` (steps), ≥ 1.
        generator : torch.Generator or None, optional
            The source of the draw.

        Returns
        -------
        int
            ``t_s`` in steps.
        """
        device = generator.device if generator is not None else "cpu"
        extra = torch.randint(1, (self.factor - 1) * n_steps + 1, (1,), generator=generator,
                              device=device)
        return n_steps + int(extra)


class Hold(ContinuedRollout):
    """Keep the target pattern after the optimised window (rdlab's term, not the paper's).

    A design optimised over ``T`` steps only is free to drift, or grow unstable, after them.
    On the steps this term is due the roll-out is continued to a drawn time ``t_s``
    (:class:`ContinuedRollout`: up to ``factor``·T, the last ``grad_steps`` with gradient).
    The value is the target
    distance of :class:`TargetPattern` (RMSD of ``2c − 1`` of ``species`` from the
    normalised target; or the MSE, or ``1 − r`` with ``metric="correlation"``), averaged
    over the segment's states after its first and over the batch; 0 on steps without an
    extension.

    Parameters
    ----------
    target : array_like or torch.Tensor
        Image ``(H, W)`` of the domain's size (the target term's).
    species : int, default 1
        Index of the species compared.
    weight : float, default 1.0
        Weight of the term.
    factor : int, default 10
        ``t_s`` is drawn up to ``factor``·T steps, ≥ 2.
    every : int, default 1
        The term is due on every ``every``-th step of a stage (the first included), ≥ 1.
    grad_steps : int, default 32
        Differentiable steps at the end of the continuation, ≥ 1.
    metric : {"rmsd", "mse", "correlation"}
        The distance.
    name : str or None, optional
        Name of the term (default ``"hold"``).

    Raises
    ------
    ParameterError
        For a bad target or species, or a value outside its range.
    """

    default_name = "hold"
    METRICS = ("rmsd", "mse", "correlation")

    def __init__(self, target, species: int = 1, weight: float = 1.0, factor: int = 10,
                 every: int = 1, grad_steps: int = 32, metric: str = "rmsd",
                 name: str | None = None) -> None:
        super().__init__(weight, factor, every, grad_steps, name)
        self.metric = _check_choice(metric, self.METRICS, "hold metric")
        self._pattern = TargetPattern(target, species, frames="last",
                                      metric="mse" if metric == "mse" else "rmsd")

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value (see the class docstring)."""
        ext = traj.extension
        if ext is None:
            return traj.states[-1].new_zeros(())
        target = self._pattern._target_for(ext)
        X = ext.stacked()
        X = X[1:] if ext.n_steps else X
        if self.metric == "correlation":
            return 1.0 - species_correlation(X, self._pattern.species, target).mean()
        return self._pattern.distance(X, target).mean()


class InformationHold(ContinuedRollout):
    """Keep the bits decodable after the optimised window (rdlab's term, not the paper's).

    The information term (eq. 11) reads the bits at ``X_0``, a stored frame and ``X_T``;
    nothing asks the state to carry them later, and from the paper's initialisation they
    fade within about 1.5 T. This term reads them at the end of the continued roll-out
    (:class:`ContinuedRollout`: at ``t_s`` drawn up to ``factor``·T, the last
    ``grad_steps`` steps with gradient): ``BCE(z, E(X_{t_s}))`` with the information term's
    encoder ``E``, mean over batch and bits; 0 on steps without a continuation.

    Parameters
    ----------
    encoder : torch.nn.Module
        The information term's encoder ``(B, S, H, W) → logits (B, n_bits)``.
    weight : float, default 1.0
        Weight of the term.
    factor, every, grad_steps : int
        As :class:`ContinuedRollout` (defaults 10, 1, 32).
    centre : bool, default True
        The encoder sees ``2X − 1``, as in :class:`Information`.
    name : str or None, optional
        Name of the term (default ``"information_hold"``).

    Raises
    ------
    ParameterError
        When ``encoder`` is not a module, or a value is outside its range.
    """

    default_name = "information_hold"

    def __init__(self, encoder: nn.Module, weight: float = 1.0, factor: int = 10,
                 every: int = 1, grad_steps: int = 32, centre: bool = True,
                 name: str | None = None) -> None:
        super().__init__(weight, factor, every, grad_steps, name)
        if not isinstance(encoder, nn.Module):
            raise ParameterError(f"encoder must be a torch.nn.Module, got "
                                 f"{type(encoder).__name__}")
        self.encoder = encoder  # shared with the information term, which yields its parameters
        self.centre = bool(centre)

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Return the unweighted value (see the class docstring)."""
        ext = traj.extension
        if ext is None:
            return traj.states[-1].new_zeros(())
        z = traj.z
        if z is None:
            raise ParameterError("InformationHold needs the generator's bits: trajectory.z "
                                 "is None")
        logits = _encode(self.encoder, ext.states[-1], z, self.centre)
        return F.binary_cross_entropy_with_logits(logits, z.to(logits.dtype))


# ---------------------------------------------------------------------------- composite
class CompositeLoss:
    """A weighted sum of loss terms with distinct names.

    ``loss(traj, generator) → (total, values)``: ``total = Σ weight · value`` (a 0-d tensor
    to back-propagate; terms of weight 0 are evaluated and logged but left out) and
    ``values``, name → unweighted value as a float, for logging. Terms are evaluated in
    order and share ``generator``.

    Parameters
    ----------
    terms : sequence of LossTerm
        At least one term; names distinct.

    Raises
    ------
    ParameterError
        For no terms, an object that is not a term, or a name used twice.
    """

    def __init__(self, terms: Sequence[LossTerm]) -> None:
        terms = tuple(terms)
        if not terms:
            raise ParameterError("a composite loss needs at least one term")
        for t in terms:
            if not isinstance(t, LossTerm):
                raise ParameterError(f"not a loss term: {t!r}")
        names = [t.name for t in terms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ParameterError(f"loss term names used twice: {dup}; pass name= to tell "
                                 f"them apart")
        self.terms = terms

    def __getitem__(self, name: str) -> LossTerm:
        """Return the term called ``name``."""
        for t in self.terms:
            if t.name == name:
                return t
        raise ParameterError(f"no loss term called {name!r}; terms are {self.names}")

    @property
    def names(self) -> list[str]:
        """Names of the terms, in order."""
        return [t.name for t in self.terms]

    @property
    def weights(self) -> dict[str, float]:
        """Weight of each term, by name."""
        return {t.name: t.weight for t in self.terms}

    def parameters(self) -> Iterator[nn.Parameter]:
        """Yield the trainable parameters of every term.

        Yields
        ------
        torch.nn.Parameter
            Each parameter, for the optimiser.
        """
        for t in self.terms:
            yield from t.parameters()

    def __call__(self, traj: Trajectory, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return ``(total, values)`` (see the class docstring)."""
        _state_shape(traj)
        total = traj.states[0].new_zeros(())
        values: dict[str, float] = {}
        for t in self.terms:
            v = t(traj, generator)
            if not isinstance(v, torch.Tensor) or v.ndim != 0:
                shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise ParameterError(f"loss term {t.name!r} returned {shape}, not a scalar")
            values[t.name] = float(v.detach())
            if t.weight > 0:  # a zero-weight term is only logged (a NaN there stays out)
                total = total + t.weight * v
        return total, values

    def __repr__(self) -> str:
        """Return the terms."""
        return f"CompositeLoss({list(self.terms)!r})"


TERM_TYPES: dict[str, type[LossTerm]] = {
    cls.default_name: cls
    for cls in (TargetPattern, StepSize, Dissipation, Information, Replication, MeanDrift,
                Hold, InformationHold)
}


def make_term(kind: str, **options: Any) -> LossTerm:
    """Build a term by its kind and its constructor's options.

    Parameters
    ----------
    kind : str
        A key of :data:`TERM_TYPES`.
    **options
        The constructor's keyword arguments.

    Returns
    -------
    LossTerm
        The term.

    Raises
    ------
    ParameterError
        For an unknown kind or bad options.
    """
    if kind not in TERM_TYPES:
        raise ParameterError(f"unknown loss term {kind!r}; choose from {sorted(TERM_TYPES)}")
    try:
        return TERM_TYPES[kind](**options)
    except TypeError as err:
        raise ParameterError(f"bad options for loss term {kind!r}: {err}") from None


def build_loss(config: Mapping[str, Mapping[str, Any]]) -> CompositeLoss:
    """Build a :class:`CompositeLoss` from ``{kind: options}``.

    Parameters
    ----------
    config : mapping
        ``{kind: options}``, e.g. ``{"step_size": {"delta_max": .05, "weight": 1000},
        "dissipation": {"weight": 1}}``.

    Returns
    -------
    CompositeLoss
        One term per kind, in order.

    Raises
    ------
    ParameterError
        For an unknown kind or bad options.
    """
    return CompositeLoss([make_term(kind, **dict(opts or {})) for kind, opts in config.items()])
