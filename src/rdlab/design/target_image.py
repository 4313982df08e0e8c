"""The bundled target image: a portrait drawn from ellipses (made here, not a photograph).

The paper's target is a photograph of Ilya Prigogine; we ship no photograph. Instead
:func:`portrait` draws a stylised head and shoulders — face, hair, eyes, brows, nose, mouth,
collar — as a smooth grey-level image with structure at several scales (a large oval, small
dark eyes, thin lines), which is what makes a target demanding for a reaction–diffusion
pattern. ``python -m rdlab.design.target_image`` rewrites the shipped PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from rdlab.atomic import atomic_write

__all__ = ["portrait", "write_portrait"]


def _ellipse(y, x, cy, cx, ry, rx, angle=0.0):
    """Return the mask of the ellipse at (cy, cx), radii (ry, rx), rotated by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    u = ((x - cx) * c + (y - cy) * s) / rx
    v = (-(x - cx) * s + (y - cy) * c) / ry
    return u * u + v * v <= 1.0


def portrait(size: int = 256) -> np.ndarray:
    """Draw a grey-level portrait in [0, 1] (1 = bright).

    Parameters
    ----------
    size : int, default 256
        Side in pixels.

    Returns
    -------
    numpy.ndarray
        ``(size, size)``.
    """
    y, x = np.mgrid[0:1:size * 1j, 0:1:size * 1j]
    img = np.full((size, size), 0.15)  # dark background
    img[_ellipse(y, x, 1.05, 0.5, 0.33, 0.48)] = 0.45  # shoulders
    img[_ellipse(y, x, 0.85, 0.5, 0.12, 0.07)] = 0.9  # collar
    img[_ellipse(y, x, 0.78, 0.5, 0.1, 0.09)] = 0.7  # neck
    img[_ellipse(y, x, 0.42, 0.5, 0.31, 0.25)] = 0.3  # hair
    img[_ellipse(y, x, 0.47, 0.5, 0.28, 0.21)] = 0.85  # face
    for cx in (0.41, 0.59):
        img[_ellipse(y, x, 0.33, cx, 0.015, 0.06, 0.1 if cx < 0.5 else -0.1)] = 0.25  # brows
        img[_ellipse(y, x, 0.40, cx, 0.035, 0.055)] = 1.0  # eye whites
        img[_ellipse(y, x, 0.40, cx, 0.028, 0.028)] = 0.1  # pupils
    img[_ellipse(y, x, 0.50, 0.5, 0.08, 0.025)] = 0.7  # nose
    img[_ellipse(y, x, 0.62, 0.5, 0.03, 0.1)] = 0.35  # mouth
    img[_ellipse(y, x, 0.605, 0.5, 0.012, 0.09)] = 0.85  # upper lip line
    return np.clip(gaussian_filter(img, size / 256.0), 0.0, 1.0)


def write_portrait(path: str | Path, size: int = 256) -> Path:
    """Write :func:`portrait` as an 8-bit grey PNG (atomically).

    Parameters
    ----------
    path : str or Path
        The PNG file.
    size : int, default 256
        Side in pixels.

    Returns
    -------
    Path
        The path written.
    """
    image = Image.fromarray(np.round(portrait(size) * 255).astype(np.uint8), mode="L")
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


if __name__ == "__main__":
    write_portrait(Path(__file__).parent / "data" / "portrait.png")
