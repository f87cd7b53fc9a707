"""Patient-level splits: never by slice, so no patient appears in two splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: default share of the training patients held out for validation, per group
DEFAULT_VAL_FRACTION = 0.2


def stratified_split(
    patients: Sequence[str], groups: Sequence[int], val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split patients into ``(train, val)``, stratified by group and seeded.

    Each group gives ``round(n * val_fraction)`` of its ``n`` patients to validation (at least one when
    ``val_fraction > 0`` and the group has two or more patients, never all of them). The draw for a group
    depends only on ``seed``, the group and its patients, not on the other groups.
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
        rng = np.random.default_rng([int(seed), g])
        val.update(members[i] for i in rng.permutation(n)[:k])
    ordered = sorted(set(map(str, patients)))
    return [p for p in ordered if p not in val], [p for p in ordered if p in val]
