"""Downstream utility: a fixed reference segmenter (MONAI BasicUNet, fixed recipe) trained on (image, mask)
pairs, scored on a real test split, and a paired bootstrap to compare two segmenters slice by slice."""

from cardiobench.downstream.bootstrap import paired_bootstrap
from cardiobench.downstream.segmenter import (
    DEFAULT_FEATURES,
    DEFAULT_STEPS,
    SEGMENTERS,
    Segmenter,
    SegmenterSpec,
    fingerprint_pairs,
    load_segmenter,
    per_slice_dice,
    reference_segmenter,
    score_segmenter,
    subset_patients,
    train_segmenter,
)

__all__ = [
    "DEFAULT_FEATURES", "DEFAULT_STEPS", "SEGMENTERS", "Segmenter", "SegmenterSpec", "fingerprint_pairs",
    "load_segmenter", "paired_bootstrap", "per_slice_dice", "reference_segmenter", "score_segmenter",
    "subset_patients", "train_segmenter",
]
