"""The training-loop skeleton shared by the pattern CNN and the design optimiser.

A job supplies ``step(index) -> record`` (one epoch of the CNN, one optimisation step of a
design stage) and :class:`Loop` runs it with the cross-cutting parts:

* :class:`History` — the records, one JSON object per line (``history.jsonl``), appended and
  flushed after every step, so a crash loses at most the row in flight; a resumed run trims
  it to the length its checkpoint counts (:meth:`History.resume`). :func:`read_history` also
  reads the JSON list (``history.json``) that earlier rdlab versions wrote for the CNN.
* :class:`Checkpoint` — an atomic ``torch.save`` (tensors moved to the CPU) and a load that
  names a damaged file; :func:`rng_states` / :func:`set_rng_states` capture the random
  generators an exact resume needs.
* :class:`EarlyStopping` — the monitored value, ``mode`` min/max, ``patience``, ``min_delta``.
* :class:`TimeBudget` — wall time, plus what earlier sessions spent.

:meth:`Loop.run` returns the stop reason: :data:`STOP_PATIENCE`, :data:`STOP_TIME_BUDGET`
or :data:`STOP_STEPS`. The optimisers and learning-rate schedules are torch's own; the job
steps them inside ``step``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import torch

from rdlab.atomic import atomic_torch_save, atomic_write_text
from rdlab.errors import DataError

__all__ = ["STOP_PATIENCE", "STOP_STEPS", "STOP_TIME_BUDGET", "Checkpoint", "CheckpointError",
           "EarlyStopping", "History", "Loop", "TimeBudget", "read_history", "rng_states",
           "set_rng_states"]

#: Stop reason: the monitored value did not improve for ``patience`` steps.
STOP_PATIENCE = "patience"
#: Stop reason: the time budget is spent.
STOP_TIME_BUDGET = "time_budget"
#: Stop reason: all planned steps (epochs) are done.
STOP_STEPS = "epochs"


# ----------------------------------------------------------------------------- history

def _parse_lines(path: Path, text: str, lines: int | None, required: tuple[str, ...],
                 remedy: str) -> list[dict]:
    """Return the JSON-lines records of ``text`` (see :func:`read_history`)."""
    rows = text.splitlines()
    kept = rows if lines is None else rows[:lines]
    if lines is not None and len(kept) < lines:
        raise DataError(f"{str(path)!r} has {len(kept)} lines but the checkpoint counts "
                        f"{lines} steps; {remedy}")
    records = []
    for number, line in enumerate(kept, 1):
        if lines is None and not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or any(k not in record for k in required):
            if lines is None and number == len(kept):
                break  # a last line cut off by a kill: not part of any checkpoint
            raise DataError(f"{str(path)!r} line {number} is not a history record; {remedy}")
        records.append(record)
    return records


def _parse_list(path: Path, text: str, remedy: str) -> list[dict]:
    """Return the records of a history written as one JSON list (rdlab's old CNN format)."""
    try:
        records = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{str(path)!r} cannot be read ({exc}); {remedy}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{str(path)!r} is not a training history (a list of records); "
                        f"{remedy}")
    return records


def read_history(path: str | Path, lines: int | None = None, *,
                 required: tuple[str, ...] = (), remedy: str = "remove it or train again"
                 ) -> list[dict]:
    """Return the records of a history file.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``history.jsonl`` (one JSON object per line), or an old CNN ``history.json`` (one
        JSON list, recognised by its leading ``[``).
    lines : int, optional
        Read exactly the first ``lines`` records, which must all be there (what a
        checkpoint counts). ``None`` reads all; a last line cut off by a kill is skipped.
    required : tuple of str, default ()
        Keys every record must have.
    remedy : str, default "remove it or train again"
        What the user can do, appended to error messages.

    Returns
    -------
    list of dict
        The records in order; ``[]`` for a missing file when no lines are required.

    Raises
    ------
    DataError
        Naming the file: missing or shorter than ``lines``, or a line (or the list) that
        is not a record.
    """
    path = Path(path)
    if not path.is_file():
        if lines:
            raise DataError(f"{str(path)!r} is missing but the checkpoint counts {lines} "
                            f"steps in it; {remedy}")
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{str(path)!r} cannot be read ({exc}); {remedy}") from None
    if text.lstrip().startswith("["):
        records = _parse_list(path, text, remedy)
        return records if lines is None else records[:lines]
    return _parse_lines(path, text, lines, required, remedy)


