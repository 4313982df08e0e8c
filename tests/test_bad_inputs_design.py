"""``rdlab design`` refuses bad input before it writes anything: exit 2, one ``error:`` line
naming the culprit, no traceback, no file added or changed (:mod:`cli_contract`).

Also here: refused or failed reruns leave a finished run folder exactly as it was, the
folder is locked against a second writer, and every config field's type is checked."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import textwrap
import typing

import pytest
from cli_contract import Bad, assert_refused, make_files, snapshot
from typer.testing import CliRunner

from rdlab.cli import app
from rdlab.design.config import DesignConfig, load_config
from rdlab.errors import ParameterError, RdlabError


def _animated_gif() -> bytes:
    import io

    from PIL import Image

    frames = [Image.new("L", (8, 8), 40 * i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


ANIMATED_GIF = _animated_gif()
OUT = ("--out", "runs/x")
Q = ("design", "fig2a-quick", *OUT)  # a valid command, made bad by one argument
#: the folder of a run written by another config (killed before its first checkpoint)
OTHER_RUN = (("runs/x/config.yaml", "name: other\nsteps: 3\n"),)

BAD = [
    # -- the config argument
    Bad("no-config", ("design", *OUT), r"give a config file"),
    Bad("unknown-config", ("design", "nosuch", *OUT), r"no config file 'nosuch'"),
    Bad("config-is-folder", ("design", "cfgdir", *OUT), r"'cfgdir' is a folder",
        (("cfgdir/a.yaml", "name: a\n"),)),
    Bad("config-binary", ("design", "b.yaml", *OUT), r"'b.yaml' is not a text file",
        (("b.yaml", b"\x89PNG\r\n\x1a\n\x00\xff\xfe"),)),
    Bad("config-dev-zero", ("design", "/dev/zero", *OUT),
        r"config file '/dev/zero' is not a regular file"),
    Bad("config-empty", ("design", "e.yaml", *OUT), r"'e.yaml' is empty", (("e.yaml", ""),)),
    Bad("config-list", ("design", "l.yaml", *OUT), r"'l.yaml' must be a mapping.*list",
        (("l.yaml", "- steps\n- 3\n"),)),
    Bad("config-scalar", ("design", "s.yaml", *OUT), r"'s.yaml' must be a mapping.*text",
        (("s.yaml", "fig2a\n"),)),
    Bad("config-corrupt-yaml", ("design", "c.yaml", *OUT), r"'c.yaml' is not valid YAML",
        (("c.yaml", "steps: [1, 2\nlr: 3\n"),)),
    Bad("config-corrupt-toml", ("design", "c.toml", *OUT),
        r"config file 'c.toml' is not valid TOML", (("c.toml", "steps = \n"),)),
    Bad("config-steps-text", ("design", "w.yaml", *OUT), r"'w.yaml'.*steps.*'ten'",
        (("w.yaml", "steps: ten\n"),)),
    Bad("config-size-scalar", ("design", "w.yaml", *OUT), r"'model.size' must be a list of 2.*32",
        (("w.yaml", "size: 32\n"),)),
    Bad("config-key-twice", ("design", "w.yaml", *OUT),
        r"'w.yaml' is not valid YAML: key 'steps' appears twice in one mapping \(line 2",
        (("w.yaml", "steps: 3\nsteps: 1000\n"),)),
    Bad("config-unknown-key", ("design", "w.yaml", *OUT), r"unknown config key.*specis",
        (("w.yaml", "specis: 4\n"),)),
    Bad("config-loss-options-scalar", ("design", "w.yaml", *OUT),
        r"options of 'target' must be a mapping", (("w.yaml", "loss: {target: 5}\n"),)),
    Bad("config-loss-unknown-term", ("design", "w.yaml", *OUT), r"unknown term 'bogus'",
        (("w.yaml", "loss: {bogus: {}}\n"),)),
    Bad("config-flow-noise-text", ("design", "w.yaml", *OUT),
        r"flow_noise amplitude.*'abc'", (("w.yaml", "flow_noise: {amplitude: abc}\n"),)),
    Bad("config-initial-diffusion-text", ("design", "w.yaml", *OUT),
        r"initial diffusion.*'abc'", (("w.yaml", "initial: {diffusion: abc}\n"),)),
    Bad("config-target-image-missing", ("design", "w.yaml", *OUT),
        r"target image .*nothere.png.* does not exist",
        (("w.yaml", "loss: {target: {image: nothere.png}}\n"),)),
    # -- --set values
    Bad("set-beta1-text", (*Q, "--set", "beta1=abc"), r"'optimiser.beta1' must be a finite.*'abc'"),
    Bad("set-size-scalar", (*Q, "--set", "size=32"), r"'model.size' must be a list of 2.*32"),
    Bad("set-steps-text", (*Q, "--set", "steps=ten"), r"'optimiser.steps' must be a whole.*'ten'"),
    Bad("set-lr-negative", (*Q, "--set", "lr=-1"), r"lr must be positive, got -1"),
    Bad("set-lr-nan", (*Q, "--set", "lr=.nan"), r"'optimiser.lr' must be a finite number"),
    Bad("set-unknown-key", (*Q, "--set", "specis=4"),
        r"unknown config key.*'specis'.*known keys are.*'species'"),
    Bad("set-dotted-key", (*Q, "--set", "loss.target.weight=2"), r"'loss.target.weight'"),
    Bad("set-no-equals", (*Q, "--set", "steps"), r"KEY=VALUE.*'steps'"),
    Bad("set-no-key", (*Q, "--set", "=3"), r"KEY=VALUE.*'=3'"),
    Bad("set-bad-yaml", (*Q, "--set", "size=[16,"), r"size=\[16,.*not valid YAML"),
    Bad("set-species-huge", (*Q, "--set", "species=500"), r"124,750,000 reactions"),
    Bad("set-size-huge", (*Q, "--set", "size=[65536, 65536]"), r"needs about .* GiB"),
    Bad("set-name-path", (*Q, "--set", "name=../evil"), r"name must be a folder name"),
    Bad("set-network", (*Q, "--set", "network=bogus"), r"network must be one of.*'bogus'"),
    Bad("set-steps-huge", (*Q, "--set", "steps=1000000000000000000000"),
        r"steps must be at most 1,000,000,000, got 1000000000000000000000"),
    Bad("set-beta2-one", (*Q, "--set", "beta2=1"), r"beta2 must lie in \(0, 1\), got 1"),
    Bad("set-dt-zero", (*Q, "--set", "dt=0"), r"dt must be positive, got 0"),
    Bad("set-stages-empty", (*Q, "--set", "stages=[]"), r"stages must list at least one"),
    Bad("set-steps-per-stage", (*Q, "--set", "steps=[2, 2]"), r"steps lists 2 values for 1"),
    Bad("set-fixed-unknown", (*Q, "--set", "fixed=[bogus]"), r"unknown parameter group.*bogus"),
    Bad("set-flow-out-of-bounds", (*Q, "--set", "flow=5"), r"flow must lie in .*got 5"),
    Bad("set-device", (*Q, "--set", "device=tpu"), r"'tpu'"),
    Bad("set-dtype", (*Q, "--set", "dtype=float16"), r"dtype must be float32 or float64"),
    Bad("set-controls-zero", (*Q, "--set", "controls=0"), r"controls must be .*≥ 1, got 0"),
    Bad("set-seed-negative", (*Q, "--set", "seed=-1"), r"seed must be .*≥ 0, got -1"),
    Bad("set-clip-text", (*Q, "--set", "clip=maybe"), r"'model.clip' must be true or.*'maybe'"),
    Bad("set-patch", (*Q, "--set", "patch=24"), r"patch must be a power of two.*24"),
    Bad("set-target-species", (*Q, "--set", "loss={target: {species: 9}}"),
        r"target species 9"),
    Bad("set-init-from-missing", (*Q, "--set", "init_from=nowhere"),
        r"init_from: '.*nowhere' is not a finished run"),
    Bad("set-init-from-garbage", (*Q, "--set", "init_from=old/model.pt"),
        r"model.pt' is not a readable design model", (("old/model.pt", b"not a torch file"),)),
    # -- options
    Bad("minutes-zero", (*Q, "--minutes", "0"), r"--minutes must be a positive.*got 0"),
    Bad("minutes-negative", (*Q, "--minutes", "-2"), r"--minutes must be a positive.*-2"),
    Bad("minutes-nan", (*Q, "--minutes", "nan"), r"--minutes must be a positive.*nan"),
    Bad("time-budget-bare", (*Q, "--time-budget", "60"),
        r"--time-budget needs a unit: write 60s, 60m or 60h .*got '60'"),
    Bad("time-budget-negative", (*Q, "--time-budget", "-1h"),
        r"--time-budget must be a positive finite duration.*'-1h'"),
    Bad("time-budget-nan", (*Q, "--time-budget", "nanm"),
        r"--time-budget must be a positive finite duration.*'nanm'"),
    Bad("time-budget-unit", (*Q, "--time-budget", "1day"),
        r"--time-budget must be a duration with the unit s, m or h.*'1day'"),
    Bad("controls-zero", (*Q, "--controls", "0"), r"--controls must be at least 1.*got 0"),
    Bad("controls-negative", (*Q, "--controls", "-3"), r"--controls must be at least 1.*-3"),
    Bad("controls-huge", (*Q, "--controls", str(2**70)),
        r"--controls must be at least 1 .*at most 1,000,000,000.*got 1180591620717411303424"),
    Bad("target-animated", (*Q, "--target", "a.gif"),
        r"target image '.*a\.gif' is animated \(3 frames\)", (("a.gif", ANIMATED_GIF),)),
    Bad("controls-text", (*Q, "--controls", "many"), r"Invalid value for .--controls."),
    # -- --seeds and its cluster options
    Bad("seeds-text", (*Q, "--seeds", "a:b"), r"--seeds 'a:b' is not a seed range or list"),
    Bad("seeds-three-parts", (*Q, "--seeds", "1:2:3"), r"--seeds '1:2:3' is not a seed range"),
    Bad("seeds-list-gap", (*Q, "--seeds", "1,,2"), r"--seeds '1,,2' is not a seed range"),
    Bad("seeds-empty-range", (*Q, "--seeds", "5:2"), r"--seeds '5:2' is an empty range"),
    Bad("seeds-negative", (*Q, "--seeds", "-1:2"), r"--seeds '-1:2': seeds must lie in"),
    Bad("seeds-too-large", (*Q, "--seeds", str(2**63)), r"--seeds '9223372036854775808'"),
    Bad("seeds-repeated", (*Q, "--seeds", "1,4,1"), r"--seeds '1,4,1' repeats a seed"),
    Bad("seeds-too-many", (*Q, "--seeds", "0:100000"),
        r"--seeds '0:100000' asks for 100,000 seeds, at most 10,000"),
    Bad("seeds-workers-zero", (*Q, "--seeds", "0:2", "--workers", "0"),
        r"--workers must be between 1 and .*got 0"),
    Bad("seeds-workers-and-scheduler", (*Q, "--seeds", "0:2", "--workers", "2", "--scheduler",
                                        "tcp://h:8786"), r"--workers 2 is for the local cluster"),
    Bad("seeds-scheduler-blank", (*Q, "--seeds", "0:2", "--scheduler", " "),
        r"--scheduler must be a dask address.*' '"),
    Bad("scheduler-without-seeds", (*Q, "--scheduler", "in-process"),
        r"--scheduler is for --seeds"),
    Bad("workers-without-seeds", (*Q, "--workers", "2"), r"--workers is for --seeds"),
    Bad("seeds-bad-model", (*Q, "--seeds", "0:2", "--set", "loss={target: {species: 9}}"),
        r"target species 9"),
    Bad("target-text-file", (*Q, "--target", "notes.png"),
        r"'.*notes.png' is not an image Pillow can read", (("notes.png", "just text\n"),)),
    Bad("target-folder", (*Q, "--target", "pics"), r"--target 'pics' is a folder",
        (("pics/a.txt", "x"),)),
    Bad("target-missing", (*Q, "--target", "none.png"), r"--target image 'none.png' does "
        "not exist"),
    Bad("target-without-target-loss", ("design", "fig3-quick", *OUT, "--target", "t.png"),
        r"'fig3-quick' has no target loss", (("t.png", "x"),)),
    # -- the output folder
    Bad("out-is-file", ("design", "fig2a-quick", "--out", "afile"), r"'afile' is an existing "
        "file", (("afile", "x"),)),
    Bad("out-foreign-folder", ("design", "fig2a-quick", "--out", "mine"),
        r"'mine' is a non-empty folder that rdlab did not write", (("mine/thesis.tex", "x"),)),
    Bad("out-under-file", ("design", "fig2a-quick", "--out", "afile/run"), r"'afile' is a "
        "file", (("afile", "x"),)),
    Bad("out-holds-other-config", Q, r"'runs/x' holds the config of another run.*--fresh",
        OTHER_RUN),
    Bad("out-garbage-checkpoint", Q,
        r"'runs/x/checkpoint.pt' is not a readable design checkpoint.*--fresh",
        (("runs/x/checkpoint.pt", b"\x00garbage" * 10), ("runs/x/config.yaml", "x: 1\n"))),
]


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
def test_refused(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_files(tmp_path, bad.files)
    assert_refused(bad.args, tmp_path, bad.match)


def test_the_table_is_large_and_ids_are_unique():
    assert len(BAD) >= 30 and len({b.id for b in BAD}) == len(BAD)


def test_every_config_field_refuses_a_value_of_the_wrong_type():
    """The expected types come from the dataclass fields of the config and its sections:
    each field, given a value of another kind, is refused naming its key path and the
    value — none is left unchecked."""
    def leaves(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in cls._internal:
                continue
            if dataclasses.is_dataclass(hints[f.name]):
                yield from leaves(hints[f.name], f"{prefix}{f.name}.")
            else:
                yield prefix + f.name, hints[f.name]

    keys = list(leaves(DesignConfig))
    assert len(keys) == 40  # the 41 fields of the flat config less the internal source
    for key, hint in keys:
        wrong = "wrong-kind" if hint in (dict, dict | None) else {"a": 1}
        data: dict = {}
        node = data
        *sections, leaf = key.split(".")
        for part in sections:
            node = node.setdefault(part, {})
        node[leaf] = wrong
        with pytest.raises(ParameterError, match=rf"'{key}' must be .*{re.escape(repr(wrong))}"):
            DesignConfig.from_dict(data)


def test_yaml_exponents_without_a_point_are_numbers(tmp_path):
    """YAML 1.1 reads ``1e-4`` as text; a config (or --set) means the number."""
    (tmp_path / "c.yaml").write_text("lr: 1e-4\neps: 2E-3\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.optimiser.lr == 1e-4 and cfg.optimiser.eps == 2e-3


# ------------------------------------------------------------------ a finished run folder
TINY = ("--set", "steps=3", "--set", "size=[8, 8]", "--set", "stages=[4]",
        "--set", "z_bits=8", "--set", "checkpoint_every=2", "--set", "eval_factor=1",
        "--set", "eval_dt_divisors=[2]", "--controls", "2")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished and reported tiny run at ``runs/x`` (made once, copied per test)."""
    root = tmp_path_factory.mktemp("finished")
    res = CliRunner().invoke(app, ["design", "fig2a-quick", "--out", str(root / "runs/x"),
                                   *TINY])
    assert res.exit_code == 0, res.output
    return root / "runs/x"


