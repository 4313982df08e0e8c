"""The pattern classifiers of the Gray–Scott CNN paper (Table II) in PyTorch, and their files.

Array layout everywhere is ``(batch, channel, y, x)``: float32 images of the activator U
(dimensionless concentration, in [0, 1]); one channel per snapshot time. Both networks return
raw class **logits** ``(batch, n_classes)``; apply a softmax for probabilities (the training
loss is cross-entropy on logits, as in the reference after its commit 96bbd6f).

* :class:`PatternCNN` — the 2-D network of Table II: 3 snapshots as channels, 277,723
  parameters as Keras counts them (277,717 trainable tensors + 6 buffers in PyTorch).
* :class:`PatternCNN3D` — the reference's 3-D variant: 10 snapshots as a depth axis,
  76,531 Keras parameters (76,529 + 2 buffers in PyTorch).

Differences from Keras, all deliberate: PyTorch's BatchNorm momentum is the weight of the *new*
batch (``momentum=0.01`` is Keras's ``0.99``) and its running variance is the unbiased one;
weights are Glorot-uniform and biases zero as in Keras.

:func:`save_model` / :func:`load_model` store a network as a small ``torch.save`` dict
(weights, architecture, class list, free-form metadata) that loads with
``weights_only=True``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rdlab.atomic import atomic_torch_save
from rdlab.errors import DataError, ParameterError

#: Keras's ``BatchNormalization`` momentum 0.99, written as PyTorch's complementary weight.
BN_MOMENTUM = 0.01
#: Keras's ``BatchNormalization`` epsilon.
BN_EPS = 1e-3
#: Smallest square image :class:`PatternCNN` accepts: 45 px leaves 1×1 after the last pooling
#: (128 → 63 → 61 → 30 → 28 → 14 → 12 → 6 for the paper's images).
MIN_SIZE_2D = 45
#: Smallest image for :class:`PatternCNN3D`: 41 px leaves 1×1 (128 → 63 → 31 → 29 → 14 → 12 → 6).
MIN_SIZE_3D = 41
#: Fewest frames :class:`PatternCNN3D` accepts (10 → 5 → 2 along the depth).
MIN_FRAMES_3D = 4

_FORMAT = "rdlab-pattern-cnn"
_FORMAT_VERSION = 1


def _glorot_init(module: nn.Module) -> None:
    """Apply Keras's defaults: Glorot-uniform kernels, zero biases (BatchNorm keeps γ=1, β=0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_dropout(value: float) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ParameterError(f"dropout must lie in [0, 1), got {value!r}")
    return float(value)


