"""The evaluator's validity record: measured and stored, flags a collapsed or chance-level ruler, relative FID."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.metrics.evaluator import (
    ASSETS,
    Evaluator,
    EvaluatorConfig,
    PathologyCNN,
    build_evaluator,
    evaluator_report,
    load_evaluator_file,
)
from cardiobench.metrics.validity import (
    ACCURACY_MARGIN,
    ORDERING,
    chance_level,
    check_strict,
    evaluator_validity,
    judge,
    mismatch_shares,
    ordering_failures,
    ruler_line,
    ruler_validity,
    validity_record,
)

TINY = EvaluatorConfig(size=32, width=8, features=16, epochs=2)
SUMMARY_KEYS = {"valid", "flag", "accuracy", "chance", "ordering"}


def group_hearts(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) hearts whose LV radius and wall thickness grow with the group (n % 5), jittered."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    groups = np.arange(n) % 5
    out = np.zeros((n, size, size), np.uint8)
    for i, g in enumerate(groups):
        cy, cx = size / 2 + rng.uniform(-1.5, 1.5, 2)
        r = size * (0.10 + 0.015 * g + rng.uniform(0, 0.02))
        t = size * (0.06 + 0.008 * g + rng.uniform(0, 0.01))
        d = np.hypot(yy - cy, xx - cx)
        drv = np.hypot((yy - cy) / 1.3, xx - (cx - r - t))
        out[i][drv < r + t] = 1
        out[i][d < r + t] = 2
        out[i][d < r] = 3
    return out, groups


def anatomy_features(masks) -> np.ndarray:
    """A ruler that sees anatomy: the share of each structure and of its horizontal edges."""
    m = np.asarray(masks)
    areas = [(m == k).mean((1, 2)) for k in (1, 2, 3)]
    edges = [((m[:, 1:] != m[:, :-1]) & ((m[:, 1:] == k) | (m[:, :-1] == k))).mean((1, 2)) for k in (1, 2, 3)]
    return np.stack(areas + edges, 1) * 10


def splits(size: int = 32) -> dict[str, SimpleNamespace]:
    tr, trg = group_hearts(150, size, 2)
    te, teg = group_hearts(60, size, 1)
    return {"train": SimpleNamespace(masks=tr, groups=trg), "test": SimpleNamespace(masks=te, groups=teg)}


def collapsed() -> Evaluator:
    """An evaluator whose weights are all zero: constant features and logits for every mask."""
    model = PathologyCNN(TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return Evaluator(model=model.eval(), config=TINY)


def test_record_is_measured_at_training_and_stored_in_the_file(tmp_path):
    ev = build_evaluator("synthetic", splits(), TINY)
    record = ev.validity
    assert record is not None and record["version"] == 1 and record["n"] == 60 and record["size"] == 32
    assert list(record["ordering"]) == list(ORDERING)
    assert all(math.isfinite(v) for v in record["ordering"].values())
    assert record["chance"] == pytest.approx(0.2) and record["accuracy"] == ev.meta["accuracy"]["test"]
    assert set(record["damaged_per_transform"]) == {"erode", "dilate", "holes", "missing_rv"}
    assert len(record["mismatched_per_balance"]) == 5 and set(record["single_group"]) == {"NOR", "MINF", "DCM",
                                                                                           "HCM", "RV"}
    assert record["real_halves"]["n_half"] == 30 and record["real_halves"]["n_splits"] == 5
    assert record["valid"] == (record["flag"] is None)
    loaded = load_evaluator_file(ev.save(tmp_path / "ev.pt"))
    assert loaded.validity == record and loaded.id == ev.id  # the record is in the file; the id covers weights only
    assert evaluator_report(loaded)["validity"] == record
    assert set(ruler_validity(record)) == SUMMARY_KEYS


def test_a_ruler_that_sees_anatomy_passes_and_chance_accuracy_alone_flags_it():
    s = splits()
    args = (anatomy_features, s["test"].masks, s["test"].groups, s["train"].masks, s["train"].groups)
    good = validity_record(*args, accuracy=0.2 + ACCURACY_MARGIN + 0.05)
    o = good["ordering"]
    assert good["valid"] and good["flag"] is None, good
    assert o["real"] < o["mismatched"] < o["damaged"] < o["blobs"]
    near_chance = validity_record(*args, accuracy=0.25)
    assert not near_chance["valid"] and near_chance["ordering"] == o
    assert near_chance["flag"] == "accuracy 0.25 vs chance 0.2"


def test_collapsed_evaluator_is_flagged_on_both_counts():
    s = splits()
    record = evaluator_validity(collapsed(), s["test"].masks, s["test"].groups, s["train"].masks, s["train"].groups)
    assert not record["valid"]
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in record["ordering"].values())  # constant features
    assert record["accuracy"] == pytest.approx(0.2)  # always predicts group 0: chance
    assert record["flag"].startswith("accuracy 0.2 vs chance 0.2; ordering fails at real < mismatched")
    assert record["real_halves"]["median"] == pytest.approx(0.0, abs=1e-6)


def test_too_few_masks_is_flagged_not_crashed():
    m, g = group_hearts(6, 32, 0)
    record = validity_record(anatomy_features, m, g, m, g, accuracy=0.9)
    assert not record["valid"] and "too few masks" in record["flag"]
    assert all(math.isnan(v) for v in record["ordering"].values())


def test_judge_and_ordering_rules():
    ok = {"real": 1.0, "mismatched": 2.0, "damaged": 3.0, "blobs": 4.0}
    assert judge(0.8, 0.2, ok) == (True, None)
    assert ordering_failures({**ok, "damaged": 5.0}) == ["damaged < blobs"]
    assert ordering_failures({**ok, "mismatched": float("nan")}) == ["real < mismatched", "mismatched < damaged"]
    assert judge(0.29, 0.2, ok) == (False, "accuracy 0.29 vs chance 0.2")  # within 0.1 of chance
    assert judge(0.3, 0.2, ok)[0]
    assert chance_level([0, 0, 0, 1]) == 0.75 and math.isnan(chance_level([]))
    shares = mismatch_shares(5)
    assert all(s.sum() == pytest.approx(1.0) for s in shares)
    assert sorted(np.stack(shares)[:, 0].round(4)) == sorted((np.arange(1, 6) / 15).round(4))  # each share once


def test_line_and_strict_check():
    flagged = {"valid": False, "flag": "accuracy 0.22 vs chance 0.2; ordering fails at damaged < blobs",
               "accuracy": 0.22, "chance": 0.2, "ordering": {}}
    line = ruler_line("abc", flagged)
    assert "\n" not in line and "FLAGGED" in line and "damaged < blobs" in line and "not meaningful" in line
    with pytest.raises(CardiobenchError, match="--strict-ruler: evaluator abc is FLAGGED") as err:
        check_strict("abc", flagged)
    assert "\n" not in str(err.value)
    valid = {"valid": True, "flag": None, "accuracy": 0.8, "chance": 0.2,
             "ordering": {"real": 0.5, "mismatched": 3.0, "damaged": 12.0, "blobs": 44.0}}
    check_strict("abc", valid)
    assert ruler_line("abc", valid).startswith("evaluator abc valid: accuracy 0.8 vs chance 0.2; FID real 0.5 <")
    with pytest.raises(CardiobenchError, match="no validity record"):
        check_strict("abc", None)


def test_shipped_phantom_evaluator_carries_a_valid_record():
    ev = load_evaluator_file(ASSETS / "phantom-evaluator.pt")
    info = json.loads((ASSETS / "phantom-evaluator.json").read_text())
    assert ev.validity is not None and info["validity"] == json.loads(json.dumps(ev.validity))
    assert ev.validity["valid"] and ev.validity["n"] == 568 and ev.validity["size"] == 64
    o = ev.validity["ordering"]
    assert o["real"] < o["mismatched"] < o["damaged"] < o["blobs"]


def test_legacy_cached_file_is_measured_once_and_rewritten(tmp_path, monkeypatch):
    from cardiobench.metrics import evaluator as E

    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path))
    data = splits()
    monkeypatch.setattr(E, "load_splits", lambda dataset, size, options=None: data)
    monkeypatch.setattr(E, "build_evaluator", lambda dataset, s, config=None, *, log=None: E.train_evaluator(
        s["train"].masks, s["train"].groups, TINY))  # trained without a record, like an old version
    ev = E.get_evaluator("synthetic", use_shipped=False)
    assert ev.validity is not None and ev.validity["n"] == 60  # measured before it was cached
    ev.meta.pop("validity")
    ev.save(ev.path)  # what a file written before the record existed looks like
    assert load_evaluator_file(ev.path).validity is None
    again = E.get_evaluator("synthetic", use_shipped=False, train=False)
    assert again.id == ev.id and again.validity is not None
    assert load_evaluator_file(ev.path).validity == again.validity  # rewritten with it


# -- relative FID -------------------------------------------------------------------------------------------
def test_relative_fid_is_fid_over_the_median_of_real_halves(phantom32, shared_cache):
    from cardiobench.metrics import evaluate_generation
    from cardiobench.metrics.baselines import random_blob_masks

    samples = np.concatenate([phantom32["train"].masks[:12], random_blob_masks(12, 32, seed=1)])
    out = evaluate_generation(samples, "phantom", metrics=["fidelity"])
    m, ref, meta = out["metrics"], out["reference"], out["meta"]
    halves = meta["fid_real_halves"]
    assert halves["n_splits"] == 5 and halves["n_half"] == len(phantom32["test"]) // 2
    assert halves["min"] <= halves["median"] <= halves["max"] and halves["min"] > 0
    assert m["fid_relative"] == pytest.approx(m["fid"] / halves["median"], rel=1e-9)
    assert ref["fid_relative"] == pytest.approx(ref["fid"] / halves["median"], rel=1e-9)
    assert m["fid_relative"] > ref["fid_relative"] and out["directions"]["fid_relative"] == "lower"
    validity = meta["ruler_validity"]
    assert set(validity) == SUMMARY_KEYS and validity["valid"] is True and validity["flag"] is None
    assert list(validity["ordering"]) == list(ORDERING)


def test_feature_fid_equals_torch_fidelity_fid(phantom32):
    from cardiobench.metrics.fidelity import fidelity_metrics, frechet_distance, real_vs_real_halves, ruler_features

    path = ASSETS / "phantom-evaluator.pt"
    a, b = phantom32["test"].masks[:40], phantom32["train"].masks[:50]
    with pytest.warns(UserWarning):
        direct = fidelity_metrics(a, b, evaluator_path=path)["fid"]
    fa, fb = ruler_features(a, evaluator_path=path), ruler_features(b, evaluator_path=path)
    assert fa.shape == (40, 128) and frechet_distance(fa, fb) == pytest.approx(direct, rel=1e-6)
    h1, h2 = real_vs_real_halves(fa, seed=3), real_vs_real_halves(fa, seed=3)
    assert h1 == h2 and h1["values"] != real_vs_real_halves(fa, seed=4)["values"]
    assert real_vs_real_halves(fa[:3]) is None and math.isnan(frechet_distance(fa[:1], fb))
