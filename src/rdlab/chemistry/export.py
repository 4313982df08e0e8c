"""Export of a mass-action reaction network to Antimony text and to SBML.

Each *directed* reaction of a :class:`~rdlab.chemistry.network.ReactionNetwork` becomes one
irreversible reaction (a reversible pair is written as two reactions) whose rate law is mass
action, ``v_r = k_r · Π_i X_i^{R_ir}``. Species are concentrations in a single compartment of
volume 1, so the exported model follows the same equations ``dX/dt = (P − R)·v`` as the
well-mixed engines of :mod:`rdlab.simulate` without flow (time and concentration units are
whatever the network's rate constants are expressed in).

Identifiers are shared by both formats:

* species keep their names where these are valid identifiers (letters, digits and ``_``,
  not starting with a digit) and not reserved words of Antimony or of SBML's formula syntax
  (``time``, ``pi``, ``in``, ``species``, ``exp``, ...); otherwise they are sanitised and
  suffixed (``time`` becomes ``time_1``), and the original name is kept as display name;
* rate constants take the network's rate names where given, and ``k0``, ``k1``, ... (the
  index of the directed reaction) otherwise. A name that is its own reaction's index name
  (``k1`` on reaction 1) is written ``k1_1``, so that ``k<r>`` always means an unnamed
  rate; a named rate keeps its name as the SBML parameter's name (in Antimony as a display
  name where it differs from the identifier, ``k1_1 is "k1"``), so that
  :mod:`rdlab.chemistry.sbml_import` reads back the same network;
* reactions are ``J0``, ``J1``, ..., the compartment is ``cell``.

Both write the initial concentration of every species (0 unless an initial state is given).
Numbers are written exactly in Antimony (shortest ``repr``) and with 15 significant digits in
SBML (libsbml's writer).

SBML export needs ``python-libsbml``; Antimony export has no dependency.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdlab.checks import nonnegative_number
from rdlab.chemistry.network import ReactionNetwork
from rdlab.errors import NetworkError, ParameterError, RdlabError

__all__ = ["to_antimony", "to_sbml", "write_antimony", "write_sbml"]

#: Constants of SBML's Level 3 formula syntax; libsbml reads them in any letter case.
_FORMULA_CONSTANTS = frozenset({
    "avogadro", "exponentiale", "false", "inf", "infinity", "nan", "notanumber", "pi", "time",
    "true",
})

#: Keywords, predefined symbols, unit names and functions of Antimony (case-sensitive).
_ANTIMONY_RESERVED = frozenset({
    # keywords
    "after", "and", "annotation", "as", "at", "compartment", "const", "delete", "DNA", "end",
    "event", "ext", "formula", "fromTrigger", "function", "gene", "has", "import", "in", "is",
    "model", "module", "not", "operator", "or", "persistent", "priority", "reaction",
    "species", "substanceOnly", "t0", "unit", "var", "xor",
    # functions
    "abs", "arccos", "arccosh", "arccot", "arccoth", "arccsc", "arccsch", "arcsec", "arcsech",
    "arcsin", "arcsinh", "arctan", "arctanh", "ceil", "ceiling", "cos", "cosh", "cot", "coth",
    "csc", "csch", "delay", "divide", "eq", "exp", "factorial", "floor", "geq", "gt",
    "implies", "leq", "ln", "log", "log10", "lt", "max", "min", "minus", "neq", "piecewise",
    "plus", "pow", "power", "quotient", "rateOf", "rem", "root", "sec", "sech", "sin", "sinh",
    "sqr", "sqrt", "tan", "tanh", "times",
    # SBML base units
    "ampere", "becquerel", "candela", "coulomb", "dimensionless", "farad", "gram", "gray",
    "henry", "hertz", "item", "joule", "katal", "kelvin", "kilogram", "liter", "litre",
    "lumen", "lux", "meter", "metre", "mole", "newton", "ohm", "pascal", "radian", "second",
    "siemens", "sievert", "steradian", "tesla", "volt", "watt", "weber",
})

#: An initial state: ``{species: concentration}`` (species left out start at 0) or one
#: concentration per species in network order (a sequence or a 1-d array).
InitialState = Mapping[str, float] | Sequence[float] | np.ndarray

_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_]")


def _reserved(name: str) -> bool:
    return name in _ANTIMONY_RESERVED or name.lower() in _FORMULA_CONSTANTS


class _Namer:
    """Hands out identifiers that are valid, not reserved and unique within one model."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def claim(self, wanted: str, prefix: str) -> str:
        base = _INVALID_CHARS.sub("_", wanted)
        if not base or not (base[0].isalpha() or base[0] == "_"):
            base = prefix + base
        candidate, i = base, 0
        while candidate in self.taken or _reserved(candidate):
            i += 1
            candidate = f"{base}_{i}"
        self.taken.add(candidate)
        return candidate


