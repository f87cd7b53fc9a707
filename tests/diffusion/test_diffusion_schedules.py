"""Schedules and inference timesteps, checked against diffusers (test-only dependency) and the papers."""

import math

import numpy as np
import pytest
import torch

from cardiobench.diffusion import schedules
from cardiobench.diffusion.gaussian import GaussianProcess
from cardiobench.errors import CardiobenchError

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("schedule,theirs", [("cosine", "squaredcos_cap_v2"), ("linear", "linear")])
@pytest.mark.parametrize("num_timesteps", [1000, 100])
def test_alphas_cumprod_equal_diffusers_bit_for_bit(schedule, theirs, num_timesteps):
    ref = diffusers.DDPMScheduler(num_train_timesteps=num_timesteps, beta_schedule=theirs)
    proc = GaussianProcess(num_timesteps, beta_schedule=schedule)
    assert torch.equal(proc.alphas_cumprod.float(), ref.alphas_cumprod)
    assert torch.equal(proc.alphas_cumprod, ref.alphas_cumprod.double())


def test_cosine_schedule_is_nichol_dhariwal():
    """abar_t = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2), betas clipped at 0.999 (eq. 17)."""
    T, s = 1000, 0.008
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    abar = GaussianProcess(T).alphas_cumprod
    expected = torch.tensor([f[t + 1] / f[0] for t in range(T)], dtype=torch.float64)
    # identical up to float32 rounding, except at the end where beta is clipped at 0.999
    torch.testing.assert_close(abar[:-1], expected[:-1], rtol=2e-5, atol=1e-7)
    assert float(abar[-1]) == pytest.approx(float(abar[-2]) * 0.001, rel=1e-3)


def test_linear_schedule_is_ho_et_al():
    betas = schedules.linear_betas(1000)
    assert float(betas[0]) == pytest.approx(1e-4) and float(betas[-1]) == pytest.approx(0.02)
    abar = GaussianProcess(1000, beta_schedule="linear").alphas_cumprod
    assert float(abar[-1]) == pytest.approx(np.prod(1 - np.linspace(1e-4, 0.02, 1000)), rel=1e-4)


def test_cosine_logsnr_schedule():
    """logSNR(t) = -2 log tan(c_min t + c_max) runs from logsnr_max at t = 0 to logsnr_min at t = 1."""
    assert schedules.logsnr_cosine(0.0) == pytest.approx(10.0)
    assert schedules.logsnr_cosine(1.0) == pytest.approx(-10.0)
    assert schedules.logsnr_cosine(0.5) == pytest.approx(0.0, abs=1e-12)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    ends = schedules.logsnr_cosine(t, -6, 4)[[0, -1]]
    torch.testing.assert_close(ends, torch.tensor([4.0, -6.0], dtype=torch.float64))
    abar = schedules.cosine_logsnr_alphas_cumprod(10)
    torch.testing.assert_close(abar, torch.sigmoid(schedules.logsnr_cosine(t[1:])))


@pytest.mark.parametrize("spacing", schedules.TIMESTEP_SPACINGS)
@pytest.mark.parametrize("num_timesteps", [1000, 100])
def test_inference_timesteps_equal_diffusers(spacing, num_timesteps):
    ref = diffusers.DDIMScheduler(num_train_timesteps=num_timesteps, timestep_spacing=spacing)
    checked = 0
    for n in range(1, num_timesteps + 1, 7 if num_timesteps == 1000 else 1):
        ref.set_timesteps(n)
        theirs = ref.timesteps.tolist()
        if len(theirs) != n:  # diffusers' trailing arange has N + 1 entries for some N (see below)
            continue
        assert schedules.inference_timesteps(num_timesteps, n, spacing) == theirs, (spacing, n)
        checked += 1
    assert checked > 10


def test_trailing_spacing_never_goes_below_zero():
    """diffusers' np.arange(T, 0, -T/N) has N + 1 entries for e.g. T=100, N=29, the last being timestep -1."""
    ref = diffusers.DDIMScheduler(num_train_timesteps=100, timestep_spacing="trailing")
    ref.set_timesteps(29)
    assert len(ref.timesteps) == 30 and int(ref.timesteps[-1]) == -1  # the upstream quirk we avoid
    ours = schedules.inference_timesteps(100, 29, "trailing")
    assert len(ours) == 29 and ours == ref.timesteps.tolist()[:29] and min(ours) >= 0


def test_invalid_step_counts_and_spacings_are_clear_errors():
    with pytest.raises(CardiobenchError, match="between 1 and"):
        schedules.inference_timesteps(100, 101)
    with pytest.raises(CardiobenchError, match="between 1 and"):
        schedules.inference_timesteps(100, 0)
    with pytest.raises(CardiobenchError, match="timestep_spacing"):
        schedules.inference_timesteps(100, 10, "nope")
    with pytest.raises(CardiobenchError, match="beta_schedule"):
        GaussianProcess(beta_schedule="quadratic")
