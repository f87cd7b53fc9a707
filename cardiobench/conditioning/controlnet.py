"""ControlNet (Zhang, Rao & Agrawala 2023) on top of a trained, frozen U-Net: segmentation or synthesis.

The frozen base is the unconditional model of the same spec: a mask generator for segmentation (the hint is the
MRI slice), an image generator for mask-to-image synthesis (the hint is the one-hot label map, ``NUM_CLASSES``
channels; see ``cardiobench.data.pairs``).

``ControlNetModel`` holds

- ``base``: the trained unconditional mask U-Net, frozen (``requires_grad = False``, never updated);
- ``control``: a trainable copy of the base's encoder and middle block (its time embedding, first
  convolution, down levels and middle block; initialised from the base's trained weights);
- ``hint``: a small convolutional encoder of the condition image. In pixel space it keeps the full resolution;
  in an autoencoder's latent (``f`` times coarser per side) it ends with ``log2 f`` stride-2 convolutions that
  bring the map to the latent grid: the paper's hint encoder, which exists because Stable Diffusion works in a
  64x64 latent of 512x512 images. Its last convolution is zero-initialised and its output is added after the
  copy's first convolution;
- ``zero_skips[i]`` / ``zero_mid``: zero-initialised 1x1 convolutions from each copied block's output to the
  frozen U-Net's skip ``i`` and middle block::

      skips_c, mid_c = control.encode(x_t, emb_c, hint=hint(image))
      out = base(x_t, t, residuals=([s * Z_i(skips_c[i])], s * Z_mid(mid_c)))     (s = conditioning scale)

At initialisation every ``Z`` outputs exact zeros, so the model's output equals the frozen base model's output
bit for bit (tested); training then moves only ``control``, ``hint`` and the zero convolutions.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import nn

from cardiobench.conditioning.base import BackboneFactory, Condition, ConditioningMethod
from cardiobench.conditioning.concat import require_images
from cardiobench.diffusion.base import ModelFn
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.models.layers import conv_nd
from cardiobench.specs import TrainSpec

#: what a backbone must provide to take a ControlNet (cardiobench.models.unet.UNet does)
REQUIRED = ("embed", "encode", "decode", "skip_channels")
#: modules of the base U-Net the control branch copies
COPIED = ("time_mlp", "class_emb", "init_conv", "downs", "mid")


def zero_conv(channels_in: int, channels_out: int, kernel: int = 1, spatial_dims: int = 2) -> nn.Conv2d | nn.Conv3d:
    """A zero-initialised ``kernel``-wide convolution (``nn.Conv3d``, the kernel on every axis, in 3-D)."""
    conv = conv_nd(spatial_dims)(channels_in, channels_out, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class HintEncoder(nn.Sequential):
    """Condition image (B, C_img, *spatial) -> features (B, dim, *spatial / f); zero at initialisation.

    ``hidden`` 3x3 convolutions (SiLU) at full resolution, then ``log2 f`` stride-2 3x3 convolutions (SiLU) down to
    the diffused grid (``downsampling = f``, a power of 2; none in pixel space, where the layers are exactly the
    full-resolution encoder's), then a zero-initialised 3x3 convolution to ``dim``. ``spatial_dims=3``: volumes
    (B, C_img, D, H, W) through 3x3x3 convolutions.
    """

    def __init__(self, image_channels: int, dim: int, hidden: tuple[int, ...] = (16, 32), spatial_dims: int = 2,
                 downsampling: int = 1):
        if downsampling < 1 or downsampling & (downsampling - 1):
            raise IncompatibleError(f"a ControlNet hint can be brought down by a power of 2, not {downsampling}",
                                    "use an autoencoder whose downsampling factor is a power of 2")
        conv = conv_nd(spatial_dims)
        layers: list[nn.Module] = []
        c = image_channels
        for h in hidden:
            layers += [conv(c, h, 3, padding=1), nn.SiLU()]
            c = h
        for _ in range(downsampling.bit_length() - 1):  # log2 f halvings: to the latent grid
            layers += [conv(c, c, 3, stride=2, padding=1), nn.SiLU()]
        layers.append(zero_conv(c, dim, kernel=3, spatial_dims=spatial_dims))
        super().__init__(*layers)


class ControlNetModel(nn.Module):
    """A frozen base U-Net steered by a trainable copy of its encoder: ``model(x, t, images, scale=1.0)``.

    Shapes: x (B, C, H, W), t (B,), images (B, C_img, H f, W f) -> (B, C_out, H, W) (``f = map_downsampling``: 1 in
    pixel space, the autoencoder's factor in its latent); for a 3-D base
    (``base.spatial_dims == 3``) every ``H, W`` is ``D, H, W`` and the hint encoder and zero convolutions are 3-D.
    """

    def __init__(self, base: nn.Module, image_channels: int = 1, hint_hidden: tuple[int, ...] = (16, 32),
                 map_downsampling: int = 1):
        super().__init__()
        missing = [name for name in REQUIRED if not callable(getattr(base, name, None))]
        if missing:
            raise IncompatibleError(
                f"backbone {type(base).__name__} cannot take a ControlNet: it has no {', '.join(missing)}",
                "use the unet backbone (cardiobench.models.unet), which exposes embed/encode/decode")
        self.base = base
        self.control = self._copy_encoder(base)
        channels = list(base.skip_channels())
        nd = getattr(base, "spatial_dims", 2)
        self.hint = HintEncoder(image_channels, channels[0], tuple(hint_hidden), spatial_dims=nd,
                                downsampling=map_downsampling)
        self.zero_skips = nn.ModuleList(zero_conv(c, c, spatial_dims=nd) for c in channels)
        self.zero_mid = zero_conv(channels[-1], channels[-1], spatial_dims=nd)
        self.base.requires_grad_(False)

    @staticmethod
    def _copy_encoder(base: nn.Module) -> nn.Module:
        """A deep copy of ``base`` without its decoder (``ups``, ``final_block``, ``final_conv``)."""
        ctrl = copy.deepcopy(base)
        for name in ("ups", "final_block", "final_conv"):
            if hasattr(ctrl, name):
                delattr(ctrl, name)
        ctrl.requires_grad_(True)
        return ctrl

    def load_base(self, state: dict[str, torch.Tensor]) -> None:
        """Load trained base weights into the frozen base and copy its encoder into the control branch."""
        try:
            self.base.load_state_dict(state)
        except RuntimeError as exc:
            raise CardiobenchError(f"the base checkpoint does not fit this ControlNet's U-Net: "
                                   f"{str(exc).splitlines()[0][:200]}",
                                   "train the base with the same backbone options") from None
        own = self.control.state_dict()
        self.control.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)

    def train(self, mode: bool = True) -> ControlNetModel:
        super().train(mode)
        self.base.eval()  # frozen: always in inference behaviour
        return self

    def control_parameters(self) -> Iterable[nn.Parameter]:
        for module in (self.control, self.hint, self.zero_skips, self.zero_mid):
            yield from module.parameters()

    def residuals(self, x: torch.Tensor, t: torch.Tensor, images: torch.Tensor | None, scale: float = 1.0,
                  hint: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The control branch's contributions to the base's skips and middle block. ``hint``: the hint encoder's
        output for ``images`` when already computed (sampling computes it once: the condition does not change
        between steps), else it is computed from ``images``."""
        emb = self.control.embed(t, batch=x.shape[0])
        skips, mid = self.control.encode(x, emb, hint=self.hint(images) if hint is None else hint)
        res = [z(s) for z, s in zip(self.zero_skips, skips, strict=True)]
        res_mid = self.zero_mid(mid)
        if scale != 1.0:
            res = [r * scale for r in res]
            res_mid = res_mid * scale
        return res, res_mid

    def forward(self, x: torch.Tensor, t: torch.Tensor, images: torch.Tensor | None, scale: float = 1.0,
                hint: torch.Tensor | None = None) -> torch.Tensor:
        return self.base(x, t, residuals=self.residuals(x, t, images, scale, hint=hint))


class ControlNet(ConditioningMethod):
    """ControlNet on the trained unconditional model of the same spec: segmentation or mask-to-image synthesis.

    Options: ``base_steps`` (training length of the base model; ``None`` = the same ``steps``/``epochs`` as
    this training), ``base_dataset_options`` (the base model's data-set options; ``None`` = this training's,
    e.g. ``{}`` keeps the base on the full training split while the ControlNet trains on a smaller one),
    ``hint_channels`` (widths of the hint encoder's hidden convolutions). The sampling
    ``guidance_scale`` is the ControlNet conditioning scale ``s`` multiplying every residual (1 = as trained).
    """

    name = "controlnet"
    condition = "image"
    tasks: ClassVar[tuple[str, ...]] = ("segmentation", "synthesis")
    #: the network output is mixed / conditioned as it is, whatever it means (eps, v, x0, or x0 logits)
    families: ClassVar[tuple[str, ...]] = ("linear-gaussian", "categorical")

    def __init__(self, base_steps: int | None = None, hint_channels: list[int] | tuple[int, ...] = (16, 32),
                 base_dataset_options: dict[str, Any] | None = None):
        if base_steps is not None and (not isinstance(base_steps, int) or base_steps < 1):
            raise CardiobenchError(f"base_steps must be a positive integer, got {base_steps!r}")
        if base_dataset_options is not None and not isinstance(base_dataset_options, dict):
            raise CardiobenchError(f"base_dataset_options must be a table of data-set options, got "
                                   f"{base_dataset_options!r}",
                                   "e.g. --set conditioning.options.base_dataset_options={}")
        self.base_steps = base_steps
        self.base_dataset_options = None if base_dataset_options is None else dict(base_dataset_options)
        self.hint_channels = tuple(int(c) for c in hint_channels)
        if not self.hint_channels or any(c < 1 for c in self.hint_channels):
            raise CardiobenchError(f"hint_channels must be positive integers, got {hint_channels!r}")

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"base_steps": self.base_steps, "hint_channels": list(self.hint_channels)}
        if self.base_dataset_options is not None:
            cfg["base_dataset_options"] = dict(self.base_dataset_options)
        return cfg

    def base_spec(self, spec: TrainSpec) -> TrainSpec:
        """The unconditional model this ControlNet starts from: the same spec without conditioning."""
        base = spec.replace(conditioning=None, conditioning_options={})
        if self.base_steps is not None:
            base = base.replace(steps=self.base_steps, epochs=None)
        if self.base_dataset_options is not None:
            base = base.replace(dataset_options=dict(self.base_dataset_options))
        return base

    def build_network(self, make_backbone: BackboneFactory, in_channels: int, out_channels: int) -> nn.Module:
        return ControlNetModel(make_backbone(in_channels, out_channels), self.image_channels, self.hint_channels,
                               map_downsampling=self.map_downsampling)

    def trainable_parameters(self, net: nn.Module) -> Iterable[nn.Parameter]:
        return list(net.control_parameters())

    def forward_train(self, net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: Condition,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        return net(x_t, t, require_images(cond, self.name))

    def model_fn(self, net: nn.Module, cond: Condition, *, guidance_scale: float = 1.0,
                 process: Any = None) -> ModelFn:
        images, scale = require_images(cond, self.name), float(guidance_scale)
        with torch.no_grad():  # the condition's hint features are the same at every step: computed once
            hint = net.hint(images)
        return lambda x, t: net(x, t, None, scale, hint=hint)
