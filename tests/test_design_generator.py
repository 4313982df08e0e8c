"""Generator and encoder (Dense-RDN appendix A.4): shapes, bounds, the blur's transfer
function, batch independence, placement in a larger domain, parameter counts."""

import numpy as np
import pytest
import torch

from rdlab.design.generator import (
    Encoder,
    Generator,
    gaussian_kernel,
    periodic_blur,
    sample_z,
    widths,
)
from rdlab.errors import ParameterError
from rdlab.simulate import torch_engine as te


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_widths_are_the_codes():
    assert widths(5, 64) == [256, 205, 155, 105, 55, 5]
    assert widths(5, 32) == [256, 193, 130, 67, 5]
    assert widths(4, 2) == [4]


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_dtype(size):
    torch.manual_seed(0)
    g = Generator(5, size, 16)
    z = sample_z(3, 16, seeded())
    X = g(z)
    assert X.shape == (3, 5, size, size) and X.dtype == torch.float32
    assert g.patch(z).shape == (3, 5, size, size)
    e = Encoder(5, size, 16)
    logits = e(X)
    assert logits.shape == (3, 16) and logits.dtype == torch.float32
    logits.sum().backward()  # gradients reach the generator through the encoder's input
    assert all(p.grad is not None for p in g.parameters())


def test_parameter_counts():
    """ConvTranspose2d/Conv2d(k = 4): in·out·16 weights + out biases; GroupNorm: 2 per
    channel; the generator's output scale: 1."""
    g, e = Generator(5, 64, 64), Encoder(5, 64, 64)
    convs = 64 * 256 * 16 + 256 * 205 * 16 + 205 * 155 * 16 + 155 * 105 * 16 + 105 * 55 * 16 \
        + 55 * 5 * 16
    assert convs == 1_967_424
    norms = 2 * (256 + 205 + 155 + 105 + 55)
    assert sum(p.numel() for p in g.parameters()) == convs + 781 + norms + 1 == 1_969_758
    assert e.channels == [5, 55, 105, 155, 205, 256, 64]
    assert sum(p.numel() for p in e.parameters()) == convs + 840 + norms == 1_969_816
    assert sum(p.numel() for p in Generator(5, 32, 24, norm="none").parameters()) == (
        24 * 256 * 16 + 256 * 193 * 16 + 193 * 130 * 16 + 130 * 67 * 16 + 67 * 5 * 16
        + (256 + 193 + 130 + 67 + 5) + 1)


def test_bounds_hold_for_extreme_weights():
    torch.manual_seed(1)
    g = Generator(5, 32, 8, pad_to=(40, 48), learn_background=True)
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(1e3 * torch.randn_like(p))
        g.scale.fill_(1e4)
        g.background.copy_(torch.tensor([-5.0, 0.0, 3.0, 50.0, 1e6]))
    with torch.no_grad():
        X = g(sample_z(4, 8, seeded(2)))
    assert float(X.min()) >= 0.0 and float(X.max()) <= 10.0
    assert float(X.max()) > 9.9  # saturated tanh reaches the bound
    with torch.no_grad():
        g.scale.fill_(-3.0)
    with torch.no_grad():
        assert float(g.patch(sample_z(2, 8, seeded(3))).max()) <= 0.1 + 1e-6  # s ≥ 0.1
    g.project_()
    assert g.scale.item() == pytest.approx(0.1) and g.background.detach().tolist() == [
        0.0, 0.0, 3.0, 10.0, 10.0]


def test_scale_sets_the_range():
    torch.manual_seed(2)
    g = Generator(3, 16, 8, scale=2.5)
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(100.0)
        g.scale.fill_(2.5)
    with torch.no_grad():
        c = g.patch(sample_z(8, 8, seeded(4)))
    assert float(c.min()) >= 0.0 and float(c.max()) <= 2.5
    assert float(c.max()) > 2.4 and float(c.min()) < 0.1


def test_blur_is_the_periodic_gaussian_transfer_function():
    """In Fourier space the output is the unblurred field times K(ky)·K(kx) with
    K(k) = w0 + 2·w1·cos k (w = the normalised σ = 1, 3×3 Gaussian)."""
    torch.manual_seed(3)
    g = Generator(5, 32, 16, dtype=torch.float64)
    z = sample_z(2, 16, seeded(5), dtype=torch.float64)
    raw, out = g.unblurred(z), g(z)
    w = gaussian_kernel(1.0, 1, torch.float64)
    assert w.tolist() == pytest.approx(
        [np.exp(-0.5) / (1 + 2 * np.exp(-0.5)), 1 / (1 + 2 * np.exp(-0.5)),
         np.exp(-0.5) / (1 + 2 * np.exp(-0.5))])
    k = 2 * np.pi * np.fft.fftfreq(32)
    K = float(w[1]) + 2 * float(w[0]) * np.cos(k)
    expected = np.fft.fft2(raw.detach().numpy()) * K[:, None] * K[None, :]
    np.testing.assert_allclose(np.fft.fft2(out.detach().numpy()), expected, rtol=0,
                               atol=1e-10 * np.abs(expected).max())
    # the generated field is smooth: the Nyquist mode is damped by K(π)² ≈ 0.0093
    assert abs(K[16]) ** 2 < 0.01


