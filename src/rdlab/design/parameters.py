"""The optimisable kinetic parameters θΨ of a Dense-RDN model.

:class:`DesignParameters` holds, for one :class:`~rdlab.chemistry.network.ReactionNetwork`,
the four groups the Dense-RDN paper optimises, as raw linear values (no log or softplus, as
in the paper and its public code):

========== ========= ==========================================================
name       shape     meaning (units)
========== ========= ==========================================================
rates      (R,)      mass-action rate constants k_r (concentration^(1−order)/s)
diffusion  (S,)      diffusion coefficients D_i (cells²/s)
flow       ()        flow rate f of the flow reactor (1/s)
feed       (S,)      feed concentrations x_feed,i
========== ========= ==========================================================

Bounds are kept by projection after each optimiser update (:meth:`DesignParameters.project_`),
as the paper's constraints do: k ≥ 0, D ∈ [d_min, d_max] (default [0.05, 0.2], stable and
monotone for the isotropic 9-point stencil at dt = 1), f ∈ [0.01, 1], x_feed ≥ 0. Any group
can be fixed (``requires_grad=False``), e.g. a flow held at 0.03.

:meth:`DesignParameters.initial` is the initialisation of the paper's appendix D.1 (see its
docstring for the exact rule per enumeration).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from rdlab.checks import nonnegative_number
from rdlab.chemistry.dense import (
    dense_code_initial_parameters,
    dense_gs_network,
    kitchen_sink_network,
)
from rdlab.chemistry.network import ReactionNetwork
from rdlab.errors import NetworkError, ParameterError
from rdlab.simulate.torch_engine import TorchParameters, torch_dtype

__all__ = ["GROUPS", "DesignParameters", "autocatalytic_reactions"]

GROUPS: tuple[str, ...] = ("rates", "diffusion", "flow", "feed")

DEFAULT_DIFFUSION_BOUNDS = (0.05, 0.2)
DEFAULT_FLOW_BOUNDS = (0.01, 1.0)
INITIAL_FLOW = 0.03
OTHER_RATE = 1e-3
RATE_NOISE = 1e-4


def autocatalytic_reactions(network: ReactionNetwork) -> list[list[int]]:
    """Return, for each species, the reactions (in network order) that are autocatalytic for it.

    Reaction r is autocatalytic for species ``i`` when ``i`` is a reactant and a net product
    (``R_ir ≥ 1`` and ``P_ir > R_ir``), such as ``X + 2Y → 3Y`` for ``Y``. In the dense
    enumerations these are exactly the X + 2Y → 3Y reactions; their reverses (3Y → X + 2Y)
    consume ``Y`` and are not counted.

    Parameters
    ----------
    network : ReactionNetwork
        The network.

    Returns
    -------
    list of list of int
        One list of reaction indices per species.
    """
    R, P = network.reactant_matrix, network.product_matrix
    return [[r for r in range(network.n_reactions) if R[i, r] >= 1 and P[i, r] > R[i, r]]
            for i in range(network.n_species)]


def _same_structure(a: ReactionNetwork, b: ReactionNetwork) -> bool:
    """Return whether two networks have the same species and reaction matrices."""
    return (a.species == b.species
            and np.array_equal(a.reactant_matrix, b.reactant_matrix)
            and np.array_equal(a.product_matrix, b.product_matrix))


def _is_code_enumeration(network: ReactionNetwork) -> bool:
    """Return whether ``network`` is the public code's GS-like or kitchen-sink enumeration."""
    n = network.n_species
    if n < 2:
        return False
    return any(_same_structure(network, build(n))
               for build in (dense_gs_network, kitchen_sink_network))


