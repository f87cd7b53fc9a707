"""``cardiobench evaluate`` and ``cardiobench evaluator``: JSON output, reference row, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cardiobench.testing.cli import invoke


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "cardiobench-metrics-cache"  # the metric tests' cache too
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _shared_cache(monkeypatch, _module_cache):
    """One cache for this module, so the phantom is built once per size."""
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(_module_cache))


def test_evaluate_json_with_reference(tmp_path):
    from cardiobench.metrics.baselines import random_blob_masks

    np.save(tmp_path / "blobs.npy", random_blob_masks(24, 64, seed=0))
    result = invoke("evaluate", "--samples", str(tmp_path), "--dataset", "phantom", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    m, ref, meta = data["metrics"], data["reference"], data["meta"]
    assert meta["n_samples"] == 24 and meta["size"] == 64 and meta["n_reference"] == 24
    assert len(meta["evaluator_id"]) == 12 and meta["kid_subset_size"] == 12
    assert m["fid"] > ref["fid"] and m["anatomy_valid_frac"] < ref["anatomy_valid_frac"]
    assert data["directions"]["fid"] == "lower" and data["directions"]["anatomy_valid_frac"] == "higher"
    for key in (
        "fid",
        "kid",
        "is",
        "precision",
        "recall",
        "anatomy_valid_frac",
        "nn_dice_mean",
        "copy_frac",
        "diversity",
    ):
        assert key in m and key in ref


def test_evaluate_table_and_metric_selection(tmp_path):
    from cardiobench.testing.metrics import contract_masks

    np.savez(tmp_path / "s.npz", masks=contract_masks(6, 64))
    result = invoke("evaluate", "--samples", str(tmp_path / "s.npz"), "--metrics", "anatomy", "--no-reference")
    assert result.exit_code == 0, result.output
    assert "anatomy_valid_frac" in result.stdout and "precision" not in result.stdout


def test_bad_file_is_one_line_error(tmp_path):
    np.save(tmp_path / "bad.npy", np.full((2, 32, 32), 7, np.uint8))
    result = invoke("evaluate", "--samples", str(tmp_path / "bad.npy"))
    assert result.exit_code == 2
    assert "bad.npy" in result.stderr and "labels outside 0..3" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_inception_weights(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((4, 32, 32), np.uint8))
    result = invoke(
        "evaluate",
        "--samples",
        str(tmp_path),
        "--feature-extractor",
        "inception",
        "--inception-weights",
        str(tmp_path / "nope.pth"),
    )
    assert result.exit_code == 2 and "weights-inception-2015-12-05-6726825d.pth" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluator_info_shows_shipped_phantom_ruler():
    result = invoke("evaluator", "info", "--dataset", "phantom", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert len(info["evaluator_id"]) == 12 and info["accuracy"]["test"] > 0.6
    assert info["command"] == "cardiobench evaluator train --dataset phantom --ship"
