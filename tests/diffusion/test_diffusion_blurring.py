"""Issue item 8: blurring diffusion against the paper's formulas, its Gaussian limit, and the closed-form posterior.

The reference implementation here is written from Hoogeboom & Salimans (2023), sec. 3 and appendix A,
with numpy and scipy's DCT: it shares no code with cardiobench.diffusion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from cardiobench.diffusion import BlurringProcess, DDIMSampler, DDPMSampler, GaussianProcess, dct
from cardiobench.errors import CardiobenchError


def paper_alpha_sigma(t: float, size: int, sigma_blur_max: float, min_scale=0.001, logsnr_min=-10.0,
                      logsnr_max=10.0):
    """(alpha (H, W), sigma) at continuous time t, transcribed from the paper's pseudo-code."""
    freqs = np.pi * np.linspace(0, size - 1, size) / size
    labda = freqs[:, None] ** 2 + freqs[None, :] ** 2
    sigma_blur = sigma_blur_max * np.sin(t * np.pi / 2) ** 2
    dissipation_time = sigma_blur**2 / 2
    scaling = np.exp(-labda * dissipation_time) * (1 - min_scale) + min_scale
    limit_max = np.arctan(np.exp(-0.5 * logsnr_max))
    limit_min = np.arctan(np.exp(-0.5 * logsnr_min)) - limit_max
    logsnr = -2 * np.log(np.tan(limit_min * t + limit_max))
    a = np.sqrt(1 / (1 + np.exp(-logsnr)))
    sigma = np.sqrt(1 / (1 + np.exp(logsnr)))
    return a * scaling, sigma


def dctn(x):
    return scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))


def idctn(u):
    return scipy.fft.idctn(u, type=2, norm="ortho", axes=(-2, -1))


