"""Batched, seeded data augmentation for periodic pattern images.

Works on float tensors ``(batch, channel, y, x)`` (all channels of a sample get the same
transform; for the 3-D network the 10 frames are the channels, as in the reference). The
random draws come from a caller's :class:`torch.Generator`, so a run is reproducible and its
state can be checkpointed.

What one call of :func:`augment` does to each sample, mirroring the reference's Keras
``ImageDataGenerator`` (rotation_range 360, zoom_range 0.2, shear_range 0.2, horizontal flip,
``fill_mode='wrap'``, an intensity factor as preprocessing function) with one deliberate
change, the translation:

* rotation by an angle uniform in ±``rotation`` degrees;
* shear by an angle uniform in ±``shear`` **degrees** (Keras's shear_range is in degrees, so
  the reference's 0.2 is a tiny shear);
* zoom: independent factors uniform in [1 − zoom, 1 + zoom] along x and y;
* horizontal flip (mirror along x) with probability ``flip_probability``;
* translation: by default a **periodic translation by a uniform random integer offset over the
  whole image** (the patterns live on a torus, so every offset is an equally valid sample);
  ``legacy_shift=True`` instead reproduces the reference's continuous ±1-pixel shift (Keras
  reads ``width_shift_range=1.0`` as pixels);
* an intensity factor ``1 + intensity·(u − 0.5)``, u uniform in [0, 1), applied after the
  geometric transform (the reference's ``randscale``: ×[0.95, 1.05)).

Resampling (:func:`affine_periodic`). The affine map sends each output pixel centre p to the
source point ``s = c + A·(p − c) + t`` with c the image centre ((size − 1)/2, so rotations by
multiples of 90° and flips map the pixel grid onto itself). Source coordinates are wrapped
modulo the image size (periodic, Keras's ``'wrap'``); the image is padded circularly by one
pixel on the far side of each axis and sampled bilinearly with
:func:`torch.nn.functional.grid_sample` (``align_corners=True``), so the interpolation between
the last column and the first is the periodic one. Maps that send pixel centres to pixel
centres (integer translations, flips, quarter turns) are applied exactly by index gathering
instead, without interpolation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rdlab.errors import ParameterError
from rdlab.settings import Settings


@dataclass
class AugmentConfig(Settings):
    """Settings of :func:`augment` (defaults: the reference's, with a periodic translation).

    Read and written as any rdlab config (:class:`rdlab.settings.Settings`).

    Parameters
    ----------
    rotation : float, default 360.0
        Largest |rotation angle| in degrees (360 draws from ±360°, i.e. any angle).
    flip_probability : float, default 0.5
        Probability of a horizontal flip (mirror along x), in [0, 1].
    zoom : float, default 0.2
        Zoom factors are uniform in [1 − zoom, 1 + zoom], independently along x and y; < 1.
    shear : float, default 0.2
        Largest |shear angle| in degrees (the reference's Keras 0.2 is 0.2°); < 90.
    intensity : float, default 0.1
        The intensity factor is 1 + intensity·(u − 0.5) with u uniform in [0, 1); < 2.
    translate : bool, default True
        Periodic translation by a uniform random integer offset (whole image).
    legacy_shift : bool, default False
        Instead, the reference's continuous shift uniform in ±1 pixel per axis (takes
        precedence over ``translate``).
    enabled : bool, default True
        ``False`` turns :func:`augment` into the identity (draws nothing).

    Raises
    ------
    ParameterError
        When a field has the wrong type, a magnitude is negative, or a value lies outside the
        bounds above.
    """

    rotation: float = 360.0
    flip_probability: float = 0.5
    zoom: float = 0.2
    shear: float = 0.2
    intensity: float = 0.1
    translate: bool = True
    legacy_shift: bool = False
    enabled: bool = True

    _what = "AugmentConfig"

    def __post_init__(self) -> None:
        """Check the field types and ranges."""
        self.check_types()
        for name in ("rotation", "zoom", "shear", "intensity"):
            v = getattr(self, name)
            if v < 0:
                raise ParameterError(f"AugmentConfig.{name} must be a finite number >= 0, "
                                     f"got {v!r}")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ParameterError("AugmentConfig.flip_probability must lie in [0, 1], got "
                                 f"{self.flip_probability!r}")
        if self.zoom >= 1.0:
            raise ParameterError(f"AugmentConfig.zoom must be < 1, got {self.zoom!r}")
        if self.shear >= 90.0:
            raise ParameterError(f"AugmentConfig.shear must be < 90 degrees, got {self.shear!r}")
        if self.intensity >= 2.0:
            raise ParameterError(f"AugmentConfig.intensity must be < 2, got {self.intensity!r}")

    @classmethod
    def off(cls) -> AugmentConfig:
        """Return a configuration that changes nothing.

        Returns
        -------
        AugmentConfig
            A configuration with ``enabled=False``.
        """
        return cls(enabled=False)


@dataclass
class AugmentParams:
    """Per-sample transform parameters, each a float32 tensor ``(batch,)``.

    Parameters
    ----------
    angle : torch.Tensor
        Rotation in degrees (positive turns the image content counter-clockwise as displayed
        with y downwards, i.e. ``torch.rot90(img, 1, dims=(-2, -1))`` for 90°).
    shear : torch.Tensor
        Shear angle in degrees.
    zoom_x, zoom_y : torch.Tensor
        Zoom factors (>1 shows a larger part of the pattern, i.e. shrinks it).
    flip : torch.Tensor
        1.0 to mirror along x, else 0.0.
    shift_x, shift_y : torch.Tensor
        Translation of the content in pixels (+x moves it right, +y down).
    scale : torch.Tensor
        Intensity factor.
    """

    angle: torch.Tensor
    shear: torch.Tensor
    zoom_x: torch.Tensor
    zoom_y: torch.Tensor
    flip: torch.Tensor
    shift_x: torch.Tensor
    shift_y: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def identity(cls, batch: int) -> AugmentParams:
        """Return parameters that leave every sample unchanged.

        Parameters
        ----------
        batch : int
            Number of samples.

        Returns
        -------
        AugmentParams
            Zero angle, shear, flip and shifts; unit zooms and scale.
        """
        z, o = torch.zeros(batch), torch.ones(batch)
        return cls(angle=z.clone(), shear=z.clone(), zoom_x=o.clone(), zoom_y=o.clone(),
                   flip=z.clone(), shift_x=z.clone(), shift_y=z.clone(), scale=o.clone())


def sample_params(batch: int, height: int, width: int, config: AugmentConfig,
                  generator: torch.Generator) -> AugmentParams:
    """Draw the random transform of ``batch`` samples of ``height``×``width`` pixels.

    The draws are made in a fixed order (angle, shear, zoom x, zoom y, flip, shift x, shift y,
    intensity), each for the whole batch, so the generator's state after the call depends only
    on ``batch`` and ``config``.

    Parameters
    ----------
    batch : int
        Number of samples.
    height, width : int
        Image size in pixels.
    config : AugmentConfig
        The ranges to draw from.
    generator : torch.Generator
        The source of the random draws (CPU).

    Returns
    -------
    AugmentParams
        The per-sample parameters.
    """
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(batch, generator=generator)

    p = AugmentParams.identity(batch)
    if not config.enabled:
        return p
    p.angle = uniform(-config.rotation, config.rotation)
    p.shear = uniform(-config.shear, config.shear)
    p.zoom_x = uniform(1.0 - config.zoom, 1.0 + config.zoom)
    p.zoom_y = uniform(1.0 - config.zoom, 1.0 + config.zoom)
    p.flip = (torch.rand(batch, generator=generator) < config.flip_probability).float()
    if config.legacy_shift:
        p.shift_x = uniform(-1.0, 1.0)
        p.shift_y = uniform(-1.0, 1.0)
    elif config.translate:
        p.shift_x = torch.randint(0, width, (batch,), generator=generator).float()
        p.shift_y = torch.randint(0, height, (batch,), generator=generator).float()
    p.scale = 1.0 + config.intensity * (torch.rand(batch, generator=generator) - 0.5)
    return p


def _source_maps(params: AugmentParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the map from output to source coordinates: ``A (batch, 2, 2)`` and ``t (batch, 2)``.

    Both are in (x, y) order, float64.
    """
    th = torch.deg2rad(params.angle.double())
    sh = torch.deg2rad(params.shear.double())
    cos, sin = torch.cos(th), torch.sin(th)
    one, zero = torch.ones_like(th), torch.zeros_like(th)

    def mat(a, b, c, d):
        return torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], -2)

    # Output→source: an image rotated counter-clockwise (as displayed, y down) is sampled at
    # source points turned the other way.
    rot = mat(cos, -sin, sin, cos)
    shear = mat(one, -torch.sin(sh), zero, torch.cos(sh))
    zoom = mat(params.zoom_x.double(), zero, zero, params.zoom_y.double())
    flip = mat(1.0 - 2.0 * params.flip.double(), zero, zero, one)
    a = rot @ shear @ zoom @ flip
    # a content shift by +d samples the source at p − d
    t = -torch.stack([params.shift_x.double(), params.shift_y.double()], -1)
    return a, t