class PatternCNN(nn.Module):
    """The 2-D pattern classifier of Table II.

    Input ``(batch, in_channels, y, x)`` float32 (the paper: 3 snapshots of U, 128×128; any
    size ≥ :data:`MIN_SIZE_2D` works thanks to the global max pooling); output logits
    ``(batch, n_classes)``.

    Layers: BatchNorm → Conv 32 3×3 stride 2 (valid) ReLU → Conv 64 3×3 ReLU → MaxPool 2 →
    Conv 128 3×3 ReLU → MaxPool 2 → Conv 128 3×3 ReLU → MaxPool 2 → global max → Dense 256
    ReLU → Dropout → Dense n_classes.

    Parameters
    ----------
    in_channels : int, default 3
        Number of input channels (snapshots of U); at least 1.
    n_classes : int, default 15
        Number of output classes; at least 2.
    dropout : float, default 0.15
        Dropout rate before the last dense layer, in [0, 1).

    Raises
    ------
    ParameterError
        When ``in_channels`` or ``n_classes`` is not an integer at or above its minimum, or
        ``dropout`` lies outside [0, 1).
    """

    architecture = "2d"

    def __init__(self, in_channels: int = 3, n_classes: int = 15, dropout: float = 0.15):
        super().__init__()
        self.in_channels = _check_int("in_channels", in_channels, 1)
        self.n_classes = _check_int("n_classes", n_classes, 2)
        self.dropout = _check_dropout(dropout)
        self.norm = nn.BatchNorm2d(in_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(128, 128, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Linear(128, 256), nn.ReLU(inplace=True), nn.Dropout(self.dropout),
            nn.Linear(256, n_classes),
        )
        _glorot_init(self)

    def hparams(self) -> dict[str, Any]:
        """Return the constructor arguments (what :func:`save_model` stores to rebuild the network).

        Returns
        -------
        dict
            ``in_channels``, ``n_classes`` and ``dropout``.
        """
        return {"in_channels": self.in_channels, "n_classes": self.n_classes,
                "dropout": self.dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images to class logits.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(batch, in_channels, y, x)``, each side at least :data:`MIN_SIZE_2D`.

        Returns
        -------
        torch.Tensor
            Logits ``(batch, n_classes)``.

        Raises
        ------
        ParameterError
            When ``x`` has the wrong number of dimensions or channels, or is too small.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ParameterError(f"PatternCNN expects (batch, {self.in_channels}, y, x), got "
                                 f"shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE_2D:
            raise ParameterError(f"PatternCNN needs images of at least {MIN_SIZE_2D}×"
                                 f"{MIN_SIZE_2D} pixels, got {tuple(x.shape[-2:])}")
        h = self.features(self.norm(x))
        h = torch.amax(h, dim=(-2, -1))  # global max pooling → (batch, 128)
        return self.head(h)


class PatternCNN3D(nn.Module):
    """The reference's 3-D variant: the snapshots form a depth axis.

    Input ``(batch, n_frames, y, x)`` (the layout of the data stores, treated as
    ``(batch, 1, n_frames, y, x)``) or ``(batch, 1, n_frames, y, x)``; the reference uses 10
    frames of 128×128. Output logits ``(batch, n_classes)``.

    Layers (kernels as (depth, y, x), Keras's (3,3,2) is (2,3,3) here): BatchNorm (1 channel)
    → Conv3d 32 (2,3,3) stride 2 ReLU → MaxPool3d 2 → Conv3d 64 (1,3,3) ReLU → MaxPool
    (1,2,2) → Conv3d 64 (1,3,3) ReLU → MaxPool (1,2,2) → global max → Dense 256 ReLU →
    Dropout → Dense n_classes. The reference ends in a softmax; this returns logits.

    ``in_channels`` is the number of frames, so that data pipelines written for the
    ``(batch, channel, y, x)`` layout treat both networks alike.

    Parameters
    ----------
    n_frames : int, default 10
        Number of snapshots along the depth axis; at least :data:`MIN_FRAMES_3D`.
    n_classes : int, default 15
        Number of output classes; at least 2.
    dropout : float, default 0.10
        Dropout rate before the last dense layer, in [0, 1).

    Raises
    ------
    ParameterError
        When ``n_frames`` or ``n_classes`` is not an integer at or above its minimum, or
        ``dropout`` lies outside [0, 1).
    """

    architecture = "3d"

    def __init__(self, n_frames: int = 10, n_classes: int = 15, dropout: float = 0.10):
        super().__init__()
        self.in_channels = _check_int("n_frames", n_frames, MIN_FRAMES_3D)
        self.n_classes = _check_int("n_classes", n_classes, 2)
        self.dropout = _check_dropout(dropout)
        self.norm = nn.BatchNorm3d(1, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.features = nn.Sequential(
            nn.Conv3d(1, 32, (2, 3, 3), stride=2), nn.ReLU(inplace=True), nn.MaxPool3d(2),
            nn.Conv3d(32, 64, (1, 3, 3)), nn.ReLU(inplace=True), nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(64, 64, (1, 3, 3)), nn.ReLU(inplace=True), nn.MaxPool3d((1, 2, 2)),
        )
        self.head = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(inplace=True), nn.Dropout(self.dropout),
            nn.Linear(256, n_classes),
        )
        _glorot_init(self)
        # oneDNN runs these Conv3d layers about 2× faster (training and inference, CPU) with
        # the kernels in channels-last-3d layout; copies into the weights (load_state_dict,
        # .to(device)) keep it. Results equal the default layout up to rounding.
        self.to(memory_format=torch.channels_last_3d)

    @property
    def n_frames(self) -> int:
        """Number of snapshots along the depth axis (same as ``in_channels``)."""
        return self.in_channels

    def hparams(self) -> dict[str, Any]:
        """Return the constructor arguments (what :func:`save_model` stores to rebuild the network).

        Returns
        -------
        dict
            ``n_frames``, ``n_classes`` and ``dropout``.
        """
        return {"n_frames": self.in_channels, "n_classes": self.n_classes,
                "dropout": self.dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map frame stacks to class logits.

        Parameters
        ----------
        x : torch.Tensor
            Frames ``(batch, n_frames, y, x)`` or ``(batch, 1, n_frames, y, x)``, each side at
            least :data:`MIN_SIZE_3D`.

        Returns
        -------
        torch.Tensor
            Logits ``(batch, n_classes)``.

        Raises
        ------
        ParameterError
            When ``x`` has the wrong shape or number of frames, or is too small.
        """
        if x.ndim == 4:
            x = x.unsqueeze(1)
        if x.ndim != 5 or x.shape[1] != 1 or x.shape[2] != self.in_channels:
            raise ParameterError(f"PatternCNN3D expects (batch, {self.in_channels}, y, x) or "
                                 f"(batch, 1, {self.in_channels}, y, x), got shape "
                                 f"{tuple(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE_3D:
            raise ParameterError(f"PatternCNN3D needs images of at least {MIN_SIZE_3D}×"
                                 f"{MIN_SIZE_3D} pixels, got {tuple(x.shape[-2:])}")
        h = self.features(self.norm(x))
        h = torch.amax(h, dim=(-3, -2, -1))  # global max pooling → (batch, 64)
        return self.head(h)


_ARCHITECTURES: dict[str, type[nn.Module]] = {"2d": PatternCNN, "3d": PatternCNN3D}


def build_model(architecture: str, in_channels: int, n_classes: int,
                dropout: float | None = None) -> nn.Module:
    """Build a fresh network.

    Parameters
    ----------
    architecture : {"2d", "3d"}
        ``"2d"`` for :class:`PatternCNN` (``in_channels`` snapshots as channels) or ``"3d"``
        for :class:`PatternCNN3D` (``in_channels`` frames).
    in_channels : int
        Number of snapshots (channels or frames).
    n_classes : int
        Number of output classes.
    dropout : float or None, optional
        Dropout rate; ``None`` keeps the reference's rate (0.15 for 2-D, 0.10 for 3-D).

    Returns
    -------
    torch.nn.Module
        The untrained network.

    Raises
    ------
    ParameterError
        When ``architecture`` is not ``"2d"`` or ``"3d"``.
    """
    if architecture not in _ARCHITECTURES:
        raise ParameterError(f"architecture must be one of {sorted(_ARCHITECTURES)}, got "
                             f"{architecture!r}")
    kwargs: dict[str, Any] = {} if dropout is None else {"dropout": dropout}
    return _ARCHITECTURES[architecture](in_channels, n_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Count the trainable parameter values.

    This is PyTorch's count: buffers such as BatchNorm's running mean/variance are not
    parameters here, whereas Keras counts them.

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    int
        Number of trainable parameter values.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _json_safe(meta: dict) -> str:
    def default(obj: Any) -> Any:
        if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
            return obj.item()
        if hasattr(obj, "tolist") and callable(obj.tolist):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise ParameterError(f"meta value {obj!r} of type {type(obj).__name__} is not "
                             "JSON-serialisable")

    if not isinstance(meta, dict):
        raise ParameterError(f"meta must be a dict, got {type(meta).__name__}")
    return json.dumps(meta, default=default, ensure_ascii=False)


def save_model(path: str | Path, model: nn.Module, classes: list[str],
               meta: dict | None = None) -> Path:
    """Write a network with its class list and metadata.

    The file is written atomically (a temporary file is renamed). It is a ``torch.save``
    dict: ``format``, ``version``, ``architecture`` (``"2d"``/``"3d"``), ``in_channels``,
    ``n_classes``, ``hparams``, ``classes``, ``meta`` (a JSON string) and ``state_dict`` (CPU
    tensors, ~1.1 MB for the 2-D network).

    Parameters
    ----------
    path : str or Path
        Destination file; its folder is created.
    model : torch.nn.Module
        A :class:`PatternCNN` or :class:`PatternCNN3D`.
    classes : list of str
        Class names, one per output of the model.
    meta : dict or None, optional
        JSON-serialisable free-form metadata.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ParameterError
        When ``model`` is neither network, the number of classes does not match its outputs,
        or ``meta`` is not a JSON-serialisable dict.
    """
    arch = getattr(model, "architecture", None)
    if arch not in _ARCHITECTURES or not isinstance(model, _ARCHITECTURES[arch]):
        raise ParameterError(f"save_model saves PatternCNN or PatternCNN3D, got "
                             f"{type(model).__name__}")
    classes = [str(c) for c in classes]
    if len(classes) != model.n_classes:
        raise ParameterError(f"{len(classes)} class names given for a model with "
                             f"{model.n_classes} outputs")
    payload = {
        "format": _FORMAT, "version": _FORMAT_VERSION, "architecture": arch,
        "in_channels": int(model.in_channels), "n_classes": int(model.n_classes),
        "hparams": model.hparams(), "classes": classes, "meta": _json_safe(meta or {}),
        "state_dict": {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
                       for k, v in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_torch_save(payload, path)


def load_model(path: str | Path) -> tuple[nn.Module, list[str], dict]:
    """Read a file of :func:`save_model`.

    Parameters
    ----------
    path : str or Path
        The model file.

    Returns
    -------
    model : torch.nn.Module
        The network, in eval mode on the CPU.
    classes : list of str
        The class names.
    meta : dict
        The stored metadata.

    Raises
    ------
    DataError
        Naming the path when the file is missing, a folder, unreadable (truncated, garbage),
        not a model file of this format, or holds non-finite weights.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"model file {str(path)!r} is a folder, not a model file")
    if not path.is_file():
        raise DataError(f"model file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt / truncated / foreign pickle
        text = str(exc).strip().splitlines()
        text = text[0].split(". ")[0] if text else ""  # torch's notes would fill a screen
        raise DataError(f"model file {str(path)!r} is not a readable torch file "
                        f"({type(exc).__name__}{': ' + text if text else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise DataError(f"model file {str(path)!r} is not an rdlab pattern-CNN file")
    if payload.get("version", 0) > _FORMAT_VERSION:
        raise DataError(f"model file {str(path)!r} has format version "
                        f"{payload.get('version')}, newer than this rdlab "
                        f"({_FORMAT_VERSION})")
    try:
        model = _ARCHITECTURES[payload["architecture"]](**payload["hparams"])
        model.load_state_dict(payload["state_dict"])
        classes = list(payload["classes"])
        meta = json.loads(payload["meta"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        raise DataError(f"model file {str(path)!r} is damaged ({type(exc).__name__}"
                        f"{': ' + text[0] if text else ''})") from None
    if not all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()
               if t.is_floating_point()):
        raise DataError(f"model file {str(path)!r} holds NaN or infinite weights")
    model.eval()
    return model, classes, meta
