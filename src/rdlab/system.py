"""A physical system: network + rate constants + flow drive + diffusion + grid.

The model every engine implements (``X`` has shape ``(batch, species, y, x)``)::

    dX/dt = S·v(X) + D∘∇²X + f·(x_feed − X)        v_r = k_r ∏_i X_i^{R_ir}

Parameters are stored per sample (a batch of parameter sets), so one ``System`` describes a
whole sweep: ``rates (batch, n_reactions)``, ``diffusion (batch, n_species)``, ``flow (batch,)``,
``feed (batch, n_species)``. ``grid=None`` is a well-mixed reactor (no diffusion term).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from rdlab.chemistry.network import ReactionNetwork
from rdlab.errors import NetworkError, ParameterError, StabilityError

#: 3×3 Laplacian stencils for unit spacing (multiply by 1/dx²). Both are periodic here.
STENCILS: dict[str, np.ndarray] = {
    "5-point": np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]),
    "9-point": np.array([[0.25, 0.5, 0.25], [0.5, -3.0, 0.5], [0.25, 0.5, 0.25]]),
}


def stencil_eigenvalue(stencil: str | np.ndarray, ky: np.ndarray, kx: np.ndarray
                       ) -> np.ndarray:
    """Return the eigenvalue (symbol) of a unit-spacing stencil for a Fourier mode.

    Parameters
    ----------
    stencil : str or numpy.ndarray
        A name of :data:`STENCILS` or a symmetric 3×3 array.
    ky, kx : numpy.ndarray
        Wavenumbers of the mode ``exp(i(ky·y + kx·x))``, in radians per cell; broadcast
        against each other.

    Returns
    -------
    numpy.ndarray
        The eigenvalue for each mode, shape of ``ky`` and ``kx`` broadcast.
    """
    w = STENCILS[stencil] if isinstance(stencil, str) else np.asarray(stencil, dtype=float)
    out = np.zeros(np.broadcast(ky, kx).shape)
    for a, b in itertools.product(range(3), range(3)):
        out = out + w[a, b] * np.cos((a - 1) * ky + (b - 1) * kx)
    return out


#: Largest ``f·dt`` for which forward Euler on the flow term ``f·(x_feed − X)`` is stable.
FLOW_NUMBER_LIMIT = 2.0

#: Upper clip of the public Dense-RDN code (concentration units), the design engines' default.
C_MAX = 10.0


def diffusion_number_limit(stencil: str | np.ndarray) -> float:
    """Return the explicit Euler stability limit of a stencil, written once.

    The limit is the largest ``D·dt/dx²`` for which forward Euler on pure diffusion is
    stable, ``2/|λ_min|`` with ``λ_min`` the stencil's most negative eigenvalue (at the
    checkerboard modes ky, kx ∈ {0, π}). Used by :meth:`System.check_time_step` and the
    design roll-outs alike.

    Parameters
    ----------
    stencil : str or numpy.ndarray
        A name of :data:`STENCILS` or a symmetric 3×3 array.

    Returns
    -------
    float
        0.25 for the 5-point stencil (λ_min = −8), 0.5 for the isotropic 9-point one
        (λ_min = −4).
    """
    if isinstance(stencil, str):
        return _named_stencil_limit(stencil)
    ks = np.array([0.0, np.pi])
    lam = float(stencil_eigenvalue(stencil, ks[:, None], ks[None, :]).min())
    return 2.0 / -lam


@functools.cache
def _named_stencil_limit(name: str) -> float:
    """Return :func:`diffusion_number_limit` of a named stencil, computed once per name."""
    return diffusion_number_limit(STENCILS[name])


#: Range of the grid spacing: dx² and 1/dx² stay finite and non-zero in float64.
MIN_DX, MAX_DX = 1e-150, 1e150


@dataclass(frozen=True)
class Grid:
    """A periodic 2-D grid of ``ny × nx`` cells of side ``dx`` (length units).

    Parameters
    ----------
    ny, nx : int
        Number of cells along y and x, each ≥ 3.
    dx : float, default 1.0
        Cell side, in length units; positive, between :data:`MIN_DX` and :data:`MAX_DX`.
    stencil : str, default "9-point"
        Laplacian stencil, a name of :data:`STENCILS`.

    Raises
    ------
    ParameterError
        If a size is not an integer ≥ 3, ``dx`` is out of range or the stencil is unknown.
    """

    ny: int
    nx: int
    dx: float = 1.0
    stencil: str = "9-point"

    def __post_init__(self) -> None:
        """Validate the fields."""
        for name in ("ny", "nx"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 3:
                raise ParameterError(f"grid {name} must be an integer ≥ 3, got {v!r}")
        if not np.isfinite(self.dx) or self.dx <= 0:
            raise ParameterError(f"grid spacing dx must be positive and finite, got {self.dx!r}")
        if not MIN_DX <= self.dx <= MAX_DX:  # dx² and 1/dx² must stay finite and non-zero
            raise ParameterError(f"grid spacing dx must lie between {MIN_DX:g} and "
                                 f"{MAX_DX:g}, got {self.dx!r}")
        if self.stencil not in STENCILS:
            raise ParameterError(
                f"unknown stencil {self.stencil!r}; choose one of {sorted(STENCILS)}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape ``(ny, nx)``."""
        return (self.ny, self.nx)

    @property
    def min_eigenvalue(self) -> float:
        """Most negative eigenvalue of the unit-spacing stencil.

        −8 for the 5-point stencil, −4 for the isotropic 9-point one.
        """
        return -2.0 / self.diffusion_number_limit

    @property
    def diffusion_number_limit(self) -> float:
        """Largest ``D·dt/dx²`` for which forward Euler on pure diffusion is stable.

        The :func:`diffusion_number_limit` of the grid's stencil.
        """
        return diffusion_number_limit(self.stencil)


