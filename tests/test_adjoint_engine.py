"""The compiled design engine against the torch definition of the design dynamics.

Values and gradients of :mod:`rdlab.simulate.adjoint` must equal plain autograd through
:func:`rdlab.design.dynamics.rollout` (float64: 1e-10 relative; float32: ~1e-4), per sample
(each sample its own parameters, the torch reference run sample by sample), with and without
the clip and the noisy flow; checkpointed and stored trajectories give identical gradients;
a finite difference checks the gradient of a tiny case independently of torch.

Compiling a network's kernels takes seconds (cached on disk afterwards), so the default run
uses one small network; the three families, the noisy flow and float32 are ``slow``.
"""

from __future__ import annotations

import time

import numba
import numpy as np
import pytest
import torch

from rdlab.chemistry.presets import preset_network
from rdlab.design.dynamics import noisy_flow, rollout
from rdlab.design.parameters import GROUPS, DesignParameters
from rdlab.errors import ParameterError, StabilityError
from rdlab.simulate import adjoint
from rdlab.system import FlowNoise

B, NY, NX, T = 2, 12, 16, 20
STEPS = [0, 5, 13, 20]


def _params(family: str, species: int, seed: int, dtype=torch.float64) -> DesignParameters:
    """Return parameters near the paper's start, rates randomised (kept within stability)."""
    net = preset_network(family, species)
    p = DesignParameters.initial(net, seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        p.rates.copy_(torch.as_tensor(rng.uniform(0.0, 0.05, net.n_reactions)))
        p.feed.copy_(torch.as_tensor(rng.uniform(0.1, 1.0, net.n_species)))
        p.flow.fill_(0.02 + 0.02 * seed)
    return p


def _noise_fields(p: DesignParameters, noise: FlowNoise | None, seed: int, grid=(NY, NX)):
    """Return ``T`` flow fields of one sample (differentiable in ``p.flow``), or ``None``."""
    if noise is None:
        return None
    gen = torch.Generator().manual_seed(seed)
    draw = noisy_flow(p, noise, (1, p.n_species, *grid), gen)
    return [draw(t) for t in range(T)]


def _reference(family: str, species: int, clip: bool, c_max: float, noise=None,
               dtype=torch.float64, grid=(NY, NX)):
    """Return torch's states and gradients per sample, and the inputs that made them."""
    rng = np.random.default_rng(7)
    out = {"states": [], "grads": [], "params": [], "x0": [], "fields": [], "weights": []}
    for b in range(B):
        p = _params(family, species, b, dtype)
        x0 = torch.as_tensor(rng.uniform(0.0, 1.5, (1, species, *grid)), dtype=dtype)
        x0.requires_grad_(True)
        fields = _noise_fields(p, noise, 100 + b, grid)
        traj = rollout(p, x0, T, 1.0, flow_fields=fields, clip=clip, c_max=c_max)
        w = [torch.as_tensor(rng.normal(size=(1, species, *grid)), dtype=dtype)
             for _ in STEPS]
        loss = sum((wk * traj.states[t]).sum() for wk, t in zip(w, STEPS))
        loss.backward(retain_graph=fields is not None)  # fields reused for dL/df
        out["states"].append(np.stack([traj.states[t].detach().numpy()[0] for t in STEPS]))
        out["grads"].append({"x0": x0.grad.numpy()[0],
                             **{g: getattr(p, g).grad.numpy() for g in GROUPS}})
        out["params"].append(p)
        out["x0"].append(x0.detach().numpy()[0])
        out["fields"].append(fields)
        out["weights"].append(np.stack([wk.numpy()[0] for wk in w]))
    return out


def _engine(ref, clip: bool, c_max: float, dtype=np.float64, store=None):
    """Return the engine's tape and gradients on the reference's inputs."""
    ps = ref["params"]

    def stack(name):
        return np.stack([getattr(p, name).detach().double().numpy() for p in ps])

    fields = None
    if ref["fields"][0] is not None:
        fields = np.stack([np.concatenate([f.detach().double().numpy() for f in fs], axis=0)
                           for fs in ref["fields"]], axis=1)  # (T, B, C, y, x)
    tape = adjoint.forward(ps[0].network, np.stack(ref["x0"]).astype(dtype), stack("rates"),
                           stack("diffusion"), stack("flow"), stack("feed"), T, 1.0,
                           steps=STEPS, flow_fields=fields, clip=clip, c_max=c_max,
                           store=store)
    grads = adjoint.backward(tape, np.stack(ref["weights"], axis=1).astype(dtype))
    return tape, grads


def _rel(a, b) -> float:
    """Return the largest difference relative to the largest reference value."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _flow_gradient(ref, b: int, grad_fields: np.ndarray) -> float:
    """Map the engine's dL/dφ_t of sample ``b`` to dL/df through torch's noisy-flow map."""
    fields = ref["fields"][b]
    p = ref["params"][b]
    g = torch.autograd.grad(fields, p.flow, [torch.as_tensor(grad_fields[t, b:b + 1])
                                             for t in range(T)])[0]
    return float(g)


def _check(ref, tape, grads, tol: float) -> None:
    """Assert states and every gradient group agree with the reference to ``tol``."""
    assert _rel(tape.states, np.stack(ref["states"], axis=1)) < tol
    for b in range(len(ref["grads"])):
        want = ref["grads"][b]
        assert _rel(grads.x0[b], want["x0"]) < tol
        assert _rel(grads.rates[b], want["rates"]) < tol
        assert _rel(grads.diffusion[b], want["diffusion"]) < tol
        assert _rel(grads.feed[b], want["feed"]) < tol
        flow = (grads.flow[b] if grads.flow_fields is None
                else _flow_gradient(ref, b, grads.flow_fields))
        assert _rel(flow, want["flow"]) < tol


# ---------------------------------------------------------------------------- default run
@pytest.mark.parametrize("clip, c_max", [(True, 0.8), (False, 10.0)])
def test_float64_matches_torch_per_sample(clip, c_max):
    """Float64 states and gradients equal torch's to 1e-10, with and without the clip."""
    ref = _reference("dense-gs", 2, clip, c_max)
    if clip:  # the clip is active somewhere, and not everywhere
        s = np.stack(ref["states"])[:, 1:]
        frac = np.mean((s >= c_max) | (s <= 0.0))
        assert 0.0 < frac < 0.5
    tape, grads = _engine(ref, clip, c_max)
    _check(ref, tape, grads, 1e-10)


def test_checkpointed_and_stored_gradients_are_identical():
    """Recomputed segments give bit-identical states and gradients."""
    ref = _reference("dense-gs", 2, True, 0.8)
    t1, g1 = _engine(ref, True, 0.8, store=True)
    t2, g2 = _engine(ref, True, 0.8, store=False)
    assert t1.stored and not t2.stored and t2.interval == 5
    np.testing.assert_array_equal(t1.states, t2.states)
    for name in ("x0", "rates", "diffusion", "flow", "feed"):
        np.testing.assert_array_equal(getattr(g1, name), getattr(g2, name))


def test_state_gradients_are_read_in_place_and_never_written():
    """dL/dX_t in the engine's layout is used without a copy and left as it was; a strided
    view of the same values (which is copied) gives bit-identical gradients."""
    ref = _reference("dense-gs", 2, True, 0.8)
    tape, _ = _engine(ref, True, 0.8)
    G = np.stack(ref["weights"], axis=1)
    before = G.copy()
    g1 = adjoint.backward(tape, G)
    np.testing.assert_array_equal(G, before)
    wide = np.zeros((*G.shape[:-1], 2 * NX))
    wide[..., ::2] = G
    g2 = adjoint.backward(tape, wide[..., ::2])
    for name in ("x0", "rates", "diffusion", "flow", "feed"):
        np.testing.assert_array_equal(getattr(g1, name), getattr(g2, name))


def test_rows_not_a_multiple_of_the_vector_length():
    """A width that leaves a partial vector (and padding columns) still matches torch."""
    ref = _reference("dense-gs", 2, True, 0.8, grid=(5, 13))
    tape, grads = _engine(ref, True, 0.8)
    _check(ref, tape, grads, 1e-10)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_one_sample_on_two_threads_splits_the_rows(monkeypatch):
    """Fewer samples than threads, the row split forced on: each step's rows are shared out
    (7 rows, two blocks, a partial vector per row); states and gradients equal torch's to
    1e-10 and, stored or checkpointed, those of one thread to the bit."""
    monkeypatch.setenv(adjoint.ROW_SPLIT_ENV, "on")
    ref = _reference("dense-gs", 2, True, 0.8, grid=(7, 13))
    one = {key: value[:1] for key, value in ref.items()}
    before = numba.get_num_threads()
    runs = {}
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            for store in (True, False):
                runs[threads, store] = _engine(one, True, 0.8, store=store)
    finally:
        numba.set_num_threads(before)
    _check(one, *runs[2, True], 1e-10)
    tape1, grads1 = runs[1, True]
    for tape, grads in runs.values():
        np.testing.assert_array_equal(tape.states, tape1.states)
        for name in ("x0", "rates", "diffusion", "flow", "feed"):
            np.testing.assert_array_equal(getattr(grads, name), getattr(grads1, name))


def test_row_split_setting_is_checked(monkeypatch):
    """A value of RDLAB_ROW_SPLIT other than auto, on or off is refused, by name."""
    monkeypatch.setenv(adjoint.ROW_SPLIT_ENV, "sometimes")
    net = preset_network("dense-gs", 2)
    with pytest.raises(ParameterError, match="RDLAB_ROW_SPLIT.*sometimes"):
        adjoint.forward(net, np.full((1, 2, 4, 4), 0.5), np.zeros(net.n_reactions),
                        [0.1, 0.1], 0.03, [1.0, 0.0], 2)


def test_finite_difference_on_a_tiny_case():
    """Central differences of a tiny float64 roll-out agree with the adjoint (no torch)."""
    net = preset_network("dense-gs", 2)
    rng = np.random.default_rng(3)
    x0 = rng.uniform(0.2, 1.0, (1, 2, 3, 4))
    rates = rng.uniform(0.0, 0.3, net.n_reactions)
    D, f, feed = np.array([0.1, 0.15]), 0.05, np.array([0.8, 0.3])
    w = rng.normal(size=(1, 1, 2, 3, 4))

    def loss(x, k, d, ff, fd):
        tape = adjoint.forward(net, x, k, d, ff, fd, 6, 0.5, steps=[6], c_max=0.8)
        return float((tape.states * w).sum())

    tape = adjoint.forward(net, x0, rates, D, f, feed, 6, 0.5, steps=[6], c_max=0.8)
    g = adjoint.backward(tape, w)
    args = [x0, rates, D, np.array(f), feed]
    for k, (value, got) in enumerate(zip(args, (g.x0, g.rates[0], g.diffusion[0], g.flow[0],
                                                g.feed[0]))):
        for idx in list(np.ndindex(value.shape))[:6]:
            h = 1e-6
            up, dn = [a.copy() for a in args], [a.copy() for a in args]
            up[k][idx] += h
            dn[k][idx] -= h
            fd = (loss(*up) - loss(*dn)) / (2 * h)
            assert abs(fd - np.asarray(got)[idx]) < 1e-6 * max(1.0, abs(fd))


def test_refusals_name_the_bad_value():
    """Unstable, out-of-range and mis-shaped inputs are refused with a named error."""
    net = preset_network("dense-gs", 2)
    x0 = np.zeros((1, 2, 4, 4))
    with pytest.raises(StabilityError, match="D·dt"):
        adjoint.forward(net, x0, np.zeros(4), [1.0, 0.1], 0.03, [1.0, 0.0], 2)
    with pytest.raises(ParameterError, match="within 0..2"):
        adjoint.forward(net, x0, np.zeros(4), [0.1, 0.1], 0.03, [1.0, 0.0], 2, steps=[3])
    with pytest.raises(ParameterError, match="initial state has shape"):
        adjoint.forward(net, np.zeros((1, 3, 4, 4)), np.zeros(4), [0.1, 0.1], 0.03,
                        [1.0, 0.0], 2)
    tape = adjoint.forward(net, x0, np.zeros(4), [0.1, 0.1], 0.03, [1.0, 0.0], 2)
    with pytest.raises(ParameterError, match="state gradients have shape"):
        adjoint.backward(tape, np.zeros((2, 1, 2, 4, 4)))


def test_no_state_gradients_equal_zero_state_gradients():
    """``grad_states=None`` (a loss on the final state alone, through ``grad_final``) gives
    the gradients of an all-zero ``dL/dX_t`` to the bit, without that trajectory-sized
    array."""
    ref = _reference("dense-gs", 2, True, 0.8)
    tape, _ = _engine(ref, True, 0.8)
    final = np.random.default_rng(5).normal(size=tape.states.shape[1:])
    g0 = adjoint.backward(tape, np.zeros(tape.states.shape), final)
    g1 = adjoint.backward(tape, None, final)
    for name in ("x0", "rates", "diffusion", "flow", "feed"):
        np.testing.assert_array_equal(getattr(g1, name), getattr(g0, name))
    assert np.abs(g1.x0).max() > 0


@pytest.mark.parametrize("where", ["first", "middle", "last", "final"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_loss_gradients_are_refused(where, bad):
    """A NaN or infinite dL/dX_t, at any requested step or in the further final-state
    gradient, is refused by name; finite ones of the same shapes are not."""
    net = preset_network("dense-gs", 2)
    x0 = np.full((1, 2, 4, 4), 0.5)
    tape = adjoint.forward(net, x0, np.full(4, 0.1), [0.1, 0.1], 0.03, [1.0, 0.0], 3,
                           steps=range(4))
    G, final = np.zeros((4, 1, 2, 4, 4)), np.zeros((1, 2, 4, 4))
    adjoint.backward(tape, G, final)
    if where == "final":
        final[0, 1, 2, 3] = bad
        what = "final state's gradients"
    else:
        G[{"first": 0, "middle": 2, "last": 3}[where], 0, 0, 1, 1] = bad
        what = "state gradients"
    with pytest.raises(ParameterError, match=f"{what} must be finite"):
        adjoint.backward(tape, G, final)


# ---------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("family, species", [("kitchen-sink", 3), ("dense-gs", 3),
                                             ("dense", 3)])
@pytest.mark.parametrize("clip", [True, False])
def test_families_match_torch(family, species, clip):
    """The three network families match torch to 1e-10 (float64)."""
    c_max = 0.8 if clip else 10.0
    ref = _reference(family, species, clip, c_max)
    tape, grads = _engine(ref, clip, c_max)
    _check(ref, tape, grads, 1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("per_species", [False, True])
def test_noisy_flow_matches_torch(per_species):
    """With noisy flow fields, dL/df reached through the fields matches torch."""
    noise = FlowNoise(0.02, sigma=1.0, per_species=per_species)
    ref = _reference("dense-gs", 2, True, 0.8, noise=noise)
    tape, grads = _engine(ref, True, 0.8)
    assert grads.flow_fields.shape == (T, B, 2 if per_species else 1, NY, NX)
    _check(ref, tape, grads, 1e-10)


@pytest.mark.slow
def test_noisy_flow_on_an_odd_width_matches_torch():
    """Padded flow fields and their gradients are right when rows end in a partial vector."""
    noise = FlowNoise(0.02, sigma=1.0, per_species=True)
    ref = _reference("dense-gs", 2, True, 0.8, noise=noise, grid=(6, 11))
    tape, grads = _engine(ref, True, 0.8)
    assert grads.flow_fields.shape == (T, B, 2, 6, 11)
    _check(ref, tape, grads, 1e-10)


@pytest.mark.slow
def test_float32_agrees_to_1e_4():
    """Float32 agrees with the float64 reference to about 1e-4."""
    ref = _reference("kitchen-sink", 3, True, 0.8)
    tape, grads = _engine(ref, True, 0.8, dtype=np.float32)
    assert tape.states.dtype == np.float32
    _check(ref, tape, grads, 1e-4)


def test_auto_split_times_both_ways_then_keeps_the_faster(monkeypatch):
    """Under ``auto``, where the rule allows the row split, the first SPLIT_TRIALS runs of
    each way are timed per step and the faster way is used from then on, per direction
    and shape (here the row split is made slow: 3 ms a step against none), until
    SPLIT_RETRIAL runs later both are timed again."""
    import types

    monkeypatch.setattr(adjoint, "_split", lambda inp: "rows")
    monkeypatch.setattr(adjoint, "_SPLIT_TIMES", {})
    monkeypatch.setattr(adjoint, "_SPLIT_RUNS", {})
    monkeypatch.delenv(adjoint.ROW_SPLIT_ENV, raising=False)
    inp = types.SimpleNamespace(shape=(1, 2, 8, 8), prm=np.zeros(1, np.float32),
                                kernels=types.SimpleNamespace(mode="constant"))
    used = []
    for _ in range(2 * adjoint.SPLIT_TRIALS + 3):
        with adjoint._timed_split(inp, "forward", 2) as way:
            used.append(way)
            if way == "rows":
                time.sleep(0.006)
    n = adjoint.SPLIT_TRIALS
    assert used[:2 * n] == ["rows"] * n + ["serial"] * n
    assert used[2 * n:] == ["serial"] * 3
    # after SPLIT_RETRIAL runs of the kept way both are timed again (now the split wins)
    monkeypatch.setattr(adjoint, "SPLIT_RETRIAL", 5)
    used = []
    for _ in range(2 + 2 * n + 1):
        with adjoint._timed_split(inp, "forward", 2) as way:
            used.append(way)
            if way == "serial":
                time.sleep(0.006)
    assert used == ["serial"] * 2 + ["rows"] * n + ["serial"] * n + ["rows"]
    # another direction or shape is timed afresh; "on" forces the split without timing
    with adjoint._timed_split(inp, "backward", 2) as way:
        assert way == "rows"
    monkeypatch.setenv(adjoint.ROW_SPLIT_ENV, "on")
    with adjoint._timed_split(inp, "forward", 2) as way:
        assert way == "rows"
