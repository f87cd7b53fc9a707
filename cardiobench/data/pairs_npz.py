"""Generated (image, mask) pairs as a data set (``pairs``): what the ``utility`` task writes, any command reads.

::

    pairs/                 <- --data-root
      pairs.npz            images (N, S, S) uint8 grey levels, masks (N, S, S) uint8 labels 0..3, groups (N,) int64
      pairs.json           provenance: format, size, the generator's and the synthesis model's hashes, seed ...

``write_pairs`` writes both files atomically. ``PairsSource`` reads them back as a data set: every pair is its
own "patient" (a generated slice belongs to no patient), split three ways like ``acdc`` (20 % of each
pathology group for test, then 20 % of the rest for validation: 64 / 16 / 20 %, seeded), with the pixel as the
distance unit. The slices are used at the size they were generated at: another ``--resolution`` is a one-line
error, because resizing generated slices again would train on something no generator drew.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench.data import safe_npz
from cardiobench.data.base import GROUPS, NUM_CLASSES, SPLITS, SliceSet
from cardiobench.data.files import root_folder
from cardiobench.data.splits import stratified_three_way
from cardiobench.diffusion.intensity import images_to_grey
from cardiobench.errors import DataError
from cardiobench.paths import atomic_write_bytes

__all__ = ["FORMAT", "PAIRS_FILE", "PairsSource", "write_pairs"]

FORMAT = "cardiobench-pairs/1"
PAIRS_FILE = "pairs.npz"
META_FILE = "pairs.json"
ROOT_ENV = "CARDIOBENCH_PAIRS_ROOT"
_HINT = "pass the folder a utility run wrote (its run folder's pairs/), see docs/synthesis.md"


def write_pairs(folder: str | os.PathLike, images: np.ndarray, masks: np.ndarray, groups: np.ndarray | None = None,
                **provenance: Any) -> Path:
    """Write (N, S, S) ``images`` (uint8 grey levels, or float in [0, 1]) and ``masks`` as a ``pairs`` data set
    folder; ``groups`` (N,) pathology indices (default NOR); ``provenance``: JSON values kept in ``pairs.json``."""
    m = np.asarray(masks)
    x = np.asarray(images)
    x = x if x.dtype == np.uint8 else images_to_grey(x)
    if m.ndim != 3 or x.shape != m.shape or m.shape[1] != m.shape[2]:
        raise DataError(f"pairs must be square (N, S, S) images and masks of one shape, got {x.shape} and {m.shape}")
    g = np.zeros(len(m), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, images=x, masks=m.astype(np.uint8), groups=g)
    atomic_write_bytes(folder / PAIRS_FILE, buf.getvalue())
    meta = {"format": FORMAT, "size": int(m.shape[1]), "n": int(len(m)), **provenance}
    atomic_write_bytes(folder / META_FILE, json.dumps(meta, indent=2, default=str).encode())
    return folder


class PairsSource:
    """A folder written by ``write_pairs`` (see the module docstring)."""

    name = "pairs"
    spacing_unit = "px"

    def __init__(self, *, size: int = 32, seed: int = 0, data_root: str | os.PathLike | None = None) -> None:
        self.size, self.seed = int(size), int(seed)
        self.root = root_folder(data_root, dataset="pairs", label="pairs", env=ROOT_ENV, hint=_HINT)
        path = self.root / PAIRS_FILE
        if not path.is_file():
            raise DataError(f"{self.root} holds no {PAIRS_FILE}", _HINT)
        try:
            with safe_npz.load(path) as npz:
                arrays = {k: np.asarray(npz[k]) for k in ("images", "masks", "groups")}
        except KeyError as exc:
            raise DataError(f"{path}: missing array {exc}", "write the pairs again") from None
        x, m, g = arrays["images"], arrays["masks"], arrays["groups"]
        if m.ndim != 3 or x.shape != m.shape or g.shape != (len(m),) or x.dtype != np.uint8:
            raise DataError(f"{path}: images {x.shape} {x.dtype}, masks {m.shape} and groups {g.shape} do not fit "
                            "together", "write the pairs again")
        if m.size and int(m.max()) >= NUM_CLASSES:
            raise DataError(f"{path}: masks hold labels outside 0..{NUM_CLASSES - 1}", "write the pairs again")
        if g.size and (int(g.min()) < 0 or int(g.max()) >= len(GROUPS)):
            raise DataError(f"{path}: groups outside 0..{len(GROUPS) - 1}", "write the pairs again")
        if m.shape[1] != self.size:
            raise DataError(f"the pairs in {self.root} are {m.shape[1]}x{m.shape[2]}, not {self.size}x{self.size}",
                            f"use --resolution {m.shape[1]}")
        self.images, self.masks, self.groups = x, m, g
        ids = [f"pair{i:06d}" for i in range(len(m))]
        train, val, test = stratified_three_way(ids, g.tolist(), seed=self.seed)
        self.splits = {"train": set(train), "val": set(val), "test": set(test)}
        self.ids = np.asarray(ids)

    def load(self, split: str) -> SliceSet:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
        keep = np.flatnonzero([i in self.splits[split] for i in self.ids])
        n = len(keep)
        return SliceSet(masks=self.masks[keep], images=self.images[keep].astype(np.float32) / 255.0,
                        groups=self.groups[keep], patients=self.ids[keep], phases=np.full(n, "ED"),
                        slice_index=np.zeros(n, dtype=np.int64), spacing=np.ones((n, 2), dtype=np.float32))
