"""The shared training loop (:mod:`rdlab.training_loop`) on a one-parameter fit.

Early stopping fires at the epoch its patience says, the time budget stops, an interrupted
and resumed run ends bit for bit equal to an uninterrupted one, the best checkpoint holds the
best value, and histories (today's JSON lines and the old CNN JSON list) read back.
"""

from __future__ import annotations

import json

import pytest
import torch

from rdlab.errors import DataError
from rdlab.training_loop import (
    STOP_PATIENCE,
    STOP_STEPS,
    STOP_TIME_BUDGET,
    Checkpoint,
    CheckpointError,
    EarlyStopping,
    History,
    Loop,
    TimeBudget,
    read_history,
    rng_states,
    set_rng_states,
)

#: y = 3 x + noise; the fit of w in y ≈ w x by SGD on random minibatches.
X = torch.linspace(-1, 1, 64, dtype=torch.float64)
Y = 3.0 * X + 0.1 * torch.sin(17 * X)


class Fit:
    """A tiny job: w fitted with SGD + StepLR on minibatches drawn from its own generator."""

    def __init__(self, folder, interrupt_after: int | None = None):
        self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.opt = torch.optim.SGD([self.w], lr=0.5)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=6, gamma=0.5)
        self.gen = torch.Generator().manual_seed(7)
        self.last = Checkpoint(folder / "last.pt")
        self.best = Checkpoint(folder / "best.pt")
        self.history = History(folder / "history.jsonl")
        self.early = EarlyStopping("loss", "min", patience=None)
        self.interrupt_after = interrupt_after
        if self.last.exists():
            state = self.last.load()
            self.w.data.copy_(state["w"])
            self.opt.load_state_dict(state["opt"])
            self.sched.load_state_dict(state["sched"])
            set_rng_states(state["rng"], gen=self.gen)
            self.early.best, self.early.since_best = state["best"], state["since_best"]
            self.history.resume(read_history(self.history.path, state["lines"]))

    def step(self, index: int) -> dict:
        """Take one SGD step on a minibatch; return the full-data loss and w."""
        if index == self.interrupt_after:
            raise KeyboardInterrupt
        batch = torch.randint(0, len(X), (8,), generator=self.gen)
        self.opt.zero_grad()
        loss = ((self.w * X[batch] - Y[batch]) ** 2).mean()
        loss.backward()
        self.opt.step()
        self.sched.step()
        full = float(((self.w.detach() * X - Y) ** 2).mean())
        return {"epoch": index + 1, "loss": full, "w": float(self.w.detach()), "seconds": 0.0}

    def end_step(self, index: int, record: dict, reason) -> None:
        """Save best.pt when improved and last.pt always."""
        if self.early.improved:
            self.best.save({"w": self.w.data, "epoch": index + 1, "loss": record["loss"]})
        self.last.save({"w": self.w.data, "opt": self.opt.state_dict(),
                        "sched": self.sched.state_dict(), "rng": rng_states(gen=self.gen),
                        "best": self.early.best, "since_best": self.early.since_best,
                        "lines": len(self.history)})

    def run(self, steps: int = 12) -> str:
        """Run (or resume) the fit; return the stop reason."""
        loop = Loop(self.step, steps, self.history, self.early, None, self.end_step)
        try:
            return loop.run(len(self.history))
        finally:
            self.history.close()


def test_kill_and_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    """Interrupt three times and resume: same w and history as one uninterrupted run."""
    (tmp_path / "whole").mkdir()
    (tmp_path / "part").mkdir()
    whole = Fit(tmp_path / "whole")
    assert whole.run() == STOP_STEPS
    for n in (1, 5, 9):
        with pytest.raises(KeyboardInterrupt):
            Fit(tmp_path / "part", interrupt_after=n).run()
    # a line of a step that ran past its checkpoint, as a kill would leave it
    with (tmp_path / "part" / "history.jsonl").open("a") as f:
        f.write('{"epoch": 10, "loss": 1.0, "w": 0.0, "seconds": 0.0}\n{"epoch": 11, "lo')
    resumed = Fit(tmp_path / "part")
    assert resumed.run() == STOP_STEPS
    assert float(resumed.w.detach()) == float(whole.w.detach()) and float(whole.w.detach()) != 0.0
    assert read_history(tmp_path / "part" / "history.jsonl") == whole.history.records
    assert [r["epoch"] for r in whole.history.records] == list(range(1, 13))
    assert abs(float(whole.w.detach()) - 3.0) < 0.3  # the fit converges near the slope


def test_the_best_checkpoint_holds_the_best_loss(tmp_path):
    """best.pt holds the epoch of the smallest loss in the history, and its w."""
    fit = Fit(tmp_path)
    fit.run()
    losses = [r["loss"] for r in fit.history.records]
    best = Checkpoint(tmp_path / "best.pt").load()
    assert best["loss"] == min(losses)
    assert best["epoch"] == losses.index(min(losses)) + 1
    assert float(best["w"]) == fit.history.records[best["epoch"] - 1]["w"]


