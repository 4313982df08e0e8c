"""One ``rdlab design`` command: check everything, lock the folder, optimise, report.

Order matters, so that a refused command changes nothing and a folder's files always
describe one run:

1. everything that does not depend on the folder is checked first — the config (done by
   the caller: :func:`~rdlab.design.config.load_config`), the model it builds (target
   image, loss terms, ``initial``, ``init_from``) and the ``--out`` path;
2. the folder's lock is taken (:func:`rdlab.output_lock.hold`) and held to the end;
3. what the folder holds is checked (:func:`~rdlab.design.optimise.resume_point`): a
   damaged checkpoint, or a run of another config, is refused before anything is written;
4. optimisation runs (or resumes) in the folder, then the report replaces the old one
   whole (:func:`~rdlab.design.report.report`).

``fresh=True`` on a folder that holds a run starts the new run in a hidden staging folder
beside it (:func:`rdlab.run_folder.staged_run_folder`); the old run stays whole and usable
until the new one has produced a result — finished and reported, or stopped by its time
budget with a checkpoint — and is then replaced in one rename. Interrupted before that (or
failed), the new run is dropped and the old one kept. So ``--fresh`` itself cannot be
resumed: after a fresh run stopped by ``--time-budget``, continue it without ``--fresh``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from rdlab.design.config import DesignConfig
from rdlab.design.optimise import build_model, optimise, read_history, resume_point, start_from
from rdlab.design.report import report
from rdlab.design.run_files import CHECKPOINT, MODEL, tidy
from rdlab.errors import RdlabError
from rdlab.heap_settings import keep_freed_memory
from rdlab.output_lock import hold
from rdlab.run_folder import check_run_folder, recover_run_folder, staged_run_folder


@dataclass
class DesignOutcome:
    """What a design command did.

    Parameters
    ----------
    folder : Path
        The run folder.
    finished : bool
        Whether optimisation finished.
    steps : int
        The steps in its history.
    metrics : dict or None
        The report's metrics (None without ``evaluate``).
    """

    folder: Path
    finished: bool
    steps: int
    metrics: dict | None


def check_model(config: DesignConfig) -> None:
    """Build the config's model once on the CPU, so that every problem is refused early.

    Problems with the target image, loss terms, start values and ``init_from`` are refused
    before a folder is touched.

    Parameters
    ----------
    config : DesignConfig
        The experiment.

    Raises
    ------
    RdlabError
        The subclass naming what is wrong.
    """
    model = build_model(config, "cpu")
    if config.init_from is not None:
        start_from(model, Path(config.resolve_path(config.init_from)))


def run_design(config: DesignConfig, out: str | Path, *, fresh: bool = False,
               time_budget_s: float | None = None, evaluate: bool = True,
               n_controls: int | None = None, progress: bool = True) -> DesignOutcome:
    """Optimise ``config`` into ``out`` (resuming what is there unless ``fresh``), then report.

    See the module docstring for what is checked when, and what ``fresh`` keeps.

    Parameters
    ----------
    config : DesignConfig
        The experiment.
    out : str or Path
        The run folder.
    fresh : bool, default False
        Start a new run even when ``out`` holds one.
    time_budget_s : float or None, optional
        Seconds of optimisation at most in this call.
    evaluate : bool, default True
        Write the report afterwards.
    n_controls : int or None, optional
        Randomisations per control condition of the report (default: the config's).
    progress : bool, default True
        Show progress.

    Returns
    -------
    DesignOutcome
        The folder, whether optimisation finished, its steps and the report's metrics.

    Raises
    ------
    RdlabError
        The subclass naming what is wrong: a bad model, ``out`` locked by another command, a
        damaged checkpoint or a run of another config in ``out``, or a failed optimisation
        (a new run that fails before its first checkpoint leaves nothing behind).
    """
    out = Path(out)
    check_model(config)
    check_run_folder(out)
    keep_freed_memory()  # every step frees and takes the same large arrays again
    created = not out.exists()
    with hold(out):
        recover_run_folder(out)  # what a killed --fresh left beside the folder
        holds_run = out.is_dir() and any(out.iterdir())
        if fresh and holds_run:
            with staged_run_folder(out) as staging:
                return _optimise_and_report(config, staging.path, out, resume=False,
                                            time_budget_s=time_budget_s, evaluate=evaluate,
                                            n_controls=n_controls, progress=progress)
        resume_point(config, out)  # refuses a damaged or foreign folder, writing nothing
        try:
            return _optimise_and_report(config, out, out, resume=not fresh,
                                        time_budget_s=time_budget_s, evaluate=evaluate,
                                        n_controls=n_controls, progress=progress)
        except RdlabError:
            # a new run that failed (e.g. a NaN loss) before its first checkpoint has
            # nothing to resume: leave no config or history behind (an interruption, not
            # an RdlabError, keeps them so that the same command resumes)
            if not holds_run and not (out / CHECKPOINT).exists():
                for p in list(out.iterdir()) if out.is_dir() else []:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                if created:
                    out.rmdir()
            raise


def _optimise_and_report(config: DesignConfig, where: Path, final: Path, *, resume: bool,
                         time_budget_s: float | None, evaluate: bool, n_controls: int | None,
                         progress: bool) -> DesignOutcome:
    """Optimise in ``where``, report, and describe the outcome as of ``final``."""
    tidy(where)
    optimise(config, where, resume=resume, time_budget_s=time_budget_s, progress=progress)
    finished = (where / MODEL).is_file()
    metrics = report(where, n_controls=n_controls) if evaluate else None
    return DesignOutcome(final, finished, len(read_history(where)), metrics)