@dataclass(frozen=True)
class FlowNoise:
    """Spatio-temporal noise on the flow rate.

    Each step, ``f + U(−amplitude, amplitude)`` is drawn per cell, negatives set to 0, then
    smoothed by a periodic Gaussian of width ``sigma`` cells.

    Parameters
    ----------
    amplitude : float
        Half-width of the uniform noise on ``f``, 1/time; ≥ 0.
    sigma : float, default 0.0
        Width of the smoothing Gaussian, in cells; ≥ 0.
    per_species : bool, default False
        ``True`` draws an independent field per species (as the Dense-RDN code did); the
        default shares one field across species (one flow, one fluid).

    Raises
    ------
    ParameterError
        If ``amplitude`` or ``sigma`` is negative or not finite.
    """

    amplitude: float
    sigma: float = 0.0
    per_species: bool = False

    def __post_init__(self) -> None:
        """Validate the fields."""
        if not np.isfinite(self.amplitude) or self.amplitude < 0:
            raise ParameterError(f"flow-noise amplitude must be ≥ 0, got {self.amplitude!r}")
        if not np.isfinite(self.sigma) or self.sigma < 0:
            raise ParameterError(f"flow-noise sigma must be ≥ 0, got {self.sigma!r}")


def _as_batch(
    value, width: int | None, what: str, labels: Sequence[str] | None = None
) -> np.ndarray:
    """Broadcast a parameter to ``(batch, width)`` (or ``(batch,)``) and validate it.

    Entries must be finite and non-negative; the first bad entry is named.
    """
    arr = np.asarray(value, dtype=float)
    if width is None:
        if arr.ndim > 1:
            raise ParameterError(f"{what} must be a scalar or a (batch,) vector, got shape "
                                 f"{arr.shape}")
        arr = np.atleast_1d(arr)
    else:
        if arr.ndim == 0:
            arr = np.full((1, width), float(arr))
        elif arr.ndim == 1:
            if arr.shape[0] != width:
                raise ParameterError(
                    f"{what} has {arr.shape[0]} entries; expected {width}"
                    + (f" ({', '.join(labels)})" if labels else "")
                )
            arr = arr[None, :]
        elif arr.ndim == 2:
            if arr.shape[1] != width:
                raise ParameterError(
                    f"{what} has shape {arr.shape}; expected (batch, {width})"
                )
        else:
            raise ParameterError(f"{what} has shape {arr.shape}; expected (batch, {width})")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        entry = f"sample {idx[0]}"
        if width is not None:
            entry += f", {labels[idx[1]] if labels else idx[1]}"
        kind = "NaN" if np.isnan(arr[idx]) else ("infinite" if np.isinf(arr[idx]) else
                                                  "negative")
        raise ParameterError(f"{what} is {kind} ({float(arr[idx])!r}) at {entry}")
    return arr


