"""Property tests of the two small languages a user types: reaction text and parameter values.

Random text is either parsed — and then survives a round trip — or refused with
``NetworkError``/``ParameterError``; never another exception, never a silent NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdlab.chemistry import ReactionNetwork
from rdlab.cli.options import extra_parameters, parse_assignment, parse_species_values
from rdlab.errors import NetworkError, ParameterError
from rdlab.simulate_job.spec import SimulationSpec, parse_values

REFUSED = (NetworkError, ParameterError)
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ reaction text

SPECIES = ["A", "B", "C", "H2", "X_1", "e5", "inf"]
LABELS = ["k", "kf", "kr", "k0", "k1", "k2", "k01", "f", "D_A", "feed_B", "D_Q", "inf", "nan",
          "A", "1k", "rate_1"]
NUMBERS = ["1", "0", "0.5", "1e-3", "2.5e10", "-1", "inf", "nan", "1e999", ".5", "5.",
           "1_000", "0x10", "", " "]


GOOD_COEFFICIENTS = ["", "", "", "1", "2", "3"]
BAD_COEFFICIENTS = ["0", "101", "2.5", "-1"]
GOOD_NUMBERS = ["1", "0", "0.5", "1e-3", "2.5e10", ".5", "5.", "1_000"]
GOOD_LABELS = ["k", "kf", "kr", "rate_1", "D_Q", "k7"]


@st.composite
def sides(draw, valid=False):
    coefficients = GOOD_COEFFICIENTS if valid else GOOD_COEFFICIENTS + BAD_COEFFICIENTS
    terms = draw(st.lists(st.tuples(st.sampled_from(coefficients),
                                    st.sampled_from(SPECIES)), max_size=3))
    if not terms:
        return draw(st.sampled_from(["0", "∅", ""]))
    return " + ".join(f"{c}{s}" for c, s in terms)


@st.composite
def rates(draw, n=None, valid=False):
    numbers, labels = (GOOD_NUMBERS, GOOD_LABELS) if valid else (NUMBERS, LABELS)

    def one():
        kind = draw(st.sampled_from(["number", "label", "named", "none"]))
        if kind == "number":
            return draw(st.sampled_from(numbers))
        if kind == "label":
            return draw(st.sampled_from(labels))
        if kind == "named":
            return f"{draw(st.sampled_from(labels))} = {draw(st.sampled_from(numbers))}"
        return ""
    n = draw(st.integers(0, 3)) if n is None else n
    return ", ".join(one() for _ in range(n))


@st.composite
def reaction_lines(draw, valid=False):
    arrows = ["->", "<->", "<=>", "=>"] + ([] if valid else ["-->", "", "->->"])
    arrow = draw(st.sampled_from(arrows))
    line = f"{draw(sides(valid))} {arrow} {draw(sides(valid))}"
    if draw(st.booleans()):
        n = (2 if "<" in arrow else 1) if valid else None
        line += f" : {draw(rates(n, valid))}"
    if draw(st.integers(0, 9)) == 0:
        line += " # a comment"
    return line


def check_reaction_text(text):
    try:
        net = ReactionNetwork.from_text(text)
    except REFUSED:
        return None
    assert isinstance(net, ReactionNetwork)
    assert all(r is None or (math.isfinite(r) and r >= 0) for r in net.default_rates)
    assert ReactionNetwork.from_text(net.to_text(), net.species) == net
    assert ReactionNetwork.from_text(net.to_lines()) == net
    assert ReactionNetwork.from_dict(net.to_dict()) == net
    return net


@FAST
@given(st.lists(reaction_lines(), min_size=1, max_size=5))
def test_structured_reaction_text_parses_and_round_trips_or_is_refused(lines):
    check_reaction_text(lines)
    check_reaction_text("\n".join(lines))


@FAST
@given(st.lists(st.one_of(reaction_lines(valid=True), reaction_lines()), min_size=1,
                max_size=6))
def test_mostly_valid_reaction_text_parses_and_round_trips_or_is_refused(lines):
    check_reaction_text(lines)


TOKENS = ["A", "B", "H2", "2", "10", " + ", " -> ", " <-> ", "->", " : ", ":", "1.5", "k",
          "kr", " = ", ", ", "\n", "0", "∅", "#", " ", "-", "e", ".", "inf"]
token_text = st.lists(st.sampled_from(TOKENS), max_size=14).map("".join)


@FAST
@given(st.one_of(token_text, st.text(alphabet="AB2H_0∅ +-<>=:,.#\nkfDe9x", max_size=40)))
def test_random_reaction_text_parses_and_round_trips_or_is_refused(text):
    check_reaction_text(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_unicode_text_parses_or_is_refused(text):
    check_reaction_text(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=10), st.integers(), st.none(), st.floats()),
                max_size=3))
def test_reaction_lists_with_non_text_are_refused(lines):
    check_reaction_text(lines)


@pytest.mark.parametrize("strategy", [
    st.lists(reaction_lines(), min_size=1, max_size=3),
    st.lists(reaction_lines(valid=True), min_size=2, max_size=4),
    token_text,
])
def test_the_generators_reach_both_outcomes(strategy):
    """Guard against a strategy that only ever produces refusals (or only successes)."""
    from hypothesis import find

    quiet = settings(max_examples=2000, database=None)
    assert check_reaction_text(find(strategy, lambda t: check_reaction_text(t) is not None,
                                    settings=quiet)) is not None
    assert find(strategy, lambda t: check_reaction_text(t) is None, settings=quiet) is not None


# ------------------------------------------------------------------ parameter values

values = st.one_of(
    st.text(max_size=20),
    st.text(alphabet="0123456789.:,-e+ infa", max_size=16),
    st.builds(lambda a, b, n: f"{a}:{b}:{n}", st.floats(allow_nan=True), st.floats(),
              st.integers(-3, 30)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10**400, max_value=10**400),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=5), st.booleans()),
             max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@FAST
@given(values)
def test_parse_values_gives_finite_values_or_refuses(spec):
    try:
        out = parse_values("f", spec)
    except ParameterError:
        return
    assert isinstance(out, np.ndarray) and out.ndim == 1 and out.size >= 1
    assert np.all(np.isfinite(out))


@FAST
@given(st.floats(-1e300, 1e300), st.floats(-1e300, 1e300), st.integers(-3, 50))
def test_a_sweep_has_its_count_and_ends_or_is_refused(start, stop, count):
    text = f"{start!r}:{stop!r}:{count}"
    try:
        out = parse_values("k", text)
    except ParameterError as exc:
        assert count < 2 or "non-finite" in str(exc)
        return
    assert out.size == count and out[0] == start and out[-1] == pytest.approx(stop)


@FAST
@given(st.text(max_size=20))
def test_set_assignment_splits_at_the_first_equals_or_refuses(text):
    try:
        name, value = parse_assignment(text, "--set")
    except ParameterError:
        assert "=" not in text or not text.partition("=")[0].strip()
        return
    assert name and name == name.strip() and value == value.strip()
    assert text.partition("=")[0].strip() == name


@FAST
@given(st.one_of(st.text(max_size=25),
                 st.lists(st.tuples(st.sampled_from(["U", "V", " U", "", "W"]),
                                    st.sampled_from(["0.5", "1", "nan", "inf", "-1", "x", ""])),
                          max_size=3).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv))))
def test_species_values_are_finite_numbers_each_named_once_or_refused(text):
    try:
        out = parse_species_values(text, "--square")
    except ParameterError:
        return
    assert out and all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert len(out) == len(text.split(","))


@FAST
@given(st.lists(st.sampled_from(["--f", "--k=0.05", "--f=1", "0.04", "x", "--", "-f", "--=3",
                                 "--grid", "0.02:0.06:3"]), max_size=5))
def test_leftover_parameters_parse_or_refuse(args):
    try:
        out = extra_parameters(list(args))
    except ParameterError:
        return
    assert all(isinstance(k, str) and k and isinstance(v, str) for k, v in out.items())


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["f", "k", "k0", "k1", "k2", "D_U", "feed_V", "D_W", "q", "F", ""]),
       st.one_of(st.sampled_from(["0.04", "0.01:0.05:3", "0.05,0.06", "-1", "nan", "abc",
                                  "1:2", "0.06:0.02:0", "1e999"]),
                 st.floats(allow_nan=True)))
def test_set_values_reach_the_system_or_are_refused(name, value):
    """``--set NAME=VALUE`` end to end: the spec resolves to a system whose parameter has
    exactly those values, or is refused with a ParameterError/NetworkError."""
    spec = SimulationSpec(grid="8", steps=2, parameters={name: value})
    try:
        system, _ = spec.resolve()
    except REFUSED:
        return
    expected = parse_values(name, value)
    got = np.unique(system.parameter(name))
    np.testing.assert_allclose(got, np.unique(expected))
    assert np.all(system.rates >= 0) and np.all(np.isfinite(system.rates))
