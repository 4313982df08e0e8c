"""The reaction network: species, directed reactions and their stoichiometry.

This is the one place where the structure of a mass-action network is defined. Every engine
reads ``R`` (reactant coefficients) and ``S = P − R`` from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from rdlab.chemistry.reaction_text import (
    ParsedReaction,
    format_rate,
    format_side,
    parse_lines,
)
from rdlab.errors import DataError, NetworkError

#: The index name of reaction r: ``k`` followed by r in plain digits (``k0``, ``k12``).
_INDEX_NAME = re.compile(r"k(0|[1-9][0-9]*)")
#: Most directed reactions rdlab builds or simulates. Beyond it generating a network and
#: compiling its kernels takes minutes to hours (the fast engine compiles ~500 reactions in
#: a few seconds), so a larger network is refused up front, naming its count.
MAX_REACTIONS = 10_000
#: Keys of a network mapping (YAML file or :meth:`ReactionNetwork.to_dict`).
NETWORK_KEYS = ("species", "reactions")


def read_yaml_file(path: str | Path, what: str):
    """The content of the YAML file ``path``, or :class:`~rdlab.errors.DataError` naming
    ``what`` and the file when it is missing, a folder, not text or not valid YAML.
    """
    from rdlab.settings import read_text_file, yaml_loader, yaml_problem

    text = read_text_file(path, what, "YAML")
    try:
        return yaml.load(text, Loader=yaml_loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise DataError(f"{what} {str(path)!r} is not valid YAML: {yaml_problem(exc)}"
                        ) from None


def index_of_name(name: str, n_reactions: int) -> int | None:
    """``r`` when ``name`` is the index name ``k<r>`` of one of ``n_reactions`` reactions."""
    m = _INDEX_NAME.fullmatch(name)
    if m is None or len(m[1]) > 9:
        return None
    r = int(m[1])
    return r if r < n_reactions else None


def reserved_meaning(name: str, species: Sequence[str]) -> str | None:
    """What the parameter ``name`` means besides a rate label (flow, a diffusion
    coefficient, a feed), or None.
    """
    if name == "f":
        return "the flow rate f"
    if name.startswith("D_") and name[2:] in species:
        return f"the diffusion coefficient of {name[2:]}"
    if name.startswith("feed_") and name[5:] in species:
        return f"the feed concentration of {name[5:]}"
    return None


@dataclass(frozen=True, eq=False)
class ReactionNetwork:
    """A mass-action reaction network of ``n_species`` species and ``n_reactions`` directed
    reactions (a reversible reaction is a forward/reverse pair).

    Attributes
    ----------
    species:
        Species names, in the order of the species axis of every array.
    reactant_matrix:
        ``R``, integer array of shape ``(n_species, n_reactions)``: reactant coefficients.
    product_matrix:
        ``P``, integer array of shape ``(n_species, n_reactions)``: product coefficients.
    default_rates:
        Rate constant of each directed reaction (``None`` where the text gave none). Units:
        concentration^(1 − order) / time.
    rate_names:
        Optional label of each rate constant (e.g. ``"k"``), used to address it in sweeps.
    """

    species: tuple[str, ...]
    reactant_matrix: np.ndarray
    product_matrix: np.ndarray
    default_rates: tuple[float | None, ...] = field(default=())
    rate_names: tuple[str | None, ...] = field(default=())

    def __post_init__(self) -> None:
        R = np.asarray(self.reactant_matrix)
        P = np.asarray(self.product_matrix)
        n_s = len(self.species)
        if n_s == 0:
            raise NetworkError("a reaction network needs at least one species")
        if len(set(self.species)) != n_s:
            dup = sorted({s for s in self.species if self.species.count(s) > 1})
            raise NetworkError(f"species listed twice: {dup}")
        for name, M in (("reactant", R), ("product", P)):
            if M.ndim != 2 or M.shape[0] != n_s:
                raise NetworkError(
                    f"{name} matrix has shape {M.shape}; expected (n_species={n_s}, n_reactions)"
                )
            if not np.issubdtype(M.dtype, np.integer):
                if not np.all(np.equal(np.mod(M, 1), 0)):
                    raise NetworkError(f"{name} matrix has non-integer coefficients")
            if np.any(M < 0):
                raise NetworkError(f"{name} matrix has negative coefficients")
        if R.shape != P.shape:
            raise NetworkError(f"reactant {R.shape} and product {P.shape} matrices differ")
        R = R.astype(np.int64)
        P = P.astype(np.int64)
        R.flags.writeable = False
        P.flags.writeable = False
        object.__setattr__(self, "reactant_matrix", R)
        object.__setattr__(self, "product_matrix", P)
        n_r = R.shape[1]
        rates = tuple(self.default_rates) or (None,) * n_r
        names = tuple(self.rate_names) or (None,) * n_r
        if len(rates) != n_r or len(names) != n_r:
            raise NetworkError(
                f"{len(rates)} default rates / {len(names)} rate names for {n_r} reactions"
            )
        named = [n for n in names if n is not None]
        if len(set(named)) != len(named):
            raise NetworkError(f"rate names used twice: {sorted(named)}")
        bad = [n for n in named if n in self.species]
        if bad:
            raise NetworkError(f"rate names {bad} clash with species names")
        object.__setattr__(self, "default_rates", rates)
        object.__setattr__(self, "rate_names", names)
        self._check_name_clashes()

    def _check_name_clashes(self) -> None:
        """Every parameter name must mean one thing: a rate label may not be ``f``,
        ``D_<species>``, ``feed_<species>`` or another reaction's index name ``k<r>``.
        """
        for r, name in enumerate(self.rate_names):
            if name is None:
                continue
            meaning = reserved_meaning(name, self.species)
            j = index_of_name(name, self.n_reactions)
            if meaning is None and j is not None and j != r:
                meaning = f"the index name of reaction {j} ({self.reaction_text(j, False)!r})"
            if meaning is not None:
                raise NetworkError(
                    f"rate name {name!r} of reaction {r} ({self.reaction_text(r, False)!r}) "
                    f"is also {meaning}; parameter names must be unique across rate names, "
                    "f, D_<species>, feed_<species> and index names k0.."
                    f"k{self.n_reactions - 1}: rename the rate")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_text(
        cls, text: str | Sequence[str], species: Sequence[str] | None = None
    ) -> ReactionNetwork:
        """Build a network from reaction text (see :mod:`rdlab.chemistry.reaction_text`).

        ``species`` fixes the species order (and may list species that take part in no
        reaction); by default species are ordered by first appearance. A species used in a
        reaction but missing from an explicit ``species`` list is an error.
        """
        parsed = parse_lines(text)
        return cls.from_parsed(parsed, species)

    @classmethod
    def from_parsed(
        cls, parsed: Iterable[ParsedReaction], species: Sequence[str] | None = None
    ) -> ReactionNetwork:
        parsed = list(parsed)
        count = sum(2 if p.reversible else 1 for p in parsed)
        if count > MAX_REACTIONS:
            raise NetworkError(f"the network has {count:,} directed reactions, more than the "
                               f"limit of {MAX_REACTIONS:,} (rdlab.chemistry.network."
                               "MAX_REACTIONS)")
        seen: list[str] = []
        for p in parsed:
            for s in (*p.reactants, *p.products):
                if s not in seen:
                    seen.append(s)
        if species is None:
            order = seen
        else:
            order = list(species)
            unknown = [s for s in seen if s not in order]
            if unknown:
                raise NetworkError(
                    f"unknown species {unknown}: not in the species list {order}"
                )
        index = {s: i for i, s in enumerate(order)}
        columns_r, columns_p, rates, names = [], [], [], []

        def column(terms: dict[str, int]) -> np.ndarray:
            c = np.zeros(len(order), dtype=np.int64)
            for s, n in terms.items():
                c[index[s]] = n
            return c

        for p in parsed:
            directions = [(p.reactants, p.products)]
            if p.reversible:
                directions.append((p.products, p.reactants))
            for d, (lhs, rhs) in enumerate(directions):
                columns_r.append(column(lhs))
                columns_p.append(column(rhs))
                rates.append(p.rates[d])
                names.append(p.rate_names[d])
        return cls(
            species=tuple(order),
            reactant_matrix=np.stack(columns_r, axis=1),
            product_matrix=np.stack(columns_p, axis=1),
            default_rates=tuple(rates),
            rate_names=tuple(names),
        )

    @classmethod
    def from_dict(cls, data: dict) -> ReactionNetwork:
        """Inverse of :meth:`to_dict`:
        ``{'species': [...], 'reactions': ['A -> B : 1.0', ...]}``.

        ``reactions`` may also be one text block (a YAML ``|`` string), read line by line
        exactly as :meth:`from_text` reads it. Other keys are refused.
        """
        if not isinstance(data, dict):
            raise NetworkError(f"a network must be a mapping with a 'reactions' list, got "
                               f"{_kind(data)}")
        unknown = sorted(str(k) for k in set(data) - set(NETWORK_KEYS))
        if unknown:
            raise NetworkError(f"unknown network keys {unknown}; known keys are "
                               f"{list(NETWORK_KEYS)}")
        if "reactions" not in data:
            raise NetworkError("a network needs a 'reactions' list")
        reactions = data["reactions"]
        if not isinstance(reactions, (list, str)):
            raise NetworkError(f"'reactions' must be a list of reaction lines (or one text "
                               f"block), got {_kind(reactions)}")
        if isinstance(reactions, list):
            reactions = [_reaction_line(item) for item in reactions]
        species = data.get("species")
        if species is not None and (not isinstance(species, list)
                                    or not all(isinstance(s, str) for s in species)):
            raise NetworkError(f"'species' must be a list of species names, got {species!r}")
        return cls.from_text(reactions, species)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ReactionNetwork:
        """Read a network from a YAML file written by :meth:`to_yaml` (or a file whose
        ``network`` key holds one). Errors name the file.
        """
        data = read_yaml_file(path, "network file")
        if isinstance(data, dict) and "network" in data:
            if not isinstance(data["network"], dict):
                raise NetworkError(
                    f"network file {str(path)!r}: its 'network' key is not a mapping of "
                    "species and reactions (a run's config.yaml is rerun with --config)")
            data = data["network"]
        try:
            return cls.from_dict(data)
        except NetworkError as exc:
            raise NetworkError(f"network file {str(path)!r}: {exc}") from None

    @classmethod
    def from_sbml(cls, path: str | Path) -> ReactionNetwork:
        """Read the mass-action network of an SBML file. Rate laws must be mass action;
        boundary/constant species are folded into the rate constants; rate rules, events,
        other laws are refused naming the reaction (see :mod:`rdlab.chemistry.sbml_import`,
        whose :func:`~rdlab.chemistry.sbml_import.read_sbml` also gives the initial
        concentrations).
        """
        from rdlab.chemistry.sbml_import import read_sbml

        return read_sbml(path).network

    @classmethod
    def from_antimony(cls, source: str | Path) -> ReactionNetwork:
        """Read the mass-action network of Antimony text or an Antimony file (a ``Path``, or
        a string without newline or ``;``), as :meth:`from_sbml` reads its SBML translation.
        Needs the optional ``antimony`` package (``pip install 'rdlab[antimony]'``).
        """
        from rdlab.chemistry.sbml_import import read_antimony

        return read_antimony(source).network

    # ------------------------------------------------------------------ export
    def reaction_text(self, r: int, with_rate: bool = True) -> str:
        """Text of directed reaction ``r``, e.g. ``'U + 2V -> 3V : 1.0'``."""
        line = f"{format_side(self.reactants_of(r))} -> {format_side(self.products_of(r))}"
        if with_rate and (self.default_rates[r] is not None or self.rate_names[r] is not None):
            line += " : " + format_rate(self.default_rates[r], self.rate_names[r])
        return line

    def to_lines(self) -> list[str]:
        """The network as reaction lines; a reaction immediately followed by its reverse is
        written once with ``<->``. ``from_text(to_lines())`` gives back the same network.
        """
        lines, r = [], 0
        while r < self.n_reactions:
            nxt = r + 1
            if nxt < self.n_reactions and self._is_reverse(r, nxt):
                line = (
                    f"{format_side(self.reactants_of(r))} <-> {format_side(self.products_of(r))}"
                )
                given = [self.default_rates[i] is not None or self.rate_names[i] is not None
                         for i in (r, nxt)]
                if all(given):
                    line += " : " + ", ".join(
                        format_rate(self.default_rates[i], self.rate_names[i]) for i in (r, nxt)
                    )
                elif any(given):  # keep one-sided information by writing two arrows
                    lines.append(self.reaction_text(r))
                    lines.append(self.reaction_text(nxt))
                    r += 2
                    continue
                lines.append(line)
                r += 2
            else:
                lines.append(self.reaction_text(r))
                r += 1
        return lines

    def to_text(self) -> str:
        return "\n".join(self.to_lines()) + "\n"

    def to_dict(self) -> dict:
        return {"species": list(self.species), "reactions": self.to_lines()}

    def to_yaml(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        return path

    # ------------------------------------------------------------------ structure
    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def n_reactions(self) -> int:
        return self.reactant_matrix.shape[1]

    @property
    def stoichiometry(self) -> np.ndarray:
        """``S = P − R``, shape ``(n_species, n_reactions)``."""
        return self.product_matrix - self.reactant_matrix

    @property
    def orders(self) -> np.ndarray:
        """Total reaction order of each directed reaction, shape ``(n_reactions,)``."""
        return self.reactant_matrix.sum(axis=0)

    def reactants_of(self, r: int) -> dict[str, int]:
        return {s: int(n) for s, n in zip(self.species, self.reactant_matrix[:, r]) if n}

    def products_of(self, r: int) -> dict[str, int]:
        return {s: int(n) for s, n in zip(self.species, self.product_matrix[:, r]) if n}

    def species_index(self, name: str) -> int:
        try:
            return self.species.index(name)
        except ValueError:
            raise NetworkError(
                f"unknown species {name!r}; species are {list(self.species)}"
            ) from None

    def rate_index(self, name: str) -> int:
        """Index of the reaction whose rate constant is labelled ``name``; ``k3`` (a ``k``
        followed by a number) addresses reaction 3 when no rate carries that label.
        """
        if name in self.rate_names:
            return self.rate_names.index(name)
        r = index_of_name(name, self.n_reactions)
        if r is not None:
            return r
        raise NetworkError(
            f"no rate constant called {name!r}; named rates are "
            f"{[n for n in self.rate_names if n]}, or use k0..k{self.n_reactions - 1}"
        )

    def _is_reverse(self, a: int, b: int) -> bool:
        R, P = self.reactant_matrix, self.product_matrix
        return bool(np.array_equal(R[:, a], P[:, b]) and np.array_equal(P[:, a], R[:, b]))

    def reverse_pairs(self) -> list[tuple[int, int]]:
        """Pairs ``(forward, reverse)`` of directed reactions that undo each other, each
        reaction in at most one pair, found by matching reactants to products.
        """
        used: set[int] = set()
        pairs = []
        for a in range(self.n_reactions):
            if a in used:
                continue
            for b in range(a + 1, self.n_reactions):
                if b not in used and self._is_reverse(a, b):
                    pairs.append((a, b))
                    used.update((a, b))
                    break
        return pairs

    def conservation_laws(self, tol: float = 1e-10) -> np.ndarray:
        """Basis of the left null space of ``S``: rows ``w`` with ``w·S = 0``, so that
        ``w·X`` is conserved by the reactions alone. Shape ``(n_laws, n_species)``.
        """
        S = self.stoichiometry.astype(float)
        u, s, vt = np.linalg.svd(S.T)  # S.T: (n_reactions, n_species)
        rank = int(np.sum(s > tol * max(1.0, s.max(initial=0.0))))
        return vt[rank:]

    def with_rates(self, rates: Sequence[float]) -> ReactionNetwork:
        """A copy whose default rate constants are ``rates``."""
        rates = [float(r) for r in rates]
        if len(rates) != self.n_reactions:
            raise NetworkError(f"{len(rates)} rates for {self.n_reactions} reactions")
        return ReactionNetwork(self.species, self.reactant_matrix, self.product_matrix,
                               tuple(rates), self.rate_names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReactionNetwork):
            return NotImplemented
        return (
            self.species == other.species
            and np.array_equal(self.reactant_matrix, other.reactant_matrix)
            and np.array_equal(self.product_matrix, other.product_matrix)
            and self.default_rates == other.default_rates
            and self.rate_names == other.rate_names
        )

    def __hash__(self) -> int:
        return hash((self.species, self.reactant_matrix.tobytes(), self.product_matrix.tobytes()))

    def __repr__(self) -> str:
        return (f"ReactionNetwork(species={list(self.species)}, "
                f"n_reactions={self.n_reactions})")

    def __str__(self) -> str:
        return self.to_text()


def _reaction_line(item):
    """A reaction list item as text. YAML reads ``- U + 2V -> 3V : 1.0`` (the README's form:
    a colon between spaces) as the one-entry mapping ``{"U + 2V -> 3V": 1.0}``; that is the
    line ``"U + 2V -> 3V : 1.0"``. Anything else is left for the grammar to refuse.
    """
    if isinstance(item, dict) and len(item) == 1:
        (text, rate), = item.items()
        if isinstance(text, str) and isinstance(rate, (str, int, float)) \
                and not isinstance(rate, bool):
            return f"{text} : {rate}"
    return item


def _kind(value) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
