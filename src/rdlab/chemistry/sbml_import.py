"""Import of SBML and Antimony models as mass-action reaction networks.

:func:`read_sbml` reads an SBML file (any level and version libsbml reads), :func:`read_antimony`
Antimony text or a file of it (converted to SBML by the optional ``antimony`` package,
``pip install 'rdlab[antimony]'``), :func:`read_model` either by the file's suffix. Each
returns an :class:`ImportedModel`: the :class:`~rdlab.chemistry.network.ReactionNetwork`,
the initial concentration of each of its species, and notes on what the import changed.
:meth:`ReactionNetwork.from_sbml <rdlab.chemistry.network.ReactionNetwork.from_sbml>` and
:meth:`~rdlab.chemistry.network.ReactionNetwork.from_antimony` return the network alone.

What is read
------------
* **Rate laws.** A kinetic law must be mass action: one product of constants and species
  powers, ``c · Π_i X_i^{e_i}`` (``k*A*B``, ``k*A^2``, ``k*A*A``, ``cell*k*A``, ``k*A/2``),
  or the difference of two such products, ``kf*A*B - kr*C`` (also ``cell*(kf*A - kr*C)``),
  which becomes a forward/reverse pair of directed reactions. Constants are numbers, global
  or local parameters, compartment sizes and boundary/constant species; exponents are whole
  numbers ≥ 0. Function definitions are expanded first, so a function that *is* mass action
  (COPASI's ``Mass_action_2(k1, A, B)``) is read; Michaelis–Menten, Hill, ``time``,
  piecewise and every other law is refused, naming the reaction.
* **Reactant coefficients** of each directed reaction are the law's species exponents ``e``
  and its products ``e + S`` (forward) or ``e − S`` (reverse), where ``S`` is the SBML
  reaction's net stoichiometry (products − reactants). This keeps ``dX/dt`` exactly: a
  modifier in the law (``E`` in ``k*E*S`` for ``S -> P``) becomes a catalyst on both sides
  (``E + S -> E + P``). A law whose order in a species is below what the reaction consumes
  (``2A -> B`` with law ``k*A``) is not mass action and is refused.
* **Rate constants** are ``c / V``: the constant factor of the term divided by the size ``V``
  of the compartment of the species the reaction changes (an SBML rate is an amount per
  time; rdlab's is a concentration per time). All species a reaction changes must lie in
  compartments of the same size. With ``V = 1`` (and a law without volume factor) or a law
  ``V*k*...`` the rate constant is ``k`` itself. A rate constant that is exactly one
  parameter's value is labelled with that parameter's id (``--set kf=...`` sweeps it) unless
  the id is used by two directed reactions, is rdlab's index name ``k<r>`` of its own
  reaction (the default), or means something else in rdlab (``f``, ``D_X``, ``feed_X``,
  another reaction's ``k<r>``, a species); those stay unlabelled (notes say which).
* **Species.** Species with ``boundaryCondition`` or ``constant`` set never change (rate
  rules and events, which could change them, are refused): their concentration is folded
  into the rate constants and they leave the network (``S -> X`` with ``S`` at 2 and rate
  ``k`` becomes ``0 -> X`` at ``2k``); a reaction with nothing left on either side is
  dropped. Every other species becomes a network species in document order, named by its
  id (or by its ``name`` where the id is rdlab's export renaming of it, ``time_1`` for
  ``time``; an id rdlab cannot use as a name, ``_x``, becomes ``s_x``). Its initial
  concentration is ``initialConcentration``, or ``initialAmount / V``, or 0 where neither is
  set. ``hasOnlySubstanceUnits`` is accepted only in compartments of size 1 (where amount and
  concentration agree).
* **Initial assignments** are evaluated (libsbml's converter); assignment rules are refused
  when they set a species or compartment or a parameter some rate law uses (and ignored
  otherwise: they cannot change the dynamics). Rate rules, algebraic rules, events, fast
  reactions, non-integer or variable stoichiometry and conversion factors are refused.
  Units are not read: rate constants are taken in whatever units the document uses.

Every refusal is a :class:`~rdlab.errors.NetworkError` naming the source (file) and the
reaction, rule or event by id; a file that is missing, not text or not valid SBML/Antimony is
a :class:`~rdlab.errors.DataError` naming the file, with libsbml's (or Antimony's) errors
summarised.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rdlab.chemistry.network import ReactionNetwork, index_of_name, reserved_meaning
from rdlab.errors import DataError, NetworkError, RdlabError
from rdlab.settings import read_text_file

__all__ = ["MODEL_SUFFIXES", "ImportedModel", "read_antimony", "read_model", "read_sbml",
           "sbml_from_antimony", "sbml_to_model"]

#: File suffixes (lower case) that :func:`read_model` reads, and the format of each.
MODEL_SUFFIXES = {".xml": "SBML", ".sbml": "SBML", ".ant": "Antimony", ".antimony": "Antimony"}
#: Most errors of a file quoted in one message.
_SHOWN_ERRORS = 3
#: Most terms a rate law may expand into (a mass-action law has one or two).
_MAX_TERMS = 8
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ImportedModel:
    """A model read from SBML or Antimony.

    Attributes
    ----------
    network : ReactionNetwork
        The mass-action network (rate constants in the document's units,
        concentration^(1 − order) / time).
    initial : dict of str to float
        Initial concentration of each network species, ``{species: value}``, in network
        order.
    constants : dict of str to float
        Boundary or constant species folded into rate constants, ``{sbml id: concentration}``.
    source : str
        The file name, or a description of text given directly.
    name : str
        The model's id (or name), ``""`` where the document has none.
    notes : tuple of str
        What the import changed, one sentence each (folded species, dropped reactions,
        renamed species, rate constants left unlabelled).
    """

    network: ReactionNetwork
    initial: dict[str, float]
    constants: dict[str, float] = field(default_factory=dict)
    source: str = ""
    name: str = ""
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- entry points
def read_model(path: str | Path) -> ImportedModel:
    """Read an SBML or Antimony file, choosing the format by its suffix.

    Parameters
    ----------
    path : str or pathlib.Path
        An SBML (``.xml``, ``.sbml``) or Antimony (``.ant``, ``.antimony``) file (see
        :data:`MODEL_SUFFIXES`).

    Returns
    -------
    ImportedModel
        The network, initial concentrations and notes.

    Raises
    ------
    DataError
        For an unknown suffix, or a file that is missing, not text or not valid.
    NetworkError
        For a model that is not a mass-action network, naming the reaction, rule or event.
    """
    kind = MODEL_SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise DataError(f"model file {str(path)!r}: unknown suffix; SBML files end in .xml or "
                        ".sbml, Antimony files in .ant or .antimony")
    return read_sbml(path) if kind == "SBML" else read_antimony(Path(path))


def read_sbml(path: str | Path) -> ImportedModel:
    """Read the SBML file ``path`` as a mass-action network.

    See the module docstring for what is read and what is refused.

    Parameters
    ----------
    path : str or pathlib.Path
        The SBML file.

    Returns
    -------
    ImportedModel
        The network, initial concentrations and notes.

    Raises
    ------
    DataError
        For a file that is missing, not text or not valid SBML.
    NetworkError
        For a model that is not a mass-action network, naming the reaction, rule or event.
    """
    where = f"SBML file {str(path)!r}"
    return sbml_to_model(read_text_file(path, "SBML file", "SBML"), where)


def read_antimony(source: str | Path) -> ImportedModel:
    """Read Antimony as a mass-action network, through its SBML translation.

    Needs the ``antimony`` package (``pip install 'rdlab[antimony]'``).

    Parameters
    ----------
    source : str or pathlib.Path
        A :class:`~pathlib.Path`, or a string: a string holding a newline or a ``;`` is
        Antimony text, any other string a file name.

    Returns
    -------
    ImportedModel
        The network, initial concentrations and notes.

    Raises
    ------
    DataError
        For a file that is missing or not text, or text Antimony cannot read.
    NetworkError
        For a model that is not a mass-action network.
    RdlabError
        If the ``antimony`` package is not installed.
    """
    if isinstance(source, Path) or ("\n" not in source and ";" not in source):
        where = f"Antimony file {str(source)!r}"
        text = read_text_file(source, "Antimony file", "Antimony")
    else:
        where, text = "Antimony text", source
    return sbml_to_model(sbml_from_antimony(text, where), where)


def sbml_from_antimony(text: str, where: str = "Antimony text") -> str:
    """Return the SBML (Level 3 Version 2) translation of the Antimony text's main model.

    Parameters
    ----------
    text : str
        Antimony text.
    where : str, default "Antimony text"
        Where the text comes from, for messages.

    Returns
    -------
    str
        The SBML document.

    Raises
    ------
    DataError
        Naming ``where`` when Antimony cannot read it.
    RdlabError
        If the ``antimony`` package is not installed.
    """
    antimony = _import_antimony()
    antimony.clearPreviousLoads()
    if antimony.loadAntimonyString(text) < 0:
        raise DataError(f"{where} is not valid Antimony: "
                        f"{_first_lines(antimony.getLastError())}")
    sbml = antimony.getSBMLString(antimony.getMainModuleName())
    if not sbml:
        raise DataError(f"{where}: Antimony gave no SBML: {_first_lines(antimony.getLastError())}")
    return sbml


def sbml_to_model(text: str, where: str = "SBML text") -> ImportedModel:
    """Read SBML given as XML text.

    Parameters
    ----------
    text : str
        The SBML document.
    where : str, default "SBML text"
        Where it comes from (a file name, say), for messages.

    Returns
    -------
    ImportedModel
        The network, initial concentrations and notes.

    Raises
    ------
    DataError
        If the text is not valid or consistent SBML, or holds no model.
    NetworkError
        For a model that is not a mass-action network, naming the reaction, rule or event.
    """
    libsbml = _import_libsbml()
    doc = libsbml.readSBMLFromString(text)
    _refuse_errors(doc, libsbml, where, "is not valid SBML")
    if doc.getModel() is None:
        raise DataError(f"{where} holds no model")
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_MODELING_PRACTICE, False)
    doc.checkConsistency()
    _refuse_errors(doc, libsbml, where, "is not a consistent SBML model")
    for option, what in (("expandFunctionDefinitions", "expand its function definitions"),
                         ("expandInitialAssignments", "evaluate its initial assignments")):
        props = libsbml.ConversionProperties()
        props.addOption(option, True)
        if doc.convert(props) != libsbml.LIBSBML_OPERATION_SUCCESS:
            raise NetworkError(f"{where}: libsbml cannot {what}")
    return _Reader(doc.getModel(), libsbml, where).read()


# ---------------------------------------------------------------------------- helpers
def _import_libsbml():  # libsbml ships no type stubs
    """Import libsbml, or raise an error saying how to install it."""
    try:
        import libsbml
    except ImportError:
        raise RdlabError("SBML import needs python-libsbml, which is not installed: "
                         "pip install 'python-libsbml>=5.20'") from None
    return libsbml


def _import_antimony():
    """Import antimony, or raise an error saying how to install it."""
    try:
        import antimony
    except ImportError:
        raise RdlabError("Antimony import needs the antimony package, which is not installed: "
                         "pip install 'rdlab[antimony]' (or pip install 'antimony>=2.13')"
                         ) from None
    return antimony


def _exported_name(element) -> str | None:
    """Return the ``name`` of an SBML species or parameter when rdlab exported it.

    That is when the name is a valid rdlab name and the id is that name or rdlab's export
    renaming of it (``time`` → ``time_1``); else None.
    """
    name = element.getName() if element.isSetName() else ""
    sid = element.getId()
    if name and _NAME.fullmatch(name) and (
            sid == name or re.fullmatch(re.escape(name) + r"_\d+", sid)):
        return name
    return None


def _first_lines(text: str, n: int = _SHOWN_ERRORS) -> str:
    """Return the first ``n`` non-blank lines of a message, joined by ``;``."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    more = f" (and {len(lines) - n} more lines)" if len(lines) > n else ""
    return "; ".join(lines[:n]) + more if lines else "no message"


