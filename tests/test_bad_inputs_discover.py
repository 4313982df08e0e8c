"""``rdlab discover`` refuses bad options, data files and outputs: exit 2, one ``error:``
line naming the culprit (file, line, column, option), no traceback, no file written."""

from __future__ import annotations

import pytest
from cli_contract import Bad, assert_refused, make_files

GOOD = "sample,time,A,B\n0,0,1,0\n0,0.5,0.6,0.4\n0,1,0.4,0.6\n"
WITH_D = ("sample,time,A,B,dA/dt,dB/dt\n0,0,1,0,-1,1\n0,0.5,0.6,0.4,-0.6,0.6\n"
          "0,1,0.4,0.6,-0.4,0.4\n")
EX = ("discover", "--example", "stiff")


def csv(name: str, text: str, *extra: str, files=()) -> Bad:
    """A row that passes the file ``name`` with ``text`` (and ``--reactions 1``)."""
    return ("discover", name, "--reactions", "1", *extra), ((name, text), *files)


def row(name: str, args_files, match: str) -> Bad:
    args, files = args_files
    return Bad(name, args, match, files)


BAD = [
    # ---- options (refused before any data are read or generated)
    Bad("reactions-0", (*EX, "--reactions", "0"), r"--reactions .*got 0"),
    Bad("reactions-negative", (*EX, "--reactions", "-3"), r"--reactions .*got -3"),
    Bad("reactions-huge", (*EX, "--reactions", "100000"), r"--reactions .*1 … 100.*100000"),
    Bad("reactions-text", (*EX, "--reactions", "two"), r"--reactions"),
    Bad("budget-0", (*EX, "--budget", "0"), r"--budget .*got 0"),
    Bad("budget-negative", (*EX, "--budget", "-5"), r"--budget .*got -5"),
    Bad("budget-nan", (*EX, "--budget", "nan"), r"--budget .*got nan"),
    Bad("budget-inf", (*EX, "--budget", "inf"), r"--budget .*got inf"),
    Bad("time-budget-bare", (*EX, "--time-budget", "120"), r"--time-budget needs a unit.*'120'"),
    Bad("time-budget-0", (*EX, "--time-budget", "0s"),
        r"--time-budget must be a positive finite duration.*'0s'"),
    Bad("time-budget-inf", (*EX, "--time-budget", "infs"),
        r"--time-budget must be a positive finite duration.*'infs'"),
    Bad("time-budget-text", (*EX, "--time-budget", "soon"), r"--time-budget .*'soon'"),
    Bad("time-budget-and-budget", (*EX, "--time-budget", "1m", "--budget", "60"),
        r"--time-budget or --budget \(its old name\), not both"),
    Bad("tolerance-0", (*EX, "--tolerance", "0"), r"--tolerance .*got 0"),
    Bad("tolerance-negative", (*EX, "--tolerance", "-1e-3"), r"--tolerance .*got -0\.001"),
    Bad("tolerance-nan", (*EX, "--tolerance", "nan"), r"--tolerance .*got nan"),
    Bad("noise-negative", (*EX, "--noise", "-0.1"), r"--noise .*got -0\.1"),
    Bad("noise-underscore", (*EX, "--noise", "1_0"), r"--noise.*'1_0'"),
    Bad("noise-nan", (*EX, "--noise", "nan"), r"--noise .*got nan"),
    Bad("noise-on-unknown", (*EX, "--noise", "1e-3", "--noise-on", "rates"),
        r"noise_on must be one of .*got 'rates'"),
    Bad("derivatives-fancy", (*EX, "--derivatives", "fancy"),
        r"--derivatives must be one of fd, spline, smoothing; got 'fancy'"),
    Bad("seed-negative", (*EX, "--seed", "-1"), r"--seed .*got -1"),
    Bad("seed-too-big", (*EX, "--seed", str(2**32)), r"--seed .*got 4294967296"),
    Bad("sweep-letters", (*EX, "--sweep", "a:b"), r"--sweep takes LOW:HIGH.*'a:b'"),
    Bad("sweep-reversed", (*EX, "--sweep", "4:1"), r"--sweep '4:1' is empty"),
    Bad("sweep-zero", (*EX, "--sweep", "0:3"), r"--sweep '0:3'.*got 0"),
    Bad("sweep-three-parts", (*EX, "--sweep", "1:2:3"), r"--sweep takes.*'1:2:3'"),
    Bad("sweep-empty", (*EX, "--sweep", ""), r"--sweep takes.*''"),
    Bad("sweep-empty-item", (*EX, "--sweep", "1,,2"), r"--sweep takes.*'1,,2'"),
    Bad("sweep-huge", (*EX, "--sweep", "1:1000"), r"--sweep '1:1000'.*1 … 100, got 1000"),
    Bad("sweep-and-reactions", (*EX, "--sweep", "1:3", "--reactions", "2"),
        r"--reactions N or --sweep"),
    Bad("unknown-example", ("discover", "--example", "nope"),
        r"unknown example 'nope'.*'stiff'"),
    Bad("data-and-example", ("discover", "d.csv", "--example", "stiff"),
        r"either a DATA file or --example", (("d.csv", GOOD),)),
    Bad("neither-data-nor-example", ("discover",), r"either a DATA file or --example"),
    # ---- data files that are not concentration tables
    Bad("missing-file", ("discover", "none.csv", "--reactions", "1"),
        r"'none\.csv' does not exist"),
    row("empty-file", csv("e.csv", ""), r"'e\.csv' is empty"),
    row("blank-file", csv("e.csv", "\n \n"), r"'e\.csv' is empty"),
    row("binary-file", csv("b.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        r"'b\.csv' is a binary file"),
    row("latin1-file", csv("l.csv", "sample,time,Ä\n0,0,1\n".encode("latin-1")),
        r"'l\.csv' is not a UTF-8 text"),
    row("yaml-as-data", csv("net.yaml", "reactions:\n  - U + 2V -> 3V : 1\n"),
        r"'net\.yaml' is a \.yaml file.*\.csv file or a zarr store"),
    row("txt-as-data", csv("d.txt", GOOD), r"'d\.txt' is a \.txt file"),
    Bad("folder-as-data", ("discover", "folder", "--reactions", "1"),
        r"'folder' is a folder but not a zarr store", (("folder/readme.md", "hi"),)),
    Bad("zarr-without-metadata", ("discover", "s.zarr", "--reactions", "1"),
        r"'s\.zarr' is a folder but not a zarr store \(no \.zgroup",
        (("s.zarr/concentration/0.0.0", b"\x02\x01!\x04"),)),
    # ---- CSV content
    row("header-only", csv("h.csv", "sample,time,A\n"), r"'h\.csv' has a header but no data"),
    row("text-in-number", csv("t.csv", "sample,time,A,B\n0,0,1,0\n0,0.5,0.6,abc\n"),
        r"'t\.csv', line 3, column 'B': 'abc' is not a number"),
    row("text-in-time", csv("t.csv", "sample,time,A\n0,0,1\n0,soon,0.6\n"),
        r"'t\.csv', line 3, column 'time': 'soon' is not a number"),
    row("underscore-in-number", csv("t.csv", "sample,time,A\n0,0,1\n0,0_5,0.6\n"),
        r"'t\.csv', line 3, column 'time': '0_5' is not a number"),
    row("empty-cell", csv("t.csv", "sample,time,A,B\n0,0,1,\n0,0.5,0.6,0.4\n"),
        r"'t\.csv', line 2, column 'B': an empty cell is not a number"),
    row("no-sample-column", csv("t.csv", "time,A\n0,1\n0.5,0.6\n"),
        r"'t\.csv', line 1: a 'sample' column is needed"),
    row("no-time-column", csv("t.csv", "sample,A\n0,1\n0,0.6\n"),
        r"'t\.csv', line 1: a 'time' column is needed"),
    row("no-species-column", csv("t.csv", "sample,time\n0,0\n0,1\n"),
        r"'t\.csv', line 1: no species columns"),
    row("duplicate-column", csv("t.csv", "sample,time,A,A\n0,0,1,1\n"),
        r"'t\.csv', line 1: column 'A' appears twice"),
    row("unnamed-column", csv("t.csv", "sample,time,A,\n0,0,1,1\n"),
        r"'t\.csv', line 1: column 4 has no name"),
    row("extra-field", csv("t.csv", "sample,time,A\n0,0,1\n0,0.5,0.6,7\n"),
        r"'t\.csv', line 3: 4 fields, the header has 3"),
    row("nan-concentration", csv("t.csv", "sample,time,A\n0,0,1\n0,0.5,nan\n"),
        r"'t\.csv', line 3, column 'A': 'nan' is not a finite number"),
    row("inf-concentration", csv("t.csv", "sample,time,A\n0,0,inf\n0,0.5,1\n"),
        r"'t\.csv', line 2, column 'A': 'inf' is not a finite number"),
    row("negative-concentration", csv("t.csv", "sample,time,A\n0,0,1\n0,0.5,-0.2\n"),
        r"'t\.csv', line 3, column 'A': -0\.2 is negative"),
    row("nan-time", csv("t.csv", "sample,time,A\n0,0,1\n0,NaN,1\n"),
        r"'t\.csv', line 3, column 'time': 'NaN' is not a finite number"),
    row("unsorted-times", csv("t.csv", GOOD + "1,0,1,0\n1,1,0.4,0.6\n1,0.5,0.6,0.4\n"),
        r"'t\.csv', line 7, column 'time': sample '1': time 0\.5 comes after time 1 on "
        r"line 6"),
    row("duplicate-times", csv("t.csv", GOOD + "1,0,1,0\n1,0.5,0.6,0.4\n1,0.5,0.6,0.4\n"),
        r"line 7, column 'time': sample '1': time 0\.5 appears twice \(lines 6 and 7\)"),
    row("ragged-samples", csv("t.csv", GOOD + "x,0,1,0\nx,0.7,0.5,0.5\n"),
        r"sample 'x' has 2 times but sample '0' has 3.*same number of times"),
    row("derivative-of-unknown",
        csv("t.csv", "sample,time,A,dZ/dt\n0,0,1,0\n"),
        r"column 'dZ/dt': derivative of 'Z', which has no concentration column"),
    row("derivatives-missing",
        csv("t.csv", "sample,time,A,B,dA/dt\n0,0,1,0,-1\n"),
        r"derivative columns missing for \['B'\]"),
    row("temperature-varies",
        csv("t.csv", "sample,time,temperature,A\n0,0,300,1\n0,0.5,310,0.6\n"),
        r"line 3, column 'temperature': sample '0' changes temperature \(310 K"),
    row("temperature-negative",
        csv("t.csv", "sample,time,temperature,A\n0,0,-3,1\n"),
        r"line 2, column 'temperature': -3 is not positive"),
    row("too-few-times-to-differentiate",
        csv("t.csv", "sample,time,A\n0,0,1\n0,1,0.5\n", "--derivatives", "fd"),
        r"at least 3 times, got 2"),
    # ---- outputs
    row("out-is-a-file", csv("d.csv", WITH_D, "--out", "taken", files=(("taken", "x"),)),
        r"--out 'taken' is an existing file"),
    # a rerun of an earlier run folder that holds the data would have deleted the data
    Bad("out-holds-the-data", ("discover", "o/d.csv", "--reactions", "1", "--out", "o"),
        r"--out 'o' holds the input 'o/d\.csv'",
        (("o/d.csv", WITH_D), ("o/config.yaml", "x: 1\n"))),
    row("out-is-a-foreign-folder",
        csv("d.csv", WITH_D, "--out", "mine", files=(("mine/thesis.tex", "x"),)),
        r"--out 'mine' is a non-empty folder that rdlab did not write"),
]


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
def test_refused(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_files(tmp_path, bad.files)
    assert_refused(bad.args, tmp_path, bad.match)


def test_the_table_is_large_and_ids_are_unique():
    assert len(BAD) >= 30
    assert len({b.id for b in BAD}) == len(BAD)


def test_a_csv_that_is_a_device_is_refused_not_read_forever(tmp_path, monkeypatch):
    """A data path linking to /dev/zero was read until the process was killed for memory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "z.csv").symlink_to("/dev/zero")
    assert_refused(["discover", "z.csv", "--reactions", "1", "--out", "o"], tmp_path,
                   r"'z\.csv' is not a regular file")
