"""Memorisation and diversity of generated label maps, from all-pairs Dice computed as matrix products.

For two label maps a and b, ``Dice(a, b)`` is the mean over the three structures (RV, MYO, LV) of
``2 |a_k ∩ b_k| / (|a_k| + |b_k|)`` (1 when both lack the structure). With the maps one-hot encoded and
flattened to (N, H*W) per structure, every intersection count of N x M pairs is one matrix product
``A_k @ B_k.T`` (exact: counts stay far below 2^24 in float32).

- ``nn_dice_mean``: mean over generated maps of the Dice to the nearest training map.
- ``copy_frac``: fraction of generated maps whose nearest training map has Dice > 0.95 (near copies).
- ``diversity``: 1 - mean Dice over all pairs of distinct generated maps (0 = all identical).
"""

from __future__ import annotations

import numpy as np
import torch

from cardiobench.metrics.segmentation import as_label_maps

COPY_THRESHOLD = 0.95


def _flat_onehot(labels: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W) labels -> (3, N, H*W) float32 indicators of RV, MYO, LV."""
    t = torch.as_tensor(labels, device=device).reshape(len(labels), -1)
    return torch.stack([(t == k).float() for k in (1, 2, 3)])


def pairwise_dice(a, b=None, *, device: str | torch.device = "cpu", chunk: int = 512) -> torch.Tensor:
    """(N, M) float32 Dice between every map of ``a`` and every map of ``b`` (``b=None``: a with itself)."""
    dev = torch.device(device)
    la = as_label_maps(a, "a")
    oa = _flat_onehot(la, dev)
    ob = oa if b is None else _flat_onehot(as_label_maps(b, "b"), dev)
    if oa.shape[-1] != ob.shape[-1]:
        raise ValueError(f"maps differ in size: {la.shape[1:]} vs {tuple(as_label_maps(b).shape[1:])}")
    size_a, size_b = oa.sum(-1), ob.sum(-1)  # (3, N), (3, M)
    out = torch.empty(oa.shape[1], ob.shape[1], dtype=torch.float32, device=dev)
    for s in range(0, oa.shape[1], chunk):
        inter = torch.bmm(oa[:, s : s + chunk], ob.transpose(1, 2))  # (3, n, M)
        total = size_a[:, s : s + chunk, None] + size_b[:, None, :]
        dice = torch.where(total > 0, 2.0 * inter / total.clamp_min(1.0), torch.ones_like(inter))
        out[s : s + chunk] = dice.mean(0)
    return out


def nearest_dice(samples, train, *, device: str | torch.device = "cpu") -> np.ndarray:
    """(N,) Dice of every generated map to its nearest training map."""
    return pairwise_dice(samples, train, device=device).max(dim=1).values.cpu().numpy()


def diversity(samples, *, device: str | torch.device = "cpu") -> float:
    """1 - mean Dice over all pairs of distinct maps (NaN for fewer than two maps)."""
    n = len(as_label_maps(samples))
    if n < 2:
        return float("nan")
    d = pairwise_dice(samples, device=device).double()
    off = (d.sum() - d.diagonal().sum()) / (n * (n - 1))
    return float(1.0 - off)


def evaluate_memorisation(
    samples, train, *, device: str | torch.device = "cpu", copy_threshold: float = COPY_THRESHOLD
) -> dict:
    """``nn_dice_mean``, ``copy_frac`` (nearest-training Dice > ``copy_threshold``) and ``diversity``."""
    nn = nearest_dice(samples, train, device=device)
    return {
        "nn_dice_mean": float(nn.mean()) if len(nn) else float("nan"),
        "copy_frac": float((nn > copy_threshold).mean()) if len(nn) else float("nan"),
        "diversity": diversity(samples, device=device),
    }
