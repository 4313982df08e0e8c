"""``rdlab simulate`` and ``rdlab demo`` refuse bad input before any work: exit 2, one
``error:`` line naming the culprit, no traceback, no file written (see ``cli_contract``).

Every row is refused before a simulation starts, so the table runs in seconds.
"""

from __future__ import annotations

import json

import pytest
import yaml
from cli_contract import Bad, assert_refused, make_files

S = ("simulate", "--out", "r")  # a relative output, so that anything written lands in tmp_path
SMALL = ("--grid", "8", "--steps", "4")


def net_yaml(*reactions: str, **extra) -> str:
    return yaml.safe_dump({"reactions": list(reactions), **extra})


def config_yaml(**values) -> str:
    base = {"preset": "gray-scott", "grid": "8", "steps": 4, "dt": 0.25, "engine": "numpy"}
    return yaml.safe_dump({**base, **values})


GOOD_NET = net_yaml("A + 2B -> 3B : 1.0", "B -> 0 : k = 0.06")

BAD = [
    # ---------------------------------------------------------------- grid
    Bad("grid-zero-is-not-well-mixed", (*S, "--grid", "0"), r"grid '0'.*'none'"),
    Bad("grid-zero-by-five", (*S, "--grid", "0x5"), r"grid '0x5'.*at least 3"),
    Bad("grid-two", (*S, "--grid", "2"), r"grid '2' is too small"),
    Bad("dx-underscore", (*S, "--dx", "0_5"), r"--dx.*'0_5'"),  # Python's float() says 5.0
    Bad("dt-underscore", (*S, "--dt", "0_25"), r"--dt.*'0_25'"),
    Bad("squares-without-grid", (*S, "--grid", "none", "--initial", "squares"),
        r"'squares' needs a grid"),
    Bad("grid-typo", (*S, "--grid", "12y3"), r"cannot read grid '12y3'"),
    Bad("grid-negative", (*S, "--grid", "-5"), r"grid '-5'"),
    Bad("grid-three-d", (*S, "--grid", "8x8x8"), r"grid '8x8x8'"),
    Bad("grid-float", (*S, "--grid", "8.5"), r"grid '8.5'"),
    Bad("grid-too-big-for-memory", (*S, "--grid", "100000x100000"),
        r"needs about .*TiB.* memory.*limit"),
    Bad("sweep-too-big-for-memory",
        (*S, "--grid", "512", "--f", "0.01:0.09:3000", "--k", "0.03:0.07:3000"),
        r"9,000,000 sample.*memory"),
    # ---------------------------------------------------------------- counts
    Bad("snapshots-one", (*S, *SMALL, "--snapshots", "1"), r"'snapshots'.*≥ 2.*got 1"),
    Bad("snapshots-zero", (*S, *SMALL, "--snapshots", "0"), r"'snapshots'.*got 0"),
    Bad("snapshots-negative", (*S, *SMALL, "--snapshots", "-5"), r"'snapshots'.*got -5"),
    Bad("snapshots-text", (*S, "--snapshots", "many"), r"snapshots"),
    Bad("steps-zero", (*S, "--grid", "8", "--steps", "0"), r"'steps'.*≥ 1.*got 0"),
    Bad("steps-negative", (*S, "--grid", "8", "--steps", "-3"), r"'steps'.*got -3"),
    Bad("steps-text", (*S, "--steps", "ten"), r"steps"),
    Bad("threads-zero", (*S, *SMALL, "--threads", "0"), r"--threads .*got 0"),
    Bad("threads-negative", (*S, *SMALL, "--threads", "-2"), r"--threads .*got -2"),
    Bad("threads-more-than-cores", (*S, *SMALL, "--threads", "100000"),
        r"--threads must be between 1 and \d+"),
    Bad("seed-negative", (*S, *SMALL, "--seed", "-1"), r"'seed'.*≥ 0.*got -1"),
    Bad("seed-text", (*S, "--seed", "abc"), r"seed"),
    Bad("steps-beyond-int64", (*S, "--grid", "8", "--steps", "99999999999999999999"),
        r"'steps'.*at most 1,000,000,000,000.*got 99999999999999999999"),
    Bad("n-squares-more-than-cells", (*S, *SMALL, "--n-squares", "1000000000"),
        r"n_squares.*0 to 64 \(the grid's cells\), got 1000000000"),
    # ---------------------------------------------------------------- parameter values
    Bad("sweep-count-zero", (*S, *SMALL, "--f", "0.06:0.02:0"), r"0 value.*count"),
    Bad("sweep-count-one", (*S, *SMALL, "--f", "0.02:0.06:1"), r"1 value.*count"),
    Bad("sweep-count-negative", (*S, *SMALL, "--f", "0.02:0.06:-3"), r"-3 value.*count"),
    Bad("sweep-count-fraction", (*S, *SMALL, "--f", "0.02:0.06:2.5"),
        r"count '2.5'.*not a whole number"),
    Bad("sweep-count-huge", (*S, *SMALL, "--f", "0.02:0.06:1000000000"),
        r"f=.*1000000000 values; at most"),
    Bad("sweep-two-parts", (*S, *SMALL, "--f", "0.02:0.06"), r"value '0.02:0.06' of .*'f'"),
    Bad("sweep-bad-start", (*S, *SMALL, "--f", "a:0.06:3"), r"value 'a:0.06:3' of .*'f'"),
    Bad("value-text", (*S, *SMALL, "--f", "abc"), r"value 'abc' of parameter 'f'"),
    # Python reads '0_04' as 4.0: a typo of 0.04 must not run with f = 4
    Bad("value-underscore", (*S, *SMALL, "--f", "0_04"), r"value '0_04' of parameter 'f'"),
    Bad("square-underscore", (*S, *SMALL, "--square", "U=0_5"), r"'0_5' for 'U' is not a num"),
    Bad("value-nan", (*S, *SMALL, "--f", "nan"), r"'f' has a non-finite value"),
    Bad("value-inf", (*S, *SMALL, "--k", "inf"), r"'k' has a non-finite value"),
    Bad("value-overflow", (*S, *SMALL, "--k", "1e999"), r"'k' has a non-finite value"),
    Bad("value-empty-list-item", (*S, *SMALL, "--f", "0.1,,0.2"), r"value '0.1,,0.2'"),
    Bad("rate-negative", (*S, *SMALL, "--k", "-0.1"), r"rate constant is negative"),
    Bad("flow-negative-in-sweep", (*S, *SMALL, "--f", "-0.01,0.02"), r"flow rate f is negative"),
    Bad("diffusion-negative", (*S, *SMALL, "--set", "D_U=-1"), r"diffusion coefficient.*U"),
    Bad("unknown-parameter", (*S, *SMALL, "--q", "1"), r"unknown parameter 'q'"),
    Bad("typo-option-becomes-unknown-parameter", (*S, *SMALL, "--stepz", "9"),
        r"unknown parameter 'stepz'"),
    Bad("parameter-twice", (*S, *SMALL, "--f", "0.1", "--f", "0.2"), r"'f' is given twice"),
    Bad("parameter-set-and-shortcut", (*S, *SMALL, "--set", "f=0.1", "--f", "0.2"),
        r"'f' is given twice"),
    Bad("label-and-index-name", (*S, *SMALL, "--set", "k=0.05", "--set", "k1=0.06"),
        r"'k' and 'k1' name the same parameter"),
    Bad("set-without-equals", (*S, *SMALL, "--set", "f0.04"), r"'f0.04' is not of the form"),
    Bad("set-without-name", (*S, *SMALL, "--set", "=0.04"), r"'=0.04' is not of the form"),
    Bad("set-without-value", (*S, *SMALL, "--set", "f="), r"value '' of parameter 'f'"),
    Bad("shortcut-without-value", (*S, *SMALL, "--f"), r"--f needs a value"),
    Bad("shortcut-followed-by-option", (*S, "--f", "--grid", "8"), r"--f needs a value"),
    Bad("stray-argument", (*S, *SMALL, "extra"), r"unexpected argument 'extra'"),
    Bad("single-dash-parameter", (*S, *SMALL, "-f", "0.04"), r"'-f'"),
    # ---------------------------------------------------------------- time and space
    Bad("dt-zero", (*S, *SMALL, "--dt", "0"), r"'dt'.*positive.*got 0"),
    Bad("dt-negative", (*S, *SMALL, "--dt", "-1"), r"'dt'.*got -1"),
    Bad("dt-nan", (*S, *SMALL, "--dt", "nan"), r"'dt'.*got nan"),
    Bad("dt-unstable", (*S, *SMALL, "--dt", "5"), r"unstable.*limit 0.5"),
    Bad("dt-unstable-flow", (*S, *SMALL, "--dt", "1", "--f", "3", "--set", "D_U=0.01",
                             "--set", "D_V=0.01"), r"f·dt = 3.*limit 2"),
    Bad("dx-zero", (*S, *SMALL, "--dx", "0"), r"'dx'.*got 0"),
    Bad("dx-inf", (*S, *SMALL, "--dx", "inf"), r"'dx'.*got inf"),
    Bad("dx-square-overflows", (*S, *SMALL, "--dx", "1e308"), r"'dx'.*1e\+150.*got 1e\+308"),
    Bad("stencil-unknown", (*S, *SMALL, "--stencil", "7-point"), r"'stencil'.*7-point"),
    Bad("engine-unknown", (*S, *SMALL, "--engine", "gpu"), r"'engine'.*'gpu'"),
    Bad("ode-on-a-grid", (*S, *SMALL, "--engine", "ode"), r"engine 'ode'.*well-mixed"),
    Bad("dtype-unknown", (*S, *SMALL, "--dtype", "float16"), r"'dtype'.*float16"),
    Bad("movie-avi", (*S, *SMALL, "--movie", "avi"), r"'movie'.*'avi'"),
    Bad("runaway-limit-zero", (*S, *SMALL, "--runaway-limit", "0"), r"runaway_limit.*got 0"),
    Bad("runaway-limit-negative", (*S, *SMALL, "--runaway-limit", "-5"), r"runaway_limit"),
    Bad("runaway-limit-inf", (*S, *SMALL, "--runaway-limit", "inf"), r"runaway_limit.*inf"),
    # ---------------------------------------------------------------- initial state
    Bad("initial-unknown", (*S, *SMALL, "--initial", "spots"), r"'initial'.*'spots'"),
    Bad("square-not-a-number", (*S, *SMALL, "--square", "U=abc"), r"'abc' for 'U'"),
    Bad("square-nan", (*S, *SMALL, "--square", "U=nan"), r"'nan' for 'U'.*finite"),
    Bad("square-twice", (*S, *SMALL, "--square", "U=0.5,U=0.6"), r"'U' is given twice"),
    Bad("square-unknown-species", (*S, *SMALL, "--square", "W=0.5"), r"unknown species 'W'"),
    Bad("square-no-equals", (*S, *SMALL, "--square", "0.5"), r"'0.5' is not of the form"),
    Bad("square-size-zero", (*S, *SMALL, "--square-size", "0"), r"square size.*got 0"),
    Bad("square-size-larger-than-grid", (*S, *SMALL, "--square-size", "9"),
        r"square size.*1\.\.8.*got 9"),
    Bad("n-squares-negative", (*S, *SMALL, "--n-squares", "-1"), r"n_squares.*-1"),
    Bad("noise-negative", (*S, *SMALL, "--noise", "-0.5"), r"noise must be ≥ 0"),
    Bad("noise-nan", (*S, *SMALL, "--noise", "nan"), r"noise must be ≥ 0, got nan"),
    Bad("base-negative", (*S, *SMALL, "--base", "U=-1"), r"finite and ≥ 0.*-1"),
    Bad("square-options-for-random-state", (*S, *SMALL, "--initial", "random", "--square",
                                            "U=1"), r"bad options for initial state 'random'"),
    # ---------------------------------------------------------------- presets
    Bad("preset-unknown", (*S, *SMALL, "--preset", "grey-scott"), r"unknown preset 'grey-scott'"),
    Bad("dense-500-species", (*S, "--preset", "dense", "--n-species", "500"),
        r"124,999,500 reactions.*limit of 10,000"),
    Bad("kitchen-sink-too-many", (*S, "--preset", "kitchen-sink", "--n-species", "30"),
        r"kitchen-sink.*26,100 reactions"),
    Bad("dense-one-species", (*S, *SMALL, "--preset", "dense", "--n-species", "1"),
        r"'n_species'.*≥ 2.*got 1"),
    Bad("n-species-for-fixed-preset", (*S, *SMALL, "--n-species", "3"),
        r"'gray-scott' has a fixed number of species"),
    # ---------------------------------------------------------------- --network files
    Bad("network-missing", (*S, *SMALL, "--network", "missing.yaml"),
        r"network file 'missing.yaml' does not exist"),
    Bad("network-is-a-folder", (*S, *SMALL, "--network", "sub"), r"'sub' is a folder",
        (("sub/x.txt", "x"),)),
    Bad("network-dev-zero", (*S, *SMALL, "--network", "/dev/zero"),
        r"network file '/dev/zero' is not a regular file"),  # was read until killed for memory
    Bad("config-dev-zero", (*S, "--config", "/dev/zero"),
        r"config file '/dev/zero' is not a regular file"),
    Bad("network-binary", (*S, *SMALL, "--network", "net.yaml"), r"'net.yaml' is not a text",
        (("net.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"),)),
    Bad("network-corrupt-yaml", (*S, *SMALL, "--network", "net.yaml"),
        r"'net.yaml' is not valid YAML: .*\(line \d+, column \d+\)",
        (("net.yaml", "reactions: [A -> B : 1\nspecies: {"),)),
    Bad("network-list", (*S, *SMALL, "--network", "net.yaml"), r"'net.yaml'.*mapping.*list",
        (("net.yaml", "- A -> B : 1\n"),)),
    Bad("network-empty", (*S, *SMALL, "--network", "net.yaml"), r"'net.yaml'.*nothing",
        (("net.yaml", ""),)),
    Bad("network-scalar", (*S, *SMALL, "--network", "net.yaml"), r"'net.yaml'.*mapping.*int",
        (("net.yaml", "42\n"),)),
    Bad("network-reactions-number", (*S, *SMALL, "--network", "net.yaml"),
        r"'net.yaml'.*'reactions' must be a list", (("net.yaml", "reactions: 3\n"),)),
    Bad("network-reactions-mapping", (*S, *SMALL, "--network", "net.yaml"),
        r"'net.yaml'.*'reactions' must be a list", (("net.yaml", "reactions: {a: 1}\n"),)),
    Bad("network-reaction-not-text", (*S, *SMALL, "--network", "net.yaml"),
        r"'net.yaml'.*reaction must be text", (("net.yaml", "reactions: [1, 2]\n"),)),
    Bad("network-block-with-bad-line", (*S, *SMALL, "--network", "net.yaml"),
        r"'net.yaml'.*no arrow.*'A B'",
        (("net.yaml", "reactions: |\n  A -> B : 1\n  A B\n"),)),
    Bad("network-unknown-key", (*S, *SMALL, "--network", "net.yaml"),
        r"unknown network keys \['diffusion'\]",
        (("net.yaml", net_yaml("A -> B : 1", diffusion=[0.1, 0.2])),)),
    Bad("network-species-string", (*S, *SMALL, "--network", "net.yaml"),
        r"'species' must be a list", (("net.yaml", net_yaml("A -> B : 1", species="AB")),)),
    Bad("network-species-missing-one", (*S, *SMALL, "--network", "net.yaml"),
        r"unknown species \['B'\]", (("net.yaml", net_yaml("A -> B : 1", species=["A"])),)),
    Bad("network-rate-named-f", (*S, *SMALL, "--network", "net.yaml"),
        r"rate name 'f' .*flow rate f", (("net.yaml", net_yaml("A -> B : f = 1")),)),
    Bad("network-rate-named-D", (*S, *SMALL, "--network", "net.yaml"),
        r"rate name 'D_A' .*diffusion coefficient of A",
        (("net.yaml", net_yaml("A -> B : D_A = 1")),)),
    Bad("network-rate-named-feed", (*S, *SMALL, "--network", "net.yaml"),
        r"rate name 'feed_B' .*feed concentration of B",
        (("net.yaml", net_yaml("A -> B : feed_B = 1")),)),
    Bad("network-rate-named-like-another-index", (*S, *SMALL, "--network", "net.yaml"),
        r"rate name 'k2' of reaction 0 .*index name of reaction 2 \('C -> A'\)",
        (("net.yaml", net_yaml("A -> B : k2 = 1", "B -> C : 1", "C -> A")),)),
    Bad("network-rate-infinite", (*S, *SMALL, "--network", "net.yaml"),
        r"rate constant 'inf' .* infinite", (("net.yaml", net_yaml("A -> B : inf")),)),
    Bad("network-rate-underscore", (*S, *SMALL, "--network", "net.yaml"),
        r"rate constant '1_0' in 'A -> B : 1_0' is not a number",
        (("net.yaml", net_yaml("A -> B : 1_0")),)),
    Bad("network-rate-name-is-a-number", (*S, *SMALL, "--network", "net.yaml"),
        r"rate name 'nan' .*reads as a number", (("net.yaml", net_yaml("A -> B : nan = 1")),)),
    Bad("network-rate-missing", (*S, *SMALL, "--network", "net.yaml"),
        r"no rate constant given for reactions \['B -> A'\]",
        (("net.yaml", net_yaml("A -> B : 1", "B -> A")),)),
    Bad("network-rate-named-twice", (*S, *SMALL, "--network", "net.yaml"),
        r"rate names used twice", (("net.yaml", net_yaml("A -> B : k = 1", "B -> A : k = 2")),)),
    Bad("network-huge-coefficient", (*S, *SMALL, "--network", "net.yaml"),
        r"coefficient.*exceed 100", (("net.yaml", net_yaml("1000A -> B : 1")),)),
    Bad("network-is-a-run-config", (*S, *SMALL, "--network", "config.yaml"),
        r"'config.yaml'.*--config", (("config.yaml", yaml.safe_dump(
            {"network": ["A -> B : 1"], "species": ["A", "B"]})),)),
    Bad("network-shadowed-by-set", (*S, *SMALL, "--network", "net.yaml", "--set", "k0=1",
                                    "--set", "k=2"), r"'k0' and 'k' name the same parameter",
        (("net.yaml", net_yaml("A -> B : k = 1")),)),
    # ---------------------------------------------------------------- --config files
    Bad("config-missing", (*S, "--config", "none.yaml"), r"config file 'none.yaml' does not"),
    Bad("config-folder", (*S, "--config", "sub"), r"config file 'sub' is a folder",
        (("sub/config.yaml", config_yaml()),)),
    Bad("config-binary", (*S, "--config", "c.yaml"), r"config file 'c.yaml' is not a text",
        (("c.yaml", bytes(range(256))),)),
    Bad("config-corrupt", (*S, "--config", "c.yaml"), r"'c.yaml' is not valid YAML",
        (("c.yaml", "steps: [1, 2\n"),)),
    Bad("config-list", (*S, "--config", "c.yaml"), r"'c.yaml'.*mapping.*a list",
        (("c.yaml", "- 1\n- 2\n"),)),
    Bad("config-empty", (*S, "--config", "c.yaml"), r"'c.yaml'.*empty", (("c.yaml", ""),)),
    Bad("config-scalar", (*S, "--config", "c.yaml"), r"'c.yaml'.*mapping.*text",
        (("c.yaml", "hello\n"),)),
    Bad("config-steps-text", (*S, "--config", "c.yaml"), r"'c.yaml'.*'steps'.*'ten'",
        (("c.yaml", config_yaml(steps="ten")),)),
    Bad("config-steps-float", (*S, "--config", "c.yaml"), r"'c.yaml'.*'steps'.*2.5",
        (("c.yaml", config_yaml(steps=2.5)),)),
    Bad("config-parameters-list", (*S, "--config", "c.yaml"), r"'c.yaml'.*'parameters'",
        (("c.yaml", config_yaml(parameters=[1, 2])),)),
    Bad("config-parameter-value-mapping", (*S, "--config", "c.yaml"),
        r"'c.yaml'.*value \{'a': 1\} of parameter 'f'",
        (("c.yaml", config_yaml(parameters={"f": {"a": 1}})),)),
    Bad("config-parameter-list-with-text", (*S, "--config", "c.yaml"),
        r"'c.yaml'.*parameter 'k'", (("c.yaml", config_yaml(parameters={"k": [0.05, "x"]})),)),
    Bad("config-parameter-boolean", (*S, "--config", "c.yaml"), r"'c.yaml'.*parameter 'f'",
        (("c.yaml", config_yaml(parameters={"f": True})),)),
    Bad("config-grid-list", (*S, "--config", "c.yaml"), r"'c.yaml'.*'grid'.*\[1\]",
        (("c.yaml", config_yaml(grid=[1])),)),
    Bad("config-grid-zero", (*S, "--config", "c.yaml"), r"'c.yaml'.*grid '0'",
        (("c.yaml", config_yaml(grid=0)),)),
    Bad("config-key-twice", (*S, "--config", "c.yaml"),
        r"'c.yaml' is not valid YAML: key 'steps' appears twice in one mapping \(line 6",
        (("c.yaml", config_yaml() + "steps: 9\n"),)),
    Bad("network-key-twice", (*S, *SMALL, "--network", "net.yaml"),
        r"'net.yaml' is not valid YAML: key 'reactions' appears twice.*\(line 2, column 1\)",
        (("net.yaml", "reactions: ['A -> B : 1']\nreactions: ['B -> A : 1']\n"),)),
    Bad("config-unknown-key", (*S, "--config", "c.yaml"),
        r"'c.yaml'.*unknown config keys \['colour'\].*known keys.*'preset'",
        (("c.yaml", config_yaml(colour="red")),)),
    Bad("config-snapshots-one", (*S, "--config", "c.yaml"), r"'c.yaml'.*'snapshots'",
        (("c.yaml", config_yaml(snapshots=1)),)),
    Bad("config-seed-negative", (*S, "--config", "c.yaml"), r"'c.yaml'.*'seed'.*-3",
        (("c.yaml", config_yaml(seed=-3)),)),
    Bad("config-seed-boolean", (*S, "--config", "c.yaml"), r"'c.yaml'.*'seed'.*True",
        (("c.yaml", config_yaml(seed=True)),)),
    Bad("config-movie-avi", (*S, "--config", "c.yaml"), r"'c.yaml'.*'movie'.*avi",
        (("c.yaml", config_yaml(movie="avi")),)),
    Bad("config-runaway-limit-text", (*S, "--config", "c.yaml"), r"'c.yaml'.*'runaway_limit'",
        (("c.yaml", config_yaml(runaway_limit="big")),)),
    Bad("config-dt-text", (*S, "--config", "c.yaml"), r"'c.yaml'.*'dt'.*'fast'",
        (("c.yaml", config_yaml(dt="fast")),)),
    Bad("config-initial-options-list", (*S, "--config", "c.yaml"),
        r"'c.yaml'.*'initial_options'", (("c.yaml", config_yaml(initial_options=[1])),)),
    Bad("config-network-number", (*S, "--config", "c.yaml"), r"'c.yaml'.*'network'",
        (("c.yaml", config_yaml(network=5)),)),
    Bad("config-with-a-parameter", (*S, "--config", "c.yaml", "--f", "0.05"),
        r"--config reruns 'c.yaml' as it is; --f 0.05 would be ignored",
        (("c.yaml", config_yaml()),)),
    Bad("config-with-an-option", (*S, "--config", "c.yaml", "--grid", "16"),
        r"--config .*--grid would be ignored", (("c.yaml", config_yaml()),)),
    # ---------------------------------------------------------------- outputs
    Bad("out-is-a-file", ("simulate", *SMALL, "--out", "r"), r"--out 'r' is an existing file",
        (("r", "not a folder"),)),
    Bad("out-is-a-foreign-folder", ("simulate", *SMALL, "--out", "mine"),
        r"'mine' is a non-empty folder that rdlab did not write", (("mine/thesis.tex", "x"),)),
    Bad("out-under-a-file", ("simulate", *SMALL, "--out", "f/run"), r"'f' is a file",
        (("f", "x"),)),
    Bad("out-empty", ("simulate", *SMALL, "--out", ""), r"is not a folder name"),
    # ---------------------------------------------------------------- demo
    Bad("demo-out-is-a-file", ("demo", "--quick", "--out", "r"), r"'r' is an existing file",
        (("r", "x"),)),
    Bad("demo-out-is-a-foreign-folder", ("demo", "--quick", "--out", "mine"),
        r"'mine' is a non-empty folder", (("mine/notes.txt", "x"),)),
    Bad("demo-out-under-a-file", ("demo", "--quick", "--out", "f/demo"), r"'f' is a file",
        (("f", "x"),)),
    Bad("demo-unknown-option", ("demo", "--fast"), r"No such option.*--fast"),
    Bad("demo-extra-argument", ("demo", "--quick", "now"), r"unexpected extra argument.*now"),
]


