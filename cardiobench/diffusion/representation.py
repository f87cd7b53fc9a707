"""What is diffused: representations (label maps <-> tensors) and the variable the engine works on.

The engine never decides what a diffused tensor is. Two plugins decide together:

- a **representation** (kind ``representation``) turns label maps into the tensor the model sees and
  back: ``encode`` (B, *spatial) integer labels -> (B, C, *spatial) float, ``decode`` the inverse,
  ``channels`` and ``spatial_dims`` (2 for slices, 3 for volumes: the built-in ``onehot``, ``bits`` and
  ``mri`` take the option ``spatial_dims``, default 2, left out of ``config()`` at 2). The built-in ``onehot``
  is the one-hot map in [-1, 1] decoded by argmax; analog bits or an autoencoder's latent are other
  representations of the same label maps.
- the **noise process** (kind ``noise``) owns the randomness: the prior draw ``x_T`` (``prior``) and the
  training loss (``training_loss``), because both belong to its family (white Gaussian noise and a
  regression loss for the linear-Gaussian family; a uniform categorical draw and a cross-entropy for a
  categorical family).

:class:`DiffusedVariable` binds the two at a resolution: the one object the trainer, the sampling
runner, segmentation, the GIF and the bench call. Why two plugins and not one: representations and
processes combine freely (one-hot x {gaussian, blurring, categorical}; bits x {gaussian, blurring}),
and each pair would otherwise be written again. A representation lists the process families it fits
in its registration metadata (``families``; absent: every family).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from einops import rearrange

from cardiobench.data.base import NUM_CLASSES
from cardiobench.errors import CardiobenchError, IncompatibleError

__all__ = ["DiffusedVariable", "OneHotRepresentation", "Representation", "SelfConditioned", "check_flag",
           "check_spatial_dims"]


class Representation(ABC):
    """Label maps <-> the tensor a diffusion model is trained on.

    ``encode`` and ``decode`` run on the tensor's device; ``decode(encode(m)) == m`` for every label map ``m``.
    """

    #: 2 (slices, (B, C, H, W)) or 3 (volumes, (B, C, D, H, W))
    spatial_dims: ClassVar[int] = 2
    channels: int
    num_classes: int
    #: feed the network its previous data estimate as ``channels`` extra input channels (Chen et al. 2023)
    self_condition: bool = False
    #: encodings lie in [-1, 1], so a sampler may clip its data estimate to it (an autoencoder's latent: False)
    bounded: ClassVar[bool] = True

    @abstractmethod
    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, *spatial) integer labels in ``0..num_classes-1`` -> (B, channels, *spatial) float32."""

    @abstractmethod
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels, *spatial) -> (B, *spatial) uint8 labels. Any real input decodes (it may be a noisy state)."""

    def shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """``(channels, *spatial)`` of one item at ``resolution`` (an int: a square / cube of that side)."""
        spatial = (resolution,) * self.spatial_dims if isinstance(resolution, int) else tuple(resolution)
        return (self.channels, *spatial)

    def mask_shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """Spatial shape of a decoded label map at ``resolution``: the encoded grid's unless the representation
        changes the grid (an autoencoder's latent is smaller than its label map)."""
        return tuple(self.shape(resolution)[1:])

    def config(self) -> dict[str, Any]:
        """Explicit options (JSON), so ``factory(**config())`` rebuilds it."""
        return {}


class OneHotRepresentation(Representation):
    """One-hot label maps in [-1, 1], decoded by argmax over channels (the default); slices or volumes."""

    def __init__(self, num_classes: int = NUM_CLASSES, self_condition: bool = False, spatial_dims: int = 2) -> None:
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = self.channels = int(num_classes)
        self.self_condition = check_flag("self_condition", self_condition)
        self.spatial_dims = check_spatial_dims(spatial_dims)  # type: ignore[misc]

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        # (B, *spatial) -> (B, K, *spatial): 2 * onehot - 1
        onehot = torch.nn.functional.one_hot(torch.as_tensor(masks).long(), self.num_classes)
        return rearrange(onehot, "b ... k -> b k ...").float() * 2.0 - 1.0

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        # (B, K, *spatial) -> (B, *spatial): argmax_k x_k
        return x.argmax(dim=1).to(torch.uint8)

    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, **({"self_condition": True} if self.self_condition else {}),
                **spatial_dims_config(self.spatial_dims)}


def check_flag(name: str, value: Any) -> bool:
    """A boolean option given as a bool (TOML/JSON ``true``); anything else is a ``ValueError`` naming it."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_spatial_dims(value: Any) -> int:
    """The option ``spatial_dims``: 2 (slices, the default) or 3 (volumes); anything else is a ``ValueError``."""
    if isinstance(value, bool) or value not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 (slices) or 3 (volumes), got {value!r}")
    return int(value)


def spatial_dims_config(spatial_dims: int) -> dict[str, int]:
    """``spatial_dims`` for a representation's ``config()``: left out at 2, so the hashes of 2-D models hold."""
    return {} if spatial_dims == 2 else {"spatial_dims": spatial_dims}


