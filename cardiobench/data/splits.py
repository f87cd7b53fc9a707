"""Patient-level splits: never by slice, so no patient appears in two splits.

- ``stratified_split``: one pool into ``(train, val)``, stratified by group and seeded;
- ``stratified_three_way``: one pool into ``(train, val, test)`` (a data set without a test pool of its own,
  e.g. ACDC's 100 training patients alone);
- ``read_split_file``: a fixed patient split from a file (a JSON of patient lists, or SSL4MIS ``.list`` files).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cardiobench.errors import CardiobenchError, DataError

#: default share of the training patients held out for validation, per group
DEFAULT_VAL_FRACTION = 0.2
#: default share of each group's patients held out for testing, when a data set has no test pool of its own
DEFAULT_TEST_FRACTION = 0.2
#: the splits a split file names, and the SSL4MIS list file of each
SPLIT_FILE_KEYS: tuple[str, ...] = ("train", "val", "test")
LIST_FILES: dict[str, str] = {"train": "train.list", "val": "val.list", "test": "test.list"}
#: an entry of a split file: ``patient001``, ``patient001_frame01`` (SSL4MIS lists), optionally ``.h5``
ENTRY_RE = re.compile(r"^patient(\d+)(?:_frame\d+)?(?:\.h5)?$")


def stratified_split(
    patients: Sequence[str],
    groups: Sequence[int],
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    *,
    stream: int | None = None,
) -> tuple[list[str], list[str]]:
    """Split patients into ``(train, val)``, stratified by group and seeded.

    Each group gives ``round(n * val_fraction)`` of its ``n`` patients to validation (at least one when
    ``val_fraction > 0`` and the group has two or more patients, never all of them). The draw for a group
    depends only on ``seed``, the group, its patients and ``stream`` (None, or an integer that makes an
    independent draw with the same seed), not on the other groups.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if len(patients) != len(groups):
        raise ValueError("patients and groups differ in length")
    by_group: dict[int, list[str]] = {}
    for p, g in zip(patients, groups, strict=True):
        by_group.setdefault(int(g), []).append(str(p))
    val: set[str] = set()
    for g, members in sorted(by_group.items()):
        members = sorted(set(members))
        n = len(members)
        k = int(round(n * val_fraction))
        if val_fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        else:
            k = min(k, max(n - 1, 0))
        rng = np.random.default_rng([int(seed), g] if stream is None else [int(seed), g, int(stream)])
        val.update(members[i] for i in rng.permutation(n)[:k])
    ordered = sorted(set(map(str, patients)))
    return [p for p in ordered if p not in val], [p for p in ordered if p in val]