@pytest.mark.parametrize("sigma_blur_max", [None, 0.0, 5.0])
def test_alpha_sigma_follow_the_paper(sigma_blur_max):
    T, size = 50, 8
    proc = BlurringProcess(T, image_size=size, sigma_blur_max=sigma_blur_max)
    sbm = 20 * size / 64 if sigma_blur_max is None else sigma_blur_max
    assert proc.sigma_blur_max == sbm
    t = torch.arange(T)
    alpha = proc.alpha(t, dtype=torch.float64)
    sigma = proc.sigma(t, dtype=torch.float64)
    for i in range(T):
        a_ref, s_ref = paper_alpha_sigma((i + 1) / T, size, sbm)  # integer timestep i is t = (i + 1) / T
        np.testing.assert_allclose(alpha[i, 0].numpy(), a_ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(float(sigma[i]), s_ref, rtol=1e-12)
    # timestep -1 is the data
    assert float(proc.alpha(torch.tensor([-1]), dtype=torch.float64).min()) == 1.0
    assert float(proc.sigma(torch.tensor([-1]), dtype=torch.float64)) == 0.0


def test_default_blur_scales_with_image_size():
    assert BlurringProcess(image_size=64).sigma_blur_max == 20.0
    assert BlurringProcess(image_size=32).sigma_blur_max == 10.0
    assert BlurringProcess(image_size=128).sigma_blur_max == 40.0
    # the same fraction of the image is blurred: a pattern of k half-cycles across the image (DCT index k at
    # any size) is attenuated identically at 64x64 and 32x32
    d64 = BlurringProcess(100, image_size=64).frequency_scaling(torch.tensor([60]), dtype=torch.float64)
    d32 = BlurringProcess(100, image_size=32).frequency_scaling(torch.tensor([60]), dtype=torch.float64)
    torch.testing.assert_close(d64[0, 0, :32, :32], d32[0, 0], rtol=1e-12, atol=0)


def test_q_sample_is_blur_plus_noise():
    size, T = 8, 20
    proc = BlurringProcess(T, image_size=size)
    g = np.random.default_rng(0)
    x0 = g.uniform(-1, 1, (3, 2, size, size))
    noise = g.standard_normal((3, 2, size, size))
    t = torch.tensor([0, 9, 19])
    x_t = proc.q_sample(torch.from_numpy(x0), t, torch.from_numpy(noise)).numpy()
    for b, i in enumerate(t.tolist()):
        a_ref, s_ref = paper_alpha_sigma((i + 1) / T, size, proc.sigma_blur_max)
        expected = idctn(a_ref * dctn(x0[b]) + s_ref * dctn(noise[b]))
        np.testing.assert_allclose(x_t[b], expected, atol=1e-12)


def test_without_blur_it_is_cosine_logsnr_gaussian_diffusion():
    """sigma_B,max = 0: d_t = 1, alpha_t = a_t is a scalar, the process is Gaussian DDPM with
    abar_i = sigmoid(logSNR((i + 1) / T)) (our gaussian ``cosine_logsnr`` schedule)."""
    T, size = 40, 8
    blur = BlurringProcess(T, image_size=size, sigma_blur_max=0.0)
    gauss = GaussianProcess(T, beta_schedule="cosine_logsnr")
    t = torch.arange(-1, T)
    torch.testing.assert_close(blur.alpha(t, dtype=torch.float64).amax((-2, -1)),
                               gauss.alpha(t, dtype=torch.float64).amax((-2, -1)), rtol=1e-12, atol=0)
    torch.testing.assert_close(blur.alpha(t, dtype=torch.float64).amin((-2, -1)),
                               gauss.alpha(t, dtype=torch.float64).amax((-2, -1)), rtol=1e-12, atol=0)
    torch.testing.assert_close(blur.sigma(t, dtype=torch.float64), gauss.sigma(t, dtype=torch.float64))
    x0 = torch.rand(4, 2, size, size, dtype=torch.float64) * 2 - 1
    noise = torch.randn(4, 2, size, size, dtype=torch.float64)
    tt = torch.tensor([0, 5, 20, 39])
    torch.testing.assert_close(blur.q_sample(x0, tt, noise), gauss.q_sample(x0, tt, noise), atol=1e-12, rtol=0)


@pytest.mark.parametrize("ptype", ["epsilon", "v", "x0"])
@pytest.mark.parametrize("make", [lambda p: DDPMSampler(p, 20, clip_x0=True),
                                  lambda p: DDIMSampler(p, 10, eta=0.5, timestep_spacing="trailing")],
                         ids=["ddpm", "ddim"])
def test_without_blur_samplers_follow_the_same_trajectory(ptype, make):
    """The same network and noise give the same samples through the DCT path as through the identity path."""
    T, size, shape = 100, 8, (3, 2, 8, 8)
    blur = make(BlurringProcess(T, image_size=size, sigma_blur_max=0.0, prediction_type=ptype))
    gauss = make(GaussianProcess(T, beta_schedule="cosine_logsnr", prediction_type=ptype))
    assert blur.timesteps.tolist() == gauss.timesteps.tolist()

    def net(x, t):
        return torch.tanh(1.3 * x) + 0.01 * t.to(x.dtype).reshape(-1, 1, 1, 1)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    y = x.clone()
    for i, t in enumerate(gauss.timesteps.tolist()):
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        tb = torch.full((shape[0],), t)
        a = gauss.step(net(x, tb), i, x, noise=z)
        b = blur.step(net(y, tb), i, y, noise=dct.dct2(z))  # step noise is white noise in the process's basis
        torch.testing.assert_close(b.x0_pred, a.x0_pred, atol=1e-9, rtol=0)
        torch.testing.assert_close(b.x_t, a.x_t, atol=1e-9, rtol=0)
        x, y = a.x_t, b.x_t


@pytest.mark.parametrize("make_process", [
    lambda: BlurringProcess(50, image_size=8, prediction_type="epsilon"),
    lambda: BlurringProcess(50, image_size=8, sigma_blur_max=8.0, prediction_type="v"),
    lambda: GaussianProcess(50, prediction_type="epsilon"),
    lambda: GaussianProcess(50, beta_schedule="linear", prediction_type="x0"),
], ids=["blur-eps", "strong-blur-v", "gauss-eps", "gauss-linear-x0"])
def test_ddpm_step_with_perfect_prediction_is_the_closed_form_posterior_mean(make_process):
    """With the true network output and zero step noise, a DDPM step lands on the posterior mean
    1/sigma2_den = 1/sigma_s^2 + alpha_ts^2/sigma2_ts, mu = sigma2_den (alpha_ts/sigma2_ts u_t + alpha_s/sigma_s^2 u_0)
    (the paper's form, per frequency), and its noise level is sqrt(sigma2_den)."""
    proc = make_process()
    sampler = DDPMSampler(proc, 10, clip_x0=False)
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (2, 1, 8, 8))
    eps = rng.standard_normal((2, 1, 8, 8))
    T = proc.num_timesteps
    for i, (t, s) in enumerate(zip(sampler.timesteps.tolist(), sampler.prev_timesteps.tolist(), strict=True)):
        if isinstance(proc, BlurringProcess):
            a_t, s_t = paper_alpha_sigma((t + 1) / T, 8, proc.sigma_blur_max)
            a_s, s_s = paper_alpha_sigma((s + 1) / T, 8, proc.sigma_blur_max) if s >= 0 else (1.0, 0.0)
            fwd, inv = dctn, idctn
        else:
            abar = proc.alphas_cumprod.numpy()
            a_t, s_t = math.sqrt(abar[t]), math.sqrt(1 - abar[t])
            a_s, s_s = (math.sqrt(abar[s]), math.sqrt(1 - abar[s])) if s >= 0 else (1.0, 0.0)
            fwd = inv = np.asarray
        u0, u_eps = fwd(x0), fwd(eps)
        u_t = a_t * u0 + s_t * u_eps
        x_t = inv(u_t)
        target = proc.training_target(torch.from_numpy(x0), torch.from_numpy(eps), torch.full((2,), t))
        out = sampler.step(target, i, torch.from_numpy(x_t), noise=torch.zeros(2, 1, 8, 8, dtype=torch.float64))
        if s < 0:  # the last step returns the data estimate itself
            np.testing.assert_allclose(out.x_t.numpy(), x0, atol=1e-9)
            continue
        a_ts = a_t / a_s
        sigma2_ts = s_t**2 - a_ts**2 * s_s**2
        sigma2_den = 1 / (1 / s_s**2 + a_ts**2 / sigma2_ts)
        mu = sigma2_den * (a_ts / sigma2_ts * u_t + a_s / s_s**2 * u0)
        np.testing.assert_allclose(out.x_t.numpy(), inv(mu), atol=1e-9)
        np.testing.assert_allclose(out.x0_pred.numpy(), x0, atol=1e-9)
        std = sampler.coefficients[i][5].numpy()
        np.testing.assert_allclose(np.broadcast_to(std, (8, 8)) if std.ndim < 3 else std[0],
                                   np.broadcast_to(np.sqrt(sigma2_den), (8, 8)), rtol=1e-9)


def test_wrong_image_size_is_a_clear_error():
    proc = BlurringProcess(10, image_size=16)
    with pytest.raises(CardiobenchError, match="16x16"):
        proc.q_sample(torch.zeros(1, 1, 8, 8), torch.tensor([3]), torch.zeros(1, 1, 8, 8))
    with pytest.raises(CardiobenchError, match="sigma_blur_max"):
        BlurringProcess(sigma_blur_max=-1)
