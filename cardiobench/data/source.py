"""The machinery the built-in data sets share: patient splits, preprocessing, the ``.npz`` cache, ``describe``.

A subclass says which patients exist (``patients``) and how to read one patient's volumes
(``read_patient``); ``VolumeSource`` does the rest:

- assigns each patient to a split: the ``testing`` pool is the test split, the ``training`` pool is split
  into train and val by ``stratified_split`` (seeded, stratified by group, never by slice); a subclass may
  override ``assign_splits`` (a split file, a three-way split of one pool) and leave patients out (``None``);
- normalises and preprocesses every volume (``cardiobench.data.preprocess``), with optional seeded rotation
  copies of the training slices;
- caches the result as one ``.npz`` under ``cache_dir("data")``, named by a hash of the source's
  fingerprint (file paths, sizes and mtimes, or generator parameters) and every option, written
  atomically; a second ``load`` reads it back (well under a second for the default sets). The cache is
  read through ``safe_npz`` (sizes checked first) and not written when it would exceed that size limit.

Distances are in ``spacing_unit``: ``"mm"`` (the default) when the files store the voxel spacing, ``"px"``
(the source's own pixels, spacing 1.0) when they do not; ``describe()`` labels every spacing with it.

Bad input raises ``DataError`` naming the file and the problem; with ``skip_bad=True`` the patient is
skipped instead, with a ``DataWarning``, and listed in ``describe()["skipped"]``. An image with NaN or
infinite voxels is used with those voxels set to 0 (black) after normalisation and a ``NonFiniteWarning``
naming the file and the count; an image with no finite voxel at all is bad input.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench.data import safe_npz
from cardiobench.data.base import GROUPS, LABELS, SPLITS, SliceSet
from cardiobench.data.preprocess import (
    DEFAULT_MARGIN,
    PREPROCESS_VERSION,
    draw_angles,
    normalize_intensity,
    preprocess_volume,
)
from cardiobench.data.splits import DEFAULT_VAL_FRACTION, stratified_split
from cardiobench.data.stacks import DEPTH_MODES, preprocess_stack
from cardiobench.errors import CardiobenchError, DataError, warn
from cardiobench.paths import atomic_write_bytes, cache_dir

PHASES: tuple[str, ...] = ("ED", "ES")


class DataWarning(UserWarning):
    """A bad patient skipped because ``skip_bad`` is on."""


class NonFiniteWarning(UserWarning):
    """An image with NaN or infinite voxels, used with those voxels set to 0 (see ``check_finite``)."""


@dataclass(frozen=True)
class Patient:
    """One patient: id, group index (into ``GROUPS``) and pool (``"training"`` or ``"testing"``)."""

    id: str
    group: int
    pool: str


@dataclass
class Volume:
    """One phase of one patient: ``(H, W, Z)`` image (any scale) and mask (labels 0..3), in-plane spacing
    (rows, cols) in the source's ``spacing_unit`` (mm, or ``(1.0, 1.0)`` for ``"px"``), slice thickness (mm)."""

    phase: str
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float]
    thickness: float | None = None
    source: str | None = None  # the image's file, named in warnings and errors


def check_finite(vol: Volume, patient: Patient) -> None:
    """Warn (``NonFiniteWarning``, naming the file and the count) about NaN / infinite image voxels.

    ``normalize_intensity`` leaves them out of its percentiles and sets them to 0 (black); a volume with no
    finite voxel at all has nothing to normalise and is a ``DataError`` (skipped under ``skip_bad``).
    """
    img = np.asarray(vol.image)
    if not np.issubdtype(img.dtype, np.floating) or img.size == 0:
        return
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, as in normalize_intensity
        bad = img.size - int(np.count_nonzero(np.isfinite(img.astype(np.float32, copy=False))))
    if bad == 0:
        return
    where = vol.source or f"{patient.id} {vol.phase} image"
    if bad == img.size:
        raise DataError(
            f"{where}: no finite voxel (all {bad} are NaN or infinite)", "the image is unusable; extract it again"
        )
    warn(
        f"{where}: {bad} of {img.size} voxels are NaN or infinite; they are set to 0 (black), "
        "and the intensity range comes from the finite voxels",
        NonFiniteWarning,
    )