class History:
    """Per-step records, kept in memory and appended to a JSON-lines file.

    Parameters
    ----------
    path : str or pathlib.Path
        The history file (``history.jsonl``); created on the first :meth:`append`.
    records : iterable of dict, optional
        Records already made (of a resumed run); see :meth:`resume`.
    """

    def __init__(self, path: str | Path, records: Iterable[dict] = ()):
        self.path = Path(path)
        self.records: list[dict] = list(records)
        self._file: IO[str] | None = None

    def __len__(self) -> int:
        """Return the number of records."""
        return len(self.records)

    def resume(self, records: list[dict] | None = None) -> None:
        """Make the file hold exactly the checkpoint's records, rewritten atomically.

        Parameters
        ----------
        records : list of dict, optional
            The records the checkpoint knows; default: the records held (a file that ran
            ahead of its checkpoint, or whose last line was cut off, is trimmed to them).
        """
        if records is not None:
            self.records = list(records)
        text = "".join(json.dumps(r) + "\n" for r in self.records)
        if not self.path.is_file() or self.path.read_text(encoding="utf-8",
                                                          errors="replace") != text:
            atomic_write_text(self.path, text)

    def append(self, record: dict) -> None:
        """Add ``record`` and write it as one flushed line (a crash loses at most this one)."""
        self.records.append(record)
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def total(self, key: str) -> float:
        """Return the sum of ``key`` over the records (e.g. ``"seconds"``)."""
        return float(sum(r[key] for r in self.records))

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


# ----------------------------------------------------------------------------- checkpoints

class CheckpointError(DataError):
    """A checkpoint that cannot be read (truncated, garbage, a foreign pickle).

    Its ``kind`` is the failure's exception type (``"UnpicklingError"``), its ``reason``
    that type and the first sentence of its message.
    """

    kind: str = ""
    reason: str = ""


def _to_cpu(obj: Any) -> Any:
    """Return a (nested) state with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


@dataclass
class Checkpoint:
    """One checkpoint file, written atomically (temporary file + rename).

    Parameters
    ----------
    path : pathlib.Path
        The file (``last.pt``, ``checkpoint.pt``).
    weights_only : bool, default True
        Load with torch's safe unpickler (tensors and plain containers only).
    """

    path: Path
    weights_only: bool = True

    def exists(self) -> bool:
        """Return whether the file exists."""
        return self.path.exists()

    def save(self, state: dict) -> None:
        """Write ``state`` (tensors moved to the CPU, so the file loads anywhere)."""
        atomic_torch_save(_to_cpu(state), self.path)

    def load(self) -> Any:
        """Return the saved object.

        Returns
        -------
        object
            What :meth:`save` wrote, tensors on the CPU.

        Raises
        ------
        CheckpointError
            The file is damaged; its ``reason`` attribute reads e.g. ``"EOFError: Ran out
            of input"``.
        """
        try:
            return torch.load(self.path, map_location="cpu", weights_only=self.weights_only)
        except Exception as exc:  # noqa: BLE001 - truncated, garbage, foreign pickle
            lines = str(exc).strip().splitlines()
            text = lines[0].split(". ")[0] if lines else ""
            err = CheckpointError(f"{str(self.path)!r} is damaged ({type(exc).__name__}"
                                  f"{': ' + text if text else ''})")
            err.reason = f"{type(exc).__name__}{': ' + text if text else ''}"
            err.kind = type(exc).__name__
            raise err from None


def rng_states(**generators: torch.Generator) -> dict[str, torch.Tensor]:
    """Return torch's global CPU random state (``torch_rng``) and each named generator's."""
    return {"torch_rng": torch.get_rng_state(),
            **{name: g.get_state() for name, g in generators.items()}}


def set_rng_states(states: dict[str, torch.Tensor], **generators: torch.Generator) -> None:
    """Restore what :func:`rng_states` captured (``torch_rng`` and the named generators)."""
    torch.set_rng_state(states["torch_rng"])
    for name, g in generators.items():
        g.set_state(states[name])


# ----------------------------------------------------------------------------- stopping

@dataclass
class EarlyStopping:
    """Stop when the monitored value has not improved for ``patience`` steps.

    Parameters
    ----------
    monitor : str or callable
        The record's key to watch, or a function of the record returning the value; a value
        of ``None`` (e.g. an epoch without validation) counts as no improvement.
    mode : {"min", "max"}, default "min"
        Whether smaller or larger values are better. Values may be tuples, compared in
        order (ties of the first broken by the next) when ``min_delta`` is 0.
    patience : int, optional
        Steps without improvement before stopping; ``None`` never stops (the best value is
        still tracked).
    min_delta : float, default 0.0
        An improvement must beat the best by more than this.
    best : object, optional
        The best value so far (``None``: nothing seen yet).
    since_best : int, default 0
        Steps since the best value.
    improved : bool, default False
        Whether the last :meth:`update` improved on the best.
    """

    monitor: str | Callable[[dict], Any]
    mode: Literal["min", "max"] = "min"
    patience: int | None = None
    min_delta: float = 0.0
    best: Any = None
    since_best: int = 0
    improved: bool = False

    def _better(self, value: Any) -> bool:
        """Return whether ``value`` improves on the best."""
        if self.best is None:
            return True
        if self.mode == "min":
            return value < (self.best - self.min_delta if self.min_delta else self.best)
        return value > (self.best + self.min_delta if self.min_delta else self.best)

    def update(self, record: dict) -> bool:
        """Take a step's ``record``; return (and keep in ``improved``) whether it improved."""
        value = self.monitor(record) if callable(self.monitor) else record.get(self.monitor)
        self.improved = value is not None and self._better(value)
        if self.improved:
            self.best, self.since_best = value, 0
        else:
            self.since_best += 1
        return self.improved

    @property
    def should_stop(self) -> bool:
        """Whether ``patience`` steps have passed without improvement."""
        return self.patience is not None and self.since_best >= self.patience


