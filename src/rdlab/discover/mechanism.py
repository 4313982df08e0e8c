"""A mechanism in the form reaction discovery learns and reports.

Two forms, one class:

* **V form** (the paper's §3, no catalysis): one row ``v_i`` of the stoichiometric matrix ``V``
  per reversible reaction, products positive and reactants negative; the reactant orders of
  the forward direction are ``max(0, −v_i)``, those of the reverse ``max(0, v_i)``; rate
  constants ``kf_i`` and ``kr_i`` (``kr_i = 0`` is an irreversible reaction).
* **catalytic form** (the CRNN of Ji & Deng): irreversible reactions with reactant orders
  ``orders[i]`` learned separately from the net stoichiometry ``v_i``, so that X + Y → 2Y
  (orders (1, 1), v = (−1, 1)) can be written.

Rate constants are either fixed numbers (``kf``, ``kr``) or Arrhenius laws
``k = A·exp(−Ea/(R T))`` (``arrhenius`` set). Either form turns into a
:class:`~rdlab.chemistry.network.ReactionNetwork` of directed reactions for simulation and
export, so the rate law stays defined in one place.

**Physical validity.** A mechanism is physical (:meth:`Mechanism.is_physical`) when its
coefficients are integers and no reaction has negative products: in catalytic form a species
cannot be consumed more than it enters as a reactant (loss ``−v ≤ order``); V form is so by
construction. A catalytic row with negative products whose stoichiometry has a common factor
``g`` (e.g. ``A + B → −2A + 4B``: orders (1, 1), v = (−3, 3)) has exactly the rate law of the
row ``v/g`` with ``g`` times the rate (``A + B → 2B``); such rows are stored in that valid form
when the mechanism is built, so a fit that reached the impossible row keeps its error with a
valid mechanism. Rows that no such factor repairs stay as given, and
:meth:`Mechanism.unphysical_reactions` names them.

**Negligible rates.** :meth:`Mechanism.pruned` drops directions whose flux is negligible
against the data (rule: :data:`NEGLIGIBLE_FLUX`), so an irreversible step fitted with a reverse
rate of 1e-17 is reported, tabulated and exported as irreversible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import yaml

from rdlab.chemistry.kinetics import GAS_CONSTANT, arrhenius
from rdlab.chemistry.network import ReactionNetwork
from rdlab.chemistry.reaction_text import format_side
from rdlab.errors import NetworkError, ParameterError

__all__ = ["NEGLIGIBLE_FLUX", "ArrheniusRates", "Mechanism"]

#: A direction of a reaction is negligible against the data, and :meth:`Mechanism.pruned`
#: drops it, when for every species it changes its largest contribution to that species'
#: rate over the data, ``|v_x|·max_p k·Π c_p^order``, is below this fraction of the species'
#: largest gross turnover ``max_p Σ_d |v_dx|·flux_pd`` (all directions, forward and reverse,
#: so a reversible pair at equilibrium, whose net rate is ~0, is never called negligible).
NEGLIGIBLE_FLUX = 1e-6

#: Coefficients within this of an integer count as that integer (validity, formatting).
_INTEGER_TOL = 1e-9


@dataclass(frozen=True)
class ArrheniusRates:
    """Arrhenius parameters per reaction: ``k = A·exp(−Ea/(R T))``.

    Parameters
    ----------
    prefactor_f, prefactor_r : numpy.ndarray
        ``A`` of each direction, shape ``(n_r,)``, in the units of k.
    energy_f, energy_r : numpy.ndarray
        Activation energies ``Ea``, J/mol, shape ``(n_r,)``.
    gas_constant : float, default GAS_CONSTANT
        R in J/(mol K) (:data:`rdlab.chemistry.kinetics.GAS_CONSTANT`).
    """

    prefactor_f: np.ndarray
    prefactor_r: np.ndarray
    energy_f: np.ndarray
    energy_r: np.ndarray
    gas_constant: float = GAS_CONSTANT

    def rates(self, temperature: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the rate constants ``(kf, kr)`` at temperature(s) ``T``.

        Parameters
        ----------
        temperature : float or numpy.ndarray
            ``T`` in K, a scalar or ``(batch,)``.

        Returns
        -------
        kf, kr : numpy.ndarray
            Shapes ``(n_r,)`` or ``(batch, n_r)``.

        Raises
        ------
        ParameterError
            For a temperature that is not positive and finite.
        """
        T = np.asarray(temperature, dtype=float)
        if np.any(~np.isfinite(T)) or np.any(T <= 0):
            raise ParameterError(f"temperature must be positive and finite (K), got {T}")
        with np.errstate(over="ignore", invalid="ignore"):
            kf = arrhenius(self.prefactor_f, self.energy_f, T[..., None], self.gas_constant)
            kr = arrhenius(self.prefactor_r, self.energy_r, T[..., None], self.gas_constant)
        # A = 0 is an absent direction whatever Ea is
        kf = np.where(np.asarray(self.prefactor_f) == 0, 0.0, kf)
        kr = np.where(np.asarray(self.prefactor_r) == 0, 0.0, kr)
        return kf, kr

    @classmethod
    def at_reference(cls, kf: np.ndarray, kr: np.ndarray, energy_f: np.ndarray,
                     energy_r: np.ndarray, temperature: float,
                     gas_constant: float = GAS_CONSTANT) -> ArrheniusRates:
        """Return the parameters whose rates at ``temperature`` are ``kf``, ``kr``.

        Parameters
        ----------
        kf, kr : numpy.ndarray
            ``(n_r,)`` rate constants at ``temperature`` (0: an absent direction, ``A = 0``).
        energy_f, energy_r : numpy.ndarray
            ``(n_r,)`` activation energies, J/mol.
        temperature : float
            The reference temperature, K.
        gas_constant : float, default GAS_CONSTANT
            R in J/(mol K).

        Returns
        -------
        ArrheniusRates
            ``A = k·exp(Ea/(R T))``.
        """
        kf, kr = np.asarray(kf, float), np.asarray(kr, float)
        ef, er = np.asarray(energy_f, float), np.asarray(energy_r, float)
        scale = gas_constant * temperature
        return cls(np.where(kf > 0, kf * np.exp(ef / scale), 0.0),
                   np.where(kr > 0, kr * np.exp(er / scale), 0.0), ef, er, gas_constant)

    def subset(self, rows: np.ndarray) -> ArrheniusRates:
        """Return the parameters of the reactions ``rows`` (an index or boolean mask).

        Parameters
        ----------
        rows : numpy.ndarray
            Indices or a ``(n_r,)`` boolean mask.

        Returns
        -------
        ArrheniusRates
            The selected reactions' parameters, same gas constant.
        """
        return ArrheniusRates(np.asarray(self.prefactor_f)[rows],
                              np.asarray(self.prefactor_r)[rows],
                              np.asarray(self.energy_f)[rows], np.asarray(self.energy_r)[rows],
                              self.gas_constant)


