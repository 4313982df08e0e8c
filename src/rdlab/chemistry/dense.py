"""Dense reaction networks of the Dense-RDN paper (Hunter Elliott et al.).

Two enumerations are offered:

* :func:`dense_network` — the **paper's** prototype sets (eq. 17, appendix B.2):
  R3.1 = {X + Y ⇌ 2Z | X, Y, Z distinct}, R3.2 = {X ⇌ Y | X ≠ Y},
  R3.3 = {X + 2Y ⇌ 3Y | X ≠ Y}, every reversible reaction a forward/reverse pair
  (forward immediately followed by its reverse). For N species that is
  2·[N·C(N−1, 2) + C(N, 2) + N(N−1)] directed reactions: 60 for N = 4, 120 for N = 5.
* :func:`dense_gs_network` and :func:`kitchen_sink_network` — the ordering of the **public
  Dense-RDN code**, which the experiments used: for each unordered pair X < Y (by index) only
  the higher-index species is autocatalytic (X + 2Y → 3Y) and Y → X; forwards first, then all
  reverses in the same order. That is 4·C(N, 2) reactions (24 for N = 4, 40 for N = 5 — the
  counts the paper's appendix quotes). The kitchen sink appends the bimolecular block
  X + Y → 2Z (Z ∉ {X, Y}) and its reverses: N²(N − 1) reactions (48 / 100).

Species are named A, B, C, … (X0, X1, … beyond 26 species).
"""

from __future__ import annotations

import itertools
import string

import numpy as np

from rdlab.chemistry.network import ReactionNetwork
from rdlab.errors import NetworkError

#: Directed reactions of each prototype set for N species (see the module docstring).
_PROTOTYPE_COUNTS = {
    "R3.1": lambda n: 2 * n * (n - 1) * (n - 2) // 2,
    "R3.2": lambda n: 2 * n * (n - 1) // 2,
    "R3.3": lambda n: 2 * n * (n - 1),
}


def _check_species_count(n) -> None:
    """Refuse a species count that is not an integer ≥ 2."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise NetworkError(f"a dense network needs an integer number of species ≥ 2, got {n!r}")


def reaction_count(family: str, n_species: int,
                   prototypes: tuple[str, ...] = ("R3.1", "R3.2", "R3.3")) -> int:
    """Return the number of directed reactions of a dense family, without enumerating them.

    Parameters
    ----------
    family : str
        ``dense``, ``dense-gs`` or ``kitchen-sink``.
    n_species : int
        Number of species, ≥ 2.
    prototypes : tuple of str, default ("R3.1", "R3.2", "R3.3")
        The prototype sets counted for ``dense``.

    Returns
    -------
    int
        The count.

    Raises
    ------
    NetworkError
        For an unknown family or a species count that is not an integer ≥ 2.
    """
    _check_species_count(n_species)
    n = int(n_species)
    pairs = n * (n - 1) // 2
    if family == "dense-gs":
        return 4 * pairs
    if family == "kitchen-sink":
        return n * n * (n - 1)
    if family == "dense":
        return sum(_PROTOTYPE_COUNTS[p](n) for p in prototypes if p in _PROTOTYPE_COUNTS)
    raise NetworkError(f"unknown dense family {family!r}")


def species_names(n: int) -> tuple[str, ...]:
    """Return the species names of a dense network.

    Parameters
    ----------
    n : int
        Number of species, ≥ 2.

    Returns
    -------
    tuple of str
        A, B, C, … (X0, X1, … beyond 26 species).

    Raises
    ------
    NetworkError
        If ``n`` is not an integer ≥ 2.
    """
    _check_species_count(n)
    if n <= 26:
        return tuple(string.ascii_uppercase[:n])
    return tuple(f"X{i}" for i in range(n))


def _network(names, reactions) -> ReactionNetwork:
    """Build a network from reactions given as ``(lhs, rhs)`` lists of (species, count)."""
    n = len(names)
    R = np.zeros((n, len(reactions)), dtype=np.int64)
    P = np.zeros_like(R)
    for r, (lhs, rhs) in enumerate(reactions):
        for i, c in lhs:
            R[i, r] += c
        for i, c in rhs:
            P[i, r] += c
    return ReactionNetwork(names, R, P)


def _bimolecular(n: int) -> list:
    """Return X + Y → 2Z for unordered pairs X < Y and each Z ∉ {X, Y}, in index order."""
    return [(((x, 1), (y, 1)), ((z, 2),))
            for x, y in itertools.combinations(range(n), 2)
            for z in range(n) if z not in (x, y)]


def _reverse(reaction):
    """Return the reverse of a reaction."""
    lhs, rhs = reaction
    return (rhs, lhs)


def dense_network(n_species: int, prototypes: tuple[str, ...] = ("R3.1", "R3.2", "R3.3")
                  ) -> ReactionNetwork:
    """Return the full prototype sets of the paper's eq. 17 (see the module docstring).

    Every reversible reaction is a forward/reverse pair, the forward immediately followed
    by its reverse.

    Parameters
    ----------
    n_species : int
        Number of species, ≥ 2.
    prototypes : tuple of str, default ("R3.1", "R3.2", "R3.3")
        The prototype sets, in order.

    Returns
    -------
    ReactionNetwork
        2·[N·C(N−1, 2) + C(N, 2) + N(N−1)] directed reactions for all three sets (120 for
        N = 5).

    Raises
    ------
    NetworkError
        For an unknown or empty list of prototype sets, or a bad species count.
    """
    names = species_names(n_species)
    n = len(names)
    blocks = {
        "R3.1": _bimolecular(n),
        "R3.2": [(((x, 1),), ((y, 1),)) for x, y in itertools.combinations(range(n), 2)],
        "R3.3": [(((x, 1), (y, 2)), ((y, 3),))
                 for x, y in itertools.permutations(range(n), 2)],
    }
    unknown = [p for p in prototypes if p not in blocks]
    if unknown or not prototypes:
        raise NetworkError(f"unknown prototype set(s) {unknown or prototypes}; "
                           f"choose from {sorted(blocks)}")
    reactions = []
    for p in prototypes:
        for fwd in blocks[p]:
            reactions += [fwd, _reverse(fwd)]
    return _network(names, reactions)


def _gs_forwards(n: int) -> list:
    """Return the forward reactions of the public code's Gray–Scott-like block."""
    pairs = list(itertools.combinations(range(n), 2))
    auto = [(((x, 1), (y, 2)), ((y, 3),)) for x, y in pairs]
    decay = [(((y, 1),), ((x, 1),)) for x, y in pairs]
    return auto + decay


