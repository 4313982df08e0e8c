"""One name for a time budget: ``time_budget_s`` (seconds) in the API, ``--time-budget
DURATION`` on the command line (parsed by :func:`rdlab.checks.parse_duration`); the old
names (``time_limit_s``, ``time_budget``, ``--minutes``, ``--budget``) still read."""

from __future__ import annotations

import math

import pytest

from rdlab.checks import parse_duration, time_budget_option
from rdlab.errors import ParameterError


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90.0), ("20m", 1200.0), ("1.5h", 5400.0), (" 2 M ", 120.0), ("1e-9s", 1e-9),
    ("0.25m", 15.0), ("3H", 10800.0),
])
def test_durations_with_a_unit_read_as_seconds(text, seconds):
    assert parse_duration(text, "--time-budget") == pytest.approx(seconds, rel=1e-15)


@pytest.mark.parametrize("text, match", [
    ("90", r"--time-budget needs a unit: write 90s, 90m or 90h .*got '90'"),
    ("0s", r"positive finite duration .*got '0s'"),
    ("-2m", r"positive finite duration .*got '-2m'"),
    ("nans", r"positive finite duration .*got 'nans'"),
    ("infh", r"positive finite duration .*got 'infh'"),
    ("1e400s", r"positive finite duration .*got '1e400s'"),
    ("5d", r"unit s, m or h .*got '5d'"),
    ("5min", r"unit s, m or h .*got '5min'"),
    ("m", r"a duration such as 90s, 20m or 1.5h, got 'm'"),
    ("1_0s", r"a duration such as .*got '1_0s'"),  # Python would read 10
    ("", r"a duration such as .*got ''"),
])
def test_bad_durations_are_refused_by_value(text, match):
    with pytest.raises(ParameterError, match=match):
        parse_duration(text, "--time-budget")


def test_the_old_options_still_give_seconds_and_not_with_the_new_one():
    assert time_budget_option(None) is None
    assert time_budget_option("2m") == 120.0
    assert time_budget_option(None, 2.5, "--minutes", "m") == 150.0
    assert time_budget_option(None, 40.0, "--budget", "s") == 40.0
    with pytest.raises(ParameterError, match=r"--minutes must be a positive finite number "
                                             r"of minutes, got nan"):
        time_budget_option(None, math.nan, "--minutes", "m")
    with pytest.raises(ParameterError, match=r"--budget must be .* of seconds, got -5"):
        time_budget_option(None, -5.0, "--budget", "s")
    with pytest.raises(ParameterError, match=r"--time-budget or --minutes .*not both"):
        time_budget_option("1m", 1.0, "--minutes", "m")


def test_train_config_reads_the_old_time_limit_s():
    from rdlab.classify.training import TrainConfig

    assert TrainConfig.from_dict({"time_limit_s": 30}).time_budget_s == 30.0
    assert TrainConfig().replace(time_limit_s=12.5).time_budget_s == 12.5
    assert "time_limit_s" not in TrainConfig(time_budget_s=5.0).to_dict()
    with pytest.raises(ParameterError, match=r"time_limit_s is given twice"):
        TrainConfig.from_dict({"time_limit_s": 30, "time_budget_s": 30})
    with pytest.raises(ParameterError, match=r"time_budget_s must be None or > 0, got -1"):
        TrainConfig(time_budget_s=-1.0)


def test_a_training_state_of_the_old_name_resumes_with_another_budget(tmp_path):
    """The budget may change between runs; a state written with the old key is no
    'different setting'."""
    from rdlab.classify.training import _STATE_FORMAT, TrainConfig, _check_resume

    config = TrainConfig(time_budget_s=60.0)
    old = {k: v for k, v in config.to_dict().items() if k != "time_budget_s"}
    state = {"format": _STATE_FORMAT, "config": {**old, "time_limit_s": 10.0},
             "classes": ["a", "b"], "n_train": 4, "n_val": 2, "in_channels": 3}
    _check_resume(state, config, ["a", "b"], 4, 2, 3, tmp_path / "last.pt")  # no error
    state["config"]["lr"] = 1.0
    with pytest.raises(ParameterError, match=r"different settings \(lr\)"):
        _check_resume(state, config, ["a", "b"], 4, 2, 3, tmp_path / "last.pt")


