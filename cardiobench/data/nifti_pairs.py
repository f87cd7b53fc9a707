"""Any folder of image / mask NIfTI pairs (``nifti-pairs``): M&Ms, a hospital's own data, UK Biobank extracts.

::

    my-data/                           <- --data-root (searched with its sub-folders)
      info.csv                         optional (csv=info.csv): patient,group,ED,ES
      case01_ED.nii.gz                 an image ...
      case01_ED_gt.nii.gz              ... and its mask: the image's name + "_gt" (mask_pattern="*_gt")
      case01_ES.nii.gz, case01_ES_gt.nii.gz
      site2/patient007_frame01.nii.gz, site2/patient007_frame01_gt.nii.gz, ...

- **Pairs**: ``image_pattern`` (default ``*``) and ``mask_pattern`` (default ``*_gt``) are matched against
  each ``.nii.gz`` / ``.nii`` file's path relative to the root, without that extension (an extension in the
  pattern is ignored). Each holds exactly one ``*``, the *case*; ``?`` is any one character (not ``/``). A
  file that matches ``mask_pattern`` is a mask, else one that matches ``image_pattern`` an image, else it
  is ignored; an image and a mask of the same case are a pair. ``labelsTr/*`` and ``imagesTr/*_0000``
  read the nnU-Net layout.
- **Patient and phase**: a case whose name ends in ``_ED`` / ``_ES`` (or ``-ED``...) is that phase of the
  patient named by the rest; one ending in ``_frameNN`` is frame NN (ACDC's naming): the CSV's ``ED`` and
  ``ES`` frame numbers pick the phases, else a patient's lower frame is ED and the higher ES. Any other case
  is a patient of its own with one volume, counted as ED. Only the last path component names the patient.
- **Labels**: ``labels`` maps the masks' values to the structures (``RV``, ``MYO``, ``LV``, ``background``);
  default ACDC's order ``{1: RV, 2: MYO, 3: LV}``. 0 is background; any other value the mapping does not
  name is bad input.
- **Groups**: the CSV's ``group`` (or ``pathology``) column, mapped by ``groups`` onto the ACDC groups; a
  patient without one counts as ``default_group`` (NOR), as every patient does without a CSV.
- **Spacing** comes from the NIfTI headers (mm); splits are three-way, stratified by group and seeded, as
  for ``acdc`` without ``testing/``; preprocessing, cache and errors are ``VolumeSource``'s.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench.data.base import GROUPS, LABELS
from cardiobench.data.files import read_text, root_folder
from cardiobench.data.nifti import NIFTI_SUFFIXES, integer_labels, read_nifti
from cardiobench.data.source import PHASES, Patient, Volume, VolumeSource
from cardiobench.data.splits import DEFAULT_TEST_FRACTION, check_test_fraction, stratified_three_way
from cardiobench.errors import CardiobenchError, DataError

NAME = "nifti-pairs"
#: environment variable holding the default ``--data-root`` of ``nifti-pairs``
ROOT_ENV = "CARDIOBENCH_NIFTI_PAIRS_ROOT"
DEFAULT_IMAGE_PATTERN = "*"
DEFAULT_MASK_PATTERN = "*_gt"
#: the masks' values -> structure, by default ACDC's order
DEFAULT_LABELS: dict[int, str] = {1: "RV", 2: "MYO", 3: "LV"}
DEFAULT_GROUP = "NOR"
#: accepted CSV header names (case-insensitive) of each column
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "patient": ("patient", "id", "patient_id", "subject", "case", "external code"),
    "group": ("group", "pathology"),
    "ED": ("ed",),
    "ES": ("es",),
}
#: a case name's phase: ``..._ED`` / ``..._ES``, or ACDC's ``..._frameNN``
CASE_RE = re.compile(r"^(?P<patient>.+?)[_-](?:(?P<phase>ED|ES)|frame(?P<frame>\d+))$", re.IGNORECASE)
HOW_TO_GET = f"pass --data-root DIR, the folder of image / mask NIfTI pairs, or set {ROOT_ENV}"
FIX = "copy this file again from its source"
FIX_4D = ("nifti-pairs reads 3-D volumes (one phase each): save the ED and ES frames of a 4-D cine file as "
          "separate files")
PATTERN_HINT = "e.g. mask_pattern='*_gt' and image_pattern='*', or 'labelsTr/*' and 'imagesTr/*_0000'"


# -- options ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NamePattern:
    """A file name pattern with one ``*`` (the case), matched against paths without the NIfTI extension."""

    option: str
    text: str
    regex: re.Pattern[str]

    def case(self, rel: str) -> str | None:
        """The case ``rel`` (a relative path without extension) belongs to, or None if it does not match."""
        m = self.regex.match(rel)
        return m.group(1) if m else None

    def path_of(self, root: Path, case: str) -> Path:
        """The ``.nii.gz`` file this pattern expects for ``case`` (named in errors)."""
        return root / (self.text.replace("*", case) + NIFTI_SUFFIXES[0])


def strip_nifti_suffix(name: str) -> str | None:
    """``name`` without ``.nii.gz`` / ``.nii``; None if it has neither."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def parse_pattern(value: Any, option: str) -> NamePattern:
    """A ``NamePattern`` from an option value, or a one-line ``CardiobenchError``."""
    text = (strip_nifti_suffix(value) or value) if isinstance(value, str) else None
    if not isinstance(text, str) or text.count("*") != 1 or text.startswith("/"):
        raise CardiobenchError(
            f"{option} must be a relative file name pattern with exactly one * (the case name), got {value!r}",
            PATTERN_HINT,
        )
    parts = [re.escape(p).replace(r"\?", "[^/]") for p in text.split("*")]
    return NamePattern(option, text, re.compile("^" + "(.+)".join(parts) + "$"))


