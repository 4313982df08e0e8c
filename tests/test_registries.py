"""The preset and discovery-example registries: every entry builds, runs with its own
defaults and is named in the CLI help; an entry added at run time is usable without any
other code changing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import typer.main

from rdlab.chemistry.network import MAX_REACTIONS, ReactionNetwork
from rdlab.chemistry.presets import (
    PRESETS,
    Preset,
    RunDefaults,
    get_preset,
    n_species_help,
    preset_help,
    preset_network,
    register_preset,
)
from rdlab.cli import app
from rdlab.discover.data import generate
from rdlab.discover.examples import EXAMPLES, ExampleEntry, example, register_example
from rdlab.discover.mechanism import Mechanism
from rdlab.errors import NetworkError, ParameterError
from rdlab.simulate import simulate
from rdlab.simulate_job.spec import SimulationSpec


def _option_help(command: str, option: str) -> str:
    """The help text of ``rdlab COMMAND --OPTION`` as the CLI declares it (unwrapped)."""
    group = typer.main.get_command(app)
    params = group.commands[command].params
    return next(p.help for p in params if p.name == option)


# --- presets ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_runs_with_its_own_defaults(name):
    preset = PRESETS[name]
    spec = SimulationSpec(preset=name, grid="12x12", steps=4, snapshots=2, engine="numpy")
    system, x0 = spec.resolve()
    d = preset.defaults
    assert spec.dt == d.dt and spec.initial == d.initial
    assert x0.shape == (1, system.n_species, 12, 12)
    # the listed defaults are the run's parameters, value for value
    for key, value in d.parameters.items():
        assert spec.parameters[key] == value, key
    if preset.family:
        assert system.n_species == preset.n_species
        # a family's drawn parameters are recorded: every rate, D, feed and the flow
        assert sum(k.startswith("k") for k in spec.parameters) == system.network.n_reactions
        assert spec.parameters["f"] == pytest.approx(0.03)
    ds = simulate(system, x0, dt=spec.dt, n_steps=spec.steps, snapshot_every=spec.steps,
                  engine="numpy", progress=False)
    c = ds["concentration"].values
    assert c.shape[0] == 1 and c.shape[1] == 2  # (batch, snapshot, species, y, x)
    assert np.all(np.isfinite(c)) and not np.array_equal(c[0, 0], c[0, 1])


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_runs_well_mixed(name):
    spec = SimulationSpec(preset=name, grid="none", steps=3, snapshots=2, engine="numpy")
    system, x0 = spec.resolve()
    assert system.grid is None and x0.shape == (1, system.n_species)
    ds = simulate(system, x0, dt=spec.dt, n_steps=3, snapshot_every=3, engine="numpy",
                  progress=False)
    assert np.all(np.isfinite(ds["concentration"].values))


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_named_in_the_cli_help(name):
    assert f"{name}: {PRESETS[name].description}" in _option_help("simulate", "preset")
    assert PRESETS[name].family == (name in _option_help("simulate", "n_species"))


def test_family_flag_decides_n_species():
    for name, preset in PRESETS.items():
        if preset.family:
            assert preset_network(name, 3).n_species == 3
        else:
            with pytest.raises(NetworkError, match=f"'{name}' has a fixed number of species"):
                preset_network(name, 3)
    assert {n for n, p in PRESETS.items() if p.family} == {"dense", "dense-gs", "kitchen-sink"}


def test_unknown_preset_lists_the_registry():
    with pytest.raises(NetworkError, match=r"unknown preset 'grey-scott'; presets are "
                                           r"\['brusselator', 'coupled-gray-scott'"):
        get_preset("grey-scott")
    with pytest.raises(NetworkError, match="unknown preset 'grey-scott'"):
        SimulationSpec(preset="grey-scott", grid="8x8").resolve()


def _decay() -> ReactionNetwork:
    return ReactionNetwork.from_text(["A -> 0 : k = 0.5"])


DECAY = Preset("decay", _decay, "first-order decay A → 0",
               RunDefaults(parameters={"k": 0.5, "D_A": 0.1}, dt=0.1, steps=10, grid="none",
                           initial="uniform", initial_options={"values": {"A": 1.0}}))


def test_a_preset_added_at_run_time_is_usable(monkeypatch):
    monkeypatch.setitem(PRESETS, "decay", DECAY)
    assert "decay: first-order decay" in preset_help()
    spec = SimulationSpec(preset="decay", engine="numpy")
    system, x0 = spec.resolve()
    assert (spec.dt, spec.steps, spec.grid) == (0.1, 10, "none")
    assert spec.parameters == {"k": 0.5, "D_A": 0.1}
    np.testing.assert_array_equal(x0, [[1.0]])
    ds = simulate(system, x0, dt=spec.dt, n_steps=spec.steps, snapshot_every=spec.steps,
                  engine="numpy", progress=False)
    # forward Euler on dA/dt = −kA: A_n = (1 − k dt)^n exactly
    np.testing.assert_allclose(ds["concentration"].values[0, -1, 0], 0.95**10, rtol=1e-12)
    # the config reruns from its own dict
    again = SimulationSpec.from_dict(spec.to_dict())
    system2, x02 = again.resolve()
    np.testing.assert_array_equal(system2.rates, system.rates)


def _chain(n: int) -> ReactionNetwork:
    return ReactionNetwork.from_text([f"A{i} -> A{i + 1} : 1.0" for i in range(n - 1)],
                                     species=[f"A{i}" for i in range(n)])


def test_a_family_added_at_run_time_takes_n_species(monkeypatch):
    chain = Preset("chain", _chain, "A0 → A1 → … → A(N−1)",
                   RunDefaults(dt=0.1, steps=5, grid="8x8", initial="random",
                               initial_options={"low": 0.0, "high": 1.0}),
                   n_species=3, count_reactions=lambda n: n - 1)
    monkeypatch.setitem(PRESETS, "chain", chain)
    assert "chain (default 3)" in n_species_help()
    system, x0 = SimulationSpec(preset="chain").resolve()
    assert system.n_species == 3 and x0.shape == (1, 3, 8, 8)
    system, _ = SimulationSpec(preset="chain", n_species=6).resolve()
    assert system.n_species == 6 and system.network.n_reactions == 5
    with pytest.raises(NetworkError, match=r"'chain' with .* reactions, more than the limit"):
        preset_network("chain", MAX_REACTIONS + 2)


def test_register_preset_refuses_a_second_preset_of_a_name(monkeypatch):
    monkeypatch.setattr("rdlab.chemistry.presets.PRESETS", PRESETS.copy())
    import rdlab.chemistry.presets as presets

    assert register_preset(DECAY) is DECAY and presets.PRESETS["decay"] is DECAY
    with pytest.raises(ValueError, match="'gray-scott' is already registered"):
        register_preset(Preset("gray-scott", _decay, "x", DECAY.defaults))


# --- discovery examples -----------------------------------------------------------------

@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_is_named_in_the_cli_help(name):
    assert name in _option_help("discover", "example").split(": ", 1)[1].rstrip(".")\
        .split(", ")


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_builds_from_its_entry(name):
    entry = EXAMPLES[name]
    ex = example(name)
    assert (ex.name, ex.description, ex.catalytic, ex.temperature_range) == \
        (name, entry.description, entry.catalytic, entry.temperature_range)
    assert (ex.mechanism.arrhenius is not None) == (entry.temperature_range is not None)
    assert example(name).mechanism is not ex.mechanism  # built afresh each time


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_mechanism_simulates_and_conserves(name):
    entry = EXAMPLES[name]
    m = example(name).mechanism
    data = generate(m, n_samples=3, times=np.linspace(0.0, 0.05, 4), seed=2,
                    temperature_range=entry.temperature_range)
    c = data.concentrations  # (sample, time, species)
    assert c.shape == (3, 4, m.n_species) and np.all(np.isfinite(c))
    assert np.abs(c[:, -1] - c[:, 0]).max() > 1e-4  # it reacts
    # every conservation law of the stoichiometry (left null space of V) holds in time
    laws = scipy.linalg.null_space(np.asarray(m.V, dtype=float))  # (species, laws)
    assert laws.shape[1] >= 1
    conserved = c @ laws  # (sample, time, laws)
    np.testing.assert_allclose(conserved, np.broadcast_to(conserved[:, :1], conserved.shape),
                               atol=1e-7)


def test_unknown_example_lists_the_registry():
    with pytest.raises(ParameterError, match=r"unknown example 'nope'; examples are "
                                             r"\['autocatalytic', 'gri30-simplified'"):
        example("nope")


def test_an_example_added_at_run_time_is_usable(monkeypatch):
    def pair() -> Mechanism:
        return Mechanism.from_rows(["A", "B"], [({"A": -1, "B": 1}, 2.0, 1.0)])

    entry = ExampleEntry("pair", pair, "A ⇌ B (2, 1)")
    monkeypatch.setattr("rdlab.discover.examples.EXAMPLES", EXAMPLES.copy())
    assert register_example(entry) is entry
    ex = example("pair")
    assert ex.n_reactions == 1 and not ex.catalytic
    data = generate(ex.mechanism, n_samples=2, times=np.linspace(0.0, 5.0, 3), seed=0)
    # A ⇌ B relaxes to B/A = kf/kr = 2 (time scale 1/(kf + kr) = 1/3; t = 5 is ~e^-15)
    last = data.concentrations[:, -1]
    np.testing.assert_allclose(last[:, 1] / last[:, 0], 2.0, rtol=1e-5)
    with pytest.raises(ValueError, match="'stiff' is already registered"):
        register_example(ExampleEntry("stiff", pair, "x"))
