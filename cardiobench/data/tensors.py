"""Conversions between label maps and the network's tensors.

A mask batch is ``(B, 4, H, W)`` one-hot scaled to [-1, 1] (channels: background, RV, MYO, LV);
decoding is argmax over channels. Images are ``(B, 1, H, W)`` in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from cardiobench.data.base import NUM_CLASSES


def masks_to_onehot(masks: torch.Tensor | np.ndarray, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """(B, *spatial) integer labels -> (B, K, *spatial) float32 one-hot in {-1, 1} (slices or volumes)."""
    m = torch.as_tensor(np.asarray(masks) if isinstance(masks, np.ndarray) else masks).long()
    onehot = torch.nn.functional.one_hot(m, num_classes)
    return rearrange(onehot, "b ... k -> b k ...").float() * 2.0 - 1.0


def onehot_to_masks(x: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) scores -> (B, H, W) uint8 labels (argmax over channels)."""
    return x.argmax(dim=1).to(torch.uint8)


def images_to_tensor(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(B, *spatial) images in [0, 1] -> (B, 1, *spatial) float32 in [-1, 1] (slices or volumes)."""
    t = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images).float()
    return rearrange(t, "b ... -> b 1 ...") * 2.0 - 1.0