def test_wider_blur_is_the_engine_smoothing():
    x = torch.rand(2, 3, 12, 20, generator=seeded(6), dtype=torch.float64)
    for sigma in (1.0, 1.5):
        radius = int(np.ceil(3 * sigma))
        got = periodic_blur(x, gaussian_kernel(sigma, radius, torch.float64))
        torch.testing.assert_close(got, te.smooth_periodic(x, sigma), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_default_generator_is_batch_independent(mode):
    torch.manual_seed(4)
    g = Generator(5, 32, 16)
    getattr(g, mode)()
    z = sample_z(4, 16, seeded(7))
    together = g(z)
    for i in range(4):
        torch.testing.assert_close(g(z[i:i + 1])[0], together[i], rtol=1e-5, atol=1e-6)
    e = Encoder(5, 32, 16)
    getattr(e, mode)()
    torch.testing.assert_close(e(together[:1])[0], e(together)[0], rtol=1e-5, atol=1e-5)


def test_batch_norm_option_depends_on_the_batch_as_the_code():
    torch.manual_seed(5)
    g = Generator(5, 16, 16, norm="batch").eval()
    z = sample_z(4, 16, seeded(8))
    assert not torch.allclose(g(z[:2])[0], g(z)[0], atol=1e-4)


def test_pad_to_places_the_patch_in_zero_surroundings():
    torch.manual_seed(6)
    g = Generator(5, 32, 24, pad_to=(48, 96))
    assert g.domain == (48, 96)
    ys, xs = g.patch_slices
    assert (ys.start, ys.stop, xs.start, xs.stop) == (8, 40, 32, 64)
    z = sample_z(2, 24, seeded(9))
    with torch.no_grad():
        raw, X = g.unblurred(z), g(z)
    assert X.shape == (2, 5, 48, 96)
    torch.testing.assert_close(raw[:, :, ys, xs], g.patch(z).detach(), rtol=0, atol=0)
    outside = torch.ones(48, 96, dtype=torch.bool)
    outside[ys, xs] = False
    assert float(raw[..., outside].abs().max()) == 0.0
    # the blur spreads the patch one cell into the surroundings, no further
    ring = torch.zeros(48, 96, dtype=torch.bool)
    ring[ys.start - 1:ys.stop + 1, xs.start - 1:xs.stop + 1] = True
    assert float(X[..., ~ring].abs().max()) == 0.0
    assert float(X[..., ring & outside].min()) > 0.0


def test_learned_background_fills_only_the_surroundings():
    g = Generator(2, 8, 4, pad_to=(12, 12), learn_background=True, dtype=torch.float64)
    with torch.no_grad():
        g.background.copy_(torch.tensor([0.5, 2.0]))
    z = sample_z(1, 4, seeded(10), dtype=torch.float64)
    raw = g.unblurred(z)
    ys, xs = g.patch_slices
    torch.testing.assert_close(raw[:, :, ys, xs], g.patch(z))
    assert raw[0, 0, 0, 0].item() == 0.5 and raw[0, 1, 11, 5].item() == 2.0


def test_sample_z_is_binary_and_seeded():
    z = sample_z(64, 32, seeded(11))
    assert z.shape == (64, 32) and z.dtype == torch.float32
    assert set(z.unique().tolist()) == {0.0, 1.0}
    assert 0.4 < float(z.mean()) < 0.6
    assert torch.equal(z, sample_z(64, 32, seeded(11)))
    assert not torch.equal(z, sample_z(64, 32, seeded(12)))


def test_bad_arguments_are_refused():
    with pytest.raises(ParameterError, match="power of two"):
        Generator(5, 48, 8)
    with pytest.raises(ParameterError, match="'group'"):
        Generator(5, 32, 8, norm="group")
    with pytest.raises(ParameterError, match=r"expected \(batch, 8\)"):
        Generator(5, 8, 8)(torch.zeros(2, 7))
    with pytest.raises(ParameterError, match="smaller than"):
        Generator(5, 32, 8, pad_to=(16, 64))
    with pytest.raises(ParameterError, match="scale"):
        Generator(5, 32, 8, scale=20.0)
    with pytest.raises(ParameterError, match=r"expected \(batch, 5, 16, 16\)"):
        Encoder(5, 16, 8)(torch.zeros(1, 5, 32, 32))
    with pytest.raises(ParameterError, match="z_bits"):
        sample_z(2, 0)