def dense_gs_network(n_species: int) -> ReactionNetwork:
    """Return the public code's Gray–Scott-like dense family.

    Parameters
    ----------
    n_species : int
        Number of species N, ≥ 2.

    Returns
    -------
    ReactionNetwork
        4·C(N,2) reactions (40 for N = 5): forwards first, then all reverses.
    """
    names = species_names(n_species)
    fwd = _gs_forwards(len(names))
    return _network(names, fwd + [_reverse(r) for r in fwd])


def kitchen_sink_network(n_species: int) -> ReactionNetwork:
    """Return the public code's "kitchen sink" network.

    The GS-like block then the bimolecular block, each forwards first then reverses.

    Parameters
    ----------
    n_species : int
        Number of species N, ≥ 2.

    Returns
    -------
    ReactionNetwork
        N²(N − 1) reactions (100 for N = 5).
    """
    names = species_names(n_species)
    n = len(names)
    gs = _gs_forwards(n)
    bi = _bimolecular(n)
    return _network(names, gs + [_reverse(r) for r in gs] + bi + [_reverse(r) for r in bi])


def dense_code_initial_parameters(network: ReactionNetwork, rng: np.random.Generator
                                  ) -> dict[str, np.ndarray]:
    """Draw the public code's initial parameters for the dense families.

    For :func:`dense_gs_network` / :func:`kitchen_sink_network`: each species' first
    autocatalytic reaction (A + 2X → 3X) k = 1, other autocatalytic forwards 0, everything
    else 1e-3, all plus U(±1e-4) noise (clipped at 0 here); D ~ U(0.1, 0.2); f = 0.03;
    feed_i = 4^(−a_i) with a_i the number of pairs in which species i is the autocatalyst.

    Parameters
    ----------
    network : ReactionNetwork
        A network of one of those families.
    rng : numpy.random.Generator
        The random numbers.

    Returns
    -------
    dict of str to numpy.ndarray
        ``rates (n_reactions,)``, ``diffusion (n_species,)``, ``flow ()``,
        ``feed (n_species,)``.
    """
    n = network.n_species
    n_pairs = n * (n - 1) // 2
    k = np.full(network.n_reactions, 1e-3)
    k[:n_pairs] = 0.0
    k[: n - 1] = 1.0  # pairs (A, Y) come first in combinations order: A + 2Y -> 3Y
    k = np.clip(k + rng.uniform(-1e-4, 1e-4, size=k.shape), 0.0, None)
    auto_count = np.array([sum(1 for x, y in itertools.combinations(range(n), 2) if y == i)
                           for i in range(n)])
    return {
        "rates": k,
        "diffusion": rng.uniform(0.1, 0.2, size=n),
        "flow": np.array(0.03),
        "feed": 4.0 ** (-auto_count.astype(float)),
    }
