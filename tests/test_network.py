import math

import numpy as np
import pytest

from rdlab.chemistry import (
    ReactionNetwork,
    arrhenius,
    brusselator_network,
    coupled_gray_scott_network,
    dense_gs_network,
    dense_network,
    gray_scott_network,
    kitchen_sink_network,
    mass_action_rates,
)
from rdlab.chemistry.dense import dense_code_initial_parameters
from rdlab.errors import NetworkError, ParameterError


def test_gray_scott_stoichiometry():
    net = gray_scott_network(k=0.062)
    assert net.species == ("U", "V")
    np.testing.assert_array_equal(net.reactant_matrix, [[1, 0], [2, 1]])
    np.testing.assert_array_equal(net.product_matrix, [[0, 0], [3, 0]])
    np.testing.assert_array_equal(net.stoichiometry, [[-1, 0], [1, -1]])
    assert net.default_rates == (1.0, 0.062)
    assert net.rate_index("k") == 1


def test_reversible_pair_and_outflow_and_source():
    net = ReactionNetwork.from_text(["A <-> B : 2.0, 0.5", "B -> 0", "0 -> A : src = 0.1"])
    assert net.n_reactions == 4
    assert net.reverse_pairs() == [(0, 1)]
    assert net.default_rates == (2.0, 0.5, None, 0.1)
    np.testing.assert_array_equal(net.stoichiometry[:, 2], [0, -1])
    np.testing.assert_array_equal(net.reactant_matrix[:, 3], [0, 0])  # zero order
    assert net.orders.tolist() == [1, 1, 1, 0]


def test_species_names_with_digits():
    net = ReactionNetwork.from_text("2H + 2OH -> 2H2 + O2")
    assert net.species == ("H", "OH", "H2", "O2")
    np.testing.assert_array_equal(net.reactant_matrix[:, 0], [2, 2, 0, 0])
    np.testing.assert_array_equal(net.product_matrix[:, 0], [0, 0, 2, 1])
    laws = net.conservation_laws()
    assert laws.shape == (3, 4)  # one reaction among four species: three conserved totals
    np.testing.assert_allclose(laws @ net.stoichiometry, 0, atol=1e-12)
    # the atom counts (H: 1,1,2,0; O: 0,1,0,2) lie in the span of the computed laws
    atoms = np.array([[1, 1, 2, 0], [0, 1, 0, 2]], float)
    proj = atoms @ np.linalg.pinv(laws) @ laws
    np.testing.assert_allclose(proj, atoms, atol=1e-12)


@pytest.mark.parametrize("net", [
    gray_scott_network(), coupled_gray_scott_network(), brusselator_network(),
    kitchen_sink_network(5), dense_network(4),
    ReactionNetwork.from_text(["A <-> B : kf = 2.0, kr = 0.5", "2H + 2OH -> 2H2 + O2 : 3e-4"]),
])
def test_text_and_yaml_round_trip(net, tmp_path):
    assert ReactionNetwork.from_text(net.to_text(), net.species) == net
    path = net.to_yaml(tmp_path / "net.yaml")
    assert ReactionNetwork.from_yaml(path) == net


@pytest.mark.parametrize("text, fragment", [
    ("A + -> B", "cannot read the term"),
    ("A -> B -> C", "more than one arrow"),
    ("A = B", "no arrow"),
    ("2.5A -> B", "non-integer"),
    ("-1A -> B", "negative"),
    ("A B -> C", "'A B'"),
    ("A -> B : -1", "negative"),
    ("A -> B : 1, 2", "needs 1"),
    ("A <-> B : 1", "needs 2"),
    ("A -> B : nan", "NaN"),
    ("A -> B : inf", "infinite"),
    ("A -> B : 1e999", "infinite"),
    ("A -> B : -inf", "infinite|negative"),
    ("A -> B : inf = 2", "reads as a number"),
    ("101A -> B : 1", "exceed 100"),
    ("99A + 2A -> B : 1", "exceed 100"),
    ("1234567A -> B : 1", "coefficient '1234567'"),
    ("\u0661A -> B : 1", "cannot read the term"),  # a non-ASCII digit is no coefficient
    ("A -> B : fast", None),  # a bare name is a label, fine
    ("A -> A", "does not change"),
    ("", "no reactions"),
])
def test_bad_reaction_text(text, fragment):
    if fragment is None:
        assert ReactionNetwork.from_text(text).rate_names == ("fast",)
        return
    with pytest.raises(NetworkError, match=fragment):
        ReactionNetwork.from_text(text)


