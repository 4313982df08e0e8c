"""Turn concentration fields into uint8 RGB with one colour scale for a whole series.

This holds the one decision every renderer shares — *what* to show:

* a single species through a colour map (``viridis`` by default) between fixed
  ``vmin``/``vmax`` (default: min/max over the whole series), or
* several species as colour: ``"rgb"`` (3 species straight to R, G, B) or ``"pca"``
  (top-3 principal components, :mod:`rdlab.viz.pca_rgb`), fitted once over the series.

``species_to_show`` accepts ``None`` (automatic: the one species of a 1-species system, the
species with the largest variance of a 2-species system, ``"rgb"`` for 3, ``"pca"`` for
more), a species name, a species index, ``"rgb"`` or ``"pca"``. A species named ``"pca"`` or
``"rgb"`` wins over the keyword.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rdlab.errors import ParameterError
from rdlab.viz.pca_rgb import PCAResult, apply_pca_rgb, fit_pca_rgb
from rdlab.viz.scaling import apply_colormap, finite_min_max, to_uint8, widen_if_flat

SpeciesChoice = str | int | None


@dataclass(frozen=True, eq=False)
class Colorized:
    """Rendered frames and the scale used.

    Parameters
    ----------
    rgb : numpy.ndarray
        uint8 ``(..., y, x, 3)``.
    mode : {"species", "rgb", "pca"}
        ``"species"`` (one species, colour-mapped), ``"rgb"`` or ``"pca"``.
    species : int or None
        Index of the species shown (``"species"`` mode), else ``None``.
    label : str
        Human-readable name of what is shown (species name, ``"PCA→RGB"``, ...).
    vmin, vmax : float or None
        Colour range (``"species"`` mode), else ``None``.
    cmap : str
        Colour map name (``"species"`` mode).
    pca : PCAResult or None
        The fitted mapping (``"rgb"``/``"pca"`` modes), else ``None``.
    """

    rgb: np.ndarray
    mode: str
    species: int | None
    label: str
    vmin: float | None
    vmax: float | None
    cmap: str
    pca: PCAResult | None


def species_label(index: int, species_names: Sequence[str] | None) -> str:
    """Return the name of species ``index`` (``"species 2"`` when no names are given).

    Parameters
    ----------
    index : int
        The species index.
    species_names : sequence of str or None
        The names.

    Returns
    -------
    str
        The name.
    """
    if species_names is not None and index < len(species_names):
        return str(species_names[index])
    return f"species {index}"


def resolve_choice(
    choice: SpeciesChoice,
    n_species: int,
    species_names: Sequence[str] | None = None,
    data: np.ndarray | None = None,
) -> tuple[str, int | None]:
    """Resolve ``species_to_show`` to ``(mode, species index or None)``.

    Parameters
    ----------
    choice : None, str or int
        ``None`` (automatic), a species name or index, ``"pca"`` or ``"rgb"``.
    n_species : int
        Number of species.
    species_names : sequence of str or None, optional
        Names along the species axis.
    data : numpy.ndarray or None, optional
        ``(..., species, y, x)``; only needed to pick the most variable species of a
        2-species system when ``choice`` is ``None``.

    Returns
    -------
    mode : {"species", "rgb", "pca"}
        What is shown.
    species : int or None
        The species index in ``"species"`` mode.

    Raises
    ------
    ParameterError
        For an unknown choice, name or index, names that do not match ``n_species``, or
        ``"rgb"`` with more than 3 species.
    """
    if species_names is not None and len(species_names) != n_species:
        raise ParameterError(
            f"{len(species_names)} species names given for data with {n_species} species"
        )
    if choice is None:
        if n_species == 1:
            return "species", 0
        if n_species == 2:
            if data is None:
                return "species", n_species - 1
            var = [_finite_var(np.take(data, s, axis=-3)) for s in range(n_species)]
            return "species", int(np.argmax(var))
        return ("rgb", None) if n_species == 3 else ("pca", None)
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
        if not -n_species <= choice < n_species:
            raise ParameterError(
                f"species index {choice} out of range for {n_species} species"
            )
        return "species", int(choice) % n_species
    if isinstance(choice, str):
        if species_names is not None and choice in species_names:
            return "species", list(species_names).index(choice)
        if choice == "pca":
            return "pca", None
        if choice == "rgb":
            if n_species > 3:
                raise ParameterError(
                    f"'rgb' shows at most 3 species, the data have {n_species}; use 'pca'"
                )
            return "rgb", None
        known = list(species_names) if species_names is not None else []
        raise ParameterError(
            f"unknown species {choice!r}; choose one of {known + ['pca', 'rgb']}"
            + ("" if species_names is not None else " (or pass species_names)")
        )
    raise ParameterError(
        f"species_to_show must be None, a species name or index, 'pca' or 'rgb'; got "
        f"{choice!r}"
    )


def _finite_var(values: np.ndarray) -> float:
    """Return the variance of the finite values (0 when there are none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.var()) if v.size else 0.0


def colorize(
    frames: np.ndarray,
    species_names: Sequence[str] | None = None,
    species_to_show: SpeciesChoice = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    pca: PCAResult | None = None,
) -> Colorized:
    """Render frames to RGB with one colour scale for all leading axes.

    One scale means no flicker over time, and comparable pictures across samples.

    Parameters
    ----------
    frames : numpy.ndarray
        Concentrations ``(..., species, y, x)``; at least ``(species, y, x)``.
    species_names : sequence of str or None, optional
        Names along the species axis (e.g. ``network.species``).
    species_to_show : None, str or int, optional
        See the module docstring.
    vmin, vmax : float or None, optional
        Fixed colour range for a single species (default: the finite min/max over all of
        ``frames``).
    cmap : str, default "viridis"
        Matplotlib colour map for a single species.
    pca : PCAResult or None, optional
        A mapping fitted earlier (e.g. on a whole trajectory) to reuse for
        ``"rgb"``/``"pca"``; default: fit on ``frames``.

    Returns
    -------
    Colorized
        uint8 RGB ``(..., y, x, 3)`` and the scale used.

    Raises
    ------
    ParameterError
        For frames of fewer than 3 dimensions or a bad ``species_to_show``.
    """
    arr = np.asarray(frames)
    if arr.ndim < 3:
        raise ParameterError(f"frames must have shape (..., species, y, x); got {arr.shape}")
    n_species = arr.shape[-3]
    mode, idx = resolve_choice(species_to_show, n_species, species_names, arr)
    if mode == "species":
        assert idx is not None
        values = np.take(arr, idx, axis=-3)
        lo, hi = finite_min_max(values)
        lo = lo if vmin is None else float(vmin)
        hi = hi if vmax is None else float(vmax)
        lo, hi = widen_if_flat(lo, hi) if hi <= lo else (lo, hi)
        rgb = apply_colormap(values, lo, hi, cmap)
        return Colorized(rgb, mode, idx, species_label(idx, species_names), lo, hi, cmap, None)
    if pca is None:
        pca = fit_pca_rgb(arr, method="direct" if mode == "rgb" else "pca")
    rgb = to_uint8(apply_pca_rgb(arr, pca))
    if pca.method == "pca":
        label = "PCA→RGB"
    else:
        names = [species_label(s, species_names) for s in range(n_species)]
        names = ["0"] * (3 - n_species) + names
        label = "(R, G, B) = (" + ", ".join(names) + ")"
    return Colorized(rgb, mode, None, label, None, None, cmap, pca)
