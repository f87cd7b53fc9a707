"""The validity record of a domain evaluator: does this ruler measure anything on this data?

Measured once, when the evaluator is trained (``build_evaluator``), on the data set's real splits at the
evaluator's native size, and stored in its file (``meta["validity"]``) and JSON report. Two checks:

1. **Accuracy against chance.** ``accuracy`` is the pathology-group accuracy on the test split; ``chance``
   is the share of the most frequent group in the test split (what always guessing that group scores; at
   least 1/5). The check fails when ``accuracy < chance + ACCURACY_MARGIN`` (0.1).
2. **Ordering.** FID of the real test split against four sets of ``n`` masks, which a ruler must order
   strictly ``real < mismatched < damaged < blobs``:

   - ``real``: ``n`` training masks drawn at random (the floor: real vs real);
   - ``mismatched``: real masks with a mismatched group distribution (the unconditional meaning of
     "class-shuffled"): ``n`` training masks drawn with group shares 1/15, 2/15, ..., 5/15, assigned to the
     groups cyclically (``mismatch_shares``: 5 balances, every group takes every share once); the value is
     the median over the 5 balances (each in ``mismatched_per_balance``). Real anatomy, wrong pathology mix;
   - ``damaged``: the ``real`` masks eroded, dilated, holed or without RV
     (``cardiobench.metrics.degrade.TRANSFORMS`` at strength 1, each applied to all ``n`` masks); the value is
     the median over the four transforms (each in ``damaged_per_transform``). Wrong anatomy. (Not a mixed
     set: erosion and dilation shift the features in opposite directions and cancel in a mixture's mean.);
   - ``blobs``: ``n`` random blob label fields (``baselines.random_blob_masks``). No anatomy at all.

   ``n`` is the smallest of: the test split, the training split and 3x the smallest pathology group of the
   training split (the largest share, 5/15, must fit), so every set has the same size and none repeats a
   mask. FIDs are computed from the ruler's features with torch-fidelity's formula
   (``fidelity.frechet_distance``). Also recorded, not judged: ``single_group``, the FID of up to ``n`` masks of
   one group each (a generator collapsed onto one pathology), and ``real_halves``, the FID between random
   halves of the test split (the relative-FID reference at the native size).

An evaluator that fails either check is **flagged**: its FID/KID/IS/precision/recall are not meaningful.
``ruler_validity`` condenses the record into what ``evaluate_generation`` puts in ``meta["ruler_validity"]``;
``ruler_line`` is the one line the commands print, ``check_strict`` the ``--strict-ruler`` error.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from cardiobench.data.base import GROUPS
from cardiobench.errors import CardiobenchError

VERSION = 1
#: an evaluator whose test accuracy is below chance + this margin is flagged
ACCURACY_MARGIN = 0.1
#: the sets of the ordering test, in the order their FIDs must increase
ORDERING: tuple[str, ...] = ("real", "mismatched", "damaged", "blobs")
#: fewest masks per set for the ordering test to mean anything
MIN_SET = 10
CHANCE_RULE = "share of the most frequent group in the test split"


def chance_level(groups) -> float:
    """The accuracy of always guessing the most frequent group of ``groups`` (NaN when empty)."""
    g = np.asarray(groups, dtype=np.int64)
    if g.size == 0:
        return float("nan")
    return float(np.bincount(g).max() / g.size)


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def ordering_failures(ordering: dict[str, float]) -> list[str]:
    """Each consecutive pair of ``ORDERING`` whose FIDs are not strictly increasing (NaN fails), as ``"a < b"``."""
    out = []
    for a, b in zip(ORDERING, ORDERING[1:], strict=False):
        va, vb = ordering.get(a, float("nan")), ordering.get(b, float("nan"))
        if not (np.isfinite(va) and np.isfinite(vb) and va < vb):
            out.append(f"{a} < {b}")
    return out


def accuracy_ok(accuracy: float, chance: float) -> bool:
    """Whether the test accuracy is at least ``ACCURACY_MARGIN`` above chance (NaN fails)."""
    return bool(np.isfinite(accuracy) and np.isfinite(chance) and accuracy >= chance + ACCURACY_MARGIN - 1e-9)


def judge(accuracy: float, chance: float, ordering: dict[str, float]) -> tuple[bool, str | None]:
    """``(valid, flag)``: the flag names every failed check (``None`` when valid)."""
    parts = []
    if not accuracy_ok(accuracy, chance):
        parts.append(f"accuracy {_fmt(accuracy)} vs chance {_fmt(chance)}")
    failures = ordering_failures(ordering)
    if failures:
        parts.append("ordering fails at " + ", ".join(failures))
    return (not parts), ("; ".join(parts) or None)


def mismatch_shares(n_groups: int) -> list[np.ndarray]:
    """The group balances of the ``mismatched`` set: shares proportional to 1, 2, ..., G assigned to the G
    groups cyclically (assignment k gives group g the share (1 + (g + k) mod G) / (G (G + 1) / 2)), so every
    group takes every share once; for 5 groups the shares run from 1/15 (6.7 %) to 5/15 (33 %)."""
    base = np.arange(1, n_groups + 1, dtype=np.float64)
    base /= base.sum()
    return [base[(np.arange(n_groups) + k) % n_groups] for k in range(n_groups)]


def _pick_balance(train_groups: np.ndarray, groups: list[int], shares: np.ndarray, n: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Indices of about ``n`` training masks drawn without replacement with ``shares`` over ``groups``."""
    counts = np.floor(shares * n).astype(int)
    counts[: n - counts.sum()] += 1  # the rounding remainder goes to the first groups: n in all
    return np.concatenate([rng.permutation(np.flatnonzero(train_groups == g))[:c]
                           for g, c in zip(groups, counts, strict=True)])


