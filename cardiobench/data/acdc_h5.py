"""ACDC as HDF5 volumes (the SSL4MIS / WSL4MIS layout): the 100 training patients, without voxel spacing.

::

    acdc-ssl4mis/                      <- point --data-root here, at volumes/ itself, or at ACDC_training_volumes/
      split_ssl4mis.json               {"train": [70 patient ids], "val": [10], "test": [20]} (split=ssl4mis)
      volumes/                         (or ACDC_training_volumes/, as in the SSL4MIS repositories)
        patient001_frame01.h5          keys image float32 (Z, Y, X), label uint8 (Z, Y, X); others ignored
        patient001_frame12.h5
        ...

- **Phases**: a patient's lower frame number is end-diastole (ED), the higher end-systole (ES); a patient
  needs exactly two files.
- **Groups** are not stored; they follow the ACDC training numbering, 20 patients each: 001-020 DCM,
  021-040 HCM, 041-060 MINF, 061-080 NOR, 081-100 RV (``GROUP_RANGES``). A number outside 1..100 is bad input.
- **Spacing** is not stored: distances are in pixels (``spacing_unit = "px"``, spacing 1.0, so after
  resizing ``SliceSet.spacing`` is source pixels per pixel) unless ``spacing_mm`` gives the in-plane
  spacing in mm (one number, or rows and cols), which makes the unit mm.
- **Splits**: ``split="stratified"`` (default) splits all patients three ways, stratified by group and
  seeded (``stratified_three_way``: ``test_fraction``, then ``val_fraction`` of the rest);
  ``split="ssl4mis"`` reads the fixed split of ``split_file`` (default: the root's ``split_ssl4mis.json``, or
  SSL4MIS ``train.list`` / ``val.list`` / ``test.list`` beside the volumes). Patients a split file does not
  name are left out and listed.
- **Bad input** (``DataError`` naming the file; skipped under ``skip_bad``): a truncated or non-HDF5 file, a
  missing ``image`` or ``label``, labels outside 0..3, an image/label shape mismatch, a patient with one
  phase only, an unknown group, a symbolic link that leads nowhere.

Axes: files are ``(Z, Y, X)``; ``Volume`` holds ``(H, W, Z) = (Y, X, Z)``. Cite Bernard et al., IEEE TMI
37(11), 2018 for any use of the data.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench.data.acdc import broken_link, check_labels, check_test_fraction
from cardiobench.data.base import GROUPS
from cardiobench.data.files import root_folder
from cardiobench.data.source import PHASES, Patient, Volume, VolumeSource
from cardiobench.data.splits import (
    DEFAULT_TEST_FRACTION,
    LIST_FILES,
    patient_id,
    read_split_file,
    stratified_three_way,
)
from cardiobench.errors import CardiobenchError, DataError, warn

#: environment variable holding the default ``--data-root`` of ``acdc-h5``
ROOT_ENV = "CARDIOBENCH_ACDC_H5_ROOT"
#: sub-folders of a data root that may hold the volumes
VOLUME_DIRS: tuple[str, ...] = ("volumes", "ACDC_training_volumes")
#: the split file ``split="ssl4mis"`` reads by default, beside the volumes or in the data root
SPLIT_JSON = "split_ssl4mis.json"
FILE_RE = re.compile(r"^patient(\d+)_frame(\d+)\.h5$")
#: ACDC training patient numbers -> pathology group (20 per group, in this order)
GROUP_RANGES: tuple[tuple[str, int, int], ...] = (
    ("DCM", 1, 20),
    ("HCM", 21, 40),
    ("MINF", 41, 60),
    ("NOR", 61, 80),
    ("RV", 81, 100),
)
SPLIT_CHOICES: tuple[str, ...] = ("stratified", "ssl4mis")
HOW_TO_GET = (
    "pass --data-root DIR: the folder of patientNNN_frameFF.h5 files, or the folder holding volumes/ or "
    f"ACDC_training_volumes/ (e.g. the WSL4MIS/SSL4MIS data/ACDC folder), or set {ROOT_ENV}"
)
GROUP_TABLE = ", ".join(f"{lo:03d}-{hi:03d} {g}" for g, lo, hi in GROUP_RANGES)


def group_of(number: int) -> str | None:
    """The pathology group of ACDC training patient ``number`` (1..100), or None outside that range."""
    for group, lo, hi in GROUP_RANGES:
        if lo <= number <= hi:
            return group
    return None


def _h5_files(folder: Path) -> list[Path]:
    """``patientNNN_frameFF.h5`` entries of ``folder`` (broken symbolic links included), sorted by name."""
    try:
        return sorted(p for p in folder.iterdir() if FILE_RE.match(p.name))
    except OSError:
        return []


def find_volumes(data_root: str | os.PathLike | None) -> tuple[Path, list[Path]]:
    """``(folder of the .h5 volumes, folders to look for split files in)`` for ``data_root``.

    ``data_root`` may be the folder of ``.h5`` files or a folder holding ``volumes/`` or
    ``ACDC_training_volumes/``; split files are looked for beside the volumes, then in that parent.
    """
    root = root_folder(data_root, dataset="acdc-h5", label="acdc-h5", env=ROOT_ENV, hint=HOW_TO_GET)
    if _h5_files(root):
        return root, [root, root.parent] if root.name in VOLUME_DIRS else [root]
    for name in VOLUME_DIRS:
        if _h5_files(root / name):
            return root / name, [root / name, root]
    if (root / "training").is_dir() or (root / "database" / "training").is_dir():
        raise DataError(f"{root} holds the NIfTI release (training/), not HDF5 volumes",
                        f"read it with --dataset acdc --data-root {root}")
    raise DataError(
        f"{root} holds no patientNNN_frameFF.h5 files and no volumes/ or ACDC_training_volumes/ folder with them",
        HOW_TO_GET,
    )


def parse_spacing(value: Any) -> tuple[float, float] | None:
    """``spacing_mm`` (None, a number, or one or two numbers) -> ``(rows, cols)`` in mm; else ``CardiobenchError``."""
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = 1 <= len(values) <= 2 and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values
    )
    nums = [float(v) for v in values] if ok else []
    if not ok or not all(math.isfinite(v) and v > 0 for v in nums):
        raise CardiobenchError(
            f"spacing_mm must be a positive in-plane pixel spacing in mm, one number or two (rows, cols), "
            f"got {value!r}",
            "e.g. spacing_mm=1.5 or spacing_mm=[1.5,1.5]; leave it out to measure distances in pixels",
        )
    return (nums[0], nums[-1])


def read_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(image, label)`` of one volume file, both ``(Z, Y, X)``. Anything unreadable -> ``DataError``."""
    import h5py

    err = broken_link(path)
    if err is not None:
        raise err
    fix = "copy this file again from its source (e.g. WSL4MIS data/ACDC/ACDC_training_volumes)"
    try:
        with h5py.File(path, "r", locking=False) as f:
            arrays = {}
            for key in ("image", "label"):
                node = f.get(key)
                if not isinstance(node, h5py.Dataset):
                    have = ", ".join(sorted(f.keys())) or "none"
                    what = "is not an array" if node is not None else "is missing"
                    raise DataError(
                        f"{path}: dataset '{key}' {what} (keys: {have})",
                        "each volume needs 'image' and 'label' arrays of shape (Z, Y, X); " + fix,
                    )
                arrays[key] = node[()]
    except DataError:
        raise
    except Exception as exc:  # OSError (truncated, not HDF5, bad chunk), and whatever h5py raises on damage
        reason = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {reason[0]}" if reason else type(exc).__name__
        raise DataError(f"{path}: unreadable or truncated HDF5 ({reason})", fix) from None
    image, label = np.asarray(arrays["image"]), np.asarray(arrays["label"])
    for key, a in (("image", image), ("label", label)):
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            raise DataError(f"{path}: '{key}' has shape {tuple(a.shape)}, expected (Z, Y, X)", fix)
        if key == "image":
            image = a
        else:
            label = a
    if image.shape != label.shape:
        raise DataError(
            f"{path}: label shape {tuple(label.shape)} does not match the image shape {tuple(image.shape)}",
            "'image' and 'label' must be voxel-aligned (Z, Y, X) arrays; " + fix,
        )
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise DataError(f"{path}: 'image' is of type {image.dtype}, not real numbers", fix)
    return image, label