#: model_fn(x_t, t) -> network output; what ``training_loss`` calls (conditioning already applied)
TrainFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SelfConditioned:
    """A sampler's ``model_fn`` that feeds the network its own previous data estimate (Chen et al. 2023).

    The network sees ``concat(x_t, x0_prev)`` (2C channels; ``x0_prev = 0`` at the first step) and each call
    keeps ``x0_prev = process.predict_x0(output, x_t, t)`` for the next one. Wrapped around the sampler's final
    ``model_fn`` (conditioning and guidance included), so the estimate carried on is the guided one. One
    instance per batch: the state is that batch's.
    """

    def __init__(self, model_fn: TrainFn, process: Any) -> None:
        self.model_fn = model_fn
        self.process = process
        self.x0_prev: torch.Tensor | None = None

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        prev = self.x0_prev if self.x0_prev is not None else torch.zeros_like(x_t)
        out = self.model_fn(torch.cat([x_t, prev.to(x_t.dtype)], dim=1), t)
        self.x0_prev = self.process.predict_x0(out.detach().float(), x_t.float(), t).to(x_t.dtype)
        return out


@dataclass
class DiffusedVariable:
    """The diffused variable of one model: its representation, its noise process and its size.

    Shapes: ``masks`` (B, *spatial) uint8/long; tensors (B, C, *spatial) with ``C = representation.channels``.
    """

    representation: Representation
    process: Any  # a NoiseProcess (linear-Gaussian or another family)
    resolution: int | tuple[int, ...]

    def __post_init__(self) -> None:
        if self.self_condition and not callable(getattr(self.process, "predict_x0", None)):
            family = getattr(self.process, "family", type(self.process).__name__)
            raise CardiobenchError(
                f"self-conditioning needs the network's data estimate, which noise process family {family!r} "
                "does not give", "use a linear-Gaussian process (gaussian, blurring) or drop self_condition")

    @property
    def self_condition(self) -> bool:
        """Whether the network also sees its previous data estimate (``in_channels = 2 * channels``)."""
        return bool(getattr(self.representation, "self_condition", False))

    @property
    def in_channels(self) -> int:
        """Input channels of the network for the diffused tensor (doubled under self-conditioning)."""
        return self.channels * (2 if self.self_condition else 1)

    @property
    def item_shape(self) -> tuple[int, ...]:
        """(C, *spatial) of one diffused item (a latent representation: the latent grid)."""
        return self.representation.shape(self.resolution)

    #: the same, by the name that says what it is beside ``mask_shape``
    tensor_shape = item_shape

    @property
    def mask_shape(self) -> tuple[int, ...]:
        """Spatial shape of one decoded label map (equal to ``item_shape[1:]`` in pixel space; an autoencoder's
        label map is larger than its latent grid)."""
        return tuple(self.representation.mask_shape(self.resolution))

    def shape(self, batch: int) -> tuple[int, ...]:
        """(B, C, *spatial) of a batch of diffused tensors."""
        return (int(batch), *self.tensor_shape)

    @property
    def channels(self) -> int:
        return self.representation.channels

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        return self.representation.encode(masks)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return self.representation.decode(x)

    def prior(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_T for ``batch`` items, drawn on the CPU from ``generator`` (the caller moves it to its device)."""
        return self.process.prior(self.shape(batch), generator=generator)

    def training_loss(self, model_fn: TrainFn, x0: torch.Tensor, generator: torch.Generator, *,
                      loss: str = "mse") -> torch.Tensor:
        """The process's training loss of one batch of encoded data ``x0`` (scalar tensor).

        Under self-conditioning (Chen et al. 2023, Algorithm 1) the network sees ``concat(x_t, x0_sc)``: with
        probability 1/2 (one coin per batch, from ``generator``) ``x0_sc`` is its own estimate from a first
        pass with ``x0_sc = 0``, taken without gradient; otherwise ``x0_sc = 0``.
        """
        if not self.self_condition:
            return self.process.training_loss(model_fn, x0, generator, loss=loss)

        def self_conditioned(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            x0_sc = torch.zeros_like(x_t)
            if torch.rand((), generator=generator).item() < 0.5:
                with torch.no_grad():
                    first = model_fn(torch.cat([x_t, x0_sc], dim=1), t).float()
                    x0_sc = self.process.predict_x0(first, x_t.float(), t).to(x_t.dtype)
            return model_fn(torch.cat([x_t, x0_sc], dim=1), t)

        return self.process.training_loss(self_conditioned, x0, generator, loss=loss)

    def sampling_fn(self, model_fn: TrainFn, *, needs_grad: bool = False) -> TrainFn:
        """The ``model_fn`` a sampler calls for one batch: ``model_fn`` itself, or under self-conditioning a
        fresh :class:`SelfConditioned` wrapper (call once per batch).

        ``needs_grad``: ``model_fn`` differentiates through its input (classifier guidance). Self-conditioning
        changes that input, so the two are refused together.
        """
        if not self.self_condition:
            return model_fn
        self.check_guidance(needs_grad)
        return SelfConditioned(model_fn, self.process)

    def check_guidance(self, needs_grad: bool) -> None:
        """Refuse self-conditioning with a ``model_fn`` that differentiates through its input: self-conditioning
        changes that input (``IncompatibleError``)."""
        if self.self_condition and needs_grad:
            raise IncompatibleError("self-conditioning cannot be combined with guidance that differentiates the "
                                    "network input (classifier guidance)",
                                    "use classifier-free guidance, or drop self_condition")
