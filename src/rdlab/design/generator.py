"""Generator of initial conditions ``X_0 = G(z)`` and the encoder ``ẑ = E(X)``.

After Dense-RDN appendix A.4 and the public code's ``simple_generator_model`` /
``simple_encoder_model``.

Generator
---------
``z`` is a binary vector ``(B, z_bits)``; the network sees ``(z − ½)·2 ∈ {−1, 1}`` as a
``(B, z_bits, 1, 1)`` map. ``log2(size)`` blocks of ``ConvTranspose2d(kernel 4, stride 2,
padding 1)`` double the map from 1×1 to ``size × size``; their widths are
``int(linspace(256, S, n_blocks))`` ([256, 205, 155, 105, 55, 5] for 64² and S = 5). Every block
but the last is convolution → normalisation → tanh. The last block has no normalisation
(as in DCGAN and the paper) and maps to concentrations

    c = s·(tanh(h) + 1)/2 ∈ [0, s],    s = clamp(scale, 0.1, c_max),  c_max = 10,

with ``scale`` an optimisable scalar (initial 1). This is exactly the public code's
``x = (tanh(h) + 1)·s − 1`` in its ``x = 2c − 1`` units, with ``s ∈ [0.1, 10]``. The patch is
then (optionally) placed in a larger domain and blurred by a fixed periodic Gaussian
(σ = 1, a 3×3 window like the code's by default), so that diffusion and the diffusive
entropy production never see a discontinuity. Blurring is a convex combination of cells,
so the output stays in ``[0, c_max]`` whatever the weights.

Normalisation (``norm``):

* ``"layer"`` (default): ``GroupNorm(1, C)``, per sample over channels × positions. The code's
  BatchNorm is always in training mode, so its ``G(z)`` depends on the other samples of the
  batch (a sample generated alone differs from the same ``z`` in a batch); a per-sample norm
  removes that and behaves the same in ``train()`` and ``eval()``. Instance norm is not used
  because the first block's maps are 2×2 (4 values per channel; a 1×1 map would normalise to
  0), whereas the layer norm pools ≥ 256·4 values there.
* ``"batch"``: the code's choice, ``BatchNorm2d(eps=0.1)`` always on batch statistics
  (``track_running_stats=False``), so ``G(z)`` depends on the batch in every mode.
* ``"none"``.

``pad_to=(H, W)``: the ``size × size`` patch is placed in an ``H × W`` domain at rows
``(H − size)//2 …`` and columns ``(W − size)//2 …`` (centred; :attr:`Generator.patch_slices`
gives the place, which a replication loss needs) and surrounded by zero concentration —
the code pads with −1 in its x units, i.e. c = 0 — *before* the blur, so the blur (periodic
over the whole domain) also smooths the patch's edge into the surroundings (the generated
field spreads one cell beyond the patch). ``learn_background=True`` replaces the zero
surroundings by an optimisable per-species concentration in ``[0, c_max]`` (initial 0; the
code's learnable offset, here confined to the surroundings so the bound holds).

Encoder
-------
The mirror image: input ``2c − 1`` (the code's units), ``log2(size)`` ``Conv2d(kernel 4,
stride 2, padding 1)`` layers with widths ``S → 55 → 105 → 155 → 205 → 256 → z_bits`` (64²,
S = 5), each but the last followed by tanh then normalisation; the last is linear and its
``(B, z_bits)`` output are the logits of the bits (the code's extra ``h/2 + ½`` is dropped).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rdlab.errors import ParameterError
from rdlab.simulate.torch_engine import torch_dtype

__all__ = ["NORMS", "Encoder", "Generator", "gaussian_kernel", "periodic_blur", "sample_z",
           "widths"]

NORMS = ("layer", "batch", "none")
SCALE_MIN = 0.1


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or value < minimum):
        raise ParameterError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return int(value)


def _n_blocks(size) -> int:
    size = _positive_int(size, "size", 2)
    n = int(round(math.log2(size)))
    if 2**n != size:
        raise ParameterError(f"size must be a power of two (2, 4, …, 64, …), got {size!r}")
    return n


def widths(n_species: int, size: int, width: int = 256) -> list[int]:
    """Return the output widths of the generator's blocks.

    ``int(linspace(width, S, log2(size)))``, the last always ``S`` ([256, 205, 155, 105, 55,
    5] for S = 5, 64²).

    Parameters
    ----------
    n_species : int
        ``S``, the output channels.
    size : int
        Side of the generated patch, a power of two.
    width : int, default 256
        Width of the first block.

    Returns
    -------
    list of int
        One width per block.

    Raises
    ------
    ParameterError
        When ``size`` is not a power of two.
    """
    n = _n_blocks(size)
    w = [int(v) for v in np.linspace(width, n_species, n)]
    w[-1] = n_species
    return w


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels, eps=0.1, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ParameterError(f"unknown normalisation {kind!r}; choose from {list(NORMS)}")


def gaussian_kernel(sigma: float, radius: int, dtype=torch.float32) -> torch.Tensor:
    """Return normalised 1-D Gaussian weights ``exp(−k²/2σ²)`` for ``k = −radius … radius``.

    Parameters
    ----------
    sigma : float
        Width σ, > 0.
    radius : int
        Half-width of the window.
    dtype : torch.dtype, default torch.float32
        Of the weights.

    Returns
    -------
    torch.Tensor
        ``(2·radius + 1,)`` weights summing to 1.

    Raises
    ------
    ParameterError
        For ``sigma`` ≤ 0.
    """
    if not np.isfinite(sigma) or sigma <= 0:
        raise ParameterError(f"blur sigma must be > 0, got {sigma!r}")
    radius = _positive_int(radius, "blur radius")
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    return (w / w.sum()).to(torch_dtype(dtype))


def periodic_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve periodically with the symmetric 1-D ``kernel`` along y and along x (separable).

    Parameters
    ----------
    x : torch.Tensor
        Fields ``(B, C, y, x)``.
    kernel : torch.Tensor
        Symmetric 1-D weights, e.g. from :func:`gaussian_kernel`.

    Returns
    -------
    torch.Tensor
        The blurred fields, the shape of ``x``.

    Raises
    ------
    ParameterError
        When the window does not fit the domain.
    """
    r = (kernel.numel() - 1) // 2
    if r >= min(x.shape[-2:]):
        raise ParameterError(f"blur window of radius {r} does not fit a "
                             f"{tuple(x.shape[-2:])} domain")
    C = x.shape[1]
    k = kernel.to(dtype=x.dtype, device=x.device)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="circular"), k.view(1, 1, -1, 1).expand(C, 1, -1, 1),
                 groups=C)
    return F.conv2d(F.pad(x, (r, r, 0, 0), mode="circular"),
                    k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)


