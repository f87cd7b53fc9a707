"""Blurring diffusion (Hoogeboom & Salimans, ICLR 2023, arXiv 2209.05557) in the orthonormal 2-D DCT basis.

Continuous time: integer timestep ``i`` in ``0 .. T-1`` is ``t = (i + 1) / T`` in (0, 1]; ``i = -1`` is the data.

- frequencies ``lambda_ij = pi^2 (i^2/H^2 + j^2/W^2)``;
- blur ``sigma_B(t) = sigma_blur_max sin^2(pi t / 2)``, dissipation time ``tau_t = sigma_B(t)^2 / 2``;
- frequency scaling ``d_t = (1 - d_min) exp(-lambda tau_t) + d_min`` (``d_min`` = ``min_scale``);
- ``logSNR(t) = -2 log tan(c_min t + c_max)``, ``a_t = sqrt(sigmoid(logSNR))``, ``sigma_t = sqrt(sigmoid(-logSNR))``;
- ``alpha_t = a_t d_t`` per frequency; ``u_t = alpha_t ⊙ DCT(x_0) + sigma_t eps``.

``sigma_blur_max`` is in pixels, so the same relative blur at another resolution needs a proportional
value: the default is ``20 * image_size / 64`` (20 at 64x64, 10 at 32x32; at which resolution the paper's 20
applies is discussed in docs/diffusion.md).
"""

from __future__ import annotations

import math

import torch

from cardiobench.diffusion import dct, posterior, schedules
from cardiobench.diffusion.base import NoiseProcess
from cardiobench.errors import CardiobenchError


class BlurringProcess(NoiseProcess):
    """Blurring diffusion (Hoogeboom & Salimans 2023): heat dissipation + cosine-logSNR noise in the DCT basis."""

    identity_basis = False

    def __init__(self, num_timesteps: int = 1000, image_size: int = 64, sigma_blur_max: float | None = None,
                 min_scale: float = 0.001, logsnr_min: float = -10.0, logsnr_max: float = 10.0,
                 prediction_type: str = "epsilon"):
        num_timesteps, image_size = int(num_timesteps), int(image_size)
        if num_timesteps < 1:
            raise CardiobenchError(f"num_timesteps must be >= 1, got {num_timesteps}")
        if image_size < 1:
            raise CardiobenchError(f"image_size must be >= 1, got {image_size}")
        if sigma_blur_max is None:
            sigma_blur_max = 20.0 * image_size / 64.0
        if sigma_blur_max < 0:
            raise CardiobenchError(f"sigma_blur_max must be >= 0, got {sigma_blur_max}")
        if not 0.0 < min_scale <= 1.0:
            raise CardiobenchError(f"min_scale must be in (0, 1], got {min_scale}")
        if not logsnr_min < logsnr_max:
            raise CardiobenchError(f"need logsnr_min < logsnr_max, got {logsnr_min} and {logsnr_max}")
        self.num_timesteps = num_timesteps
        self.image_size = image_size
        self.sigma_blur_max = float(sigma_blur_max)
        self.min_scale = float(min_scale)
        self.logsnr_min = float(logsnr_min)
        self.logsnr_max = float(logsnr_max)
        self.prediction_type = posterior.check_prediction_type(prediction_type)

        # per-timestep scalars, indexed by i + 1 (index 0 = the data: a = 1, sigma = 0, tau = 0)
        tc = torch.arange(1, num_timesteps + 1, dtype=torch.float64) / num_timesteps
        logsnr = schedules.logsnr_cosine(tc, self.logsnr_min, self.logsnr_max)
        a = torch.sigmoid(logsnr).sqrt()
        s = torch.sigmoid(-logsnr).sqrt()
        sigma_b = self.sigma_blur_max * torch.sin(tc * math.pi / 2) ** 2
        tau = sigma_b**2 / 2
        self._a64 = torch.cat([torch.ones(1, dtype=torch.float64), a])
        self._s64 = torch.cat([torch.zeros(1, dtype=torch.float64), s])
        self._tau64 = torch.cat([torch.zeros(1, dtype=torch.float64), tau])
        self._lambda64 = dct.frequencies(image_size, image_size)  # (H, W)
        self._tables: dict[tuple[str, torch.dtype], tuple[torch.Tensor, ...]] = {}

    def __repr__(self) -> str:
        return f"BlurringProcess({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"

    def config(self) -> dict:
        return {
            "num_timesteps": self.num_timesteps,
            "image_size": self.image_size,
            "sigma_blur_max": self.sigma_blur_max,
            "min_scale": self.min_scale,
            "logsnr_min": self.logsnr_min,
            "logsnr_max": self.logsnr_max,
            "prediction_type": self.prediction_type,
        }

    def _table(self, device: torch.device, dtype: torch.dtype | None) -> tuple[torch.Tensor, ...]:
        dtype = dtype or torch.float32
        key = (str(device), dtype)
        tab = self._tables.get(key)
        if tab is None:
            tab = tuple(v.to(device=device, dtype=dtype) for v in (self._a64, self._s64, self._tau64, self._lambda64))
            self._tables[key] = tab
        return tab

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise CardiobenchError(
                f"blurring process built for {self.image_size}x{self.image_size} images got shape {tuple(x.shape)}",
                "set the process option image_size to the data's size",
            )

    def frequency_scaling(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``d_t`` per frequency, (B, 1, H, W)."""
        _, _, tau, lam = self._table(t.device, dtype)
        return (1.0 - self.min_scale) * torch.exp(-lam * tau[t + 1].reshape(-1, 1, 1, 1)) + self.min_scale

    def to_basis(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return dct.dct2(x)

    def from_basis(self, u: torch.Tensor) -> torch.Tensor:
        self._check(u)
        return dct.idct2(u)

    def alpha(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        a = self._table(t.device, dtype)[0]
        return a[t + 1].reshape(-1, 1, 1, 1) * self.frequency_scaling(t, dtype=dtype)

    def sigma(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        return self._table(t.device, dtype)[1][t + 1].reshape(-1, 1, 1, 1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        # V^T(alpha ⊙ V x0 + sigma V noise) = V^T(alpha ⊙ V x0) + sigma noise (V orthonormal, sigma scalar)
        return dct.idct2(self.alpha(t, dtype=x0.dtype) * self.to_basis(x0)) + self.sigma(t, dtype=x0.dtype) * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "x0":
            return x0
        # v = alpha ⊙ eps - sigma u_0 per coefficient (Salimans & Ho 2022, generalised to per-frequency alpha)
        a = self.alpha(t, dtype=x0.dtype)
        s = self.sigma(t, dtype=x0.dtype)
        return dct.idct2(a * self.to_basis(noise)) - s * x0
