"""Sampler behaviour beyond the contract: options, laziness and buffers, autograd opt-out, registry wiring."""

from __future__ import annotations

import pytest
import torch

from cardiobench.diffusion import BlurringProcess, DDIMSampler, DDPMSampler, GaussianProcess, SampleStep
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.plugins import check_compatible, get_component
from cardiobench.testing.diffusion import _ForeignProcess

SHAPE = (2, 4, 8, 8)


def net(x, t):
    return 0.7 * torch.tanh(2 * x) + 1e-3 * t.to(x.dtype).reshape(-1, 1, 1, 1)


def test_defaults():
    p = GaussianProcess()
    assert p.config() == {"num_timesteps": 1000, "beta_schedule": "cosine", "prediction_type": "epsilon",
                          "beta_start": 1e-4, "beta_end": 0.02}
    assert len(DDPMSampler(p).timesteps) == 1000 and DDPMSampler(p).variance == "fixed_small"
    ddim = DDIMSampler(p)
    assert len(ddim.timesteps) == 50 and ddim.eta == 0.0 and ddim.clip_x0 and ddim.timestep_spacing == "leading"
    assert len(DDIMSampler(GaussianProcess(20)).timesteps) == 20  # 50 steps capped at T
    b = BlurringProcess()
    assert (b.image_size, b.sigma_blur_max, b.min_scale, b.logsnr_min, b.logsnr_max) == (64, 20.0, 0.001, -10.0, 10.0)


@pytest.mark.parametrize("name,options", [("ddpm", {"num_inference_steps": 30, "variance": "fixed_large"}),
                                          ("ddim", {"num_inference_steps": 12, "eta": 0.5,
                                                    "timestep_spacing": "linspace", "prev_timestep": "stride"})])
def test_sampler_config_rebuilds_it(name, options):
    factory = get_component("sampler", name).factory
    s = factory(GaussianProcess(100), **options)
    again = factory(GaussianProcess(100), **s.config())
    assert again.config() == s.config() and torch.equal(again.timesteps, s.timesteps)
    assert torch.equal(again.prev_timesteps, s.prev_timesteps)


def test_invalid_options_are_clear_errors():
    p = GaussianProcess(100)
    with pytest.raises(CardiobenchError, match="variance"):
        DDPMSampler(p, variance="learned")
    with pytest.raises(CardiobenchError, match="eta"):
        DDIMSampler(p, eta=1.5)
    with pytest.raises(CardiobenchError, match="prev_timestep"):
        DDIMSampler(p, prev_timestep="previous")
    with pytest.raises(CardiobenchError, match="between 1 and"):
        DDIMSampler(p, 500)
    with pytest.raises(CardiobenchError, match="prediction_type"):
        GaussianProcess(prediction_type="score")


def test_incompatible_family_is_reported_up_front(register_plugin):
    from cardiobench.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def register_noise_processes(register):
            register("foreign", _ForeignProcess, family="contract-test-foreign")

    register_plugin(Plugin, "foreign-plugin")
    check_compatible(noise="blurring", sampler="ddim")
    with pytest.raises(IncompatibleError, match="does not support"):
        check_compatible(noise="foreign", sampler="ddpm")
    with pytest.raises(IncompatibleError, match="contract-test-foreign"):
        DDPMSampler(_ForeignProcess())


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("make", [lambda: DDPMSampler(GaussianProcess(100, prediction_type="v"), 10),
                                  lambda: DDIMSampler(GaussianProcess(100), 10, eta=0.7),
                                  lambda: DDIMSampler(GaussianProcess(100, prediction_type="x0"), 10),
                                  lambda: DDIMSampler(BlurringProcess(100, image_size=8), 10)],
                         ids=["ddpm-v", "ddim-eta", "ddim-x0", "ddim-blur"])
def test_iter_sample_states_and_estimates_match_step(make, clip):
    """The fast in-place path (and its on-demand x0_pred) equals the allocating ``step``."""
    sampler = make()
    sampler.clip_x0 = clip
    sampler._plans = {}
    g = torch.Generator().manual_seed(0)
    g_ref = torch.Generator().manual_seed(0)
    y = torch.randn(SHAPE, generator=g_ref)
    for st in sampler.iter_sample(net, SHAPE, generator=g):
        ref = sampler.step(net(y, torch.full((SHAPE[0],), st.timestep)), st.index, y, generator=g_ref)
        assert isinstance(st, SampleStep)
        torch.testing.assert_close(st.x0_pred, ref.x0_pred, atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(st.x_t, ref.x_t, atol=2e-5, rtol=1e-5)
        if clip:
            assert float(st.x0_pred.abs().max()) <= 1 + 1e-5
        y = ref.x_t


def test_yielded_tensors_are_reused_buffers_so_clone_what_you_keep():
    sampler = DDIMSampler(GaussianProcess(100), 5)
    kept = [(st.x_t, st.x_t.clone()) for st in sampler.iter_sample(net, SHAPE)]
    assert any(not torch.equal(ref, copy) for ref, copy in kept[:-1])  # earlier states were overwritten
    assert torch.equal(*kept[-1])


def test_gaussian_uses_the_float_fast_path_and_blurring_the_basis_path():
    fast = DDIMSampler(GaussianProcess(100), 10)
    assert fast._scalar_plan(fast._plan(torch.device("cpu"), torch.float32))
    slow = DDIMSampler(BlurringProcess(100, image_size=8), 10)
    assert not slow._scalar_plan(slow._plan(torch.device("cpu"), torch.float32))
    assert all(isinstance(c, float) for c in fast._plan(torch.device("cpu"), torch.float32)[0][0])


def test_inference_mode_can_be_turned_off_for_guidance():
    """Classifier guidance differentiates inside model_fn: with ``inference_mode = False`` it may."""
    sampler = DDIMSampler(GaussianProcess(100), 4)

    def guided(x, t):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad((xg**2).sum(), xg)
        return net(x, t) + 0.01 * grad

    with pytest.raises(RuntimeError):
        sampler.sample(guided, SHAPE)
    sampler.inference_mode = False
    out = sampler.sample(guided, SHAPE, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and not out.requires_grad


def test_float64_and_x_T():
    sampler = DDPMSampler(BlurringProcess(50, image_size=8), 10)
    x_T = torch.randn(SHAPE, dtype=torch.float64)
    out = sampler.sample(net, SHAPE, dtype=torch.float64, x_T=x_T, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("make", [lambda: DDPMSampler(GaussianProcess(100), 20),
                                  lambda: DDIMSampler(BlurringProcess(100, image_size=8), 10, eta=0.5)])
def test_cuda_matches_cpu(make):
    sampler = make()
    x_T = torch.randn(SHAPE, dtype=torch.float64)
    # CPU generator on both sides: the sampler draws on the generator's device and moves the noise
    cpu = sampler.sample(net, SHAPE, dtype=torch.float64, x_T=x_T, generator=torch.Generator().manual_seed(0))
    gpu = sampler.sample(net, SHAPE, dtype=torch.float64, x_T=x_T, device="cuda",
                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-9, rtol=0)
