"""A small fake ACDC release written with nibabel: a few patients of every group, varied shapes and spacings."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np


@dataclass(frozen=True)
class FakePatient:
    pool: str  # "training" | "testing"
    number: int
    group: str
    shape: tuple[int, int, int]  # (H, W, Z)
    spacing: tuple[float, float, float]
    ed: int = 1
    es: int = 9
    suffix: str = ".nii.gz"
    has_gt: bool = True

    @property
    def id(self) -> str:
        return f"patient{self.number:03d}"


#: 2 training patients per group (10) and 3 testing patients (one without _gt files)
FAKE_PATIENTS: tuple[FakePatient, ...] = (
    FakePatient("training", 1, "DCM", (40, 48, 6), (1.5625, 1.5625, 10.0)),
    FakePatient("training", 2, "DCM", (44, 44, 5), (1.4, 1.4, 8.0), ed=3, es=11),  # ED is not frame 01
    FakePatient("training", 3, "HCM", (48, 40, 6), (1.68, 1.68, 10.0), suffix=".nii"),
    FakePatient("training", 4, "HCM", (36, 52, 4), (1.37, 1.37, 5.0)),
    FakePatient("training", 5, "MINF", (40, 40, 5), (1.5, 1.5, 10.0)),
    FakePatient("training", 6, "MINF", (46, 42, 6), (1.6, 1.6, 6.5), suffix=".nii"),
    FakePatient("training", 7, "NOR", (40, 48, 5), (1.5625, 1.5625, 10.0)),
    FakePatient("training", 8, "NOR", (50, 44, 6), (1.45, 1.45, 10.0), ed=2, es=10),
    FakePatient("training", 9, "RV", (42, 46, 5), (1.55, 1.55, 10.0)),
    FakePatient("training", 10, "RV", (44, 50, 4), (1.35, 1.35, 8.0)),
    FakePatient("testing", 101, "NOR", (40, 44, 5), (1.5, 1.5, 10.0)),
    FakePatient("testing", 102, "HCM", (44, 40, 5), (1.6, 1.6, 10.0), suffix=".nii"),
    FakePatient("testing", 103, "RV", (40, 40, 4), (1.5, 1.5, 10.0), has_gt=False),
)


def training_only_patients(per_group: int = 3) -> tuple[FakePatient, ...]:
    """``per_group`` training patients of every group (numbers 1, 2, ...) and no testing/ pool: the tree most
    users hold (ACDC's 100 training patients). Three per group give one train, val and test patient each."""
    groups = ("DCM", "HCM", "MINF", "NOR", "RV")
    return tuple(
        FakePatient("training", g * per_group + k + 1, group, (36 + 2 * k, 40 - 2 * k, 4), (1.5, 1.5, 10.0))
        for g, group in enumerate(groups)
        for k in range(per_group)
    )


def draw_heart(shape: tuple[int, int, int], rng: np.random.Generator, shrink: float = 1.0) -> np.ndarray:
    """(H, W, Z) labels: LV disc, myocardium ring, RV crescent; the last slice is left empty."""
    H, W, Z = shape
    yy, xx = np.mgrid[:H, :W]
    cy, cx = H / 2 + rng.uniform(-3, 3), W / 2 + rng.uniform(-3, 3)
    mask = np.zeros(shape, np.uint8)
    for k in range(Z - 1):
        r_lv = (6.0 - 2.5 * k / max(Z - 2, 1)) * shrink
        r_epi = r_lv + 3.0
        d = np.hypot(yy - cy, xx - cx)
        rv = (np.hypot(yy - cy, xx - (cx - r_epi)) < r_epi * 0.9) & (d >= r_epi)
        mask[..., k][rv] = 1
        mask[..., k][d < r_epi] = 2
        mask[..., k][d < r_lv] = 3
    return mask


def write_nifti(path: Path, data: np.ndarray, spacing: tuple[float, float, float]) -> None:
    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), str(path))


