"""Saliency maps drawn over the patterns they explain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rdlab.errors import ParameterError

#: Opacity of the saliency overlay (the reference's 0.6).
OVERLAY_ALPHA = 0.6


def save_saliency_grid(path: str | Path, images: np.ndarray, maps: np.ndarray,
                       names: Sequence[str], columns: int = 4) -> Path:
    """Save one panel per class: the pattern in grey with its saliency map overlaid.

    The saliency is drawn with the jet colour map at :data:`OVERLAY_ALPHA`.

    Parameters
    ----------
    path : str or Path
        Output image.
    images : numpy.ndarray
        ``(n, y, x)``: the pattern ``images[i]`` of each class.
    maps : numpy.ndarray
        ``(n, y, x)``: its saliency ``maps[i]``, in [0, 1].
    names : sequence of str
        Panel titles, one per class.
    columns : int, default 4
        Panels per row.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        When images and maps differ in shape or there are not ``n`` names.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images, maps = np.asarray(images), np.asarray(maps)
    if images.ndim != 3 or images.shape != maps.shape or len(names) != images.shape[0]:
        raise ParameterError(f"need images and maps of equal shape (n, y, x) and n names, got "
                             f"{images.shape}, {maps.shape} and {len(names)} names")
    n = images.shape[0]
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.imshow(maps[i], cmap="jet", vmin=0, vmax=1, alpha=OVERLAY_ALPHA)
        ax.set_title(str(names[i]))
    fig.suptitle("gradient saliency of each class's logit")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