@dataclass
class TimeBudget:
    """A wall-time budget in seconds.

    Parameters
    ----------
    seconds : float, optional
        The budget; ``None`` for no limit.
    spent : float, default 0.0
        Seconds already spent (in earlier sessions of a resumed run).
    """

    seconds: float | None
    spent: float = 0.0
    _start: float = field(default=math.nan, init=False, repr=False)

    def start(self) -> None:
        """Start the clock, once (every loop that shares the budget calls this)."""
        if math.isnan(self._start):
            self._start = time.perf_counter()

    def elapsed(self) -> float:
        """Return the seconds spent: earlier sessions plus this one."""
        now = 0.0 if math.isnan(self._start) else time.perf_counter() - self._start
        return self.spent + now

    @property
    def exhausted(self) -> bool:
        """Whether the budget is spent."""
        return self.seconds is not None and self.elapsed() >= self.seconds

    @property
    def spent_before(self) -> bool:
        """Whether earlier sessions spent the budget (a session otherwise runs a step)."""
        return self.seconds is not None and self.spent >= self.seconds


# ----------------------------------------------------------------------------- the loop

@dataclass
class Loop:
    """Run a job's steps with history, early stopping and a time budget.

    Each step: ``record = step(index)`` (``record["seconds"]`` is set to the step's wall
    time unless the step set it), the early stopping takes the record, the history appends
    it, the stop reason is decided, and ``on_step_end(index, record, reason)`` runs (the
    job's checkpoint, progress bar and callbacks; ``reason`` is ``None`` unless the loop
    stops after this step).

    Parameters
    ----------
    step : callable
        ``step(index) -> dict``: run step ``index`` (0-based count of steps done).
    steps : int
        Total steps to run (a resumed loop continues at ``start``).
    history : History, optional
        Receives every record.
    early_stopping : EarlyStopping, optional
        Decides :data:`STOP_PATIENCE`.
    time_budget : TimeBudget, optional
        Decides :data:`STOP_TIME_BUDGET`.
    on_step_end : callable, optional
        ``on_step_end(index, record, reason)``.
    """

    step: Callable[[int], dict]
    steps: int
    history: History | None = None
    early_stopping: EarlyStopping | None = None
    time_budget: TimeBudget | None = None
    on_step_end: Callable[[int, dict, str | None], None] | None = None

    def stop_reason(self, done: int, first: bool = False) -> str | None:
        """Return why the loop stops after ``done`` steps, or ``None`` to go on.

        Before the ``first`` step of a session only the time earlier sessions spent counts,
        so every session (every stage, every resumption) makes progress unless the budget
        was spent before it started.
        """
        if self.early_stopping is not None and self.early_stopping.should_stop:
            return STOP_PATIENCE
        if self.time_budget is not None and (self.time_budget.spent_before if first
                                             else self.time_budget.exhausted):
            return STOP_TIME_BUDGET
        if done >= self.steps:
            return STOP_STEPS
        return None

    def run(self, start: int = 0) -> str:
        """Run steps ``start``, ``start + 1``, … until a stop reason; return it.

        Parameters
        ----------
        start : int, default 0
            Steps already done (of a resumed run).

        Returns
        -------
        str
            :data:`STOP_PATIENCE`, :data:`STOP_TIME_BUDGET` or :data:`STOP_STEPS`.

        The reason given to ``on_step_end`` is the one the loop stops for (decided once,
        so a job that checkpoints when the loop stops never misses the last step).
        """
        if self.time_budget is not None:
            self.time_budget.start()
        index = start
        reason = self.stop_reason(index, first=True)
        while reason is None:
            t0 = time.perf_counter()
            record = self.step(index)
            record.setdefault("seconds", time.perf_counter() - t0)
            if self.early_stopping is not None:
                self.early_stopping.update(record)
            if self.history is not None:
                self.history.append(record)
            index += 1
            reason = self.stop_reason(index)
            if self.on_step_end is not None:
                self.on_step_end(index - 1, record, reason)
        return reason
