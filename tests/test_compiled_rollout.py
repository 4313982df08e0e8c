"""The compiled design engine wired into design: ``model.engine = compiled`` against ``fused``.

A short design roll-out from the generator, with the target-correlation and step-size loss,
gives the same loss and the same gradients (generator weights, rates, D, f, x_feed) on both
engines (float64, 1e-9 relative), with and without the clip and the noisy flow; a
``rdlab design`` run on the compiled engine finishes, and resumes bit for bit.

Compiling a network's kernels takes seconds the first time (then they are cached on disk),
so the default run uses the one small network of ``tests/test_adjoint_engine.py`` (dense-gs,
2 species, float64); the kitchen-sink network, the noisy flow and float32 are ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rdlab.cli import app
from rdlab.design.compiled_rollout import compiled_rollout
from rdlab.design.config import DesignConfig, load_config
from rdlab.design.dynamics import rollout
from rdlab.design.optimise import (
    build_model,
    load_model,
    optimise,
    read_history,
    simulate_design,
)
from rdlab.design.parameters import GROUPS
from rdlab.errors import ParameterError

CONFIG = {"name": "engines", "dtype": "float64", "seed": 3,
          "model": {"network": "dense-gs", "species": 2, "size": [8, 8]},
          "generator": {"z_bits": 8, "batch": 2},
          "loss": {"target": {"image": "bundled:portrait", "species": 1},
                   "step_size": {"weight": 10.0}},
          "optimiser": {"stages": [12]}}


def _config(engine: str, network: str = "dense-gs", species: int = 2, clip: bool = True,
            noise: bool = False, dtype: str = "float64") -> DesignConfig:
    """Return the small test config on ``engine``."""
    model = {**CONFIG["model"], "network": network, "species": species, "clip": clip,
             "engine": engine}
    if noise:
        model["flow_noise"] = {"amplitude": 0.02, "sigma": 1.0}
    return DesignConfig.from_dict({**CONFIG, "model": model, "dtype": dtype})


def _loss_and_gradients(config: DesignConfig, boost: float = 5.0):
    """Return the loss of one roll-out, the gradient of every trainable tensor, the states.

    The start rates are multiplied by ``boost`` so that the reactions matter within 12 steps
    (and, when clipping, the clip cuts).
    """
    model = build_model(config)
    with torch.no_grad():
        model.params.rates.mul_(boost)
    rng = torch.Generator().manual_seed(5)
    traj = simulate_design(model, config.optimiser.stages[0], rng=rng)
    total, _ = model.loss(traj, rng)
    total.backward()
    grads = {f"generator.{n}": p.grad for n, p in model.generator.named_parameters()}
    grads.update({g: getattr(model.params, g).grad for g in GROUPS})
    states = torch.stack([X.detach() for X in traj.states])
    return float(total.detach()), grads, states


def _assert_same(config_args: dict, tol: float, boost: float = 5.0) -> None:
    """Assert the fused and compiled engines give the same loss, states and gradients."""
    loss_f, grads_f, states_f = _loss_and_gradients(_config("fused", **config_args), boost)
    loss_c, grads_c, states_c = _loss_and_gradients(_config("compiled", **config_args), boost)
    cut = float(((states_f == 10.0) | (states_f == 0.0)).double().mean())
    assert (0.0 < cut < 0.5) if config_args.get("clip", True) else cut == 0.0
    assert abs(loss_c - loss_f) <= tol * abs(loss_f)
    assert float((states_c - states_f).abs().max()) <= tol * float(states_f.abs().max())
    assert float(states_f[-1].std()) > 0  # the roll-out did something
    for name, g in grads_f.items():
        assert g is not None and float(g.abs().max()) > 0, name
        rel = float((grads_c[name] - g).abs().max() / g.abs().max())
        assert rel <= tol, (name, rel)


# ---------------------------------------------------------------------------- default run
def test_compiled_and_fused_give_the_same_loss_and_gradients():
    """dense-gs, clipped, constant flow: loss and every gradient agree to 1e-9 (float64)."""
    _assert_same({}, 1e-9)


def test_compiled_is_refused_off_the_cpu_and_unknown_engines_are_named():
    """``compiled`` on CUDA and an unknown engine are refused naming the choices."""
    with pytest.raises(ParameterError, match="'compiled' runs on the CPU only"):
        DesignConfig.from_dict({**CONFIG, "device": "cuda",
                                "model": {**CONFIG["model"], "engine": "compiled"}})
    with pytest.raises(ParameterError, match=r"one of \['fused', 'compiled', 'auto'\]"):
        load_config("fig2a-quick", **{"model.engine": "numba"})
    assert _config("auto").rollout_engine == "compiled"
    # the default is auto: a bundled config designs on the compiled engine on the CPU
    assert load_config("fig2a-quick").model.engine == "auto"
    assert load_config("fig2a-quick").rollout_engine == "compiled"
    assert _config("fused").rollout_engine == "fused"


def test_a_compiled_roll_out_keeps_x0_and_refuses_what_rollout_refuses():
    """``states[0]`` is X0 itself; bad horizons and devices are refused by name."""
    model = build_model(_config("compiled"))
    X0 = torch.rand(1, 2, 8, 8, dtype=torch.float64)
    traj = compiled_rollout(model.params, X0, 3)
    assert traj.states[0] is X0 and traj.n_steps == 3
    np.testing.assert_allclose(traj.states[-1].detach().numpy(),
                               rollout(model.params, X0, 3).states[-1].detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    with pytest.raises(ParameterError, match="whole number ≥ 0"):
        compiled_rollout(model.params, X0, -1)
    with pytest.raises(ParameterError, match="initial state has shape"):
        compiled_rollout(model.params, X0[:, :1], 2)


def test_gradcheck_of_the_compiled_roll_out_on_a_tiny_case():
    """torch.autograd.gradcheck: the adjoint's gradients for X0, rates, D, f and x_feed
    match finite differences of the compiled forward (float64, 5×6 grid, 3 steps)."""
    from rdlab.design.compiled_rollout import CompiledRollout, _Setup

    params = build_model(_config("compiled", clip=False)).params
    torch.manual_seed(3)
    X0 = (0.3 + 0.4 * torch.rand(1, 2, 5, 6, dtype=torch.float64)).requires_grad_()
    inputs = [X0] + [(getattr(params, g).detach().clone() * (5.0 if g == "rates" else 1.0))
                     .requires_grad_() for g in ("rates", "diffusion", "flow", "feed")]
    setup = _Setup(network=params.network, n_steps=3, dt=1.0, clip=False, c_max=10.0,
                   stencil="9-point", record=True)

    def last_state(x0, rates, diffusion, flow, feed):
        return CompiledRollout.apply(setup, x0, rates, diffusion, flow, feed, None)[-1]

    assert torch.autograd.gradcheck(last_state, tuple(inputs), eps=1e-6, atol=1e-6,
                                    rtol=1e-5)


@pytest.mark.parametrize("reads", [("stacked", "middle", "final"), ("middle",), ("final",),
                                   ("stacked",), ("stacked", "final"), ()])
def test_each_kind_of_state_read_sends_back_the_exact_gradient(reads):
    """Terms over all states (the stacked output), on one earlier state and on ``X_T`` go
    back on separate outputs and are added in the backward: every mix gives the fused
    engine's gradients to 1e-10 (float64), and reading no state at all gives zeros."""
    from rdlab.design.objectives import StepSize

    params = build_model(_config("compiled")).params
    with torch.no_grad():
        params.rates.mul_(5.0)
    torch.manual_seed(4)
    base = 0.2 + 0.6 * torch.rand(2, 2, 8, 8, dtype=torch.float64)
    w = torch.rand(2, 2, 8, 8, dtype=torch.float64)

    def grads(engine):
        params.zero_grad(set_to_none=True)
        X0 = base.clone().requires_grad_()
        traj = engine(params, X0, 6)
        loss = 0.0 * X0.sum()
        if "stacked" in reads:
            loss = loss + StepSize(delta_max=0.01)(traj)
        if "middle" in reads:
            loss = loss + (w * traj.states[3]).sum()
        if "final" in reads:
            loss = loss + (traj.states[-1] ** 2).mean()
        loss.backward()
        return {"X0": X0.grad, **{g: getattr(params, g).grad for g in GROUPS}}

    fused, compiled = grads(rollout), grads(compiled_rollout)
    for name, g in fused.items():
        c = compiled[name]
        if not reads:
            assert c is None or float(c.abs().max()) == 0.0, name
            continue
        assert float(g.abs().max()) > 0, name
        assert float((c - g).abs().max()) <= 1e-10 * float(g.abs().max()), name


