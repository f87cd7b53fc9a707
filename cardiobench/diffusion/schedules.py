"""Noise schedules and inference timestep selection.

Discrete schedules reproduce diffusers bit for bit (``betas`` as float32, ``alphas_cumprod`` the float32
cumulative product), so that our samplers can be checked against diffusers' schedulers; every derived
coefficient is then computed in float64 from those float32 numbers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cardiobench.errors import CardiobenchError

BETA_SCHEDULES = ("cosine", "linear", "cosine_logsnr")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


def linear_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. (2020): betas linear from ``beta_start`` to ``beta_end`` (float32, as diffusers ``linear``)."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float32)


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021) eq. 17: ``f(t) = cos^2((t/T + s)/(1 + s) pi/2)``.

    ``beta_t = min(1 - f(t+1)/f(t), max_beta)``.

    Computed in float64 and cast to float32, exactly as diffusers' ``squaredcos_cap_v2``.
    """

    def f(t: float) -> float:
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - f((i + 1) / num_timesteps) / f(i / num_timesteps), max_beta) for i in range(num_timesteps)]
    return torch.tensor(betas, dtype=torch.float32)


def alphas_cumprod_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """``abar_t = prod_{i <= t} (1 - beta_i)``, in the dtype of ``betas`` (float32 cumprod, as diffusers)."""
    return torch.cumprod(1.0 - betas, dim=0)


def logsnr_cosine(t: torch.Tensor | float, logsnr_min: float = -10.0, logsnr_max: float = 10.0):
    """``logSNR(t) = -2 log tan(c_min t + c_max)``, t in [0, 1] (Hoogeboom & Salimans 2023; Kingma et al. 2021).

    ``c_max = atan(exp(-logsnr_max / 2))``, ``c_min = atan(exp(-logsnr_min / 2)) - c_max``, so
    ``logSNR(0) = logsnr_max`` and ``logSNR(1) = logsnr_min``. Then
    ``a_t = sqrt(sigmoid(logSNR)) = cos(c_min t + c_max)`` and
    ``sigma_t = sqrt(sigmoid(-logSNR)) = sin(c_min t + c_max)``.
    """
    c_max = math.atan(math.exp(-0.5 * logsnr_max))
    c_min = math.atan(math.exp(-0.5 * logsnr_min)) - c_max
    if isinstance(t, torch.Tensor):
        return -2.0 * torch.log(torch.tan(c_min * t + c_max))
    return -2.0 * math.log(math.tan(c_min * t + c_max))


def cosine_logsnr_alphas_cumprod(num_timesteps: int, logsnr_min: float = -10.0, logsnr_max: float = 10.0
                                 ) -> torch.Tensor:
    """``abar_i = sigmoid(logSNR((i + 1) / T))`` (float64): the continuous cosine schedule on our integer grid.

    This is blurring diffusion's noise schedule with no blur, so ``gaussian(beta_schedule="cosine_logsnr")`` is
    exactly ``blurring(sigma_blur_max=0)`` (tested).
    """
    t = torch.arange(1, num_timesteps + 1, dtype=torch.float64) / num_timesteps
    return torch.sigmoid(logsnr_cosine(t, logsnr_min, logsnr_max))


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise CardiobenchError(f"unknown {what} {value!r}", f"use one of: {', '.join(choices)}")
    return value


def inference_timesteps(num_timesteps: int, num_inference_steps: int, spacing: str = "leading") -> list[int]:
    """The N decreasing integer timesteps a sampler visits, as diffusers' ``set_timesteps`` chooses them.

    - ``leading``: ``arange(N) * (T // N)``, reversed (diffusers' default; always ends at 0).
    - ``trailing``: ``round(T - k T/N) - 1`` for k = 0..N-1 (starts at T - 1; Lin et al. 2024, table 2).
    - ``linspace``: ``round(linspace(0, T - 1, N))``, reversed.
    """
    check_choice(spacing, TIMESTEP_SPACINGS, "timestep_spacing")
    n, big_t = int(num_inference_steps), int(num_timesteps)
    if n < 1 or n > big_t:
        raise CardiobenchError(
            f"number of sampling steps must be between 1 and the process's {big_t} timesteps, got {num_inference_steps}"
        )
    if spacing == "leading":
        ts = (np.arange(0, n) * (big_t // n)).round()[::-1].astype(np.int64)
    elif spacing == "trailing":
        # diffusers writes np.arange(T, 0, -T/N), whose float length is N + 1 for some N (e.g. T=100, N=29,
        # ending in timestep -1); indexing k = 0..N-1 gives the same values wherever diffusers is well-defined.
        # (numpy's arange fills start + i * delta, delta = (start + step) - start; we copy that rounding)
        delta = (big_t - big_t / n) - big_t
        ts = np.round(big_t + np.arange(n) * delta).astype(np.int64) - 1
    else:
        ts = np.linspace(0, big_t - 1, n).round()[::-1].astype(np.int64)
    out = [int(v) for v in ts]
    if len(out) != n or any(b >= a for a, b in zip(out, out[1:], strict=False)) or out[-1] < 0 or out[0] >= big_t:
        raise CardiobenchError(f"{spacing} spacing gave invalid timesteps for T={big_t}, N={n}: {out[:5]}...")
    return out