def validity_record(
    features,
    test_masks: np.ndarray,
    test_groups: np.ndarray,
    train_masks: np.ndarray,
    train_groups: np.ndarray,
    *,
    accuracy: float | None = None,
    logits=None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure the validity record of a ruler.

    ``features(masks) -> (N, F)`` are the ruler's FID features; ``logits(masks) -> (N, classes)`` its
    classifier (for the accuracy when ``accuracy`` is not given). Masks are (N, S, S) label maps at the
    ruler's native size; groups index ``GROUPS``.
    """
    from cardiobench.metrics.baselines import random_blob_masks
    from cardiobench.metrics.degrade import TRANSFORMS
    from cardiobench.metrics.fidelity import frechet_distance, real_vs_real_halves

    t0 = time.perf_counter()
    test_groups = np.asarray(test_groups, dtype=np.int64)
    train_groups = np.asarray(train_groups, dtype=np.int64)
    chance = chance_level(test_groups)
    if accuracy is None:
        if logits is not None and len(test_masks):
            accuracy = float((np.asarray(logits(test_masks)).argmax(1) == test_groups).mean())
        else:
            accuracy = float("nan")
    counts = np.bincount(train_groups, minlength=len(GROUPS)) if train_groups.size else np.zeros(len(GROUPS), int)
    present = [g for g in range(len(GROUPS)) if counts[g] > 0]
    shares = mismatch_shares(len(present))
    # every set holds n distinct masks: the largest share of the mismatched balance must fit in every group
    fit = min((int(counts[g] / shares[0].max()) for g in present), default=0)
    n = int(min(len(test_masks), len(train_masks), fit))
    nan = float("nan")
    record: dict[str, Any] = {
        "version": VERSION,
        "accuracy": round(float(accuracy), 4),
        "chance": round(chance, 4),
        "chance_rule": CHANCE_RULE,
        "accuracy_margin": ACCURACY_MARGIN,
        "n": n,
        "n_test": int(len(test_masks)),
        "size": int(test_masks.shape[-1]) if len(test_masks) else None,
        "seed": seed,
    }
    if n < MIN_SET or len(present) < 2:
        ordering = dict.fromkeys(ORDERING, nan)
        reason = f"too few masks to test the ordering (sets of {n}, {len(present)} groups)"
        if not accuracy_ok(record["accuracy"], chance):
            reason = f"accuracy {_fmt(record['accuracy'])} vs chance {_fmt(chance)}; {reason}"
        record.update(valid=False, flag=reason, ordering=ordering, ordering_failures=list(ORDERING[1:]),
                      seconds=round(time.perf_counter() - t0, 2))
        return record
    rng = np.random.default_rng(seed)
    f_test = np.asarray(features(test_masks))
    f_train = np.asarray(features(train_masks))

    def fid(f: np.ndarray) -> float:
        return frechet_distance(f_test, f)

    pick = np.sort(rng.permutation(len(train_masks))[:n])
    real = train_masks[pick]
    balances = [fid(f_train[_pick_balance(train_groups, present, sh, n, rng)]) for sh in shares]
    per_damage = {name: fid(np.asarray(features(fn(real, seed=seed)))) for name, fn in TRANSFORMS.items()}
    ordering = {
        "real": fid(f_train[pick]),
        "mismatched": float(np.median(balances)),
        "damaged": float(np.median(list(per_damage.values()))),
        "blobs": fid(np.asarray(features(random_blob_masks(n, int(real.shape[-1]), seed=seed)))),
    }
    # not judged, for the record: a generator collapsed onto one pathology group (all n from that group)
    single = {GROUPS[g]: fid(f_train[rng.permutation(np.flatnonzero(train_groups == g))[:n]]) for g in present}
    valid, flag = judge(record["accuracy"], chance, ordering)
    record.update(
        valid=valid,
        flag=flag,
        ordering={k: round(v, 6) for k, v in ordering.items()},
        ordering_failures=ordering_failures(ordering),
        mismatched_per_balance=[round(v, 6) for v in balances],
        damaged_per_transform={k: round(v, 6) for k, v in per_damage.items()},
        single_group=({k: round(v, 6) for k, v in single.items()}),
        real_halves=real_vs_real_halves(f_test, seed=seed),
        seconds=round(time.perf_counter() - t0, 2),
    )
    return record


def evaluator_validity(ev, test_masks, test_groups, train_masks, train_groups, *, seed: int = 0) -> dict[str, Any]:
    """``validity_record`` of a domain evaluator (``metrics.evaluator.Evaluator``) on masks at its native size."""
    from cardiobench.metrics.evaluator import resize_labels

    def native(m: np.ndarray) -> np.ndarray:
        import torch

        t = torch.as_tensor(np.asarray(m))
        return resize_labels(t, ev.config.size).numpy() if len(t) else np.asarray(m)

    acc = (ev.meta.get("accuracy") or {}).get("test")
    return validity_record(
        lambda m: ev.predict(m)[0],
        native(test_masks),
        test_groups,
        native(train_masks),
        train_groups,
        accuracy=acc,
        logits=lambda m: ev.predict(m)[1],
        seed=seed,
    )


def ruler_validity(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The summary stored with every result (``meta["ruler_validity"]``):
    ``{"valid", "flag", "accuracy", "chance", "ordering": {name: fid}}``; ``None`` without a record."""
    if not record:
        return None
    return {
        "valid": bool(record.get("valid")),
        "flag": record.get("flag"),
        "accuracy": float(record.get("accuracy", float("nan"))),
        "chance": float(record.get("chance", float("nan"))),
        "ordering": {k: float(v) for k, v in (record.get("ordering") or {}).items()},
    }


def ruler_line(evaluator_id: str, validity: dict[str, Any] | None) -> str:
    """The one line every command prints about the ruler (without the ``ruler: `` prefix)."""
    if not validity:
        return f"evaluator {evaluator_id}: validity not measured"
    if not validity.get("valid"):
        return f"evaluator {evaluator_id} FLAGGED: {validity.get('flag')} — FID is not meaningful"
    ordering = validity.get("ordering") or {}
    chain = " < ".join(f"{k} {_fmt(ordering.get(k))}" for k in ORDERING)
    return (f"evaluator {evaluator_id} valid: accuracy {_fmt(validity.get('accuracy'))} vs chance "
            f"{_fmt(validity.get('chance'))}; FID {chain}")


def check_strict(evaluator_id: str, validity: dict[str, Any] | None) -> None:
    """``--strict-ruler``: a flagged (or unmeasured) ruler is a one-line error."""
    if validity is None:
        raise CardiobenchError(f"--strict-ruler: evaluator {evaluator_id} has no validity record",
                               "run `cardiobench evaluator info` to measure it, or drop --strict-ruler")
    if not validity.get("valid"):
        raise CardiobenchError(
            f"--strict-ruler: evaluator {evaluator_id} is FLAGGED ({validity.get('flag')}); FID is not meaningful",
            "see docs/metrics.md (the validity record), or drop --strict-ruler to measure anyway")
