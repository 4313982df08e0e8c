"""``rdlab demo``: a short tour written as a static HTML report.

1. A Gray–Scott gallery: one run per pattern class at the (k, f) points of the Gray–Scott CNN
   paper's training table (Du = 0.2, Dv = 0.1, dt = 0.25, 128², 9-point stencil, t = 15 000),
   all classes simulated together as one batch by the fast engine.
2. A Dense-RDN-style run: the public code's 5-species Gray–Scott-like dense network (40
   reactions) with its initial parameters, rendered with PCA→RGB.
3. Classify: a small (k, f) scan at the paper's settings, labelled by the CNN shipped in the
   package, drawn as a phase map with per-class montages and the HTML explorer.
4. Discover: the hydrogen-oxidation mechanism recovered from derivative data with 0.1 %
   noise by the CRNN with partial-parameter freezing; learned-vs-true table and
   trajectories.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from rdlab import initial, viz
from rdlab.chemistry import dense_gs_network, gray_scott_network
from rdlab.chemistry.dense import dense_code_initial_parameters
from rdlab.run_folder import RunFolder, check_run_folder, staged_run_folder
from rdlab.simulate import simulate
from rdlab.simulate.result import CONCENTRATION
from rdlab.system import Grid, System

#: (class, k, f) of the Gray–Scott CNN paper's train/val table (reference: GS_CNN code).
GALLERY = [
    ("α", 0.05, 0.015), ("β", 0.05, 0.025), ("γ", 0.055, 0.025), ("δ", 0.055, 0.03),
    ("ε", 0.055, 0.015), ("ζ", 0.06, 0.025), ("θ", 0.0565, 0.03), ("ι", 0.06, 0.05),
    ("κ", 0.063, 0.046), ("λ", 0.065, 0.04), ("μ", 0.065, 0.05), ("ν", 0.065, 0.03),
]


def gray_scott_gallery(folder: RunFolder, n_steps: int, seed: int = 0) -> dict:
    """Simulate every gallery class as one float32 batch; write montage, movie, data.

    Parameters
    ----------
    folder
        The report's run folder: receives ``gray_scott_gallery.zarr``, the montage
        ``gray_scott_gallery.png`` and the movie of class α ``gray_scott_alpha.gif``.
    n_steps
        Time steps of every run (dt = 0.25).
    seed
        Seed of the initial squares and their noise.

    Returns
    -------
    dict
        ``wall_seconds``, ``samples`` (the number of classes) and
        ``cell_updates_per_second``.
    """
    labels = [c for c, _, _ in GALLERY]
    k = np.array([k for _, k, _ in GALLERY])
    f = np.array([f for _, _, f in GALLERY])
    base = System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=0.04, feed=[1, 0],
                        grid=Grid(128, 128, 1.0, "9-point"))
    system = base.samples(f=f, k=k)
    rng = np.random.default_rng(seed)
    x0 = initial.with_squares(system, rng, square={"U": 0.5, "V": 0.25}, n_squares=3,
                              size=20, noise=0.02)
    t0 = time.perf_counter()
    ds = simulate(system, x0, dt=0.25, n_steps=n_steps, snapshot_every=max(n_steps // 40, 1),
                  dtype="float32", seed=seed)
    wall = time.perf_counter() - t0
    folder.write_dataset(ds, "gray_scott_gallery.zarr")
    last = ds[CONCENTRATION].isel(time=-1).values
    names = [f"{c}  k={kk:g} f={ff:g}" for c, kk, ff in zip(labels, k, f)]
    viz.save_montage(folder.file("gray_scott_gallery.png"), last, names, 4,
                     species_names=["U", "V"], species_to_show="U")
    alpha = ds[CONCENTRATION].isel(sample=0).values
    viz.save_movie(folder.file("gray_scott_alpha.gif"), alpha, ["U", "V"], "U",
                   frame_labels=[f"t = {t:g}" for t in ds.time.values])
    return {"wall_seconds": wall, "samples": len(labels),
            "cell_updates_per_second": len(labels) * 128 * 128 * n_steps / wall}


#: Rates switched on over the dense network's background (index → k): a Gray–Scott core
#: A + 2B → 3B, its "kill" step B → C, and a second autocatalytic stage C + 2D → 3D fed by C.
DENSE_CHAIN_RATES = {0: 1.0, 34: 0.06, 7: 1.0, 37: 0.01}
DENSE_DIFFUSION = [0.2, 0.1, 0.05, 0.05, 0.05]


def dense_network_run(folder: RunFolder, n_steps: int, seed: int = 0) -> dict:
    """Simulate the public code's 5-species Gray–Scott-like dense network (40 reactions).

    Its background rates (1e-3 ± 1e-4), a food chain switched on
    (:data:`DENSE_CHAIN_RATES`), flow f = 0.04 feeding A only; 64², dt = 0.5, four
    perturbation squares.

    Parameters
    ----------
    folder
        The report's run folder: receives ``dense_network.zarr``, the PCA→RGB picture and
        movie (``dense_pca_rgb.png``, ``.gif``) and the species montage
        ``dense_species.png``.
    n_steps
        Time steps of the run.
    seed
        Seed of the background rates and the initial squares.

    Returns
    -------
    dict
        ``wall_seconds``, ``explained_variance_ratio`` (of the 3 principal components) and
        ``network`` (the reactions, one line each).
    """
    net = dense_gs_network(5)
    rng = np.random.default_rng(seed)
    rates = np.clip(dense_code_initial_parameters(net, rng)["rates"], 0.0, 1.1e-3)
    for r, value in DENSE_CHAIN_RATES.items():
        rates[r] = value
    feed = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    system = System.build(net, rates=rates, diffusion=DENSE_DIFFUSION, flow=0.04, feed=feed,
                          grid=Grid(64, 64, 1.0, "9-point"))
    x0 = initial.with_squares(system, rng, square={"A": 0.5, "B": 0.25, "C": 0.2, "D": 0.1},
                              n_squares=4, size=8, noise=0.02)
    t0 = time.perf_counter()
    ds = simulate(system, x0, dt=0.5, n_steps=n_steps, snapshot_every=max(n_steps // 40, 1),
                  seed=seed)
    wall = time.perf_counter() - t0
    folder.write_dataset(ds, "dense_network.zarr")
    frames = ds[CONCENTRATION].isel(sample=0).values
    rgb, pca = viz.pca_rgb(frames)
    share = float(np.sum(pca.explained_variance_ratio))
    viz.save_png(folder.file("dense_pca_rgb.png"), rgb[-1],
                 f"PCA→RGB, {share:.1%} of variance", kind="image")
    viz.save_movie(folder.file("dense_pca_rgb.gif"), frames, list(net.species), "pca",
                   frame_labels=[f"t = {t:g}" for t in ds.time.values], pca=pca)
    viz.save_montage(folder.file("dense_species.png"), frames[-1],
                     [f"{s}  (D = {d:g})" for s, d in zip(net.species, DENSE_DIFFUSION)], 5,
                     shared_scale=False)
    return {"wall_seconds": wall, "explained_variance_ratio":
            [float(v) for v in pca.explained_variance_ratio],
            "network": net.to_lines()}


def classify_section(folder: RunFolder, quick: bool) -> dict:
    """Simulate a small (k, f) scan and label it with the bundled CNN.

    The scan (t = 15 000, float32, in this process) is written to
    ``folder/classify_scan.zarr``, its labels to ``folder/classify``.

    Parameters
    ----------
    folder
        The report's run folder.
    quick
        A 4 × 3 scan instead of 20 × 16.

    Returns
    -------
    dict
        The labelling's metrics (``points``, ``counts`` per class, …) with
        ``simulate_seconds`` and ``early_stopped`` added.
    """
    from rdlab.classify.evaluation import bundled_model_path
    from rdlab.classify.label_scan import classify_scan
    from rdlab.classify.paper_pipeline import PaperSettings, make_scan
    from rdlab.classify.pattern_runs import PatternRunSettings
    from rdlab.classify.scan_layout import grid_scan

    n_k, n_f = (4, 3) if quick else (20, 16)
    points = grid_scan((0.03, 0.07, n_k), (0.005, 0.08, n_f))
    settings = PaperSettings(runs=PatternRunSettings(dtype="float32"), scheduler="in-process",
                             block=64, progress=not quick)
    t0 = time.perf_counter()
    stats = make_scan(folder.file("classify_scan.zarr"), settings, points)
    seconds = time.perf_counter() - t0
    metrics = classify_scan(folder.file("classify_scan.zarr"), bundled_model_path(),
                            folder.file("classify"), progress=False, thumb_size=64)
    return {**metrics, "simulate_seconds": round(seconds, 2),
            "early_stopped": stats["early_stopped"]}


def discover_section(folder: RunFolder, quick: bool) -> dict:
    """Recover hydrogen oxidation (6 species, 6 reversible reactions) from noisy data.

    The noise is the paper's §4 test: 0.1 % multiplicative Gaussian noise on the exact
    derivatives (``noise_on="derivatives"``).

    Writes ``folder/discover``: data, mechanism table/YAML/Antimony/SBML, trajectory plot.

    Parameters
    ----------
    folder
        The report's run folder.
    quick
        Use the ``stiff`` example and a 60 s time budget instead of hydrogen oxidation and
        120 s.

    Returns
    -------
    dict
        ``example``, ``converged``, ``exact``, ``how`` (the method that found it),
        ``seconds``, ``max_rate_error``, ``trajectory_error``, ``rows`` (learned against
        true rates, one per reaction) and ``table`` (the mechanism as text).
    """
    from rdlab.discover.examples import example
    from rdlab.discover.workflow import DiscoverSettings, discover_into, prepare_data

    ex = example("stiff" if quick else "hydrogen-oxidation")
    budget = 60.0 if quick else 120.0
    settings = DiscoverSettings(noise=1e-3, noise_on="derivatives",
                                estimator={"time_budget_s": budget, "seed": 1})
    settings.check()
    data, info = prepare_data(ex, settings)  # the demo's own staged folder holds the lock
    report = discover_into(RunFolder(folder.file("discover")), data, ex, settings, info,
                           progress=not quick)
    fit = report["fit"]
    rows = []
    for m in report["comparison"]["matched"]:
        if m["learned"] is None:
            rows.append([m["reaction"] + 1, "not found", "", "", ""])
            continue
        rows.append([m["reaction"] + 1, f"{m['kf_true']:.4g}", f"{m['kf']:.4g}",
                     f"{m['kr_true']:.4g}", f"{m['kr']:.4g}"])
    ws = fit.get("warm_start") or {}
    how = ("A sparse regression on mass-action monomials (validated like any frozen CRNN "
           "candidate)" if ws.get("accepted") else "The CRNN with partial-parameter freezing")
    return {"example": ex.name, "converged": fit["converged"], "exact": report["exact"],
            "how": how,
            "seconds": fit["seconds"], "max_rate_error": report["comparison"]["max_rate_error"],
            "trajectory_error": report.get("trajectory_error"), "rows": rows,
            "table": (folder.file("discover") / "mechanism.txt").read_text()}


def design_section(folder: RunFolder, quick: bool) -> dict:
    """Design a network that holds a picture: the bundled ``fig2a-quick`` config.

    4 species, kitchen sink, 32×32, T = 32 s, the bundled portrait as target, optimised
    into ``folder/design``, then its checks (10× horizon, dt/10, controls) and figures.

    Parameters
    ----------
    folder
        The report's run folder.
    quick
        20 optimisation steps and 2 randomisations per control.

    Returns
    -------
    dict
        ``seconds``, ``steps``, ``engine`` (the roll-out engine: ``compiled`` on the CPU),
        ``window_r`` (mean Pearson r over the optimised window), ``long_r`` (at 10× the
        horizon), ``horizon`` and ``controls``.
    """
    from rdlab.design.config import bundled_target, load_config
    from rdlab.design.optimise import optimise
    from rdlab.design.report import report

    cfg = load_config("fig2a-quick", **({"steps": 20, "controls": 2} if quick else {}))
    out = folder.file("design")
    t0 = time.perf_counter()
    optimise(cfg, out, progress=not quick, resume=False)
    seconds = time.perf_counter() - t0
    metrics = report(out)
    shutil.copyfile(bundled_target("portrait"), out / "target.png")
    corr = metrics["correlation"]
    return {"seconds": round(seconds, 1), "steps": metrics["optimisation_steps"],
            "engine": cfg.rollout_engine, "window_r": corr["optimised_window_mean"],
            "long_r": corr["at_end"], "horizon": corr["horizon"], "controls": metrics["controls"]}


def run_demo(out: str | Path, quick: bool = False, seed: int = 0) -> Path:
    """Run the tour and write ``out/index.html``.

    The report is written through :func:`~rdlab.run_folder.staged_run_folder`: ``out`` is
    locked, and it changes only when every section has succeeded (a failed section leaves
    no report folder, or the previous report as it was).

    Parameters
    ----------
    out
        The report folder.
    quick
        Shorter runs (for tests).
    seed
        Seed of the simulations' initial states.

    Returns
    -------
    Path
        ``out/index.html``.
    """
    out = Path(out)
    check_run_folder(out)
    with staged_run_folder(out) as folder:
        _tour(folder, quick, seed)
    return out / "index.html"


def _tour(folder: RunFolder, quick: bool, seed: int) -> Path:
    """Run every section into ``folder``, record config and metrics, write the report."""
    gs_steps = 4000 if quick else 60000
    dense_steps = 2000 if quick else 16000
    folder.write_config({"command": "demo", "quick": quick, "seed": seed,
                         "gray_scott_steps": gs_steps, "dense_steps": dense_steps})
    gallery = gray_scott_gallery(folder, gs_steps, seed)
    dense = dense_network_run(folder, dense_steps, seed)
    classified = classify_section(folder, quick)
    discovered = discover_section(folder, quick)
    designed = design_section(folder, quick)
    folder.write_metrics({"gray_scott_gallery": gallery, "dense_network": dense,
                          "classify": classified,
                          "discover": {k: v for k, v in discovered.items() if k != "rows"},
                          "design": designed})
    report = viz.HtmlReport("rdlab demo")
    _report_gallery(report, gallery, gs_steps)
    _report_dense(report, dense, dense_steps)
    _report_classify(report, classified)
    _report_discover(report, discovered)
    _report_design(report, designed)
    return report.write(folder.file("index.html"))


def _report_gallery(report: viz.HtmlReport, gallery: dict, gs_steps: int) -> None:
    """Add the Gray–Scott gallery section to ``report``."""
    report.add_heading("Gray–Scott pattern gallery")
    report.add_paragraph(
        f"U at t = {gs_steps * 0.25:g} for the (k, f) points of the Gray–Scott CNN paper's "
        "training table (Du = 0.2, Dv = 0.1, dt = 0.25, 128×128 periodic grid, isotropic "
        f"9-point Laplacian, forward Euler). {gallery['samples']} runs as one float32 batch "
        f"in {gallery['wall_seconds']:.1f} s "
        f"({gallery['cell_updates_per_second'] / 1e9:.2f} G cell-updates/s).")
    report.add_image("gray_scott_gallery.png")
    report.add_paragraph("Class α over time (U):")
    report.add_image("gray_scott_alpha.gif")


def _report_dense(report: viz.HtmlReport, dense: dict, dense_steps: int) -> None:
    """Add the dense-network section to ``report``."""
    report.add_heading("A dense 5-species reaction network (Dense-RDN style)")
    ev = dense["explained_variance_ratio"]
    report.add_paragraph(
        "The public Dense-RDN code's Gray–Scott-like dense network for 5 species (all 40 "
        "reactions, background rates 1e-3 ± 1e-4 as in its initialisation) with a food chain "
        "switched on: A + 2B → 3B (k = 1), B → C (0.06), C + 2D → 3D (1), C → D (0.01); "
        f"flow f = 0.04 feeding A only; 64×64, dt = 0.5, {dense_steps} steps. Concentrations are "
        "projected on their first 3 principal components and shown as RGB; those components "
        f"explain {sum(ev):.1%} of the variance ({', '.join(f'{v:.1%}' for v in ev)}).")
    report.add_image("dense_pca_rgb.png")
    report.add_image("dense_pca_rgb.gif")
    report.add_image("dense_species.png")
    report.add_table([[line] for line in dense["network"]], ["reactions"])


def _report_classify(report: viz.HtmlReport, classified: dict) -> None:
    """Add the Classify section (phase map and class counts) to ``report``."""
    report.add_heading("Classify: a (k, f) scan labelled by the bundled CNN")
    report.add_paragraph(
        f"{classified['points']} Gray–Scott runs on a (k, f) grid at the CNN paper's settings "
        f"(t = 15 000; simulated in {classified['simulate_seconds']:.0f} s, "
        f"{classified['early_stopped']} homogeneous runs stopped early), each labelled by "
        "the CNN shipped with rdlab. Open classify/explorer.html to inspect every point.")
    report.add_image("classify/phase_map.png")
    report.add_table([[c, n] for c, n in classified["counts"].items() if n],
                     ["class", "points"])


def _report_discover(report: viz.HtmlReport, discovered: dict) -> None:
    """Add the Discover section (mechanism, rates against the truth) to ``report``."""
    report.add_heading("Discover: a reaction network from concentration data")
    verdict = ("equals the true mechanism" if discovered["exact"] else
               "does NOT equal the true mechanism")
    report.add_paragraph(
        f"The {discovered['example']} example: 100 random initial conditions, t = 0…1 in steps "
        "of 0.1, time derivatives with 0.1 % multiplicative noise. "
        f"{discovered['how']} learned the stoichiometry and rates in "
        f"{discovered['seconds']:.0f} s; the learned stoichiometry {verdict} "
        f"(largest rate error {discovered['max_rate_error']:.1e}). Below: the learned "
        "mechanism, rates against the truth, and trajectories of the learned network against "
        "the true one from a new initial condition. discover/ holds the mechanism as YAML, "
        "Antimony and SBML.")
    report.add_preformatted(discovered["table"])
    report.add_table(discovered["rows"], ["reaction", "kf true", "kf learned", "kr true",
                                          "kr learned"])
    report.add_image("discover/trajectories.png")


def _report_design(report: viz.HtmlReport, designed: dict) -> None:
    """Add the Design section (correlations, controls, figures) to ``report``."""
    report.add_heading("Design: a reaction–diffusion network that holds a picture")
    ctl = designed["controls"]["dt/10"]["summary"]
    report.add_paragraph(
        "Inverse design (Dense-RDN §3.1) at laptop size: the rate constants of a 4-species "
        "dense network (48 reactions), its diffusion coefficients, flow and feed, and a "
        "generator of the initial state were optimised together so that species B holds the "
        f"target portrait (drawn by rdlab) over T = 32 s: {designed['steps']} Adam steps in "
        f"{designed['seconds']:.0f} s on the {designed['engine']} engine. Mean Pearson r "
        f"with the target over the optimised window: {designed['window_r']:.3f}; at "
        f"t = {designed['horizon']:g} s (10× the "
        f"horizon): {designed['long_r']:.3f}. Controls at dt/10 (mean r over "
        f"{designed['horizon']:g} s): " + ", ".join(f"{k} {v['mean']:.2f}"
                                                   for k, v in ctl.items()) + ".")
    report.add_image("design/target.png")
    report.add_image("design/timelapse.png")
    report.add_image("design/controls_correlation_dt10.png")
    report.add_image("design/reaction_graph.png")
