"""``cardiobench data info`` and ``cardiobench data preview``, on the phantom and on a fake ACDC tree."""

from __future__ import annotations

import json

import pytest
from fake_acdc import BAD_INPUTS, P1, set_nonfinite
from PIL import Image

from cardiobench.testing.cli import assert_one_line_error, invoke


def test_info_on_the_default_phantom(shared_cache):
    result = invoke("data", "info")
    assert result.exit_code == 0, result.output
    for text in ("phantom", "train", "val", "test", "NOR", "HCM", "class frequencies", "cache:"):
        assert text in result.stdout
    data = json.loads(invoke("data", "info", "--json").stdout)
    assert data["dataset"] == "phantom" and data["splits"]["train"]["slices"] >= 2000
    assert data["cache"]["hit"] is True and data["skipped_count"] == 0


def test_preview_writes_a_grid_of_all_groups(shared_cache, tmp_path):
    out = tmp_path / "grid.png"
    result = invoke("data", "preview", "--out", str(out), "--n", "3", "--scale", "1")
    assert result.exit_code == 0, result.output
    img = Image.open(out)
    assert img.format == "PNG" and img.height > 5 * 32 and img.width > 3 * 64  # a run's 32 px slices by default
    assert "5 groups x 3 train slices of phantom" in result.stdout


def test_info_on_fake_acdc_json(fake_acdc):
    result = invoke("data", "info", "--dataset", "acdc", "--data-root", str(fake_acdc), "--size", "32", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    splits = data["splits"]
    assert {k: splits[k]["patients"] for k in splits} == {"train": 5, "val": 5, "test": 2}
    assert splits["train"]["slices"] > 0 and data["native"]["shapes"]["volumes"] == 24
    assert data["unlabelled_patients"] == ["patient103"]
    assert data["native"]["spacing_mm"]["in_plane_min"] == pytest.approx(1.35)


def test_data_root_alone_selects_acdc(fake_acdc):
    result = invoke("data", "info", "--data-root", str(fake_acdc), "--size", "32")
    assert result.exit_code == 0, result.output
    assert "acdc - 32x32 slices" in result.stdout


def test_acdc_without_root_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("CARDIOBENCH_ACDC_ROOT", raising=False)
    result = invoke("data", "info", "--dataset", "acdc")
    assert_one_line_error(result, "CARDIOBENCH_ACDC_ROOT", "register on the ACDC challenge site", "--data-root")


def test_env_var_is_the_default_root(fake_acdc, monkeypatch):
    monkeypatch.setenv("CARDIOBENCH_ACDC_ROOT", str(fake_acdc))
    result = invoke("data", "info", "--dataset", "acdc", "--size", "32", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["source"] == str(fake_acdc)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2(fake_acdc, case):
    damage, expected = BAD_INPUTS[case]
    damage(fake_acdc)
    result = invoke("data", "info", "--data-root", str(fake_acdc), "--size", "32")
    assert_one_line_error(result, expected, "patient001")


def test_skip_bad_warns_and_counts(fake_acdc):
    BAD_INPUTS["truncated NIfTI"][0](fake_acdc)
    result = invoke("data", "info", "--data-root", str(fake_acdc), "--size", "32", "--skip-bad", "--json")
    assert result.exit_code == 0, result.output
    assert "Warning: skipped patient001" in result.stderr and "1 bad patient" in result.stderr
    data = json.loads(result.stdout)
    assert data["skipped_count"] == 1 and data["skipped"][0]["patient"] == "patient001"
    table = invoke("data", "info", "--data-root", str(fake_acdc), "--size", "32", "--skip-bad")
    assert table.exit_code == 0 and "skipped (bad input): 1" in table.stdout


@pytest.mark.parametrize("case", ["dangling symlink", "symlink loop"])
def test_broken_symlink_is_skipped_with_skip_bad_and_the_cache_on(fake_acdc, case):
    damage, expected = BAD_INPUTS[case]
    damage(fake_acdc)
    result = invoke("data", "info", "--data-root", str(fake_acdc), "--size", "32", "--skip-bad", "--json")
    assert result.exit_code == 0, result.output  # used to be "Error: unexpected FileNotFoundError", exit 1
    assert f"Warning: skipped patient001: {fake_acdc / P1}" in result.stderr and expected in result.stderr
    data = json.loads(result.stdout)
    assert data["skipped_count"] == 1 and data["cache"]["path"]
    assert data["splits"]["train"]["patients"] + data["splits"]["val"]["patients"] == 9


def test_nonfinite_voxels_are_one_warning_line(fake_acdc):
    path = fake_acdc / P1 / "patient001_frame09.nii.gz"
    set_nonfinite(path, [float("nan")] * 5)
    result = invoke("data", "info", "--data-root", str(fake_acdc), "--size", "32", "--json")
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Warning: ")]
    assert lines == [f"Warning: {path}: 5 of {40 * 48 * 6} voxels are NaN or infinite; they are set to 0 (black), "
                     "and the intensity range comes from the finite voxels"]
    assert json.loads(result.stdout)["skipped_count"] == 0


def test_preview_and_info_errors(fake_acdc, tmp_path):
    assert_one_line_error(invoke("data", "info", "--dataset", "nope"), "unknown dataset 'nope'")
    bad_split = invoke(
        "data", "preview", "--out", str(tmp_path / "g.png"), "--data-root", str(fake_acdc), "--split", "x"
    )
    assert_one_line_error(bad_split, "unknown split 'x'")


def test_datasets_are_listed_as_plugins():
    data = json.loads(invoke("plugins", "--kind", "dataset", "--json").stdout)
    names = {c["name"]: c for c in data["components"]}
    assert {"phantom", "acdc"} <= set(names)
    assert names["phantom"]["metadata"]["default"] is True
