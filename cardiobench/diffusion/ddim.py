"""DDIM (Song et al. 2021, eqs. 12 and 16), per coefficient of the process's basis.

``u_s = alpha_s u0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z`` with ``c^2 = eta^2 var`` (``var`` the posterior
variance): ``eta = 0`` is deterministic, ``eta = 1`` has DDPM's noise level.

The step lands on the next listed timestep (``prev_timestep="next"``, the consistent choice). diffusers'
DDIMScheduler instead always lands on ``t - T // N`` whatever the spacing (``prev_timestep="stride"``);
both agree for ``leading`` spacing and for ``trailing`` when N divides T.

With ``clip_x0`` the data estimate is clipped to [-1, 1]. ``use_clipped_model_output=True`` (the default here,
as in lucidrains' ``denoising-diffusion-pytorch``, which re-derives the noise from the clipped x0) then uses
the noise estimate implied by the clipped data estimate, ``eps_hat = (u_t - alpha_t u0_hat) / sigma_t``, so the
two terms of the update agree. ``False`` keeps the network's own noise estimate next to the clipped x0
(diffusers' ``DDIMScheduler`` default): when guidance pushes x0 far outside [-1, 1] (classifier-free guidance
with an x0-prediction model) the two disagree and the update moves *against* the guidance; see
docs/diffusion.md. Without clipping both are the same.
"""

from __future__ import annotations

from cardiobench.diffusion import posterior
from cardiobench.diffusion.base import NoiseProcess
from cardiobench.diffusion.sampling import LinearGaussianSampler
from cardiobench.errors import CardiobenchError

PREV_TIMESTEP_RULES = ("next", "stride")


class DDIMSampler(LinearGaussianSampler):
    """DDIM sampler (Song et al. 2021) with eta (0 = deterministic), 50 steps by default.

    ``num_inference_steps=None`` means 50 (or T if the process has fewer timesteps).
    """

    default_steps = 50

    def __init__(self, process: NoiseProcess, num_inference_steps: int | None = None, eta: float = 0.0,
                 timestep_spacing: str = "leading", clip_x0: bool = True, prev_timestep: str = "next",
                 use_clipped_model_output: bool = True):
        eta = float(eta)
        if not 0.0 <= eta <= 1.0:
            raise CardiobenchError(f"DDIM eta must be in [0, 1], got {eta}")
        if prev_timestep not in PREV_TIMESTEP_RULES:
            raise CardiobenchError(f"unknown prev_timestep rule {prev_timestep!r}",
                                   f"use one of: {', '.join(PREV_TIMESTEP_RULES)}")
        self.eta = eta
        self.prev_timestep = prev_timestep
        self.eps_from_clipped_x0 = bool(use_clipped_model_output)
        super().__init__(process, num_inference_steps=num_inference_steps, timestep_spacing=timestep_spacing,
                         clip_x0=clip_x0)

    def previous_timesteps(self, timesteps: list[int]) -> list[int]:
        if self.prev_timestep == "next":
            return super().previous_timesteps(timesteps)
        stride = self.process.num_timesteps // len(timesteps)
        return [max(t - stride, -1) for t in timesteps]

    def step_coefficients(self, alpha_t, sigma_t, alpha_s, sigma_s):
        return posterior.ddim_coefficients(alpha_t, sigma_t, alpha_s, sigma_s, self.eta)

    def config(self) -> dict:
        return {**super().config(), "eta": self.eta, "prev_timestep": self.prev_timestep,
                "use_clipped_model_output": self.eps_from_clipped_x0}
