"""A small fake ``nifti-pairs`` folder written with nibabel: M&Ms-like label order, a CSV, mixed naming.

``build_fake_pairs(base)`` writes ``base/pairs/`` and returns it::

    pairs/
      info.csv                               patient,group,ED,ES (frame numbers for the site2 patients)
      mm001_ED.nii.gz, mm001_ED_gt.nii.gz    image and mask, phase in the name
      mm001_ES.nii.gz, mm001_ES_gt.nii.gz
      ...                                    (two patients use .nii)
      site2/mm013_frame01.nii.gz, ..._gt     frames named as in ACDC; the CSV says which is ED and ES
      site2/mm013_frame03.nii.gz, ...        (mm013: a decoy frame 01, ED is frame 03)
      README.txt                             ignored

Three patients per group (15), masks in the M&Ms order (1 LV, 2 MYO, 3 RV) unless ``order="acdc"``: the same
folder in ACDC's order, with identical images, for comparing a label mapping against the truth.
``BAD_PAIRS`` lists ways to damage it and what the one-line error must say.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from fake_acdc import dangling_link, draw_heart, write_nifti

GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")
#: patient id -> group: mm001..mm015, three per group
GROUP_OF: dict[str, str] = {f"mm{3 * g + k + 1:03d}": group for g, group in enumerate(GROUPS) for k in range(3)}
#: patients written with ACDC-style frame names under site2/: id -> (ED frame, ES frame)
FRAMED: dict[str, tuple[int, int]] = {"mm013": (3, 11), "mm014": (1, 9)}
DOT_NII = ("mm004", "mm008")
#: ACDC label -> M&Ms label (ACDC 1 RV, 2 MYO, 3 LV; M&Ms 1 LV, 2 MYO, 3 RV)
TO_MNMS = np.array([0, 3, 2, 1], np.uint8)
MNMS_LABELS = '{"1":"LV","2":"MYO","3":"RV"}'


def shape_of(number: int) -> tuple[int, int, int]:
    """(H, W, Z): 4-5 slices, rows != cols."""
    return (36 + number % 5, 42 - number % 3, 4 + number % 2)


def _write_pair(folder: Path, stem: str, mask: np.ndarray, spacing, suffix: str, order: str,
                rng: np.random.Generator) -> None:
    image = (np.array([60, 400, 150, 420])[mask] + rng.normal(0, 15, mask.shape)).clip(0).astype(np.int16)
    labels = TO_MNMS[mask] if order == "mnms" else mask
    write_nifti(folder / f"{stem}{suffix}", image, spacing)
    write_nifti(folder / f"{stem}_gt{suffix}", labels, spacing)


def build_fake_pairs(base: Path, order: str = "mnms", with_csv: bool = True) -> Path:
    """Write the fake folder under ``base/pairs`` (``order``: "mnms" or "acdc" label values); return it."""
    root = base / "pairs"
    (root / "site2").mkdir(parents=True)
    (root / "README.txt").write_text("not a NIfTI: ignored\n")
    rows = ["patient,group,ED,ES"]
    for pid, group in GROUP_OF.items():
        number = int(pid[2:])
        rng = np.random.default_rng(number)
        shape = shape_of(number)
        spacing = (1.25 + 0.05 * (number % 8), 1.25 + 0.05 * (number % 8), 8.0)
        suffix = ".nii" if pid in DOT_NII else ".nii.gz"
        ed, es = draw_heart(shape, rng, 1.0), draw_heart(shape, rng, 0.7)
        if pid in FRAMED:
            f_ed, f_es = FRAMED[pid]
            _write_pair(root / "site2", f"{pid}_frame{f_ed:02d}", ed, spacing, suffix, order, rng)
            _write_pair(root / "site2", f"{pid}_frame{f_es:02d}", es, spacing, suffix, order, rng)
            if f_ed != 1:  # a decoy frame 01 that must not be read as ED
                decoy = np.zeros(shape, np.uint8)
                decoy[2:6, 2:6, :] = 1
                _write_pair(root / "site2", f"{pid}_frame01", decoy, spacing, suffix, order, rng)
            rows.append(f"{pid},{group},{f_ed},{f_es}")
        else:
            _write_pair(root, f"{pid}_ED", ed, spacing, suffix, order, rng)
            _write_pair(root, f"{pid}_ES", es, spacing, suffix, order, rng)
            rows.append(f"{pid},{group},,")
    if with_csv:
        (root / "info.csv").write_text("\n".join(rows) + "\n")
    return root


# -- ways to damage the folder: name -> (damage(root), text the one-line error must contain) -------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _set_voxel(path: Path, value: int) -> None:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = value
    nib.save(nib.Nifti1Image(data, img.affine), str(path))


def _wrong_shape(path: Path) -> None:
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(np.asarray(img.dataobj)[:-2]), img.affine), str(path))


def _empty(root: Path) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()


def _csv_row(root: Path, pid: str, row: str | None) -> None:
    lines = [ln for ln in (root / "info.csv").read_text().splitlines() if not ln.startswith(pid + ",")]
    (root / "info.csv").write_text("\n".join(lines + ([row] if row else [])) + "\n")


BAD_PAIRS: dict[str, tuple[Callable[[Path], object], str]] = {
    "mask without its image": (lambda r: (r / "mm001_ED.nii.gz").unlink(),
                               "mm001_ED_gt.nii.gz: mask without its image (no mm001_ED.nii.gz"),
    "image without its mask": (lambda r: (r / "mm001_ES_gt.nii.gz").unlink(),
                               "mm001_ES.nii.gz: image without its mask (no mm001_ES_gt.nii.gz"),
    "unknown label after mapping": (lambda r: _set_voxel(r / "mm001_ED_gt.nii.gz", 5),
                                    "mm001_ED_gt.nii.gz: label value 5 not in the labels mapping (1 LV, 2 MYO, 3 RV)"),
    "corrupt NIfTI": (lambda r: _truncate(r / "mm001_ES.nii.gz"), "mm001_ES.nii.gz: unreadable or truncated NIfTI"),
    "not a NIfTI": (lambda r: (r / "mm001_ES_gt.nii.gz").write_bytes(gzip.compress(b"hello")),
                    "mm001_ES_gt.nii.gz: unreadable or truncated NIfTI"),
    "shape mismatch": (lambda r: _wrong_shape(r / "mm001_ED_gt.nii.gz"), "does not match the image mm001_ED.nii.gz"),
    "4-D image": (lambda r: write_nifti(r / "mm001_ED.nii.gz", np.zeros((36, 40, 4, 3), np.int16), (1.5, 1.5, 8.0)),
                  "mm001_ED.nii.gz: expected a 3-D volume"),
    "unknown group in the CSV": (lambda r: _csv_row(r, "mm001", "mm001,HHD,,"),
                                 "group 'HHD' of mm001 is not one of NOR, MINF, DCM, HCM, RV"),
    "patient missing from the CSV": (lambda r: _csv_row(r, "mm001", None), "info.csv: no row for patient mm001"),
    "CSV frame without its pair": (lambda r: _csv_row(r, "mm013", "mm013,DCM,3,12"),
                                   "ES of mm013 is frame 12, but there is no mm013_frame12 pair"),
    "dangling symlink": (lambda r: dangling_link(r / "mm001_ES_gt.nii.gz"),
                         "mm001_ES_gt.nii.gz: symbolic link to "),
    "same case twice": (lambda r: write_nifti(r / "mm001_ED.nii", np.zeros((4, 4, 2), np.int16), (1.5, 1.5, 8.0)),
                        "case 'mm001_ED' is also"),
}