def test_unknown_species_named():
    with pytest.raises(NetworkError, match=r"unknown species \['C'\]"):
        ReactionNetwork.from_text("A + C -> B", species=["A", "B"])


def test_dense_counts_match_paper_and_code():
    # public-code families (reference table) and the paper's statement "24 for 4, 40 for 5"
    assert dense_gs_network(4).n_reactions == 24
    assert dense_gs_network(5).n_reactions == 40
    assert kitchen_sink_network(4).n_reactions == 48
    assert kitchen_sink_network(5).n_reactions == 100
    # paper eq. 17 in full: 2·[N·C(N−1,2) + C(N,2) + N(N−1)]
    for n in (3, 4, 5, 6):
        expect = 2 * (n * math.comb(n - 1, 2) + math.comb(n, 2) + n * (n - 1))
        assert dense_network(n).n_reactions == expect
    assert dense_network(5, ("R3.3",)).n_reactions == 40


def _complexes(net):
    cols = {tuple(c) for c in net.reactant_matrix.T} | {tuple(c) for c in net.product_matrix.T}
    return len(cols)


def test_dense_complex_counts_from_reference():
    assert (_complexes(kitchen_sink_network(4)), _complexes(dense_gs_network(4))) == (23, 13)
    assert (_complexes(kitchen_sink_network(5)), _complexes(dense_gs_network(5))) == (34, 19)


def test_kitchen_sink_index_order():
    net = kitchen_sink_network(5)
    text = [net.reaction_text(r, with_rate=False) for r in range(net.n_reactions)]
    assert text[0] == "A + 2B -> 3B"
    assert text[9] == "D + 2E -> 3E"
    assert text[10] == "B -> A"
    assert text[20] == "3B -> A + 2B"
    assert text[30] == "A -> B"
    assert text[40] == "A + B -> 2C"
    assert text[70] == "2C -> A + B"
    pairs = net.reverse_pairs()
    assert len(pairs) == 50
    assert (0, 20) in pairs and (40, 70) in pairs
    # only the higher-index species of a pair is autocatalytic: A never is
    auto = [r for r in range(40) if 3 in net.product_matrix[:, r]]
    assert all(net.product_matrix[0, r] != 3 for r in auto)


def test_dense_code_initialisation(rng):
    p = dense_code_initial_parameters(dense_gs_network(5), rng)
    np.testing.assert_allclose(p["feed"], [1, 0.25, 0.0625, 0.015625, 0.00390625])
    assert np.all(np.abs(p["rates"][:4] - 1.0) <= 1e-4)
    assert np.all(p["rates"][4:10] <= 1e-4)
    assert np.all(np.abs(p["rates"][10:] - 1e-3) <= 1e-4)
    assert np.all((p["diffusion"] >= 0.1) & (p["diffusion"] <= 0.2))


def test_mass_action_rates_by_hand():
    net = ReactionNetwork.from_text(["U + 2V -> 3V", "V -> 0", "0 -> U", "2H + 2OH -> 2H2 + O2"])
    conc = np.array([[0.3, 0.7, 2.0, 0.5, 0.0, 0.0]])
    k = np.array([[1.5, 0.2, 0.9, 4.0]])
    v = mass_action_rates(net.reactant_matrix, conc, k)
    np.testing.assert_allclose(v[0], [1.5 * 0.3 * 0.7**2, 0.2 * 0.7, 0.9, 4.0 * 2.0**2 * 0.5**2])


def test_arrhenius():
    # Michaelis–Menten Arrhenius constants of the discovery paper at T = 300 K
    k = arrhenius(1e3, 2240.0, 300.0)
    assert k == pytest.approx(1e3 * math.exp(-2240.0 / (8.314462618 * 300.0)), rel=1e-15)
    with pytest.raises(ParameterError, match="temperature"):
        arrhenius(1.0, 1.0, 0.0)
    with pytest.raises(ParameterError, match="NaN"):
        arrhenius(float("nan"), 1.0, 300.0)


@pytest.mark.parametrize("lines, meaning", [
    (["A -> B : f = 1"], r"rate name 'f' of reaction 0 \('A -> B'\) is also the flow rate f"),
    (["A -> B : D_A = 1"], r"'D_A' .* is also the diffusion coefficient of A"),
    (["A -> B : feed_B = 1"], r"'feed_B' .* is also the feed concentration of B"),
    (["A -> B : k2 = 1", "B -> C : 1", "C -> A"],
     r"'k2' of reaction 0 \('A -> B'\) is also the index name of reaction 2 \('C -> A'\)"),
    (["A <-> B : k1, k0"], r"'k1' of reaction 0 .* index name of reaction 1"),
])
def test_rate_names_that_shadow_another_parameter_are_refused(lines, meaning):
    with pytest.raises(NetworkError, match=meaning):
        ReactionNetwork.from_text(lines)