def empty_sliceset(size: int, depth: int | None = None) -> SliceSet:
    """No slices of ``size`` (or, with ``depth``, no volumes of ``depth x size x size``)."""
    lead = (0,) if depth is None else (0, depth)
    return SliceSet(
        masks=np.zeros((*lead, size, size), np.uint8),
        images=np.zeros((*lead, size, size), np.float32),
        groups=np.zeros(0, np.int64),
        patients=np.zeros(0, dtype="<U1"),
        phases=np.zeros(0, dtype="<U2"),
        slice_index=np.zeros(0, np.int64),
        spacing=np.zeros((0, 2 if depth is None else 3), np.float32),
    )


def concat_slicesets(parts: Sequence[SliceSet], size: int, depth: int | None = None) -> SliceSet:
    """Concatenate slice sets row-wise (an empty list gives an empty set of ``size``, ``depth``)."""
    if not parts:
        return empty_sliceset(size, depth)
    names = [f.name for f in fields(SliceSet)]
    return SliceSet(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})


def check_options(cls: type, name: str, options: dict[str, Any]) -> None:
    """Reject options a data set does not know with a one-line error listing the known ones."""
    known = ["size", "data_root", "seed"]
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            known += [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in known]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise CardiobenchError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for data set {name!r}",
            f"known options: {', '.join(known)}",
        )


def summarize(sets: dict[str, SliceSet], unit: str = "mm") -> dict[str, Any]:
    """Counts of any data source's splits: patients, slices, per group and phase, class frequencies, spacing.

    For volumes (``SliceSet.dims == 3``) ``volumes`` counts them, ``slices`` counts their slices, ``groups`` and
    ``phases`` count volumes, ``spacing`` is in-plane and ``slice_spacing`` the distance between their slices.

    ``groups`` and ``phases`` count slices; ``patients_by_group`` counts patients. ``spacing`` (min / median /
    max of ``SliceSet.spacing``) carries its ``unit`` (``"mm"``, or ``"px"``: pixels of the source image per
    pixel); it is also given as ``spacing_mm`` when the unit is mm.
    """
    out: dict[str, Any] = {}
    for split, s in sets.items():
        n = len(s)
        counts = np.bincount(s.masks.reshape(-1), minlength=len(LABELS)) if n else np.zeros(len(LABELS), np.int64)
        total = max(int(counts.sum()), 1)
        groups = np.bincount(s.groups, minlength=len(GROUPS)) if n else np.zeros(len(GROUPS), np.int64)
        vol = s.dims == 3
        inplane = np.asarray(s.spacing)[:, 1:] if vol else np.asarray(s.spacing)
        out[split] = {
            "patients": int(len(np.unique(s.patients))) if n else 0,
            **({"volumes": n} if vol else {}),
            "slices": n * (s.masks.shape[1] if vol else 1),
            "groups": {g: int(groups[i]) for i, g in enumerate(GROUPS)},
            "patients_by_group": {
                g: int(len(np.unique(s.patients[s.groups == i]))) if n else 0 for i, g in enumerate(GROUPS)
            },
            "phases": {p: int(np.sum(s.phases == p)) for p in PHASES},
            "class_frequencies": {LABELS[k]: round(float(counts[k]) / total, 5) for k in range(len(LABELS))},
            "spacing": (
                {
                    "min": round(float(inplane.min()), 4),
                    "median": round(float(np.median(inplane)), 4),
                    "max": round(float(inplane.max()), 4),
                    "unit": unit,
                }
                if n
                else None
            ),
        }
        if vol:  # the distance between a volume's slices after resampling to D
            th = np.asarray(s.spacing)[:, 0]
            out[split]["slice_spacing"] = ({"min": round(float(th.min()), 4), "median": round(float(np.median(th)), 4),
                                            "max": round(float(th.max()), 4), "unit": unit} if n else None)
        if unit == "mm":  # the older key, kept for readers of the JSON; never for a unit other than mm
            sp = out[split]["spacing"]
            out[split]["spacing_mm"] = {k: v for k, v in sp.items() if k != "unit"} if sp else None
    return out