class ACDCH5Source(VolumeSource):
    """ACDC training patients as ``patientNNN_frameFF.h5`` volumes (see the module docstring)."""

    name = "acdc-h5"
    version = 1

    def __init__(
        self,
        *,
        data_root: str | os.PathLike | None = None,
        split: str | None = None,
        split_file: str | os.PathLike | None = None,
        spacing_mm: float | Sequence[float] | None = None,
        test_fraction: float = DEFAULT_TEST_FRACTION,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.test_fraction = check_test_fraction(test_fraction)
        self.spacing_mm = parse_spacing(spacing_mm)
        self.spacing_unit = "mm" if self.spacing_mm else "px"
        if split is None:
            split = "ssl4mis" if split_file is not None else "stratified"
        if split not in SPLIT_CHOICES:
            raise CardiobenchError(f"unknown split {split!r} for acdc-h5", f"use one of: {', '.join(SPLIT_CHOICES)}")
        if split == "stratified" and split_file is not None:
            raise CardiobenchError("split_file is read with split=ssl4mis, not split=stratified",
                                   "drop split=stratified (a split_file implies ssl4mis), or drop split_file")
        self.split = split
        self.root, self._split_dirs = find_volumes(data_root)
        self.split_file: Path | None = None
        self._split: dict[str, list[str]] | None = None
        self._split_hash: str | None = None
        if split == "ssl4mis":
            self.split_file = Path(split_file).expanduser() if split_file is not None else self._default_split()
            self._split, content = read_split_file(self.split_file)
            self._split_hash = hashlib.sha256(content.encode()).hexdigest()
        self._frames: dict[str, tuple[Path, Path]] = {}  # patient id -> (ED file, ES file), set by patients()

    def _default_split(self) -> Path:
        """The root's ``split_ssl4mis.json``, else a folder with SSL4MIS ``.list`` files; else ``DataError``."""
        for folder in self._split_dirs:
            if (folder / SPLIT_JSON).is_file():
                return folder / SPLIT_JSON
        for folder in self._split_dirs:
            if all((folder / name).is_file() for name in LIST_FILES.values()):
                return folder
        raise DataError(
            f"split=ssl4mis: no {SPLIT_JSON} and no {', '.join(LIST_FILES.values())} in "
            f"{' or '.join(map(str, self._split_dirs))}",
            "pass split_file=PATH (a JSON of train/val/test patient lists, or a folder of .list files), "
            "or use split=stratified",
        )

    def fingerprint(self) -> Any:
        """Path, size and mtime of every volume file, and the hash of the split file's content."""
        stats: list[list[Any]] = []
        for f in _h5_files(self.root):
            try:
                st = f.stat()
            except OSError as exc:  # a dangling or looping link: reading the patient reports it
                stats.append([f.name, None, exc.strerror or type(exc).__name__])
                continue
            stats.append([f.name, st.st_size, st.st_mtime_ns])
        return {"root": str(self.root.resolve()), "files": stats, "split_file_sha256": self._split_hash}

    def options(self) -> dict[str, Any]:
        return super().options() | {
            "split": self.split,
            "split_file": str(self.split_file) if self.split_file else None,
            "spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
            "test_fraction": self.test_fraction,
        }

    def patients(self, problems: list[dict[str, str]]) -> list[Patient]:
        """One patient per number with exactly two frame files; groups from ``GROUP_RANGES``."""
        frames: dict[int, dict[int, Path]] = {}
        duplicated: set[int] = set()
        for f in _h5_files(self.root):
            m = FILE_RE.match(f.name)
            assert m is not None  # _h5_files matched it
            number, frame = int(m.group(1)), int(m.group(2))
            other = frames.setdefault(number, {}).get(frame)
            if other is not None and number not in duplicated:  # e.g. patient1_frame01.h5 and patient001_frame01.h5
                duplicated.add(number)
                self._handle(DataError(f"{f}: frame {frame} of {patient_id(number)} is also in {other.name}",
                                       "keep one file per frame"), patient_id(number), problems)
            frames[number][frame] = f
        out: list[Patient] = []
        self._frames = {}
        for number, files in sorted(frames.items()):
            pid = patient_id(number)
            if number in duplicated:
                continue
            first = files[min(files)]
            group = group_of(number)
            if group is None:
                self._handle(DataError(
                    f"{first}: patient number {number} is outside 1..100, so its pathology group is unknown",
                    f"acdc-h5 takes groups from the ACDC training numbering ({GROUP_TABLE}); "
                    "remove or rename the file",
                ), pid, problems)
                continue
            if len(files) != 2:
                found = ", ".join(f"{k:02d}" for k in sorted(files))
                what = "one phase only" if len(files) == 1 else f"{len(files)} frames"
                self._handle(DataError(
                    f"{first}: {pid} has {what} (frame {found}); ED and ES need exactly two "
                    f"{pid}_frameFF.h5 files",
                    "copy the patient's other frame too" if len(files) == 1 else "keep only the ED and ES frames",
                ), pid, problems)
                continue
            ed, es = sorted(files)
            self._frames[pid] = (files[ed], files[es])
            out.append(Patient(pid, GROUPS.index(group), "training"))
        return out

    def assign_splits(self, patients: Iterable[Patient]) -> dict[str, str | None]:
        """``split="ssl4mis"``: the split file (unnamed patients -> None); else a stratified three-way split."""
        pts = list(patients)
        if self._split is None:
            train, val, test = stratified_three_way(
                [p.id for p in pts], [p.group for p in pts], self.val_fraction, self.test_fraction, self.seed
            )
            self._split_info = {
                "name": "stratified",
                "detail": f"all patients split into train / val / test, test_fraction {self.test_fraction:g} per "
                f"group, then val_fraction {self.val_fraction:g} of the rest (seed {self.seed})",
            }
            return {p: "train" for p in train} | {p: "val" for p in val} | {p: "test" for p in test}
        split_of: dict[str, str | None] = {pid: s for s, ids in self._split.items() for pid in ids}
        present = {p.id for p in pts}
        absent = sorted(set(split_of) - present)
        if absent:
            shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
            warn(
                f"{self.split_file}: {len(absent)} listed patient(s) have no usable volumes under {self.root} "
                f"({shown}); the splits are smaller",
                UserWarning,
            )
        self._split_info = {
            "name": "ssl4mis",
            "detail": f"fixed split from {self.split_file}",
            "file": str(self.split_file),
            "listed_but_absent": absent,
        }
        return {p.id: split_of.get(p.id) for p in pts}

    def read_patient(self, patient: Patient) -> list[Volume]:
        """ED and ES volumes, ``(Z, Y, X)`` transposed to ``(H, W, Z)``, spacing from ``spacing_mm`` or 1 px."""
        if patient.id not in self._frames:  # pragma: no cover - patients() fills it
            raise DataError(f"{self.root}: {patient.id} has no volumes", "run patients() first")
        spacing = self.spacing_mm or (1.0, 1.0)
        volumes = []
        for phase, path in zip(PHASES, self._frames[patient.id], strict=True):
            image, label = read_h5(path)
            mask = check_labels(label, path, "is 'label' the segmentation?")
            volumes.append(
                Volume(
                    phase,
                    np.ascontiguousarray(image.transpose(1, 2, 0)),
                    np.ascontiguousarray(mask.transpose(1, 2, 0)),
                    spacing,
                    None,
                    source=str(path),
                )
            )
        return volumes

    def source_info(self) -> dict[str, Any]:
        return {"source": str(self.root)}