def _pixel_exact(a: torch.Tensor, t: torch.Tensor, centre: torch.Tensor,
                 tol: float = 1e-6) -> bool:
    """Return whether every map sends integer pixel positions to integer pixel positions.

    An affine map does iff it sends (0,0), (1,0) and (0,1) to integer points.
    """
    origin = centre - a @ centre + t  # image of pixel (0, 0)
    pts = torch.cat([origin.unsqueeze(-1), origin.unsqueeze(-1) + a], dim=-1)
    return bool(((pts - pts.round()).abs() <= tol).all())


_local = threading.local()


def _workspace(b: int, c: int, h: int, w: int, dtype: torch.dtype,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return per-thread scratch tensors (padded image, sampling grid), reused between calls.

    Reused for calls of the same shape: allocating ~30 MB afresh costs more page faults than
    the arithmetic.
    """
    key = (b, c, h, w, dtype, device)
    if getattr(_local, "key", None) != key:
        _local.key = key
        _local.pad = torch.empty(b, c, h + 1, w + 1, dtype=dtype, device=device)
        _local.grid = torch.empty(b, h, w, 2, dtype=dtype, device=device)
    return _local.pad, _local.grid


def affine_periodic(x: torch.Tensor, params: AugmentParams,
                    interpolate: bool | None = None) -> torch.Tensor:
    """Apply the geometric part of ``params`` (everything but ``scale``) with periodic boundaries.

    See the module docstring for the resampling.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(batch, channel, y, x)``.
    params : AugmentParams
        One transform per sample.
    interpolate : bool or None, optional
        ``None`` picks exact index gathering when every map sends pixel centres to pixel
        centres and bilinear resampling otherwise; ``True`` always resamples bilinearly;
        ``False`` requires an exact map.

    Returns
    -------
    torch.Tensor
        A new tensor of the same shape and dtype.

    Raises
    ------
    ParameterError
        When ``x`` is not 4-D, ``params`` holds a different number of samples, or
        ``interpolate=False`` is given for a map that is not exact.
    """
    if x.ndim != 4:
        raise ParameterError(f"augmentation expects (batch, channel, y, x), got shape "
                             f"{tuple(x.shape)}")
    b, c, h, w = x.shape
    if params.angle.shape != (b,):
        raise ParameterError(f"parameters for {tuple(params.angle.shape)} samples given for a "
                             f"batch of {b}")
    a, t = _source_maps(params)
    centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=torch.float64)
    # source = centre + A (p − centre) + t = A p + offset
    offset = centre - (a @ centre) + t  # (b, 2)
    ys = torch.arange(h, dtype=torch.float64)
    xs = torch.arange(w, dtype=torch.float64)
    exact = _pixel_exact(a, t, centre)
    if interpolate is False and not exact:
        raise ParameterError("interpolate=False needs maps that send pixel centres to pixel "
                             "centres (integer shifts, flips, quarter turns)")
    if exact and not interpolate:
        a_i = a.round().long()
        off_i = offset.round().long()
        xi = (a_i[:, 0, 0, None, None] * xs.long()[None, None, :]
              + a_i[:, 0, 1, None, None] * ys.long()[None, :, None] + off_i[:, 0, None, None])
        yi = (a_i[:, 1, 0, None, None] * xs.long()[None, None, :]
              + a_i[:, 1, 1, None, None] * ys.long()[None, :, None] + off_i[:, 1, None, None])
        index = (yi.remainder(h) * w + xi.remainder(w)).reshape(b, 1, h * w).to(x.device)
        flat = x.reshape(b, c, h * w)
        return torch.gather(flat, 2, index.expand(b, c, h * w)).reshape(b, c, h, w)
    pad_buf, grid = _workspace(b, c, h, w, x.dtype, x.device)
    # Normalised source coordinates of the padded (size+1)-pixel image, where −1 ↦ pixel 0
    # and 1 ↦ pixel size (the circular copy of pixel 0): u = s·2/size wrapped into [0, 2),
    # minus 1. u is affine in the output pixel (p_x, p_y): u = L_x p_x + L_y p_y + u_0.
    scale = torch.tensor([2.0 / w, 2.0 / h], dtype=torch.float64)
    lin = (a * scale[None, :, None]).to(x.device, x.dtype)  # (b, 2 [u_x, u_y], 2 [p_x, p_y])
    u0 = (offset * scale[None, :]).to(x.device, x.dtype)
    xs32 = torch.arange(w, dtype=x.dtype, device=x.device)
    ys32 = torch.arange(h, dtype=x.dtype, device=x.device)
    for k in range(2):  # written in place into the cached grid (no large temporaries)
        along_x = lin[:, k, 0, None, None] * xs32[None, None, :]  # (b, 1, w)
        along_y = lin[:, k, 1, None, None] * ys32[None, :, None] + u0[:, k, None, None]
        torch.add(along_x, along_y, out=grid[..., k])
    grid.remainder_(2.0).sub_(1.0)
    pad_buf[:, :, :h, :w] = x
    pad_buf[:, :, :h, w] = x[:, :, :, 0]
    pad_buf[:, :, h, :] = pad_buf[:, :, 0, :]
    return F.grid_sample(pad_buf, grid, mode="bilinear", padding_mode="border",
                         align_corners=True)


def apply_params(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Apply the geometric transform followed by the intensity factor.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(batch, channel, y, x)``.
    params : AugmentParams
        One transform per sample.

    Returns
    -------
    torch.Tensor
        A new tensor of the same shape and dtype.
    """
    out = affine_periodic(x, params)  # a fresh tensor: scaled in place
    return out.mul_(params.scale.to(out.device, out.dtype)[:, None, None, None])


def augment(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly augment a batch.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(batch, channel, y, x)``, float, on any device.
    config : AugmentConfig
        What to draw.
    generator : torch.Generator
        The transforms are drawn on the CPU from it.

    Returns
    -------
    torch.Tensor
        A new tensor (``x`` itself when ``config.enabled`` is false).

    Raises
    ------
    ParameterError
        When ``x`` is not 4-D.
    """
    if not config.enabled:
        return x
    if x.ndim != 4:
        raise ParameterError(f"augmentation expects (batch, channel, y, x), got shape "
                             f"{tuple(x.shape)}")
    params = sample_params(x.shape[0], x.shape[2], x.shape[3], config, generator)
    return apply_params(x, params)