def stratified_three_way(
    patients: Sequence[str],
    groups: Sequence[int],
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> tuple[list[str], list[str], list[str]]:
    """Split one pool of patients into ``(train, val, test)``, stratified by group and seeded.

    First each group gives ``round(n * test_fraction)`` of its ``n`` patients to test (the rule of
    ``stratified_split``: at least one when the fraction is > 0 and the group has two or more, never all),
    then ``stratified_split`` holds ``val_fraction`` of each group's remaining patients out for validation.
    With 20 patients per group and both fractions 0.2: 4 test, 3 val and 13 train patients per group.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    group_of = {str(p): int(g) for p, g in zip(patients, groups, strict=True)}
    rest, test = stratified_split(list(group_of), list(group_of.values()), test_fraction, seed, stream=1)
    train, val = stratified_split(rest, [group_of[p] for p in rest], val_fraction, seed)
    return train, val, test


def patient_id(number: int) -> str:
    """The canonical id of patient ``number``: ``patient007``."""
    return f"patient{int(number):03d}"


def _entries_to_split(entries: dict[str, list[tuple[str, str]]], path: Path) -> dict[str, list[str]]:
    """``{split: [(entry, where), ...]}`` -> ``{split: sorted patient ids}``; a patient in two splits, an entry
    listed twice or an entry that names no patient is a ``DataError`` naming ``path``."""
    split_of: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for split in SPLIT_FILE_KEYS:
        seen: set[str] = set()
        ids: set[str] = set()
        for entry, where in entries[split]:
            m = ENTRY_RE.match(entry.strip())
            if not m:
                raise DataError(
                    f"{path}: {where}: {entry!r} is not a patient",
                    "write patient ids such as patient001 (or patient001_frame01, as SSL4MIS lists do)",
                )
            if entry.strip() in seen:
                raise DataError(
                    f"{path}: {where}: {entry.strip()!r} is listed twice in {split}", "list each patient once"
                )
            seen.add(entry.strip())
            pid = patient_id(int(m.group(1)))
            if pid in split_of and split_of[pid] != split:
                raise DataError(
                    f"{path}: {pid} is in both {split_of[pid]} and {split}",
                    "a patient belongs to one split only; remove it from one list",
                )
            split_of[pid] = split
            ids.add(pid)
        out[split] = sorted(ids)
    return out


def read_split_file(path: str | Path) -> tuple[dict[str, list[str]], str]:
    """A fixed patient split and the text it was read from (for the cache key).

    ``path`` is a JSON file ``{"train": [...], "val": [...], "test": [...]}`` of patient ids, or a folder
    holding SSL4MIS ``train.list``, ``val.list`` and ``test.list`` (one ``patient001`` or
    ``patient001_frame01`` per line; the frames of one patient map to that patient). Returns
    ``({"train": ids, "val": ids, "test": ids}, content)``. A missing or malformed file, a missing key, an
    entry that is not a patient, an entry listed twice or a patient in two splits raise ``DataError``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        entries: dict[str, list[tuple[str, str]]] = {}
        texts = []
        for split, name in LIST_FILES.items():
            f = path / name
            if not f.is_file():
                raise DataError(
                    f"{f}: missing",
                    f"a split folder holds {', '.join(LIST_FILES.values())} (one patient per line); "
                    "or pass a JSON file of patient lists",
                )
            text = _read_text(f)
            texts.append(f"{name}\n{text}")
            lines = [(ln.strip(), f"line {i}") for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
            entries[split] = lines
        content = "\n".join(texts)
        return _entries_to_split(entries, path), content
    if not path.is_file():
        raise DataError(
            f"split file {path} does not exist",
            "pass a JSON file of train/val/test patient lists, or a folder holding train.list, val.list, test.list",
        )
    content = _read_text(path)
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})",
            'write {"train": ["patient001", ...], "val": [...], "test": [...]}',
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of patient lists, got {type(data).__name__}",
                        'write {"train": ["patient001", ...], "val": [...], "test": [...]}')
    missing = [k for k in SPLIT_FILE_KEYS if k not in data]
    extra = sorted(set(data) - set(SPLIT_FILE_KEYS))
    if missing or extra:
        what = "; ".join(
            part for part in (
                f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}" if missing else "",
                f"unexpected key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}" if extra else "",
            ) if part
        )
        raise DataError(f"{path}: {what}", "a split file has exactly the keys train, val and test")
    entries = {}
    for split in SPLIT_FILE_KEYS:
        items = data[split]
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise DataError(f"{path}: {split} is not a list of patient ids", 'e.g. "train": ["patient001", ...]')
        entries[split] = [(x, f"{split}[{i}]") for i, x in enumerate(items)]
    return _entries_to_split(entries, path), content


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise DataError(f"{path}: unreadable ({why})", "check the file, or write it again as UTF-8 text") from None


def check_test_fraction(value: object) -> float:
    """``test_fraction`` as a float in [0, 1), else a one-line ``CardiobenchError``."""
    try:
        frac = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        frac = float("nan")
    if isinstance(value, bool) or not 0.0 <= frac < 1.0:
        raise CardiobenchError(
            f"test_fraction must be in [0, 1) (a share of each group's patients), got {value!r}",
            "e.g. test_fraction=0.2",
        )
    return frac
