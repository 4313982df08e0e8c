"""One discovery run end to end: data (file or example) → fit (or n_r sweep) → outputs.

Outputs in the run folder: ``data.zarr`` (the data used), ``mechanism.yaml``,
``mechanism.txt`` (the paper's table), ``mechanism.antimony``, ``mechanism.xml`` (SBML;
both start from the data's first sample, the state :func:`trajectory_check` integrates from),
``report.json`` (fit quality, timing, comparison with the truth for examples),
``trajectories.png`` (learned against true or measured trajectories) and, for a sweep,
``sweep.png`` and ``sweep.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rdlab.atomic import atomic_write_text
from rdlab.discover import derivatives as deriv_mod
from rdlab.discover.data import ReactionData, generate, load, save, trajectories
from rdlab.discover.elements import element_matrix, unbalanced_reactions
from rdlab.discover.estimator import EQUILIBRIUM_NOTE, ReactionDiscovery
from rdlab.discover.examples import EXAMPLES, Example, example
from rdlab.discover.mechanism import Mechanism
from rdlab.discover.selection import ReactionSweep, sweep_reactions
from rdlab.errors import ParameterError
from rdlab.run_folder import RunFolder, check_run_folder, staged_run_folder
from rdlab.settings import Settings

__all__ = ["MAX_REACTIONS", "NOISE_TARGETS", "OUTPUTS", "SWEEP_OUTPUTS", "DiscoverSettings",
           "discover_into", "prepare_data", "run_discovery"]

#: What every run writes (the exports and figure may fail: then named in the warnings).
OUTPUTS = ("data.zarr", "mechanism.yaml", "mechanism.txt", "mechanism.antimony",
           "mechanism.xml", "trajectories.png", "report.json")
#: What a sweep writes as well (sweep.json and sweep.txt after every fit).
SWEEP_OUTPUTS = ("sweep.json", "sweep.txt", "sweep.png")

#: What ``--noise`` may perturb (:meth:`~rdlab.discover.data.ReactionData.with_noise`).
NOISE_TARGETS = ("concentrations", "derivatives")

#: The most reactions a fit may propose (the parameters grow as population × n_r × n_s;
#: the paper's largest example has 10 reactions).
MAX_REACTIONS = 100


@dataclass
class DiscoverSettings(Settings):
    """What to run.

    Read and written as any rdlab config (:class:`rdlab.settings.Settings`); :meth:`check`
    refuses values no run can use.

    Parameters
    ----------
    n_reactions : int or None, optional
        The number of reactions to propose.
    sweep : tuple of int or None, optional
        Numbers of reactions to try instead (see
        :func:`~rdlab.discover.selection.sweep_reactions`).
    noise : float, default 0.0
        Multiplicative Gaussian noise level on the concentrations
        (:meth:`~rdlab.discover.data.ReactionData.with_noise`), ≥ 0.
    noise_on : {"concentrations", "derivatives"}, default "concentrations"
        What the noise perturbs: the concentrations (what a measurement has) or, as in the
        paper's §4 noise test, the exact derivatives of an example's data.
    derivatives : str or None, optional
        Estimate the derivatives from the concentrations: ``"fd"``, ``"spline"`` or
        ``"smoothing"``.
    n_samples : int, default 100
        Initial conditions generated for an example.
    data_seed : int, default 1
        Seed of the generated data and of the noise.
    estimator : dict
        :class:`ReactionDiscovery` parameters.
    initial_state : dict or None, optional
        ``{species: concentration}`` the exported SBML and Antimony models start from
        (species left out start at 0); ``None``: the data's first sample at its first time.

    Raises
    ------
    ParameterError
        When ``estimator`` gives both ``time_budget`` (the old name) and ``time_budget_s``.
    """

    n_reactions: int | None = None
    sweep: tuple[int, ...] | None = None
    noise: float = 0.0
    noise_on: str = "concentrations"
    derivatives: str | None = None  # estimate from concentrations: 'fd', 'spline', 'smoothing'
    n_samples: int = 100
    data_seed: int = 1
    estimator: dict = field(default_factory=dict)
    initial_state: dict | None = None

    _what = "discover settings"

    def __post_init__(self) -> None:
        # the old name of the estimator's time budget, in older settings files and code
        """Read the estimator's old ``time_budget`` as ``time_budget_s``."""
        est = self.estimator
        if isinstance(est, dict) and "time_budget" in est:
            if "time_budget_s" in est:
                raise ParameterError("estimator: time_budget is the old name of "
                                     "time_budget_s; give one")
            self.estimator = {("time_budget_s" if k == "time_budget" else k): v
                              for k, v in est.items()}

    def check(self) -> None:
        """Refuse settings no run can use (before any data are read or generated).

        Raises
        ------
        ParameterError
            Naming the bad value.
        """
        if self.n_reactions is not None:
            _reaction_count("n_reactions", self.n_reactions)
        if self.sweep is not None:
            if isinstance(self.sweep, (str, bytes)) or len(self.sweep) == 0:
                raise ParameterError(f"sweep needs a non-empty list of numbers of reactions, "
                                     f"got {self.sweep!r}")
            for n in self.sweep:
                _reaction_count("sweep", n)
        if not isinstance(self.noise, (int, float, np.number)) or not np.isfinite(
                self.noise) or self.noise < 0:
            raise ParameterError(f"noise must be a finite number ≥ 0, got {self.noise!r}")
        if self.noise_on not in NOISE_TARGETS:
            raise ParameterError(f"noise_on must be one of {list(NOISE_TARGETS)}, got "
                                 f"{self.noise_on!r}")
        if self.derivatives is not None and self.derivatives not in deriv_mod.METHODS:
            raise ParameterError(f"unknown derivative method {self.derivatives!r}; choose "
                                 f"one of {list(deriv_mod.METHODS)}")
        for name in ("n_samples", "data_seed"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < (1 if name == "n_samples" else 0):
                raise ParameterError(f"{name} must be a "
                                     f"{'positive' if name == 'n_samples' else 'non-negative'}"
                                     f" integer, got {v!r}")
        known = set(ReactionDiscovery().get_params()) - {"n_reactions"}
        unknown = sorted(set(self.estimator) - known)
        if unknown:
            raise ParameterError(f"unknown estimator parameter(s) {unknown}; known: "
                                 f"{sorted(known)}")
        if self.initial_state is not None:
            _checked_initial_state(self.initial_state)
        self.check_types()  # whatever the checks above leave: e.g. a text n_samples
        ReactionDiscovery(self.n_reactions or 1, **self.estimator).check_params()


def _reaction_count(name: str, n) -> None:
    """Refuse a number of reactions that is not an integer from 1 to ``MAX_REACTIONS``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(f"{name}: the number of reactions must be an integer ≥ 1, "
                             f"got {n!r}")
    if n > MAX_REACTIONS:
        raise ParameterError(f"{name}: {n} reactions is more than rdlab discover proposes "
                             f"(at most {MAX_REACTIONS})")


def prepare_data(source: str | Path | Example, settings: DiscoverSettings
             ) -> tuple[ReactionData, dict]:
    """Return the data to fit and facts about them.

    The data are generated for an example, else read from a file; multiplicative Gaussian
    noise is put on the concentrations (``settings.noise``, seeded by ``data_seed``), then
    derivatives are estimated from them if the settings ask. Without ``derivatives``, exact
    derivatives already in the data (an example's) are kept unchanged, so noise then only
    perturbs the concentrations the rates are evaluated at.

    Parameters
    ----------
    source : str or Path or Example
        A data file or store, or an example.
    settings : DiscoverSettings
        What to run.

    Returns
    -------
    data : ReactionData
        The data to fit.
    info : dict
        Source, generation time, the error of estimated derivatives against the exact ones.

    Raises
    ------
    ParameterError
        For noise on the derivatives of data that have none.
    DataError
        When the file cannot be read.
    """
    info: dict = {}
    ex = source if isinstance(source, Example) else None
    if ex is not None:
        t = time.perf_counter()
        data = generate(ex.mechanism, settings.n_samples, seed=settings.data_seed,
                        temperature_range=ex.temperature_range)
        info["data_seconds"] = time.perf_counter() - t
    else:
        data = load(source)
        info["source"] = str(source)
    exact = data if data.derivatives is not None else None
    if settings.noise:  # on the concentrations (as a measurement has it) or derivatives
        if settings.noise_on == "derivatives" and data.derivatives is None:
            raise ParameterError("noise on the derivatives needs data with derivatives "
                                 "(an example's, or dX/dt columns); these have none")
        data = data.with_noise(settings.noise, seed=settings.data_seed, on=settings.noise_on)
    if settings.derivatives is not None:
        data = deriv_mod.estimate(data, method=settings.derivatives)
        if exact is not None:
            info["derivative_estimate"] = _json_ready(deriv_mod.derivative_error(data, exact))
    return data, info


def _json_ready(obj):
    """Return ``obj`` with numpy arrays and scalars turned into plain Python values."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def trajectory_check(learned: Mechanism, reference: Mechanism | None, data: ReactionData,
                     t_end: float = 10.0, n_times: int = 100, seed: int = 7) -> dict:
    """Integrate the learned mechanism from one initial condition and compare (the paper's test).

    The comparison is with the true mechanism or, without one, with the first measured
    sample over its own times.

    Parameters
    ----------
    learned : Mechanism
        The learned mechanism.
    reference : Mechanism or None
        The true mechanism, if known.
    data : ReactionData
        The data (their first sample without a reference).
    t_end : float, default 10.0
        End of the time span ``[0, t_end]``.
    n_times : int, default 100
        Number of reporting times.
    seed : int, default 7
        Seed of the initial condition.

    Returns
    -------
    dict
        ``times``, both trajectories (``reference``, ``learned``) and ``relative_error``.
    """
    T = None
    if reference is not None:
        x0 = np.random.default_rng(seed).uniform(0, 1, (1, learned.n_species))
        times = np.linspace(0.0, t_end, n_times)
        if reference.arrhenius is not None:
            T = reference.reference_temperature
        ref, _ = trajectories(reference, x0, times, T)
    else:
        x0 = data.concentrations[:1, 0]
        times = data.times
        if data.temperatures is not None:
            T = data.temperatures[0]
        ref = data.concentrations[:1]
    lrn, _ = trajectories(learned, x0, times, T)
    err = float(np.linalg.norm(lrn - ref) / max(np.linalg.norm(ref), 1e-300))
    return {"times": times, "reference": ref[0], "learned": lrn[0], "relative_error": err}


def run_discovery(source: str | Path | Example, out: str | Path,
                  settings: DiscoverSettings | None = None, progress: bool = True) -> dict:
    """Run discovery on a data file or an example and write the outputs to the run folder ``out``.

    Settings, data and ``out`` are checked before any fitting; the folder is written through
    :func:`~rdlab.run_folder.staged_run_folder`, so it is locked against a second writer
    and changes only when the run succeeds (a failed or killed run leaves an earlier run
    as it was). An output that could not be made (e.g. SBML of a non-physical best guess)
    is listed in ``report["missing_outputs"]`` and ``report["warnings"]``.

    Parameters
    ----------
    source : str or Path or Example
        A data file or store, an example's name, or an :class:`Example`.
    out : str or Path
        The run folder.
    settings : DiscoverSettings or None, optional
        What to run. For a data file without ``n_reactions`` or ``sweep``, n_r = 1 … n_s
        are swept (``report["default_sweep"]`` says so); an example uses its own n_r.
    progress : bool, default True
        Show progress.

    Returns
    -------
    dict
        The report (also ``report.json``).

    Raises
    ------
    ParameterError
        For settings no run can use.
    """
    settings = settings or DiscoverSettings()
    settings.check()
    ex = _example_of(source)
    if ex is not None and settings.initial_state is not None:
        _checked_initial_state(settings.initial_state, ex.mechanism.species)
    inputs = () if ex is not None else (source,)
    check_run_folder(out, inputs)  # refuse a file, a foreign folder or the data's folder
    data, info = prepare_data(ex if ex is not None else source, settings)
    if not settings.sweep and settings.n_reactions is None and ex is None:
        # a spreadsheet of measurements and no idea how many reactions: sweep 1 … n_s
        # (below the rank bound skipped, stopping at the first that fits)
        n_values = tuple(range(1, min(len(data.species), MAX_REACTIONS) + 1))
        settings = dataclasses.replace(settings, sweep=n_values)
        info["default_sweep"] = (f"no number of reactions given: tried n_r = 1 … "
                                 f"{n_values[-1]} (one per species at most)")
    with staged_run_folder(out, command="rdlab discover", inputs=inputs) as folder:
        return discover_into(folder, data, ex, settings, info, progress)


def _example_of(source) -> Example | None:
    """Return the example ``source`` is or names, else ``None``."""
    if isinstance(source, Example):
        return source
    if isinstance(source, str) and source in EXAMPLES:
        return example(source)
    return None


def discover_into(folder: RunFolder, data: ReactionData, ex: Example | None,
                  settings: DiscoverSettings, info: dict | None = None,
                  progress: bool = True) -> dict:
    """Fit ``data`` (from :func:`prepare_data`) and write every output into ``folder``.

    The caller has staged and locked ``folder`` (as :func:`run_discovery` does, or a command
    that writes a discovery into a sub-folder of its own staged run folder).

    Parameters
    ----------
    folder : RunFolder
        The staged run folder.
    data : ReactionData
        The data to fit.
    ex : Example or None
        The example the data come from, if any.
    settings : DiscoverSettings
        What to run.
    info : dict or None, optional
        Facts about the data (from :func:`prepare_data`).
    progress : bool, default True
        Show progress.

    Returns
    -------
    dict
        The report.
    """
    save(data, folder.file("data.zarr"))
    params = dict(settings.estimator)
    params.setdefault("progress", progress)
    if ex is not None:
        params.setdefault("catalytic", ex.catalytic)
    if settings.noise:
        params.setdefault("noise_level", settings.noise)
        if settings.noise_on == "concentrations":
            params.setdefault("concentration_noise", settings.noise)
    report: dict = {"source": ex.name if ex else "data", **(info or {})}
    t0 = time.perf_counter()
    est = _fit(folder, data, ex, settings, params, report)
    report["fit_seconds_total"] = time.perf_counter() - t0
    report["fit"] = est.report()
    u, _, T = data.points()
    mech, dropped = est.mechanism_.pruned(u, T)
    if dropped:
        report["fit"]["mechanism_before_pruning"] = report["fit"]["mechanism"]
        report["fit"]["mechanism"] = mech.to_dict()
    report["pruned"] = dropped
    if ex is not None:
        report["comparison"] = mech.compare(ex.mechanism)
        report["exact"] = report["comparison"]["exact"]
    warnings = _fit_warnings(est, mech, params)
    atomic_write_text(folder.file("mechanism.yaml"), mech.to_yaml())
    atomic_write_text(folder.file("mechanism.txt"), mech.table() + "\n")
    missing = _exports(mech, folder, report, _initial_state(data, settings, report))
    missing.update(_trajectory_figure(mech, ex, data, folder, report))
    expected = [*OUTPUTS, *(SWEEP_OUTPUTS if settings.sweep else ())]
    for name in expected:  # anything neither written nor explained is still named
        if name != "report.json" and name not in missing and not folder.file(name).exists():
            missing[name] = "it was not written (no error was raised)"
    warnings += [f"{name} not written: {reason}" for name, reason in missing.items()]
    report["missing_outputs"] = missing
    report["warnings"] = warnings
    report["outputs"] = [n for n in expected if n not in missing]
    atomic_write_text(folder.file("report.json"), json.dumps(_json_ready(report), indent=1))
    return report


def _fit(folder: RunFolder, data: ReactionData, ex: Example | None,
         settings: DiscoverSettings, params: dict, report: dict) -> ReactionDiscovery:
    """Fit one n_r, or sweep them writing sweep.json/sweep.txt after every fit; return the fit."""
    if not settings.sweep:
        n_r = settings.n_reactions or ex.n_reactions
        return ReactionDiscovery(n_r, **params).fit(data)
    from rdlab.viz.discover_figures import save_reaction_sweep

    def write(sw: ReactionSweep) -> None:
        atomic_write_text(folder.file("sweep.json"),
                          json.dumps(_json_ready(sw.to_dict()), indent=1))
        atomic_write_text(folder.file("sweep.txt"), sw.table() + "\n")

    if params.get("progress"):
        from tqdm.auto import tqdm

        tqdm.write(f"each n_r's result goes to {folder.file('sweep.txt')} as it finishes")
    sw = sweep_reactions(data, settings.sweep, stop_early=True, on_result=write, **params)
    write(sw)
    report["sweep"] = sw.to_dict()
    save_reaction_sweep(folder.file("sweep.png"), sw.n_reactions, sw.train_error,
                        sw.validation_error, chosen=sw.chosen,
                        title=f"number of reactions: {report['source']}")
    return sw.best


def _fit_warnings(est: ReactionDiscovery, mech: Mechanism, params: dict) -> list[str]:
    """Return the warnings about a fit: not converged (why, with hints), not physical.

    Not physical: reactions that change an element total the data conserve, and those of
    :meth:`~rdlab.discover.mechanism.Mechanism.unphysical_reactions`.
    """
    warnings = []
    if not est.converged_:
        reason = est.rejection()
        warnings.append(
            f"did not converge: {reason}; "
            "the mechanism below is the best candidate found, not a verified one")
        skipped = (est.warm_start_ or {}).get("skipped_monomials", 0)
        if not params.get("catalytic", False) and skipped:
            warnings.append(
                f"the sparse regression saw {skipped} rate term(s) that no reaction of the "
                "V form explains (a reactant that is not used up, as in catalysis X + Y -> "
                "2Y): try --catalytic (catalytic=True), which learns reactant orders apart "
                "from stoichiometry")
        warnings += [line for line in est.limits() if line != reason]
    if getattr(est, "equilibrium_only_", False):
        warnings.append(EQUILIBRIUM_NOTE)
    for alt in getattr(est, "alternatives_", []):
        why = (f"'{alt.fast}' equilibrates faster than the sampling" if alt.fast else
               "the rows differ by fast or weakly determined reactions of the fit, and "
               "the one with fewer molecules was chosen")
        warnings.append(
            f"the data fit '{alt.by}' instead of '{alt.replaced}' equally well (residual "
            f"sums of squares within {alt.delta_chi2:+.2g} σ²): {why}, so these data cannot "
            "tell the two mechanisms apart; measure earlier times, or choose by chemistry")
    known = element_matrix(mech.species) if getattr(est, "element_balances_", []) else None
    unbalanced = [] if known is None else unbalanced_reactions(mech.V, *known,
                                                               mech.reaction_lines())
    if unbalanced:
        hint = ("" if params.get("catalytic", False)
                or any("--catalytic" in line for line in warnings) else
                "; a species that takes part without being used up (a catalyst, "
                "X + C -> Y + C) is one cause, which the V form cannot express: try "
                "--catalytic")
        warnings.append(
            f"the data conserve {', '.join(est.element_balances_)}, but "
            + "; ".join(unbalanced) + f" do{'es' if len(unbalanced) == 1 else ''} not: "
            "these rows stand in for reactions the search did not find" + hint)
    bad = mech.unphysical_reactions()
    if bad:
        warnings.append("the mechanism is not physical (" + "; ".join(bad) + "): it is no "
                        "reaction network, so it cannot be exported as one")
    return warnings


def _initial_state(data: ReactionData, settings: DiscoverSettings,
                   report: dict) -> dict[str, float]:
    """Return the state the exported models start from; note it in ``report``.

    ``settings.initial_state`` if given (each species a data species, each value finite and
    ≥ 0, else :class:`ParameterError`), otherwise :func:`_first_state`.
    """
    if settings.initial_state is None:
        state = _first_state(data)
        report["export_initial_state"] = {"from": "the first sample at its first time",
                                          "state": state}
        return state
    state = _checked_initial_state(settings.initial_state, data.species)
    report["export_initial_state"] = {"from": "given", "state": state}
    return state


def _checked_initial_state(given, species: tuple[str, ...] | None = None) -> dict[str, float]:
    """Return ``given`` as ``{species: float}``, refusing names and values no model can use."""
    if not isinstance(given, dict):
        raise ParameterError(f"initial_state must map species to concentrations, got "
                             f"{given!r}")
    state = {}
    for name, value in given.items():
        if species is not None and name not in species:
            raise ParameterError(f"initial_state names {name!r}, which is not a species of "
                                 f"the data ({list(species)})")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not np.isfinite(value) or value < 0:
            raise ParameterError(f"initial_state[{name!r}] must be a finite number ≥ 0, "
                                 f"got {value!r}")
        state[str(name)] = float(value)
    return state


def _first_state(data: ReactionData) -> dict[str, float]:
    """Return the first sample's concentrations at its first time, ``{species: value}``.

    Noise below 0 is clipped to 0; this is the initial state written into the exported models.
    """
    x0 = np.clip(np.asarray(data.concentrations[0, 0], dtype=float), 0.0, None)
    return {s: float(x) for s, x in zip(data.species, x0)}


def _exports(mech: Mechanism, folder: RunFolder, report: dict,
             initial: dict[str, float] | None = None) -> dict[str, str]:
    """Write mechanism.antimony and mechanism.xml, starting from ``initial``.

    ``initial`` is the concentration per species (species of the data the mechanism lacks are
    left out); returns ``{name: why not}`` for those that could not be written (a
    non-physical best guess cannot always be exported).
    """
    from rdlab.chemistry.export import to_antimony, to_sbml

    try:
        net = mech.to_network(min_rate=0.0)
    except Exception as exc:  # noqa: BLE001 - reported as a missing output, never dropped
        why = f"the mechanism is not a valid reaction network ({_describe(exc)})"
        return {"mechanism.antimony": why, "mechanism.xml": why}
    if initial is not None:
        initial = {s: x for s, x in initial.items() if s in net.species}
    missing = {}
    for name, export in (("mechanism.antimony", to_antimony), ("mechanism.xml", to_sbml)):
        try:
            atomic_write_text(folder.file(name), export(net, initial))
        except Exception as exc:  # noqa: BLE001 - reported as a missing output
            missing[name] = f"export failed ({_describe(exc)})"
    if mech.reference_temperature is not None and len(missing) < 2:
        report["export_temperature"] = mech.reference_temperature
    return missing


def _trajectory_figure(mech: Mechanism, ex: Example | None, data: ReactionData,
                       folder: RunFolder, report: dict) -> dict[str, str]:
    """Write trajectories.png and ``report["trajectory_error"]``; ``{name: why not}`` if not."""
    from rdlab.viz.discover_figures import save_trajectory_comparison

    try:
        check = trajectory_check(mech, ex.mechanism if ex else None, data)
        save_trajectory_comparison(
            folder.file("trajectories.png"), check["times"], check["reference"],
            check["learned"], mech.species, reference_label="true" if ex else "data",
            title=f"{report['source']}: learned (dashed) vs "
                  f"{'true' if ex else 'measured'}, rel. error {check['relative_error']:.2e}")
    except Exception as exc:  # noqa: BLE001 - reported as a missing output
        return {"trajectories.png": f"the learned mechanism could not be integrated or "
                                    f"drawn ({_describe(exc)})"}
    report["trajectory_error"] = check["relative_error"]
    return {}


def _describe(exc: Exception) -> str:
    """Return an exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
