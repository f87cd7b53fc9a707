"""Blurring diffusion on volumes: the forward blur is the heat equation in physical space (anisotropic spacing).

The reference is independent of cardiobench's DCT: scipy's Gaussian filter with reflecting boundaries, whose
symmetric extension is the DCT-II's, applied with the per-axis standard deviation ``sigma / s_a`` in voxels.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from cardiobench.diffusion import (
    BlurringProcess,
    DDIMSampler,
    DDPMSampler,
    DPMSolverSampler,
    GaussianProcess,
    dct,
    per_item,
)
from cardiobench.errors import CardiobenchError

#: a volume with three different axis lengths, so that a swapped axis cannot go unnoticed
SPATIAL = (8, 20, 24)
SPACING = [2.5, 1.0, 1.0]
SIGMA = 5.0  # in-plane pixels: 2 voxels along D, 5 in-plane


def forward_blur(proc: BlurringProcess, x0: np.ndarray) -> np.ndarray:
    """The blur ``G x0`` the process applies at t = 1, read from ``q_sample`` with zero noise.

    At t = 1 (timestep T-1) ``sigma_B = sigma_blur_max``; ``x_t = a_t ((1 - d_min) G x0 + d_min x0)``, with ``a_t`` the
    DC coefficient's alpha (lambda = 0, so d = 1 there).
    """
    t = torch.tensor([proc.num_timesteps - 1])
    x = torch.from_numpy(x0)[None, None]
    x_t = proc.q_sample(x, t, torch.zeros_like(x))[0, 0].numpy()
    a_t = float(proc.alpha(t, dtype=torch.float64).flatten()[0])
    return (x_t / a_t - proc.min_scale * x0) / (1 - proc.min_scale)


def gaussian_reference(x0: np.ndarray, sigma_voxels: tuple[float, ...]) -> np.ndarray:
    # truncate=8: the kernel's cut-off tail is ~1e-15; mode="reflect" repeats the edge sample (d c b a | a b c d)
    return scipy.ndimage.gaussian_filter(x0, sigma=sigma_voxels, mode="reflect", truncate=8.0)


def test_forward_blur_is_a_gaussian_with_per_axis_std_sigma_over_spacing():
    proc = BlurringProcess(50, image_size=list(SPATIAL), sigma_blur_max=SIGMA, spacing=SPACING)
    x0 = np.random.default_rng(0).uniform(-1, 1, SPATIAL)
    ours = forward_blur(proc, x0)
    ref = gaussian_reference(x0, tuple(SIGMA / s for s in SPACING))  # (2, 5, 5) voxels
    # the sampled Gaussian's multipliers differ from exp(-lambda sigma^2 / 2) by ~exp(-2 pi^2 2^2) (aliasing)
    np.testing.assert_allclose(ours, ref, atol=1e-10, rtol=0)
    # negative controls: spacing on the wrong axis, or none (the isotropic blur smears the slices 2.5x further)
    scale = float(np.abs(ref - ref.mean()).max())
    for wrong in ((SIGMA, SIGMA, SIGMA / 2.5), (SIGMA, SIGMA, SIGMA)):
        assert float(np.abs(ours - gaussian_reference(x0, wrong)).max()) > 0.05 * scale, wrong


def test_a_volume_constant_along_d_blurs_like_its_slices():
    """A volume that does not vary across slices holds only k_D = 0 coefficients, whose frequencies are the 2-D ones:
    each slice then follows the 2-D process exactly, whatever the spacing along D."""
    proc3 = BlurringProcess(40, image_size=[4, 8, 8], spacing=[4.0, 1.0, 1.0], prediction_type="v")
    proc2 = BlurringProcess(40, image_size=8, prediction_type="v")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 2, 1, 8, 8, generator=g, dtype=torch.float64).expand(3, 2, 4, 8, 8) * 2 - 1
    noise = torch.randn(3, 2, 1, 8, 8, generator=g, dtype=torch.float64).expand(3, 2, 4, 8, 8)
    t = torch.tensor([0, 17, 39])
    for d in range(4):
        torch.testing.assert_close(proc3.q_sample(x0, t, noise)[:, :, d],
                                   proc2.q_sample(x0[:, :, 0], t, noise[:, :, 0]), atol=1e-12, rtol=0)
        torch.testing.assert_close(proc3.training_target(x0, noise, t)[:, :, d],
                                   proc2.training_target(x0[:, :, 0], noise[:, :, 0], t), atol=1e-12, rtol=0)


def test_shapes_defaults_and_options():
    proc = BlurringProcess(10, image_size=[8, 32, 32], spacing=[4, 1, 1])
    assert proc.sigma_blur_max == 10.0, "the default blur follows the in-plane size: 20 * H / 64"
    assert proc.spatial == (8, 32, 32) and proc.spacing == [4.0, 1.0, 1.0]
    t = torch.tensor([-1, 0, 9])
    assert proc.alpha(t).shape == (3, 1, 8, 32, 32) and proc.sigma(t).shape == (3, 1, 1, 1, 1)
    assert proc.frequency_scaling(t).shape == (3, 1, 8, 32, 32)
    a, s = proc.alpha_sigma(5)
    assert a.shape == (1, 8, 32, 32) and s.shape == ()
    # isotropic spacing is no spacing: the same process and the same config (hash)
    assert BlurringProcess(10, image_size=[8, 32, 32], spacing=[1, 1, 1]).config() == BlurringProcess(
        10, image_size=[8, 32, 32]).config()
    for bad in ([4, 1], [0, 1, 1], [-4, 1, 1], "4"):
        with pytest.raises(CardiobenchError, match="spacing"):
            BlurringProcess(10, image_size=[8, 32, 32], spacing=bad)
    for bad in ([8], [2, 8, 32, 32], [8, 0, 32], [8, 32.5, 32]):
        with pytest.raises(CardiobenchError, match="image_size"):
            BlurringProcess(10, image_size=bad)


def test_wrong_shapes_are_a_clear_error_naming_the_fix():
    volume = BlurringProcess(10, image_size=[4, 16, 16])
    with pytest.raises(CardiobenchError, match=r"\(D, H, W\) = \(4, 16, 16\).*set the process option image_size"):
        volume.q_sample(torch.zeros(1, 1, 16, 16), torch.tensor([3]), torch.zeros(1, 1, 16, 16))
    with pytest.raises(CardiobenchError, match=r"4x16x16 volumes.*got shape \(1, 1, 8, 16, 16\)"):
        volume.to_basis(torch.zeros(1, 1, 8, 16, 16))
    # a 2-D process refuses a volume whose slices have its size (it would blur each slice alone)
    with pytest.raises(CardiobenchError, match=r"16x16 images.*\[D, H, W\] for volumes"):
        BlurringProcess(10, image_size=16).to_basis(torch.zeros(1, 1, 4, 16, 16))


def test_per_item_aligns_per_timestep_values_with_any_rank():
    x = torch.zeros(3, 2, 4, 8, 8)
    a = GaussianProcess(10).alpha(torch.tensor([0, 4, 9]))  # (3, 1, 1, 1): a schedule without a shape
    assert per_item(a, x).shape == (3, 1, 1, 1, 1)
    assert (per_item(a, x) * x).shape == x.shape
    assert per_item(torch.ones(3), x).shape == (3, 1, 1, 1, 1)
    freq = BlurringProcess(10, image_size=[4, 8, 8]).alpha(torch.tensor([0, 4, 9]))
    assert per_item(freq, x) is freq
    with pytest.raises(ValueError, match="more axes"):
        per_item(torch.zeros(3, 1, 1, 1, 1, 1), x)


@pytest.mark.parametrize("make", [lambda p: DDPMSampler(p, 10), lambda p: DDIMSampler(p, 10, eta=0.5),
                                  lambda p: DPMSolverSampler(p, 10)], ids=["ddpm", "ddim", "dpm-solver++"])
def test_without_blur_a_volume_follows_the_gaussian_trajectory(make):
    """sigma_blur_max = 0 on a volume: the 3-D DCT path (per-coefficient plan) gives the trajectory of the Gaussian
    cosine-logSNR process (scalar fast path), step noise drawn in the basis; spacing changes nothing without blur."""
    shape = (2, 2, 4, 8, 8)
    blur = make(BlurringProcess(60, image_size=[4, 8, 8], sigma_blur_max=0.0, spacing=[3.0, 1.0, 1.0],
                                prediction_type="v"))
    gauss = make(GaussianProcess(60, beta_schedule="cosine_logsnr", prediction_type="v"))

    def net(x, t):
        return torch.tanh(1.3 * x) + 0.01 * t.to(x.dtype).reshape(-1, 1, 1, 1, 1)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    y = x.clone()
    for i, t in enumerate(gauss.timesteps.tolist()):
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        tb = torch.full((shape[0],), t)
        a = gauss.step(net(x, tb), i, x, noise=z)
        b = blur.step(net(y, tb), i, y, noise=dct.dctn(z, dims=3))
        torch.testing.assert_close(b.x_t, a.x_t, atol=1e-9, rtol=0)
        torch.testing.assert_close(b.x0_pred, a.x0_pred, atol=1e-9, rtol=0)
        x, y = a.x_t, b.x_t