@dataclass(frozen=True)
class _Model:
    """Everything both writers need: identifiers, values and mass-action rate laws."""

    name: str
    model_id: str
    compartment: str
    species: tuple[str, ...]  # original names
    species_ids: tuple[str, ...]
    initial: tuple[float, ...]  # concentration, per species
    rate_ids: tuple[str, ...]
    rate_labels: tuple[str | None, ...]  # the network's rate names (None where unnamed)
    rates: tuple[float, ...]  # concentration^(1 − order) / time, per directed reaction
    reaction_ids: tuple[str, ...]
    reactants: tuple[tuple[tuple[str, int], ...], ...]  # (species id, coefficient) per reaction
    products: tuple[tuple[tuple[str, int], ...], ...]
    laws: tuple[str, ...]  # mass-action rate law per reaction, e.g. "k0*H2^2*O"


def _prepare(
    network: ReactionNetwork, initial: InitialState | None, name: str
) -> _Model:
    if not isinstance(network, ReactionNetwork):
        raise NetworkError(f"expected a ReactionNetwork, got {type(network).__name__}")
    n_r = network.n_reactions
    rates: list[float] = []
    for r, k in enumerate(network.default_rates):
        label = f"reaction {r} ({network.reaction_text(r, with_rate=False)})"
        if k is None:
            raise NetworkError(
                f"{label} has no rate constant; give one in the reaction text "
                "(e.g. 'A -> B : 0.5') or use network.with_rates([...]) before exporting"
            )
        rates.append(nonnegative_number(k, f"the rate constant of {label}"))

    concentrations = _initial_concentrations(network, initial)

    namer = _Namer()
    species_ids = tuple(namer.claim(s, "s_") for s in network.species)
    # a label that is its reaction's index name k<r> is written k<r>_1 (with its name), so
    # that the identifier k<r> always means an unnamed rate
    namer.taken.update(f"k{r}" for r, label in enumerate(network.rate_names)
                       if label == f"k{r}")
    named = {r: namer.claim(label, "k_")  # the network keeps labels unique
             for r, label in enumerate(network.rate_names) if label is not None}
    rate_ids = tuple(named[r] if r in named else namer.claim(f"k{r}", "k_") for r in range(n_r))
    compartment = namer.claim("cell", "c_")
    reaction_ids = tuple(namer.claim(f"J{r}", "J_") for r in range(n_r))
    model_id = namer.claim(name or "rdlab_model", "m_")

    R, P = network.reactant_matrix, network.product_matrix
    reactants, products, laws = [], [], []
    for r in range(n_r):
        lhs = tuple((species_ids[i], int(R[i, r])) for i in range(network.n_species) if R[i, r])
        rhs = tuple((species_ids[i], int(P[i, r])) for i in range(network.n_species) if P[i, r])
        reactants.append(lhs)
        products.append(rhs)
        factors = [rate_ids[r]] + [sid if n == 1 else f"{sid}^{n}" for sid, n in lhs]
        laws.append("*".join(factors))
    return _Model(
        name=name,
        model_id=model_id,
        compartment=compartment,
        species=network.species,
        species_ids=species_ids,
        initial=tuple(concentrations),
        rate_ids=rate_ids,
        rate_labels=tuple(network.rate_names),
        rates=tuple(rates),
        reaction_ids=reaction_ids,
        reactants=tuple(reactants),
        products=tuple(products),
        laws=tuple(laws),
    )


