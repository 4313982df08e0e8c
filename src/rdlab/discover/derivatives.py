"""Time derivatives estimated from concentration time series, and the error this costs.

The method of §3 learns from pairs ``(u(t_n), u'(t_n))``; "realistically, often only
``u(t_n)`` is available, and the time derivatives could be approximated using numerical
differentiation". :func:`estimate` fills :attr:`ReactionData.derivatives` from the
concentrations, per sample and species along time:

``"fd"``
    Second-order finite differences on the actual (possibly non-uniform) times:
    ``numpy.gradient(..., edge_order=2)``; error ``O(Δt²)``.
``"spline"``
    Interpolating cubic spline (not-a-knot) through the samples, differentiated at the
    sample times; error ``O(Δt³)`` for smooth, noise-free data.
``"smoothing"``
    Penalised cubic smoothing spline (:func:`scipy.interpolate.make_smoothing_spline`) with
    ``lam = smoothing`` (``None``: chosen per series by generalised cross-validation), for
    noisy concentrations; needs at least 5 times.

:func:`derivative_error` reports the relative L2 error ``E = ‖est − exact‖ / ‖exact‖``
overall, per species and per time index, against data whose derivatives are known.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.interpolate import CubicSpline, make_smoothing_spline

from rdlab.discover.data import ReactionData
from rdlab.errors import ParameterError

__all__ = ["METHODS", "derivative_error", "estimate"]

#: Names accepted by :func:`estimate`.
METHODS = ("fd", "spline", "smoothing")

#: Fewest sample times a smoothing spline accepts (scipy's requirement).
_SMOOTHING_MIN_TIMES = 5


def estimate(data: ReactionData, method: str = "spline",
             smoothing: float | None = None) -> ReactionData:
    """Return a copy of ``data`` with ``derivatives`` estimated from the concentrations.

    Parameters
    ----------
    data : ReactionData
        Concentrations ``(n_samples, n_t, n_s)`` at ``times`` (shared ``(n_t,)`` or per
        sample ``(n_samples, n_t)``: each sample is differentiated on its own times); any
        derivatives already present are replaced.
    method : {"fd", "spline", "smoothing"}
        Differentiation scheme (see the module docstring).
    smoothing : float or None
        Only for ``method="smoothing"``: the penalty ``λ ≥ 0`` of the smoothing spline, in
        units of ``concentration² · time³`` (it weighs ``∫ (u'')² dt`` against the squared
        residuals); ``None`` picks it per series by generalised cross-validation.

    Returns
    -------
    ReactionData
        Same species, times, concentrations and temperatures; ``derivatives`` of shape
        ``(n_samples, n_t, n_s)`` in concentration per time unit.

    Raises
    ------
    ParameterError
        Unknown ``method`` (the message lists the choices); fewer than 3 times (5 for
        ``"smoothing"``); times not strictly increasing; ``smoothing`` given for another
        method, or negative / not finite.
    """
    if method not in METHODS:
        raise ParameterError(f"unknown derivative method {method!r}; choose one of "
                             f"{list(METHODS)}")
    times = np.asarray(data.sample_times, dtype=float)
    c = np.asarray(data.concentrations, dtype=float)
    n_t = times.shape[1]
    if n_t < 3:
        raise ParameterError(f"estimating derivatives needs at least 3 times, got {n_t}")
    steps = np.diff(times, axis=1)
    if np.any(steps <= 0):
        s, i = np.argwhere(steps <= 0)[0]
        raise ParameterError(f"times of sample {s} must be strictly increasing, got "
                             f"{times[s, i]!r} followed by {times[s, i + 1]!r} (index {i})")
    if smoothing is not None:
        if method != "smoothing":
            raise ParameterError(f"smoothing={smoothing!r} applies only to "
                                 f"method='smoothing', not {method!r}")
        if not np.isfinite(smoothing) or smoothing < 0:
            raise ParameterError(f"smoothing (λ) must be a finite number ≥ 0, got "
                                 f"{smoothing!r}")
    if method == "smoothing" and n_t < _SMOOTHING_MIN_TIMES:
        raise ParameterError(f"method 'smoothing' needs at least {_SMOOTHING_MIN_TIMES} "
                             f"times, got {n_t}")
    # each sample on its own times (samples need not share a grid)
    deriv = np.stack([_differentiate(times[s], c[s], method, smoothing)
                      for s in range(c.shape[0])])
    return replace(data, derivatives=np.asarray(deriv, dtype=float))


def _differentiate(t: np.ndarray, c: np.ndarray, method: str,
                   smoothing: float | None) -> np.ndarray:
    """Return dc/dt of one sample, ``c (n_t, n_s)`` at times ``t (n_t,)``."""
    if method == "fd":
        return np.gradient(c, t, axis=0, edge_order=2)
    if method == "spline":
        return CubicSpline(t, c, axis=0, bc_type="not-a-knot").derivative()(t)
    return np.stack([make_smoothing_spline(t, c[:, k], lam=smoothing).derivative()(t)
                     for k in range(c.shape[1])], axis=1)


def _relative(diff: np.ndarray, ref: np.ndarray) -> float:
    """Return ``‖diff‖ / ‖ref‖`` (2-norms over all entries).

    0 when both vanish, ``inf`` when only the reference does.
    """
    num = float(np.linalg.norm(diff))
    den = float(np.linalg.norm(ref))
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def derivative_error(estimated: ReactionData, exact: ReactionData) -> dict:
    """Return the relative L2 error ``E = ‖est − exact‖ / ‖exact‖`` of estimated derivatives.

    Parameters
    ----------
    estimated : ReactionData
        Data with estimated derivatives (e.g. from :func:`estimate`).
    exact : ReactionData
        The same series with exact derivatives (same species, times and shape).

    Returns
    -------
    dict
        ``"overall"``: float, ``E`` over every sample, time and species;
        ``"per_species"``: dict species name → float, ``E`` over samples and times;
        ``"per_time"``: ``numpy.ndarray (n_t,)``, ``E`` over samples and species at each
        time index (edges are usually the worst for ``"fd"`` and splines);
        ``"max_abs"``: float, largest absolute error, concentration per time unit.
        A reference that is exactly zero gives 0 if the estimate is too, ``inf`` if not.

    Raises
    ------
    ParameterError
        Either argument without derivatives, different species, times or shapes.
    """
    for name, d in (("estimated", estimated), ("exact", exact)):
        if d.derivatives is None:
            raise ParameterError(f"{name} data have no derivatives to compare")
    if tuple(estimated.species) != tuple(exact.species):
        raise ParameterError(f"species differ: estimated {list(estimated.species)}, exact "
                             f"{list(exact.species)}")
    if estimated.derivatives.shape != exact.derivatives.shape:
        raise ParameterError(f"shapes differ: estimated {estimated.derivatives.shape}, "
                             f"exact {exact.derivatives.shape}")
    if not np.allclose(estimated.sample_times, exact.sample_times, rtol=1e-12, atol=0.0):
        raise ParameterError(f"times differ: estimated {estimated.times}, exact "
                             f"{exact.times}")
    est = estimated.derivatives
    ref = exact.derivatives
    diff = est - ref
    per_species = {name: _relative(diff[:, :, k], ref[:, :, k])
                   for k, name in enumerate(exact.species)}
    per_time = np.array([_relative(diff[:, i, :], ref[:, i, :])
                         for i in range(ref.shape[1])])
    return {"overall": _relative(diff, ref), "per_species": per_species,
            "per_time": per_time, "max_abs": float(np.max(np.abs(diff)))}
