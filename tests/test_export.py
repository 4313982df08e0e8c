"""Antimony and SBML export of mass-action networks, checked against libsbml and roadrunner."""

import re
import sys

import numpy as np
import pytest

from rdlab.chemistry import ReactionNetwork
from rdlab.chemistry.export import to_antimony, to_sbml, write_antimony, write_sbml
from rdlab.errors import NetworkError, ParameterError, RdlabError
from rdlab.simulate import ode
from rdlab.system import System

try:  # optional: not a dependency of rdlab
    import antimony
except ImportError:
    antimony = None

HYDROGEN = [
    "H2 <-> 2H : 2, 216",
    "O2 <-> 2O : 1, 337.5",
    "H2O <-> H + OH : 1, 1400",
    "H2 + O <-> H + OH : 1e3, 10800",
    "O2 + H <-> O + OH : 1e3, 33750",
    "H2 + O <-> H2O : 1e2, 0.7714285714285716",
]
HYDROGEN_SPECIES = ["H2", "O2", "H2O", "H", "O", "OH"]
OUTFLOW = ["U + 2V -> 3V : 1", "V -> 0 : 0.06"]


@pytest.fixture
def hydrogen():
    return ReactionNetwork.from_text(HYDROGEN, species=HYDROGEN_SPECIES)


@pytest.fixture
def libsbml():
    return pytest.importorskip("libsbml")