def _initial_concentrations(
    network: ReactionNetwork, initial: InitialState | None
) -> list[float]:
    """Return one concentration per species (0 where ``initial`` gives none), each ≥ 0."""
    concentrations = [0.0] * network.n_species
    if initial is None:
        return concentrations
    if isinstance(initial, Mapping):
        items = list(initial.items())
    elif isinstance(initial, (Sequence, np.ndarray)) and not isinstance(initial, (str, bytes)):
        if isinstance(initial, np.ndarray) and initial.ndim != 1:
            raise ParameterError(f"initial must be one concentration per species (a 1-d "
                                 f"array), got shape {initial.shape}")
        values = initial.tolist() if isinstance(initial, np.ndarray) else list(initial)
        if len(values) != network.n_species:
            raise ParameterError(f"initial has {len(values)} concentrations for the "
                                 f"{network.n_species} species {list(network.species)}")
        items = list(zip(network.species, values))
    else:
        raise ParameterError("initial must map species names to concentrations (or list one "
                             f"per species), got {type(initial).__name__}")
    for species, value in items:
        i = network.species_index(species)
        concentrations[i] = nonnegative_number(value, f"the initial concentration of {species!r}")
    return concentrations


def _display_names(m: _Model) -> list[tuple[str, str]]:
    """Return ``(identifier, original name)`` of the renamed species and rate labels."""
    out = [(sid, s) for sid, s in zip(m.species_ids, m.species) if sid != s]
    out += [(kid, label) for kid, label in zip(m.rate_ids, m.rate_labels)
            if label is not None and kid != label]
    return out


def _number(x: float) -> str:
    """Return the shortest text that reads back as exactly ``x``."""
    return repr(float(x))


def _side(terms: tuple[tuple[str, int], ...]) -> str:
    return " + ".join(sid if n == 1 else f"{n} {sid}" for sid, n in terms)


# ---------------------------------------------------------------------------- Antimony
def to_antimony(
    network: ReactionNetwork,
    initial: InitialState | None = None,
    name: str = "rdlab_model",
) -> str:
    """Return the Antimony text of a mass-action network.

    Parameters
    ----------
    network : ReactionNetwork
        The network; every directed reaction needs a rate constant (``default_rates``).
    initial : Mapping[str, float] or sequence of float or numpy.ndarray or None, optional
        The initial state written into the model: ``{name: concentration}`` (species not
        listed start at 0) or one concentration per species in network order; ``None``
        (all 0) by default. Concentrations are in the units of the rate constants. Callers
        pass the state they have: ``rdlab design`` the drive's feed, ``rdlab discover`` the
        first sample of its data.
    name : str, optional
        Model name (sanitised to an identifier); default ``"rdlab_model"``.

    Returns
    -------
    str
        A ``model ... end`` block: a compartment ``cell`` of volume 1, one species per network
        species (a concentration), one irreversible reaction ``J<r>`` per directed reaction
        with rate law ``k_r * Π X_i^{R_ir}`` (amount/time, equal to concentration/time since
        the volume is 1), the initial concentrations and the rate constants
        (concentration^(1 − order) / time).

    Raises
    ------
    NetworkError
        A reaction without rate constant (named in the message), or an unknown species in
        ``initial``.
    ParameterError
        A negative or non-finite rate constant or initial concentration.
    """
    m = _prepare(network, initial, name)
    out = [
        "// Mass-action reaction network exported by rdlab.",
        f"// Species are concentrations in compartment {m.compartment} (volume 1); one",
        "// irreversible reaction per directed reaction.",
        f"model {m.model_id}",
        f"  compartment {m.compartment} = 1;",
    ]
    out += [f"  species {sid} in {m.compartment};" for sid in m.species_ids]
    out.append("")
    out.append("  // Reactions")
    for rid, lhs, rhs, law in zip(m.reaction_ids, m.reactants, m.products, m.laws):
        arrow = f"{_side(lhs)} -> {_side(rhs)}".lstrip()  # empty sides: "-> X", "V -> "
        out.append(f"  {rid}: {arrow}; {law};")
    out.append("")
    out.append("  // Initial concentrations")
    out += [f"  {sid} = {_number(x)};" for sid, x in zip(m.species_ids, m.initial)]
    out.append("")
    out.append("  // Rate constants")
    out += [f"  {kid} = {_number(k)};" for kid, k in zip(m.rate_ids, m.rates)]
    renamed = _display_names(m)
    if renamed:
        out.append("")
        out.append("  // Display names (rdlab names that differ from the identifier)")
        out += [f"  {sid} is {_quoted(s)};" for sid, s in renamed]
    out.append("end")
    return "\n".join(out) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_antimony(
    network: ReactionNetwork,
    path: str | Path,
    initial: InitialState | None = None,
    name: str = "rdlab_model",
) -> Path:
    """Write :func:`to_antimony` of ``network`` to ``path`` and return the path.

    Parameters
    ----------
    network : ReactionNetwork
        The network, as in :func:`to_antimony`.
    path : str or Path
        The file to write (conventionally ``*.ant``).
    initial : Mapping[str, float] or sequence of float or numpy.ndarray or None, optional
        The initial state, ``{species: concentration}`` or one value per species, as in
        :func:`to_antimony`.
    name : str, optional
        Model name, as in :func:`to_antimony`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NetworkError, ParameterError
        As :func:`to_antimony`.
    """
    path = Path(path)
    path.write_text(to_antimony(network, initial, name))
    return path