def test_names_that_do_not_shadow_anything_are_fine():
    # a label equal to its own index name, D_/feed_ of a non-species, k<r> beyond the
    # reactions, a leading zero (not an index name)
    net = ReactionNetwork.from_text(["A -> B : k0 = 1", "B -> A : D_X = 2",
                                     "A -> 0 : k7 = 3", "B -> 0 : k01 = 4"])
    assert [net.rate_index(n) for n in ("k0", "D_X", "k7", "k01", "k1")] == [0, 1, 2, 3, 1]
    with pytest.raises(NetworkError, match="no rate constant called 'k4'"):
        net.rate_index("k4")
    with pytest.raises(NetworkError, match="no rate constant called 'k00'"):
        ReactionNetwork.from_text(["A -> B : 1"]).rate_index("k00")


def test_every_preset_builds_and_names_mean_one_thing():
    from rdlab.chemistry.presets import PRESETS, preset_network
    from rdlab.system import locate_parameter, parameter_names

    for name in PRESETS:
        net = preset_network(name)
        names = parameter_names(net)
        assert len(set(names)) == len(names), name
        places = [locate_parameter(net, n) for n in names]
        assert len(set(places)) == len(places), name
    coupled = preset_network("coupled-gray-scott")
    assert coupled.rate_index("k1") == 1 and coupled.rate_index("k2") == 2
    assert coupled.reaction_text(2, False) == "V2 -> 0"


def test_dense_reaction_counts_without_building():
    from rdlab.chemistry.dense import reaction_count
    from rdlab.chemistry.presets import preset_network

    for n in (2, 3, 5, 8):
        assert reaction_count("dense", n) == dense_network(n).n_reactions
        assert reaction_count("dense-gs", n) == dense_gs_network(n).n_reactions
        assert reaction_count("kitchen-sink", n) == kitchen_sink_network(n).n_reactions
    assert reaction_count("dense", 500) == 124_999_500
    with pytest.raises(NetworkError, match=r"124,999,500 reactions, more than the limit"):
        preset_network("dense", 500)  # refused at once, without enumerating


def test_network_mapping_is_checked(tmp_path):
    block = ReactionNetwork.from_dict({"reactions": "A -> B : 1\nB -> A : 2\n"})
    assert block == ReactionNetwork.from_text(["A <-> B : 1, 2"])
    for data, fragment in [
        (["A -> B"], "mapping"),
        ({"reactions": 5}, "'reactions' must be a list"),
        ({"reactions": ["A -> B : 1"], "species": "AB"}, "'species' must be a list"),
        ({"reactions": ["A -> B : 1"], "rates": [1]}, r"unknown network keys \['rates'\]"),
        ({"species": ["A"]}, "needs a 'reactions' list"),
    ]:
        with pytest.raises(NetworkError, match=fragment):
            ReactionNetwork.from_dict(data)
    path = tmp_path / "n.yaml"
    path.write_text("reactions: [A -> B : 1\n")
    from rdlab.errors import DataError

    with pytest.raises(DataError, match=r"network file '.*n.yaml' is not valid YAML"):
        ReactionNetwork.from_yaml(path)


def test_the_readme_yaml_form_reads_as_reaction_lines(tmp_path):
    """``- U + 2V -> 3V : 1.0`` in a YAML list is a one-entry mapping to YAML; it means the
    reaction line, exactly as the quoted text would."""
    plain = tmp_path / "plain.yaml"
    plain.write_text("species: [U, V]\nreactions:\n  - U + 2V -> 3V : 1.0\n"
                     "  - V -> 0 : k = 0.06\n  - U <-> V : kf = 2.0, kr = 0.5  # pair\n")
    quoted = tmp_path / "quoted.yaml"
    quoted.write_text("species: [U, V]\nreactions:\n  - 'U + 2V -> 3V : 1.0'\n"
                      "  - 'V -> 0 : k = 0.06'\n  - 'U <-> V : kf = 2.0, kr = 0.5'\n")
    a, b = ReactionNetwork.from_yaml(plain), ReactionNetwork.from_yaml(quoted)
    assert a == b
    assert a.n_reactions == 4 and a.rate_names[1] == "k"
    np.testing.assert_allclose(a.default_rates, [1.0, 0.06, 2.0, 0.5])