def test_design_on_the_compiled_engine_finishes_and_resumes_bit_for_bit(tmp_path):
    """``rdlab design --set model.engine=compiled``: 3 steps, then the same run stopped after
    one step and resumed gives the same model and history, bit for bit."""
    runner = CliRunner()
    args = ["design", "fig2a-quick", "--no-evaluate", "--set", "model.engine=compiled",
            "--set", "dtype=float64", "--set", "network=dense-gs", "--set", "species=2",
            "--set", "size=[8, 8]", "--set", "z_bits=8", "--set", "stages=[6]",
            "--set", "steps=3", "--set", "checkpoint_every=1"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "whole")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "part"), "--time-budget", "0.001s"])
    assert res.exit_code == 0, res.output
    assert len(read_history(tmp_path / "part")) == 1
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "part")])
    assert res.exit_code == 0, res.output
    whole, part = load_model(tmp_path / "whole"), load_model(tmp_path / "part")
    assert whole.config.model.engine == "compiled"
    for a, b in zip(whole.state_dict().values(), part.state_dict().values()):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    losses = [h["loss"] for h in read_history(tmp_path / "whole")]
    assert len(losses) == 3 and losses == [h["loss"] for h in read_history(tmp_path / "part")]


@pytest.mark.parametrize("first, then", [("fused", "compiled"), ("compiled", "fused")])
def test_a_run_resumes_on_the_other_engine(tmp_path, first, then):
    """The engine is not part of a run's identity: a run started on one engine and resumed
    on the other goes on (same history length, losses as the first engine's whole run's to
    rounding)."""
    cfg = {**CONFIG, "optimiser": {"stages": [6], "steps": 3, "checkpoint_every": 1}}
    start, end = (DesignConfig.from_dict({**cfg, "model": {**CONFIG["model"], "engine": e}})
                  for e in (first, then))
    optimise(start, tmp_path / "whole", progress=False)
    optimise(start, tmp_path / "part", progress=False, time_budget_s=1e-9)
    optimise(end, tmp_path / "part", progress=False)
    want = [h["loss"] for h in read_history(tmp_path / "whole")]
    got = [h["loss"] for h in read_history(tmp_path / "part")]
    assert len(got) == len(want) == 3
    np.testing.assert_allclose(got, want, rtol=1e-9)


# ---------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("network, species", [("kitchen-sink", 3), ("dense-gs", 3)])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("noise", [False, True])
def test_families_clip_and_noisy_flow_agree(network, species, clip, noise):
    """kitchen-sink and dense-gs, with and without the clip and the noisy flow: 1e-9."""
    _assert_same({"network": network, "species": species, "clip": clip, "noise": noise},
                 1e-9, boost=3.0 if clip else 1.0)


@pytest.mark.slow
def test_float32_agrees_to_1e_4():
    """In float32 the engines agree to about 1e-4."""
    _assert_same({"dtype": "float32"}, 1e-4)
