"""Reference corruptions and baselines that every ruler must order correctly (see docs/metrics.md).

- ``random_blob_masks``: a random label field (Gaussian-smoothed white noise in 4 channels, argmax):
  blobs of every label everywhere, the "no anatomy at all" baseline.
- ``shuffle_classes``: real masks with their foreground labels permuted (every map gets a random
  non-identity permutation of RV, MYO, LV): the right geometry with the wrong anatomy.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from cardiobench.data.base import NUM_CLASSES
from cardiobench.metrics.segmentation import as_label_maps


def random_blob_masks(n: int, size: int, seed: int = 0, sigma: float | None = None) -> np.ndarray:
    """(n, size, size) uint8 label maps of smoothed-noise blobs (blob scale ``sigma`` = size/21 by default)."""
    rng = np.random.default_rng(seed)
    s = size / 21.0 if sigma is None else sigma
    field = gaussian_filter(rng.standard_normal((n, NUM_CLASSES, size, size)), (0, 0, s, s))
    return field.argmax(1).astype(np.uint8)


def shuffle_classes(masks, seed: int = 0) -> np.ndarray:
    """A copy of ``masks`` with RV/MYO/LV labels permuted per map (never the identity)."""
    m = as_label_maps(masks)
    rng = np.random.default_rng(seed)
    out = np.empty_like(m)
    for i in range(len(m)):
        perm = np.arange(NUM_CLASSES)
        while (perm == np.arange(NUM_CLASSES)).all():
            perm = np.concatenate([[0], rng.permutation(NUM_CLASSES - 1) + 1])
        out[i] = perm.astype(np.uint8)[m[i]]
    return out
