"""The contract every data set plugin returns: a ``SliceSet`` of preprocessed 2-D slices (or 3-D volumes)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

#: ACDC label values -> structure names (Bernard et al., IEEE TMI 2018)
LABELS: dict[int, str] = {0: "background", 1: "RV", 2: "MYO", 3: "LV"}
#: foreground structures, in label order 1..3
STRUCTURES: tuple[str, ...] = ("RV", "MYO", "LV")
#: pathology groups; a slice's ``groups`` value is an index into this tuple
GROUPS: tuple[str, ...] = ("NOR", "MINF", "DCM", "HCM", "RV")
NUM_CLASSES = 4
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class SliceSet:
    """N preprocessed, square slices of one split. All arrays share the first axis.

    masks:       (N, H, W) uint8, labels 0..3 (background, RV, MYO, LV)
    images:      (N, H, W) float32 in [0, 1] (the MRI slice, same geometry as the mask)
    groups:      (N,) int64, index into ``GROUPS``
    patients:    (N,) str, patient id (splits never share a patient)
    phases:      (N,) str, "ED" or "ES"
    slice_index: (N,) int64, short-axis slice number in the source volume (0 = base)
    spacing:     (N, 2) float32, pixel spacing (rows, cols) after resizing, in the source's ``spacing_unit``:
                 mm, or for a source that stores no spacing ("px") pixels of the source image per pixel

    A set of **volumes** (a data set opened with ``depth=D``, ``cardiobench.data.stacks``) has the same fields
    with one more spatial axis: ``masks`` and ``images`` (N, D, H, W), base slice first; ``spacing`` (N, 3)
    (slice, rows, cols); ``slice_index`` the number of source slices the volume was made from. ``dims`` says
    which; ``slices()`` turns volumes into their N*D short-axis slices.
    """

    masks: np.ndarray
    images: np.ndarray
    groups: np.ndarray
    patients: np.ndarray
    phases: np.ndarray
    slice_index: np.ndarray
    spacing: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.masks)
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                raise ValueError(f"SliceSet.{f.name} has {len(getattr(self, f.name))} rows, masks has {n}")

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def size(self) -> int:
        """Side length H (= W) of the square slices."""
        return int(self.masks.shape[-1])

    @property
    def dims(self) -> int:
        """2 for slices, 3 for volumes."""
        return int(self.masks.ndim - 1)

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Spatial shape of one item: (H, W) or (D, H, W)."""
        return tuple(int(v) for v in self.masks.shape[1:])

    def slices(self) -> SliceSet:
        """The short-axis slices: ``self`` for slices; for volumes their N*D slices in order (volume-major), with
        the volume's group, patient and phase, ``slice_index`` the slice's position in its volume and the
        in-plane spacing."""
        if self.dims == 2:
            return self
        n, d = self.masks.shape[:2]
        return SliceSet(
            masks=self.masks.reshape(n * d, *self.masks.shape[2:]),
            images=self.images.reshape(n * d, *self.images.shape[2:]),
            groups=np.repeat(self.groups, d), patients=np.repeat(self.patients, d),
            phases=np.repeat(self.phases, d), slice_index=np.tile(np.arange(d, dtype=np.int64), n),
            spacing=np.repeat(np.asarray(self.spacing)[:, 1:], d, axis=0),
        )

    def subset(self, index: np.ndarray | slice | list[int]) -> SliceSet:
        return SliceSet(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class DataSource(Protocol):
    """What a dataset factory returns: ``factory(**options) -> DataSource``."""

    name: str

    def load(self, split: str) -> SliceSet:
        """The preprocessed slices of ``split`` (one of ``SPLITS``)."""
        ...