def sample_z(batch: int, z_bits: int, generator: torch.Generator | None = None,
             dtype=torch.float32) -> torch.Tensor:
    """Draw random bits, each 0 or 1 with probability ½, on the device of ``generator``.

    Parameters
    ----------
    batch : int
        Number of samples.
    z_bits : int
        Bits per sample.
    generator : torch.Generator or None, optional
        The source of the draws.
    dtype : torch.dtype, default torch.float32
        Of the result.

    Returns
    -------
    torch.Tensor
        ``(batch, z_bits)`` in {0, 1}, as floats.
    """
    batch = _positive_int(batch, "batch")
    z_bits = _positive_int(z_bits, "z_bits")
    device = generator.device if generator is not None else "cpu"
    bits = torch.randint(0, 2, (batch, z_bits), generator=generator, device=device)
    return bits.to(torch_dtype(dtype))


class Generator(nn.Module):
    """``G(z)``: binary ``z (B, z_bits)`` → concentrations ``(B, S, H, W)`` in ``[0, c_max]``.

    See the module docstring for the architecture and the choices.

    Parameters
    ----------
    n_species : int
        ``S``, output channels.
    size : int
        Side of the generated patch, a power of two.
    z_bits : int
        Length of ``z``.
    norm : {"layer", "batch", "none"}
        ``"layer"`` (default, batch-independent), ``"batch"`` (the code's) or ``"none"``.
    width : int, default 256
        Width of the first block.
    c_max : float, default 10.0
        Upper bound of the concentrations.
    scale : float, default 1.0
        Initial ``s`` (so ``c ∈ [0, 1]`` at the start).
    pad_to : tuple of int or None, optional
        ``(H, W)`` of the domain around the patch (``None``: the patch is the domain).
    learn_background : bool, default False
        Optimise the concentration around the patch (else 0).
    blur_sigma : float, default 1.0
        σ of the fixed periodic Gaussian blur.
    blur_radius : int, default 1
        Radius of the blur window (1 = 3×3).
    dtype : torch.dtype, default torch.float32
        Of the weights.

    Raises
    ------
    ParameterError
        For an unknown ``norm``, a bad ``size``, ``c_max`` or ``scale``, a ``pad_to`` that is
        not ``(H, W)`` or smaller than the patch, or a blur that does not fit the domain.
    """

    def __init__(self, n_species: int, size: int, z_bits: int, *, norm: str = "layer",
                 width: int = 256, c_max: float = 10.0, scale: float = 1.0,
                 pad_to: tuple[int, int] | None = None, learn_background: bool = False,
                 blur_sigma: float = 1.0, blur_radius: int = 1, dtype=torch.float32) -> None:
        super().__init__()
        self.n_species = _positive_int(n_species, "n_species")
        self.z_bits = _positive_int(z_bits, "z_bits")
        self.size = int(size)
        self.widths = widths(self.n_species, size, _positive_int(width, "width"))
        if norm not in NORMS:
            raise ParameterError(f"unknown normalisation {norm!r}; choose from {list(NORMS)}")
        self.norm = norm
        if not np.isfinite(c_max) or c_max <= SCALE_MIN:
            raise ParameterError(f"c_max must be a number > {SCALE_MIN}, got {c_max!r}")
        if not np.isfinite(scale) or not SCALE_MIN <= scale <= c_max:
            raise ParameterError(f"scale must lie in [{SCALE_MIN}, {c_max}], got {scale!r}")
        self.c_max = float(c_max)
        dtype = torch_dtype(dtype)
        blocks = []
        c_in = self.z_bits
        for i, c_out in enumerate(self.widths):
            conv = nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)
            last = i == len(self.widths) - 1
            blocks.append(conv if last else nn.Sequential(conv, _norm(norm, c_out), nn.Tanh()))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        if pad_to is None:
            self.domain = (self.size, self.size)
        else:
            try:
                H, W = (int(v) for v in pad_to)
            except (TypeError, ValueError):
                raise ParameterError(f"pad_to must be (H, W), got {pad_to!r}") from None
            if H < self.size or W < self.size:
                raise ParameterError(f"pad_to {pad_to!r} is smaller than the {self.size}² "
                                     "patch")
            self.domain = (H, W)
        H, W = self.domain
        y0, x0 = (H - self.size) // 2, (W - self.size) // 2
        self.patch_slices = (slice(y0, y0 + self.size), slice(x0, x0 + self.size))
        self.background = (nn.Parameter(torch.zeros(self.n_species)) if learn_background
                           else None)
        kernel = gaussian_kernel(blur_sigma, blur_radius, torch.float64)  # cast by .to below
        self.register_buffer("blur_kernel", kernel)
        if blur_radius >= min(self.domain):
            raise ParameterError(f"blur radius {blur_radius} does not fit the "
                                 f"{self.domain} domain")
        self.to(dtype)

    @property
    def effective_scale(self) -> torch.Tensor:
        """``s = clamp(scale, 0.1, c_max)``: the patch's concentrations lie in ``[0, s]``."""
        return self.scale.clamp(SCALE_MIN, self.c_max)

    def patch(self, z: torch.Tensor) -> torch.Tensor:
        """Return the generated patch before placement and blur.

        Parameters
        ----------
        z : torch.Tensor
            Bits ``(B, z_bits)``.

        Returns
        -------
        torch.Tensor
            ``(B, S, size, size)``.

        Raises
        ------
        ParameterError
            When ``z`` is not ``(batch, z_bits)``.
        """
        if z.ndim != 2 or z.shape[1] != self.z_bits:
            raise ParameterError(f"z has shape {tuple(z.shape)}; expected (batch, "
                                 f"{self.z_bits})")
        x = ((z - 0.5) * 2.0).to(self.scale.dtype).reshape(z.shape[0], self.z_bits, 1, 1)
        h = self.blocks(x)
        return self.effective_scale * 0.5 * (torch.tanh(h) + 1.0)

    def unblurred(self, z: torch.Tensor) -> torch.Tensor:
        """Return the patch placed in the domain with its surroundings, before the blur.

        The output is ``periodic_blur(unblurred(z), blur_kernel)``.

        Parameters
        ----------
        z : torch.Tensor
            Bits ``(B, z_bits)``.

        Returns
        -------
        torch.Tensor
            ``(B, S, H, W)``.
        """
        c = self.patch(z)
        if self.domain == (self.size, self.size):
            return c
        H, W = self.domain
        ys, xs = self.patch_slices
        pad = (xs.start, W - xs.stop, ys.start, H - ys.stop)
        out = F.pad(c, pad)
        if self.background is not None:
            inside = F.pad(torch.ones_like(c[:1, :1]), pad)
            b = self.background.clamp(0.0, self.c_max).view(1, -1, 1, 1)
            out = out + (1.0 - inside) * b
        return out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return the initial concentrations for bits ``z``.

        Parameters
        ----------
        z : torch.Tensor
            Bits ``(B, z_bits)``.

        Returns
        -------
        torch.Tensor
            Concentrations ``(B, S, H, W)`` in ``[0, c_max]``.
        """
        return periodic_blur(self.unblurred(z), self.blur_kernel)

    @torch.no_grad()
    def project_(self) -> Generator:
        """Clamp ``scale`` to ``[0.1, c_max]`` and the background to ``[0, c_max]`` in place.

        The forward pass clamps anyway; this keeps the stored values meaningful.

        Returns
        -------
        Generator
            ``self``.
        """
        self.scale.clamp_(SCALE_MIN, self.c_max)
        if self.background is not None:
            self.background.clamp_(0.0, self.c_max)
        return self


class Encoder(nn.Module):
    """``E(X)``: concentrations ``(B, S, size, size)`` → logits of the bits ``(B, z_bits)``.

    See the module docstring.

    Parameters
    ----------
    n_species : int
        ``S``, input channels.
    size : int
        Side of the input patch, a power of two.
    z_bits : int
        Number of bits.
    norm : {"layer", "batch", "none"}
        The normalisation, as in :class:`Generator`.
    width : int, default 256
        Width of the last hidden layer (the generator's first block).
    dtype : torch.dtype, default torch.float32
        Of the weights.

    Raises
    ------
    ParameterError
        For an unknown ``norm`` or a bad ``size``.
    """

    def __init__(self, n_species: int, size: int, z_bits: int, *, norm: str = "layer",
                 width: int = 256, dtype=torch.float32) -> None:
        super().__init__()
        self.n_species = _positive_int(n_species, "n_species")
        self.z_bits = _positive_int(z_bits, "z_bits")
        self.size = int(size)
        gen = widths(self.n_species, size, _positive_int(width, "width"))
        if norm not in NORMS:
            raise ParameterError(f"unknown normalisation {norm!r}; choose from {list(NORMS)}")
        self.norm = norm
        self.channels = [self.n_species, *gen[-2::-1], self.z_bits]
        layers = []
        for i, (c_in, c_out) in enumerate(zip(self.channels[:-1], self.channels[1:])):
            conv = nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1)
            last = i == len(self.channels) - 2
            layers.append(conv if last else nn.Sequential(conv, nn.Tanh(), _norm(norm, c_out)))
        self.layers = nn.Sequential(*layers)
        self.to(torch_dtype(dtype))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Return the logits of the bits that generated ``X``.

        Parameters
        ----------
        X : torch.Tensor
            Concentrations ``(B, S, size, size)``.

        Returns
        -------
        torch.Tensor
            Logits ``(B, z_bits)``.

        Raises
        ------
        ParameterError
            When ``X`` has another shape.
        """
        if X.ndim != 4 or tuple(X.shape[1:]) != (self.n_species, self.size, self.size):
            raise ParameterError(f"encoder input has shape {tuple(X.shape)}; expected (batch, "
                                 f"{self.n_species}, {self.size}, {self.size})")
        return self.layers(2.0 * X - 1.0).reshape(X.shape[0], self.z_bits)