def parameter_names(network: ReactionNetwork) -> list[str]:
    """Return the names of a network's parameters.

    Parameters
    ----------
    network : ReactionNetwork
        The network.

    Returns
    -------
    list of str
        ``f``, the rate labels (or ``k<r>`` for unlabelled rates), ``D_<species>``,
        ``feed_<species>``.
    """
    rate_names = [n if n else f"k{r}" for r, n in enumerate(network.rate_names)]
    return (["f"] + rate_names + [f"D_{s}" for s in network.species]
            + [f"feed_{s}" for s in network.species])


def locate_parameter(network: ReactionNetwork, name: str) -> tuple[str, int | None]:
    """Return where the parameter ``name`` lives.

    The network guarantees that no rate label is also ``f``, ``D_<species>``,
    ``feed_<species>`` or another reaction's index name, so every name has one meaning.

    Parameters
    ----------
    network : ReactionNetwork
        The network.
    name : str
        A parameter name (see :func:`parameter_names`).

    Returns
    -------
    tuple of (str, int or None)
        ``("flow", None)``, ``("diffusion", i)``, ``("feed", i)`` or ``("rates", r)``.

    Raises
    ------
    ParameterError
        If ``name`` is not text or names no parameter (the known names are listed).
    """
    if not isinstance(name, str):
        raise ParameterError(f"parameter names are text, got {name!r}")
    if name == "f":
        return "flow", None
    if name.startswith("D_") and name[2:] in network.species:
        return "diffusion", network.species_index(name[2:])
    if name.startswith("feed_") and name[5:] in network.species:
        return "feed", network.species_index(name[5:])
    try:
        return "rates", network.rate_index(name)
    except NetworkError:
        names = parameter_names(network)
        shown = names if len(names) <= 40 else [*names[:40], "…"]
        raise ParameterError(f"unknown parameter {name!r}; parameters are {shown}") from None


def locate_parameters(network: ReactionNetwork, names: Sequence[str],
                      kinds: tuple[str, ...] | None = None) -> list[tuple[str, int | None]]:
    """Return :func:`locate_parameter` for each name.

    Parameters
    ----------
    network : ReactionNetwork
        The network.
    names : sequence of str
        Parameter names.
    kinds : tuple of str, optional
        Allowed kinds (``"flow"``, ``"diffusion"``, ``"feed"``, ``"rates"``); ``None``
        allows all.

    Returns
    -------
    list of tuple of (str, int or None)
        One place per name, in order.

    Raises
    ------
    ParameterError
        If a name is unknown, of another kind than ``kinds``, or names the same parameter as
        an earlier one (a rate's label and its index name ``k<r>``).
    """
    places = [locate_parameter(network, n) for n in names]
    seen: dict[tuple[str, int | None], str] = {}
    for name, place in zip(names, places):
        if kinds is not None and place[0] not in kinds:
            raise ParameterError(f"{name!r} is not a rate constant")
        if place in seen:
            raise ParameterError(f"{seen[place]!r} and {name!r} name the same parameter "
                                 f"({_describe_place(network, place)}); give it once")
        seen[place] = name
    return places


def _describe_place(network: ReactionNetwork, place: tuple[str, int | None]) -> str:
    """Describe a parameter's place in words, for error messages."""
    attr, col = place
    if attr == "rates":
        return f"the rate constant of reaction {col}, {network.reaction_text(col, False)!r}"
    if attr == "flow":
        return "the flow rate f"
    return f"the {attr} of {network.species[col]}"


