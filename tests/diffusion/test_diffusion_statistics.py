"""Issue item 9: every process x sampler pair, driven by the exact denoiser of Gaussian data.

For data whose DCT coefficients are independent Gaussians N(m, s^2), ``E[u_0 | u_t]`` is linear in ``u_t``
for every linear Gaussian process, so each sampler step is an affine map plus Gaussian noise per coefficient
and the law of the samples is computable exactly, discretisation error included. ``discrete_law`` does that
here from the papers' formulas (Ho et al. 2020 eq. 7, Song et al. 2021 eq. 12), independently of the
sampler code. Two checks follow:

1. the samples match that law to sampling precision (a wrong coefficient anywhere fails it, see the
   negative controls), and
2. the law converges to the data law as the number of steps grows (so the formulas are the right ones).
"""

from __future__ import annotations

import math

import pytest
import torch

from cardiobench.diffusion import BlurringProcess, DDIMSampler, DDPMSampler, GaussianProcess, dct
from cardiobench.testing.diffusion import GaussianData

DATA = GaussianData(channels=1, size=4)
N = 3000


def discrete_law(process, sampler, data=DATA):
    """Exact (mean, var) per DCT coefficient of the sampler's output, starting from u_T ~ N(0, 1)."""
    m, v0 = data.mean, data.std**2
    mean, var = torch.zeros_like(m), torch.ones_like(m)
    for t, s in zip(sampler.timesteps.tolist(), sampler.prev_timesteps.tolist(), strict=True):
        a_t, s_t = process.alpha_sigma(t)
        a_s, s_s = process.alpha_sigma(s)
        gain = v0 * a_t / (a_t**2 * v0 + s_t**2)  # E[u0|u_t] = gain u_t + (m - gain a_t m)
        e1, e0 = gain, m - gain * a_t * m
        a_ts = a_t / a_s
        s2_ts = s_t**2 - a_ts**2 * s_s**2
        post_var = s_s**2 * s2_ts / s_t**2
        if isinstance(sampler, DDPMSampler):  # Ho et al. eq. 7 with u_0 -> E[u0|u_t]
            c_x0, c_xt = a_s * s2_ts / s_t**2, a_ts * s_s**2 / s_t**2
            c1, c0 = c_x0 * e1 + c_xt, c_x0 * e0
            if sampler.variance == "fixed_small":
                noise = post_var
            else:
                noise = s2_ts if s >= 0 else 0 * s2_ts
        else:  # Song et al. eq. 12: u_s = a_s u0_hat + sqrt(s_s^2 - c^2) eps_hat + c z, c^2 = eta^2 post_var
            noise = sampler.eta**2 * post_var
            direction = (s_s**2 - noise).sqrt() / s_t  # eps_hat = (u_t - a_t u0_hat) / s_t
            c1 = a_s * e1 + direction * (1 - a_t * e1)
            c0 = a_s * e0 - direction * a_t * e0
        mean = c1 * mean + c0
        var = c1**2 * var + noise
    return mean.expand_as(m), var.expand_as(m)


def sample_errors(process, sampler, seed=0):
    """(mean_z, var_ratio_max, var_ratio_mean) of N samples against ``discrete_law``."""
    out = sampler.sample(DATA.model_fn(process), (N, *DATA.shape), dtype=torch.float64,
                         generator=torch.Generator().manual_seed(seed))
    u = dct.dct2(out)
    mean, var = discrete_law(process, sampler)
    z = ((u.mean(0) - mean) / (var / N).sqrt()).abs()
    ratio = (u.var(0) / var - 1).abs()
    return float(z.max()), float(ratio.max()), float(ratio.mean())


def assert_matches_law(errors, where):
    mean_z, ratio_max, ratio_mean = errors
    # 16 coefficients, N = 3000: mean z-scores are N(0, 1) (max < 4), variance ratios have sd 0.026
    assert mean_z < 4.0 and ratio_max < 0.11 and ratio_mean < 0.04, (where, errors)


PROCESSES = {
    "gaussian": lambda ptype: GaussianProcess(100, prediction_type=ptype),
    "blurring": lambda ptype: BlurringProcess(100, image_size=4, prediction_type=ptype),
}
# few steps keep this fast; the law is exact for any step count (strided DDPM uses the same formulas)
SAMPLERS = {
    "ddpm": lambda p: DDPMSampler(p, 25, clip_x0=False),
    "ddpm-fixed_large-25": lambda p: DDPMSampler(p, 25, variance="fixed_large", clip_x0=False),
    "ddim": lambda p: DDIMSampler(p, 20, clip_x0=False),
    "ddim-eta0.5-trailing": lambda p: DDIMSampler(p, 10, eta=0.5, timestep_spacing="trailing", clip_x0=False),
    "ddim-eta1-linspace": lambda p: DDIMSampler(p, 15, eta=1.0, timestep_spacing="linspace", clip_x0=False),
}


