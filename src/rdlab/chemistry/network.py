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
    """Return the content of the YAML file ``path``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    what : str
        What the file is, for error messages (e.g. ``"network file"``).

    Returns
    -------
    object
        The parsed YAML content.

    Raises
    ------
    DataError
        Naming ``what`` and the file when it is missing, a folder, not text or not valid
        YAML.
    """
    from rdlab.settings import read_text_file, yaml_loader, yaml_problem

    text = read_text_file(path, what, "YAML")
    try:
        return yaml.load(text, Loader=yaml_loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise DataError(f"{what} {str(path)!r} is not valid YAML: {yaml_problem(exc)}"
                        ) from None


def index_of_name(name: str, n_reactions: int) -> int | None:
    """Return the reaction a name ``k<r>`` indexes, if any.

    Parameters
    ----------
    name : str
        A parameter name.
    n_reactions : int
        Number of directed reactions.

    Returns
    -------
    int or None
        ``r`` when ``name`` is the index name ``k<r>`` of one of ``n_reactions`` reactions,
        else ``None``.
    """
    m = _INDEX_NAME.fullmatch(name)
    if m is None or len(m[1]) > 9:
        return None
    r = int(m[1])
    return r if r < n_reactions else None


def reserved_meaning(name: str, species: Sequence[str]) -> str | None:
    """Return what the parameter ``name`` means besides a rate label.

    Parameters
    ----------
    name : str
        A parameter name.
    species : sequence of str
        The network's species.

    Returns
    -------
    str or None
        The flow rate, a diffusion coefficient or a feed concentration, in words; ``None``
        when ``name`` is none of them.
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
    """A mass-action reaction network of species and directed reactions.

    ``n_species`` species and ``n_reactions`` directed reactions (a reversible reaction is a
    forward/reverse pair). Usually built with :meth:`from_text`, :meth:`from_yaml` or
    :meth:`from_sbml`.

    Attributes
    ----------
    species : tuple of str
        Species names, in the order of the species axis of every array.
    reactant_matrix : numpy.ndarray
        ``R``, integer array of shape ``(n_species, n_reactions)``: reactant coefficients.
    product_matrix : numpy.ndarray
        ``P``, integer array of shape ``(n_species, n_reactions)``: product coefficients.
    default_rates : tuple of (float or None)
        Rate constant of each directed reaction (``None`` where the text gave none). Units:
        concentration^(1 − order) / time.
    rate_names : tuple of (str or None)
        Optional label of each rate constant (e.g. ``"k"``), used to address it in sweeps.

    Raises
    ------
    NetworkError
        If there are no species or duplicate ones, the matrices are not non-negative
        integers of matching shape ``(n_species, n_reactions)``, the rates or names do not
        match the reaction count, or a rate name is used twice or means something else.
    """

    species: tuple[str, ...]
    reactant_matrix: np.ndarray
    product_matrix: np.ndarray
    default_rates: tuple[float | None, ...] = field(default=())
    rate_names: tuple[str | None, ...] = field(default=())

    def __post_init__(self) -> None:
        """Validate and freeze the matrices, rates and names."""
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
        """Refuse a rate label that is also ``f``, ``D_<s>``, ``feed_<s>`` or an index name.

        Every parameter name must mean one thing: a rate label may not be ``f``,
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

        Parameters
        ----------
        text : str or sequence of str
            Reaction lines, one text block or a list of lines.
        species : sequence of str, optional
            Fixes the species order (and may list species that take part in no reaction);
            by default species are ordered by first appearance.

        Returns
        -------
        ReactionNetwork
            The network.

        Raises
        ------
        NetworkError
            If a species used in a reaction is missing from an explicit ``species`` list,
            the network has more than :data:`MAX_REACTIONS` directed reactions, or the text
            is not valid reaction text.
        """
        parsed = parse_lines(text)
        return cls.from_parsed(parsed, species)

    @classmethod
    def from_parsed(
        cls, parsed: Iterable[ParsedReaction], species: Sequence[str] | None = None
    ) -> ReactionNetwork:
        """Build a network from parsed reactions (a reversible one gives two columns).

        Parameters
        ----------
        parsed : iterable of ParsedReaction
            Parsed reaction lines (:func:`~rdlab.chemistry.reaction_text.parse_lines`).
        species : sequence of str, optional
            The species order, as in :meth:`from_text`.

        Returns
        -------
        ReactionNetwork
            The network.

        Raises
        ------
        NetworkError
            If the network has more than :data:`MAX_REACTIONS` directed reactions or uses a
            species missing from ``species``.
        """
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
        """Build a network from a mapping, the inverse of :meth:`to_dict`.

        Parameters
        ----------
        data : dict
            ``{'species': [...], 'reactions': ['A -> B : 1.0', ...]}``; ``species`` is
            optional. ``reactions`` may also be one text block (a YAML ``|`` string), read
            line by line exactly as :meth:`from_text` reads it.

        Returns
        -------
        ReactionNetwork
            The network.

        Raises
        ------
        NetworkError
            If ``data`` is not a mapping, has other keys, lacks ``reactions``, or a value
            has the wrong type.
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
        """Read a network from a YAML file.

        Parameters
        ----------
        path : str or pathlib.Path
            A file written by :meth:`to_yaml`, or a file whose ``network`` key holds one.

        Returns
        -------
        ReactionNetwork
            The network.

        Raises
        ------
        DataError
            If the file is missing, not text or not valid YAML.
        NetworkError
            If its content is not a network; the message names the file.
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
        """Read the mass-action network of an SBML file.

        Rate laws must be mass action; boundary/constant species are folded into the rate
        constants (see :mod:`rdlab.chemistry.sbml_import`, whose
        :func:`~rdlab.chemistry.sbml_import.read_sbml` also gives the initial
        concentrations).

        Parameters
        ----------
        path : str or pathlib.Path
            The SBML file.

        Returns
        -------
        ReactionNetwork
            The network.

        Raises
        ------
        NetworkError
            If the model has rate rules, events or other laws than mass action (naming the
            reaction).
        """
        from rdlab.chemistry.sbml_import import read_sbml

        return read_sbml(path).network

    @classmethod
    def from_antimony(cls, source: str | Path) -> ReactionNetwork:
        """Read the mass-action network of Antimony text or an Antimony file.

        Read as :meth:`from_sbml` reads its SBML translation. Needs the optional
        ``antimony`` package (``pip install 'rdlab[antimony]'``).

        Parameters
        ----------
        source : str or pathlib.Path
            Antimony text, or a file (a ``Path``, or a string without newline or ``;``).

        Returns
        -------
        ReactionNetwork
            The network.
        """
        from rdlab.chemistry.sbml_import import read_antimony

        return read_antimony(source).network

    # ------------------------------------------------------------------ export
    def reaction_text(self, r: int, with_rate: bool = True) -> str:
        """Return the text of directed reaction ``r``.

        Parameters
        ----------
        r : int
            Index of the directed reaction.
        with_rate : bool, default True
            Append the rate constant or its label after ``:`` when known.

        Returns
        -------
        str
            E.g. ``'U + 2V -> 3V : 1.0'``.
        """
        line = f"{format_side(self.reactants_of(r))} -> {format_side(self.products_of(r))}"
        if with_rate and (self.default_rates[r] is not None or self.rate_names[r] is not None):
            line += " : " + format_rate(self.default_rates[r], self.rate_names[r])
        return line

    def to_lines(self) -> list[str]:
        """Return the network as reaction lines.

        A reaction immediately followed by its reverse is written once with ``<->``.
        ``from_text(to_lines())`` gives back the same network.

        Returns
        -------
        list of str
            One line per reaction (or reversible pair).
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
        """Return the network as reaction text, one line each (:meth:`to_lines`)."""
        return "\n".join(self.to_lines()) + "\n"

    def to_dict(self) -> dict:
        """Return the network as a mapping, the inverse of :meth:`from_dict`.

        Returns
        -------
        dict
            ``{'species': [...], 'reactions': [...]}`` with the lines of :meth:`to_lines`.
        """
        return {"species": list(self.species), "reactions": self.to_lines()}

    def to_yaml(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as a YAML file.

        Parameters
        ----------
        path : str or pathlib.Path
            The file to write.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        return path

    # ------------------------------------------------------------------ structure
    @property
    def n_species(self) -> int:
        """Number of species."""
        return len(self.species)

    @property
    def n_reactions(self) -> int:
        """Number of directed reactions."""
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
        """Return the reactants of directed reaction ``r``.

        Parameters
        ----------
        r : int
            Index of the directed reaction.

        Returns
        -------
        dict of str to int
            Species → coefficient, species with coefficient 0 left out.
        """
        return {s: int(n) for s, n in zip(self.species, self.reactant_matrix[:, r]) if n}

    def products_of(self, r: int) -> dict[str, int]:
        """Return the products of directed reaction ``r``.

        Parameters
        ----------
        r : int
            Index of the directed reaction.

        Returns
        -------
        dict of str to int
            Species → coefficient, species with coefficient 0 left out.
        """
        return {s: int(n) for s, n in zip(self.species, self.product_matrix[:, r]) if n}

    def species_index(self, name: str) -> int:
        """Return the index of a species on the species axis.

        Parameters
        ----------
        name : str
            A species name.

        Returns
        -------
        int
            Its index in :attr:`species`.

        Raises
        ------
        NetworkError
            If there is no such species (the species are listed).
        """
        try:
            return self.species.index(name)
        except ValueError:
            raise NetworkError(
                f"unknown species {name!r}; species are {list(self.species)}"
            ) from None

    def rate_index(self, name: str) -> int:
        """Return the index of the reaction whose rate constant is labelled ``name``.

        Parameters
        ----------
        name : str
            A rate label; ``k3`` (a ``k`` followed by a number) addresses reaction 3 when no
            rate carries that label.

        Returns
        -------
        int
            Index of the directed reaction.

        Raises
        ------
        NetworkError
            If no rate is called ``name`` (the named rates are listed).
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
        """Tell whether reaction ``b`` undoes reaction ``a``."""
        R, P = self.reactant_matrix, self.product_matrix
        return bool(np.array_equal(R[:, a], P[:, b]) and np.array_equal(P[:, a], R[:, b]))

    def reverse_pairs(self) -> list[tuple[int, int]]:
        """Return the pairs of directed reactions that undo each other.

        Found by matching reactants to products; each reaction is in at most one pair.

        Returns
        -------
        list of tuple of (int, int)
            Pairs ``(forward, reverse)``.
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
        """Return a basis of the left null space of the stoichiometry ``S``.

        Rows ``w`` with ``w·S = 0``, so that ``w·X`` is conserved by the reactions alone.

        Parameters
        ----------
        tol : float, default 1e-10
            Singular values below ``tol`` times the largest (at least 1) count as zero.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_laws, n_species)``.
        """
        S = self.stoichiometry.astype(float)
        u, s, vt = np.linalg.svd(S.T)  # S.T: (n_reactions, n_species)
        rank = int(np.sum(s > tol * max(1.0, s.max(initial=0.0))))
        return vt[rank:]

    def with_rates(self, rates: Sequence[float]) -> ReactionNetwork:
        """Return a copy whose default rate constants are ``rates``.

        Parameters
        ----------
        rates : sequence of float
            One rate constant per directed reaction.

        Returns
        -------
        ReactionNetwork
            The copy (rate names kept).

        Raises
        ------
        NetworkError
            If the number of rates is not the number of reactions.
        """
        rates = [float(r) for r in rates]
        if len(rates) != self.n_reactions:
            raise NetworkError(f"{len(rates)} rates for {self.n_reactions} reactions")
        return ReactionNetwork(self.species, self.reactant_matrix, self.product_matrix,
                               tuple(rates), self.rate_names)

    def __eq__(self, other: object) -> bool:
        """Compare species, matrices, default rates and rate names."""
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
        """Hash the species and the matrices."""
        return hash((self.species, self.reactant_matrix.tobytes(), self.product_matrix.tobytes()))

    def __repr__(self) -> str:
        """Show the species and the number of reactions."""
        return (f"ReactionNetwork(species={list(self.species)}, "
                f"n_reactions={self.n_reactions})")

    def __str__(self) -> str:
        """Return the network as reaction text (:meth:`to_text`)."""
        return self.to_text()


def _reaction_line(item):
    """Return a reaction list item as text.

    YAML reads ``- U + 2V -> 3V : 1.0`` (the README's form: a colon between spaces) as the
    one-entry mapping ``{"U + 2V -> 3V": 1.0}``; that is the line ``"U + 2V -> 3V : 1.0"``.
    Anything else is left for the grammar to refuse.
    """
    if isinstance(item, dict) and len(item) == 1:
        (text, rate), = item.items()
        if isinstance(text, str) and isinstance(rate, (str, int, float)) \
                and not isinstance(rate, bool):
            return f"{text} : {rate}"
    return item


def _kind(value) -> str:
    """Describe a value and its type briefly, for error messages."""
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