@pytest.fixture
def run_here(finished_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(finished_run, tmp_path / "runs/x")
    return tmp_path / "runs/x"


@pytest.mark.parametrize("change, match", [
    (("--set", "steps=80"), r"different config \(optimiser.steps: 3 there, 80 here\).*--fresh"),
    (("--set", "lr=0.002"), r"different config \(optimiser.lr: 0.001 there, 0.002 here\)"),
    (("--target", "t.png"), r"different config \(loss: "),
])
def test_a_refused_rerun_leaves_the_finished_run_as_it_was(run_here, tmp_path, change, match):
    """The folder's config.yaml still describes its results after a refused resume."""
    from PIL import Image

    Image.frombytes("L", (2, 1), b"\x00\xff").resize((8, 8)).save(tmp_path / "t.png")
    assert_refused(["design", "fig2a-quick", *OUT, *TINY, *change], tmp_path, match)
    assert "steps: 3\n" in (run_here / "config.yaml").read_text()


def test_a_truncated_checkpoint_is_named_with_the_way_out(run_here, tmp_path):
    ck = run_here / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    assert_refused(["design", "fig2a-quick", *OUT, *TINY], tmp_path,
                   r"'runs/x/checkpoint.pt' is not a readable design checkpoint \(damaged or "
                   r"truncated.*start again with --fresh")


def test_a_checkpoint_whose_history_was_cut_is_refused(run_here, tmp_path):
    hist = run_here / "history.jsonl"
    hist.write_text(hist.read_text().splitlines()[0] + "\n")
    assert_refused(["design", "fig2a-quick", *OUT, *TINY], tmp_path,
                   r"history.jsonl' has 1 lines but the checkpoint counts 3 steps.*--fresh")


def test_a_fresh_run_that_fails_keeps_the_old_run(run_here, tmp_path, monkeypatch):
    """--fresh replaces the old run only once the new one has a result: a failure on the
    way (here in the report) leaves every old file as it was, and nothing beside it."""
    import rdlab.design.run as run

    def broken_report(*args, **kwargs):
        raise RdlabError("report failed on purpose")

    monkeypatch.setattr(run, "report", broken_report)
    before = snapshot(tmp_path)
    res = CliRunner().invoke(app, ["design", "fig2a-quick", *OUT, *TINY, "--set", "steps=4",
                                   "--fresh"])
    assert res.exit_code == 2 and "report failed on purpose" in res.output
    assert snapshot(tmp_path) == before


def test_a_fresh_run_replaces_the_old_one_whole(run_here, tmp_path):
    res = CliRunner().invoke(app, ["design", "fig2a-quick", *OUT, *TINY, "--set", "steps=4",
                                   "--fresh", "--no-evaluate"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in run_here.iterdir())
    assert names == [".rdlab-run", "checkpoint.pt", "config.yaml", "history.jsonl",
                     "model.pt"]  # the old report went with the old run
    assert "steps: 4\n" in (run_here / "config.yaml").read_text()
    assert len((run_here / "history.jsonl").read_text().splitlines()) == 4
    beside = [p.name for p in (tmp_path / "runs").iterdir() if p.suffix != ".lock"]
    assert beside == ["x"]  # no staging or replaced folder left


def test_a_report_that_fails_leaves_the_old_report_whole(run_here, tmp_path, monkeypatch):
    import rdlab.design.report as report_module

    def broken(*args, **kwargs):
        raise RdlabError("plotting failed on purpose")

    monkeypatch.setattr(report_module, "plot_reaction_graph", broken)  # after other figures
    before = snapshot(tmp_path)
    res = CliRunner().invoke(app, ["design", "fig2a-quick", *OUT, *TINY])
    assert res.exit_code == 2 and "plotting failed on purpose" in res.output
    assert snapshot(tmp_path) == before  # no staging folder left, old report untouched


def test_a_second_writer_gets_the_lock_error_naming_the_holder(run_here, tmp_path):
    """Another process holds runs/x (as a running `rdlab design` does): this command is
    refused at once, naming that process, and changes nothing."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from rdlab.output_lock import hold
        with hold("runs/x", command="rdlab design fig2a-quick"):
            print("locked", flush=True)
            time.sleep(60)
        """)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert_refused(["design", "fig2a-quick", *OUT, *TINY], tmp_path,
                       rf"'runs/x' is being written by process {holder.pid} .*rdlab design "
                       r"fig2a-quick")
    finally:
        holder.kill()
        holder.wait()


def test_a_stopped_run_says_so_and_resumes(tmp_path, monkeypatch):
    """--time-budget stops with a checkpoint: the command says how to resume, the report says
    the optimisation had not finished; the same command then finishes it."""
    monkeypatch.chdir(tmp_path)
    args = ["design", "fig2a-quick", *OUT, *TINY]
    res = CliRunner().invoke(app, [*args, "--time-budget", "1e-9s"])
    assert res.exit_code == 0 and "stopped after 1 steps" in res.output, res.output
    assert '"finished": false' in (tmp_path / "runs/x/metrics.json").read_text()
    res = CliRunner().invoke(app, [*args, "--no-evaluate"])
    assert res.exit_code == 0 and "optimised: runs/x (3 steps)" in res.output, res.output
    assert not (tmp_path / "runs/x/metrics.json").exists()  # it described the old model


def test_a_16_bit_target_keeps_its_grey_levels(tmp_path):
    """A 16-bit grey image is scaled to 0–255, not clipped (Pillow's convert("L") clips a
    16-bit gradient to 99.6 % white, a wrong target that still ran)."""
    import numpy as np
    from PIL import Image

    from rdlab.design.objectives import load_target

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "t16.png")
    Image.fromarray((ramp // 257).astype(np.uint8)).save(tmp_path / "t8.png")
    np.testing.assert_allclose(load_target(tmp_path / "t16.png", 64),
                               load_target(tmp_path / "t8.png", 64), atol=1.0)


def test_a_target_too_large_to_decode_is_refused(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # so that a small file trips it
    Image.new("L", (64, 64), 3).save(tmp_path / "big.png")
    monkeypatch.chdir(tmp_path)
    assert_refused([*Q, "--target", "big.png"], tmp_path,
                   r"'.*big\.png' is not an image Pillow can read \(Image size")


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path,
                                                                       monkeypatch):
    """A new run whose optimisation fails (e.g. a NaN loss at step 2) has nothing to
    resume: its config.yaml and history are removed with the folder it made."""
    import rdlab.design.run as run

    def failing(config, where, **kwargs):
        where.mkdir(parents=True, exist_ok=True)
        (where / "config.yaml").write_text("name: x\n")
        (where / "history.jsonl").write_text("{}\n")
        raise RdlabError("the loss became nan at stage 0 step 2")

    monkeypatch.setattr(run, "optimise", failing)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert_refused([*Q, *TINY], tmp_path, r"loss became nan")
    assert not (tmp_path / "runs" / "x").exists()
