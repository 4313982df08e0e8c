"""The pattern-run and paper-workflow settings on the common config base: types checked,
unknown keys refused, and the JSON a pattern store keeps unchanged (so old stores resume)."""

from __future__ import annotations

import json

import pytest

from rdlab.classify.paper_pipeline import PaperSettings
from rdlab.classify.pattern_runs import STACK_STEPS, PatternRunSettings
from rdlab.errors import ParameterError

#: ``json.dumps(PatternRunSettings().to_dict())`` as stores written before the config base
#: hold it in their ``settings`` attribute (compared as text when a run resumes).
STORED_DEFAULTS = ('{"du": 0.2, "dv": 0.1, "dt": 0.25, "size": 128, "stencil": "9-point", '
                   '"n_steps": 60000, "snapshot_steps": [59760, 59880, 60000], "dtype": '
                   '"float64", "initial_mode": "default", "early_stop": true, '
                   '"check_every": 4000}')


def test_the_stored_settings_text_is_unchanged_and_reads_back():
    assert json.dumps(PatternRunSettings().to_dict()) == STORED_DEFAULTS
    assert PatternRunSettings.from_dict(json.loads(STORED_DEFAULTS)) == PatternRunSettings()
    stack = PatternRunSettings(snapshot_steps=STACK_STEPS, dtype="float32", early_stop=False)
    assert PatternRunSettings.from_dict(json.loads(json.dumps(stack.to_dict()))) == stack
    assert stack.to_dict()["snapshot_steps"] == list(STACK_STEPS)


@pytest.mark.parametrize("bad, match", [
    ({"dtype": "float16"}, r"'dtype' must be one of \['float32', 'float64'\], got 'float16'"),
    ({"size": True}, r"'size' must be a whole number, got True"),
    ({"du": float("nan")}, r"'du' must be a finite number, got nan"),
    ({"snapshot_steps": "1,2"}, r"'snapshot_steps' must be a list of whole numbers"),
    ({"size": 16}, r"size must be an integer ≥ 32, got 16"),
    ({"dt": 0}, r"dt must be a finite number > 0"),
    ({"initial_mode": "x"}, r"initial-condition mode must be one of default, legacy"),
    ({"snapshot_steps": [3, 2]}, r"snapshot steps \[3, 2\] must be sorted"),
    ({"sizes": 64}, r"unknown config keys \['sizes'\] \(did you mean 'size'\?\)"),
])
def test_bad_pattern_run_settings_are_refused_by_name(bad, match):
    with pytest.raises(ParameterError, match=match):
        PatternRunSettings.from_dict(bad)


def test_paper_settings_take_runs_as_a_section():
    paper = PaperSettings.from_dict({"runs": {"dtype": "float32"}, "workers": 2,
                                     "train": {"epochs": 3}})
    assert paper.runs == PatternRunSettings(dtype="float32") and paper.workers == 2
    assert PaperSettings.from_dict(paper.to_dict()) == paper
    with pytest.raises(ParameterError, match=r"'runs' must be a mapping of PatternRunSettings"):
        PaperSettings(runs=3)
    with pytest.raises(ParameterError, match=r"'workers' must be a whole number or null, "
                                             r"got 'x'"):
        PaperSettings(workers="x")