def test_design_config_reads_the_old_time_budget_in_and_out_of_its_section():
    from rdlab.design.config import DesignConfig, normalised

    new = DesignConfig.from_dict({"optimiser": {"time_budget_s": 45}})
    assert new.optimiser.time_budget_s == 45.0
    assert DesignConfig.from_dict({"optimiser": {"time_budget": 45}}) == new
    assert DesignConfig.from_dict({"time_budget": 45}) == new  # an old flat config
    assert DesignConfig().replace(time_budget=45) == new
    # a run folder's stored config of the old name compares equal to today's
    old_dump = new.to_dict()
    old_dump["optimiser"] = {("time_budget" if k == "time_budget_s" else k): v
                             for k, v in old_dump["optimiser"].items()}
    assert normalised(old_dump) == normalised(new.to_dict())
    with pytest.raises(ParameterError, match=r"optimiser.time_budget is the old name of "
                                             r"optimiser.time_budget_s; give one"):
        DesignConfig.from_dict({"optimiser": {"time_budget": 1, "time_budget_s": 1}})


def test_discover_settings_read_the_old_time_budget():
    from rdlab.discover.estimator import ReactionDiscovery
    from rdlab.discover.workflow import DiscoverSettings

    est = ReactionDiscovery(2, time_budget_s=7.0)
    assert est.get_params()["time_budget_s"] == 7.0 and "time_budget" not in est.get_params()
    with pytest.raises(ParameterError, match=r"unknown parameter 'time_budget'.*time_budget_s"):
        est.set_params(time_budget=3.0)
    est.set_params(time_budget_s=None).check_params()  # None: no time limit
    assert est._deadline(5.0) == math.inf and est.set_params(time_budget_s=2.0)._deadline(
        5.0) == 7.0
    with pytest.raises(ParameterError, match=r"time_budget_s must be a finite number > 0"):
        ReactionDiscovery(2, time_budget_s=0.0).check_params()
    settings = DiscoverSettings(estimator={"time_budget": 30.0, "seed": 2})
    assert settings.estimator == {"time_budget_s": 30.0, "seed": 2}
    settings.check()
    assert DiscoverSettings.from_dict({"estimator": {"time_budget": 5}}).estimator == {
        "time_budget_s": 5}
    with pytest.raises(ParameterError, match=r"time_budget is the old name of time_budget_s"):
        DiscoverSettings(estimator={"time_budget": 5, "time_budget_s": 5})


def test_train_stops_on_its_time_budget_and_a_spent_budget_runs_no_epoch(tmp_path):
    """Stop the CNN on its budget, counted over resumptions.

    The first call stops after the epoch that spends it (stop reason 'time_budget'); a rerun
    with the same budget runs no epoch.
    """
    import numpy as np

    from rdlab.classify.training import TrainConfig, train

    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 48, 48), dtype=np.float32)
    y = np.arange(8) % 2
    cfg = TrainConfig(epochs=3, batch_size=4, patience=None, time_budget_s=1e-9)
    first = train(x, y, x[:4], y[:4], ["a", "b"], tmp_path, cfg, progress=False)
    assert first["stop_reason"] == "time_budget" and first["epochs_run"] == 1
    again = train(x, y, x[:4], y[:4], ["a", "b"], tmp_path, cfg, progress=False)
    assert again["stop_reason"] == "time_budget" and again["epochs_run"] == 1
    more = train(x, y, x[:4], y[:4], ["a", "b"], tmp_path, cfg.replace(time_budget_s=1e9),
                 progress=False)
    assert more["stop_reason"] == "epochs" and more["epochs_run"] == 3
