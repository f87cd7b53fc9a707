"""A small fake ``acdc-h5`` tree (SSL4MIS layout) written with h5py: three patients per group, tiny volumes.

``build_fake_h5(base)`` writes ``base/acdc-h5/volumes/patientNNN_frameFF.h5`` (keys ``image`` float32 and
``label`` uint8, ``(Z, Y, X)``, plus an ignored ``scribble``) and ``base/acdc-h5/split_ssl4mis.json``, and
returns ``base/acdc-h5``. ``BAD_H5_INPUTS`` lists ways to damage it and what the one-line error must say.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from fake_acdc import dangling_link, draw_heart

#: three patients per group, numbered as in ACDC's training set (001-020 DCM, 021-040 HCM, ...)
GROUP_NUMBERS: dict[str, tuple[int, ...]] = {
    "DCM": (1, 2, 3),
    "HCM": (21, 22, 23),
    "MINF": (41, 42, 43),
    "NOR": (61, 62, 63),
    "RV": (81, 82, 83),
}
NUMBERS: tuple[int, ...] = tuple(n for ns in GROUP_NUMBERS.values() for n in ns)
GROUP_OF: dict[str, str] = {f"patient{n:03d}": g for g, ns in GROUP_NUMBERS.items() for n in ns}
#: (ED frame, ES frame) where it is not (1, 12); patient022's ED is frame 04, as one real patient's is
FRAMES: dict[int, tuple[int, int]] = {22: (4, 15)}
#: the split_ssl4mis.json the tree ships (not stratified, as the real one is not)
SSL4MIS_SPLIT: dict[str, list[str]] = {
    "train": [f"patient{n:03d}" for n in (1, 2, 21, 22, 41, 42, 61, 62, 81, 82)],
    "val": ["patient003", "patient023"],
    "test": ["patient043", "patient063", "patient083"],
}


def volume_shape(number: int) -> tuple[int, int, int]:
    """(Z, Y, X) of a patient's volumes: 4-5 slices, rows != cols so a wrong transpose shows."""
    return (4 + number % 2, 36 + number % 5, 42 + number % 3)


def write_h5(path: Path, image: np.ndarray | None, label: np.ndarray | None, scribble: bool = True) -> None:
    """One volume file as SSL4MIS writes it (gzip); ``None`` leaves a key out."""
    with h5py.File(path, "w") as f:
        if image is not None:
            f.create_dataset("image", data=image, compression="gzip")
        if label is not None:
            f.create_dataset("label", data=label, compression="gzip")
        if scribble and label is not None:
            f.create_dataset("scribble", data=np.full(label.shape, 4, np.uint16), compression="gzip")


def patient_volumes(number: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """``[(frame, image, label), ...]`` for ED then ES: image float32 in [0, 1], label uint8, both (Z, Y, X)."""
    rng = np.random.default_rng(number)
    z, y, x = volume_shape(number)
    out = []
    for frame, shrink in zip(FRAMES.get(number, (1, 12)), (1.0, 0.7), strict=True):
        mask = draw_heart((y, x, z), rng, shrink)  # (H, W, Z), last slice empty
        image = (np.array([60, 400, 150, 420])[mask] + rng.normal(0, 15, mask.shape)).clip(0)
        image = (image / image.max()).astype(np.float32)
        out.append((frame, image.transpose(2, 0, 1).copy(), mask.transpose(2, 0, 1).copy()))
    return out


def build_fake_h5(
    base: Path,
    numbers: tuple[int, ...] = NUMBERS,
    layout: str = "volumes",
    split: dict[str, list[str]] | None = SSL4MIS_SPLIT,
) -> Path:
    """Write the tree under ``base/acdc-h5`` (volumes in ``layout``, "" for the root itself); return that root."""
    root = base / "acdc-h5"
    folder = root / layout if layout else root
    folder.mkdir(parents=True)
    for n in numbers:
        for frame, image, label in patient_volumes(n):
            write_h5(folder / f"patient{n:03d}_frame{frame:02d}.h5", image, label)
    (folder / "README.txt").write_text("not a volume\n")
    if split is not None:
        (root / "split_ssl4mis.json").write_text(json.dumps(split))
    return root


def volume_dir(root: Path) -> Path:
    return root / "volumes" if (root / "volumes").is_dir() else root


def write_lists(folder: Path, split: dict[str, list[str]]) -> Path:
    """SSL4MIS ``train.list`` / ``val.list`` / ``test.list``: one ``patientNNN_frameFF`` line per volume."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, ids in split.items():
        lines = []
        for pid in ids:
            n = int(pid[len("patient"):])
            lines += [f"{pid}_frame{f:02d}" for f in FRAMES.get(n, (1, 12))]
        (folder / f"{name}.list").write_text("\n".join(lines) + "\n")
    return folder


# -- ways to damage a tree: name -> (damage(volume folder), text the one-line error must contain, patient) -----


def _rewrite(path: Path, change: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray | None]]) -> None:
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in ("image", "label")}
    new = change(data)
    path.unlink()
    write_h5(path, new.get("image"), new.get("label"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _labels_out_of_range(d):
    d["label"][0, 0, 0] = 7
    return d


def _label_group(path: Path) -> None:
    with h5py.File(path, "r") as f:
        image = f["image"][()]
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=image)
        f.create_group("label")


def _extra_patient(folder: Path, number: int) -> None:
    for frame, image, label in patient_volumes(1):
        write_h5(folder / f"patient{number:03d}_frame{frame:02d}.h5", image, label)


ED1, ES1 = "patient001_frame01.h5", "patient001_frame12.h5"
BAD_H5_INPUTS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "truncated HDF5": (lambda v: _truncate(v / ED1), f"{ED1}: unreadable or truncated HDF5", "patient001"),
    "not HDF5": (lambda v: (v / ES1).write_bytes(b"hello, not HDF5\n"), f"{ES1}: unreadable or truncated HDF5",
                 "patient001"),
    "missing label": (lambda v: _rewrite(v / ED1, lambda d: {"image": d["image"]}),
                      f"{ED1}: dataset 'label' is missing (keys: image)", "patient001"),
    "missing image": (lambda v: _rewrite(v / ES1, lambda d: {"label": d["label"]}),
                      f"{ES1}: dataset 'image' is missing", "patient001"),
    "label is not an array": (lambda v: _label_group(v / ED1), f"{ED1}: dataset 'label' is not an array",
                              "patient001"),
    "labels outside 0..3": (lambda v: _rewrite(v / ED1, _labels_out_of_range),
                            f"{ED1}: label values outside 0..3 (7)", "patient001"),
    "shape mismatch": (lambda v: _rewrite(v / ES1, lambda d: {"image": d["image"], "label": d["label"][:, :-2]}),
                       f"{ES1}: label shape", "patient001"),
    "one phase only": (lambda v: (v / ES1).unlink(), f"{ED1}: patient001 has one phase only (frame 01)",
                       "patient001"),
    "unknown group": (lambda v: _extra_patient(v, 101),
                      "patient101_frame01.h5: patient number 101 is outside 1..100, so its pathology group is unknown",
                      "patient101"),
    "dangling symlink": (lambda v: dangling_link(v / ED1), f"{ED1}: symbolic link to", "patient001"),
    "no finite voxel": (lambda v: _rewrite(v / ES1, lambda d: {"image": np.full_like(d["image"], np.nan),
                                                                "label": d["label"]}),
                        f"{ES1}: no finite voxel", "patient001"),
}
