"""Gaussian DDPM (Ho et al. 2020): q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), V = I.

In the family's notation ``alpha_t = sqrt(abar_t)`` and ``sigma_t = sqrt(1 - abar_t)`` (scalars).
Integer timesteps ``0 .. T-1`` index ``abar`` directly (diffusers' convention); ``t = -1`` is the data.
The process is the same for slices (B, C, H, W) and volumes (B, C, D, H, W): ``alpha(t)`` and ``sigma(t)`` are
(B, 1, 1, 1) (``base.per_item`` aligns them with any rank), and ``q_sample`` / ``training_target`` broadcast the
per-item scalars against their input's rank.
"""

from __future__ import annotations

import torch

from cardiobench.diffusion import posterior, schedules
from cardiobench.diffusion.base import NoiseProcess
from cardiobench.errors import CardiobenchError


def _expand(v: torch.Tensor, ndim: int = 4) -> torch.Tensor:
    """(B,) per-item scalars -> (B, 1, ..., 1) with ``ndim`` axes (4: a slice batch, 5: a volume batch)."""
    return v.reshape(-1, *([1] * (ndim - 1)))


class GaussianProcess(NoiseProcess):
    """Gaussian DDPM noise (Ho et al. 2020), cosine (default) or linear beta schedule."""

    identity_basis = True

    def __init__(self, num_timesteps: int = 1000, beta_schedule: str = "cosine", prediction_type: str = "epsilon",
                 beta_start: float = 1e-4, beta_end: float = 0.02):
        num_timesteps = int(num_timesteps)
        if num_timesteps < 1:
            raise CardiobenchError(f"num_timesteps must be >= 1, got {num_timesteps}")
        schedules.check_choice(beta_schedule, schedules.BETA_SCHEDULES, "beta_schedule")
        self.num_timesteps = num_timesteps
        self.beta_schedule = beta_schedule
        self.prediction_type = posterior.check_prediction_type(prediction_type)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        if beta_schedule == "linear":
            abar = schedules.alphas_cumprod_from_betas(schedules.linear_betas(num_timesteps, beta_start, beta_end))
        elif beta_schedule == "cosine":
            abar = schedules.alphas_cumprod_from_betas(schedules.cosine_betas(num_timesteps))
        else:
            abar = schedules.cosine_logsnr_alphas_cumprod(num_timesteps)
        #: abar_t, t = 0..T-1, float64 holding exactly the float32 values diffusers computes
        self.alphas_cumprod = abar.to(torch.float64)
        if not bool(((self.alphas_cumprod > 0) & (self.alphas_cumprod < 1)).all()):
            raise CardiobenchError(f"beta schedule {beta_schedule!r} gives abar outside (0, 1) for T={num_timesteps}")
        # tables indexed by t + 1 so that t = -1 is the data (alpha 1, sigma 0)
        one = torch.ones(1, dtype=torch.float64)
        self._alpha64 = torch.cat([one, self.alphas_cumprod.sqrt()])
        self._sigma64 = torch.cat([one * 0, (1.0 - self.alphas_cumprod).sqrt()])
        self._tables: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"GaussianProcess({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"

    def config(self) -> dict:
        return {
            "num_timesteps": self.num_timesteps,
            "beta_schedule": self.beta_schedule,
            "prediction_type": self.prediction_type,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
        }

    def _table(self, device: torch.device, dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = dtype or torch.float32
        key = (str(device), dtype)
        tab = self._tables.get(key)
        if tab is None:
            tab = (self._alpha64.to(device=device, dtype=dtype), self._sigma64.to(device=device, dtype=dtype))
            self._tables[key] = tab
        return tab

    def to_basis(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def from_basis(self, u: torch.Tensor) -> torch.Tensor:
        return u

    def alpha(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _expand(self._table(t.device, dtype)[0][t + 1])

    def sigma(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _expand(self._table(t.device, dtype)[1][t + 1])

    def alpha_sigma(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._alpha64[int(t) + 1].clone(), self._sigma64[int(t) + 1].clone()

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a, s = self._table(x0.device, x0.dtype)
        # x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
        return _expand(a[t + 1], x0.dim()) * x0 + _expand(s[t + 1], x0.dim()) * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "x0":
            return x0
        a, s = self._table(x0.device, x0.dtype)
        return _expand(a[t + 1], x0.dim()) * noise - _expand(s[t + 1], x0.dim()) * x0  # v (Salimans & Ho 2022)