# ---------------------------------------------------------------------------- SBML
def _import_libsbml():  # libsbml ships no type stubs
    try:
        import libsbml
    except ImportError:
        raise RdlabError(
            "SBML export needs python-libsbml, which is not installed: "
            "pip install 'python-libsbml>=5.20'"
        ) from None
    return libsbml


def to_sbml(
    network: ReactionNetwork,
    initial: InitialState | None = None,
    name: str = "rdlab_model",
) -> str:
    """Return the SBML Level 3 Version 2 document of a mass-action network, as XML text.

    Parameters
    ----------
    network : ReactionNetwork
        The network; every directed reaction needs a rate constant (``default_rates``).
    initial : Mapping[str, float] or sequence of float or numpy.ndarray or None, optional
        The initial state written into the model: ``{name: concentration}`` (species not
        listed start at 0) or one concentration per species in network order; ``None``
        (all 0) by default. Concentrations are in the units of the rate constants. Callers
        pass the state they have: ``rdlab design`` the drive's feed, ``rdlab discover`` the
        first sample of its data.
    name : str, optional
        Model name (its identifier is sanitised; the name itself is kept as the model's
        ``name``); default ``"rdlab_model"``.

    Returns
    -------
    str
        The SBML document: one constant compartment ``cell`` of size 1; one species per
        network species (``initialConcentration``, ``hasOnlySubstanceUnits=false``,
        ``boundaryCondition=false``, ``constant=false``); one constant global parameter per
        rate constant (concentration^(1 − order) / time); one irreversible reaction per
        directed reaction with constant species references and the mass-action kinetic law
        ``k_r * Π X_i^{R_ir}`` (amount/time, equal to concentration/time since the volume
        is 1). No units are declared.

    Raises
    ------
    NetworkError
        A reaction without rate constant (named in the message), an unknown species in
        ``initial``, or a document that libsbml finds invalid (its errors are listed).
    ParameterError
        A negative or non-finite rate constant or initial concentration.
    RdlabError
        python-libsbml is not installed.
    """
    libsbml = _import_libsbml()
    m = _prepare(network, initial, name)
    ok = _checker(libsbml)
    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    ok(model.setId(m.model_id), f"set the model id {m.model_id!r}")
    ok(model.setName(m.name), f"set the model name {m.name!r}")
    _add_compartment(model, m, ok)
    _add_species(model, m, ok)
    _add_rate_constants(model, m, ok)
    for r in range(len(m.reaction_ids)):
        _add_reaction(libsbml, model, m, r,
                      f"create reaction {r} ({network.reaction_text(r, with_rate=False)})", ok)
    _refuse_invalid(libsbml, doc)
    return libsbml.writeSBMLToString(doc)


def _checker(libsbml) -> Callable[[int, str], None]:
    """Return ``ok(code, what)``: raise a NetworkError unless libsbml's ``code`` is success."""

    def ok(code: int, what: str) -> None:
        if code != libsbml.LIBSBML_OPERATION_SUCCESS:
            raise NetworkError(
                f"SBML export failed to {what}: {libsbml.OperationReturnValue_toString(code)}"
            )

    return ok


