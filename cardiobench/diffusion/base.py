"""The shared interface of linear Gaussian noise processes and the samplers written against it.

Every process in the ``linear-gaussian`` family is, in an orthonormal basis ``u = V x``:

    u_t = alpha_t ⊙ u_0 + sigma_t ⊙ eps,   eps ~ N(0, I)

with ``alpha_t`` a scalar (Gaussian DDPM, V = I) or a per-coefficient tensor (blurring diffusion,
V = the 2-D or 3-D DCT). Timesteps are integers ``0 .. T-1`` (0 = least noise); the network sees pixel-space
``x_t = V^T u_t`` and the integer timestep. Samplers use only this interface, so every sampler runs
with every process of the family.

**Any number of spatial axes.** Tensors are ``(B, C, *spatial)``: ``(B, C, H, W)`` slices or
``(B, C, D, H, W)`` volumes. ``alpha(t)`` and ``sigma(t)`` return ``(B, *k)``: the batch axis first, then a shape
``k`` that broadcasts against the trailing axes of one item, e.g. ``(B, 1, 1, 1)`` for a scalar schedule that
does not know the data's dimension (Gaussian DDPM) or ``(B, 1, D, H, W)`` per frequency. :func:`per_item`
inserts the missing unit axes after the batch axis, so ``per_item(alpha, x) * x`` is right for any ``x.ndim``.

Timestep ``-1`` denotes the data itself (``alpha = 1``, ``sigma = 0``): the last step of every sampler
goes there. See ``docs/diffusion.md`` for every formula.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch

from cardiobench.diffusion import posterior
from cardiobench.diffusion.posterior import PREDICTION_TYPES

#: model_fn(x_t (B, C, *spatial) pixel space, t (B,) long) -> model output (B, C, *spatial), per prediction_type
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["PREDICTION_TYPES", "ModelFn", "NoiseProcess", "SampleStep", "Sampler", "per_item"]


def per_item(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-item value ``v`` (B, *k) as (B, 1, ..., 1, *k) with ``like.ndim`` axes, broadcasting against ``like``.

    ``like`` is (B, C, *spatial); ``k`` has at most ``like.ndim - 1`` axes and broadcasts against the trailing
    axes of one item. E.g. ``alpha(t)`` of Gaussian DDPM, (B, 1, 1, 1), becomes (B, 1, 1, 1, 1) against a volume
    (B, C, D, H, W), where plain broadcasting would align B with C. A view; ``v`` itself if the ranks agree.
    """
    missing = like.dim() - v.dim()
    if missing < 0:
        raise ValueError(f"per-item value of shape {tuple(v.shape)} has more axes than {tuple(like.shape)}")
    if missing == 0:
        return v
    return v.reshape(v.shape[0], *([1] * missing), *v.shape[1:])


