"""SBML and Antimony import: round trips through the exporters, what is read, what is refused,
and `rdlab simulate --network model.xml`."""

import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from rdlab.chemistry import ReactionNetwork
from rdlab.chemistry.export import to_antimony, to_sbml, write_antimony, write_sbml
from rdlab.chemistry.presets import PRESETS, preset_network
from rdlab.chemistry.sbml_import import read_antimony, read_model, read_sbml, sbml_to_model
from rdlab.cli import app
from rdlab.discover.examples import EXAMPLES
from rdlab.errors import DataError, NetworkError, RdlabError
from rdlab.run_folder import open_dataset
from rdlab.simulate import ode
from rdlab.system import System

libsbml = pytest.importorskip("libsbml")

#: libsbml writes numbers with 15 significant digits (Antimony goes through it as well)
DIGITS = 1e-14


def _with_rates(net: ReactionNetwork) -> ReactionNetwork:
    """Dense presets carry no rates: give them some (positive, full precision)."""
    if all(k is not None for k in net.default_rates):
        return net
    return net.with_rates(np.random.default_rng(1).uniform(0.01, 3.0, net.n_reactions))


def _initial(net: ReactionNetwork) -> dict[str, float]:
    values = np.random.default_rng(2).uniform(0.0, 2.0, net.n_species)
    return {s: float(x) for s, x in zip(net.species, values)}


def _import(net, initial, fmt):
    if fmt == "sbml":
        return sbml_to_model(to_sbml(net, initial), "exported SBML")
    pytest.importorskip("antimony")
    return read_antimony(to_antimony(net, initial))


def _assert_same(model, net, initial):
    got = model.network
    assert got.species == net.species
    np.testing.assert_array_equal(got.reactant_matrix, net.reactant_matrix)
    np.testing.assert_array_equal(got.product_matrix, net.product_matrix)
    assert got.rate_names == net.rate_names
    np.testing.assert_allclose(got.default_rates, net.default_rates, rtol=DIGITS, atol=0)
    assert list(model.initial) == list(net.species)
    np.testing.assert_allclose(list(model.initial.values()), list(initial.values()),
                               rtol=DIGITS, atol=0)
    assert model.notes == () and model.constants == {}