def _add_compartment(model, m: _Model, ok: Callable[[int, str], None]) -> None:
    """Add the one constant compartment of size 1."""
    comp = model.createCompartment()
    ok(comp.setId(m.compartment), "create the compartment")
    ok(comp.setSpatialDimensions(3), "set the compartment dimensions")
    ok(comp.setSize(1.0), "set the compartment size")
    ok(comp.setConstant(True), "make the compartment constant")


def _add_species(model, m: _Model, ok: Callable[[int, str], None]) -> None:
    """Add the SBML species: concentrations with their initial values, names kept."""
    for sid, original, x0 in zip(m.species_ids, m.species, m.initial):
        sp = model.createSpecies()
        what = f"create species {original!r}"
        ok(sp.setId(sid), what)
        ok(sp.setName(original), what)
        ok(sp.setCompartment(m.compartment), what)
        ok(sp.setInitialConcentration(x0), what)
        ok(sp.setHasOnlySubstanceUnits(False), what)
        ok(sp.setBoundaryCondition(False), what)
        ok(sp.setConstant(False), what)


def _add_rate_constants(model, m: _Model, ok: Callable[[int, str], None]) -> None:
    """Add one constant global parameter per rate constant, named by its label if any."""
    for kid, k, label in zip(m.rate_ids, m.rates, m.rate_labels):
        par = model.createParameter()
        what = f"create the rate constant {kid!r}"
        ok(par.setId(kid), what)
        if label is not None:  # the label, as species keep theirs (unnamed: no name)
            ok(par.setName(label), what)
        ok(par.setValue(k), what)
        ok(par.setConstant(True), what)


def _add_reaction(libsbml, model, m: _Model, r: int, what: str,
                  ok: Callable[[int, str], None]) -> None:
    """Add directed reaction ``r``: irreversible, its species references, mass-action law."""
    rx = model.createReaction()
    ok(rx.setId(m.reaction_ids[r]), what)
    ok(rx.setReversible(False), what)
    for create, terms in ((rx.createReactant, m.reactants[r]),
                          (rx.createProduct, m.products[r])):
        for sid, n in terms:
            ref = create()
            ok(ref.setSpecies(sid), what)
            ok(ref.setStoichiometry(float(n)), what)
            ok(ref.setConstant(True), what)
    math_ast = libsbml.parseL3FormulaWithModel(m.laws[r], model)
    if math_ast is None:
        raise NetworkError(
            f"SBML export failed to {what}: cannot parse the rate law {m.laws[r]!r}: "
            f"{libsbml.getLastParseL3Error()}"
        )
    law = rx.createKineticLaw()
    ok(law.setMath(math_ast), what)


def _refuse_invalid(libsbml, doc) -> None:
    """Raise a NetworkError listing (up to five of) libsbml's consistency errors, if any."""
    doc.checkConsistency()
    errors = [
        doc.getError(i) for i in range(doc.getNumErrors())
        if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]
    if errors:
        listed = "; ".join(f"line {e.getLine()}: {e.getMessage().strip()}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise NetworkError(f"the exported SBML is invalid: {listed}{more}")


def write_sbml(
    network: ReactionNetwork,
    path: str | Path,
    initial: InitialState | None = None,
    name: str = "rdlab_model",
) -> Path:
    """Write :func:`to_sbml` of ``network`` to ``path`` and return the path.

    Parameters
    ----------
    network : ReactionNetwork
        The network, as in :func:`to_sbml`.
    path : str or Path
        The file to write (conventionally ``*.xml`` or ``*.sbml``).
    initial : Mapping[str, float] or sequence of float or numpy.ndarray or None, optional
        The initial state, ``{species: concentration}`` or one value per species, as in
        :func:`to_sbml`.
    name : str, optional
        Model name, as in :func:`to_sbml`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NetworkError, ParameterError, RdlabError
        As :func:`to_sbml`.
    """
    path = Path(path)
    path.write_text(to_sbml(network, initial, name))
    return path
