"""Concentration time series for reaction discovery: generation (§4), noise, files.

Layout: ``concentrations`` and ``derivatives`` are ``(sample, time, species)`` — one sample per
initial condition — with optional ``temperatures`` ``(sample,)`` in K. Every sample has the
same number of times, but each may have its own times (``times`` is then
``(sample, time)``). On disk: a zarr store (xarray, dims ``sample, time, species``) or a long
CSV with one row per (sample, time); see :mod:`rdlab.discover.data_files`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rdlab.discover.mechanism import Mechanism
from rdlab.errors import ParameterError
from rdlab.simulate import ode
from rdlab.system import System

__all__ = ["ReactionData", "generate", "load", "save", "split", "trajectories"]

#: Concentrations are clipped to this floor before logarithms (as the reference does).
CONCENTRATION_FLOOR = 1e-30
#: Concentrations down to ``-NEGATIVE_TOLERANCE`` (solver round-off) are read as the floor;
#: anything more negative is refused.
NEGATIVE_TOLERANCE = 1e-8


def _check_times(times, n: int, n_t: int) -> np.ndarray:
    """Return ``times`` as ``(n_t,)`` (one grid for all samples) or ``(n, n_t)``.

    Finite and strictly increasing within each sample, else :class:`ParameterError` naming
    the sample.
    """
    t = np.asarray(times, dtype=float)
    if t.ndim == 2 and t.shape[0] == n and n > 0 and np.all(t == t[:1]):
        t = t[0]
    if t.ndim <= 1:
        t = t.reshape(-1)
        if t.size != n_t:
            raise ParameterError(f"{t.size} times for {n_t} time points")
    elif t.shape != (n, n_t):
        raise ParameterError(f"times must be ({n_t},) or (samples, times) = ({n}, {n_t}), "
                             f"got shape {t.shape}")
    rows = np.broadcast_to(t, (n, n_t)) if n else t.reshape(1, -1)
    if not np.all(np.isfinite(rows)):
        s, i = np.argwhere(~np.isfinite(rows))[0]
        raise ParameterError(f"time {i} of sample {s} is {rows[s, i]}")
    steps = np.diff(rows, axis=1)
    if np.any(steps <= 0):
        s, i = np.argwhere(steps <= 0)[0]
        what = "repeats" if steps[s, i] == 0 else "comes after"
        raise ParameterError(f"times of sample {s} must be strictly increasing: time "
                             f"{rows[s, i + 1]!r} (index {i + 1}) {what} {rows[s, i]!r}")
    return t


def _time(t: np.ndarray, s: int, i: int) -> float:
    """Return time ``i`` of sample ``s`` as a float."""
    return float(t[i] if t.ndim == 1 else t[s, i])


@dataclass(frozen=True)
class ReactionData:
    """Time series of ``n_samples`` initial conditions.

    Parameters
    ----------
    species : tuple of str
        Names, length ``n_s``.
    times : numpy.ndarray
        ``(n_t,)`` sampling times shared by every sample, or ``(n_samples, n_t)`` when each
        sample has its own (any unit; rates come out per that unit). Strictly increasing
        within each sample. Rows that are all equal are stored as one ``(n_t,)`` grid;
        :attr:`sample_times` always gives ``(n_samples, n_t)``.
    concentrations : numpy.ndarray
        ``(n_samples, n_t, n_s)``, ≥ 0.
    derivatives : numpy.ndarray or None, optional
        ``(n_samples, n_t, n_s)`` d(concentration)/dt, or ``None`` when only concentrations
        were measured (estimate them with :mod:`rdlab.discover.derivatives`).
    temperatures : numpy.ndarray or None, optional
        ``(n_samples,)`` in K, or ``None``.

    Raises
    ------
    ParameterError
        For arrays of the wrong shape, non-finite or negative concentrations, non-finite
        derivatives, bad times, or temperatures that are not one positive value per sample.
    """

    species: tuple[str, ...]
    times: np.ndarray
    concentrations: np.ndarray
    derivatives: np.ndarray | None = None
    temperatures: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Check the shapes and values."""
        c = np.asarray(self.concentrations, dtype=float)
        if c.ndim != 3:
            raise ParameterError(f"concentrations must be (sample, time, species), got shape "
                                 f"{c.shape}")
        n, n_t, n_s = c.shape
        if n_s != len(self.species):
            raise ParameterError(f"concentrations have {n_s} species columns, names are "
                                 f"{list(self.species)}")
        t = _check_times(self.times, n, n_t)
        bad = ~np.isfinite(c)
        if bad.any():
            s, i, k = np.argwhere(bad)[0]
            raise ParameterError(f"concentration of {self.species[k]} in sample {s} at time "
                                 f"{_time(t, s, i)} is {c[s, i, k]}")
        if np.any(c < -NEGATIVE_TOLERANCE):
            s, i, k = np.argwhere(c < -NEGATIVE_TOLERANCE)[0]
            raise ParameterError(f"negative concentration {c[s, i, k]:g} of "
                                 f"{self.species[k]} (sample {s}, time {_time(t, s, i)})")
        object.__setattr__(self, "species", tuple(self.species))
        object.__setattr__(self, "times", t)
        object.__setattr__(self, "concentrations", np.maximum(c, CONCENTRATION_FLOOR))
        if self.derivatives is not None:
            d = np.asarray(self.derivatives, dtype=float)
            if d.shape != c.shape:
                raise ParameterError(f"derivatives have shape {d.shape}, concentrations "
                                     f"{c.shape}")
            if not np.all(np.isfinite(d)):
                s, i, k = np.argwhere(~np.isfinite(d))[0]
                raise ParameterError(f"derivative of {self.species[k]} in sample {s} at time "
                                     f"{_time(t, s, i)} is {d[s, i, k]}")
            object.__setattr__(self, "derivatives", d)
        if self.temperatures is not None:
            T = np.asarray(self.temperatures, dtype=float).reshape(-1)
            if T.size != n:
                raise ParameterError(f"{T.size} temperatures for {n} samples")
            if np.any(~np.isfinite(T)) or np.any(T <= 0):
                raise ParameterError(f"temperatures must be positive (K), got {T}")
            object.__setattr__(self, "temperatures", T)

    @property
    def n_samples(self) -> int:
        """Number of samples (initial conditions)."""
        return self.concentrations.shape[0]

    @property
    def shared_times(self) -> bool:
        """True when every sample has the same times (``times`` is ``(n_t,)``)."""
        return self.times.ndim == 1

    @property
    def sample_times(self) -> np.ndarray:
        """``(n_samples, n_t)``: the times of each sample (a read-only view)."""
        return np.broadcast_to(self.times, self.concentrations.shape[:2])

    def points(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Return the data flattened over samples and times.

        Returns
        -------
        u : numpy.ndarray
            Concentrations ``(N, n_s)``.
        du : numpy.ndarray or None
            Derivatives ``(N, n_s)``.
        T : numpy.ndarray or None
            Temperatures ``(N,)``.
        """
        n, n_t, n_s = self.concentrations.shape
        u = self.concentrations.reshape(-1, n_s)
        du = None if self.derivatives is None else self.derivatives.reshape(-1, n_s)
        T = None if self.temperatures is None else np.repeat(self.temperatures, n_t)
        return u, du, T

    def without_derivatives(self) -> ReactionData:
        """Return the same measurements without derivative columns (concentrations only).

        Returns
        -------
        ReactionData
            A copy whose ``derivatives`` is ``None`` (what a kinetic measurement has).
        """
        return replace(self, derivatives=None)

    def with_noise(self, level: float, seed: int = 0, kind: str = "gaussian",
                   on: str = "concentrations") -> ReactionData:
        """Return a copy with multiplicative noise ``x·(1 + level·ξ)``, ξ drawn per entry.

        ``on="concentrations"`` (default: what a measurement has) perturbs the
        concentrations, clipped at 0; derivatives already present are kept as they were (the
        exact rates of the noise-free states) — estimate them from the noisy concentrations
        instead with :func:`rdlab.discover.derivatives.estimate` after this.
        ``on="derivatives"`` perturbs the derivatives only (the paper's §4 noise test).

        Parameters
        ----------
        level : float
            The noise level, ≥ 0.
        seed : int, default 0
            Seed of the draws.
        kind : {"gaussian", "uniform"}
            ξ ~ N(0, 1) (``"gaussian"``) or ξ ~ U(−1, 1) (``"uniform"``, the reference code's).
        on : {"concentrations", "derivatives"}
            What the noise is put on.

        Returns
        -------
        ReactionData
            The noisy copy.

        Raises
        ------
        ParameterError
            For a negative level, an unknown kind or target, or derivative noise on data
            without derivatives.
        """
        if on not in ("concentrations", "derivatives"):
            raise ParameterError(f"noise goes on 'concentrations' or 'derivatives', got {on!r}")
        if on == "derivatives" and self.derivatives is None:
            raise ParameterError("these data have no derivatives to add noise to")
        if not np.isfinite(level) or level < 0:
            raise ParameterError(f"noise level must be ≥ 0, got {level!r}")
        rng = np.random.default_rng(seed)
        values = self.concentrations if on == "concentrations" else self.derivatives
        if kind == "gaussian":
            xi = rng.standard_normal(values.shape)
        elif kind == "uniform":
            xi = rng.uniform(-1.0, 1.0, values.shape)
        else:
            raise ParameterError(f"noise kind must be 'gaussian' or 'uniform', got {kind!r}")
        noisy = values * (1.0 + level * xi)
        if on == "derivatives":
            return replace(self, derivatives=noisy)
        return replace(self, concentrations=np.maximum(noisy, 0.0))


def _rates_per_sample(mech: Mechanism, net_columns: list[tuple[int, int]],
                      temperatures: np.ndarray | None, n: int) -> np.ndarray:
    """Return the rate constant of each directed reaction for each sample ``(n, n_columns)``."""
    kf, kr = mech.rates_at(temperatures if temperatures is not None
                           else mech.reference_temperature)
    kf = np.broadcast_to(kf, (n, mech.n_reactions))
    kr = np.broadcast_to(kr, (n, mech.n_reactions))
    cols = [kf[:, i] if direction == 0 else kr[:, i] for i, direction in net_columns]
    return np.stack(cols, axis=1)


def generate(mechanism: Mechanism, n_samples: int = 100,
             times: np.ndarray | None = None, seed: int = 1,
             temperature_range: tuple[float, float] | None = None,
             method: str = "LSODA", rtol: float = 1e-9, atol: float = 1e-12) -> ReactionData:
    """Make data as in §4.

    ``n_samples`` initial conditions with every species ~ U[0, 1) are solved by a stiff
    solver (analytic Jacobian) at tight tolerance and reported at ``times``. Derivatives are
    the exact right-hand side at the reported states, so the pairs are consistent whatever
    the tolerance (it only decides how close the states are to the true trajectory).
    Arrhenius mechanisms draw one temperature ~ U(temperature_range) per sample.

    Parameters
    ----------
    mechanism : Mechanism
        The true mechanism.
    n_samples : int, default 100
        Number of initial conditions, ≥ 1.
    times : numpy.ndarray or None, optional
        Reporting times ``(n_t,)``, or ``(n_samples, n_t)``: each sample reported at its own
        times (default 0, 0.1, …, 1.0: 11 points).
    seed : int, default 1
        Seed of the initial conditions and temperatures.
    temperature_range : tuple of float or None, optional
        ``(low, high)`` in K; needed for Arrhenius mechanisms.
    method : str, default "LSODA"
        Any solver of :mod:`rdlab.simulate.ode` (the paper uses Radau; LSODA is 2–5× faster
        here).
    rtol, atol : float, default 1e-9, 1e-12
        Solver tolerances.

    Returns
    -------
    ReactionData
        Concentrations, exact derivatives and (Arrhenius) temperatures.

    Raises
    ------
    ParameterError
        For ``n_samples`` < 1, times with another number of rows, or an Arrhenius mechanism
        without ``temperature_range``.
    """
    if n_samples < 1:
        raise ParameterError(f"n_samples must be ≥ 1, got {n_samples}")
    t = np.linspace(0.0, 1.0, 11) if times is None else np.asarray(times, dtype=float)
    if t.ndim == 2 and t.shape[0] != n_samples:
        raise ParameterError(f"times have {t.shape[0]} rows for {n_samples} samples")
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0.0, 1.0, (n_samples, mechanism.n_species))
    T = None
    if mechanism.arrhenius is not None:
        if temperature_range is None:
            raise ParameterError("an Arrhenius mechanism needs a temperature_range (K)")
        T = rng.uniform(*temperature_range, n_samples)
    solve = dict(method=method, rtol=rtol, atol=atol)
    if t.ndim == 2:  # one integration per sample, each on its own times
        pairs = [trajectories(mechanism, x0[s:s + 1], t[s], None if T is None else T[s:s + 1],
                              **solve) for s in range(n_samples)]
        states = np.concatenate([p[0] for p in pairs])
        derivs = np.concatenate([p[1] for p in pairs])
    else:
        states, derivs = trajectories(mechanism, x0, t, T, **solve)
    return ReactionData(mechanism.species, t, states, derivs, T)


def trajectories(mechanism: Mechanism, initial: np.ndarray, times: np.ndarray,
                 temperatures: np.ndarray | float | None = None, *, method: str = "LSODA",
                 rtol: float = 1e-9, atol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Integrate ``mechanism`` from ``initial`` and report it at ``times``.

    Parameters
    ----------
    mechanism : Mechanism
        The mechanism.
    initial : numpy.ndarray
        Initial concentrations ``(n, n_s)``.
    times : numpy.ndarray
        Reporting times ``(n_t,)`` or ``(n, n_t)``.
    temperatures : numpy.ndarray or float or None, optional
        Scalar or ``(n,)`` K, for Arrhenius mechanisms.
    method : str, default "LSODA"
        A solver of :mod:`rdlab.simulate.ode`.
    rtol, atol : float, default 1e-9, 1e-12
        Solver tolerances.

    Returns
    -------
    concentrations, derivatives : numpy.ndarray
        Each ``(n, n_t, n_s)``.

    Notes
    -----
    A mechanism that is no reaction network (:meth:`Mechanism.is_physical` false: a best
    guess with non-integer rows or negative products) is integrated through its own
    :meth:`Mechanism.rhs` with scipy's ``method``, so its trajectories can still be drawn.
    """
    x0 = np.atleast_2d(np.asarray(initial, dtype=float))
    n = x0.shape[0]
    t = np.asarray(times, dtype=float)
    if mechanism.n_reactions == 0:  # nothing reacts: every species stays where it starts
        states = np.repeat(x0[:, None, :], t.size, axis=1)
        return states, np.zeros_like(states)
    T = None if temperatures is None else np.broadcast_to(
        np.asarray(temperatures, dtype=float), (n,))
    if not mechanism.is_physical():
        return _integrate_rhs(mechanism, x0, t, T, method, rtol, atol)
    # every direction becomes a column, zero rates included, so columns are predictable
    columns = [(i, d) for i in range(mechanism.n_reactions)
               for d in ((0,) if mechanism.orders is not None else (0, 1))]
    net = _network_all_directions(mechanism)
    system = System.build(net, rates=_rates_per_sample(mechanism, columns, T, n))
    states, derivs = ode.solve(system, x0, t, method=method, rtol=rtol, atol=atol)
    return np.transpose(states, (1, 0, 2)), np.transpose(derivs, (1, 0, 2))


def _integrate_rhs(mechanism: Mechanism, x0: np.ndarray, t: np.ndarray,
                   T: np.ndarray | None, method: str, rtol: float, atol: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Integrate ``mechanism.rhs`` from each row of ``x0`` (no reaction network needed)."""
    from scipy.integrate import solve_ivp

    n, n_s = x0.shape
    rows = np.broadcast_to(t, (n, t.shape[-1]))
    states = np.zeros((n, rows.shape[1], n_s))
    for s in range(n):
        T_s = None if T is None else T[s]

        def f(_, y, T_s=T_s):
            return mechanism.rhs(y[None], T_s)[0]

        sol = solve_ivp(f, (rows[s, 0], rows[s, -1]), x0[s], method=method, t_eval=rows[s],
                        rtol=rtol, atol=atol)
        if not sol.success:
            raise ParameterError(f"the mechanism could not be integrated from sample {s}: "
                                 f"{sol.message}")
        states[s] = sol.y.T
    derivs = np.stack([mechanism.rhs(states[s], None if T is None else T[s])
                       for s in range(n)])
    return states, derivs


def _network_all_directions(mech: Mechanism):
    """Return the mechanism's directed reactions with every direction present.

    Rate 1 is a placeholder; actual rates come per sample.
    """
    unit = Mechanism(mech.species, mech.V, np.ones(mech.n_reactions),
                     np.zeros(mech.n_reactions) if mech.orders is not None
                     else np.ones(mech.n_reactions), mech.orders)
    return unit.to_network()


def split(n_points: int, fraction: float = 0.8, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Split ``n_points`` points randomly into training and validation, 4:1 by default.

    Shuffled over all (sample, time) points, as the reference does.

    Parameters
    ----------
    n_points : int
        Number of points.
    fraction : float, default 0.8
        Training fraction, in (0, 1).
    seed : int, default 1
        Seed of the shuffle.

    Returns
    -------
    train, validation : numpy.ndarray
        Point indices.

    Raises
    ------
    ParameterError
        For a fraction outside (0, 1), or too few points to split.
    """
    if not 0 < fraction < 1:
        raise ParameterError(f"train fraction must be in (0, 1), got {fraction!r}")
    order = np.random.default_rng(seed).permutation(n_points)
    n_train = int(round(fraction * n_points))
    if n_train < 1 or n_train >= n_points:
        raise ParameterError(f"{n_points} points are too few to split {fraction:g} : "
                             f"{1 - fraction:g}")
    return np.sort(order[:n_train]), np.sort(order[n_train:])


# ---------------------------------------------------------------------------- files
def save(data: ReactionData, path: str | Path) -> Path:
    """Write ``data`` to ``*.zarr`` or ``*.csv`` (see :func:`rdlab.discover.data_files.save`).

    Parameters
    ----------
    data : ReactionData
        The data.
    path : str or Path
        The file or store.

    Returns
    -------
    Path
        The path written.
    """
    from rdlab.discover.data_files import save as save_file

    return save_file(data, path)


def load(path: str | Path) -> ReactionData:
    """Read a CSV file or zarr store (see :func:`rdlab.discover.data_files.load`).

    Parameters
    ----------
    path : str or Path
        The file or store.

    Returns
    -------
    ReactionData
        The data.

    Raises
    ------
    DataError
        Naming what is wrong, for anything else or a damaged file.
    """
    from rdlab.discover.data_files import load as load_file

    return load_file(path)
