"""Analog bits (Chen, Zhang & Hinton, ICLR 2023): each label as ``ceil(log2 K)`` real-valued bits.

The ``bits`` representation writes label ``k`` in ``0..K-1`` as its binary number, most significant bit in
channel 0, each bit mapped to {-scale, +scale}::

    n      = ceil(log2 K)                                  (channels; K = 4: 2, K = 5: 3)
    b_c(k) = (k >> (n - 1 - c)) & 1                         c = 0..n-1
    x_c    = scale (2 b_c - 1)                              (the paper's b-scale; default 1: x in {-1, 1})

and decodes a real tensor by thresholding each channel at 0 and reading the binary number back::

    code = sum_c [x_c > 0] 2^(n - 1 - c)

When K is not a power of two some codes (``K .. 2^n - 1``) name no label; such a code decodes to the valid
label whose encoding is nearest to ``x`` (Euclidean; every encoding has the same norm, so the largest
correlation)::

    k_hat = argmax_{k < K} sum_c x_c (2 b_c(k) - 1)         (ties: the lower label)

i.e. the least confident bits (smallest ``|x_c|``) are flipped first: the maximum-likelihood label under
isotropic Gaussian noise. For K a power of two every code is valid and decoding is the threshold alone.

Labels of any spatial shape encode pointwise: slices (B, H, W) or, with ``spatial_dims=3``, volumes (B, D, H, W).

The encoding is continuous, so it fits the linear-Gaussian family (``gaussian``, ``blurring``) and its samplers
as they are. Self-conditioning, the paper's other ingredient, is the option ``self_condition=true`` (any
representation has it; ``DiffusedVariable`` implements it): the network also sees its previous data estimate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from einops import rearrange

from cardiobench.data.base import NUM_CLASSES
from cardiobench.diffusion.representation import (
    Representation,
    check_flag,
    check_spatial_dims,
    spatial_dims_config,
)

__all__ = ["AnalogBitsRepresentation", "bit_count"]


def bit_count(num_classes: int) -> int:
    """``ceil(log2 K)``: the bits (channels) that hold labels ``0..K-1`` (K >= 2)."""
    return (int(num_classes) - 1).bit_length()


class AnalogBitsRepresentation(Representation):
    """Analog bits: each label as ceil(log2 K) bits in {-scale, scale}, decoded by thresholding at 0."""

    def __init__(self, num_classes: int = NUM_CLASSES, scale: float = 1.0, self_condition: bool = False,
                 spatial_dims: int = 2) -> None:
        if int(num_classes) != num_classes or int(num_classes) < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes}")
        if not (math.isfinite(float(scale)) and float(scale) > 0):
            raise ValueError(f"scale must be a finite number > 0, got {scale}")
        self.num_classes = int(num_classes)
        self.scale = float(scale)
        self.channels = bit_count(self.num_classes)
        self.self_condition = check_flag("self_condition", self_condition)
        self.spatial_dims = check_spatial_dims(spatial_dims)  # type: ignore[misc]

    def _shifts(self, device: torch.device) -> torch.Tensor:
        # (n,) bit positions, most significant first: n-1, ..., 0
        return torch.arange(self.channels - 1, -1, -1, device=device)

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, *spatial) integer labels -> (B, n, *spatial) float32 in {-scale, scale}."""
        masks = torch.as_tensor(masks).long()
        # b_c = (k >> (n - 1 - c)) & 1: (B, *spatial, n)
        bits = (masks.unsqueeze(-1) >> self._shifts(masks.device)) & 1
        # x_c = scale (2 b_c - 1)
        return rearrange(bits, "b ... c -> b c ...").float().mul(2.0).sub(1.0).mul(self.scale)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, *spatial) real -> (B, *spatial) uint8 labels in ``0..K-1`` (see the module docstring)."""
        # code = sum_c [x_c > 0] 2^(n-1-c), accumulated most significant bit first
        code = torch.zeros(x.shape[:1] + x.shape[2:], dtype=torch.long, device=x.device)
        for c in range(self.channels):
            code = code * 2 + (x[:, c] > 0).long()
        if self.num_classes < 2 ** self.channels:
            # codes >= K: k_hat = argmax_{k < K} <x, 2 b(k) - 1>, the nearest valid encoding
            valid = self.encode(torch.arange(self.num_classes, device=x.device)[None]) / self.scale  # (1, n, K)
            scores = torch.einsum("bc...,ck->bk...", x.float(), valid[0])
            code = torch.where(code >= self.num_classes, scores.argmax(dim=1), code)
        return code.to(torch.uint8)

    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "scale": self.scale,
                **({"self_condition": True} if self.self_condition else {}), **spatial_dims_config(self.spatial_dims)}