@dataclass(frozen=True, eq=False)
class Mechanism:
    """Reactions of ``species`` as rows (see the module docstring).

    Parameters
    ----------
    species : tuple of str
        Names, length ``n_s``.
    V : numpy.ndarray
        ``(n_r, n_s)`` stoichiometric matrix, one row per reaction (float: learned values may
        be non-integer before they are frozen).
    kf, kr : numpy.ndarray
        ``(n_r,)`` forward and reverse rate constants, ≥ 0 (``kr`` all 0 in catalytic form).
    orders : numpy.ndarray or None, optional
        ``(n_r, n_s)`` reactant orders of the catalytic form, ``None`` in V form.
    arrhenius : ArrheniusRates or None, optional
        Temperature-dependent rates instead of ``kf``/``kr`` (which then hold the rates at
        ``reference_temperature``).
    reference_temperature : float or None, optional
        The temperature (K) of ``kf``/``kr`` for Arrhenius mechanisms.
    notes : dict
        Free-form facts kept with the mechanism (written by :meth:`to_dict`).

    Raises
    ------
    NetworkError
        For arrays of mismatched shapes or negative orders.
    ParameterError
        For negative rate constants.
    """

    species: tuple[str, ...]
    V: np.ndarray
    kf: np.ndarray
    kr: np.ndarray
    orders: np.ndarray | None = None
    arrhenius: ArrheniusRates | None = None
    reference_temperature: float | None = None
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the shapes and values and store the arrays as float arrays."""
        V = np.atleast_2d(np.asarray(self.V, dtype=float))
        n_s = len(self.species)
        if V.shape[1] != n_s:
            raise NetworkError(f"V has {V.shape[1]} columns but there are {n_s} species")
        kf = np.asarray(self.kf, dtype=float).reshape(-1)
        kr = np.asarray(self.kr, dtype=float).reshape(-1)
        if kf.shape != (V.shape[0],) or kr.shape != (V.shape[0],):
            raise NetworkError(f"need one kf and one kr per reaction ({V.shape[0]}), got "
                               f"{kf.shape} and {kr.shape}")
        if np.any(kf < 0) or np.any(kr < 0):
            raise ParameterError(f"rate constants must be ≥ 0, got kf={kf}, kr={kr}")
        object.__setattr__(self, "species", tuple(self.species))
        object.__setattr__(self, "V", V)
        object.__setattr__(self, "kf", kf)
        object.__setattr__(self, "kr", kr)
        if self.orders is not None:
            o = np.atleast_2d(np.asarray(self.orders, dtype=float))
            if o.shape != V.shape:
                raise NetworkError(f"orders have shape {o.shape}, V has {V.shape}")
            if np.any(o < 0):
                raise NetworkError("reaction orders must be ≥ 0")
            object.__setattr__(self, "orders", o)
            self._repair_catalytic_rows()

    def _repair_catalytic_rows(self) -> None:
        """Store catalytic rows with negative products as ``v/g``, rate ×g, where that is valid.

        ``g`` is the greatest common divisor of the row's integer stoichiometry; the rate
        law ``k·Π c^order·v`` is unchanged (see the module docstring).
        """
        V, o = self.V, self.orders
        if not (np.all(np.abs(V - np.round(V)) <= _INTEGER_TOL)
                and np.all(np.abs(o - np.round(o)) <= _INTEGER_TOL)):
            return
        scale = np.ones(V.shape[0])
        for i in range(V.shape[0]):
            if np.all(o[i] + V[i] >= -_INTEGER_TOL):
                continue
            g = int(np.gcd.reduce(np.abs(np.round(V[i])).astype(np.int64)))
            if g > 1 and np.all(o[i] + V[i] / g >= -_INTEGER_TOL):
                scale[i] = g
        if np.all(scale == 1):
            return
        object.__setattr__(self, "V", V / scale[:, None])
        object.__setattr__(self, "kf", self.kf * scale)
        object.__setattr__(self, "kr", self.kr * scale)
        ar = self.arrhenius
        if ar is not None:
            object.__setattr__(self, "arrhenius", ArrheniusRates(
                ar.prefactor_f * scale, ar.prefactor_r * scale, ar.energy_f, ar.energy_r,
                ar.gas_constant))

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_rows(cls, species, rows: list[tuple[dict[str, int], float, float]],
                  **kw) -> Mechanism:
        """Build from ``[(row as {species: coefficient}, kf, kr), ...]``.

        Parameters
        ----------
        species : sequence of str
            The species names.
        rows : list of tuple
            ``(row, kf, kr)`` per reaction, ``row`` a mapping ``{species: coefficient}``.
        **kw
            Further fields of :class:`Mechanism`.

        Returns
        -------
        Mechanism
            The mechanism.

        Raises
        ------
        NetworkError
            For a row naming an unknown species.
        """
        species = tuple(species)
        V = np.zeros((len(rows), len(species)))
        for i, (row, _, _) in enumerate(rows):
            for name, c in row.items():
                if name not in species:
                    raise NetworkError(f"unknown species {name!r}; species are {list(species)}")
                V[i, species.index(name)] = c
        return cls(species, V, [r[1] for r in rows], [r[2] for r in rows], **kw)

    # ---------------------------------------------------------------- properties
    @property
    def n_reactions(self) -> int:
        """Number of reactions ``n_r``."""
        return self.V.shape[0]

    @property
    def n_species(self) -> int:
        """Number of species ``n_s``."""
        return len(self.species)

    @property
    def catalytic(self) -> bool:
        """True in catalytic form (reactant orders given separately)."""
        return self.orders is not None

    def subset(self, rows: np.ndarray) -> Mechanism:
        """Return the reactions ``rows`` of this mechanism (rates and Arrhenius kept).

        Parameters
        ----------
        rows : numpy.ndarray
            Indices or a ``(n_r,)`` boolean mask.

        Returns
        -------
        Mechanism
            A new mechanism over the same species (V form; catalytic orders are kept).
        """
        arr = self.arrhenius
        orders = None if self.orders is None else np.asarray(self.orders)[rows]
        return Mechanism(self.species, self.V[rows], self.kf[rows], self.kr[rows], orders,
                         None if arr is None else arr.subset(rows), self.reference_temperature)

    def reactant_orders(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the orders of the forward and reverse directions.

        Returns
        -------
        forward, reverse : numpy.ndarray
            Each ``(n_r, n_s)``.
        """
        if self.orders is not None:
            return self.orders, np.zeros_like(self.orders)
        return np.maximum(0.0, -self.V), np.maximum(0.0, self.V)

    def is_integer(self, tol: float = 1e-9) -> bool:
        """Return whether V (and the orders) are integers within ``tol``.

        Parameters
        ----------
        tol : float, default 1e-9
            The tolerance.

        Returns
        -------
        bool
            True when every entry is within ``tol`` of an integer.
        """
        ok = np.all(np.abs(self.V - np.round(self.V)) <= tol)
        if self.orders is not None:
            ok = ok and np.all(np.abs(self.orders - np.round(self.orders)) <= tol)
        return bool(ok)

    def unphysical_reactions(self, tol: float = 1e-6) -> list[str]:
        """Return why reactions are not physical, one line per bad reaction (empty if none).

        A reaction is unphysical when its coefficients (stoichiometry, orders) are not
        integers within ``tol``, or when it has negative products: in catalytic form a
        species consumed more than its reactant order (``order + v < 0``).

        Parameters
        ----------
        tol : float, default 1e-6
            How far from an integer a coefficient may be.

        Returns
        -------
        list of str
            E.g. ``"reaction 1: A + B -> -2A + 4B has negative products (A)"``.
        """
        out = []
        a, _ = self.reactant_orders()
        for i in range(self.n_reactions):
            if not np.any(self.V[i]) and (self.orders is None or not np.any(self.orders[i])):
                continue
            coeffs = self.V[i] if self.orders is None else np.concatenate([self.V[i], a[i]])
            if np.any(np.abs(coeffs - np.round(coeffs)) > tol):
                out.append(f"reaction {i + 1}: coefficients {np.round(coeffs, 3).tolist()} "
                           "are not integers")
                continue
            negative = [s for s, p in zip(self.species, a[i] + self.V[i]) if p < -tol]
            if negative:
                out.append(f"reaction {i + 1}: {self._line(i)} has negative products "
                           f"({', '.join(negative)})")
        return out

    def is_physical(self, tol: float = 1e-6) -> bool:
        """Return whether every reaction is physical (see :meth:`unphysical_reactions`).

        Parameters
        ----------
        tol : float, default 1e-6
            How far from an integer a coefficient may be.

        Returns
        -------
        bool
            True for integer coefficients and no negative products.
        """
        return not self.unphysical_reactions(tol)

    def rates_at(self, temperature: float | np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Return the rate constants ``(kf, kr)``.

        Parameters
        ----------
        temperature : float or numpy.ndarray or None
            Temperature (K); needed by Arrhenius mechanisms.

        Returns
        -------
        kf, kr : numpy.ndarray
            ``(n_r,)``, or ``(batch, n_r)`` for several temperatures.

        Raises
        ------
        ParameterError
            For an Arrhenius mechanism without a temperature.
        """
        if self.arrhenius is None:
            return self.kf, self.kr
        if temperature is None:
            raise ParameterError("this mechanism has Arrhenius rates: give a temperature (K)")
        return self.arrhenius.rates(temperature)

    # ---------------------------------------------------------------- evaluation
    def rhs(self, conc: np.ndarray, temperature: np.ndarray | float | None = None) -> np.ndarray:
        """Return the mass-action ``du/dt`` of concentrations.

        This is the mass-action law of :func:`rdlab.chemistry.kinetics.mass_action_rates`
        written for *real* exponents: a learned mechanism may still have non-integer rows
        (the no-freezing baseline reports them as they are), which a
        :class:`ReactionNetwork` cannot hold. For integer mechanisms the two agree to
        rounding (``tests/test_discover.py::test_mechanism_rhs_is_the_network_rhs``).

        Parameters
        ----------
        conc : numpy.ndarray
            Concentrations ``(N, n_s)``.
        temperature : numpy.ndarray or float or None, optional
            Scalar or ``(N,)`` K, for Arrhenius mechanisms.

        Returns
        -------
        numpy.ndarray
            ``(N, n_s)``.
        """
        u = np.asarray(conc, dtype=float)
        a, b = self.reactant_orders()
        kf, kr = self.rates_at(temperature)
        kf = np.broadcast_to(kf, (u.shape[0], self.n_reactions))
        kr = np.broadcast_to(kr, (u.shape[0], self.n_reactions))
        with np.errstate(divide="ignore", invalid="ignore"):
            mf = np.prod(np.where(a[None] > 0, u[:, None, :] ** a[None], 1.0), axis=2)
            mr = np.prod(np.where(b[None] > 0, u[:, None, :] ** b[None], 1.0), axis=2)
        net = kf * mf - kr * mr
        return net @ self.V

    # ---------------------------------------------------------------- normal form
    def normalised(self) -> Mechanism:
        """Return the paper's printed form.

        Each reversible row is flipped so that kf ≥ kr, and rows are sorted by descending kf.
        Catalytic mechanisms are only sorted; Arrhenius rows are flipped only when written
        backwards (kf = 0 < kr), so that every row runs forward.

        Returns
        -------
        Mechanism
            The normalised mechanism.
        """
        V, kf, kr = self.V.copy(), self.kf.copy(), self.kr.copy()
        arr = self.arrhenius
        if self.orders is None:
            flip = kr > kf if arr is None else (kf == 0) & (kr > 0)
            V[flip] *= -1
            kf[flip], kr[flip] = self.kr[flip], self.kf[flip]
            if arr is not None and flip.any():
                af, ar = arr.prefactor_f.copy(), arr.prefactor_r.copy()
                ef, er = arr.energy_f.copy(), arr.energy_r.copy()
                af[flip], ar[flip] = arr.prefactor_r[flip], arr.prefactor_f[flip]
                ef[flip], er[flip] = arr.energy_r[flip], arr.energy_f[flip]
                arr = ArrheniusRates(af, ar, ef, er, arr.gas_constant)
        order = np.argsort(-kf, kind="stable")
        orders = None if self.orders is None else self.orders[order]
        if arr is not None:
            arr = ArrheniusRates(arr.prefactor_f[order], arr.prefactor_r[order],
                                 arr.energy_f[order], arr.energy_r[order], arr.gas_constant)
        return Mechanism(self.species, V[order], kf[order], kr[order], orders, arr,
                         self.reference_temperature, dict(self.notes))

    def pruned(self, concentrations: np.ndarray, temperatures: np.ndarray | None = None,
               rtol: float = NEGLIGIBLE_FLUX) -> tuple[Mechanism, list[str]]:
        """Return the mechanism without the directions negligible against the data.

        The rule is :data:`NEGLIGIBLE_FLUX`: direction ``d`` (forward or reverse of a
        reaction) is dropped when, for every species ``x`` it changes,
        ``|v_dx|·max_p flux_pd < rtol·max_p Σ_d' |v_d'x|·flux_pd'`` over the data points ``p``.
        A reversible reaction whose reverse is dropped becomes irreversible (``kr = 0``,
        Arrhenius ``Ar = 0``); a reaction with no direction left is removed. The result is
        :meth:`normalised`.

        Parameters
        ----------
        concentrations : numpy.ndarray
            The data's concentrations, ``(N, n_s)`` (or ``(samples, times, n_s)``).
        temperatures : numpy.ndarray or None, optional
            ``(N,)`` temperatures (K) of the points, for Arrhenius mechanisms.
        rtol : float, default NEGLIGIBLE_FLUX
            The fraction of the turnover below which a direction is negligible.

        Returns
        -------
        mechanism : Mechanism
            The pruned mechanism (``self`` when nothing is negligible).
        dropped : list of str
            One line per dropped direction, naming the reaction and its rate.
        """
        u = np.asarray(concentrations, dtype=float).reshape(-1, self.n_species)
        T = temperatures if temperatures is not None else self.reference_temperature
        a, b = self.reactant_orders()
        kf, kr = (np.broadcast_to(k, (u.shape[0], self.n_reactions)) for k in self.rates_at(T))
        with np.errstate(all="ignore"):
            uu = np.maximum(u, 0.0)[:, None, :]
            ff = kf * np.prod(np.where(a[None] > 0, uu ** a[None], 1.0), axis=2)
            fr = kr * np.prod(np.where(b[None] > 0, uu ** b[None], 1.0), axis=2)
        peak = np.stack([ff.max(axis=0), fr.max(axis=0)])  # (2, n_r): largest flux
        turnover = ((ff + fr) @ np.abs(self.V)).max(axis=0)  # (n_s,)
        contribution = peak[:, :, None] * np.abs(self.V)[None]  # (2, n_r, n_s)
        moved = self.V != 0
        negligible = np.all(~moved[None] | (contribution < rtol * turnover[None, None]),
                            axis=2) & (peak > 0)
        if not negligible.any():
            return self, []
        lines, dropped = self.reaction_lines(), []
        for d, i in zip(*np.nonzero(negligible)):
            k = (self.kf, self.kr)[d][i]
            dropped.append(f"reaction {i + 1} ({lines[i]}): {('forward', 'reverse')[d]} rate "
                           f"{k:.3g} dropped, its flux is below {rtol:g} of the turnover of "
                           "every species it changes")
        keep_f, keep_r = ~negligible[0], ~negligible[1]
        ar = self.arrhenius
        if ar is not None:
            ar = ArrheniusRates(ar.prefactor_f * keep_f, ar.prefactor_r * keep_r, ar.energy_f,
                                ar.energy_r, ar.gas_constant)
        kf_new, kr_new = self.kf * keep_f, self.kr * keep_r
        rows = (kf_new > 0) | (kr_new > 0)
        arr = None if ar is None else ArrheniusRates(
            ar.prefactor_f[rows], ar.prefactor_r[rows], ar.energy_f[rows], ar.energy_r[rows],
            ar.gas_constant)
        out = Mechanism(self.species, self.V[rows], kf_new[rows], kr_new[rows],
                        None if self.orders is None else self.orders[rows], arr,
                        self.reference_temperature, dict(self.notes))
        return out.normalised(), dropped

    def compare(self, truth: Mechanism, temperature: float | None = None) -> dict:
        """Match each true reaction to a learned one and report the rate errors.

        A learned reaction matches when it has the same row, or the negated row with the
        directions swapped (catalytic: same orders and row).

        Parameters
        ----------
        truth : Mechanism
            The true mechanism.
        temperature : float or None, optional
            Temperature (K) at which Arrhenius rates are compared.

        Returns
        -------
        dict
            ``{"exact": bool, "matched": [...], "max_rate_error": float, ...}`` where ``exact``
            means the integer structure equals the truth up to row order and sign and no extra
            reaction carries a rate above 1e-6 of the smallest true rate.
        """
        T = temperature if temperature is not None else truth.reference_temperature
        kf_t, kr_t = truth.rates_at(T)
        kf_l, kr_l = self.rates_at(T)
        used: set[int] = set()
        matched = []
        exact = self.n_species == truth.n_species and self.is_integer(1e-6)
        for i in range(truth.n_reactions):
            found = None
            for j in range(self.n_reactions):
                if j in used:
                    continue
                same_orders = True
                if truth.orders is not None or self.orders is not None:
                    if truth.orders is None or self.orders is None:
                        same_orders = False
                    else:
                        same_orders = np.allclose(truth.orders[i], self.orders[j], atol=1e-6)
                if same_orders and np.allclose(self.V[j], truth.V[i], atol=1e-6):
                    found = (j, kf_l[j], kr_l[j])
                elif (truth.orders is None and self.orders is None
                      and np.allclose(self.V[j], -truth.V[i], atol=1e-6)):
                    found = (j, kr_l[j], kf_l[j])
                if found:
                    break
            if found is None:
                exact = False
                matched.append({"reaction": i, "learned": None})
                continue
            j, kf_j, kr_j = found
            used.add(j)
            err_f = abs(kf_j - kf_t[i]) / kf_t[i] if kf_t[i] > 0 else None
            err_r = abs(kr_j - kr_t[i]) / kr_t[i] if kr_t[i] > 0 else None
            matched.append({"reaction": i, "learned": j, "kf": float(kf_j), "kr": float(kr_j),
                            "kf_true": float(kf_t[i]), "kr_true": float(kr_t[i]),
                            "kf_error": err_f, "kr_error": err_r})
        positive = np.concatenate([kf_t[kf_t > 0], kr_t[kr_t > 0]])
        floor = 1e-6 * float(positive.min()) if positive.size else 0.0
        extra = [j for j in range(self.n_reactions) if j not in used
                 and max(kf_l[j], kr_l[j]) > floor and np.any(self.V[j] != 0)]
        if extra:
            exact = False
        errs = [e for m in matched for e in (m.get("kf_error"), m.get("kr_error"))
                if e is not None]
        return {"exact": bool(exact), "matched": matched, "extra_reactions": extra,
                "max_rate_error": float(max(errs)) if errs else float("nan")}

    # ---------------------------------------------------------------- output
    def to_network(self, temperature: float | None = None,
                   min_rate: float = 0.0) -> ReactionNetwork:
        """Return the directed reactions (forward then reverse) of the integer-rounded mechanism.

        Parameters
        ----------
        temperature : float or None, optional
            Temperature (K) of the rates of an Arrhenius mechanism.
        min_rate : float, default 0.0
            Directions with a rate ≤ ``min_rate`` are left out.

        Returns
        -------
        ReactionNetwork
            The network.

        Raises
        ------
        NetworkError
            When orders and stoichiometry give negative products.
        """
        kf, kr = self.rates_at(temperature if temperature is not None
                               else self.reference_temperature)
        a, b = self.reactant_orders()
        V = np.round(self.V).astype(np.int64)
        a = np.round(a).astype(np.int64)
        b = np.round(b).astype(np.int64)
        R_cols, P_cols, rates = [], [], []
        for i in range(self.n_reactions):
            if not np.any(V[i]) and self.orders is None:
                continue
            prod_f = a[i] + V[i]
            if np.any(prod_f < 0):
                raise NetworkError(f"reaction {i}: orders {a[i]} and stoichiometry {V[i]} give "
                                   "negative products")
            if kf[i] > min_rate:
                R_cols.append(a[i])
                P_cols.append(prod_f)
                rates.append(float(kf[i]))
            if self.orders is None and kr[i] > min_rate:
                R_cols.append(b[i])
                P_cols.append(b[i] - V[i])
                rates.append(float(kr[i]))
        n = len(self.species)
        R = np.array(R_cols, dtype=np.int64).T if R_cols else np.zeros((n, 0), np.int64)
        P = np.array(P_cols, dtype=np.int64).T if P_cols else np.zeros((n, 0), np.int64)
        return ReactionNetwork(self.species, R, P, tuple(rates))

    def _line(self, i: int) -> str:
        """Return reaction ``i`` as text, ``"H2 + O <-> H + OH"`` style (rounded)."""
        v = np.round(self.V[i]).astype(int)
        if self.orders is not None:
            a = self.orders[i]
            lhs = {s: int(round(o)) for s, o in zip(self.species, a) if round(o)}
            rhs = {s: int(round(o + c)) for s, o, c in zip(self.species, a, v) if round(o + c)}
            return f"{format_side(lhs) or '0'} -> {format_side(rhs) or '0'}"
        lhs = {s: -c for s, c in zip(self.species, v) if c < 0}
        rhs = {s: c for s, c in zip(self.species, v) if c > 0}
        arrow = "<->" if self.kr[i] > 0 else "->"
        return f"{format_side(lhs) or '0'} {arrow} {format_side(rhs) or '0'}"

    def reaction_lines(self) -> list[str]:
        """Return human-readable reactions, ``"H2 + O <-> H + OH"`` style (rounded coefficients).

        Returns
        -------
        list of str
            One line per reaction.
        """
        return [self._line(i) for i in range(self.n_reactions)]

    def table(self, digits: int = 3) -> str:
        """Return the paper's table: one row per reaction, the V row, kf and kr (or A and Ea).

        Integer coefficients print as integers, others with ``digits`` decimals; zero prints
        as ``0`` (never ``-0.000``) and rates in ``e`` notation with ``digits`` decimals.

        Parameters
        ----------
        digits : int, default 3
            Decimals of non-integer coefficients and of the rates.

        Returns
        -------
        str
            The table.
        """
        heads = list(self.species)
        rate_heads = (["Af", "Ar", "Ef", "Er"] if self.arrhenius is not None else ["kf", "kr"])
        width = max(8, *(len(h) for h in heads)) + 1
        out = ["   " + "".join(h.rjust(width) for h in heads)
               + "".join(h.rjust(11) for h in rate_heads) + "   reaction"]
        lines = self.reaction_lines()
        integer = self.is_integer(_INTEGER_TOL)
        for i in range(self.n_reactions):
            row = f"{i + 1:>2} " + "".join(_coefficient(x, digits, integer).rjust(width)
                                           for x in self.V[i])
            if self.arrhenius is not None:
                ar = self.arrhenius
                vals = [ar.prefactor_f[i], ar.prefactor_r[i], ar.energy_f[i], ar.energy_r[i]]
            else:
                vals = [self.kf[i], self.kr[i]]
            row += "".join(_rate(x, digits).rjust(11) for x in vals) + "   " + lines[i]
            out.append(row)
        return "\n".join(out)

    def to_dict(self) -> dict:
        """Return the mechanism as plain Python values (read back by :meth:`from_dict`).

        Returns
        -------
        dict
            ``species``, ``reactions`` (equation, V, kf, kr; orders, Af, Ar, Ef, Er when
            present), and ``gas_constant``, ``reference_temperature`` and ``notes`` when set.
        """
        d: dict = {"species": list(self.species),
                   "reactions": [{"equation": line, "V": [float(x) for x in self.V[i]],
                                  "kf": float(self.kf[i]), "kr": float(self.kr[i])}
                                 for i, line in enumerate(self.reaction_lines())]}
        if self.orders is not None:
            for i, r in enumerate(d["reactions"]):
                r["orders"] = [float(x) for x in self.orders[i]]
        if self.arrhenius is not None:
            ar = self.arrhenius
            for i, r in enumerate(d["reactions"]):
                r.update(Af=float(ar.prefactor_f[i]), Ar=float(ar.prefactor_r[i]),
                         Ef=float(ar.energy_f[i]), Er=float(ar.energy_r[i]))
            d["gas_constant"] = ar.gas_constant
        if self.reference_temperature is not None:
            d["reference_temperature"] = self.reference_temperature
        if self.notes:
            d["notes"] = self.notes
        return d

    def to_yaml(self) -> str:
        """Return :meth:`to_dict` as YAML text.

        Returns
        -------
        str
            The YAML document.
        """
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, d: dict) -> Mechanism:
        """Rebuild a mechanism from :meth:`to_dict`.

        Parameters
        ----------
        d : dict
            What :meth:`to_dict` returned.

        Returns
        -------
        Mechanism
            The mechanism.
        """
        rs = d["reactions"]
        orders = [r["orders"] for r in rs] if rs and "orders" in rs[0] else None
        arr = None
        if rs and "Af" in rs[0]:
            arr = ArrheniusRates(*(np.array([r[k] for r in rs]) for k in ("Af", "Ar", "Ef", "Er")),
                                 gas_constant=float(d.get("gas_constant", GAS_CONSTANT)))
        return cls(tuple(d["species"]), np.array([r["V"] for r in rs]),
                   [r["kf"] for r in rs], [r["kr"] for r in rs], orders, arr,
                   d.get("reference_temperature"), dict(d.get("notes", {})))



def _coefficient(x: float, digits: int, integer: bool) -> str:
    """Return a stoichiometric coefficient as text: ``-1``, ``0``, ``0.497`` (never ``-0``)."""
    if integer:
        return str(int(round(x)) + 0)
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _rate(x: float, digits: int) -> str:
    """Return a rate constant as text: ``0`` for zero, else with ``digits`` decimals (``e``)."""
    if x == 0:
        return "0"
    return f"{x:.{digits}e}"
