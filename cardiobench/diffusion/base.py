"""The shared interface of linear Gaussian noise processes and the samplers written against it.

Every process in the ``linear-gaussian`` family is, in an orthonormal basis ``u = V x``:

    u_t = alpha_t ⊙ u_0 + sigma_t ⊙ eps,   eps ~ N(0, I)

with ``alpha_t`` a scalar (Gaussian DDPM, V = I) or a per-coefficient tensor (blurring diffusion,
V = 2-D DCT). Timesteps are integers ``0 .. T-1`` (0 = least noise); the network sees pixel-space
``x_t = V^T u_t`` and the integer timestep. Samplers use only this interface, so every sampler runs
with every process of the family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch

#: model_fn(x_t (B,C,H,W) pixel space, t (B,) long) -> model output (B,C,H,W), per prediction_type
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

PREDICTION_TYPES = ("epsilon", "v", "x0")


class NoiseProcess(ABC):
    """A forward process q(u_t | u_0) = N(alpha_t ⊙ u_0, sigma_t^2 I) in basis u = V x."""

    family: ClassVar[str] = "linear-gaussian"
    num_timesteps: int
    prediction_type: str

    @abstractmethod
    def to_basis(self, x: torch.Tensor) -> torch.Tensor:
        """u = V x. (B, C, H, W) -> (B, C, H, W)."""

    @abstractmethod
    def from_basis(self, u: torch.Tensor) -> torch.Tensor:
        """x = V^T u. (B, C, H, W) -> (B, C, H, W)."""

    @abstractmethod
    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_t for integer timesteps t (B,), broadcastable to (B, C, H, W) in the basis."""

    @abstractmethod
    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """sigma_t for integer timesteps t (B,), broadcastable to (B, C, H, W) in the basis."""

    @abstractmethod
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Pixel-space x_t = V^T (alpha_t ⊙ V x0 + sigma_t ⊙ V noise). Shapes (B, C, H, W)."""

    @abstractmethod
    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network must output at (x_t, t) for ``prediction_type``. (B, C, H, W)."""

    def sample_timesteps(self, batch: int, generator: torch.Generator | None = None,
                         device: torch.device | str = "cpu") -> torch.Tensor:
        """Uniform training timesteps, (B,) long in [0, T)."""
        return torch.randint(0, self.num_timesteps, (batch,), generator=generator, device=device)

    def config(self) -> dict:
        """The explicit configuration (JSON-serialisable), used in specs and checkpoint hashes."""
        return {}


@dataclass
class SampleStep:
    """One intermediate state of the reverse process (pixel space, (B, C, H, W))."""

    index: int
    timestep: int
    x_t: torch.Tensor
    x0_pred: torch.Tensor


class Sampler(ABC):
    """A reverse-process sampler for processes of the families it lists.

    Usage (diffusers style)::

        sampler = DDIMSampler(process, eta=0.0)
        sampler.set_timesteps(50)      # precomputes every per-step coefficient once
        x = sampler.sample(model_fn, (B, C, H, W), generator=g)
    """

    families: ClassVar[tuple[str, ...]] = ("linear-gaussian",)
    timesteps: torch.Tensor  # (N,) long, decreasing

    @abstractmethod
    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        """Choose the N timesteps and precompute the step coefficients."""

    @abstractmethod
    def step(self, model_output: torch.Tensor, index: int, x_t: torch.Tensor,
             noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> SampleStep:
        """One reverse step from ``timesteps[index]`` to the next listed timestep.

        ``noise`` injects the step's Gaussian noise (tests); otherwise it is drawn from ``generator``.
        """

    @abstractmethod
    def iter_sample(self, model_fn: ModelFn, shape: tuple[int, ...], *,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32,
                    x_T: torch.Tensor | None = None) -> Iterator[SampleStep]:
        """Run the reverse process, yielding every intermediate state (for GIFs and callbacks)."""

    def sample(self, model_fn: ModelFn, shape: tuple[int, ...], *,
               generator: torch.Generator | None = None, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32, x_T: torch.Tensor | None = None,
               callback: Callable[[SampleStep], None] | None = None) -> torch.Tensor:
        """The final sample x_0, (B, C, H, W)."""
        last = None
        for last in self.iter_sample(model_fn, shape, generator=generator, device=device, dtype=dtype, x_T=x_T):
            if callback is not None:
                callback(last)
        assert last is not None, "set_timesteps gave no steps"
        return last.x_t