def _constant_after(values: list[float]):
    """Return a step whose monitored value follows ``values`` (then stays at the last one)."""
    return lambda i: {"loss": values[min(i, len(values) - 1)]}


@pytest.mark.parametrize("patience", [1, 2, 4])
def test_early_stopping_fires_patience_epochs_after_the_best(patience):
    """The loop stops ``patience`` epochs after the last improvement beyond min_delta."""
    # best at epoch 3 (0.5); epochs 4, 5, … do not beat it by more than min_delta
    values = [2.0, 1.0, 0.5, 0.6, 0.45, 0.7, 0.8, 0.9, 1.0, 1.1]
    early = EarlyStopping("loss", "min", patience=patience, min_delta=0.1)
    loop = Loop(_constant_after(values), 100, early_stopping=early)
    assert loop.run() == STOP_PATIENCE
    assert early.best == 0.5
    assert early.since_best == patience
    calls = []
    Loop(lambda i: calls.append(i) or {"loss": values[min(i, 9)]}, 100,
         early_stopping=EarlyStopping("loss", "min", patience=patience, min_delta=0.1)).run()
    assert len(calls) == 3 + patience  # stops after epoch 3 + patience


def test_early_stopping_max_mode_with_tuples_and_missing_values():
    """Max mode compares (accuracy, -loss) tuples; an epoch without a value counts."""
    # (accuracy, -loss): ties of accuracy broken by the loss; None = no validation
    scores = [(0.5, -1.0), None, (0.5, -0.9), (0.5, -0.95), None, (0.4, 0.0)]
    early = EarlyStopping(lambda r: r["score"], "max", patience=3)
    reason = Loop(lambda i: {"score": scores[i]}, len(scores), early_stopping=early).run()
    assert reason == STOP_PATIENCE and early.best == (0.5, -0.9) and early.since_best == 3


def test_the_time_budget_stops_after_the_step_that_spends_it(monkeypatch):
    """On a fake clock: stop after the step that spends the budget, earlier sessions count."""
    import rdlab.training_loop as tl

    clock = [100.0]
    monkeypatch.setattr(tl.time, "perf_counter", lambda: clock[0])
    calls = []

    def slow(i):
        """Take one second, on the fake clock."""
        calls.append(i)
        clock[0] += 1.0
        return {"loss": 1.0}

    budget = TimeBudget(2.5)
    assert Loop(slow, 1000, time_budget=budget).run() == STOP_TIME_BUDGET
    assert calls == [0, 1, 2] and budget.elapsed() == 3.0
    # a resumed run: what earlier sessions spent counts (1.5 s spent + 1 s = the budget)
    assert Loop(slow, 1000, time_budget=TimeBudget(2.5, spent=1.5)).run() == STOP_TIME_BUDGET
    assert calls == [0, 1, 2, 0]
    assert Loop(slow, 1000, time_budget=TimeBudget(2.5, spent=2.5)).run() == STOP_TIME_BUDGET
    assert calls == [0, 1, 2, 0]  # already spent: no step at all
    assert Loop(slow, 2, time_budget=TimeBudget(None)).run() == STOP_STEPS
    assert calls == [0, 1, 2, 0, 0, 1]


def test_a_step_record_gets_its_seconds():
    """Records get their wall time; on_step_end sees the reason the loop stops for."""
    records = []
    Loop(lambda i: {"loss": float(i)}, 3,
         on_step_end=lambda i, r, reason: records.append((i, reason, r["seconds"]))).run()
    assert [(i, reason) for i, reason, _ in records] == [(0, None), (1, None), (2, STOP_STEPS)]
    assert all(s >= 0 for *_, s in records)


def test_history_reads_the_old_json_list_and_refuses_damage(tmp_path):
    """The old CNN history.json (a list) reads; damaged files are refused by name."""
    old = tmp_path / "history.json"
    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    old.write_text(json.dumps(rows, indent=1))
    assert read_history(old) == rows
    assert read_history(old, 1) == rows[:1]
    old.write_text('[{"epoch": 1, "loss"')
    with pytest.raises(DataError, match=r"history\.json' cannot be read"):
        read_history(old)
    new = tmp_path / "history.jsonl"
    new.write_text('{"loss": 1}\nnot json\n{"loss": 2}\n')
    with pytest.raises(DataError, match=r"line 2 is not a history record"):
        read_history(new)
    with pytest.raises(DataError, match=r"has 3 lines but the checkpoint counts 5"):
        read_history(new, 5)
    with pytest.raises(DataError, match=r"missing but the checkpoint counts 2"):
        read_history(tmp_path / "none.jsonl", 2)
    assert read_history(tmp_path / "none.jsonl") == []


def test_a_damaged_checkpoint_is_named(tmp_path):
    """A checkpoint that is not a torch file is refused naming it and the cause."""
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"last\.pt' is damaged \(UnpicklingError"):
        Checkpoint(path).load()