def _mapping(value: Any, option: str, example: str) -> dict[str, Any]:
    """An option that is a mapping: a dict (TOML inline table, Python) or a JSON object in a string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise CardiobenchError(f"{option} is not a JSON object ({exc.msg}): {value!r}", f"e.g. {example}") from None
    if not isinstance(value, Mapping):
        raise CardiobenchError(f"{option} must be a mapping, got {value!r}", f"e.g. {example}")
    return {str(k).strip(): v for k, v in value.items()}


def structure_label(name: Any, where: str) -> int:
    """The ACDC label (0..3) of a structure name (``RV``, ``MYO``, ``LV``, ``background``; any case)."""
    by_name = {v.lower(): k for k, v in LABELS.items()}
    label = by_name.get(name.strip().lower()) if isinstance(name, str) else None
    if label is None:
        raise CardiobenchError(
            f"{where} maps to {name!r}, which is not a structure",
            f"use one of: {', '.join(LABELS.values())} (e.g. labels='{{\"1\":\"LV\",\"2\":\"MYO\",\"3\":\"RV\"}}')",
        )
    return label


def parse_labels(value: Any) -> dict[int, int]:
    """``labels`` (None, a mapping, or its JSON) -> mask value -> ACDC label; else ``CardiobenchError``."""
    example = 'labels=\'{"1":"LV","2":"MYO","3":"RV"}\''
    raw = dict(DEFAULT_LABELS) if value is None else _mapping(value, "labels", example)
    if not raw:
        raise CardiobenchError("labels is empty: no mask value would be a structure", f"e.g. {example}")
    table: dict[int, int] = {}
    for key, name in raw.items():
        try:
            number = int(key)
        except (TypeError, ValueError):
            raise CardiobenchError(f"labels: key {key!r} is not a mask value (an integer)", f"e.g. {example}") from None
        label = structure_label(name, f"labels: mask value {number}")
        if number == 0 and label != 0:
            raise CardiobenchError("labels: mask value 0 is background and cannot be a structure", f"e.g. {example}")
        table[number] = label
    return table


def parse_groups(value: Any) -> dict[str, str]:
    """``groups`` (None, a mapping, or its JSON): the CSV's group values -> ACDC groups, keys upper-cased."""
    if value is None:
        return {}
    out = {}
    for key, group in _mapping(value, "groups", 'groups=\'{"HHD":"HCM","ARV":"RV"}\'').items():
        out[key.upper()] = check_group(group, f"groups: {key!r} maps to")
    return out


def check_group(value: Any, where: str) -> str:
    """``value`` as one of ``GROUPS`` (any case), else a ``CardiobenchError``."""
    group = value.strip().upper() if isinstance(value, str) else None
    if group not in GROUPS:
        raise CardiobenchError(f"{where} {value!r}, not a pathology group", f"use one of: {', '.join(GROUPS)}")
    return group


