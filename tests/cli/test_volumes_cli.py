"""`--dims 3` through the CLI: `data info` on volumes, a volumetric run and its leaderboard row, one-line refusals."""

from __future__ import annotations

import json

import pytest

from cardiobench.results.store import ResultStore
from cardiobench.testing.cli import assert_one_line_error, invoke


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("volumes-cache")))
    monkeypatch.setenv("COLUMNS", "200")


def test_data_info_describes_volumes():
    opts = ("--dataset-opt", "train_patients=1", "--dataset-opt", "test_patients=1", "--size", "16")
    result = invoke("data", "info", "--dims", "3", "--depth", "4", *opts)
    assert result.exit_code == 0, result.output
    assert "phantom - 4x16x16 volumes" in result.stdout and "volumes" in result.stdout
    assert "to 4 slices by resample" in result.stdout
    data = json.loads(invoke("data", "info", "--dims", "3", "--depth", "4", "--json", *opts).stdout)
    assert data["dims"] == 3 and data["item_shape"] == [4, 16, 16]
    assert data["splits"]["train"]["slices"] == 4 * data["splits"]["train"]["volumes"]
    assert_one_line_error(invoke("data", "info", "--depth", "4", *opts), "--depth 4 describes volumes")


def test_data_preview_shows_one_volume_per_group(tmp_path):
    from PIL import Image

    out = tmp_path / "v.png"
    opts = ("--dataset-opt", "train_patients=1", "--dataset-opt", "test_patients=1", "--size", "16")
    result = invoke("data", "preview", "--dims", "3", "--depth", "4", "--out", str(out), "--scale", "1", *opts)
    assert result.exit_code == 0, result.output
    assert "one train volume of 4 slices" in result.stdout
    with Image.open(out) as im:  # 4 slices of image + mask across, 5 group rows down
        assert im.width > 8 * 16 and im.height >= 5 * 16


@pytest.mark.slow
def test_a_volumetric_run_lands_on_the_board(tmp_path):
    db = tmp_path / "r.db"
    result = invoke("run", "--preset", "tiny", "--dims", "3", "--depth", "4", "--results", str(db),
                    "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "phantom 4x16x16 volumes" in result.stdout and "volume_valid_frac" in result.stdout
    [row] = ResultStore(db).runs()
    assert row.spec["train"]["dataset_options"]["depth"] == 4
    assert 0.0 <= row.metrics["volume_valid_frac"] <= 1.0 and "interslice_dice_gap" in row.metrics
    board = invoke("leaderboard", "--results", str(db))
    assert board.exit_code == 0 and "volume_valid_frac" in board.stdout and "volumes of 4x16x16" in board.stdout
    # the run's samples.npz scored again by `cardiobench evaluate`: the depth comes from the volumes themselves
    opts = ("--dataset-opt", "train_patients=2", "--dataset-opt", "test_patients=1")
    again = invoke("evaluate", "--samples", row.artefacts["samples"], *opts, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["metrics"]["fid"] == pytest.approx(row.metrics["fid"], rel=1e-6)
    assert_one_line_error(invoke("evaluate", "--samples", row.artefacts["samples"], *opts, "--dataset-opt", "depth=8"),
                          "volumes of 4 slices", "depth=4")


def test_2d_only_components_are_refused_in_one_line(tmp_path):
    assert_one_line_error(invoke("run", "--preset", "tiny", "--dims", "3", "--conditioning", "classifier-guidance",
                                 "--results", str(tmp_path / "r.db")),
                          "classifier-guidance", "2-D")
    assert_one_line_error(invoke("run", "--preset", "tiny", "--dims", "3", "--task", "synthesis",
                                 "--conditioning", "concat", "--results", str(tmp_path / "r.db")),
                          "2-D slices only")
