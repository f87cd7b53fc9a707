"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), per coefficient of the process's basis.

Each step t -> s draws from the posterior ``q(u_s | u_t, u0_hat)``: mean ``coef_x0 u0_hat + coef_xt u_t``
(``posterior.posterior_coefficients``), variance ``fixed_small`` (the posterior variance, default) or
``fixed_large`` (the transition variance ``sigma2_ts``, i.e. ``beta'``). Strided sampling (N < T steps,
Nichol & Dhariwal 2021 sec. 4) uses the same formulas between listed timesteps, as diffusers' DDPMScheduler.
"""

from __future__ import annotations

from cardiobench.diffusion import posterior
from cardiobench.diffusion.base import NoiseProcess
from cardiobench.diffusion.sampling import LinearGaussianSampler
from cardiobench.errors import CardiobenchError


class DDPMSampler(LinearGaussianSampler):
    """DDPM ancestral sampler (Ho et al. 2020), any number of strided steps (default: all T)."""

    def __init__(self, process: NoiseProcess, num_inference_steps: int | None = None, variance: str = "fixed_small",
                 clip_x0: bool = True, timestep_spacing: str = "leading"):
        if variance not in posterior.DDPM_VARIANCES:
            raise CardiobenchError(f"unknown DDPM variance {variance!r}",
                                   f"use one of: {', '.join(posterior.DDPM_VARIANCES)}")
        self.variance = variance
        super().__init__(process, num_inference_steps=num_inference_steps, timestep_spacing=timestep_spacing,
                         clip_x0=clip_x0)

    def step_coefficients(self, alpha_t, sigma_t, alpha_s, sigma_s):
        return posterior.ddpm_coefficients(alpha_t, sigma_t, alpha_s, sigma_s, self.variance)

    def config(self) -> dict:
        return {**super().config(), "variance": self.variance}
