"""The ``hold`` loss term: the target kept after the optimised window (rdlab's addition)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdlab.design.config import load_config
from rdlab.design.objectives import Hold, check_hold_options, normalise_target
from rdlab.design.optimise import build_model, hold_extension, simulate_design
from rdlab.design.trajectory import Trajectory
from rdlab.errors import ParameterError

DT = torch.float64


def _target(n: int = 16) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n]
    return (np.hypot(y - n / 2, x - n / 2) < n / 4).astype(float)


def _traj(states: list[torch.Tensor], extension: list[torch.Tensor] | None = None):
    S = states[0].shape[1]
    kw = dict(dt=1.0, rates=torch.zeros(1, dtype=DT), diffusion=torch.zeros(S, dtype=DT),
              flow=torch.tensor(0.0, dtype=DT), feed=torch.zeros(S, dtype=DT), network=None)
    ext = None if extension is None else Trajectory(states=extension, **kw)
    return Trajectory(states=states, extension=ext, **kw)


def _state_showing(target: torch.Tensor, species: int = 1, S: int = 3) -> torch.Tensor:
    """A state whose species ``species`` reads exactly the normalised target (x = 2c − 1)."""
    X = torch.full((1, S, *target.shape), 0.3, dtype=DT)
    X[0, species] = (target + 1) / 2
    return X


def test_a_steady_state_equal_to_the_target_costs_nothing_and_others_their_distance():
    image = _target()
    norm = normalise_target(image)
    held = _state_showing(norm)
    for metric in ("rmsd", "mse", "correlation"):
        term = Hold(image, metric=metric)
        value = float(term(_traj([held, held], [held, held, held])))
        assert value == pytest.approx(0.0, abs=1e-12)
    # a uniform state c = 0.5 (x = 0): the RMSD is the target's root mean square
    flat = torch.full_like(held, 0.5)
    rms = math.sqrt(float((norm**2).mean()))
    assert float(Hold(image)(_traj([held], [held, flat]))) == pytest.approx(rms, rel=1e-12)
    # ... averaged over the segment's states after its first (the first is not compared)
    assert float(Hold(image)(_traj([held], [flat, held, flat]))) == pytest.approx(rms / 2)
    # the negated pattern: r = −1, so 1 − r = 2
    neg = _state_showing(-norm.clamp(max=1.0))
    assert float(Hold(image, metric="correlation")(_traj([held], [held, neg]))) \
        == pytest.approx(2.0, abs=1e-9)


def test_without_an_extension_the_term_is_zero_and_due_every_kth_step():
    image = _target()
    held = _state_showing(normalise_target(image))
    assert float(Hold(image)(_traj([held, torch.zeros_like(held)]))) == 0.0
    term = Hold(image, every=3)
    assert [term.due(i) for i in range(7)] == [True, False, False, True, False, False, True]


def test_the_drawn_time_lies_after_the_window_up_to_factor_times_it():
    term = Hold(_target(), factor=3)
    gen = torch.Generator().manual_seed(0)
    draws = [term.draw_time(4, gen) for _ in range(400)]
    assert set(draws) == set(range(5, 13))  # T + 1 … 3T, every one reached


@pytest.mark.parametrize(("options", "named"), [
    ({"every": 0}, "0"), ({"factor": 1}, "1"), ({"grad_steps": 2.5}, "2.5"),
    ({"metric": "l1"}, "'l1'"), ({"weight": -1}, "-1"), ({"horizon": 5}, "horizon"),
    ({"every": True}, "True"),
])
def test_bad_hold_settings_are_refused_naming_the_value(options, named):
    with pytest.raises(ParameterError, match=named.replace(".", r"\.")):
        check_hold_options(options)
    loss = {"target": {"image": "bundled:portrait"}, "hold": options}
    with pytest.raises(ParameterError, match=named.replace(".", r"\.")):
        load_config("fig2a-quick", loss=loss)


def test_a_hold_term_without_a_target_term_is_refused():
    with pytest.raises(ParameterError, match="target term"):
        load_config("fig2a-quick", loss={"step_size": {}, "hold": {}})


def test_the_bundled_fig2a_config_holds_by_default():
    for name in ("fig2a",):
        hold = load_config(name).loss.get("hold")
        assert hold is not None and check_hold_options(hold) == hold


@pytest.mark.slow
def test_the_extension_continues_the_window_and_carries_a_gradient():
    loss = {"target": {"image": "bundled:portrait"}, "hold": {"factor": 4, "grad_steps": 3}}
    cfg = load_config("fig2a-quick", **{"model.size": [16, 16], "model.species": 2,
                                         "dtype": "float64", "loss": loss})
    model = build_model(cfg)
    hold = model.loss["hold"]
    T = 5
    traj = simulate_design(model, T, rng=torch.Generator().manual_seed(1))
    ext = hold_extension(model, traj, hold, torch.Generator().manual_seed(2))
    t_s = T + (hold.draw_time(T, torch.Generator().manual_seed(2)) - T)
    assert ext.n_steps == min(hold.grad_steps, t_s - T)
    # the segment ends where one plain roll-out from X_T to t_s ends
    with torch.no_grad():
        plain = simulate_design(model, t_s - T, X0=traj.states[-1].detach())
    torch.testing.assert_close(ext.states[-1].detach(), plain.states[-1], rtol=1e-10,
                               atol=1e-12)
    traj.extension = ext
    hold(traj).backward()
    assert model.params.rates.grad is not None and torch.isfinite(model.params.rates.grad).all()
    assert float(model.params.rates.grad.abs().sum()) > 0


@pytest.mark.slow
def test_a_run_with_the_hold_term_resumes_bit_for_bit(tmp_path):
    from rdlab.design.config import DesignConfig
    from rdlab.design.optimise import optimise, read_history

    cfg = DesignConfig.from_dict({
        "name": "tiny-hold", "species": 3, "network": "gs", "size": [16, 16], "stages": [4],
        "steps": 5, "z_bits": 8, "checkpoint_every": 1,
        "loss": {"target": {"image": "bundled:portrait", "species": 1},
                 "step_size": {"weight": 10.0},
                 "hold": {"factor": 5, "every": 2, "grad_steps": 3}}})
    whole = optimise(cfg, tmp_path / "whole", progress=False)
    held = [r["hold"] for r in read_history(tmp_path / "whole")]
    assert held[1] == held[3] == 0.0 and min(held[0], held[2], held[4]) > 0  # every 2nd step
    part = tmp_path / "part"
    optimise(cfg, part, progress=False, time_budget_s=1e-9)  # stops after one step
    resumed = optimise(cfg, part, progress=False)
    assert [r["loss"] for r in read_history(part)] == [r["loss"] for r in
                                                       read_history(tmp_path / "whole")]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


# ---------------------------------------------------------------------------- information_hold
def _info_config(**loss_extra):
    from rdlab.design.config import DesignConfig

    loss = {"information": {"weight": 1.0}, **loss_extra}
    return DesignConfig.from_dict({
        "name": "tiny-info-hold", "species": 3, "network": "gs", "size": [16, 16],
        "stages": [4], "steps": 3, "z_bits": 4, "batch": 2, "dtype": "float64",
        "flow_noise": {"amplitude": 0.8, "sigma": 3.0}, "loss": loss})


def test_information_hold_reads_the_bits_at_the_continuation_end_with_the_shared_encoder():
    """The value is BCE(z, E(X_{t_s})) with the information term's own encoder (one module,
    optimised once), 0 without a continuation; gradients reach E and θΨ through the
    differentiable steps."""
    import torch.nn.functional as F

    from rdlab.design.objectives import InformationHold, _encode

    model = build_model(_info_config(information_hold={"factor": 4, "grad_steps": 3}))
    term = model.loss["information_hold"]
    assert isinstance(term, InformationHold) and term.encoder is model.encoder
    assert sum(1 for _ in model.loss.parameters()) == sum(1 for _ in model.encoder.parameters())
    traj = simulate_design(model, 4, rng=torch.Generator().manual_seed(1))
    assert float(term(traj)) == 0.0  # no continuation yet
    traj.extension = hold_extension(model, traj, term, torch.Generator().manual_seed(2))
    value = term(traj)
    logits = _encode(model.encoder, traj.extension.states[-1], traj.z, True)
    expected = F.binary_cross_entropy_with_logits(logits, traj.z.to(logits.dtype))
    v = float(value.detach())
    assert v == pytest.approx(float(expected.detach()), rel=1e-14) and v > 0
    value.backward()
    for p in (model.params.rates, next(model.encoder.parameters())):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


@pytest.mark.parametrize(("loss", "named"), [
    ({"information_hold": {}}, "add an information term"),
    ({"information_hold": {"metric": "rmsd"}}, "metric"),
    ({"information_hold": {"factor": 1}}, "1"),
])
def test_bad_information_hold_settings_are_refused(loss, named):
    from rdlab.design.config import DesignConfig

    base = {"name": "x", "species": 3, "network": "gs", "size": [16, 16], "stages": [4],
            "z_bits": 4}
    if "add an" not in named:
        loss = {"information": {}, **loss}
    with pytest.raises(ParameterError, match=named):
        DesignConfig.from_dict({**base, "loss": loss})


def test_hold_and_information_hold_together_are_refused():
    from rdlab.design.config import DesignConfig

    loss = {"target": {"image": "bundled:portrait"}, "hold": {}, "information": {},
            "information_hold": {}}
    with pytest.raises(ParameterError, match="use one of them"):
        DesignConfig.from_dict({"name": "x", "species": 3, "network": "gs", "size": [16, 16],
                                "stages": [4], "z_bits": 4, "loss": loss})
