"""The real ACDC data set (Bernard et al., IEEE TMI 2018), read from the official release layout.

::

    database/                      <- point --data-root here (or at its parent)
      training/patient001 .. patient100/
        Info.cfg                   ED: 1  ES: 12  Group: DCM  Height: 184.0  NbFrame: 30  Weight: 95.0
        patient001_4d.nii.gz       (not read)
        patient001_frame01.nii.gz  patient001_frame01_gt.nii.gz   (ED; frame number from Info.cfg)
        patient001_frame12.nii.gz  patient001_frame12_gt.nii.gz   (ES)
      testing/patient101 .. patient150/   (same; ``_gt`` files may be missing: such patients are skipped)

``testing/`` is optional: most users hold only the 100 training patients. When it is absent (or holds no
patient with labels), the training patients are split three ways by ``stratified_three_way``: per group,
``test_fraction`` (default 0.2) of them to test, then ``val_fraction`` of the rest to validation, seeded.
With a labelled ``testing/`` its patients are the test split and the training patients train and val.

``.nii`` is accepted as well as ``.nii.gz``; other files (``MANDATORY_CITATION.md``...) are ignored.
A symbolic link that leads nowhere (dangling, or a loop) in place of a patient folder or of a file the
loader needs is bad input like a damaged file (``DataError`` naming the link; skipped under ``skip_bad``).
Labels: 0 background, 1 RV cavity, 2 myocardium, 3 LV cavity. The toolkit never downloads ACDC: register
on the challenge site and unpack it yourself (see ``docs/data.md``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench.data.base import GROUPS
from cardiobench.data.files import read_text, root_folder
from cardiobench.data.nifti import NIFTI_SUFFIXES, broken_link, check_labels, find_nifti, read_nifti
from cardiobench.data.source import PHASES, Patient, Volume, VolumeSource
from cardiobench.data.splits import DEFAULT_TEST_FRACTION, check_test_fraction, stratified_three_way
from cardiobench.errors import DataError

# re-exported: these helpers lived here before they were shared (cardiobench.data.nifti, .splits)
__all__ = [
    "NIFTI_SUFFIXES",
    "ACDCSource",
    "broken_link",
    "check_labels",
    "check_test_fraction",
    "find_nifti",
    "find_root",
    "parse_info",
    "read_nifti",
]

#: environment variable holding the default ``--data-root`` of ``acdc``
ROOT_ENV = "CARDIOBENCH_ACDC_ROOT"
ACDC_URL = "https://www.creatis.insa-lyon.fr/Challenge/acdc/"
HOW_TO_GET = (
    f"register on the ACDC challenge site ({ACDC_URL}), download and unpack the data set, then pass "
    f"--data-root DIR (the folder holding training/, and testing/ if you have it) or set {ROOT_ENV}; "
    "without it, use the built-in phantom (--dataset phantom)"
)
POOLS: tuple[str, ...] = ("training", "testing")
REQUIRED_KEYS: tuple[str, ...] = ("ED", "ES", "Group")
PATIENT_RE = re.compile(r"^patient\d+$")


def find_root(data_root: str | os.PathLike | None) -> Path:
    """The folder holding ``training/`` and/or ``testing/``: ``data_root`` itself or its ``database/``."""
    root = root_folder(data_root, dataset="acdc", label="ACDC", env=ROOT_ENV, hint=HOW_TO_GET)
    for cand in (root, root / "database"):
        if any((cand / pool).is_dir() for pool in POOLS):
            return cand
    if root.name in POOLS or PATIENT_RE.match(root.name):
        raise DataError(
            f"{root} is inside the ACDC tree, not its root",
            f"point --data-root at the folder holding training/ and testing/ ({root.parent})",
        )
    if _holds_h5_volumes(root):
        raise DataError(
            f"{root} holds no training/ or testing/ folder, but HDF5 volumes (patientNNN_frameFF.h5)",
            f"read them with --dataset acdc-h5 --data-root {root}",
        )
    raise DataError(
        f"{root} holds no training/ or testing/ folder",
        "point --data-root at the ACDC 'database' folder (the one holding training/ and testing/)",
    )


def _holds_h5_volumes(root: Path) -> bool:
    """Whether ``root`` (or its ``volumes/`` / ``ACDC_training_volumes/``) holds ``patient*_frame*.h5`` files."""
    for cand in (root, root / "volumes", root / "ACDC_training_volumes"):
        try:
            if cand.is_dir() and next(cand.glob("patient*_frame*.h5"), None) is not None:
                return True
        except OSError:  # pragma: no cover - an unreadable folder: just no hint
            pass
    return False


def parse_info(path: Path) -> dict[str, str]:
    """``Info.cfg`` (``Key: value`` lines) -> dict; missing file or required key -> ``DataError``."""
    text = read_text(path, missing="missing",
                     hint="every ACDC patient folder has an Info.cfg; extract the patient again")
    info: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    missing = [k for k in REQUIRED_KEYS if not info.get(k)]
    if missing:
        raise DataError(
            f"{path}: missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            "Info.cfg needs 'ED: <frame>', 'ES: <frame>' and 'Group: <NOR|MINF|DCM|HCM|RV>' lines",
        )
    for key in ("ED", "ES", "NbFrame"):
        if key in info and not re.fullmatch(r"\d+", info[key]):
            raise DataError(f"{path}: {key} is {info[key]!r}, not a frame number", f"write e.g. '{key}: 1'")
    for key in ("ED", "ES"):
        frame = int(info[key])
        if frame < 1 or ("NbFrame" in info and frame > int(info["NbFrame"])):
            raise DataError(
                f"{path}: {key} frame {frame} is outside 1..{info.get('NbFrame', '?')}",
                "ED and ES are 1-based frame numbers of the cine sequence",
            )
    if info["Group"] not in GROUPS:
        raise DataError(f"{path}: unknown Group {info['Group']!r}", f"use one of: {', '.join(GROUPS)}")
    return info


class ACDCSource(VolumeSource):
    """The ACDC release (training/ and, if present, testing/ patients), ED and ES frames with their labels.

    ``test_fraction`` is used only without a labelled ``testing/``: the share of each group's training
    patients drawn for the test split (see the module docstring).
    """

    name = "acdc"
    version = 1

    def __init__(
        self,
        *,
        data_root: str | os.PathLike | None = None,
        test_fraction: float = DEFAULT_TEST_FRACTION,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.test_fraction = check_test_fraction(test_fraction)
        self.root = find_root(data_root)
        self._info: dict[str, dict[str, str]] = {}  # patient id -> its Info.cfg, read by patients()
        self._labelled_testing = False  # set by patients(): a testing/ patient with a _gt file exists

    def _patient_dirs(self, pool: str, problems: list[dict[str, str]] | None = None) -> list[Path]:
        """The pool's ``patientNNN`` folders; with ``problems``, broken links in their place are reported."""
        folder = self.root / pool
        if not folder.is_dir():
            return []
        dirs = []
        for p in sorted(folder.iterdir()):
            if not PATIENT_RE.match(p.name):
                continue
            if p.is_dir():
                dirs.append(p)
            elif problems is not None and (err := broken_link(p)) is not None:
                self._handle(err, p.name, problems)
        return dirs

    def fingerprint(self) -> Any:
        """Path, size and mtime of every file the loader may read, so any change rebuilds the cache.

        A file that cannot be stat'ed (a dangling or looping symbolic link) is recorded with the reason
        instead; reading the patient then reports it (or skips it under ``skip_bad``).
        """
        stats: list[list[Any]] = []
        for pool in POOLS:
            for d in self._patient_dirs(pool):
                for f in sorted(d.iterdir()):
                    if f.name == "Info.cfg" or (f.name.endswith(NIFTI_SUFFIXES) and "_frame" in f.name):
                        name = f"{pool}/{d.name}/{f.name}"
                        try:
                            st = f.stat()
                        except OSError as exc:
                            stats.append([name, None, exc.strerror or type(exc).__name__])
                            continue
                        stats.append([name, st.st_size, st.st_mtime_ns])
        return {"root": str(self.root.resolve()), "files": stats}

    def patients(self, problems: list[dict[str, str]]) -> list[Patient]:
        """Every patient of training/ (required) and testing/ (optional: absent or empty is fine)."""
        out: list[Patient] = []
        self._labelled_testing = False
        for pool in POOLS:
            folder = self.root / pool
            if not folder.is_dir():
                if pool == "testing":
                    continue  # training/ alone: assign_splits draws the test split from it
                err = DataError(
                    f"{folder}: missing",
                    f"the ACDC release has a training/ folder (patient001 .. patient100) under {self.root}; "
                    "extract the archive again",
                )
                self._handle(err, pool, problems)
                continue
            dirs = self._patient_dirs(pool, problems)
            if not dirs and pool == "training":
                self._handle(DataError(f"{folder}: no patientNNN folders", "extract the archive again"), pool, problems)
            for d in dirs:
                try:
                    info = parse_info(d / "Info.cfg")
                except DataError as err:
                    self._handle(err, d.name, problems)
                    continue
                self._info[d.name] = info
                out.append(Patient(d.name, GROUPS.index(info["Group"]), pool))
                if pool == "testing" and not self._labelled_testing:
                    self._labelled_testing = _has_labels(d)
        return out

    def assign_splits(self, patients: Iterable[Patient]) -> dict[str, str | None]:
        """With a labelled testing/: the release split (``VolumeSource.assign_splits``). Without: the training
        patients split three ways, stratified by group and seeded (``stratified_three_way``); testing/
        patients (all unlabelled then) stay in test, where they are listed as unlabelled and left out."""
        pts = list(patients)
        if self._labelled_testing:
            return super().assign_splits(pts)
        training = [p for p in pts if p.pool == "training"]
        train, val, test = stratified_three_way(
            [p.id for p in training], [p.group for p in training], self.val_fraction, self.test_fraction, self.seed
        )
        split_of: dict[str, str | None] = {p: "train" for p in train} | {p: "val" for p in val}
        split_of |= {p: "test" for p in test}
        split_of |= {p.id: "test" for p in pts if p.pool == "testing"}
        self._split_info = {
            "name": "stratified",
            "detail": f"no labelled testing/: the training patients split into train / val / test, "
            f"test_fraction {self.test_fraction:g} per group, then val_fraction {self.val_fraction:g} of the "
            f"rest (seed {self.seed})",
        }
        return split_of

    def options(self) -> dict[str, Any]:
        return super().options() | {"test_fraction": self.test_fraction}

    def read_patient(self, patient: Patient) -> list[Volume]:
        folder = self.root / patient.pool / patient.id
        info = self._info.get(patient.id) or parse_info(folder / "Info.cfg")
        volumes = []
        for phase in PHASES:
            frame = int(info[phase])
            stem = f"{patient.id}_frame{frame:02d}"
            img_path = find_nifti(folder, stem)
            if img_path is None:
                raise DataError(
                    f"{folder / (stem + '.nii.gz')}: missing (Info.cfg says {phase} is frame {frame})",
                    "extract the patient again, or fix Info.cfg",
                )
            gt_path = find_nifti(folder, stem + "_gt")
            if gt_path is None:
                if patient.pool == "testing":
                    return []  # test patients may ship without labels: nothing to use
                raise DataError(
                    f"{folder / (stem + '_gt.nii.gz')}: missing label file for {phase}",
                    "every training patient has _gt files for ED and ES; extract the patient again",
                )
            image, spacing = read_nifti(img_path)
            mask, _ = read_nifti(gt_path)
            if image.shape != mask.shape:
                raise DataError(
                    f"{gt_path}: shape {tuple(mask.shape)} does not match the image "
                    f"{img_path.name} {tuple(image.shape)}",
                    "the label file must have its image's geometry; extract both again",
                )
            volumes.append(
                Volume(
                    phase,
                    image.astype(np.float32),
                    check_labels(mask, gt_path),
                    spacing[:2],
                    spacing[2],
                    source=str(img_path),
                )
            )
        return volumes

    def source_info(self) -> dict[str, Any]:
        return {"source": str(self.root)}


def _has_labels(folder: Path) -> bool:
    """Whether a patient folder holds any ``_gt`` NIfTI (a labelled test patient)."""
    try:
        return any(f.name.endswith(("_gt.nii.gz", "_gt.nii")) for f in folder.iterdir())
    except OSError:  # an unreadable folder: reading the patient reports it
        return False
