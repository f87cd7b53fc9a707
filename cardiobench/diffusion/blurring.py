"""Blurring diffusion (Hoogeboom & Salimans, ICLR 2023, arXiv 2209.05557) in the orthonormal DCT basis, for
slices (B, C, H, W) and volumes (B, C, D, H, W).

Continuous time: integer timestep ``i`` in ``0 .. T-1`` is ``t = (i + 1) / T`` in (0, 1]; ``i = -1`` is the data.

- frequencies ``lambda_k = pi^2 sum_a (k_a / (N_a s_a))^2`` over the spatial axes a (``dct.frequencies``); in 2-D
  with unit spacing ``lambda_ij = pi^2 (i^2/H^2 + j^2/W^2)``;
- blur ``sigma_B(t) = sigma_blur_max sin^2(pi t / 2)``, dissipation time ``tau_t = sigma_B(t)^2 / 2``;
- frequency scaling ``d_t = (1 - d_min) exp(-lambda tau_t) + d_min`` (``d_min`` = ``min_scale``);
- ``logSNR(t) = -2 log tan(c_min t + c_max)``, ``a_t = sqrt(sigmoid(logSNR))``, ``sigma_t = sqrt(sigmoid(-logSNR))``;
- ``alpha_t = a_t d_t`` per frequency; ``u_t = alpha_t ⊙ DCT(x_0) + sigma_t eps``.

``sigma_blur_max`` is in in-plane pixels, so the same relative blur at another resolution needs a proportional
value: the default is ``20 * H / 64`` with ``H`` the in-plane size (20 at 64x64, 10 at 32x32; at which resolution
the paper's 20 applies is discussed in docs/diffusion.md).

**Volumes.** ``image_size`` is an int ``N`` (an ``N x N`` slice, as before) or the per-axis sizes: ``[D, H, W]`` for
a volume (``[H, W]`` for a non-square slice); the DCT then runs over the last 3 axes. ``spacing`` gives the
physical distance between neighbouring samples of each axis in in-plane pixels (``[4, 1, 1]``: slices 4 pixels
apart; default None: isotropic). The blur is the heat equation in physical space: a blur of ``sigma`` in-plane
pixels has standard deviation ``sigma / s_a`` samples along axis a, so on a stack of slices 4 pixels apart it
spreads over ~``sigma / 4`` slices, not ``sigma`` slices (which would smear the coarse slice axis 4x faster than
the image plane). With the defaults (an int ``image_size``, no ``spacing``) the process and its ``config()`` are
exactly the 2-D ones: ``spacing`` appears in ``config()`` only when set.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from cardiobench.diffusion import dct, posterior, schedules
from cardiobench.diffusion.base import NoiseProcess
from cardiobench.errors import CardiobenchError


def _is_size(value: object) -> bool:
    """An integral number (int, numpy integer, or a float such as 64.0 holding one); not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and float(value) == int(value))  # type: ignore[arg-type]


def _spatial_shape(image_size: int | Sequence[int]) -> tuple[int, ...]:
    """(H, W) of an int size N (N x N) or the given per-axis sizes (2 or 3 of them), each >= 1."""
    if _is_size(image_size):
        size = int(image_size)  # type: ignore[arg-type]
        if size < 1:
            raise CardiobenchError(f"image_size must be >= 1, got {image_size}")
        return (size, size)
    sizes = tuple(image_size) if isinstance(image_size, Sequence) and not isinstance(image_size, str) else ()
    if len(sizes) not in (2, 3) or not all(_is_size(n) and int(n) >= 1 for n in sizes):
        raise CardiobenchError(f"image_size must be an integer or a list of 2 ([H, W]) or 3 ([D, H, W]) positive "
                               f"integers, got {image_size!r}")
    return tuple(int(n) for n in sizes)


def _spacing(spacing: Sequence[float] | None, spatial: tuple[int, ...]) -> list[float] | None:
    """Per-axis spacing as floats, one per spatial axis, each finite and > 0; None for None or all ones."""
    if spacing is None:
        return None
    try:
        values = [float(s) for s in spacing] if not isinstance(spacing, str) else []
    except (TypeError, ValueError):
        values = []
    if len(values) != len(spatial):
        axes = "[D, H, W]" if len(spatial) == 3 else "[H, W]"
        raise CardiobenchError(f"spacing must give one number per spatial axis {axes}, got {spacing!r}",
                               "e.g. spacing = [4.0, 1.0, 1.0] for slices 4 in-plane pixels apart")
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise CardiobenchError(f"spacing must be positive and finite, got {spacing!r}")
    return None if all(s == 1.0 for s in values) else values