def build_fake_acdc(base: Path, patients: tuple[FakePatient, ...] = FAKE_PATIENTS) -> Path:
    """Write a fake ACDC release under ``base/database`` and return that folder."""
    root = base / "database"
    (root / "MANDATORY_CITATION.md").parent.mkdir(parents=True, exist_ok=True)
    (root / "MANDATORY_CITATION.md").write_text("cite Bernard et al. 2018\n")
    for p in patients:
        rng = np.random.default_rng(p.number)
        folder = root / p.pool / p.id
        folder.mkdir(parents=True)
        (folder / "Info.cfg").write_text(
            f"ED: {p.ed}\nES: {p.es}\nGroup: {p.group}\nHeight: 170.0\nNbFrame: 30\nWeight: 70.0\n"
        )
        (folder / "MANDATORY_CITATION.md").write_text("cite\n")
        for frame, shrink in ((p.ed, 1.0), (p.es, 0.7)):
            mask = draw_heart(p.shape, rng, shrink)
            image = (np.array([60, 400, 150, 420])[mask] + rng.normal(0, 15, p.shape)).clip(0).astype(np.int16)
            stem = folder / f"{p.id}_frame{frame:02d}"
            write_nifti(stem.with_name(stem.name + p.suffix), image, p.spacing)
            if p.has_gt:
                write_nifti(stem.with_name(stem.name + "_gt" + p.suffix), mask, p.spacing)
        if p.ed != 1:  # a decoy frame 01 that must not be read as ED
            decoy = np.zeros(p.shape, np.uint8)
            decoy[2:6, 2:6, :] = 1
            write_nifti(folder / f"{p.id}_frame01_gt{p.suffix}", decoy, p.spacing)
            write_nifti(folder / f"{p.id}_frame01{p.suffix}", decoy.astype(np.int16), p.spacing)
        write_nifti(folder / f"{p.id}_4d{p.suffix}", np.zeros((*p.shape, 2), np.int16), (*p.spacing, 1.0)[:3])
    return root


# -- ways to damage a tree: name -> (damage(root), text the one-line error must contain) ----------------


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _labels_out_of_range(path):
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(data, img.affine), str(path))


def set_nonfinite(path, values=(np.nan, np.inf, -np.inf)):
    """Turn ``path``'s NIfTI image into float32 and set its first voxels to ``values`` (NaN, +-inf...)."""
    img = nib.load(str(path))
    data = np.ascontiguousarray(img.dataobj, dtype=np.float32)
    data.reshape(-1)[: len(values)] = values  # a view: the array is C-contiguous
    nib.save(nib.Nifti1Image(data, img.affine), str(path))


def dangling_link(path):
    """Replace ``path`` by a symbolic link to a file that does not exist."""
    path.unlink()
    path.symlink_to(path.with_name("gone-" + path.name))


def looping_link(path):
    """Replace ``path`` by a symbolic link that points at itself (ELOOP)."""
    path.unlink()
    path.symlink_to(path.name)


def _wrong_shape(path):
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)[:-2]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), img.affine), str(path))


P1 = "training/patient001"
BAD_INPUTS = {
    "missing Info.cfg": (lambda r: (r / P1 / "Info.cfg").unlink(), "Info.cfg: missing"),
    "missing Info.cfg key": (
        lambda r: (r / P1 / "Info.cfg").write_text("ED: 1\nGroup: DCM\n"),
        "Info.cfg: missing key ES",
    ),
    "unknown group": (lambda r: (r / P1 / "Info.cfg").write_text("ED: 1\nES: 9\nGroup: XYZ\n"), "unknown Group"),
    "truncated NIfTI": (lambda r: _truncate(r / P1 / "patient001_frame01.nii.gz"), "unreadable or truncated"),
    "not a NIfTI": (
        lambda r: (r / P1 / "patient001_frame09_gt.nii.gz").write_bytes(gzip.compress(b"hello")),
        "patient001_frame09_gt.nii.gz: unreadable",
    ),
    "labels outside 0..3": (
        lambda r: _labels_out_of_range(r / P1 / "patient001_frame01_gt.nii.gz"),
        "label values outside 0..3 (7)",
    ),
    "shape mismatch": (
        lambda r: _wrong_shape(r / P1 / "patient001_frame09_gt.nii.gz"),
        "does not match the image",
    ),
    "missing image": (lambda r: (r / P1 / "patient001_frame09.nii.gz").unlink(), "Info.cfg says ES is frame 9"),
    "missing label in training": (lambda r: (r / P1 / "patient001_frame01_gt.nii.gz").unlink(), "missing label"),
    "dangling symlink": (
        lambda r: dangling_link(r / P1 / "patient001_frame01.nii.gz"),
        "patient001_frame01.nii.gz: symbolic link to",
    ),
    "symlink loop": (
        lambda r: looping_link(r / P1 / "patient001_frame09_gt.nii.gz"),
        "patient001_frame09_gt.nii.gz: symbolic link to patient001_frame09_gt.nii.gz cannot be followed",
    ),
    "dangling Info.cfg symlink": (lambda r: dangling_link(r / P1 / "Info.cfg"), "Info.cfg: symbolic link to"),
    "no finite voxel": (
        lambda r: set_nonfinite(r / P1 / "patient001_frame09.nii.gz", [np.nan] * (40 * 48 * 6)),
        "patient001_frame09.nii.gz: no finite voxel",
    ),
}
