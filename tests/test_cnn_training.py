"""Pattern CNNs (Table II), augmentation, training with resumption, evaluation, saliency."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rdlab.classify.augment import (
    AugmentConfig,
    AugmentParams,
    affine_periodic,
    apply_params,
    augment,
    sample_params,
)
from rdlab.classify.cnn import (
    PatternCNN,
    PatternCNN3D,
    build_model,
    count_parameters,
    load_model,
    save_model,
)
from rdlab.classify.training import TrainConfig, evaluate, predict, saliency, train
from rdlab.errors import DataError, ParameterError
from rdlab.training_loop import read_history

# --------------------------------------------------------------------------- architecture


def _buffer_values(model: torch.nn.Module) -> int:
    """Values of the BatchNorm running mean/variance (not the integer batch counter)."""
    return sum(b.numel() for name, b in model.named_buffers()
               if name.endswith(("running_mean", "running_var")))


def test_parameter_count_2d_matches_table_ii():
    model = PatternCNN(in_channels=3, n_classes=15)
    # Table II / Keras report 277,723 parameters. Keras counts BatchNorm's moving mean and
    # moving variance (2 × 3 channels) as (non-trainable) parameters; PyTorch keeps them as
    # buffers, so the PyTorch count is 6 lower and the buffers make up the difference.
    assert count_parameters(model) == 277_717
    assert _buffer_values(model) == 6
    assert count_parameters(model) + _buffer_values(model) == 277_723
    # per layer, as in Table II: BN 12 (Keras), convs 896/18496/73856/147584, dense 33024/3855
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [sum(p.numel() for p in c.parameters()) for c in convs] == [896, 18496, 73856,
                                                                        147584]


def test_parameter_count_3d_matches_reference():
    model = PatternCNN3D(n_frames=10, n_classes=15)
    # The reference's 3-D model has 76,531 Keras parameters. Its BatchNorm acts on the single
    # input channel, so Keras counts 2 moving statistics that PyTorch keeps as buffers:
    # 76,529 trainable values + 2 buffers = 76,531 (checked, not assumed).
    assert count_parameters(model) == 76_529
    assert _buffer_values(model) == 2
    assert count_parameters(model) + _buffer_values(model) == 76_531


def test_output_shapes_and_feature_sizes():
    torch.manual_seed(0)
    model = PatternCNN(3, 15).eval()
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        assert model(x).shape == (2, 15)
        sizes = []
        h = model.norm(x)
        for layer in model.features:
            h = layer(h)
            if isinstance(layer, torch.nn.Conv2d | torch.nn.MaxPool2d):
                sizes.append(h.shape[-1])
    assert sizes == [63, 61, 30, 28, 14, 12, 6]  # Table II
    assert model.in_channels == 3 and model.n_classes == 15
    m3 = PatternCNN3D(10, 15).eval()
    with torch.no_grad():
        assert m3(torch.rand(2, 10, 128, 128)).shape == (2, 15)
        assert m3(torch.rand(2, 1, 10, 128, 128)).shape == (2, 15)
    assert m3.in_channels == 10
    with pytest.raises(ParameterError, match="44"):
        model(torch.rand(1, 3, 44, 44))
    with pytest.raises(ParameterError, match="channel|shape"):
        model(torch.rand(1, 4, 64, 64))
    with pytest.raises(ParameterError, match="4d"):
        build_model("4d", 3, 15)


def test_glorot_init_and_zero_bias():
    torch.manual_seed(1)
    model = PatternCNN(3, 15)
    conv = model.features[2]  # 32 → 64, 3×3
    bound = math.sqrt(6.0 / (9 * 32 + 9 * 64))
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(conv.bias) == 0
    assert model.norm.momentum == pytest.approx(0.01) and model.norm.eps == pytest.approx(1e-3)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(2)
    model = PatternCNN(3, 4).eval()
    model.norm.running_mean.fill_(0.3)
    classes = ["a", "b", "c", "d"]
    path = save_model(tmp_path / "m.pt", model, classes, {"note": np.float64(0.5), "n": 3})
    assert path.stat().st_size < 2_000_000
    loaded, cls, meta = load_model(path)
    assert cls == classes and meta == {"note": 0.5, "n": 3}
    assert not loaded.training and isinstance(loaded, PatternCNN)
    frames = np.random.default_rng(0).random((5, 3, 48, 48), dtype=np.float32)
    np.testing.assert_array_equal(predict(model, frames), predict(loaded, frames))

    m3 = PatternCNN3D(6, 2)
    loaded3, _, _ = load_model(save_model(tmp_path / "m3.pt", m3, ["x", "y"]))
    assert isinstance(loaded3, PatternCNN3D) and loaded3.in_channels == 6

    with pytest.raises(DataError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="bad.pt"):
        load_model(bad)
    with pytest.raises(ParameterError, match="3 class names"):
        save_model(tmp_path / "x.pt", model, ["a", "b", "c"])


# --------------------------------------------------------------------------- augmentation


def _periodic_image(h: int, w: int) -> torch.Tensor:
    y = torch.arange(h, dtype=torch.float32)[:, None]
    x = torch.arange(w, dtype=torch.float32)[None, :]
    return (0.5 + 0.3 * torch.sin(2 * math.pi * 2 * x / w)
            * torch.cos(2 * math.pi * 3 * y / h) + 0.1 * torch.cos(2 * math.pi * x / w))


def test_periodic_translation_preserves_pixel_multiset():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 40, 56, generator=gen)
    cfg = AugmentConfig(rotation=0, zoom=0, shear=0, flip_probability=0, intensity=0)
    out = augment(x, cfg, gen)
    moved = 0
    for i in range(8):
        for c in range(3):
            assert torch.equal(out[i, c].flatten().sort().values,
                               x[i, c].flatten().sort().values)
        # and it is a torus translation: equal to some torch.roll of the input
        matches = [(dy, dx) for dy in range(40) for dx in range(56)
                   if torch.equal(torch.roll(x[i], (dy, dx), dims=(-2, -1)), out[i])]
        assert len(matches) == 1
        moved += matches[0] != (0, 0)
    assert moved >= 6
    params = sample_params(10_000, 40, 56, cfg, gen)
    assert params.shift_x.min() >= 0 and params.shift_x.max() == 55
    assert params.shift_y.max() == 39 and torch.equal(params.shift_x, params.shift_x.round())


def test_identity_transform():
    x = torch.rand(3, 2, 50, 60)
    ident = AugmentParams.identity(3)
    assert torch.equal(affine_periodic(x, ident), x)  # exact path
    out = affine_periodic(x, ident, interpolate=True)  # bilinear path
    assert (out - x).abs().max() < 1e-5
    cfg = AugmentConfig(rotation=0, zoom=0, shear=0, flip_probability=0, intensity=0,
                        translate=False)
    assert torch.equal(augment(x, cfg, torch.Generator().manual_seed(0)), x)
    assert augment(x, AugmentConfig.off(), torch.Generator()) is x


@pytest.mark.parametrize(("angle", "k"), [(90.0, 1), (-90.0, -1), (180.0, 2), (270.0, 3)])
def test_rotation_by_quarter_turns_matches_rot90(angle, k):
    x = torch.rand(2, 3, 32, 32)
    params = AugmentParams.identity(2)
    params.angle[:] = angle
    expected = torch.rot90(x, k, dims=(-2, -1))
    assert (affine_periodic(x, params, interpolate=True) - expected).abs().max() < 1e-4
    assert torch.equal(affine_periodic(x, params), expected)
    params.angle[:] = angle + 1e-3  # off the grid: bilinear, still close
    assert (affine_periodic(x, params) - expected).abs().max() < 1e-3


def test_flip_is_mirror_along_x():
    x = torch.rand(2, 1, 16, 20)
    params = AugmentParams.identity(2)
    params.flip[:] = 1.0
    assert torch.equal(affine_periodic(x, params), torch.flip(x, dims=(-1,)))


def test_wrap_boundaries():
    # a constant image stays constant under any transform: no border fill anywhere
    gen = torch.Generator().manual_seed(3)
    cfg = AugmentConfig(intensity=0)
    const = torch.full((16, 1, 48, 48), 0.7)
    assert (augment(const, cfg, gen) - 0.7).abs().max() < 1e-5
    # a sub-pixel shift of a smooth periodic image, across the edges, is the shifted image
    img = _periodic_image(48, 64)[None, None]
    params = AugmentParams.identity(1)
    params.shift_x[:] = 3.25
    params.shift_y[:] = -10.5
    out = affine_periodic(img, params)
    y = torch.arange(48, dtype=torch.float32)[:, None] + 10.5
    x = torch.arange(64, dtype=torch.float32)[None, :] - 3.25
    exact = (0.5 + 0.3 * torch.sin(2 * math.pi * 2 * x / 64)
             * torch.cos(2 * math.pi * 3 * y / 48) + 0.1 * torch.cos(2 * math.pi * x / 64))
    assert (out[0, 0] - exact).abs().max() < 0.02


def test_intensity_factor_bounds():
    gen = torch.Generator().manual_seed(4)
    params = sample_params(20_000, 8, 8, AugmentConfig(), gen)
    assert params.scale.min() >= 0.95 and params.scale.max() <= 1.05
    assert params.scale.min() < 0.951 and params.scale.max() > 1.049
    geo_off = AugmentConfig(rotation=0, zoom=0, shear=0, flip_probability=0, translate=False)
    x = torch.rand(64, 2, 12, 12) + 0.5
    ratio = augment(x, geo_off, gen) / x
    assert ratio.min() >= 0.95 - 1e-6 and ratio.max() <= 1.05 + 1e-6
    # one factor per sample, shared by all its channels and pixels
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio), atol=1e-6)


def test_legacy_shift_moves_at_most_one_pixel():
    gen = torch.Generator().manual_seed(5)
    cfg = AugmentConfig(rotation=0, zoom=0, shear=0, flip_probability=0, intensity=0,
                        legacy_shift=True)
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 16, 16] = 1.0
    out = augment(x, cfg, gen)
    pos = torch.arange(32, dtype=torch.float32)
    mass = out.sum(dim=(-2, -1))
    cy = (out.sum(-1) * pos).sum(-1) / mass
    cx = (out.sum(-2) * pos).sum(-1) / mass
    dy, dx = (cy - 16).abs(), (cx - 16).abs()
    assert torch.allclose(mass, torch.ones_like(mass), atol=1e-5)
    assert dy.max() <= 1 + 1e-5 and dx.max() <= 1 + 1e-5
    assert dx.max() > 0.5  # it does move
    p = sample_params(1000, 32, 32, cfg, gen)
    assert p.shift_x.abs().max() <= 1 and p.shift_y.abs().max() <= 1


def test_augment_is_seeded_and_keeps_shape():
    x = torch.rand(4, 3, 48, 48)
    a = augment(x, AugmentConfig(), torch.Generator().manual_seed(7))
    b = augment(x, AugmentConfig(), torch.Generator().manual_seed(7))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    params = sample_params(4, 48, 48, AugmentConfig(), torch.Generator().manual_seed(7))
    assert torch.equal(apply_params(x, params), a)
    with pytest.raises(ParameterError, match="-1"):
        AugmentConfig(zoom=-1)
    assert AugmentConfig.from_dict(AugmentConfig(shear=1.0).to_dict()) == AugmentConfig(shear=1)


# --------------------------------------------------------------------------- training


def _stripes_and_spots(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: stripes at a random angle, class 1: a lattice of spots; 3 noisy channels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.empty((n, 3, size, size), dtype=np.float32)
    labels = np.arange(n) % 2
    for i in range(n):
        th = rng.uniform(0, np.pi)
        lam = rng.uniform(6, 10)
        u = (xx * np.cos(th) + yy * np.sin(th)) * 2 * np.pi / lam + rng.uniform(0, 2 * np.pi)
        v = (-xx * np.sin(th) + yy * np.cos(th)) * 2 * np.pi / lam + rng.uniform(0, 2 * np.pi)
        img = 0.5 + 0.4 * np.sin(u) if labels[i] == 0 else 0.5 + 0.4 * np.sin(u) * np.sin(v)
        frames[i] = img + 0.02 * rng.standard_normal((3, size, size))
    return frames, labels.astype(np.int64)


def _tiny_config(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=16, threads=2, seed=0, patience=None)
    base.update(kw)
    return TrainConfig(**base)


def test_training_learns_separable_problem(tmp_path):
    x, y = _stripes_and_spots(40, 48, seed=0)
    vx, vy = _stripes_and_spots(20, 48, seed=1)
    cfg = _tiny_config(epochs=5, batch_size=10)
    result = train(x, y, vx, vy, ["stripes", "spots"], tmp_path, cfg, progress=False)
    assert result["epochs_run"] == 5 and result["stop_reason"] == "epochs"
    assert result["best_val_accuracy"] >= 0.9
    history = read_history(tmp_path / "history.jsonl")
    assert [r["epoch"] for r in history] == list(range(1, 6))
    assert set(history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                               "seconds"}
    assert history[-1]["lr"] < history[0]["lr"]  # cosine schedule
    model, classes, meta = load_model(tmp_path / "best.pt")
    assert classes == ["stripes", "spots"] and meta["epoch"] == result["best_epoch"]
    scores = evaluate(model, vx, vy, classes)
    assert scores["accuracy"] == pytest.approx(result["best_val_accuracy"])
    assert np.array(scores["confusion"]).sum() == 20 and len(scores["confusion"]) == 2
    assert set(scores["per_class_accuracy"]) == {"stripes", "spots"}
    probs = predict(model, vx[:5])
    assert probs.shape == (5, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    maps = saliency(model, vx[:3], class_index=1)
    assert maps.shape == (3, 48, 48) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1 and maps.max() > maps.min()
    with pytest.raises(ParameterError, match="5"):
        saliency(model, vx[:1], class_index=5)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _without_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_a_model_folder_of_the_old_history_format_resumes_and_is_converted(tmp_path):
    """Resume a folder of the old history format (history.json, one JSON list).

    It ends as the uninterrupted run; its history becomes history.jsonl, and evaluate's
    reader takes either.
    """
    from rdlab.classify.evaluation import _read_history

    x, y = _stripes_and_spots(8, 48, seed=2)
    vx, vy = _stripes_and_spots(4, 48, seed=3)
    cfg = _tiny_config(epochs=2, batch_size=4)
    full = train(x, y, vx, vy, ["a", "b"], tmp_path / "full", cfg, progress=False)
    old = tmp_path / "old"

    def interrupt(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # stopped after epoch 1
        train(x, y, vx, vy, ["a", "b"], old, cfg, progress=False, on_epoch_end=interrupt)
    records = read_history(old / "history.jsonl")
    (old / "history.jsonl").unlink()
    (old / "history.json").write_text(json.dumps(records, indent=1))
    assert _read_history(old / "best.pt") == records
    resumed = train(x, y, vx, vy, ["a", "b"], old, cfg, progress=False)
    assert not (old / "history.json").exists()
    assert _without_seconds(read_history(old / "history.jsonl")) == _without_seconds(
        full["history"]) == _without_seconds(resumed["history"])
    assert _read_history(old / "best.pt") == resumed["history"]


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_resume_equals_uninterrupted_run(tmp_path, schedule):
    x, y = _stripes_and_spots(8, 48, seed=2)
    vx, vy = _stripes_and_spots(4, 48, seed=3)
    cfg = _tiny_config(epochs=2, schedule=schedule, plateau_patience=1, batch_size=4)
    full = train(x, y, vx, vy, ["a", "b"], tmp_path / "full", cfg, progress=False)

    def interrupt(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(x, y, vx, vy, ["a", "b"], tmp_path / "cut", cfg, progress=False,
              on_epoch_end=interrupt)
    assert _state(tmp_path / "cut" / "last.pt")["epoch"] == 1
    resumed = train(x, y, vx, vy, ["a", "b"], tmp_path / "cut", cfg, progress=False)
    assert resumed["epochs_run"] == full["epochs_run"] == 2
    assert _without_seconds(resumed["history"]) == _without_seconds(full["history"])
    a, b = _state(tmp_path / "full" / "last.pt"), _state(tmp_path / "cut" / "last.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert torch.equal(a["data_rng"], b["data_rng"])
    # a finished run returns at once; a changed setting is refused
    again = train(x, y, vx, vy, ["a", "b"], tmp_path / "cut", cfg, progress=False)
    assert again["epochs_run"] == 2
    with pytest.raises(ParameterError, match="lr"):
        train(x, y, vx, vy, ["a", "b"], tmp_path / "cut", _tiny_config(
            epochs=2, schedule=schedule, plateau_patience=1, batch_size=4, lr=5e-4),
            progress=False)


def test_lazy_inputs_match_numpy(tmp_path):
    xr = pytest.importorskip("xarray")
    x, y = _stripes_and_spots(8, 48, seed=6)
    lazy = xr.DataArray(x, dims=("sample", "channel", "y", "x")).chunk({"sample": 3})
    cfg = _tiny_config(epochs=1, batch_size=4, in_memory=False)
    a = train(x, y, x[:4], y[:4], ["a", "b"], tmp_path / "np", cfg, progress=False)
    b = train(lazy, y, lazy[:4], y[:4], ["a", "b"], tmp_path / "lazy", cfg, progress=False)
    assert _without_seconds(a["history"]) == _without_seconds(b["history"])


def test_3d_training_smoke(tmp_path):
    x, y = _stripes_and_spots(8, 48, seed=7)
    stacks = np.concatenate([x, x[:, :1]], axis=1)  # 4 frames
    cfg = _tiny_config(epochs=1, batch_size=4, architecture="3d")
    result = train(stacks, y, stacks[:4], y[:4], ["a", "b"], tmp_path, cfg, progress=False)
    assert result["epochs_run"] == 1
    model, _, _ = load_model(tmp_path / "best.pt")
    assert isinstance(model, PatternCNN3D) and model.in_channels == 4
    assert predict(model, stacks).shape == (8, 2)
    assert saliency(model, stacks[:2], 0).shape == (2, 48, 48)


def test_early_stopping(tmp_path):
    x, y = _stripes_and_spots(16, 48, seed=4)
    cfg = _tiny_config(epochs=10, lr=1e-12, patience=2, schedule="none",
                       monitor="val_loss")
    result = train(x, y, x, y, ["a", "b"], tmp_path, cfg, progress=False)
    assert result["stop_reason"] == "patience"
    assert result["epochs_run"] == result["best_epoch"] + 2 < 10


def test_config_round_trip_and_validation():
    cfg = TrainConfig(epochs=5, augment=AugmentConfig(legacy_shift=True), schedule="plateau")
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.augment.legacy_shift
    with pytest.raises(ParameterError, match="warp"):
        TrainConfig(schedule="warp")
    with pytest.raises(ParameterError, match="0"):
        TrainConfig(epochs=0)
    with pytest.raises(ParameterError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})


def test_train_rejects_bad_labels(tmp_path):
    x, _ = _stripes_and_spots(4, 48, seed=5)
    with pytest.raises(ParameterError, match="7"):
        train(x, np.array([0, 1, 7, 0]), x, np.array([0, 1, 1, 0]), ["a", "b"], tmp_path,
              _tiny_config(), progress=False)


def test_device_and_label_smoothing_validation():
    with pytest.raises(ParameterError, match="'tpu:0'"):
        TrainConfig(device="tpu:0")
    with pytest.raises(ParameterError, match="1.5"):
        TrainConfig(label_smoothing=1.5)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            TrainConfig(device="cuda")


def test_label_smoothing_trains_and_lowers_confidence(tmp_path):
    """Smoothed targets cap the optimal probability below 1: the smoothed model's mean
    top-class probability on the training data is lower than the plain one's."""
    x, y = _stripes_and_spots(40, 48, seed=0)
    vx, vy = _stripes_and_spots(20, 48, seed=1)
    tops = []
    for i, eps in enumerate((0.0, 0.4)):
        train(x, y, vx, vy, ["stripes", "spots"], tmp_path / str(i),
              _tiny_config(epochs=5, batch_size=10, label_smoothing=eps), progress=False)
        model, _, _ = load_model(tmp_path / str(i) / "best.pt")
        tops.append(float(predict(model, vx).max(axis=1).mean()))
    assert tops[1] < tops[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_augmentation_matches_cpu():
    x = torch.rand(4, 3, 48, 48)
    a = augment(x, AugmentConfig(), torch.Generator().manual_seed(7))
    b = augment(x.cuda(), AugmentConfig(), torch.Generator().manual_seed(7))
    assert b.device.type == "cuda"
    assert torch.allclose(a, b.cpu(), atol=1e-5)
    exact = AugmentConfig(rotation=0, shear=0, zoom=0)  # pure translations and flips: exact
    a = augment(x, exact, torch.Generator().manual_seed(3))
    b = augment(x.cuda(), exact, torch.Generator().manual_seed(3))
    assert torch.equal(a, b.cpu())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_training_learns_and_checkpoints_load_on_cpu(tmp_path):
    x, y = _stripes_and_spots(40, 48, seed=0)
    vx, vy = _stripes_and_spots(20, 48, seed=1)
    result = train(x, y, vx, vy, ["stripes", "spots"], tmp_path,
                   _tiny_config(epochs=5, batch_size=10, device="cuda"), progress=False)
    assert result["best_val_accuracy"] >= 0.9
    state = _state(tmp_path / "last.pt")
    assert all(v.device.type == "cpu" for v in state["model"].values())
    model, classes, _ = load_model(tmp_path / "best.pt")
    assert evaluate(model, vx, vy, classes)["accuracy"] == pytest.approx(
        result["best_val_accuracy"])


def test_symmetrized_prediction_is_invariant_under_square_symmetries(tmp_path):
    """The D4-averaged probabilities of a frame and of its rotated/mirrored copies agree (to
    rounding); a single view does not, for an untrained (asymmetric) network."""
    torch.manual_seed(0)
    model = build_model("2d", 3, 4, None)
    x = np.random.default_rng(0).random((3, 3, 48, 48), dtype=np.float32)
    ref = predict(model, x)
    assert ref.shape == (3, 4) and np.allclose(ref.sum(axis=1), 1, atol=1e-5)
    for flip in (False, True):
        for turns in range(4):
            y = np.rot90(x[..., ::-1] if flip else x, turns, axes=(-2, -1)).copy()
            assert np.allclose(predict(model, y), ref, atol=1e-5)
    single = predict(model, x, symmetrize=False)
    turned = predict(model, np.rot90(x, 1, axes=(-2, -1)).copy(), symmetrize=False)
    assert np.abs(single - turned).max() > 1e-4
    labels = np.array([0, 1, 2])
    scores = evaluate(model, x, labels, ["a", "b", "c", "d"])
    assert scores["symmetrized"] and scores["accuracy"] == np.mean(ref.argmax(1) == labels)
    assert scores["single_view_accuracy"] == np.mean(single.argmax(1) == labels)
    assert scores["loss"] == pytest.approx(-np.log(ref[[0, 1, 2], labels]).mean(), rel=1e-5)


# --------------------------------------------------------------------------- non-finite data


def test_training_refuses_a_nan_sample_naming_it_and_writes_nothing(tmp_path):
    from rdlab.errors import DataError

    x, y = _stripes_and_spots(8, 48, seed=10)
    x[5, 1, 3, 4] = np.nan
    points = np.column_stack([np.linspace(0.04, 0.06, 8), np.linspace(0.01, 0.05, 8)])
    with pytest.raises(DataError, match=r"training sample 5 \(k = 0\.0542857, f = 0\.0385714\)"):
        train(x, y, x[:4], y[:4], ["a", "b"], tmp_path / "m", _tiny_config(epochs=1),
              progress=False, train_points=points)
    assert not (tmp_path / "m").exists()
    # read batch by batch (lazy inputs), the batch holding it stops the epoch
    xr = pytest.importorskip("xarray")
    lazy = xr.DataArray(x, dims=("sample", "channel", "y", "x")).chunk({"sample": 2})
    good = xr.DataArray(x[:4], dims=("sample", "channel", "y", "x"))
    with pytest.raises(DataError, match="training sample 5"):
        train(lazy, y, good, y[:4], ["a", "b"], tmp_path / "lazy",
              _tiny_config(epochs=1, in_memory=False), progress=False)
    assert not (tmp_path / "lazy" / "best.pt").exists()
    assert not (tmp_path / "lazy" / "last.pt").exists()


def test_prediction_refuses_non_finite_frames():
    from rdlab.errors import DataError

    model = PatternCNN(3, 2)
    x, _ = _stripes_and_spots(3, 48, seed=11)
    x[2, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="input sample 2"):
        predict(model, x)


def test_a_non_finite_loss_stops_training_with_the_last_good_epoch_kept(tmp_path,
                                                                      monkeypatch):
    """The loss turns NaN in epoch 2: training stops naming the batch's samples; best.pt
    and last.pt stay those of epoch 1 (finite), never NaN weights."""
    import rdlab.classify.training as training
    from rdlab.errors import SimulationError

    x, y = _stripes_and_spots(8, 48, seed=12)
    calls = []
    original = training.F.cross_entropy

    def nan_in_epoch_two(*args, **kwargs):
        calls.append(1)
        loss = original(*args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss  # 2 batches per epoch

    monkeypatch.setattr(training.F, "cross_entropy", nan_in_epoch_two)
    out = tmp_path / "m"
    with pytest.raises(SimulationError, match=r"epoch 2.*training samples .*is nan"):
        train(x, y, x[:4], y[:4], ["a", "b"], out, _tiny_config(epochs=3, batch_size=4),
              progress=False)
    state = _state(out / "last.pt")
    assert state["epoch"] == 1
    model, _, meta = load_model(out / "best.pt")
    assert meta["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in model.state_dict().values()
               if t.is_floating_point())
    assert len(read_history(out / "history.jsonl")) == 1


def test_model_folder_must_be_a_model_folder(tmp_path):
    from rdlab.errors import OutputError

    x, y = _stripes_and_spots(4, 48, seed=13)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="file"):
        train(x, y, x, y, ["a", "b"], tmp_path / "file", _tiny_config(epochs=1),
              progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="non-empty"):
        train(x, y, x, y, ["a", "b"], tmp_path / "other", _tiny_config(epochs=1),
              progress=False)
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------- the shipped 3-D model


def test_3d_channels_last_layout_changes_nothing_but_rounding():
    torch.manual_seed(3)
    model = PatternCNN3D(n_frames=10, n_classes=4).eval()
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    plain = PatternCNN3D(n_frames=10, n_classes=4).to(memory_format=torch.contiguous_format)
    plain.load_state_dict(model.state_dict())
    plain.eval()
    x = torch.rand(3, 10, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-6)


def test_bundled_3d_model_reads_stacks_and_knows_the_homogeneous_states():
    """``bundled-3d``: PatternCNN3D on the paper's 10-frame stacks; the two homogeneous steady
    states of Gray–Scott are its classes H (U = 1) and L (the low state of the training point
    (k, f) = (0.055, 0.035): u(1 − u) = (f + k)²/f)."""
    from rdlab.classify.evaluation import resolve_model_path
    from rdlab.classify.pattern_runs import DATA_SETTINGS_KEY, STACK_STEPS

    model, classes, meta = load_model(resolve_model_path("bundled-3d"))
    assert isinstance(model, PatternCNN3D) and model.n_frames == 10 and len(classes) == 15
    assert tuple(meta[DATA_SETTINGS_KEY]["snapshot_steps"]) == STACK_STEPS
    k, f = 0.055, 0.035
    low = (1 - math.sqrt(1 - 4 * (f + k) ** 2 / f)) / 2
    stacks = np.stack([np.full((10, 128, 128), 1.0, np.float32),
                       np.full((10, 128, 128), low, np.float32)])
    probs = predict(model, stacks)
    assert [classes[i] for i in probs.argmax(1)] == ["H", "L"]
    assert probs.max(1).min() > 0.5


def test_an_unknown_bundled_model_is_named():
    from rdlab.classify.evaluation import bundled_model_path

    with pytest.raises(ParameterError, match="bundled-4d"):
        bundled_model_path("bundled-4d")