@dataclass(frozen=True, eq=False)
class System:
    """A batch of parameter sets for one network.

    Build it with :meth:`System.build`, which validates and broadcasts; the arrays are
    float64.

    Attributes
    ----------
    network : ReactionNetwork
        The reaction network.
    rates : numpy.ndarray
        ``(batch, n_reactions)`` mass-action rate constants.
    diffusion : numpy.ndarray
        ``(batch, n_species)`` diffusion coefficients, length²/time.
    flow : numpy.ndarray
        ``(batch,)`` flow rate f, 1/time.
    feed : numpy.ndarray
        ``(batch, n_species)`` feed concentrations x_feed.
    grid : Grid or None
        The periodic grid, or ``None`` for a well-mixed reactor.
    noise : FlowNoise or None
        Optional noise on the flow rate.
    coords : Mapping of str to numpy.ndarray
        Sweep coordinates, name → ``(batch,)`` values (e.g. ``{"f": ..., "k": ...}``).
    """

    network: ReactionNetwork
    rates: np.ndarray
    diffusion: np.ndarray
    flow: np.ndarray
    feed: np.ndarray
    grid: Grid | None = None
    noise: FlowNoise | None = None
    coords: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        network: ReactionNetwork,
        rates: Sequence[float] | np.ndarray | Mapping[str, float] | None = None,
        diffusion: float | Sequence[float] | np.ndarray | Mapping[str, float] = 0.0,
        flow: float | np.ndarray = 0.0,
        feed: Sequence[float] | np.ndarray | Mapping[str, float] | None = None,
        grid: Grid | None = None,
        noise: FlowNoise | None = None,
    ) -> System:
        """Validate and broadcast parameters into a system.

        Parameters
        ----------
        network : ReactionNetwork
            The reaction network.
        rates : array_like or Mapping of str to float, optional
            One rate constant per directed reaction (or ``(batch, n_reactions)``), or a
            mapping ``{rate name: value}`` overriding the network's default rates; ``None``
            uses the defaults.
        diffusion : float, array_like or Mapping of str to float, default 0.0
            Diffusion coefficients, length²/time: scalar, per species,
            ``(batch, n_species)`` or a mapping species → value (others 0).
        flow : float or numpy.ndarray, default 0.0
            Flow rate f, 1/time: scalar or ``(batch,)``.
        feed : array_like or Mapping of str to float, optional
            Feed concentrations, shaped as ``diffusion``; ``None`` means 0.
        grid : Grid, optional
            The periodic grid; ``None`` is a well-mixed reactor.
        noise : FlowNoise, optional
            Noise on the flow rate (needs a grid).

        Returns
        -------
        System
            The system, every array broadcast to one batch size.

        Raises
        ------
        ParameterError
            If a value is negative, not finite or of the wrong shape, a name is unknown, a
            reaction has no rate constant, noise is given without a grid, or the batch sizes
            do not broadcast.
        """
        net = network
        if rates is None or isinstance(rates, Mapping):
            base = list(net.default_rates)
            given = dict(rates or {})
            for (_, r), value in zip(locate_parameters(net, list(given), ("rates",)),
                                     given.values()):
                base[r] = value
            missing = [net.reaction_text(r, with_rate=False)
                       for r, v in enumerate(base) if v is None]
            if missing:
                raise ParameterError(f"no rate constant given for reactions {missing}")
            rates = base
        labels = [net.reaction_text(r, with_rate=False) for r in range(net.n_reactions)]
        rates_a = _as_batch(rates, net.n_reactions, "rate constant", labels)
        diffusion_a = _as_batch(cls._species_values(net, diffusion, "diffusion"),
                                net.n_species, "diffusion coefficient", net.species)
        feed_a = _as_batch(cls._species_values(net, 0.0 if feed is None else feed, "feed"),
                           net.n_species, "feed concentration", net.species)
        flow_a = _as_batch(flow, None, "flow rate f")
        # well-mixed (grid None): diffusion coefficients are kept but play no role
        if grid is None and noise is not None:
            raise ParameterError("flow noise is spatio-temporal and needs a grid; this system is "
                                 "well-mixed (grid=None)")
        batch = {rates_a.shape[0], diffusion_a.shape[0], feed_a.shape[0], flow_a.shape[0]}
        n = max(batch)
        if not batch <= {1, n}:
            raise ParameterError(f"parameter batch sizes {sorted(batch)} do not broadcast")

        def full(a):
            return np.ascontiguousarray(np.broadcast_to(a, (n, *a.shape[1:])))

        return cls(net, full(rates_a), full(diffusion_a), full(flow_a), full(feed_a), grid,
                   noise, {})

    @staticmethod
    def _species_values(net: ReactionNetwork, value, what: str):
        """Turn a species → value mapping into a per-species vector (others 0)."""
        if isinstance(value, Mapping):
            out = np.zeros(net.n_species)
            for name, v in value.items():
                try:
                    out[net.species_index(name)] = v
                except NetworkError as exc:
                    raise ParameterError(f"{what}: {exc}") from None
            return out
        return value

    # ------------------------------------------------------------------ batch
    @property
    def batch_size(self) -> int:
        """Number of parameter sets (samples) in the batch."""
        return self.rates.shape[0]

    @property
    def n_species(self) -> int:
        """Number of species of the network."""
        return self.network.n_species

    def parameter_names(self) -> list[str]:
        """Return the names accepted by :meth:`parameter` and :meth:`sweep`.

        Returns
        -------
        list of str
            ``f``, rate names (or ``k0``…), ``D_<species>``, ``feed_<species>``.
        """
        return parameter_names(self.network)

    def _locate(self, name: str) -> tuple[str, int | None]:
        """Locate one parameter (:func:`locate_parameter`)."""
        return locate_parameter(self.network, name)

    def _locate_all(self, names: Sequence[str]) -> list[tuple[str, int | None]]:
        """Locate several parameters (:func:`locate_parameters`)."""
        return locate_parameters(self.network, names)

    def parameter(self, name: str) -> np.ndarray:
        """Return the values of one named parameter across the batch.

        Parameters
        ----------
        name : str
            A name of :meth:`parameter_names`.

        Returns
        -------
        numpy.ndarray
            A copy of the values, shape ``(batch,)``.

        Raises
        ------
        ParameterError
            If ``name`` is unknown.
        """
        attr, col = self._locate(name)
        arr = getattr(self, attr)
        return arr.copy() if col is None else arr[:, col].copy()

    def sweep(self, **values: Sequence[float] | np.ndarray) -> System:
        """Return the Cartesian product of parameter values applied to sample 0.

        The first name varies slowest; the values become coordinates on ``sample``.

        Parameters
        ----------
        **values : array_like
            Parameter name → non-empty 1-D list of values.

        Returns
        -------
        System
            One sample per combination (this system itself when no values are given).

        Raises
        ------
        ParameterError
            If a name is unknown or repeated, a value list is empty or not 1-D, or a value is
            negative or not finite.

        Examples
        --------
        >>> gs.sweep(f=np.linspace(0.02, 0.06, 9), k=np.linspace(0.04, 0.07, 7))  # 63 samples
        """
        if not values:
            return self
        names = list(values)
        places = self._locate_all(names)
        axes = []
        for name in names:
            arr = np.atleast_1d(np.asarray(values[name], dtype=float))
            if arr.ndim != 1 or arr.size == 0:
                raise ParameterError(f"sweep values for {name!r} must be a non-empty 1-D list")
            axes.append(arr)
        multi = [a for a in axes if a.size > 1]
        grids = iter([m.ravel() for m in np.meshgrid(*multi, indexing="ij")] if multi else [])
        n = int(np.prod([a.size for a in multi])) if multi else 1
        mesh = [next(grids) if a.size > 1 else np.full(n, a[0]) for a in axes]
        new = {
            "rates": np.repeat(self.rates[:1], n, axis=0),
            "diffusion": np.repeat(self.diffusion[:1], n, axis=0),
            "flow": np.repeat(self.flow[:1], n, axis=0),
            "feed": np.repeat(self.feed[:1], n, axis=0),
        }
        for (attr, col), column in zip(places, mesh):
            if col is None:
                new[attr][:] = column
            else:
                new[attr][:, col] = column
        net = self.network
        labels = [net.reaction_text(r, with_rate=False) for r in range(net.n_reactions)]
        _as_batch(new["rates"], net.n_reactions, "rate constant", labels)
        _as_batch(new["diffusion"], net.n_species, "diffusion coefficient", net.species)
        _as_batch(new["feed"], net.n_species, "feed concentration", net.species)
        _as_batch(new["flow"], None, "flow rate f")
        coords = {name: column for name, column in zip(names, mesh)}
        return replace(self, coords=coords, **new)

    def samples(self, **values: Sequence[float] | np.ndarray) -> System:
        """Return one sample per row of a parameter table, applied to sample 0.

        ``samples(f=[...], k=[...])`` zips the columns (not crossed); the values become
        coordinates.

        Parameters
        ----------
        **values : array_like
            Parameter name → 1-D column; all columns of equal length.

        Returns
        -------
        System
            One sample per row (this system itself when no values are given).

        Raises
        ------
        ParameterError
            If the columns are not 1-D of equal length, a name is unknown or repeated, or a
            value is invalid.
        """
        if not values:
            return self
        cols = {n: np.atleast_1d(np.asarray(v, dtype=float)) for n, v in values.items()}
        lengths = {n: c.size for n, c in cols.items()}
        if len(set(lengths.values())) != 1 or any(c.ndim != 1 for c in cols.values()):
            raise ParameterError(f"parameter table columns must be 1-D of equal length, got "
                                 f"{lengths}")
        n = next(iter(lengths.values()))
        new = {a: np.repeat(getattr(self, a)[:1], n, axis=0)
               for a in ("rates", "diffusion", "flow", "feed")}
        places = self._locate_all(list(cols))
        for (attr, col), column in zip(places, cols.values()):
            if col is None:
                new[attr][:] = column
            else:
                new[attr][:, col] = column
        return System.build(self.network, new["rates"], new["diffusion"], new["flow"],
                            new["feed"], self.grid, self.noise).with_coords(cols)

    def with_coords(self, coords: Mapping[str, np.ndarray]) -> System:
        """Return a copy with ``coords`` as sample coordinates.

        Parameters
        ----------
        coords : Mapping of str to numpy.ndarray
            Name → ``(batch,)`` values.

        Returns
        -------
        System
            The copy.

        Raises
        ------
        ParameterError
            If a coordinate does not have shape ``(batch,)``.
        """
        out = {n: np.asarray(v, dtype=float) for n, v in coords.items()}
        bad = {n: v.shape for n, v in out.items() if v.shape != (self.batch_size,)}
        if bad:
            raise ParameterError(f"coordinates {bad} do not match the batch of "
                                 f"{self.batch_size}")
        return replace(self, coords=out)

    def select(self, samples: slice | Sequence[int] | np.ndarray) -> System:
        """Return the sub-batch ``samples`` (coordinates follow).

        Parameters
        ----------
        samples : slice, sequence of int or numpy.ndarray
            Which samples to keep (any NumPy index of the batch axis).

        Returns
        -------
        System
            The sub-batch.
        """
        idx = np.arange(self.batch_size)[samples]
        return replace(
            self,
            rates=self.rates[idx], diffusion=self.diffusion[idx], flow=self.flow[idx],
            feed=self.feed[idx], coords={k: v[idx] for k, v in self.coords.items()},
        )

    # ------------------------------------------------------------------ checks
    def check_time_step(self, dt: float) -> None:
        """Refuse an explicit Euler step that is unstable for the stencil or the flow.

        Parameters
        ----------
        dt : float
            The time step.

        Raises
        ------
        StabilityError
            If ``dt`` is not positive and finite, ``D·dt/dx²`` exceeds the stencil's limit
            or ``f·dt`` exceeds :data:`FLOW_NUMBER_LIMIT` for some sample.
        """
        if not np.isfinite(dt) or dt <= 0:
            raise StabilityError(f"time step dt must be positive and finite, got {dt!r}")
        if self.grid is not None:
            limit = self.grid.diffusion_number_limit
            number = self.diffusion * dt / self.grid.dx**2
            if np.any(number > limit):
                b, i = (int(v) for v in np.argwhere(number > limit)[0])
                raise StabilityError(
                    f"explicit Euler is unstable: D_{self.network.species[i]} = "
                    f"{self.diffusion[b, i]:g} with dt = {dt:g}, dx = {self.grid.dx:g} gives "
                    f"D·dt/dx² = {number[b, i]:g} (sample {b}), beyond the {self.grid.stencil} "
                    f"stencil's limit {limit:g}; use dt ≤ "
                    f"{limit * self.grid.dx**2 / self.diffusion[b, i]:g}"
                )
        if np.any(self.flow * dt > FLOW_NUMBER_LIMIT):
            b = int(np.argmax(self.flow * dt))
            raise StabilityError(
                f"explicit Euler is unstable: flow f = {self.flow[b]:g} with dt = {dt:g} gives "
                f"f·dt = {self.flow[b] * dt:g} (sample {b}), beyond the limit "
                f"{FLOW_NUMBER_LIMIT:g}"
            )

    def state_shape(self) -> tuple[int, ...]:
        """Return the shape of a batched state.

        Returns
        -------
        tuple of int
            ``(batch, species, y, x)``, or ``(batch, species)`` when well-mixed.
        """
        spatial = self.grid.shape if self.grid is not None else ()
        return (self.batch_size, self.n_species, *spatial)

    def check_state(self, state: np.ndarray, what: str = "initial state") -> np.ndarray:
        """Broadcast a state to :meth:`state_shape` and check it is finite and ≥ 0.

        Parameters
        ----------
        state : numpy.ndarray
            ``(batch, species, y, x)``, one sample without the batch axis, or a batch of one.
        what : str, default "initial state"
            What the state is, for error messages.

        Returns
        -------
        numpy.ndarray
            The state, C-contiguous, of shape :meth:`state_shape`.

        Raises
        ------
        ParameterError
            If the shape does not fit or a value is negative or not finite.
        """
        arr = np.asarray(state, dtype=float)
        shape = self.state_shape()
        if arr.shape == shape[1:]:
            arr = np.broadcast_to(arr, shape)
        elif arr.ndim == len(shape) and arr.shape[0] == 1 and arr.shape[1:] == shape[1:]:
            arr = np.broadcast_to(arr, shape)
        if arr.shape != shape:
            raise ParameterError(
                f"{what} has shape {np.shape(state)}; expected {shape} "
                "(batch, species, y, x) or one sample without the batch axis"
            )
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ParameterError(
                f"{what} has value {arr[idx]!r} at sample {idx[0]}, species "
                f"{self.network.species[idx[1]]}, position {idx[2:]}: concentrations must be "
                "finite and ≥ 0"
            )
        return np.ascontiguousarray(arr)

    def describe(self) -> dict:
        """Return a plain-data description of the system.

        Returns
        -------
        dict
            Enough to rebuild the system with :meth:`from_description`.
        """
        return {
            "network": self.network.to_dict(),
            "rates": self.rates.tolist(),
            "diffusion": self.diffusion.tolist(),
            "flow": self.flow.tolist(),
            "feed": self.feed.tolist(),
            "grid": None if self.grid is None else {
                "ny": self.grid.ny, "nx": self.grid.nx, "dx": self.grid.dx,
                "stencil": self.grid.stencil},
            "noise": None if self.noise is None else {
                "amplitude": self.noise.amplitude, "sigma": self.noise.sigma,
                "per_species": self.noise.per_species},
            "coords": {k: v.tolist() for k, v in self.coords.items()},
        }

    @classmethod
    def from_description(cls, data: dict) -> System:
        """Rebuild a system from :meth:`describe`'s output.

        Parameters
        ----------
        data : dict
            A description made by :meth:`describe`.

        Returns
        -------
        System
            The system, with its coordinates.
        """
        net = ReactionNetwork.from_dict(data["network"])
        grid = Grid(**data["grid"]) if data.get("grid") else None
        noise = FlowNoise(**data["noise"]) if data.get("noise") else None
        system = cls.build(net, np.asarray(data["rates"]), np.asarray(data["diffusion"]),
                           np.asarray(data["flow"]), np.asarray(data["feed"]), grid, noise)
        coords = {k: np.asarray(v, dtype=float) for k, v in data.get("coords", {}).items()}
        return replace(system, coords=coords)
