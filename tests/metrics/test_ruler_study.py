"""The ruler study: the degradation ladder, Spearman correlations, the Inception path, the decision."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from cardiobench.metrics import ruler_study as R
from cardiobench.testing.metrics import contract_masks


def test_spearman_signs_and_degenerate_cases():
    assert R.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert R.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(R.spearman([1, 2, 3], [5, 5, 5]))  # constant side
    assert math.isnan(R.spearman([1, 2], [1, 2]))  # too few pairs
    assert R.spearman([1, 2, float("nan"), 3, 4], [1, 2, 9, 3, 4]) == pytest.approx(1.0)  # NaN pairs dropped


def _synthetic_ladder(quality_falls: bool = True) -> list[R.Rung]:
    """Rungs with a known order: quality falls with the level in every family."""
    m = np.zeros((2, 8, 8), np.uint8)
    rungs = [R.Rung("real", "real", 0, m, {"anatomy_valid_frac": 1.0, "nn_dice": 0.9})]
    for fi, family in enumerate(("erode", "blobs")):
        for s in (1, 2, 3):
            q = 1.0 - 0.1 * s - 0.01 * fi
            rungs.append(R.Rung(f"{family}-{s}", family, s, m,
                                {"anatomy_valid_frac": q if quality_falls else 1 - q, "nn_dice": q - 0.1}))
    return rungs


def test_ladder_correlations_on_a_known_order():
    rungs = _synthetic_ladder()
    # a perfect ruler: FID rises as quality falls
    good = [1.0 - r.quality["anatomy_valid_frac"] for r in rungs]
    c = R.ladder_correlations(good, rungs)
    assert c["rho_anatomy"] == pytest.approx(-1.0) and c["rho_nn_dice"] == pytest.approx(-1.0)
    assert c["rho_strength"] == {"erode": pytest.approx(1.0), "blobs": pytest.approx(1.0)}
    assert c["rho_strength_mean"] == pytest.approx(1.0)
    # an inverted ruler: FID falls as damage grows
    bad = R.ladder_correlations([-v for v in good], rungs)
    assert bad["rho_anatomy"] == pytest.approx(1.0) and bad["rho_strength_mean"] == pytest.approx(-1.0)


def test_build_ladder_rungs():
    src = contract_masks(20, 32, seed=2)
    rungs = R.build_ladder(src, seed=0)
    names = [r.name for r in rungs]
    assert names[0] == "real" and len(rungs) == 1 + len(R.FAMILIES) * len(R.STRENGTHS)
    by = {r.name: r.masks for r in rungs}
    np.testing.assert_array_equal(by["real"], src)
    assert not (by["missing_rv-5"] == 1).any()  # every map lost its RV
    rv_maps = [(by[f"missing_rv-{s}"] == 1).any((1, 2)).sum() for s in R.STRENGTHS]
    assert rv_maps == sorted(rv_maps, reverse=True) and rv_maps[0] == 16  # 4 of 20 maps lose it at 1/5
    changed = [(by[f"blobs-{s}"] != src).any((1, 2)).sum() for s in R.STRENGTHS]
    assert changed == [4, 8, 12, 16, 20]
    fg = [(by[f"erode-{s}"] > 0).sum() for s in R.STRENGTHS]
    assert fg == sorted(fg, reverse=True) and fg[0] < (src > 0).sum()
    # the source is never modified
    np.testing.assert_array_equal(src, contract_masks(20, 32, seed=2))


def _splits(n: int = 40, size: int = 32):
    masks = contract_masks(3 * n, size, seed=5)
    groups = np.arange(3 * n) % 5
    mk = lambda s: SimpleNamespace(masks=masks[s], groups=groups[s])  # noqa: E731
    return {"train": mk(slice(0, n)), "val": mk(slice(n, 2 * n)), "test": mk(slice(2 * n, 3 * n))}


def _foreground_features(masks) -> np.ndarray:
    """A stand-in ruler: per-structure pixel counts and a coarse 4x4 foreground grid."""
    m = np.asarray(masks)
    counts = np.stack([(m == k).sum((1, 2)) for k in range(4)], 1).astype(np.float32)
    grid = (m > 0).reshape(len(m), 4, m.shape[1] // 4, 4, m.shape[2] // 4).mean((2, 4)).reshape(len(m), -1)
    return np.concatenate([counts / m[0].size, grid], 1).astype(np.float32)


def test_inception_ruler_not_measured_without_weights_and_measured_with_a_fake(tmp_path, monkeypatch):
    splits = _splits()
    rungs = R.build_ladder(splits["train"].masks, seed=0)
    R.measure_quality(rungs, splits["val"].masks)
    none = R.inception_ruler(None)
    assert none.features is None and none.note == "not measured: no weights file"
    assert R.study_ruler(none, splits, rungs) == {"name": "inception", "measured": False,
                                                   "note": "not measured: no weights file"}
    assert "not found" in R.inception_ruler(str(tmp_path / "missing.pth")).note
    # with a weights file, the study goes through fidelity.ruler_features(feature_extractor="inception"):
    # here a tiny fake stands in for the network (no real Inception weights exist on this machine)
    from cardiobench.metrics import fidelity

    calls = []

    def fake_ruler_features(masks, *, feature_extractor, inception_weights, **_):
        calls.append((feature_extractor, inception_weights))
        return _foreground_features(masks)

    weights = tmp_path / "pt_inception-2015-12-05.pth"
    weights.write_bytes(b"fake")
    monkeypatch.setattr(fidelity, "ruler_features", fake_ruler_features)
    result = R.study_ruler(R.inception_ruler(str(weights)), splits, rungs)
    assert calls and set(calls) == {("inception", str(weights))}
    assert result["measured"] and math.isnan(result["accuracy"])  # no classifier: accuracy does not apply
    assert set(result["ordering"]) == {"real", "mismatched", "damaged", "blobs"}
    assert result["valid"] == (not result["ordering_failures"])
    assert set(result["ladder_fid"]) == {r.name for r in rungs}
    assert result["ladder_fid"]["blobs-5"] > result["ladder_fid"]["real"]
    assert result["rho_strength"]["blobs"] > 0.9
    study = {"dataset": "fake", "size": 32, "n": 40, "seed": 0, "rulers": [result, R.study_ruler(none, splits, rungs)],
             "rungs": [{"name": r.name, **r.quality} for r in rungs], "decision": R.decide([result])}
    md = R.to_markdown(study)
    assert "| inception |" in md and "not measured: no weights file" in md and "| blobs-5 |" in md


def test_decide_picks_the_passing_ruler_that_follows_the_ladder_best():
    a = {"name": "a", "measured": True, "valid": True, "rho_anatomy": -0.9, "rho_nn_dice": -0.5,
         "rho_strength_mean": 0.6}
    b = {"name": "b", "measured": True, "valid": True, "rho_anatomy": 0.1, "rho_nn_dice": -0.8,
         "rho_strength_mean": 0.95}
    c = {"name": "c", "measured": True, "valid": False, "rho_anatomy": -1.0, "rho_nn_dice": -1.0,
         "rho_strength_mean": 1.0}
    assert R.decision_score(b) == pytest.approx(0.875)
    assert R.decide([a, b, c])["ruler"] == "b"  # rho_anatomy is not scored; c is flagged
    assert R.decide([c, {"name": "d", "measured": False}])["ruler"] is None