@pytest.mark.parametrize("fmt", ["sbml", "antimony"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_round_trips(preset, fmt):
    net = _with_rates(preset_network(preset))
    initial = _initial(net)
    _assert_same(_import(net, initial, fmt), net, initial)


@pytest.mark.parametrize("fmt", ["sbml", "antimony"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_discovery_mechanism_round_trips(name, fmt):
    net = EXAMPLES[name]().mechanism.to_network()
    initial = _initial(net)
    _assert_same(_import(net, initial, fmt), net, initial)


def test_names_rdlab_had_to_change_come_back():
    """'time' is reserved (written time_1), a label k1 on reaction 1 is written k1_1, the
    unnamed rate of reaction 0 is k0_1 because a species is called k0."""
    net = ReactionNetwork.from_text(["time -> k0 : 1", "k0 -> 0 : k1 = 2", "A -> time : 3"])
    for fmt in ("sbml", "antimony"):
        _assert_same(_import(net, {"time": 0.5}, fmt), net,
                     {"time": 0.5, "k0": 0.0, "A": 0.0})


def test_exact_values_survive_exactly():
    net = ReactionNetwork.from_text(["A + B <-> C : kf = 0.25, kr = 1e-3", "C -> 0 : 7"])
    model = read_sbml_text(to_sbml(net, [1.5, 0.125, 0.0]))
    assert model.network == net
    assert model.initial == {"A": 1.5, "B": 0.125, "C": 0.0}


# ---------------------------------------------------------------- building SBML by hand
def read_sbml_text(text):
    return sbml_to_model(text, "test model")


def _model(species=None, params=None, size=1.0, level=(3, 2)):
    """A document with compartment ``cell`` of ``size``, species ``{id: (initial
    concentration or None, boundary)}`` and global parameters ``{id: value}``."""
    doc = libsbml.SBMLDocument(*level)
    m = doc.createModel()
    m.setId("test")
    c = m.createCompartment()
    c.setId("cell"), c.setSize(size), c.setConstant(True), c.setSpatialDimensions(3)
    for sid, (x0, boundary) in (species or {"A": (1.0, False), "B": (0.0, False)}).items():
        sp = m.createSpecies()
        sp.setId(sid), sp.setCompartment("cell"), sp.setHasOnlySubstanceUnits(False)
        sp.setBoundaryCondition(boundary), sp.setConstant(False)
        if x0 is not None:
            sp.setInitialConcentration(x0)
    for pid, value in (params or {"k": 0.5}).items():
        p = m.createParameter()
        p.setId(pid), p.setValue(value), p.setConstant(True)
    return doc


def _reaction(doc, rid, reactants, products, law, modifiers=(), stoichiometry=None):
    m = doc.getModel()
    rx = m.createReaction()
    rx.setId(rid), rx.setReversible(False)
    for create, terms in ((rx.createReactant, reactants), (rx.createProduct, products)):
        for sid, n in terms.items():
            ref = create()
            ref.setSpecies(sid), ref.setStoichiometry(float(n)), ref.setConstant(True)
    for sid in modifiers:
        rx.createModifier().setSpecies(sid)
    if law is not None:
        ast = libsbml.parseL3FormulaWithModel(law, m)
        assert ast is not None, libsbml.getLastParseL3Error()
        rx.createKineticLaw().setMath(ast)
    return rx


def _text(doc):
    return libsbml.writeSBMLToString(doc)


def test_mass_action_forms_are_read():
    """Reversible laws, compartment factors, local parameters, modifiers as catalysts,
    boundary species folded into rates, initial amounts and unset initial values."""
    doc = _model({"A": (None, False), "B": (0.25, False), "C": (None, False),
                  "D": (None, False), "E": (0.1, False), "S": (3.0, True)},
                 {"kf": 2.0, "kr": 0.5, "k2": 0.5, "kc": 4.0, "ks": 0.25}, size=2.0)
    doc.getModel().getSpecies("A").setInitialAmount(1.0)  # in a volume of 2: 0.5
    _reaction(doc, "R1", {"A": 1, "B": 1}, {"C": 1}, "cell * (kf * A * B - kr * C)")
    r2 = _reaction(doc, "R2", {"C": 1}, {}, "cell * k * C")
    local = r2.getKineticLaw().createLocalParameter()
    local.setId("k"), local.setValue(0.3)
    _reaction(doc, "R3", {"A": 2}, {"D": 1}, "k2 * A * A")  # no volume factor: k2 / 2
    _reaction(doc, "R4", {"B": 1}, {"D": 1}, "cell * kc * E * B", modifiers=["E"])
    _reaction(doc, "R5", {"S": 1}, {"A": 1}, "cell * ks * S")
    model = read_sbml_text(_text(doc))
    expected = ReactionNetwork.from_text(
        ["A + B <-> C : kf = 2.0, kr = 0.5", "C -> 0 : k = 0.3", "2A -> D : 0.25",
         "E + B -> E + D : kc = 4.0", "0 -> A : 0.75"], species=["A", "B", "C", "D", "E"])
    assert model.network == expected
    assert model.initial == {"A": 0.5, "B": 0.25, "C": 0.0, "D": 0.0, "E": 0.1}
    assert model.constants == {"S": 3.0}
    assert any("['S']" in note and "folded" in note for note in model.notes)


def test_function_definitions_are_expanded_and_L2_is_read():
    doc = _model(level=(2, 4))
    m = doc.getModel()
    fd = m.createFunctionDefinition()
    fd.setId("mass_action_1")
    fd.setMath(libsbml.parseL3Formula("lambda(k, x, k * x)"))
    r = _reaction(doc, "R1", {"A": 1}, {"B": 1}, "cell * mass_action_1(k1, A)")
    p = r.getKineticLaw().createParameter()  # a Level 2 local parameter
    p.setId("k1"), p.setValue(0.7)
    model = read_sbml_text(_text(doc))
    assert model.network == ReactionNetwork.from_text(["A -> B : k1 = 0.7"])


def _refused(doc, *patterns):
    with pytest.raises(NetworkError) as info:
        read_sbml_text(_text(doc))
    message = str(info.value)
    assert message.startswith("test model: ")
    for pattern in patterns:
        assert pattern in message, message


@pytest.mark.parametrize("law, why", [
    ("Vm * A / (Km + A)", "divides by a species"),  # Michaelis–Menten
    ("Vm * A^2 / (Km^2 + A^2)", "divides by a species"),  # Hill
    ("k * A^1.5", "not a whole number"),
    ("k * A * time", "depends on time"),
    ("k * exp(A)", "uses 'exp'"),
    ("k * A - k * B + k", "expected one product"),
    ("-k * A", "expected one product"),
])
def test_laws_that_are_not_mass_action_are_refused(law, why):
    doc = _model(params={"k": 1.0, "Vm": 2.0, "Km": 0.5})
    _reaction(doc, "R1", {"B": 1}, {"A": 1}, "k * B")
    _reaction(doc, "J7", {"A": 1}, {"B": 1}, law)
    _refused(doc, "reaction 'J7'", "not mass action", why)


def test_michaelis_menten_function_with_a_modifier_is_refused():
    doc = _model({"S": (1.0, False), "P": (0.0, False), "E": (0.1, False)},
                 {"kcat": 1.0, "Km": 0.5})
    fd = doc.getModel().createFunctionDefinition()
    fd.setId("MM")
    fd.setMath(libsbml.parseL3Formula("lambda(e, s, kcat, Km, kcat * e * s / (Km + s))"))
    _reaction(doc, "mm", {"S": 1}, {"P": 1}, "cell * MM(E, S, kcat, Km)", modifiers=["E"])
    _refused(doc, "reaction 'mm'", "not mass action")


def test_law_of_lower_order_than_the_reaction_consumes_is_refused():
    doc = _model()
    _reaction(doc, "dimer", {"A": 2}, {"B": 1}, "k * A")
    _refused(doc, "reaction 'dimer'", "order 1 in 'A'", "consumes 2 A")


def test_rules_events_and_odd_reactions_are_refused():
    three = {"A": (1.0, False), "B": (0.0, False), "C": (0.0, False)}
    doc = _model(three)
    _reaction(doc, "R1", {"A": 1}, {"B": 1}, "k * A")
    rule = doc.getModel().createRateRule()
    rule.setVariable("C"), rule.setMath(libsbml.parseL3Formula("0.1 * A"))
    _refused(doc, "rate rule for 'C'")

    doc = _model(three)
    _reaction(doc, "R1", {"A": 1}, {"B": 1}, "k * A")
    rule = doc.getModel().createAssignmentRule()
    rule.setVariable("C"), rule.setMath(libsbml.parseL3Formula("2 * A"))
    _refused(doc, "assignment rule sets species 'C'")

    doc = _model(params={"k": 0.5, "q": 1.0})
    doc.getModel().getParameter("k").setConstant(False)
    _reaction(doc, "R1", {"A": 1}, {"B": 1}, "k * A")
    rule = doc.getModel().createAssignmentRule()
    rule.setVariable("k"), rule.setMath(libsbml.parseL3Formula("2 * q"))
    _refused(doc, "assignment rule sets 'k'", "reaction 'R1'")

    doc = _model(params={"k": 0.5, "q": 1.0})
    doc.getModel().getParameter("q").setConstant(False)
    _reaction(doc, "R1", {"A": 1}, {"B": 1}, "k * A")
    doc.getModel().createAlgebraicRule().setMath(libsbml.parseL3Formula("q - 2 * A"))
    _refused(doc, "algebraic rule")

    doc = _model()
    _reaction(doc, "R1", {"A": 1}, {"B": 1}, "k * A")
    event = doc.getModel().createEvent()
    event.setId("pulse"), event.setUseValuesFromTriggerTime(True)
    trigger = event.createTrigger()
    trigger.setMath(libsbml.parseL3Formula("time > 1"))
    trigger.setInitialValue(False), trigger.setPersistent(True)
    assignment = event.createEventAssignment()
    assignment.setVariable("A"), assignment.setMath(libsbml.parseL3Formula("1"))
    _refused(doc, "events ['pulse']")

    doc = _model()
    _reaction(doc, "half", {"A": 1.5}, {"B": 1}, "k * A")
    _refused(doc, "reaction 'half'", "whole numbers")

    doc = _model()
    _reaction(doc, "lawless", {"A": 1}, {"B": 1}, None)
    _refused(doc, "reaction 'lawless' has no kinetic law")


def test_species_in_compartments_of_different_sizes_or_as_amounts_are_refused():
    doc = _model()
    m = doc.getModel()
    c = m.createCompartment()
    c.setId("big"), c.setSize(2.0), c.setConstant(True)
    m.getSpecies("B").setCompartment("big")
    _reaction(doc, "transport", {"A": 1}, {"B": 1}, "k * A")
    _refused(doc, "reaction 'transport'", "compartments of different sizes")

    doc = _model({"A": (-1.0, False), "B": (0.0, False)})
    _reaction(doc, "R1", {"A": 1}, {"B": 1}, "k * A")
    _refused(doc, "species 'A' has initial concentration -1.0")

    doc = _model(size=2.0)
    doc.getModel().getSpecies("A").setHasOnlySubstanceUnits(True)
    _reaction(doc, "R1", {"A": 1}, {"B": 1}, "k * A")
    _refused(doc, "species 'A' is an amount")


def test_broken_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.xml"
    with pytest.raises(DataError, match="SBML file '.*missing.xml' does not exist"):
        read_sbml(missing)
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("this is not XML <<")
    with pytest.raises(DataError, match="'.*garbage.xml' is not valid SBML: .*not well-formed"):
        read_sbml(garbage)
    doc = _model()
    _reaction(doc, "R1", {"A": 1}, {"ghost": 1}, "k * A")
    dangling = tmp_path / "dangling.xml"
    dangling.write_text(_text(doc))
    with pytest.raises(DataError, match="'.*dangling.xml' is not a consistent SBML model: .*"
                                        "ghost"):
        read_sbml(dangling)
    with pytest.raises(DataError, match="unknown suffix"):
        read_model(tmp_path / "model.txt")


# ---------------------------------------------------------------- Antimony
def test_antimony_text_and_files(tmp_path):
    pytest.importorskip("antimony")
    text = """
    model decay
      J0: A -> B; k * A
      J1: B -> ; 0.5 * B
      A = 2; k = 0.1
    end
    """
    net = ReactionNetwork.from_antimony(text)
    assert net == ReactionNetwork.from_text(["A -> B : k = 0.1", "B -> 0 : 0.5"])
    path = tmp_path / "decay.ant"
    path.write_text(text)
    model = read_model(path)
    assert model.network == net and model.initial == {"A": 2.0, "B": 0.0}
    assert ReactionNetwork.from_antimony(str(path)) == net
    with pytest.raises(DataError, match="Antimony text is not valid Antimony"):
        read_antimony("model broken\n  J0: A -> ; k *\nend")
    with pytest.raises(NetworkError, match="Antimony text: reaction 'J0'.*not mass action"):
        read_antimony("J0: S -> P; Vm * S / (Km + S); Vm = 1; Km = 2; S = 1")


def test_missing_antimony_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "antimony", None)
    with pytest.raises(RdlabError, match=r"pip install 'rdlab\[antimony\]'"):
        read_antimony("J0: A -> B; k*A; k = 1")


# ---------------------------------------------------------------- dynamics
def _ode(net, initial, times):
    x0 = np.array([initial[s] for s in net.species])
    X, _ = ode.solve(System.build(net), x0, times, rtol=1e-11, atol=1e-14)
    return X[:, 0, :]


def test_imported_model_simulates_as_the_original(tmp_path):
    net = EXAMPLES["hydrogen-oxidation"]().mechanism.to_network()
    initial = {"H2": 1.0, "O2": 0.6, "H2O": 0.05}
    model = read_sbml(write_sbml(net, tmp_path / "h.xml", initial))
    times = np.linspace(0.0, 1.0, 21)
    ours = _ode(net, {s: initial.get(s, 0.0) for s in net.species}, times)
    theirs = _ode(model.network, model.initial, times)
    assert np.ptp(ours[:, net.species.index("OH")]) > 1e-3  # radicals form
    np.testing.assert_allclose(theirs, ours, rtol=1e-9, atol=1e-12)


def test_roadrunner_runs_the_exported_initial_state():
    """roadrunner, given only the exported document, follows rdlab's ODE from the initial
    concentrations written into it."""
    roadrunner = pytest.importorskip("roadrunner")
    net = EXAMPLES["michaelis-menten"]().mechanism.to_network()
    initial = {"E": 1e-3, "S": 1e-2, "ES": 0.0, "P": 2e-3}
    rr = roadrunner.RoadRunner(to_sbml(net, initial))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-14
    times = np.linspace(0.0, 5.0, 26)
    result = rr.simulate(0.0, 5.0, 26, selections=[f"[{s}]" for s in net.species])
    theirs = np.asarray(result)
    ours = _ode(net, initial, times)
    assert ours[-1, net.species.index("P")] > 5e-3  # substrate turned over
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-10)


# ---------------------------------------------------------------- rdlab simulate
def test_simulate_an_sbml_file_and_rerun_without_it(tmp_path):
    net = preset_network("brusselator")
    path = write_sbml(net, tmp_path / "bru.xml", {"X": 1.0, "Y": 2.0})
    run = CliRunner().invoke(app, ["simulate", "--network", str(path), "--grid", "none",
                                   "--steps", "100", "--dt", "0.05", "--movie", "none",
                                   "--out", str(tmp_path / "r1")])
    assert run.exit_code == 0, run.output
    ds = open_dataset(tmp_path / "r1" / "data.zarr")
    first = ds.concentration.isel(time=0).values.reshape(-1)
    np.testing.assert_array_equal(first, [1.0, 2.0])  # the model's initial state
    expected = _ode(net, {"X": 1.0, "Y": 2.0}, ds.time.values)
    np.testing.assert_allclose(ds.concentration.values.reshape(len(ds.time), 2), expected,
                               rtol=1e-5, atol=1e-7)
    path.unlink()
    again = CliRunner().invoke(app, ["simulate", "--config",
                                     str(tmp_path / "r1" / "config.yaml"),
                                     "--out", str(tmp_path / "r2")])
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(open_dataset(tmp_path / "r2" / "data.zarr")
                                  .concentration.values, ds.concentration.values)


def test_simulate_an_antimony_file_on_a_grid_with_diffusion(tmp_path):
    pytest.importorskip("antimony")
    path = write_antimony(preset_network("brusselator"), tmp_path / "bru.ant",
                          {"X": 1.0, "Y": 3.0})
    run = CliRunner().invoke(app, ["simulate", "--network", str(path), "--grid", "8",
                                   "--engine", "numpy", "--set", "D_X=0.1", "--set",
                                   "D_Y=0.4", "--initial", "random", "--steps", "20",
                                   "--dt", "0.01", "--movie", "none",
                                   "--out", str(tmp_path / "r")])
    assert run.exit_code == 0, run.output
    ds = open_dataset(tmp_path / "r" / "data.zarr")
    assert ds.concentration.shape[-2:] == (8, 8)
    config = (tmp_path / "r" / "config.yaml").read_text()
    assert "D_X: 0.1" in config and "2X + Y -> 3X : 1.0" in config


def test_a_broken_model_file_is_one_error_line(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text("<sbml")
    run = CliRunner().invoke(app, ["simulate", "--network", str(path), "--grid", "none",
                                   "--out", str(tmp_path / "r")])
    assert run.exit_code == 2
    assert "bad.xml' is not valid SBML" in run.output
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- the jobs' exports
@pytest.mark.slow  # ~8 s: a whole (2 s) discovery run
def test_discover_exports_start_from_the_first_sample(tmp_path):
    from rdlab.discover.data import load

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["discover", "--example", "stiff", "--budget", "2",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    first = load(out / "data.zarr").concentrations[0, 0]
    assert first.max() > 0
    for name, reader in (("mechanism.xml", read_sbml), ("mechanism.antimony", None)):
        if reader is None:
            pytest.importorskip("antimony")
            model = read_antimony(out / name)
        else:
            model = reader(out / name)
        np.testing.assert_allclose([model.initial[s] for s in ("F", "R", "P")], first,
                                   rtol=DIGITS, atol=0)