def shape_summary(shapes: Counter[str]) -> dict[str, Any]:
    """Volume shapes ("HxWxZ" -> count) -> distinct count, ranges per axis, the most common few."""
    if not shapes:
        return {"volumes": 0, "distinct": 0}
    dims = np.array([[int(d) for d in k.split("x")] for k in shapes], dtype=np.int64)
    return {
        "volumes": int(sum(shapes.values())),
        "distinct": len(shapes),
        "rows": [int(dims[:, 0].min()), int(dims[:, 0].max())],
        "cols": [int(dims[:, 1].min()), int(dims[:, 1].max())],
        "slices": [int(dims[:, 2].min()), int(dims[:, 2].max())],
        "most_common": [[k, n] for k, n in shapes.most_common(3)],
    }


class VolumeSource:
    """Base class of the built-in data sets (see the module docstring). Subclasses set ``name``."""

    name = "volumes"
    #: bump in a subclass when what it reads or generates changes, so cached sets are rebuilt
    version = 1
    #: unit of ``Volume.spacing`` and ``SliceSet.spacing``: "mm", or "px" when the files store no spacing
    #: (then the spacing after resizing is in pixels of the source image; metrics report pixels)
    spacing_unit: str = "mm"

    def __init__(
        self,
        *,
        size: int = 64,
        seed: int = 0,
        margin: float = DEFAULT_MARGIN,
        val_fraction: float = DEFAULT_VAL_FRACTION,
        rotations: int = 0,
        rotation_angles: Sequence[float] | None = None,
        skip_bad: bool = False,
        cache: bool = True,
        depth: int | None = None,
        depth_mode: str = "resample",
        slice_spacing: float | None = None,
        as_slices: bool = False,
    ):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
            raise CardiobenchError(f"size must be an integer >= 8, got {size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise CardiobenchError(f"seed must be a non-negative integer, got {seed!r}")
        if not 0.0 <= float(margin) <= 1.0:
            raise CardiobenchError(f"margin must be in [0, 1] (a fraction of the heart's size), got {margin!r}")
        if not 0.0 <= float(val_fraction) < 1.0:
            raise CardiobenchError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        if isinstance(rotations, bool) or not isinstance(rotations, (int, np.integer)) or rotations < 0:
            raise CardiobenchError(f"rotations (extra rotated copies per slice) must be >= 0, got {rotations!r}")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2):
            raise CardiobenchError(f"depth (slices per volume) must be an integer >= 2, got {depth!r}",
                                   "e.g. --dims 3 --depth 8, or leave depth out for 2-D slices")
        if depth_mode not in DEPTH_MODES:
            raise CardiobenchError(f"unknown depth_mode {depth_mode!r}", f"use one of: {', '.join(DEPTH_MODES)}")
        if slice_spacing is not None and (isinstance(slice_spacing, bool) or not isinstance(
                slice_spacing, (int, float, np.integer, np.floating)) or not float(slice_spacing) > 0):
            raise CardiobenchError(f"slice_spacing must be a positive number, got {slice_spacing!r}",
                                   "the distance between source slices, in the data set's spacing unit")
        if not isinstance(as_slices, bool) or (as_slices and depth is None):
            raise CardiobenchError(f"as_slices must be true or false and needs a depth, got {as_slices!r}",
                                   "as_slices=true with depth=D gives the 2-D slices of the D-slice volumes")
        #: volumes of ``depth`` slices (``cardiobench.data.stacks``) instead of 2-D slices; None: slices
        self.depth = None if depth is None else int(depth)
        #: with ``depth``: ``load`` gives the volumes' slices (``SliceSet.slices()``), so a 2-D model sees exactly
        #: the slices a 3-D model sees (one crop per stack, resampled through-plane)
        self.as_slices = as_slices
        self.depth_mode = depth_mode
        self.slice_spacing = None if slice_spacing is None else float(slice_spacing)
        self.size = int(size)
        self.seed = int(seed)
        self.margin = float(margin)
        self.val_fraction = float(val_fraction)
        self.rotations = int(rotations)
        self.rotation_angles = tuple(float(a) for a in rotation_angles) if rotation_angles else None
        self.skip_bad = bool(skip_bad)
        self.cache = bool(cache)
        self._sets: dict[str, SliceSet] | None = None
        self._meta: dict[str, Any] = {}
        self._path: Path | None = None
        self.cache_hit: bool | None = None
        self.load_seconds: float | None = None
        #: how ``assign_splits`` split the patients: {"name": ..., "detail": one sentence}, stored in the cache
        self._split_info: dict[str, Any] = {}

    # -- what a subclass provides -----------------------------------------------------------
    def fingerprint(self) -> Any:
        """JSON-able identity of the source's content (file stats, generator parameters)."""
        raise NotImplementedError

    def patients(self, problems: list[dict[str, str]]) -> list[Patient]:
        """Every patient; bad ones raise ``DataError`` (or, with ``skip_bad``, go to ``problems``)."""
        raise NotImplementedError

    def read_patient(self, patient: Patient) -> list[Volume]:
        """The patient's labelled volumes (ED, ES); ``[]`` if it has no labels. Raises ``DataError``."""
        raise NotImplementedError

    def source_info(self) -> dict[str, Any]:
        """Extra lines for ``describe()`` (where the data comes from)."""
        return {}

    # -- options and cache ------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """Every option that changes the preprocessed output."""
        return {
            "size": self.size,
            "seed": self.seed,
            "margin": self.margin,
            "val_fraction": self.val_fraction,
            "rotations": self.rotations,
            "rotation_angles": list(self.rotation_angles) if self.rotation_angles else None,
            "skip_bad": self.skip_bad,
            # volumes only: absent for slices, so the cache names of 2-D sets are unchanged
            **({"depth": self.depth, "depth_mode": self.depth_mode, "slice_spacing": self.slice_spacing}
               if self.depth is not None else {}),
        }

    def cache_key(self) -> str:
        blob = {
            "dataset": self.name,
            "version": self.version,
            "preprocess": PREPROCESS_VERSION,
            "source": self.fingerprint(),
            "options": self.options(),
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()

    def cache_path(self) -> Path:
        shape = f"{self.depth}x{self.size}px" if self.depth is not None else f"{self.size}px"
        return cache_dir("data") / f"{self.name}-{shape}-{self.cache_key()[:20]}.npz"

    def _read_cache(self, path: Path) -> tuple[dict[str, SliceSet], dict[str, Any]] | None:
        if not path.is_file():
            return None
        try:
            with safe_npz.load(path) as z:
                meta = json.loads(str(z["meta"]))
                sets = {
                    split: SliceSet(**{f.name: z[f"{split}.{f.name}"] for f in fields(SliceSet)}) for split in SPLITS
                }
            return sets, meta
        except Exception as exc:  # a damaged (or oversized) cache file is rebuilt, never fatal
            why = exc.format_message() if isinstance(exc, DataError) else type(exc).__name__
            warn(f"ignoring unreadable cache {path} ({why}); rebuilding")
            return None

    @staticmethod
    def _write_cache(path: Path, sets: dict[str, SliceSet], meta: dict[str, Any]) -> None:
        arrays = {f"{split}.{k}": v for split, s in sets.items() for k, v in s.arrays().items()}
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
        with zipfile.ZipFile(buf) as zf:
            declared, cap = safe_npz.declared_bytes(zf), safe_npz.max_bytes()
        if declared > cap:  # it could not be read back: say so once instead of rebuilding it on every load
            warn(
                f"not caching {path.name}: {safe_npz.human(declared)} is above the {safe_npz.human(cap)} limit "
                f"on .npz files; set {safe_npz.MAX_BYTES_ENV} higher to cache it",
            )
            return
        atomic_write_bytes(path, buf.getvalue())

    # -- building -----------------------------------------------------------------------------
    def assign_splits(self, patients: Iterable[Patient]) -> dict[str, str | None]:
        """patient id -> split: testing pool -> test; training pool -> train/val (stratified, seeded).

        An override may map a patient to ``None`` (or leave it out): it is then not read and is listed in
        ``describe()["unassigned_patients"]``. It may set ``self._split_info`` ({"name", "detail"}).
        """
        pts = list(patients)
        training = [p for p in pts if p.pool == "training"]
        ids, groups = [p.id for p in training], [p.group for p in training]
        train, val = stratified_split(ids, groups, self.val_fraction, self.seed)
        split_of: dict[str, str | None] = {p: "train" for p in train} | {p: "val" for p in val}
        split_of.update({p.id: "test" for p in pts if p.pool == "testing"})
        self._split_info = {
            "name": "pools",
            "detail": f"test = the testing patients; the training patients split into train / val, "
            f"val_fraction {self.val_fraction:g} per group (seed {self.seed})",
        }
        return split_of

    def _handle(self, err: DataError, patient: str, problems: list[dict[str, str]]) -> None:
        if not self.skip_bad:
            raise err
        msg = err.format_message()
        problems.append({"patient": patient, "problem": msg})
        warn(f"skipped {patient}: {msg}", DataWarning)

    def build(self) -> tuple[dict[str, SliceSet], dict[str, Any]]:
        """Read (or generate) and preprocess every split, without the cache."""
        t0 = time.perf_counter()
        problems: list[dict[str, str]] = []
        patients = self.patients(problems)
        split_of = self.assign_splits(patients)
        parts: dict[str, list[SliceSet]] = {s: [] for s in SPLITS}
        used: dict[str, set[str]] = {s: set() for s in SPLITS}
        shapes: Counter[str] = Counter()
        spacings: list[tuple[float, ...]] = []
        unlabelled: list[str] = []
        unassigned: list[str] = []
        lost_slices = 0  # volumes, depth_mode "pad": source slices beyond the D kept
        for patient in patients:
            split = split_of.get(patient.id)
            if split is None:  # e.g. not in the split file: not read at all
                unassigned.append(patient.id)
                continue
            try:
                volumes = self.read_patient(patient)
                for vol in volumes:
                    check_finite(vol, patient)
            except DataError as err:
                self._handle(err, patient.id, problems)
                continue
            if not volumes:
                unlabelled.append(patient.id)
                continue
            for vol in volumes:
                shapes["x".join(map(str, vol.mask.shape))] += 1
                spacings.append((*vol.spacing, vol.thickness if vol.thickness is not None else float("nan")))
                angles = None
                if split == "train" and self.rotations:
                    rng = np.random.default_rng([self.seed, zlib.crc32(patient.id.encode()), PHASES.index(vol.phase)])
                    n_draw = 1 if self.depth is not None else vol.mask.shape[2]  # one angle per copy of a volume
                    angles = draw_angles(rng, n_draw, self.rotations, self.rotation_angles)
                if self.depth is not None:
                    item, dropped = self._stack(vol, patient, angles[0] if angles else ())
                    lost_slices += dropped
                    if item is not None:
                        used[split].add(patient.id)
                        parts[split].append(item)
                    continue
                sl = preprocess_volume(
                    normalize_intensity(vol.image), vol.mask, vol.spacing, self.size, self.margin, angles
                )
                n = len(sl)
                if n == 0:
                    continue
                used[split].add(patient.id)
                parts[split].append(
                    SliceSet(
                        masks=sl.masks,
                        images=sl.images,
                        groups=np.full(n, patient.group, np.int64),
                        patients=np.full(n, patient.id),
                        phases=np.full(n, vol.phase),
                        slice_index=sl.slice_index,
                        spacing=sl.spacing,
                    )
                )
        sets = {s: concat_slicesets(parts[s], self.size, self.depth) for s in SPLITS}
        sp = np.asarray(spacings, dtype=np.float64).reshape(-1, 3)
        has_sp, has_th = len(sp) > 0, bool(np.isfinite(sp[:, 2]).any())
        meta = {
            "patients": {s: len(used[s]) for s in SPLITS},
            "native_shapes": shape_summary(shapes),
            "native_spacing": {
                "in_plane_min": round(float(np.nanmin(sp[:, :2])), 4) if has_sp else None,
                "in_plane_max": round(float(np.nanmax(sp[:, :2])), 4) if has_sp else None,
                "thickness_min": round(float(np.nanmin(sp[:, 2])), 4) if has_th else None,  # always mm
                "thickness_max": round(float(np.nanmax(sp[:, 2])), 4) if has_th else None,
            },
            "split": dict(self._split_info),
            "unlabelled_patients": unlabelled,
            "unassigned_patients": unassigned,
            "skipped": problems,
            "build_seconds": round(time.perf_counter() - t0, 3),
            **({"volumes": {"depth": self.depth, "depth_mode": self.depth_mode, "slices_dropped": lost_slices}}
               if self.depth is not None else {}),
        }
        return sets, meta

    def _stack(self, vol: Volume, patient: Patient, angles: Sequence[float]) -> tuple[SliceSet | None, int]:
        """One phase as volumes (``cardiobench.data.stacks``): the stack and its rotated copies, and the number of
        source slices ``depth_mode="pad"`` dropped."""
        thickness = vol.thickness if vol.thickness is not None else self.slice_spacing
        if thickness is None:
            if self.spacing_unit == "mm":
                raise DataError(f"{vol.source or patient.id}: no slice thickness, so the volume's slice spacing "
                                "is unknown", "give the data set option slice_spacing (mm between slices)")
            thickness = 1.0  # "px": the slice axis in source slices
        stacks = preprocess_stack(normalize_intensity(vol.image), vol.mask, vol.spacing, float(thickness), self.size,
                                  int(self.depth or 0), self.margin, self.depth_mode, angles)
        if not stacks:
            return None, 0
        n = len(stacks)
        return SliceSet(
            masks=np.stack([st.mask for st in stacks]), images=np.stack([st.image for st in stacks]),
            groups=np.full(n, patient.group, np.int64), patients=np.full(n, patient.id),
            phases=np.full(n, vol.phase), slice_index=np.array([st.source_slices for st in stacks], np.int64),
            spacing=np.stack([st.spacing for st in stacks]),
        ), stacks[0].dropped

    def _ensure(self) -> dict[str, SliceSet]:
        if self._sets is not None:
            return self._sets
        t0 = time.perf_counter()
        path = self._path = self.cache_path() if self.cache else None
        cached = self._read_cache(path) if path is not None else None
        if cached is not None:
            self._sets, self._meta = cached
            self.cache_hit = True
        else:
            self._sets, self._meta = self.build()
            self.cache_hit = False
            if path is not None:
                self._write_cache(path, self._sets, self._meta)
        self.load_seconds = time.perf_counter() - t0
        return self._sets

    # -- the DataSource interface --------------------------------------------------------------
    def load(self, split: str) -> SliceSet:
        """The preprocessed slices of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in SPLITS:
            raise CardiobenchError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
        return self._ensure()[split].slices() if self.as_slices else self._ensure()[split]

    def load_all(self) -> dict[str, SliceSet]:
        return {split: self.load(split) for split in SPLITS}

    def describe(self) -> dict[str, Any]:
        """Everything ``cardiobench data info`` shows, JSON-able."""
        sets = self.load_all()
        meta = self._meta
        unit = self.spacing_unit
        splits = summarize(sets, unit)
        for s in SPLITS:
            splits[s]["patients"] = int(meta.get("patients", {}).get(s, splits[s]["patients"]))
        native_sp = dict(meta.get("native_spacing") or meta.get("native_spacing_mm") or {})  # older caches
        native: dict[str, Any] = {"shapes": meta.get("native_shapes", {}), "spacing": native_sp | {"unit": unit}}
        if unit == "mm":
            native["spacing_mm"] = native_sp
        return {
            "dataset": self.name,
            **self.source_info(),
            "spacing_unit": unit,
            "split": meta.get("split") or {},
            "options": self.options() | ({"as_slices": True} if self.as_slices else {}),
            "dims": 3 if self.depth is not None and not self.as_slices else 2,
            "item_shape": list(next(iter(sets.values())).item_shape),
            **({"volumes": meta.get("volumes")} if self.depth is not None else {}),
            "splits": splits,
            "native": native,
            "unlabelled_patients": meta.get("unlabelled_patients", []),
            "unassigned_patients": meta.get("unassigned_patients", []),
            "skipped": meta.get("skipped", []),
            "cache": {
                "path": str(self._path) if self._path else None,
                "hit": self.cache_hit,
                "load_seconds": round(self.load_seconds or 0.0, 4),
                "build_seconds": meta.get("build_seconds"),
            },
        }