class NoiseProcess(ABC):
    """A forward process q(u_t | u_0) = N(alpha_t ⊙ u_0, sigma_t^2 I) in basis u = V x."""

    family: ClassVar[str] = "linear-gaussian"
    #: True when V = I (``to_basis``/``from_basis`` return their input) and alpha_t, sigma_t are scalars:
    #: samplers then skip the basis transforms and use Python-float coefficients.
    identity_basis: ClassVar[bool] = False
    num_timesteps: int
    prediction_type: str

    @abstractmethod
    def to_basis(self, x: torch.Tensor) -> torch.Tensor:
        """u = V x. (B, C, *spatial) -> (B, C, *spatial)."""

    @abstractmethod
    def from_basis(self, u: torch.Tensor) -> torch.Tensor:
        """x = V^T u. (B, C, *spatial) -> (B, C, *spatial)."""

    @abstractmethod
    def alpha(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """alpha_t for integer timesteps t (B,): (B, *k), ``per_item``-broadcastable to (B, C, *spatial) in the basis.

        ``k`` broadcasts against one item's trailing axes: e.g. (1, 1, 1) for a scalar, (1, H, W) or (1, D, H, W)
        per frequency. ``t = -1`` gives 1 (the data). Returned on ``t.device`` in ``dtype`` (default float32);
        float64 is supported on CPU (samplers precompute their coefficients from it).
        """

    @abstractmethod
    def sigma(self, t: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """sigma_t for integer timesteps t (B,), (B, *k) as :meth:`alpha` (``t = -1``: 0)."""

    @abstractmethod
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Pixel-space x_t = V^T (alpha_t ⊙ V x0 + sigma_t ⊙ V noise). Shapes (B, C, *spatial)."""

    @abstractmethod
    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network must output at (x_t, t) for ``prediction_type``. (B, C, *spatial)."""

    def sample_timesteps(self, batch: int, generator: torch.Generator | None = None,
                         device: torch.device | str = "cpu") -> torch.Tensor:
        """Uniform training timesteps, (B,) long in [0, T)."""
        return torch.randint(0, self.num_timesteps, (batch,), generator=generator, device=device)

    # -- what the engine asks of every process, whatever its family (cardiobench.diffusion.representation) --
    def prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """x_T ~ N(0, I) of ``shape`` (B, C, *spatial), on the CPU (white in every orthonormal basis)."""
        return torch.randn(shape, generator=generator)

    def training_loss(self, model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                      generator: torch.Generator, *, loss: str = "mse") -> torch.Tensor:
        """The loss of one batch of encoded data ``x0`` (B, C, *spatial), on ``x0``'s device.

        t ~ U{0..T-1}, eps ~ N(0, I) (drawn in this order from ``generator``, on the CPU);
        x_t = q_sample(x0, t, eps);  loss = mse | smooth_l1 (model_fn(x_t, t), training_target(x0, eps, t)).
        """
        t = self.sample_timesteps(x0.shape[0], generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        t, noise = t.to(x0.device), noise.to(x0.device)
        x_t = self.q_sample(x0, t, noise)
        target = self.training_target(x0, noise, t)
        out = model_fn(x_t, t).float()
        if loss == "mse":
            return torch.nn.functional.mse_loss(out, target)
        if loss == "smooth_l1":
            return torch.nn.functional.smooth_l1_loss(out, target)
        raise ValueError(f"unknown loss {loss!r} for the {self.family} family (use mse or smooth_l1)")

    def config(self) -> dict:
        """The explicit configuration (JSON-serialisable), used in specs and checkpoint hashes.

        ``factory(**process.config())`` rebuilds an identical process.
        """
        return {}

    # -- helpers shared by every process of the family (concrete; override only for speed) ----------------
    def alpha_sigma(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha_t, sigma_t)`` of one integer timestep (``-1``: the data), float64 on CPU.

        Shapes broadcast against one item ``(C, *spatial)``: ``()`` for a scalar schedule, e.g. ``(1, H, W)`` or
        ``(1, D, H, W)`` per frequency.
        Samplers precompute every step coefficient from these in ``set_timesteps``.
        """
        tt = torch.tensor([int(t)], dtype=torch.long)
        a = self.alpha(tt, dtype=torch.float64)[0]
        s = self.sigma(tt, dtype=torch.float64)[0]
        if a.numel() == 1:
            a = a.reshape(())
        if s.numel() == 1:
            s = s.reshape(())
        return a, s

    def _split_prediction(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = model_output.dtype
        a = self.alpha(t, dtype=dtype)
        s = self.sigma(t, dtype=dtype)
        x0_xt, x0_m, eps_xt, eps_m = (per_item(c, x_t) for c in
                                      posterior.prediction_coefficients(a, s, self.prediction_type))
        u_t = self.to_basis(x_t)
        m = self.to_basis(model_output)
        return self.from_basis(x0_xt * u_t + x0_m * m), self.from_basis(eps_xt * u_t + eps_m * m)

    def predict_x0(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The data estimate x0_hat (pixel space) implied by the network output at (x_t, t) (B,)."""
        return self._split_prediction(model_output, x_t, t)[0]

    def predict_eps(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise estimate eps_hat (pixel space) implied by the network output at (x_t, t) (B,).

        The score is ``-V^T (eps_hat / sigma_t)`` in the basis (classifier guidance uses this relation).
        """
        return self._split_prediction(model_output, x_t, t)[1]

    def _model_output(self, estimate: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, of: str) -> torch.Tensor:
        """The network output meaning data estimate (``of="x0"``) or noise estimate (``of="eps"``) at (x_t, t).

        In the basis, ``u_t = alpha_t ⊙ u0 + sigma_t ⊙ eps`` gives the other estimate; the output is the training
        target ``on_u0 ⊙ u0 + on_eps ⊙ eps`` of ``prediction_type``.
        """
        a = per_item(self.alpha(t, dtype=estimate.dtype), x_t)
        s = per_item(self.sigma(t, dtype=estimate.dtype), x_t)
        v, u_t = self.to_basis(estimate), self.to_basis(x_t)
        u0, eps = (v, (u_t - a * v) / s) if of == "x0" else ((u_t - s * v) / a, v)
        on_u0, on_eps = (per_item(c, x_t) for c in posterior.training_target_coefficients(a, s, self.prediction_type))
        return self.from_basis(on_u0 * u0 + on_eps * eps)

    def model_output_from(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network output that would mean data estimate ``x0`` at (x_t, t): inverse of :meth:`predict_x0`."""
        return self._model_output(x0, x_t, t, "x0")

    def model_output_from_eps(self, eps: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network output that would mean noise estimate ``eps`` at (x_t, t): inverse of :meth:`predict_eps`.

        Classifier guidance edits the noise estimate and hands the sampler this output. Shapes (B, C, *spatial);
        ``t`` (B,). For epsilon prediction it is ``eps`` itself.
        """
        if self.prediction_type == "epsilon":
            return eps
        return self._model_output(eps, x_t, t, "eps")


@dataclass
class SampleStep:
    """One intermediate state of the reverse process (pixel space, (B, C, *spatial)).

    ``index`` is the step number (0 = first), ``timestep`` the integer timestep the network saw at this
    step, ``x_t`` the state *after* the step (at the next listed timestep; the final sample after the
    last step) and ``x0_pred`` the data estimate made at ``timestep`` (clipped when the sampler clips).

    Tensors yielded by ``Sampler.iter_sample`` are the sampler's working buffers: they are overwritten by
    later steps, so ``.clone()`` (or convert) whatever you keep. ``Sampler.step`` returns fresh tensors.
    """

    index: int
    timestep: int
    x_t: torch.Tensor
    x0_pred: torch.Tensor


class Sampler(ABC):
    """A reverse-process sampler for processes of the families it lists.

    Usage (diffusers style)::

        sampler = DDIMSampler(process, eta=0.0)
        sampler.set_timesteps(50)      # precomputes every per-step coefficient once
        x = sampler.sample(model_fn, (B, C, H, W), generator=g)     # or (B, C, D, H, W)
    """

    families: ClassVar[tuple[str, ...]] = ("linear-gaussian",)
    timesteps: torch.Tensor  # (N,) long, decreasing
    #: run the network under ``torch.inference_mode`` (set False for guidance that needs autograd inside
    #: ``model_fn``; the sampler's own arithmetic then runs under ``torch.no_grad``)
    inference_mode: bool = True

    @abstractmethod
    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        """Choose the N timesteps and precompute the step coefficients."""

    @abstractmethod
    def step(self, model_output: torch.Tensor, index: int, x_t: torch.Tensor,
             noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> SampleStep:
        """One reverse step from ``timesteps[index]`` to the next listed timestep.

        ``noise`` injects the step's Gaussian noise (tests), white noise in the process's basis (pixel
        space for Gaussian DDPM, DCT coefficients for blurring); otherwise it is drawn from ``generator``.
        """

    @abstractmethod
    def iter_sample(self, model_fn: ModelFn, shape: tuple[int, ...], *,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32,
                    x_T: torch.Tensor | None = None) -> Iterator[SampleStep]:
        """Run the reverse process, yielding every intermediate state (for GIFs and callbacks)."""

    def config(self) -> dict:
        """The sampler's explicit options (JSON-serialisable), for specs and result records."""
        return {}

    def sample(self, model_fn: ModelFn, shape: tuple[int, ...], *,
               generator: torch.Generator | None = None, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32, x_T: torch.Tensor | None = None,
               callback: Callable[[SampleStep], None] | None = None) -> torch.Tensor:
        """The final sample x_0, (B, C, *spatial)."""
        last = None
        for last in self.iter_sample(model_fn, shape, generator=generator, device=device, dtype=dtype, x_T=x_T):
            if callback is not None:
                callback(last)
        assert last is not None, "set_timesteps gave no steps"
        return last.x_t