@pytest.mark.parametrize("sampler_name", SAMPLERS)
@pytest.mark.parametrize("process_name", PROCESSES)
def test_samples_follow_the_exact_discrete_law(process_name, sampler_name):
    for i, ptype in enumerate(("epsilon", "v", "x0")):
        if sampler_name != "ddim" and i > 0 and process_name == "gaussian":
            continue  # every prediction type on one sampler per process is enough; the rest is epsilon
        if sampler_name not in ("ddim", "ddpm") and i > 0:
            continue
        process = PROCESSES[process_name](ptype)
        sampler = SAMPLERS[sampler_name](process)
        assert_matches_law(sample_errors(process, sampler, seed=i), (process_name, sampler_name, ptype))


@pytest.mark.parametrize("process_name", PROCESSES)
def test_discrete_law_converges_to_the_data_law(process_name):
    """Refining the steps removes the discretisation error: the samplers target the right distribution."""
    process = PROCESSES[process_name]("epsilon")
    fine = {"gaussian": GaussianProcess(1000), "blurring": BlurringProcess(1000, image_size=4)}[process_name]
    errors = {}
    for name, proc, sampler in [("ddpm-100", process, DDPMSampler(process)),
                                ("ddpm-1000", fine, DDPMSampler(fine)),
                                ("ddim-100", process, DDIMSampler(process, 100)),
                                ("ddim-1000", fine, DDIMSampler(fine, 1000)),
                                ("ddim-eta1-1000", fine, DDIMSampler(fine, 1000, eta=1.0))]:
        mean, var = discrete_law(proc, sampler)
        errors[name] = (float(((mean - DATA.mean) / DATA.std).abs().max()), float((var / DATA.std**2 - 1).abs().max()))
    # first-order convergence: 10x the steps, ~1/10 the variance error (DDPM 0.10 -> 0.013, DDIM 0.05 -> 0.006)
    assert errors["ddpm-1000"][1] < 0.02 and errors["ddpm-1000"][0] < 1e-3, errors
    assert errors["ddim-eta1-1000"][1] < 0.02, errors
    # DDIM is deterministic, so the start x_T ~ N(0, 1) instead of N(alpha_T m, ...) leaves a mean bias of
    # about alpha_T / sigma_T (0.0067 for blurring diffusion, whose logSNR stops at -10)
    assert errors["ddim-1000"][1] < 0.01 and errors["ddim-1000"][0] < 0.01, errors
    assert errors["ddpm-1000"][1] < errors["ddpm-100"][1] / 5, errors
    assert errors["ddim-1000"][1] < errors["ddim-100"][1] / 5, errors


def _perturb(sampler, column, factor):
    """Make one of the sampler's six folded step coefficients (``sampling.COEFFICIENTS``) slightly wrong."""
    sampler._table64[column] = sampler._table64[column] * factor
    sampler._plans = {}
    return sampler


@pytest.mark.parametrize("what,column,factor", [
    ("noise std 10% too large", 5, 1.1),
    ("posterior coefficient on x_t 2% off", 3, 1.02),
])
def test_negative_controls_the_checks_catch_small_mistakes(what, column, factor):
    process = PROCESSES["blurring"]("epsilon")
    good = DDPMSampler(process, 25, clip_x0=False)
    assert_matches_law(sample_errors(process, good), "unperturbed")
    bad = _perturb(DDPMSampler(process, 25, clip_x0=False), column, factor)
    with pytest.raises(AssertionError):
        assert_matches_law(sample_errors(process, bad), what)


def test_negative_control_the_contract_check_catches_a_wrong_sampler():
    """The contract's data-law check (looser, for any sampler) still fails a sampler with a wrong step."""
    from cardiobench.testing.diffusion import SamplerContract

    process = GaussianProcess(200)
    data = GaussianData(channels=1, size=SamplerContract.statistical_size)
    bad = _perturb(DDPMSampler(process, clip_x0=False), 5, 1.25)
    out = bad.sample(data.model_fn(process), (SamplerContract.n_statistical, *data.shape), dtype=torch.float64,
                     generator=torch.Generator().manual_seed(11))
    err = data.errors(out)
    contract = SamplerContract
    assert err["var_ratio_mean"] > contract.max_mean_var_ratio or err["var_ratio_max"] > contract.max_var_ratio


def test_gaussian_data_helper_is_exact():
    """The exact denoiser really is E[x0 | x_t]: its error is uncorrelated with x_t and has the posterior variance."""
    process = BlurringProcess(100, image_size=4)
    g = torch.Generator().manual_seed(0)
    x0 = DATA.sample(20000, generator=g)
    t = torch.full((20000,), 40)
    x_t = process.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    err = dct.dct2(DATA.posterior_mean(process, x_t, t) - x0)
    a, s = process.alpha_sigma(40)
    post_var = DATA.std**2 * s**2 / (a**2 * DATA.std**2 + s**2)
    assert float((err.mean(0) / post_var.sqrt()).abs().max()) < 5 / math.sqrt(20000) * 1.2
    assert float((err.var(0) / post_var - 1).abs().max()) < 0.06
