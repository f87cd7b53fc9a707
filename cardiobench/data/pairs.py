"""Which half of an (image, label map) pair is diffused, and which is the condition.

A mask generator or a segmentation model diffuses the label map (its representation encodes masks); a
segmentation model is conditioned on the MRI slice. A mask-to-image synthesis model diffuses the image (a
representation registered with ``diffuses="image"``, e.g. ``mri``) and is conditioned on the label map. The
trainer, the pipeline and the conditioning methods ask here instead of knowing the task:

- ``diffused_items``: what the representation encodes (uint8 label maps, or uint8 grey levels of the images);
- ``paired_maps``: the spatial condition an image-conditioning method (``concat``, ``controlnet``) reads as
  ``Condition.images``: the image (1 channel in [-1, 1]) or the one-hot label map (``NUM_CLASSES`` channels in
  {-1, 1});
- ``map_channels``: that condition's channel count (the extra input channels such a method builds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cardiobench.data.base import NUM_CLASSES
from cardiobench.data.tensors import images_to_tensor, masks_to_onehot
from cardiobench.diffusion.intensity import images_to_grey

__all__ = ["condition_maps", "diffused_items", "diffuses", "map_channels", "paired_maps"]


def diffuses(representation: Any) -> str:
    """``"mask"`` (the default) or ``"image"``: what ``representation`` encodes."""
    return str(getattr(representation, "diffuses", "mask"))


def diffused_items(representation: Any, masks: np.ndarray, images: np.ndarray) -> np.ndarray:
    """The arrays ``representation.encode`` takes for (N, H, W) ``masks`` and ``images`` in [0, 1]: uint8."""
    if diffuses(representation) == "image":
        return images_to_grey(images)
    return np.asarray(masks, dtype=np.uint8)


def paired_maps(representation: Any, masks: np.ndarray | torch.Tensor, images: np.ndarray | torch.Tensor
                ) -> torch.Tensor:
    """(N, C_map, H, W) float32: the condition paired with each diffused item (see the module docstring)."""
    return condition_maps(representation, masks if diffuses(representation) == "image" else images)


def condition_maps(representation: Any, given: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, C_map, H, W) float32 from the condition half alone: ``given`` is the (N, H, W) label maps of a model
    that diffuses images, else the (N, H, W) images in [0, 1]."""
    if diffuses(representation) == "image":
        return masks_to_onehot(given)
    return images_to_tensor(given)


def map_channels(representation: Any) -> int:
    """Channels of ``paired_maps`` for ``representation``."""
    return NUM_CLASSES if diffuses(representation) == "image" else 1
