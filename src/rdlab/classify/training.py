"""Training, prediction, evaluation and saliency maps of the pattern CNNs.

Data layout: inputs ``x`` are float32 arrays ``(n, channel, y, x)`` of U (dimensionless, in
[0, 1]) — numpy arrays, or lazily indexable arrays (xarray ``DataArray``, zarr, dask) that are
read in batches; labels ``y`` are int64 ``(n,)`` indices into ``classes``.

The recipe of :func:`train` follows the reference (cross-entropy on logits, Adam lr 1e-3 with
ε = 1e-7, batch 128, the Keras augmentation, validation on the raw val set after every
epoch) with these additions, each documented on :class:`TrainConfig`: seeded shuffling,
augmentation and dropout; a periodic translation over the whole image instead of the ±1 px
shift; the input BatchNorm's running statistics initialised from the training data (the
reference's momentum 0.99 would otherwise need ~100 steps, i.e. ~17 epochs of 750 samples,
before evaluation-mode predictions mean anything); an LR schedule; checkpoints every epoch
with exact resumption; early stopping; channels-last memory layout (faster with oneDNN here,
see ``benchmarks/train_cnn.py``).

Files written to ``out_dir`` by :func:`train`:

* ``history.jsonl`` — one JSON line per epoch ``{epoch, loss, accuracy, val_loss,
  val_accuracy, lr, seconds}`` (``loss``/``accuracy`` are averages over the epoch's augmented
  training batches with dropout active; ``lr`` is the rate used during the epoch), appended
  after every epoch (:class:`~rdlab.training_loop.History`; read it with
  :func:`~rdlab.training_loop.read_history`, which also reads the ``history.json`` list of
  earlier rdlab versions; a resumed run rewrites it from ``last.pt`` and removes
  ``history.json``);
* ``best.pt`` — :func:`~rdlab.classify.cnn.save_model` file of the best validated model;
* ``last.pt`` — the full training state after the last finished epoch (model, optimizer,
  scheduler, random-generator states, history, early-stopping counters, configuration).

The loop, its checkpoints, early stopping and time budget are the shared ones of
:mod:`rdlab.training_loop`. ``best.pt`` and ``last.pt`` are written atomically (temporary
file + rename) and the history line by line, so an interruption at any moment — Ctrl-C
included — leaves the state of the last finished epoch.

**Determinism.** With a fixed ``seed`` and the same data, configuration and thread count, a
run is bit-for-bit reproducible on the same machine and torch build, and a run interrupted
and resumed (call :func:`train` again with the same ``out_dir``) ends identical to an
uninterrupted one: the model is initialised from ``seed``, the shuffling and augmentation
draw from a private :class:`torch.Generator` seeded with ``seed + 1``, dropout from torch's
global generator (run inside :func:`torch.random.fork_rng`, so the caller's global state is
untouched), and ``last.pt`` holds both generators' states. A different thread count can change
floating-point reduction orders and hence the last bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rdlab.atomic import remove_temporaries
from rdlab.checks import torch_device
from rdlab.classify.augment import AugmentConfig, augment
from rdlab.classify.cnn import build_model, load_model, save_model
from rdlab.classify.pattern_runs import DATA_SETTINGS_KEY
from rdlab.errors import DataError, OutputError, ParameterError, RdlabError, SimulationError
from rdlab.output_lock import hold
from rdlab.settings import Settings
from rdlab.training_loop import (
    Checkpoint,
    CheckpointError,
    EarlyStopping,
    History,
    Loop,
    TimeBudget,
    rng_states,
    set_rng_states,
)

_STATE_FORMAT = "rdlab-train-state"
#: Settings that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = frozenset({"threads", "patience", "time_budget_s", "time_limit_s", "epochs",
                                "device"})  # time_limit_s: the old name, in old states


#: Largest epoch, batch and patience counts (a larger one is a typo, not a plan).
MAX_COUNT = 1_000_000
#: Largest seed torch takes (a signed 64-bit integer).
MAX_SEED = 2**63 - 1


#: :class:`TrainConfig` overrides of the time-stack network's recipe (``rdlab classify train
#: --architecture 3d`` applies them; chosen on the validation set, ``docs/classify.md``):
#: batch 32 (the reference's 3-D run also stepped on batches of 32) gives 4× the optimiser steps
#: of the 2-D recipe's 128 per epoch at about the same cost per sample.
RECIPE_3D: dict[str, Any] = {"architecture": "3d", "batch_size": 32, "epochs": 84,
                             "patience": None}


@dataclass
class TrainConfig(Settings):
    """Settings of :func:`train`.

    Read and written as any rdlab config (:class:`rdlab.settings.Settings`: types checked
    from the annotations, unknown keys refused).

    Parameters
    ----------
    epochs : int, default 60
        Most epochs (passes over the training set) to run.
    batch_size : int, default 128
        Samples per optimisation step (the last batch of an epoch may be smaller).
    lr : float, default 1e-3
        Adam learning rate (β = 0.9/0.999, ε = ``adam_eps``, Keras's defaults).
    adam_eps : float, default 1e-7
        Adam's ε (Keras: 1e-7; PyTorch's default would be 1e-8).
    augment : AugmentConfig
        The augmentation (:class:`~rdlab.classify.augment.AugmentConfig`).
    patience : int or None, default 15
        Stop when the monitored validation score has not improved for this many epochs;
        ``None`` never stops early.
    monitor : {"val_accuracy", "val_loss"}, default "val_accuracy"
        ``"val_accuracy"`` (ties broken by the lower val loss) or ``"val_loss"``; decides
        ``best.pt`` and early stopping.
    seed : int, default 0
        Seeds the initial weights, shuffling, augmentation and dropout.
    threads : int, default 2
        ``torch.set_num_threads`` during training (restored afterwards).
    architecture : {"2d", "3d"}, default "2d"
        :class:`~rdlab.classify.cnn.PatternCNN` or :class:`~rdlab.classify.cnn.PatternCNN3D`.
    dropout : float or None, default None
        Dropout rate; ``None`` keeps the reference's (0.15 2-D, 0.10 3-D).
    schedule : {"none", "cosine", "plateau"}, default "cosine"
        Learning-rate schedule, stepped once per epoch: ``"none"`` (constant, the
        reference), ``"cosine"`` (cosine annealing from ``lr`` to ``lr·min_lr_ratio`` over
        ``epochs``, :class:`torch.optim.lr_scheduler.CosineAnnealingLR`) or ``"plateau"``
        (×``plateau_factor`` when the val loss has not improved for ``plateau_patience``
        epochs, :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`).
    min_lr_ratio : float, default 0.01
        Final LR of the cosine schedule and floor of the plateau one, relative to ``lr``.
    plateau_factor : float, default 0.5
        Factor of the ``"plateau"`` schedule.
    plateau_patience : int, default 5
        Patience (epochs) of the ``"plateau"`` schedule.
    val_every : int, default 1
        Validate every this many epochs (and after the last); records of the other epochs
        have ``val_loss``/``val_accuracy`` ``None``. Patience counts epochs.
    init_norm : bool, default True
        Set the input BatchNorm's running mean/variance to the training data's per-channel
        statistics before the first epoch (see the module docstring).
    channels_last : bool, default True
        Train the 2-D network in channels-last memory layout (faster with oneDNN on CPU;
        results equal up to rounding). Inference always feeds 2-D networks channels-last
        input. The 3-D network keeps its weights channels-last-3d whatever this says
        (:class:`~rdlab.classify.cnn.PatternCNN3D`).
    in_memory : bool, default True
        Read lazily indexable inputs (zarr, xarray, dask) into memory once before training
        (fast); ``False`` reads every batch from the store.
    time_budget_s : float or None, default None
        Stop after the epoch during which the accumulated training time (over all
        resumptions) passed this many seconds; ``None`` for no limit. The stopping point of
        such a run depends on the machine's speed. (Old configs' ``time_limit_s`` is read as
        this.)
    label_smoothing : float, default 0.1
        Weight of the uniform distribution mixed into the one-hot targets of the
        cross-entropy (0 = the reference's plain cross-entropy). The default 0.1 generalises
        better to the test set's perturbed (k, f): over 6 seeds each, 60 epochs, its mean
        test accuracy was 96.0 % against 95.5 % for 0 (``docs/classify.md``).
    device : str, default "cpu"
        Torch device to train on (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...). The data and
        the random draws of shuffling and augmentation stay on the CPU generator, so the
        sequence of batches is the same on every device; dropout draws from the device's
        generator, and GPU kernels are not bit-reproducible, so only CPU runs resume bit for
        bit. Checkpoints are always written with CPU tensors.
    """

    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    adam_eps: float = 1e-7
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    patience: int | None = 15
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    seed: int = 0
    threads: int = 2
    architecture: Literal["2d", "3d"] = "2d"
    dropout: float | None = None
    schedule: Literal["none", "cosine", "plateau"] = "cosine"
    min_lr_ratio: float = 0.01
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    val_every: int = 1
    init_norm: bool = True
    channels_last: bool = True
    in_memory: bool = True
    time_budget_s: float | None = None
    label_smoothing: float = 0.1
    device: str = "cpu"

    _what = "TrainConfig"
    _aliases = {"time_limit_s": "time_budget_s"}  # the old name of the field

    def __post_init__(self) -> None:
        """Check the settings' types and ranges."""
        self.check_types()  # types (and the choices of schedule, monitor, architecture)
        for name in ("epochs", "batch_size", "threads", "val_every", "plateau_patience"):
            v = getattr(self, name)
            if not 1 <= v <= MAX_COUNT:
                raise ParameterError(f"TrainConfig.{name} must be an integer from 1 to "
                                     f"{MAX_COUNT:,}, got {v!r}")
        if self.patience is not None and not 1 <= self.patience <= MAX_COUNT:
            raise ParameterError(f"TrainConfig.patience must be None or an integer from 1 to "
                                 f"{MAX_COUNT:,}, got {self.patience!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ParameterError(f"TrainConfig.seed must be an integer from 0 to {MAX_SEED}, "
                                 f"got {self.seed!r}")
        for name in ("lr", "adam_eps"):
            v = getattr(self, name)
            if v <= 0:
                raise ParameterError(f"TrainConfig.{name} must be a finite number > 0, got "
                                     f"{v!r}")
        if not 0 < self.min_lr_ratio <= 1:
            raise ParameterError(f"TrainConfig.min_lr_ratio must lie in (0, 1], got "
                                 f"{self.min_lr_ratio!r}")
        if not 0 < self.plateau_factor < 1:
            raise ParameterError(f"TrainConfig.plateau_factor must lie in (0, 1), got "
                                 f"{self.plateau_factor!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ParameterError(f"TrainConfig.label_smoothing must lie in [0, 1), got "
                                 f"{self.label_smoothing!r}")
        torch_device(self.device, "TrainConfig.device")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ParameterError(f"TrainConfig.time_budget_s must be None or > 0, got "
                                 f"{self.time_budget_s!r}")


# ----------------------------------------------------------------------------- data access

def _n_samples(x: Any) -> int:
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 4:
        raise ParameterError(f"frames must be an array (n, channel, y, x), got shape {shape}")
    return int(shape[0])


def _take(x: Any, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted, unique) of ``x`` as a C-contiguous float32 numpy array."""
    if isinstance(x, np.ndarray):
        out = x[index]
    elif hasattr(x, "isel") and hasattr(x, "dims"):  # xarray DataArray
        out = x.isel({x.dims[0]: index}).values
    elif hasattr(x, "oindex"):  # zarr array
        out = x.oindex[index]
    elif hasattr(x, "compute"):  # dask array
        out = x[index].compute()
    else:
        out = np.asarray(x[index])
    return np.ascontiguousarray(out, dtype=np.float32)


def _slice(x: Any, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``x`` as a C-contiguous float32 numpy array."""
    if hasattr(x, "isel") and hasattr(x, "dims"):
        out = x.isel({x.dims[0]: slice(start, stop)}).values
    else:
        out = x[start:stop]
        if hasattr(out, "compute"):
            out = out.compute()
    return np.ascontiguousarray(out, dtype=np.float32)


def _load(x: Any, chunk: int = 256) -> np.ndarray:
    """All of ``x`` as a float32 numpy array, read ``chunk`` samples at a time."""
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x, dtype=np.float32)
    n = _n_samples(x)
    first = _slice(x, 0, min(chunk, n))
    out = np.empty((n, *first.shape[1:]), dtype=np.float32)
    out[:first.shape[0]] = first
    for a in range(chunk, n, chunk):
        out[a:a + chunk] = _slice(x, a, min(a + chunk, n))
    return out


def _check_labels(y: Any, n: int, n_classes: int, name: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.shape != (n,):
        raise ParameterError(f"{name} must have shape ({n},), got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ParameterError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ParameterError(f"{name} holds label {int(bad)} outside [0, {n_classes})")
    return labels


def _name_samples(index: Any, points: np.ndarray | None, role: str, limit: int = 4) -> str:
    """``training samples 3 (k = 0.05, f = 0.02), 7 (…)`` for a list of sample indices."""
    index = [int(i) for i in np.atleast_1d(index)]
    parts = []
    for i in index[:limit]:
        where = (f" (k = {points[i, 0]:g}, f = {points[i, 1]:g})"
                 if points is not None and i < len(points) else "")
        parts.append(f"{i}{where}")
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return f"{role} sample{'s' if len(index) > 1 else ''} {', '.join(parts)}{more}"


def _non_finite_rows(batch: np.ndarray) -> np.ndarray:
    """Positions of the rows of ``batch`` that hold a NaN or an infinity."""
    return np.flatnonzero(~np.isfinite(batch.reshape(len(batch), -1)).all(axis=1))


def _check_finite(batch: np.ndarray, index: Any, points: np.ndarray | None,
                  role: str) -> None:
    """Refuse a batch (rows ``index`` of the data) with a NaN or infinite input."""
    bad = _non_finite_rows(batch)
    if bad.size:
        raise DataError(f"{_name_samples(np.asarray(index)[bad], points, role)} "
                        f"hold{'' if bad.size > 1 else 's'} NaN or infinite values; "
                        "refusing to train or predict on them")


def _is_2d(model: nn.Module) -> bool:
    return getattr(model, "architecture", "2d") == "2d"


def _to_input(batch: np.ndarray, model: nn.Module) -> torch.Tensor:
    """Return a numpy batch as the model's input (channels-last for 2-D networks).

    oneDNN then runs the convolutions in NHWC, about twice as fast on CPU here, whatever the
    weights' layout.
    """
    t = torch.from_numpy(batch)
    if _is_2d(model):
        t = t.contiguous(memory_format=torch.channels_last)
    return t


# ----------------------------------------------------------------------------- inference

@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the body with ``model`` in eval mode, then restore its train/eval flag."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


#: The 8 symmetries of the square grid (dihedral group D4) as (mirror along x, quarter turns).
SQUARE_SYMMETRIES = tuple((flip, turns) for flip in (False, True) for turns in range(4))


def _view_probabilities(model: nn.Module, frames: Any, batch_size: int,
                        symmetrize: bool) -> torch.Tensor:
    """Return softmax probabilities ``(views, n, n_classes)`` of ``frames``.

    Seen in each of the :data:`SQUARE_SYMMETRIES` (``symmetrize``; view 0 is the frame
    itself) or as given.
    """
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
    views = SQUARE_SYMMETRIES if symmetrize else ((False, 0),)
    n = _n_samples(frames)
    parts = []
    device = next(model.parameters()).device
    with _eval_mode(model), torch.inference_mode():
        for a in range(0, n, batch_size):
            data = _slice(frames, a, min(a + batch_size, n))
            _check_finite(data, np.arange(a, a + len(data)), None, "input")
            batch = _to_input(data, model).to(device)
            probs = []
            for flip, turns in views:
                view = torch.rot90(batch.flip(-1) if flip else batch, turns, dims=(-2, -1))
                if _is_2d(model):
                    view = view.contiguous(memory_format=torch.channels_last)
                probs.append(torch.softmax(model(view).float(), dim=1).cpu())
            parts.append(torch.stack(probs))
    if not parts:
        return torch.zeros((len(views), 0, int(model.n_classes)))
    return torch.cat(parts, dim=1)


def _mean_nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy (nats) of predicted probabilities ``(n, classes)`` against labels."""
    return float(F.nll_loss(torch.log(probs.clamp_min(1e-30)), labels))


def predict(model: nn.Module, frames: Any, batch_size: int = 256,
            symmetrize: bool = True) -> np.ndarray:
    """Return the class probabilities of ``frames``.

    Computed in evaluation mode without gradients, ``batch_size`` samples at a time (the
    model's training/eval mode is restored afterwards).

    ``symmetrize`` (default): the mean of the softmax over the 8 symmetries of the square
    (4 quarter turns, each with and without a mirror). The Gray–Scott dynamics on a periodic
    grid with the isotropic 9-point stencil commute with these maps, so a pattern and its
    rotated or mirrored copy have the same class; averaging makes the prediction exactly
    invariant and, measured on the paper's test set (GPU runs of 6 seeds each,
    ``docs/classify.md``), adds about 0.4 points of accuracy. It costs 8 forward passes.
    ``False``: the softmax of a single forward pass.

    Parameters
    ----------
    model : torch.nn.Module
        A pattern CNN.
    frames : array-like
        Float32 frames ``(n, channel, y, x)`` (numpy, zarr, xarray or dask).
    batch_size : int, default 256
        Samples per forward pass.
    symmetrize : bool, default True
        Average over the 8 symmetries of the square.

    Returns
    -------
    numpy.ndarray
        Float32 probabilities ``(n, n_classes)``.

    Raises
    ------
    ParameterError
        A ``batch_size`` below 1 or frames that are not ``(n, channel, y, x)``.
    DataError
        A frame with a NaN or infinite value.
    """
    return _view_probabilities(model, frames, batch_size, symmetrize).mean(dim=0).numpy()


def evaluate(model: nn.Module, x: Any, y: Any, classes: list[str],
             batch_size: int = 256, symmetrize: bool = True) -> dict:
    """Score ``model`` on labelled frames, predicting as :func:`predict` does.

    Parameters
    ----------
    model : torch.nn.Module
        A pattern CNN.
    x : array-like
        Float32 frames ``(n, channel, y, x)``.
    y : array-like
        Integer labels ``(n,)`` indexing ``classes``.
    classes : list of str
        The model's classes, in the order of its outputs.
    batch_size : int, default 256
        Samples per forward pass.
    symmetrize : bool, default True
        Average over the 8 symmetries of the square (see :func:`predict`).

    Returns
    -------
    dict
        ``{"n", "accuracy", "loss" (mean cross-entropy of the predicted probabilities,
        nats), "confusion" (list of lists, rows = true class, columns = predicted, in the
        order of ``classes``), "per_class_accuracy" ({class: recall, None for a class
        without samples}), "classes", "predicted" (list of predicted indices),
        "symmetrized", "single_view_accuracy" (the accuracy of the frames as given, one
        forward pass each)}``.

    Raises
    ------
    ParameterError
        Classes that do not match the model's outputs, or bad labels.
    """
    classes = [str(c) for c in classes]
    k = len(classes)
    if k != int(model.n_classes):
        raise ParameterError(f"{k} classes given for a model with {model.n_classes} outputs")
    n = _n_samples(x)
    labels = _check_labels(y, n, k, "y")
    views = _view_probabilities(model, x, batch_size, symmetrize)
    probs = views.mean(dim=0)
    pred = probs.argmax(dim=1).numpy()
    single = views[0].argmax(dim=1).numpy()
    loss = _mean_nll(probs, torch.from_numpy(labels)) if n else float("nan")
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    totals = confusion.sum(axis=1)
    per_class = {c: (float(confusion[i, i] / totals[i]) if totals[i] else None)
                 for i, c in enumerate(classes)}
    return {"n": n, "accuracy": float((pred == labels).mean()) if n else float("nan"),
            "loss": loss, "confusion": confusion.tolist(), "per_class_accuracy": per_class,
            "classes": classes, "predicted": pred.tolist(), "symmetrized": bool(symmetrize),
            "single_view_accuracy": float((single == labels).mean()) if n else float("nan")}


def saliency(model: nn.Module, frames: Any, class_index: int, sigma: float = 2.0,
             batch_size: int = 64) -> np.ndarray:
    """Return saliency maps ``(n, y, x)`` float32 in [0, 1] — the reference's recipe.

    For each sample: the gradient of the logit of ``class_index`` with respect to the input
    (evaluation mode), the *signed* maximum over channels (no absolute value), min–max
    scaled to [0, 1] per sample (a constant map becomes 0), then
    :func:`scipy.ndimage.gaussian_filter` with ``sigma`` pixels over y and x (scipy's default
    ``'reflect'`` boundary, as in the reference).

    Parameters
    ----------
    model : torch.nn.Module
        A pattern CNN.
    frames : array-like
        Float32 frames ``(n, channel, y, x)``.
    class_index : int
        The class whose logit is differentiated.
    sigma : float, default 2.0
        Gaussian smoothing in pixels (0: none).
    batch_size : int, default 64
        Samples per backward pass.

    Returns
    -------
    numpy.ndarray
        Float32 maps ``(n, y, x)`` in [0, 1].

    Raises
    ------
    ParameterError
        A ``class_index`` outside the model's classes, or a negative ``sigma``.
    """
    from scipy.ndimage import gaussian_filter

    n_classes = int(model.n_classes)
    if not 0 <= int(class_index) < n_classes:
        raise ParameterError(f"class_index {class_index} outside [0, {n_classes})")
    if sigma < 0:
        raise ParameterError(f"sigma must be >= 0, got {sigma}")
    n = _n_samples(frames)
    maps = []
    device = next(model.parameters()).device
    with _eval_mode(model):
        for a in range(0, n, batch_size):
            inp = _to_input(_slice(frames, a, min(a + batch_size, n)), model).to(device)
            inp.requires_grad_(True)
            logits = model(inp)
            (grad,) = torch.autograd.grad(logits[:, int(class_index)].sum(), inp)
            maps.append(grad.amax(dim=1).float().cpu().numpy())
    if not maps:
        return np.zeros((0, *tuple(frames.shape[-2:])), dtype=np.float32)
    m = np.concatenate(maps).astype(np.float64)
    lo = m.min(axis=(1, 2), keepdims=True)
    span = m.max(axis=(1, 2), keepdims=True) - lo
    scaled = np.divide(m - lo, span, out=np.zeros_like(m), where=span > 0)
    if sigma > 0:
        scaled = gaussian_filter(scaled, sigma=(0, sigma, sigma))
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- training

def init_input_norm(model: nn.Module, x: Any, max_samples: int = 256) -> None:
    """Set the running mean/variance of the model's input BatchNorm to the data's.

    Parameters
    ----------
    model : torch.nn.Module
        A pattern CNN; its ``model.norm`` is set per channel for the 2-D network, over all
        frames for the 3-D one.
    x : array-like
        Float32 frames ``(n, channel, y, x)``.
    max_samples : int, default 256
        Use at most this many evenly spaced samples.
    """
    n = _n_samples(x)
    if n == 0:
        return
    index = np.unique(np.linspace(0, n - 1, min(n, max_samples)).round().astype(np.int64))
    data = _take(x, index)
    axes = (0, 2, 3) if model.norm.num_features == data.shape[1] else None
    mean = np.atleast_1d(data.mean(axis=axes, dtype=np.float64))
    var = np.atleast_1d(data.var(axis=axes, dtype=np.float64, ddof=1))
    with torch.no_grad():
        model.norm.running_mean.copy_(torch.from_numpy(mean))
        model.norm.running_var.copy_(torch.from_numpy(var))


def _make_scheduler(config: TrainConfig, opt: torch.optim.Optimizer):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=config.epochs, eta_min=config.lr * config.min_lr_ratio)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=config.plateau_factor, patience=config.plateau_patience,
            min_lr=config.lr * config.min_lr_ratio)
    return None


def _score(config: TrainConfig, val_loss: float, val_accuracy: float) -> tuple[float, ...]:
    """Larger is better."""
    if config.monitor == "val_loss":
        return (-val_loss,)
    return (val_accuracy, -val_loss)


def _check_resume(state: dict, config: TrainConfig, classes: list[str], n_train: int,
                  n_val: int, in_channels: int, path: Path) -> None:
    if state.get("format") != _STATE_FORMAT:
        raise ParameterError(f"{path} is not an rdlab training state")
    old = state["config"]
    new = config.to_dict()
    changed = sorted(k for k in set(old) | set(new)
                     if old.get(k) != new.get(k) and k not in _RESUMABLE_CHANGES)
    if old.get("epochs") != new["epochs"] and "cosine" in (old.get("schedule"), config.schedule):
        changed.append("epochs (the cosine schedule is laid out over them)")
    if changed:
        raise ParameterError(f"{path} was written with different settings ({', '.join(changed)})"
                             "; use the same configuration to resume, or another out_dir")
    if (list(state["classes"]) != list(classes) or state["n_train"] != n_train
            or state["n_val"] != n_val or state["in_channels"] != in_channels):
        raise ParameterError(f"{path} was written for other data ({state['n_train']} train / "
                             f"{state['n_val']} val samples, {state['in_channels']} channels, "
                             f"classes {state['classes']}); use another out_dir")


def _train_epoch(model, opt, x, y, config: TrainConfig, gen: torch.Generator,
                 channels_last: bool, epoch: int = 0, points: np.ndarray | None = None):
    """Run one pass over the shuffled, augmented training set; return (mean loss, accuracy).

    Batches are augmented on the training device with transforms drawn from ``gen``.

    Stops with a :class:`DataError` on a non-finite input and a :class:`SimulationError` on
    a non-finite loss, naming the batch's samples, before the optimiser steps.
    """
    n = _n_samples(x)
    device = torch.device(config.device)
    model.train()
    order = torch.randperm(n, generator=gen).numpy()
    total_loss, correct = 0.0, 0
    for a in range(0, n, config.batch_size):
        index = np.sort(order[a:a + config.batch_size])
        data = _take(x, index)
        _check_finite(data, index, points, "training")
        xb = augment(torch.from_numpy(data).to(device), config.augment, gen)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        yb = torch.from_numpy(y[index]).to(device)
        opt.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=config.label_smoothing)
        if not bool(torch.isfinite(loss)):
            raise SimulationError(
                f"training diverged in epoch {epoch}: the loss of the batch of "
                f"{_name_samples(index, points, 'training')} is {loss.item()}; nothing of "
                "this epoch was saved (a lower learning rate may help)")
        loss.backward()
        opt.step()
        total_loss += loss.item() * len(index)
        correct += int((logits.argmax(dim=1) == yb).sum())
    return total_loss / n, correct / n


def train(train_x: Any, train_y: Any, val_x: Any, val_y: Any, classes: list[str],
          out_dir: str | Path, config: TrainConfig | None = None, progress: bool = True,
          on_epoch_end: Callable[[dict], None] | None = None,
          train_points: np.ndarray | None = None, val_points: np.ndarray | None = None,
          data_settings: dict | None = None) -> dict:
    """Train a pattern CNN; resumable (see the module docstring for files and determinism).

    If ``out_dir`` already holds a ``last.pt`` of the same configuration and data, training
    resumes after its last finished epoch (a finished run returns at once). Nothing is
    written when an input is refused. A loss that becomes NaN or infinite stops training
    with the files of the last good epoch kept; ``best.pt`` never holds non-finite weights.
    ``out_dir`` is locked while training.

    Parameters
    ----------
    train_x, val_x : array-like
        Float32 frames ``(n, channel, y, x)`` (numpy, or zarr / xarray / dask arrays: read
        once into memory with ``config.in_memory``, else batch by batch).
    train_y, val_y : array-like
        Int labels ``(n,)`` indexing ``classes``.
    classes : list of str
        The class names (at least 2).
    out_dir : str or pathlib.Path
        Receives ``history.jsonl``, ``best.pt`` and ``last.pt``.
    config : TrainConfig, optional
        The settings (default ``TrainConfig()``).
    progress : bool, default True
        Show a tqdm bar over epochs.
    on_epoch_end : callable, optional
        Called with each epoch's record after the files are written (an exception raised
        there, e.g. ``KeyboardInterrupt``, stops the run with the epoch saved).
    train_points, val_points : numpy.ndarray, optional
        ``(n, 2)`` arrays of (k, f) that name samples in error messages.
    data_settings : dict, optional
        The run settings of the training data (a ``PatternRunSettings`` dict, as its store
        records them); saved in the model's metadata as ``data_settings`` so that labelling
        a run checks the run against what the model was trained on.

    Returns
    -------
    dict
        ``{"out_dir", "epochs_run", "best_epoch", "best_val_accuracy", "best_val_loss",
        "stop_reason" ("epochs", "patience" or "time_budget"), "train_seconds",
        "history"}``.

    Raises
    ------
    DataError
        A sample with a NaN or infinite value (named), or a damaged ``last.pt`` or
        ``best.pt`` to resume from.
    OutputError
        An ``out_dir`` that is a file or a folder of another kind, or one locked by a
        second run.
    SimulationError
        The loss or the weights became non-finite (naming the batch's samples).
    ParameterError
        Bad settings, labels or shapes, or a ``last.pt`` of other settings or data.
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ParameterError(f"config must be a TrainConfig, got {type(config).__name__}")
    classes = [str(c) for c in classes]
    train_x, train_labels, val_x, val_labels, points = _checked_data(
        train_x, train_y, val_x, val_y, classes, config.in_memory, (train_points, val_points))
    in_channels = int(train_x.shape[1])
    out = check_model_folder(out_dir)
    files = {"last": out / "last.pt", "best": out / "best.pt", "history": out / HISTORY,
             "old_history": out / OLD_HISTORY}
    data_meta = {} if data_settings is None else {DATA_SETTINGS_KEY: dict(data_settings)}

    def run() -> dict:
        training = _Training(train_x, train_labels, val_x, val_labels, classes, config,
                             in_channels, files, points, data_meta)
        return _train_loop(training, progress, on_epoch_end, tqdm)

    return _in_model_folder(out, config.threads, run)


def _in_model_folder(out: Path, threads: int, run: Callable[[], dict]) -> dict:
    """Return ``run()`` run with ``out`` locked, ``threads`` threads and a forked RNG."""
    previous_threads = torch.get_num_threads()
    created = not out.exists()
    with hold(out):
        out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(threads)
        try:
            with torch.random.fork_rng(devices=[]):
                return run()
        except BaseException:
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # refused before the first epoch: leave no empty model folder
            raise
        finally:
            torch.set_num_threads(previous_threads)


def _checked_data(train_x: Any, train_y: Any, val_x: Any, val_y: Any, classes: list[str],
                  in_memory: bool, points: tuple) -> tuple:
    """Return the checked data of :func:`train` (read into memory when ``in_memory``)."""
    if len(classes) < 2:
        raise ParameterError(f"need at least 2 classes, got {classes}")
    n_train, n_val = _n_samples(train_x), _n_samples(val_x)
    if n_train == 0:
        raise ParameterError("the training set is empty")
    if tuple(train_x.shape[1:]) != tuple(val_x.shape[1:]):
        raise ParameterError(f"train frames {tuple(train_x.shape[1:])} and val frames "
                             f"{tuple(val_x.shape[1:])} differ in shape")
    train_labels = _check_labels(train_y, n_train, len(classes), "train_y")
    val_labels = _check_labels(val_y, n_val, len(classes), "val_y")
    points = [None if p is None else np.asarray(p, dtype=np.float64) for p in points]
    if in_memory:
        train_x, val_x = _load(train_x), _load(val_x)
        _check_finite(train_x, np.arange(n_train), points[0], "training")
        _check_finite(val_x, np.arange(n_val), points[1], "validation")
    return train_x, train_labels, val_x, val_labels, points


#: The training history (one JSON record per epoch, :class:`~rdlab.training_loop.History`).
HISTORY = "history.jsonl"
#: The history file of rdlab versions before the shared training loop (one JSON list).
OLD_HISTORY = "history.json"
#: Files by which a folder is recognised as a model folder that ``train`` may write into
#: (not ``history.jsonl``: a design run folder has one; a model folder's is never without
#: ``last.pt``, which is written first).
MODEL_FILES = ("last.pt", "best.pt", OLD_HISTORY)


def check_model_folder(out_dir: str | Path) -> Path:
    """Refuse a model folder that is a file, or a non-empty folder without training files.

    So ``train`` never writes into a dataset store or a foreign folder.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The model folder.

    Returns
    -------
    pathlib.Path
        ``out_dir`` as a path.

    Raises
    ------
    OutputError
        The folder is a file, or a non-empty folder holding none of :data:`MODEL_FILES`.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"model folder {str(out)!r} is an existing file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not any((out / f).exists()
                                                       for f in MODEL_FILES):
        raise OutputError(f"model folder {str(out)!r} is a non-empty folder without "
                          f"{', '.join(MODEL_FILES)}; choose a new or empty folder")
    return out


def _load_resume_state(last: Checkpoint) -> dict:
    """Return the training state in ``last.pt``, or a :class:`DataError` naming the file."""
    last_path = last.path
    try:
        state = last.load()
    except CheckpointError as exc:
        raise DataError(f"cannot resume from {str(last_path)!r}: it is damaged "
                        f"({exc.reason}); remove the folder {str(last_path.parent)!r} (or "
                        "choose another --out) to start fresh") from None
    if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
        raise DataError(f"cannot resume from {str(last_path)!r}: it is not an rdlab "
                        f"training state; remove the folder {str(last_path.parent)!r} (or "
                        "choose another --out) to start fresh")
    return state


def _check_best(state: dict, best_path: Path) -> None:
    """Refuse a ``best.pt`` to keep that is not a readable model file of finite weights."""
    if state["best"].get("epoch") is None:
        return
    try:
        model, _, _ = load_model(best_path)
    except RdlabError as exc:
        raise DataError(f"cannot resume in {str(best_path.parent)!r}: {exc}; remove the "
                        "folder (or choose another --out) to start fresh") from None
    if not _finite_weights(model):
        raise DataError(f"cannot resume in {str(best_path.parent)!r}: {str(best_path)!r} "
                        "holds non-finite weights; remove the folder (or choose another "
                        "--out) to start fresh")


def _finite_weights(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()
               if t.is_floating_point())


@dataclass(eq=False)
class _Training:
    """The CNN job on the shared loop: one :meth:`step` per epoch, files after each."""

    x: Any
    y: np.ndarray
    val_x: Any
    val_y: np.ndarray
    classes: list[str]
    config: TrainConfig
    in_channels: int
    files: dict[str, Path]
    points: Any
    data_meta: dict  # what the model's metadata says of its data (``data_settings``)
    model: nn.Module = field(init=False)
    opt: torch.optim.Optimizer = field(init=False)
    sched: Any = field(init=False)
    gen: torch.Generator = field(init=False)
    channels_last: bool = field(init=False)
    history: History = field(init=False)
    early: EarlyStopping = field(init=False)
    best: dict = field(init=False)

    def __post_init__(self) -> None:
        config = self.config
        torch.manual_seed(config.seed)
        self.model = build_model(config.architecture, self.in_channels, len(self.classes),
                                 config.dropout)
        self.gen = torch.Generator().manual_seed(config.seed + 1)
        self.channels_last = config.channels_last and _is_2d(self.model)
        self.history = History(self.files["history"])
        self.best = {"epoch": None, "score": None, "val_loss": None, "val_accuracy": None}
        self.early = EarlyStopping(self._monitored, mode="max", patience=config.patience)

    def _monitored(self, record: dict) -> tuple[float, ...] | None:
        """Return the epoch's score (larger is better), ``None`` without validation."""
        if record["val_loss"] is None:
            return None
        return _score(self.config, record["val_loss"], record["val_accuracy"])

    def _place_model(self) -> None:
        """Move the model to the training device (channels-last for 2-D) and make Adam."""
        self.model.to(self.config.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.config.lr,
                                    eps=self.config.adam_eps)
        self.sched = _make_scheduler(self.config, self.opt)

    def start(self) -> None:
        """Start fresh, or resume from ``last.pt`` after its last finished epoch.

        Temporary files that a killed run's atomic writes left are removed first (the
        folder is locked while training).
        """
        remove_temporaries(self.files["last"].parent)
        last = Checkpoint(self.files["last"])
        if not last.exists():
            if self.config.init_norm:
                init_input_norm(self.model, self.x)
            self._place_model()
            for stale in (self.files["best"], self.files["history"], self.files["old_history"]):
                stale.unlink(missing_ok=True)
            return
        state = _load_resume_state(last)
        _check_resume(state, self.config, self.classes, _n_samples(self.x),
                      _n_samples(self.val_x), self.in_channels, last.path)
        _check_best(state, self.files["best"])
        self._place_model()
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.sched is not None:
            self.sched.load_state_dict(state["scheduler"])
        set_rng_states(state, data_rng=self.gen)
        self.best = dict(state["best"])
        self.early.best = None if self.best["score"] is None else tuple(self.best["score"])
        self.early.since_best = int(state["since_best"])
        self.history.resume(state["history"])  # in case it lagged, or is of the old format
        self.files["old_history"].unlink(missing_ok=True)

    def step(self, index: int) -> dict:
        """Train epoch ``index + 1``, validate when due, step the schedule; return its record."""
        config, epoch = self.config, index + 1
        lr = float(self.opt.param_groups[0]["lr"])
        loss, acc = _train_epoch(self.model, self.opt, self.x, self.y, config, self.gen,
                                 self.channels_last, epoch, self.points[0])
        record: dict[str, Any] = {"epoch": epoch, "loss": loss, "accuracy": acc,
                                  "val_loss": None, "val_accuracy": None, "lr": lr}
        if _n_samples(self.val_x) and (epoch % config.val_every == 0 or epoch == config.epochs):
            probs = _view_probabilities(self.model, self.val_x, 256, symmetrize=False)[0]
            labels = torch.from_numpy(self.val_y)
            record["val_loss"] = _mean_nll(probs, labels)
            record["val_accuracy"] = float((probs.argmax(dim=1) == labels).float().mean())
        if self.sched is not None:
            if config.schedule != "plateau":
                self.sched.step()
            elif record["val_loss"] is not None:
                self.sched.step(record["val_loss"])
        if not _finite_weights(self.model):
            raise SimulationError(f"training diverged in epoch {epoch}: the weights are "
                                  "no longer finite; nothing of this epoch was saved")
        return record

    def end_step(self, index: int, record: dict, reason: str | None) -> None:
        """Save ``best.pt`` (when improved) and ``last.pt``, then append the history."""
        epoch, config = index + 1, self.config
        if self.early.improved:
            self.best = {"epoch": epoch, "score": list(self.early.best),
                         "val_loss": record["val_loss"], "val_accuracy": record["val_accuracy"]}
            save_model(self.files["best"], self.model, self.classes,
                       {"epoch": epoch, "val_loss": record["val_loss"],
                        "val_accuracy": record["val_accuracy"], "config": config.to_dict(),
                        **self.data_meta})
        Checkpoint(self.files["last"]).save({
            "format": _STATE_FORMAT, "epoch": epoch, "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            **rng_states(data_rng=self.gen), "history": [*self.history.records, record],
            "best": self.best, "since_best": self.early.since_best,
            "config": config.to_dict(), "classes": self.classes,
            "n_train": _n_samples(self.x), "n_val": _n_samples(self.val_x),
            "in_channels": self.in_channels,
        })
        self.history.append(record)  # after last.pt: a history line is never without it


def _train_loop(training: _Training, progress: bool, on_epoch_end, tqdm) -> dict:
    """Run ``training`` on the shared :class:`~rdlab.training_loop.Loop`; return the summary."""
    training.start()
    config, history = training.config, training.history
    bar = tqdm(total=config.epochs, initial=len(history), desc="train", unit="epoch",
               disable=not progress)

    def end_step(index: int, record: dict, reason: str | None) -> None:
        training.end_step(index, record, reason)
        bar.update(1)
        val_acc = record["val_accuracy"]
        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.3f}",
                        val_acc="-" if val_acc is None else f"{val_acc:.3f}",
                        lr=f"{record['lr']:.1e}")
        if on_epoch_end is not None:
            on_epoch_end(dict(record))

    # the history is appended by ``training.end_step``, after ``last.pt`` is written
    loop = Loop(training.step, config.epochs, None, training.early,
                TimeBudget(config.time_budget_s, history.total("seconds")), end_step)
    try:
        reason = loop.run(len(history))
    finally:
        bar.close()
        history.close()
    best_path = training.files["best"]
    if not best_path.exists() and _n_samples(training.val_x) == 0:
        save_model(best_path, training.model, training.classes,
                   {"epoch": len(history), "config": config.to_dict(), **training.data_meta})
    best = training.best
    return {"out_dir": str(best_path.parent), "epochs_run": len(history),
            "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
            "best_val_loss": best["val_loss"], "stop_reason": reason,
            "train_seconds": history.total("seconds"), "history": history.records}
