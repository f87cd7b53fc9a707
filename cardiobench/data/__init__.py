"""Data sets of paired 2-D short-axis slices: the real ACDC layout and a synthetic phantom."""

from cardiobench.data.base import GROUPS, LABELS, SPLITS, STRUCTURES, SliceSet

__all__ = ["GROUPS", "LABELS", "SPLITS", "STRUCTURES", "SliceSet"]
