"""The MRI slice itself as the diffused tensor: the representation of mask-to-image synthesis.

A representation turns *what is diffused* into a tensor and back. For the ``synthesis`` task that is the MR
image, conditioned on its label map (the segmentation task reversed). Images travel as 8-bit grey levels
(uint8, 0..255): ``encode`` maps them linearly to [-1, 1] (one channel), ``decode`` clips to [-1, 1] and rounds
back to the nearest grey level. So ``decode(encode(g)) == g`` for every grey level ``g`` (the representation
contract, with ``num_classes = 256``), generated images are stored like the masks (uint8 arrays, PNG grids),
and the 8-bit rounding (at most 1/510 of the range) is far below what any generator or ruler resolves.

Registration metadata ``diffuses="image"`` tells the engine the item is the image and the condition is the
label map (one-hot in [-1, 1], ``NUM_CLASSES`` channels); see ``cardiobench.data.pairs``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from einops import rearrange

from cardiobench.diffusion.representation import (
    Representation,
    check_flag,
    check_spatial_dims,
    spatial_dims_config,
)

__all__ = ["GREY_LEVELS", "IntensityRepresentation", "grey_to_images", "grey_to_signed", "images_to_grey",
           "signed_to_grey"]

#: grey levels of an 8-bit image
GREY_LEVELS = 256


def images_to_grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W) float images in [0, 1] -> uint8 grey levels (round to nearest; values outside are clipped)."""
    return np.rint(np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0) * (GREY_LEVELS - 1)).astype(np.uint8)


def grey_to_images(grey: np.ndarray) -> np.ndarray:
    """uint8 grey levels -> float32 images in [0, 1]."""
    return np.asarray(grey, dtype=np.float32) / (GREY_LEVELS - 1)


def grey_to_signed(grey: torch.Tensor) -> torch.Tensor:
    """(B, *S) grey levels g -> (B, 1, *S) float32 in [-1, 1]: x = 2 g / 255 - 1 (on ``grey``'s device)."""
    g = torch.as_tensor(grey).float()
    return rearrange(g, "b ... -> b 1 ...") * (2.0 / (GREY_LEVELS - 1)) - 1.0


def signed_to_grey(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, *S) real -> (B, *S) uint8 grey levels: g = round((clip(x, -1, 1) + 1) * 255 / 2); NaN -> mid grey."""
    x = torch.nan_to_num(x[:, 0].float(), nan=0.0).clamp(-1.0, 1.0)
    return torch.round((x + 1.0) * ((GREY_LEVELS - 1) / 2.0)).to(torch.uint8)


class IntensityRepresentation(Representation):
    """MR images as one channel in [-1, 1] (8-bit grey levels in, grey levels out): mask-to-image synthesis."""

    #: the engine diffuses the image and conditions on the label map (registration metadata says the same)
    diffuses: ClassVar[str] = "image"

    def __init__(self, self_condition: bool = False, spatial_dims: int = 2) -> None:
        self.channels = 1
        self.num_classes = GREY_LEVELS
        self.self_condition = check_flag("self_condition", self_condition)
        self.spatial_dims = check_spatial_dims(spatial_dims)  # type: ignore[misc]

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        # (B, *spatial) grey levels g -> (B, 1, *spatial): x = 2 g / 255 - 1
        return grey_to_signed(masks)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 1, *spatial) -> (B, *spatial): g = round((clip(x, -1, 1) + 1) * 255 / 2)
        return signed_to_grey(x)

    def config(self) -> dict[str, Any]:
        return {**({"self_condition": True} if self.self_condition else {}), **spatial_dims_config(self.spatial_dims)}