def _read(sbml: str):
    libsbml = pytest.importorskip("libsbml")
    doc = libsbml.readSBMLFromString(sbml)
    doc.checkConsistency()
    errors = [doc.getError(i).getMessage() for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    assert errors == []
    return doc


def test_sbml_of_reversible_network_reads_back(hydrogen, libsbml):
    doc = _read(to_sbml(hydrogen, {"H2": 2.0, "O2": 1.0}, name="hydrogen oxidation"))
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    model = doc.getModel()
    assert model.getId() == "hydrogen_oxidation"
    assert model.getName() == "hydrogen oxidation"
    assert model.getNumCompartments() == 1
    assert model.getCompartment(0).getSize() == 1.0 and model.getCompartment(0).getConstant()
    assert model.getNumSpecies() == 6
    assert model.getNumParameters() == model.getNumReactions() == 12
    assert [model.getSpecies(i).getId() for i in range(6)] == HYDROGEN_SPECIES
    for i in range(6):
        sp = model.getSpecies(i)
        assert sp.isSetInitialConcentration()
        assert not (sp.getHasOnlySubstanceUnits() or sp.getBoundaryCondition()
                    or sp.getConstant())
    assert model.getSpecies("H2").getInitialConcentration() == 2.0
    assert model.getSpecies("OH").getInitialConcentration() == 0.0
    # libsbml writes doubles with 15 significant digits
    np.testing.assert_allclose([model.getParameter(r).getValue() for r in range(12)],
                               hydrogen.default_rates, rtol=1e-14, atol=0)
    # H2 + O -> H + OH and its reverse, stoichiometry and mass-action law
    fwd, rev = model.getReaction(6), model.getReaction(7)
    assert not fwd.getReversible()
    refs = {fwd.getReactant(i).getSpecies(): fwd.getReactant(i).getStoichiometry()
            for i in range(fwd.getNumReactants())}
    assert refs == {"H2": 1.0, "O": 1.0}
    assert libsbml.formulaToL3String(fwd.getKineticLaw().getMath()) == "k6 * H2 * O"
    assert libsbml.formulaToL3String(model.getReaction(1).getKineticLaw().getMath()) == \
        "k1 * H^2"
    assert rev.getNumReactants() == rev.getNumProducts() == 2


def _roadrunner_states(sbml, species, times, initial=None):
    roadrunner = pytest.importorskip("roadrunner")
    rr = roadrunner.RoadRunner(sbml)
    for name, value in (initial or {}).items():
        rr.setValue(f"init([{name}])", value)
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    result = rr.simulate(float(times[0]), float(times[-1]), len(times),
                         selections=["time"] + [f"[{s}]" for s in species])
    result = np.asarray(result)
    np.testing.assert_allclose(result[:, 0], times, rtol=1e-12, atol=1e-14)
    return result[:, 1:]


def _rdlab_states(network, initial, times):
    x0 = np.array([initial.get(s, 0.0) for s in network.species])
    X, _ = ode.solve(System.build(network), x0, times, rtol=1e-11, atol=1e-14)
    return X[:, 0, :]


def _max_relative_error(a, b):
    scale = np.where(b == 0, 1.0, np.abs(b))  # absolute where exactly 0 (radicals at t = 0)
    return float(np.max(np.abs(a - b) / scale))


def test_roadrunner_matches_ode_engine_on_reversible_network(hydrogen):
    initial = {"H2": 1.0, "O2": 0.6, "H2O": 0.05}
    times = np.linspace(0.0, 1.0, 21)
    ours = _rdlab_states(hydrogen, initial, times)
    theirs = _roadrunner_states(to_sbml(hydrogen, initial), hydrogen.species, times)
    assert np.ptp(ours[:, 3]) > 1e-3  # radicals form: the comparison is not trivial
    assert _max_relative_error(theirs, ours) < 1e-5


def test_roadrunner_matches_ode_engine_with_outflow():
    net = ReactionNetwork.from_text(OUTFLOW)
    initial = {"U": 0.8, "V": 0.3}
    times = np.linspace(0.0, 1.0, 11)
    ours = _rdlab_states(net, initial, times)
    # the initial state set in roadrunner rather than in the exported document
    theirs = _roadrunner_states(to_sbml(net), net.species, times, initial)
    assert ours[-1, 0] < 0.75
    assert _max_relative_error(theirs, ours) < 1e-5


def test_antimony_text_lists_reactions_and_parameters(hydrogen):
    text = to_antimony(hydrogen, {"H2": 1.5})
    assert text.startswith("//") and "model rdlab_model" in text
    assert text.rstrip().endswith("end")
    assert "compartment cell = 1;" in text
    for s in HYDROGEN_SPECIES:
        assert f"species {s} in cell;" in text
    for line in ["J0: H2 -> 2 H; k0*H2;", "J1: 2 H -> H2; k1*H^2;",
                 "J6: H2 + O -> H + OH; k6*H2*O;", "J11: H2O -> H2 + O; k11*H2O;"]:
        assert line in text
    assert "H2 = 1.5;" in text and "OH = 0.0;" in text
    for r, k in enumerate(hydrogen.default_rates):
        assert re.search(rf"^  k{r} = (\S+);$", text, re.M)[1] == repr(float(k))
    assert len(re.findall(r"^  J\d+: ", text, re.M)) == 12

    net = ReactionNetwork.from_text([*OUTFLOW, "0 -> U : feed = 0.5"])
    text = to_antimony(net)
    assert "J1: V -> ; k1*V;" in text
    assert "J2: -> U; feed;" in text and "feed = 0.5;" in text
    if antimony is not None:
        assert antimony.loadAntimonyString(text) >= 0, antimony.getLastError()


def test_names_are_made_valid_and_unique(libsbml):
    net = ReactionNetwork.from_text(["time -> k0 : 1", "k0 -> 0 : k1 = 2"])
    text = to_antimony(net)
    assert "J0: time_1 -> k0; k0_1*time_1;" in text
    # a label that is its reaction's index name k1 is written k1_1 (named k1): the
    # identifier k<r> always means an unnamed rate, so the import gives the label back
    assert "J1: k0 -> ; k1_1*k0;" in text
    assert 'time_1 is "time";' in text and 'k1_1 is "k1";' in text
    model = _read(to_sbml(net)).getModel()
    assert model.getSpecies("time_1").getName() == "time"
    assert libsbml.formulaToL3String(model.getReaction(0).getKineticLaw().getMath()) == \
        "k0_1 * time_1"


def test_write_helpers(tmp_path, hydrogen, libsbml):
    ant = write_antimony(hydrogen, tmp_path / "h.ant", {"H2": 1.0})
    xml = write_sbml(hydrogen, str(tmp_path / "h.xml"), {"H2": 1.0})
    assert ant.read_text() == to_antimony(hydrogen, {"H2": 1.0})
    assert xml == tmp_path / "h.xml"
    assert _read(xml.read_text()).getModel().getSpecies("H2").getInitialConcentration() == 1.0


def test_missing_rate_names_the_reaction():
    net = ReactionNetwork.from_text(["A -> B : 1", "B + C -> 2A"])
    for export in (to_antimony, to_sbml):
        with pytest.raises(NetworkError, match=r"reaction 1 \(B \+ C -> 2A\) has no rate"):
            export(net)


def test_bad_initial_values_are_rejected(hydrogen):
    with pytest.raises(NetworkError, match="unknown species 'Xe'"):
        to_sbml(hydrogen, {"Xe": 1.0})
    with pytest.raises(ParameterError, match="initial concentration of 'H2'"):
        to_antimony(hydrogen, {"H2": -1.0})


def test_missing_libsbml_is_a_clear_error(monkeypatch, hydrogen):
    monkeypatch.setitem(sys.modules, "libsbml", None)
    with pytest.raises(RdlabError, match="python-libsbml"):
        to_sbml(hydrogen)