def find_root(data_root: str | os.PathLike | None) -> Path:
    """The folder of the pairs: ``data_root``, else ``$CARDIOBENCH_NIFTI_PAIRS_ROOT``; checked to be a folder."""
    return root_folder(data_root, dataset=NAME, label=NAME, env=ROOT_ENV, hint=HOW_TO_GET)


# -- the CSV -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CsvRow:
    """One patient's row of the CSV: its group (as written) and ED / ES frame numbers, when given."""

    line: int
    group: str | None
    ed: int | None
    es: int | None


def _column(header: list[str], column: str) -> str | None:
    """The header name of ``column`` (one of ``CSV_COLUMNS``), or None."""
    wanted = CSV_COLUMNS[column]
    return next((h for h in header if h.strip().lower() in wanted), None)


def _frame(path: Path, line: int, key: str, text: str | None) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    if not re.fullmatch(r"\d+", text):
        raise DataError(f"{path}: line {line}: {key} is {text!r}, not a frame number",
                        f"{key} is the frame number in the file names (patient007_frame01 is frame 1)")
    return int(text)


def read_csv(path: Path) -> tuple[dict[str, CsvRow], str]:
    """``patient -> CsvRow`` and the file's text (hashed into the cache key); bad files -> ``DataError``."""
    text = read_text(path, missing="csv file missing", hint="pass csv=PATH of an existing file, or leave csv out",
                     encoding="utf-8-sig")
    try:
        dialect: Any = csv.Sniffer().sniff(text.splitlines()[0] if text.strip() else ",", delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = list(reader.fieldnames or [])
    cols = {c: _column(header, c) for c in CSV_COLUMNS}
    if cols["patient"] is None:
        raise DataError(f"{path}: no patient column (columns: {', '.join(header) or 'none'})",
                        f"name it one of: {', '.join(CSV_COLUMNS['patient'])}; beside it group, ED, ES")
    rows: dict[str, CsvRow] = {}
    for record in reader:
        line = reader.line_num
        pid = (record.get(cols["patient"]) or "").strip()
        if not pid:
            continue
        if pid in rows:
            raise DataError(f"{path}: patient {pid} is listed twice (lines {rows[pid].line} and {line})",
                            "keep one row per patient")
        group = (record.get(cols["group"]) or "").strip() if cols["group"] else ""
        ed = _frame(path, line, "ED", record.get(cols["ED"])) if cols["ED"] else None
        es = _frame(path, line, "ES", record.get(cols["ES"])) if cols["ES"] else None
        rows[pid] = CsvRow(line, group or None, ed, es)
    return rows, text


# -- cases -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One image / mask pair: its case name, the patient it belongs to, its phase or frame."""

    name: str
    image: Path
    mask: Path
    patient: str
    phase: str | None = None
    frame: int | None = None


def parse_case(name: str) -> tuple[str, str | None, int | None]:
    """``(patient, phase, frame)`` of a case name: ``a/p1_ED`` -> ``("p1", "ED", None)``, ``p1_frame12`` ->
    ``("p1", None, 12)``, ``p1`` -> ``("p1", None, None)``."""
    base = name.rsplit("/", 1)[-1]
    m = CASE_RE.match(base)
    if m is None:
        return base, None, None
    phase = m.group("phase")
    frame = m.group("frame")
    return m.group("patient"), phase.upper() if phase else None, int(frame) if frame is not None else None


def nifti_files(root: Path) -> list[tuple[str, Path]]:
    """``(path relative to root without extension, path)`` of every NIfTI file under ``root`` (hidden names
    skipped, broken symbolic links kept), sorted."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            stem = strip_nifti_suffix(name)
            if stem is not None and not name.startswith("."):
                path = Path(folder) / name
                out.append((path.relative_to(root).with_name(stem).as_posix(), path))
    return sorted(out)


class NiftiPairsSource(VolumeSource):
    """A folder of image / mask NIfTI pairs (see the module docstring)."""

    name = NAME
    version = 1

    def __init__(
        self,
        *,
        data_root: str | os.PathLike | None = None,
        image_pattern: str = DEFAULT_IMAGE_PATTERN,
        mask_pattern: str = DEFAULT_MASK_PATTERN,
        labels: Mapping[str, str] | str | None = None,
        csv: str | os.PathLike | None = None,
        groups: Mapping[str, str] | str | None = None,
        default_group: str = DEFAULT_GROUP,
        test_fraction: float = DEFAULT_TEST_FRACTION,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.test_fraction = check_test_fraction(test_fraction)
        self.image_pattern = parse_pattern(image_pattern, "image_pattern")
        self.mask_pattern = parse_pattern(mask_pattern, "mask_pattern")
        self.label_table = parse_labels(labels)
        self.groups = parse_groups(groups)
        self.default_group = check_group(default_group, "default_group is")
        self.root = find_root(data_root)
        self.csv_path: Path | None = None
        self._rows: dict[str, CsvRow] = {}
        self._csv_hash: str | None = None
        if csv is not None and str(csv).strip():
            self.csv_path = self._csv_location(Path(csv).expanduser())
            self._rows, text = read_csv(self.csv_path)
            self._csv_hash = hashlib.sha256(text.encode()).hexdigest()
        self._cases: dict[str, dict[str, Case]] = {}  # patient -> phase -> case, set by patients()
        self._defaulted: list[str] = []  # patients counted as default_group

    def _csv_location(self, path: Path) -> Path:
        """A relative ``csv`` path: as given if it exists there, else inside the data root."""
        if path.is_absolute() or path.exists() or not (self.root / path).exists():
            return path
        return self.root / path

    # -- identity ---------------------------------------------------------------------------
    def fingerprint(self) -> Any:
        """Path, size and mtime of every NIfTI file under the root, and the hash of the CSV's content."""
        stats: list[list[Any]] = []
        for _, path in nifti_files(self.root):
            name = path.relative_to(self.root).as_posix()
            try:
                st = path.stat()
            except OSError as exc:  # a dangling or looping link: reading the patient reports it
                stats.append([name, None, exc.strerror or type(exc).__name__])
                continue
            stats.append([name, st.st_size, st.st_mtime_ns])
        return {"root": str(self.root.resolve()), "files": stats, "csv_sha256": self._csv_hash}

    def options(self) -> dict[str, Any]:
        return super().options() | {
            "image_pattern": self.image_pattern.text,
            "mask_pattern": self.mask_pattern.text,
            "labels": {str(k): LABELS[v] for k, v in sorted(self.label_table.items())},
            "csv": str(self.csv_path) if self.csv_path else None,
            "groups": dict(sorted(self.groups.items())),
            "default_group": self.default_group,
            "test_fraction": self.test_fraction,
        }

    def source_info(self) -> dict[str, Any]:
        return {"source": str(self.root), "labels": self.options()["labels"],
                "csv": str(self.csv_path) if self.csv_path else None}

    # -- patients ---------------------------------------------------------------------------
    def _pairs(self, problems: list[dict[str, str]]) -> list[Case]:
        """Every complete image / mask pair; a lone mask or image is bad input (its patient is skipped under
        ``skip_bad``)."""
        files = nifti_files(self.root)
        if not files:
            raise DataError(f"{self.root}: no NIfTI files (.nii.gz, .nii) in this folder or below",
                            "point --data-root at the folder of image / mask pairs")
        images, masks, bad = self._match(files, problems)
        if not masks and not bad:
            raise DataError(
                f"{self.root}: none of its {len(files)} NIfTI files (e.g. {files[0][1].name}) matches mask_pattern "
                f"{self.mask_pattern.text!r}", f"set mask_pattern to how the masks are named ({PATTERN_HINT})")
        for case in sorted(set(masks) - set(images)):
            bad.add(self._lone(case, DataError(
                f"{masks[case]}: mask without its image (no {self.image_pattern.path_of(self.root, case).name} "
                f"matching image_pattern {self.image_pattern.text!r})",
                f"put the image beside its mask, or set image_pattern / mask_pattern ({PATTERN_HINT})",
            ), problems))
        for case in sorted(set(images) - set(masks)):
            bad.add(self._lone(case, DataError(
                f"{images[case]}: image without its mask (no {self.mask_pattern.path_of(self.root, case).name} "
                f"matching mask_pattern {self.mask_pattern.text!r})",
                "add its mask, remove the image, or narrow image_pattern to the images that have masks",
            ), problems))
        pairs = [Case(c, images[c], masks[c], *parse_case(c)) for c in sorted(set(images) & set(masks))]
        return [c for c in pairs if c.patient not in bad]

    def _match(
        self, files: list[tuple[str, Path]], problems: list[dict[str, str]]
    ) -> tuple[dict[str, Path], dict[str, Path], set[str]]:
        """``(case -> image, case -> mask, patients with a case named twice)``: a file matching ``mask_pattern``
        is a mask, else one matching ``image_pattern`` an image."""
        images: dict[str, Path] = {}
        masks: dict[str, Path] = {}
        bad: set[str] = set()
        for rel, path in files:
            case = self.mask_pattern.case(rel)
            found = masks
            if case is None:
                case, found = self.image_pattern.case(rel), images
            if case is None:
                continue
            if case in found:
                err = DataError(f"{path}: case {case!r} is also {found[case]}", "keep one file per image and mask")
                bad.add(self._lone(case, err, problems))
                continue
            found[case] = path
        return images, masks, bad

    def _lone(self, case: str, err: DataError, problems: list[dict[str, str]]) -> str:
        """Report a case's problem (raise, or record it under ``skip_bad``) and return its patient."""
        patient = parse_case(case)[0]
        if not any(p["patient"] == patient for p in problems):  # one line per patient under skip_bad
            self._handle(err, patient, problems)
        return patient

    def _phases(self, patient: str, cases: list[Case]) -> dict[str, Case]:
        """ED (and ES) of one patient's cases: from ``_ED`` / ``_ES`` names, frames, or its only volume."""
        kinds = {("phase" if c.phase else "frame" if c.frame is not None else "plain") for c in cases}
        if len(kinds) > 1:
            raise DataError(f"{cases[0].image}: {patient} mixes file names with and without a phase or frame "
                            f"({', '.join(c.name for c in cases)})", "name all of a patient's files alike")
        kind = kinds.pop()
        if kind == "phase":
            out: dict[str, Case] = {}
            for c in cases:
                if c.phase in out:
                    raise DataError(f"{c.image}: {patient} {c.phase} is also {out[c.phase].image}",
                                    "keep one image per phase")
                out[str(c.phase)] = c
            return out
        if kind == "plain":
            if len(cases) > 1:
                raise DataError(f"{cases[1].image}: patient {patient} is also {cases[0].image}",
                                "give each patient's files a name of their own, or name the phases (_ED, _ES)")
            return {"ED": cases[0]}
        return self._frames(patient, cases)

    def _frames(self, patient: str, cases: list[Case]) -> dict[str, Case]:
        """ED / ES of a patient's ``_frameNN`` cases: the CSV's frame numbers, else the lower frame is ED."""
        by_frame = {int(c.frame): c for c in cases if c.frame is not None}
        row = self._rows.get(patient)
        if row is not None and (row.ed is not None or row.es is not None):
            out = {}
            for phase, frame in (("ED", row.ed), ("ES", row.es)):
                if frame is None:
                    continue
                if frame not in by_frame:
                    raise DataError(
                        f"{self.csv_path}: line {row.line}: {phase} of {patient} is frame {frame}, but there is no "
                        f"{patient}_frame{frame:02d} pair (frames: {', '.join(map(str, sorted(by_frame)))})",
                        "fix the CSV, or add the frame's image and mask")
                out[phase] = by_frame[frame]
            return out
        frames = sorted(by_frame)
        if len(frames) > 2:
            raise DataError(f"{cases[0].image}: {patient} has {len(frames)} frames ({', '.join(map(str, frames))})",
                            "give ED and ES frame numbers in the CSV (csv=..., columns patient, ED, ES), or keep two")
        return dict(zip(PHASES, (by_frame[f] for f in frames), strict=False))

    def _group(self, patient: str) -> str:
        """The patient's group: the CSV's (through ``groups``), else ``default_group``."""
        row = self._rows.get(patient)
        if self.csv_path is not None and row is None:
            raise DataError(f"{self.csv_path}: no row for patient {patient}",
                            "add a row (patient, group), or leave csv out to count every patient as "
                            f"default_group ({self.default_group})")
        if row is None or row.group is None:
            self._defaulted.append(patient)
            return self.default_group
        group = self.groups.get(row.group.upper(), row.group.upper())
        if group not in GROUPS:
            raise DataError(
                f"{self.csv_path}: line {row.line}: group {row.group!r} of {patient} is not one of "
                f"{', '.join(GROUPS)}",
                f"map it onto one with groups, e.g. groups='{{\"{row.group}\":\"NOR\"}}'")
        return group

    def patients(self, problems: list[dict[str, str]]) -> list[Patient]:
        """One patient per name found in the pairs, with its group; each pair read later by phase."""
        by_patient: dict[str, list[Case]] = {}
        for case in self._pairs(problems):
            by_patient.setdefault(case.patient, []).append(case)
        out: list[Patient] = []
        self._cases, self._defaulted = {}, []
        for pid, cases in sorted(by_patient.items()):
            try:
                phases = self._phases(pid, cases)
                group = self._group(pid)
            except DataError as err:
                self._handle(err, pid, problems)
                continue
            self._cases[pid] = phases
            out.append(Patient(pid, GROUPS.index(group), "training"))
        return out

    def assign_splits(self, patients: Iterable[Patient]) -> dict[str, str | None]:
        """All patients split three ways, stratified by group and seeded (``stratified_three_way``)."""
        pts = list(patients)
        train, val, test = stratified_three_way(
            [p.id for p in pts], [p.group for p in pts], self.val_fraction, self.test_fraction, self.seed
        )
        groups = f"groups from {self.csv_path}" if self.csv_path else "no csv"
        if self._defaulted:
            groups += f"; {len(self._defaulted)} patient(s) without a group counted as {self.default_group}"
        self._split_info = {
            "name": "stratified",
            "detail": f"all patients split into train / val / test, test_fraction {self.test_fraction:g} per group, "
            f"then val_fraction {self.val_fraction:g} of the rest (seed {self.seed}); {groups}",
            "default_group_patients": list(self._defaulted),
        }
        return {p: "train" for p in train} | {p: "val" for p in val} | {p: "test" for p in test}

    # -- reading ------------------------------------------------------------------------------
    def read_patient(self, patient: Patient) -> list[Volume]:
        """The patient's volumes (ED, then ES when it has one), labels mapped to ACDC's, spacing from the header."""
        volumes = []
        for phase, case in sorted(self._cases[patient.id].items(), key=lambda kv: PHASES.index(kv[0])):
            image, spacing = read_nifti(case.image, FIX, FIX_4D)
            mask, _ = read_nifti(case.mask, FIX, FIX_4D)
            if image.shape != mask.shape:
                raise DataError(
                    f"{case.mask}: shape {tuple(mask.shape)} does not match the image {case.image.name} "
                    f"{tuple(image.shape)}", "a mask must have its image's geometry; check the pair")
            if image.dtype == bool or not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
                raise DataError(f"{case.image}: image of type {image.dtype}, not real numbers", FIX)
            volumes.append(Volume(phase, image.astype(np.float32), map_labels(mask, case.mask, self.label_table),
                                  spacing[:2], spacing[2], source=str(case.image)))
        return volumes


def describe_labels(table: Mapping[int, int]) -> str:
    """``{1: 3, 2: 2, 3: 1}`` -> ``"1 LV, 2 MYO, 3 RV"``."""
    return ", ".join(f"{k} {LABELS[v]}" for k, v in sorted(table.items()))


def map_labels(mask: np.ndarray, path: Path, table: Mapping[int, int]) -> np.ndarray:
    """A mask's values mapped to ACDC labels (uint8, 0..3) by ``table``; 0 stays background. A value the table
    does not name (or one that is not an integer) is a ``DataError`` naming ``path``."""
    shown_map = describe_labels(table)
    m = integer_labels(mask, path, f"the labels option maps {shown_map}; is this a mask?")
    values, inverse = np.unique(m, return_inverse=True)
    unknown = [int(v) for v in values if int(v) != 0 and int(v) not in table]
    if unknown:
        shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
        plural = "s" if len(unknown) > 1 else ""
        raise DataError(
            f"{path}: label value{plural} {shown} not in the labels mapping ({shown_map})",
            f"name every mask value in labels (e.g. labels='{{\"{unknown[0]}\":\"background\"}}' drops it), "
            "or check that this file is a mask",
        )
    lut = np.array([0 if int(v) == 0 else table[int(v)] for v in values], np.uint8)
    return lut[inverse.reshape(-1)].reshape(m.shape)