class BlurringProcess(NoiseProcess):
    """Blurring diffusion (Hoogeboom & Salimans 2023): heat dissipation + cosine-logSNR noise in the DCT basis.

    Slices or volumes: ``image_size`` N (N x N) or ``[D, H, W]``; ``spacing`` per axis in in-plane pixels.
    """

    identity_basis = False

    def __init__(self, num_timesteps: int = 1000, image_size: int | Sequence[int] = 64,
                 sigma_blur_max: float | None = None, min_scale: float = 0.001, logsnr_min: float = -10.0,
                 logsnr_max: float = 10.0, prediction_type: str = "epsilon",
                 spacing: Sequence[float] | None = None):
        num_timesteps = int(num_timesteps)
        if num_timesteps < 1:
            raise CardiobenchError(f"num_timesteps must be >= 1, got {num_timesteps}")
        #: the spatial shape the process is built for: (H, W) or (D, H, W)
        self.spatial = _spatial_shape(image_size)
        #: number of spatial axes the DCT runs over (2 or 3)
        self.spatial_dims = len(self.spatial)
        self.spacing = _spacing(spacing, self.spatial)
        in_plane = self.spatial[-2]  # H
        if sigma_blur_max is None:
            sigma_blur_max = 20.0 * in_plane / 64.0
        if sigma_blur_max < 0:
            raise CardiobenchError(f"sigma_blur_max must be >= 0, got {sigma_blur_max}")
        if not 0.0 < min_scale <= 1.0:
            raise CardiobenchError(f"min_scale must be in (0, 1], got {min_scale}")
        if not logsnr_min < logsnr_max:
            raise CardiobenchError(f"need logsnr_min < logsnr_max, got {logsnr_min} and {logsnr_max}")
        self.num_timesteps = num_timesteps
        #: as given: an int for a square slice (the 2-D configs), else the list of per-axis sizes
        self.image_size: int | list[int] = int(image_size) if _is_size(image_size) else list(self.spatial)
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
        self._lambda64 = dct.frequencies(*self.spatial, spacing=self.spacing)  # (H, W) or (D, H, W)
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
            **({"spacing": list(self.spacing)} if self.spacing is not None else {}),
        }

    def _table(self, device: torch.device, dtype: torch.dtype | None) -> tuple[torch.Tensor, ...]:
        dtype = dtype or torch.float32
        key = (str(device), dtype)
        tab = self._tables.get(key)
        if tab is None:
            tab = tuple(v.to(device=device, dtype=dtype) for v in (self._a64, self._s64, self._tau64, self._lambda64))
            self._tables[key] = tab
        return tab

    def _per_item(self, v: torch.Tensor) -> torch.Tensor:
        """(B,) per-timestep scalars -> (B, 1, *[1] * spatial_dims), the rank of a batch (B, C, *spatial)."""
        return v.reshape(-1, *([1] * (1 + self.spatial_dims)))

    def _check(self, x: torch.Tensor) -> None:
        k = self.spatial_dims
        if x.dim() != k + 2 or tuple(x.shape[-k:]) != self.spatial:
            what = "x".join(map(str, self.spatial))
            if k == 3:
                expected = f"{what} volumes (D, H, W) = {self.spatial}, batches (B, C, D, H, W)"
            else:
                expected = f"{what} images (H, W) = {self.spatial}, batches (B, C, H, W)"
            raise CardiobenchError(
                f"blurring process built for {expected} got shape {tuple(x.shape)}",
                "set the process option image_size to the data's size: an integer N for N x N slices, "
                "[D, H, W] for volumes",
            )

    def frequency_scaling(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``d_t = (1 - d_min) exp(-lambda tau_t) + d_min`` per frequency, (B, 1, H, W) or (B, 1, D, H, W)."""
        _, _, tau, lam = self._table(t.device, dtype)
        return (1.0 - self.min_scale) * torch.exp(-lam * self._per_item(tau[t + 1])) + self.min_scale

    def to_basis(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return dct.dctn(x, dims=self.spatial_dims)

    def from_basis(self, u: torch.Tensor) -> torch.Tensor:
        self._check(u)
        return dct.idctn(u, dims=self.spatial_dims)

    def alpha(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``alpha_t = a_t d_t`` per frequency: (B, 1, H, W) or (B, 1, D, H, W)."""
        a = self._table(t.device, dtype)[0]
        return self._per_item(a[t + 1]) * self.frequency_scaling(t, dtype=dtype)

    def sigma(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``sigma_t`` (a scalar per item): (B, 1, 1, 1) or (B, 1, 1, 1, 1)."""
        return self._per_item(self._table(t.device, dtype)[1][t + 1])

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        # V^T(alpha ⊙ V x0 + sigma V noise) = V^T(alpha ⊙ V x0) + sigma noise (V orthonormal, sigma scalar)
        blurred = dct.idctn(self.alpha(t, dtype=x0.dtype) * self.to_basis(x0), dims=self.spatial_dims)
        return blurred + self.sigma(t, dtype=x0.dtype) * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "x0":
            return x0
        # v = alpha ⊙ eps - sigma u_0 per coefficient (Salimans & Ho 2022, generalised to per-frequency alpha)
        a = self.alpha(t, dtype=x0.dtype)
        s = self.sigma(t, dtype=x0.dtype)
        return dct.idctn(a * self.to_basis(noise), dims=self.spatial_dims) - s * x0