def _refuse_errors(doc, libsbml, where: str, what: str) -> None:
    """Raise a DataError quoting the document's first errors, if it has any."""
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errors:
        shown = "; ".join(f"line {e.getLine()}: {' '.join(e.getMessage().split())}"
                          for e in errors[:_SHOWN_ERRORS])
        more = f" (and {len(errors) - _SHOWN_ERRORS} more)" if len(errors) > _SHOWN_ERRORS \
            else ""
        raise DataError(f"{where} {what}: {shown}{more}")


@dataclass
class _Term:
    """One signed product ``sign · value · Π species^power`` of a rate law.

    ``symbols`` are the constants (parameters, compartments, boundary species) multiplied
    into ``value``.
    """

    sign: int
    value: float
    symbols: list[str]
    powers: Counter

    def times(self, other: _Term) -> _Term:
        """Return the product of two terms."""
        return _Term(self.sign * other.sign, self.value * other.value,
                     self.symbols + other.symbols, self.powers + other.powers)


class _NotMassAction(Exception):
    """A rate law that is not mass action; the message says what is wrong."""


class _Reader:
    """Turns one libsbml ``Model`` into an :class:`ImportedModel`."""

    def __init__(self, model, libsbml, where: str) -> None:
        self.model, self.sbml, self.where = model, libsbml, where
        self.notes: list[str] = []

    def fail(self, message: str) -> NetworkError:
        """Return a NetworkError naming the source."""
        return NetworkError(f"{self.where}: {message}")

    # ------------------------------------------------------------------ whole model
    def read(self) -> ImportedModel:
        """Read the whole model."""
        m = self.model
        self._refuse_model_constructs()
        self.size = {c.getId(): (c.getSize() if c.isSetSize() else None)
                     for c in m.getListOfCompartments()}
        self.species_ids, self.initial, self.constants = self._species()
        self.names = self._species_names()
        columns = [col for r in range(m.getNumReactions())
                   for col in self._reaction(m.getReaction(r))]
        labels = self._labels(columns)
        species = [self.names[s] for s in self.species_ids]
        n = len(species)
        R = np.zeros((n, len(columns)), dtype=np.int64)
        P = np.zeros_like(R)
        index = {s: i for i, s in enumerate(self.species_ids)}
        for r, (react, prod, _, _, _) in enumerate(columns):
            for s, c in react.items():
                R[index[s], r] = c
            for s, c in prod.items():
                P[index[s], r] = c
        try:
            network = ReactionNetwork(tuple(species), R, P,
                                      tuple(col[2] for col in columns), tuple(labels))
        except NetworkError as exc:
            raise self.fail(str(exc)) from None
        return ImportedModel(
            network=network,
            initial={self.names[s]: self.initial[s] for s in self.species_ids},
            constants=dict(self.constants), source=self.where,
            name=m.getId() or m.getName() or "", notes=tuple(self.notes))

    def _refuse_model_constructs(self) -> None:
        """Refuse events, algebraic and rate rules, rules that change what laws use."""
        m, sb = self.model, self.sbml
        if m.getNumEvents():
            ids = [e.getId() or f"#{i}" for i, e in enumerate(m.getListOfEvents())]
            raise self.fail(f"events {ids} change the model at run time; rdlab reads "
                            "mass-action reaction networks only")
        used = self._law_symbols()
        for rule in m.getListOfRules():
            var = rule.getVariable() if not rule.isAlgebraic() else ""
            if rule.isAlgebraic():
                raise self.fail(f"algebraic rule ({sb.formulaToL3String(rule.getMath())} = 0) "
                                "is not supported; rdlab reads mass-action networks only")
            if rule.isRate():
                raise self.fail(f"rate rule for {var!r} (d{var}/dt = "
                                f"{sb.formulaToL3String(rule.getMath())}) is not supported; "
                                "only reactions with mass-action laws may change a value")
            if m.getSpecies(var) is not None or m.getCompartment(var) is not None:
                kind = "species" if m.getSpecies(var) is not None else "compartment"
                raise self.fail(f"assignment rule sets {kind} {var!r} "
                                f"({var} = {sb.formulaToL3String(rule.getMath())}); rdlab "
                                "reads mass-action networks only")
            if var in used:
                raise self.fail(f"assignment rule sets {var!r}, which the rate law of "
                                f"reaction {used[var]!r} uses; rate constants must be constant")
        if m.isSetConversionFactor():
            raise self.fail(f"conversion factor {m.getConversionFactor()!r} of the model is "
                            "not supported")

    def _law_symbols(self) -> dict[str, str]:
        """``{symbol: reaction id}`` for every name a kinetic law uses (first reaction)."""
        out: dict[str, str] = {}
        for rx in self.model.getListOfReactions():
            law = rx.getKineticLaw()
            if law is None or law.getMath() is None:
                continue
            nodes = [law.getMath()]
            while nodes:
                node = nodes.pop()
                if node.isName():
                    out.setdefault(node.getName(), rx.getId())
                nodes += [node.getChild(i) for i in range(node.getNumChildren())]
        return out

    # ------------------------------------------------------------------ species
    def _species(self):
        """Return the network species' ids, their initial concentrations, and the constants."""
        ids, initial, constants = [], {}, {}
        for sp in self.model.getListOfSpecies():
            sid = sp.getId()
            if sp.isSetConversionFactor():
                raise self.fail(f"species {sid!r} has a conversion factor "
                                f"({sp.getConversionFactor()!r}), which is not supported")
            size = self.size.get(sp.getCompartment())
            if sp.isSetInitialConcentration():
                conc = sp.getInitialConcentration()
            elif sp.isSetInitialAmount():
                if size is None or size <= 0:
                    raise self.fail(f"species {sid!r} has an initial amount in compartment "
                                    f"{sp.getCompartment()!r}, whose size is not a positive "
                                    "number")
                conc = sp.getInitialAmount() / size
            else:
                conc = 0.0
            if not (math.isfinite(conc) and conc >= 0):
                raise self.fail(f"species {sid!r} has initial concentration {conc}; "
                                "concentrations are finite numbers ≥ 0")
            if sp.getBoundaryCondition() or sp.getConstant():
                # the value it stands for in a rate law: amount if hasOnlySubstanceUnits
                constants[sid] = conc * size if sp.getHasOnlySubstanceUnits() and size else conc
                continue
            if sp.getHasOnlySubstanceUnits() and size != 1.0:
                raise self.fail(f"species {sid!r} is an amount (hasOnlySubstanceUnits) in "
                                f"compartment {sp.getCompartment()!r} of size {size}; rdlab "
                                "reads concentrations (amount and concentration agree only "
                                "in a compartment of size 1)")
            ids.append(sid)
            initial[sid] = float(conc)
        if constants:
            self.notes.append(f"boundary/constant species {sorted(constants)} are folded into "
                              "the rate constants at their initial concentrations")
        return ids, initial, constants

    def _species_names(self) -> dict[str, str]:
        """Return the rdlab name of each network species' id."""
        names: dict[str, str] = {}
        taken = set(self.species_ids)
        for sid in self.species_ids:
            sp = self.model.getSpecies(sid)
            name = _exported_name(sp)
            if name is not None and name != sid and name not in taken:
                new = name  # rdlab's export renamed a reserved word ('time' -> 'time_1')
            elif _NAME.fullmatch(sid):
                new = sid
            else:
                new, i = "s" + sid if sid.startswith("_") else "s_" + sid, 0
                while new in taken:
                    i += 1
                    new = f"s{sid}_{i}"
                self.notes.append(f"species {sid!r} is called {new!r} (rdlab species names "
                                  "start with a letter)")
            taken.add(new)
            names[sid] = new
        return names

    # ------------------------------------------------------------------ reactions
    def _reaction(self, rx) -> list[tuple[dict, dict, float, str | None, str]]:
        """Return the directed reactions of ``rx``, one or two (forward, reverse).

        Each is (reactants, products, rate, parameter id or None, reaction id).
        """
        rid = rx.getId()
        if rx.isSetFast() and rx.getFast():
            raise self.fail(f"reaction {rid!r} is marked fast (quasi-equilibrium), which is "
                            "not supported")
        net = self._net_stoichiometry(rx)
        law = rx.getKineticLaw()
        if law is None or law.getMath() is None:
            raise self.fail(f"reaction {rid!r} has no kinetic law")
        try:
            terms = self._expand(law.getMath(), self._locals(law))
        except _NotMassAction as exc:
            raise self.fail(f"reaction {rid!r}: rate law "
                            f"{self.sbml.formulaToL3String(law.getMath())!r} is not mass "
                            f"action ({exc})") from None
        forward = [t for t in terms if t.sign > 0]
        reverse = [t for t in terms if t.sign < 0]
        if len(forward) != 1 or len(reverse) > 1:
            raise self.fail(
                f"reaction {rid!r}: rate law {self.sbml.formulaToL3String(law.getMath())!r} "
                "is not mass action (expected one product of constants and species powers, "
                "or the difference of two: kf*A*B - kr*C)")
        volume = self._volume(rid, net)
        out = []
        for term, direction in ((forward[0], 1), *((t, -1) for t in reverse)):
            react = {s: int(e) for s, e in term.powers.items() if e}
            prod = {s: react.get(s, 0) + direction * net.get(s, 0)
                    for s in set(react) | set(net)}
            negative = {s: c for s, c in prod.items() if c < 0}
            if negative:
                s = next(iter(sorted(negative)))
                which = "forward" if direction > 0 else "reverse"
                raise self.fail(
                    f"reaction {rid!r}: the {which} rate law is of order {react.get(s, 0)} in "
                    f"{s!r} while the reaction {'consumes' if direction > 0 else 'makes'} "
                    f"{abs(net[s])} {s}; mass action needs each reactant's order to be its "
                    "coefficient")
            prod = {s: c for s, c in prod.items() if c}
            rate = term.value / volume
            if not (math.isfinite(rate) and rate >= 0):
                raise self.fail(f"reaction {rid!r}: the {'forward' if direction > 0 else 'reverse'}"
                                f" rate constant is {rate}; it must be a finite number ≥ 0")
            params = [s for s in term.symbols if s not in self.size and s not in self.constants]
            label = params[0] if len(params) == 1 \
                and rate == self._symbol_values[params[0]] else None
            if label is not None:
                found = law.getParameter(label) or (
                    law.getLocalParameter(label) if self.model.getLevel() >= 3 else None) \
                    or self.model.getParameter(label)
                label = (label, _exported_name(found) if found is not None else None)
            if not react and not prod:
                self.notes.append(f"reaction {rid!r} changes no species once boundary species "
                                  "are held constant; it is left out")
                continue
            out.append((react, prod, float(rate), label, rid))
        return out

    def _net_stoichiometry(self, rx) -> dict[str, int]:
        """Return the net stoichiometry (products − reactants) of the changing species."""
        rid, net = rx.getId(), Counter()
        for refs, sign in ((rx.getListOfReactants(), -1), (rx.getListOfProducts(), 1)):
            for ref in refs:
                sid = ref.getSpecies()
                if ref.isSetStoichiometryMath():
                    raise self.fail(f"reaction {rid!r}: the stoichiometry of {sid!r} is a "
                                    "formula, which is not supported")
                if self.model.getLevel() >= 3 and ref.isSetId() and not ref.getConstant():
                    raise self.fail(f"reaction {rid!r}: the stoichiometry of {sid!r} may "
                                    "change (constant='false'), which is not supported")
                stoich = ref.getStoichiometry() if ref.isSetStoichiometry() or \
                    self.model.getLevel() < 3 else float("nan")
                if not (math.isfinite(stoich) and stoich >= 0 and stoich == int(stoich)):
                    raise self.fail(f"reaction {rid!r}: the stoichiometry of {sid!r} is "
                                    f"{stoich}; mass-action coefficients are whole numbers")
                if sid in self.constants:
                    continue
                net[sid] += sign * int(stoich)
        return {s: c for s, c in net.items() if c}

    def _volume(self, rid: str, net: dict[str, int]) -> float:
        """Return the size of the compartment of the species a reaction changes."""
        sizes = {self.model.getSpecies(s).getCompartment() for s in net}
        values = {self.size[c] for c in sizes}
        if not values:
            return 1.0
        if len(values) > 1:
            raise self.fail(f"reaction {rid!r} changes species in compartments of different "
                            f"sizes ({sorted(sizes)}); rdlab's rate constants are for one "
                            "volume")
        (size,) = values
        if size is None or not (math.isfinite(size) and size > 0):
            raise self.fail(f"reaction {rid!r}: compartment {sorted(sizes)[0]!r} has no "
                            "positive size")
        return float(size)

    def _labels(self, columns) -> list[str | None]:
        """Return the rate labels of the directed reactions.

        A label is the parameter's id, or its name where the id is rdlab's export of that
        name; an id that is the reaction's own index name ``k<r>`` is no label (an unnamed
        rate), unless the parameter's name says it is one.
        """
        labels, explicit = [], []
        for col in columns:
            pid, name = col[3] if col[3] is not None else (None, None)
            labels.append(name if name is not None else pid)
            explicit.append(name is not None)
        count = Counter(label for label in labels if label is not None)
        species = [self.names[s] for s in self.species_ids]
        out: list[str | None] = []
        noted: set[str] = set()
        for r, label in enumerate(labels):
            if label is None:
                out.append(None)
                continue
            mine = not explicit[r] and (index_of_name(label, len(labels)) == r or (
                re.fullmatch(rf"k{r}_\d+", label) is not None
                and self.model.getSpecies(f"k{r}") is not None))
            why = None
            if count[label] > 1:
                why = "sets the rate constant of several directed reactions"
            elif not _NAME.fullmatch(label):
                why = "does not start with a letter"
            elif label in species:
                why = "is also a species name"
            elif reserved_meaning(label, species) is not None:
                why = f"is {reserved_meaning(label, species)} in rdlab"
            elif index_of_name(label, len(labels)) not in (None, r):
                why = f"is rdlab's index name of reaction {index_of_name(label, len(labels))}"
            if why is not None and label not in noted:
                noted.add(label)
                self.notes.append(f"parameter {label!r} {why}: the rate constants it sets "
                                  "are addressed by their index names k<r> instead")
            out.append(None if why is not None or mine else label)
        return out

    # ------------------------------------------------------------------ rate laws
    def _locals(self, law) -> dict[str, float]:
        """Return the values of a kinetic law's local parameters."""
        out = {}
        for params in (law.getListOfParameters(),
                       *([law.getListOfLocalParameters()] if self.model.getLevel() >= 3
                         else [])):
            for p in params:
                out[p.getId()] = p.getValue() if p.isSetValue() else float("nan")
        return out

    def _expand(self, node, local: dict[str, float]) -> list[_Term]:
        """Return a rate law as a sum of terms, like terms merged."""
        self._symbol_values = {}
        terms = self._terms(node, local)
        merged: dict[tuple, _Term] = {}
        for t in terms:  # k1*A + k2*A is one term (k1 + k2)*A
            key = (t.sign, tuple(sorted(t.powers.items())))
            if key in merged:
                old = merged[key]
                merged[key] = _Term(t.sign, old.value + t.value, old.symbols + t.symbols,
                                    t.powers)
            else:
                merged[key] = t
        # a literal 0 term (``k*A - 0``) is no reaction
        return [t for t in merged.values() if t.value != 0 or t.symbols or t.powers]

    def _terms(self, node, local: dict[str, float]) -> list[_Term]:
        """Return the terms of a formula node, or raise _NotMassAction."""
        sb = self.sbml
        kind = node.getType()
        children = [node.getChild(i) for i in range(node.getNumChildren())]
        if node.isNumber():
            return [_Term(1, float(node.getValue()), [], Counter())]
        if kind == sb.AST_NAME:
            return [self._name(node.getName(), local)]
        if kind == sb.AST_TIMES:
            out = [_Term(1, 1.0, [], Counter())]
            for child in children:
                out = [a.times(b) for a in out for b in self._terms(child, local)]
                self._check_size(out)
            return out
        if kind == sb.AST_PLUS:
            out = [t for child in children for t in self._terms(child, local)]
            self._check_size(out)
            return out
        if kind == sb.AST_MINUS:
            first = self._terms(children[0], local)
            if len(children) == 1:
                return [_Term(-t.sign, t.value, t.symbols, t.powers) for t in first]
            rest = [_Term(-t.sign, t.value, t.symbols, t.powers)
                    for child in children[1:] for t in self._terms(child, local)]
            return first + rest
        if kind == sb.AST_DIVIDE:
            denominator = self._terms(children[1], local)
            if len(denominator) != 1 or denominator[0].powers:
                raise _NotMassAction("it divides by a species or a sum")
            d = denominator[0]
            if d.value == 0:
                raise _NotMassAction("it divides by zero")
            return [_Term(t.sign * d.sign, t.value / d.value, t.symbols, t.powers)
                    for t in self._terms(children[0], local)]
        if kind in (sb.AST_POWER, sb.AST_FUNCTION_POWER):
            base = self._terms(children[0], local)
            exponent = self._terms(children[1], local)
            if len(exponent) != 1 or exponent[0].powers or exponent[0].symbols:
                raise _NotMassAction("an exponent is not a number")
            e = exponent[0].sign * exponent[0].value
            if len(base) != 1 or not (e >= 0 and e == int(e)):
                raise _NotMassAction(f"a power {e:g} of a sum, or not a whole number ≥ 0")
            b = base[0]
            e = int(e)
            return [_Term(b.sign ** e, b.value ** e, b.symbols * e,
                          Counter({s: p * e for s, p in b.powers.items()}))]
        if kind == sb.AST_NAME_TIME:
            raise _NotMassAction("it depends on time")
        name = node.getName() or sb.formulaToL3String(node)
        raise _NotMassAction(f"it uses {name!r}")

    def _check_size(self, terms: list) -> None:
        """Refuse a law that expands into too many terms."""
        if len(terms) > _MAX_TERMS:
            raise _NotMassAction("it expands into more than two terms")

    def _name(self, name: str, local: dict[str, float]) -> _Term:
        """Return the term of a name: a species power or a constant's value."""
        m = self.model
        if name in local:
            value = local[name]
        elif name in self.initial:
            return _Term(1, 1.0, [], Counter({name: 1}))
        elif name in self.constants:
            value = self.constants[name]
        elif m.getCompartment(name) is not None:
            value = self.size[name] if self.size[name] is not None else float("nan")
        elif m.getParameter(name) is not None:
            p = m.getParameter(name)
            value = p.getValue() if p.isSetValue() else float("nan")
        elif m.getReaction(name) is not None:
            raise _NotMassAction(f"it uses the rate of reaction {name!r}")
        else:
            raise _NotMassAction(f"it uses the unknown symbol {name!r}")
        if not math.isfinite(value):
            raise _NotMassAction(f"{name!r} has no finite value")
        self._symbol_values[name] = float(value)
        return _Term(1, float(value), [name], Counter())