def _bounds(value, name: str, lower_limit: float = 0.0) -> tuple[float, float]:
    """Return ``value`` as a checked pair ``(low, high)`` with ``lower_limit ≤ low ≤ high``."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < lower_limit or lo > hi:
        raise ParameterError(f"{name} must satisfy {lower_limit:g} ≤ low ≤ high (finite), "
                             f"got {value!r}")
    return lo, hi


class DesignParameters(nn.Module):
    """Rates, diffusion coefficients, flow and feed of ``network`` as ``nn.Parameter`` objects.

    Values are stored as given (they may sit outside the bounds, e.g. rates that start
    slightly negative from the initial noise) until :meth:`project_` is called; every value
    must be finite. The bounds travel in the ``state_dict`` (as buffers).

    Parameters
    ----------
    network : ReactionNetwork
        The reaction network (any enumeration of :mod:`rdlab.chemistry.dense`, or any other
        mass-action network).
    rates : array_like
        ``(R,)`` rate constants.
    diffusion : array_like
        ``(S,)`` diffusion coefficients.
    flow : float
        Flow rate (a scalar).
    feed : array_like
        ``(S,)`` feed concentrations.
    fixed : iterable of str, default ()
        Names of groups (of :data:`GROUPS`) not to optimise (``requires_grad=False``).
    diffusion_bounds : tuple of float, default (0.05, 0.2)
        ``(d_min, d_max)`` kept by :meth:`project_`.
    flow_bounds : tuple of float, default (0.01, 1.0)
        ``(f_min, f_max)`` kept by :meth:`project_`.
    dtype : torch.dtype, default torch.float32
        Of the parameters.
    device : str or torch.device or None, optional
        Of the parameters.

    Raises
    ------
    ParameterError
        For a ``network`` that is not a ReactionNetwork, values of the wrong shape or not
        finite, bad bounds, or an unknown group in ``fixed``.
    """

    rates: nn.Parameter
    diffusion: nn.Parameter
    flow: nn.Parameter
    feed: nn.Parameter

    def __init__(self, network: ReactionNetwork, rates, diffusion, flow, feed, *,
                 fixed: Iterable[str] = (),
                 diffusion_bounds: tuple[float, float] = DEFAULT_DIFFUSION_BOUNDS,
                 flow_bounds: tuple[float, float] = DEFAULT_FLOW_BOUNDS,
                 dtype=torch.float32, device: str | torch.device | None = None) -> None:
        super().__init__()
        if not isinstance(network, ReactionNetwork):
            raise ParameterError(f"network must be a ReactionNetwork, got {type(network)!r}")
        self.network = network
        dtype = torch_dtype(dtype)
        shapes = {"rates": (network.n_reactions,), "diffusion": (network.n_species,),
                  "flow": (), "feed": (network.n_species,)}
        values = {"rates": rates, "diffusion": diffusion, "flow": flow, "feed": feed}
        for name in GROUPS:
            t = self._as_tensor(values[name], name, shapes[name], dtype, device)
            setattr(self, name, nn.Parameter(t))
        d = _bounds(diffusion_bounds, "diffusion_bounds")
        f = _bounds(flow_bounds, "flow_bounds")
        self.register_buffer("diffusion_bounds", torch.tensor(d, dtype=dtype, device=device))
        self.register_buffer("flow_bounds", torch.tensor(f, dtype=dtype, device=device))
        self.set_fixed(fixed)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _as_tensor(value, name: str, shape: tuple[int, ...], dtype, device) -> torch.Tensor:
        """Return ``value`` as a finite tensor of ``shape``, or refuse it naming ``name``."""
        if isinstance(value, torch.Tensor):
            t = value.detach().to(dtype=dtype, device=device).clone()
        else:
            try:
                t = torch.as_tensor(np.asarray(value, dtype=float), dtype=dtype, device=device)
            except (TypeError, ValueError):
                raise ParameterError(f"{name} must be numbers, got {value!r}") from None
        if tuple(t.shape) != shape:
            raise ParameterError(f"{name} has shape {tuple(t.shape)}; expected {shape}")
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            where = int(torch.nonzero(bad.reshape(-1))[0]) if t.ndim else None
            at = "" if where is None else f" at index {where}"
            raise ParameterError(f"{name} must be finite; got {t.reshape(-1)[where or 0]}{at}")
        return t

    @classmethod
    def initial(cls, network: ReactionNetwork, seed: int | np.random.SeedSequence | None = 0,
                dtype=torch.float32, *, fixed: Iterable[str] = (), flow: float | None = None,
                feed=None, diffusion_bounds: tuple[float, float] = DEFAULT_DIFFUSION_BOUNDS,
                flow_bounds: tuple[float, float] = DEFAULT_FLOW_BOUNDS,
                device: str | torch.device | None = None) -> DesignParameters:
        """Return the paper's initialisation (appendix D.1), drawn with ``numpy`` from ``seed``.

        * **Public-code enumerations** (:func:`~rdlab.chemistry.dense.dense_gs_network`,
          :func:`~rdlab.chemistry.dense.kitchen_sink_network`): exactly the code's values
          (:func:`~rdlab.chemistry.dense.dense_code_initial_parameters`): k = 1 for
          A + 2Y → 3Y (each autocatalyst Y's first autocatalytic reaction), the other
          X + 2Y → 3Y at 0, every other rate 1e-3, all plus U(±1e-4) clipped at 0;
          D ~ U(0.1, 0.2); f = 0.03; x_feed,i = 4^(−N_ai) — for N = 5
          [1, 0.25, 0.0625, 0.015625, 0.00390625].
        * **Any other network**, including the paper's eq. 17 enumeration
          (:func:`~rdlab.chemistry.dense.dense_network`): the rule of D.1 applied as the code
          applies it: for each species Y its *first* autocatalytic reaction in network order
          (:func:`autocatalytic_reactions`) gets k = 1 exactly — for ``dense_network`` that is
          A + 2Y → 3Y for Y ≠ A and B + 2A → 3A for A, so every species has one — and every
          other rate 1e-3 + U(±1e-4); D ~ U(d_min, d_max) (U(0.05, 0.2) by default, as D.1
          states); f = 0.03; x_feed,i = 4^(−N_ai) with N_ai the number of reactions
          autocatalytic for species i. In eq. 17 every species is the autocatalyst of N − 1
          reactions, so the feed is uniform, 4^(−(N−1)) (1/256 for N = 5); pass ``feed`` to
          override.

        Parameters
        ----------
        network : ReactionNetwork
            The network.
        seed : int or numpy.random.SeedSequence or None, default 0
            Seed of the draws.
        dtype : torch.dtype, default torch.float32
            Of the parameters.
        fixed : iterable of str, default ()
            Groups not to optimise.
        flow : float or None, optional
            Replaces the initial flow when given.
        feed : array_like or None, optional
            Replaces the initial feed when given.
        diffusion_bounds : tuple of float, default (0.05, 0.2)
            ``(d_min, d_max)``.
        flow_bounds : tuple of float, default (0.01, 1.0)
            ``(f_min, f_max)``.
        device : str or torch.device or None, optional
            Of the parameters.

        Returns
        -------
        DesignParameters
            The initial parameters.
        """
        rng = np.random.default_rng(seed)
        d_lo, d_hi = _bounds(diffusion_bounds, "diffusion_bounds")
        if _is_code_enumeration(network):
            p = dense_code_initial_parameters(network, rng)
            rates, diffusion, flow0, feed0 = p["rates"], p["diffusion"], p["flow"], p["feed"]
        else:
            rates = OTHER_RATE + rng.uniform(-RATE_NOISE, RATE_NOISE, size=network.n_reactions)
            auto = autocatalytic_reactions(network)
            for reactions in auto:
                if reactions:
                    rates[reactions[0]] = 1.0
            diffusion = rng.uniform(d_lo, d_hi, size=network.n_species)
            flow0 = INITIAL_FLOW
            feed0 = 4.0 ** -np.array([len(r) for r in auto], dtype=float)
        return cls(network, rates, diffusion, flow0 if flow is None else flow,
                   feed0 if feed is None else feed, fixed=fixed,
                   diffusion_bounds=diffusion_bounds, flow_bounds=flow_bounds, dtype=dtype,
                   device=device)

    @classmethod
    def from_state_dict(cls, network: ReactionNetwork, state_dict: Mapping[str, torch.Tensor],
                        *, fixed: Iterable[str] = ()) -> DesignParameters:
        """Rebuild from :meth:`state_dict` (values, bounds, dtype and device as saved).

        Parameters
        ----------
        network : ReactionNetwork
            The network the parameters belong to.
        state_dict : mapping of str to torch.Tensor
            A saved state dict.
        fixed : iterable of str, default ()
            Groups not to optimise.

        Returns
        -------
        DesignParameters
            The rebuilt parameters.

        Raises
        ------
        ParameterError
            When the state dict lacks a group or a bound.
        """
        missing = [k for k in (*GROUPS, "diffusion_bounds", "flow_bounds")
                   if k not in state_dict]
        if missing:
            raise ParameterError(f"state dict lacks {missing}")
        sd = dict(state_dict)
        rates = sd["rates"]
        out = cls(network, rates, sd["diffusion"], sd["flow"], sd["feed"], fixed=fixed,
                  diffusion_bounds=tuple(sd["diffusion_bounds"].tolist()),
                  flow_bounds=tuple(sd["flow_bounds"].tolist()), dtype=rates.dtype,
                  device=rates.device)
        out.load_state_dict(sd)
        return out

    @classmethod
    def from_description(cls, description: Mapping) -> DesignParameters:
        """Rebuild from a :meth:`describe` result (float64 values round-trip exactly).

        Parameters
        ----------
        description : mapping
            What :meth:`describe` returned.

        Returns
        -------
        DesignParameters
            The rebuilt parameters.

        Raises
        ------
        ParameterError
            When the description lacks a key.
        """
        try:
            network = ReactionNetwork.from_dict(dict(description["network"]))
            return cls(network, description["rates"], description["diffusion"],
                       description["flow"], description["feed"],
                       fixed=description.get("fixed", ()),
                       diffusion_bounds=description.get("diffusion_bounds",
                                                        DEFAULT_DIFFUSION_BOUNDS),
                       flow_bounds=description.get("flow_bounds", DEFAULT_FLOW_BOUNDS),
                       dtype=description.get("dtype", "float32"))
        except KeyError as exc:
            raise ParameterError(f"parameter description lacks {exc.args[0]!r}") from None

    # ------------------------------------------------------------------ user start values
    def reaction_index(self, text: str) -> int:
        """Return the index of the reaction written as ``text``.

        Parameters
        ----------
        text : str
            One reaction, e.g. ``"A + 2B -> 3B"``; spacing and the order of terms do not matter.

        Returns
        -------
        int
            Its index in the network.

        Raises
        ------
        ParameterError
            When ``text`` is not exactly one reaction, or not one of this network.
        """
        try:
            one = ReactionNetwork.from_text(str(text), species=self.network.species)
        except (NetworkError, ValueError) as err:
            raise ParameterError(f"reaction {text!r}: {err}") from None
        if one.n_reactions != 1:
            raise ParameterError(f"{text!r} must be exactly one reaction")
        key = (one.reactants_of(0), one.products_of(0))
        for r in range(self.n_reactions):
            if (self.network.reactants_of(r), self.network.products_of(r)) == key:
                return r
        raise ParameterError(f"reaction {text!r} is not in this network; its reactions "
                             f"look like {self.network.reaction_text(0, with_rate=False)!r}")

    @torch.no_grad()
    def override_(self, start: Mapping) -> DesignParameters:
        """Replace start values in place (a config's ``initial``).

        A way to start an optimisation from a known mechanism instead of the paper's
        initialisation.

        Parameters
        ----------
        start : mapping
            ``rates`` ``{reaction text: k}``, ``other_rates`` (k of every reaction not listed;
            omitted: they keep their values), ``diffusion`` (one value or one per species,
            within the diffusion bounds) and ``feed`` (one value per species, ≥ 0).

        Returns
        -------
        DesignParameters
            ``self``.

        Raises
        ------
        ParameterError
            For an unknown key, an unknown reaction, or values of the wrong form or out of range.
        """
        unknown = set(start) - {"rates", "other_rates", "diffusion", "feed"}
        if unknown:
            raise ParameterError(f"initial: unknown key(s) {sorted(unknown)}; use rates, "
                                 f"other_rates, diffusion, feed")
        if not isinstance(start.get("rates") or {}, Mapping):
            raise ParameterError(f"initial rates must be a mapping {{reaction text: k}}, got "
                                 f"{start['rates']!r}")
        listed = {self.reaction_index(t): t for t in dict(start.get("rates") or {})}
        rates = self.rates.detach().clone()
        if "other_rates" in start:
            rates.fill_(nonnegative_number(start["other_rates"], "initial other_rates"))
        for r, text in listed.items():
            rates[r] = nonnegative_number(start["rates"][text], f"initial rate of {text!r}")
        values: dict = {"rates": rates}
        if "diffusion" in start:
            d = _numbers(start["diffusion"], "initial diffusion", (self.n_species,))
            lo, hi = self.diffusion_bounds.tolist()
            if np.any((d < lo * (1 - 1e-6)) | (d > hi * (1 + 1e-6))):  # bounds are float32
                raise ParameterError(f"initial diffusion {start['diffusion']!r} lies outside "
                                     f"the diffusion bounds [{lo:g}, {hi:g}]")
            values["diffusion"] = d.copy()
        if "feed" in start:
            feed = _numbers(start["feed"], "initial feed", None)
            if feed.shape != (self.n_species,) or np.any(feed < 0):
                raise ParameterError(f"initial feed must be {self.n_species} values ≥ 0, got "
                                     f"{start['feed']!r}")
            values["feed"] = feed
        return self.load_values(values)

    # ------------------------------------------------------------------ fixing groups
    def set_fixed(self, names: Iterable[str]) -> DesignParameters:
        """Fix exactly the groups in ``names`` (others become optimisable again).

        Parameters
        ----------
        names : iterable of str
            Groups of :data:`GROUPS`.

        Returns
        -------
        DesignParameters
            ``self``.

        Raises
        ------
        ParameterError
            For an unknown group.
        """
        names = {names} if isinstance(names, str) else set(names)
        unknown = names - set(GROUPS)
        if unknown:
            raise ParameterError(f"unknown parameter group(s) {sorted(unknown)}; choose from "
                                 f"{list(GROUPS)}")
        for name in GROUPS:
            getattr(self, name).requires_grad_(name not in names)
        return self

    @property
    def fixed(self) -> tuple[str, ...]:
        """Names of the groups that are not optimised."""
        return tuple(n for n in GROUPS if not getattr(self, n).requires_grad)

    # ------------------------------------------------------------------ projection
    @torch.no_grad()
    def project_(self) -> DesignParameters:
        """Project in place onto the bounds (fixed groups too); call after each optimiser step.

        The bounds are k ≥ 0, D ∈ [d_min, d_max], f ∈ [f_min, f_max], x_feed ≥ 0.

        Returns
        -------
        DesignParameters
            ``self``.
        """
        self.rates.clamp_(min=0.0)
        d_lo, d_hi = self.diffusion_bounds.tolist()
        self.diffusion.clamp_(d_lo, d_hi)
        f_lo, f_hi = self.flow_bounds.tolist()
        self.flow.clamp_(f_lo, f_hi)
        self.feed.clamp_(min=0.0)
        return self

    # ------------------------------------------------------------------ values
    @property
    def n_species(self) -> int:
        """Number of species."""
        return self.network.n_species

    @property
    def n_reactions(self) -> int:
        """Number of reactions."""
        return self.network.n_reactions

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters."""
        return self.rates.dtype

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.rates.device

    def clone_values(self) -> dict[str, torch.Tensor]:
        """Return detached copies of the four groups.

        Returns
        -------
        dict of str to torch.Tensor
            ``{name: tensor}``.
        """
        return {n: getattr(self, n).detach().clone() for n in GROUPS}

    @torch.no_grad()
    def load_values(self, values: Mapping[str, torch.Tensor | np.ndarray | float]
                    ) -> DesignParameters:
        """Overwrite some or all groups in place from ``{name: values}``; not projected.

        Parameters
        ----------
        values : mapping
            ``{name: values}``, e.g. randomised θΨ for a control, or a :meth:`clone_values`
            snapshot.

        Returns
        -------
        DesignParameters
            ``self``.

        Raises
        ------
        ParameterError
            For an unknown group.
        """
        unknown = set(values) - set(GROUPS)
        if unknown:
            raise ParameterError(f"unknown parameter group(s) {sorted(unknown)}; choose from "
                                 f"{list(GROUPS)}")
        for name, value in values.items():
            p = getattr(self, name)
            p.copy_(self._as_tensor(value, name, tuple(p.shape), p.dtype, p.device))
        return self

    def as_torch_parameters(self, batch: int = 1) -> TorchParameters:
        """Return the same values as the torch engine's per-sample container (differentiable views).

        Parameters
        ----------
        batch : int, default 1
            Number of samples.

        Returns
        -------
        TorchParameters
            ``rates (B, R)``, ``diffusion (B, S)``, ``flow (B,)``, ``feed (B, S)``.
        """
        return TorchParameters(self.rates.expand(batch, -1), self.diffusion.expand(batch, -1),
                               self.flow.expand(batch), self.feed.expand(batch, -1))

    def to_network(self) -> ReactionNetwork:
        """Return the network with the current rate constants as its default rates.

        Returns
        -------
        ReactionNetwork
            A copy of the network with the current rates.
        """
        return self.network.with_rates(self.rates.detach().double().cpu().tolist())

    def describe(self) -> dict:
        """Return plain Python values (JSON-ready).

        :meth:`from_description` rebuilds the module.

        Returns
        -------
        dict
            Network text, the four groups, bounds, fixed groups and dtype.
        """
        return {
            "network": self.network.to_dict(),
            "species": list(self.network.species),
            "rates": self.rates.detach().double().cpu().tolist(),
            "diffusion": self.diffusion.detach().double().cpu().tolist(),
            "flow": float(self.flow.detach()),
            "feed": self.feed.detach().double().cpu().tolist(),
            "diffusion_bounds": self.diffusion_bounds.double().cpu().tolist(),
            "flow_bounds": self.flow_bounds.double().cpu().tolist(),
            "fixed": list(self.fixed),
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def extra_repr(self) -> str:
        """Return the species, reactions, fixed groups and dtype for ``repr``."""
        return (f"species={self.n_species}, reactions={self.n_reactions}, "
                f"fixed={list(self.fixed)}, dtype={self.dtype}")


def _numbers(value, what: str, shape: tuple[int, ...] | None) -> np.ndarray:
    """Return ``value`` as finite floats (broadcast to ``shape`` if given).

    Raises a ParameterError naming ``what`` and the value otherwise.
    """
    try:
        arr = np.asarray(value, dtype=float)
        if shape is not None:
            arr = np.broadcast_to(arr, shape)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be numbers (one per species), got {value!r}"
                             ) from None
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{what} must be finite, got {value!r}")
    return arr