def test_table_is_large_and_ids_unique():
    assert len(BAD) >= 60
    assert len({b.id for b in BAD}) == len(BAD)


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
def test_refused(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_files(tmp_path, bad.files)
    assert_refused(bad.args, tmp_path, bad.match)


def test_mp4_without_ffmpeg_is_refused_before_simulating(tmp_path, monkeypatch):
    from rdlab.simulate import api

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("rdlab.viz.frames.ffmpeg_available", lambda: False)
    monkeypatch.setattr(api, "simulate", lambda *a, **k: pytest.fail("simulated"))
    assert_refused((*S, *SMALL, "--movie", "mp4"), tmp_path, r"mp4 needs the ffmpeg")


def test_a_network_may_be_one_text_block(tmp_path, monkeypatch):
    """A YAML ``reactions: |`` block is read line by line, exactly like ``from_text``."""
    from rdlab.chemistry import ReactionNetwork

    block = "A + 2B -> 3B : 1.0\nB -> 0 : k = 0.06\n"
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"reactions": block}))
    assert ReactionNetwork.from_yaml(path) == ReactionNetwork.from_text(block)
    assert ReactionNetwork.from_yaml(path).n_reactions == 2


def test_refused_reruns_leave_the_previous_run_untouched(tmp_path, monkeypatch):
    """A rerun into a finished run folder that is refused (bad option, unstable dt) or
    fails (blow-up) leaves the old config.yaml and results exactly as they were."""
    from typer.testing import CliRunner

    from rdlab.cli import app

    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(app, [*S, *SMALL, "--engine", "numpy", "--f", "0.03"])
    assert first.exit_code == 0, first.output
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert config["parameters"]["f"] == 0.03
    for args, match in [
        (("--f", "0.05", "--dt", "5"), r"unstable"),
        (("--f", "0.05", "--snapshots", "1"), r"snapshots"),
        (("--f", "0.05", "--movie", "avi"), r"movie"),
        (("--f", "0.05", "--initial", "uniform", "--base", "U=1e3,V=1e3"),
         r"blew up.*sample 0 at step \d+ \(the first bad step\)"),
    ]:
        assert_refused((*S, *SMALL, "--engine", "numpy", *args), tmp_path, match)
    again = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert again == config
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["samples"] == 1


def test_a_well_mixed_preset_run_says_it_starts_uniform(tmp_path, monkeypatch):
    """Gray–Scott's default squares mean nothing without a grid: the run starts from the
    feed (or --base) and its config.yaml says 'uniform', not 'squares'."""
    import yaml
    from typer.testing import CliRunner

    from rdlab.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["simulate", "--grid", "none", "--steps", "20", "--dt",
                                      "0.1", "--base", "U=0.5,V=0.25", "--out", "runs/wm"])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "runs/wm/config.yaml").read_text())
    assert config["initial"] == "uniform"
    assert config["initial_options"] == {"values": {"U": 0.5, "V": 0.25}}
