"""Segmentation ensembles: the majority vote of k sampled segmentations and their per-pixel disagreement.

A diffusion segmenter draws k label maps per image. ``majority_vote`` turns them into one prediction (the
most frequent label of each pixel) and an uncertainty map (how many of the k samples disagree with the
vote); ``ensemble_summary`` reduces the map to two numbers for the result table.

Tie rule: when several labels are equally frequent at a pixel, the vote is the **lowest** label among them
(background 0 < RV 1 < MYO 2 < LV 3). It is deterministic, and for an even k it leans towards background
(a pixel that half the samples call background stays background), i.e. it never grows a structure on a tie.
"""

from __future__ import annotations

import numpy as np
import torch

from cardiobench.data.base import NUM_CLASSES
from cardiobench.errors import DataError


def _as_samples(samples) -> np.ndarray:
    """(N, k, H, W) (or volumes (N, k, D, H, W)) integer labels 0..3, numpy or torch -> uint8 numpy; a
    ``DataError`` otherwise."""
    a = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if a.ndim not in (4, 5):
        raise DataError(f"ensemble samples must be (N, k, H, W) label maps or (N, k, D, H, W) volumes, "
                        f"got shape {a.shape}")
    if a.shape[1] < 1:
        raise DataError("an ensemble needs at least one sample per image (k >= 1)")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"ensemble samples must be integer labels 0..{NUM_CLASSES - 1}, not {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= NUM_CLASSES):
        raise DataError(f"ensemble samples hold labels outside 0..{NUM_CLASSES - 1}")
    return a.astype(np.uint8, copy=False)


def label_counts(samples) -> np.ndarray:
    """(N, k, H, W) labels -> (N, H, W, 4) int32: how many of the k samples give each label at each pixel."""
    s = _as_samples(samples)
    return np.stack([(s == c).sum(axis=1, dtype=np.int32) for c in range(NUM_CLASSES)], axis=-1)


def majority_vote(samples) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel majority vote over an ensemble of label maps.

    samples: (N, k, H, W) uint8 labels 0..3 (numpy or torch): k sampled segmentations of each of N images.
    Returns ``votes`` (N, H, W) uint8, the most frequent label of each pixel (ties -> the lowest label), and
    ``disagreement`` (N, H, W) float32 = 1 - (count of the voted label) / k: 0 where all k samples agree, at
    most 1 - ceil(k/4)/k with 4 labels (0.6 for k = 5): the per-pixel uncertainty map.
    """
    counts = label_counts(samples)  # (N, H, W, 4)
    k = int(np.shape(samples)[1])
    votes = counts.argmax(axis=-1).astype(np.uint8)  # argmax returns the first maximum: the lowest label
    top = counts.max(axis=-1)
    disagreement = (1.0 - top.astype(np.float32) / np.float32(k)).astype(np.float32)
    return votes, disagreement


def ensemble_summary(disagreement, votes) -> dict[str, float]:
    """``uncertainty_mean``: mean disagreement over all pixels; ``uncertainty_fg``: over the pixels the vote
    calls foreground (NaN when there are none). Both have direction ``"none"`` (shown, not ranked).

    disagreement: (N, H, W) float in [0, 1]; votes: (N, H, W) labels (as returned by ``majority_vote``).
    """
    d = np.asarray(disagreement, dtype=np.float64)
    v = np.asarray(votes)
    if d.shape != v.shape:
        raise DataError(f"disagreement and votes shapes differ: {d.shape} vs {v.shape}")
    fg = v > 0
    return {
        "uncertainty_mean": float(d.mean()) if d.size else float("nan"),
        "uncertainty_fg": float(d[fg].mean()) if fg.any() else float("nan"),
    }


__all__ = ["ensemble_summary", "label_counts", "majority_vote"]
