"""`cardiobench run --task synthesis` and `--task utility` end to end on the tiny preset (32x32 phantom), with the
rulers the metric contract uses (a tiny image ruler and reference segmenter) so the test takes seconds."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from cardiobench.data import open_dataset
from cardiobench.results.store import ResultStore
from cardiobench.testing import metrics as contract
from cardiobench.testing.cli import invoke

pytestmark = pytest.mark.slow
TINY32 = ["--preset", "tiny", "--set", "data.resolution=32"]


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("paired-cache")


@pytest.fixture(autouse=True)
def _shared_cache(monkeypatch, module_cache):
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(module_cache))
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def tiny_rulers(monkeypatch):
    contract.use_tiny_rulers(monkeypatch)


@pytest.mark.usefixtures("tiny_rulers")
@pytest.mark.parametrize("method", ["concat", "controlnet"])
def test_a_synthesis_run_lands_on_its_board(tmp_path, method):
    db = tmp_path / "r.db"
    res = invoke("run", *TINY32, "--task", "synthesis", "--conditioning", method, "--sampler", "ddim", "-n", "12",
                 "--results", str(db))
    assert res.exit_code == 0, res.output
    assert "synthesizing" in res.stdout and "image_fid" in res.stdout and "faithful_dice_mean" in res.stdout
    (row,) = ResultStore(db).runs()
    assert row.task == "synthesis" and row.conditioning == method and row.spec["train"]["representation"] == "mri"
    assert row.directions["image_fid"] == "lower" and row.directions["faithful_dice_mean"] == "higher"
    assert 0 <= row.metrics["faithful_dice_mean"] <= 1 and row.metrics["image_fid"] >= 0
    assert "+seg-" in row.evaluator_id and row.context["n_samples"] == 12
    with np.load(row.artefacts["images"]) as npz:
        assert npz["images"].shape == (12, 32, 32) and npz["images"].dtype == np.uint8
    assert Image.open(row.artefacts["synthesis_grid"]).size[0] > 3 * 32
    board = invoke("leaderboard", "--results", str(db))
    assert board.exit_code == 0 and "synthesis · phantom" in board.stdout and "image_fid" in board.stdout


@pytest.mark.usefixtures("tiny_rulers")
@pytest.mark.parametrize("method", ["concat", "controlnet"])
def test_a_latent_synthesis_run_trains_the_image_autoencoder_and_shows_its_ceiling(tmp_path, method):
    """``--autoencoder image-vae``: the MRI slice's latent is diffused, conditioned on the mask brought to the latent
    grid; the draws are decoded to grey images and scored as pixel-space ones, beside the ceiling (the real slices
    through the autoencoder)."""
    db = tmp_path / "r.db"
    ae = ["--set", "autoencoder.options.size=tiny", "--set", "autoencoder.steps=60", "--set",
          "autoencoder.batch_size=16", "--set", "autoencoder.lr=3e-3", "--set", "train.steps=20"]
    res = invoke("run", *TINY32, "--task", "synthesis", "--conditioning", method, "--autoencoder", "image-vae",
                 "--sampler", "ddim", "--steps", "3", "-n", "8", *ae, "--results", str(db))
    assert res.exit_code == 0, res.output
    assert "latent ceiling" in res.stdout and "reconstruction PSNR" in res.stdout
    (row,) = ResultStore(db).runs()
    assert row.spec["train"]["representation"] == "latent" and row.task == "synthesis"
    assert row.spec["train"]["representation_options"]["autoencoder"]["autoencoder"] == "image-vae"
    assert row.metrics["ceiling_recon_psnr"] > 15 and 0 <= row.metrics["ceiling_faithful_dice_mean"] <= 1
    assert row.metrics["ceiling_image_fid"] >= 0 and "ceiling_image_fid" not in row.directions
    with np.load(row.artefacts["images"]) as npz:  # decoded from the 4x8x8 latent to 32x32 grey levels
        assert npz["images"].shape == (8, 32, 32) and npz["images"].dtype == np.uint8


def test_a_utility_run_scores_its_pairs_and_writes_them_as_a_data_set(tmp_path):
    db = tmp_path / "r.db"
    res = invoke("run", *TINY32, "--task", "utility", "-n", "16", "--steps", "5", "--set",
                 "utility.synthesis_steps=4", "--set", "utility.segmenter={steps=3, features=[4,4,8,8,8,4]}",
                 "--results", str(db))
    assert res.exit_code == 0, res.output
    (row,) = ResultStore(db).runs()
    assert row.task == "utility" and row.spec["utility"]["segmenter"]["steps"] == 3
    m = row.metrics
    for key in ("utility_gain_all", "utility_gain_few", "utility_synth_ratio", "utility_real_all_dice"):
        assert np.isfinite(m[key]), key
    assert m["utility_gain_all_lo"] <= m["utility_gain_all"] <= m["utility_gain_all_hi"]
    assert m["utility_gain_few_lo"] <= m["utility_gain_few"] <= m["utility_gain_few_hi"]
    pairs = row.artefacts["pairs"]
    assert os.path.isfile(os.path.join(pairs, "pairs.npz"))
    source = open_dataset("pairs", data_root=pairs, size=32)
    assert sum(len(source.load(s)) for s in ("train", "val", "test")) == 16
    info = invoke("data", "info", "--data-root", pairs, "--size", "32")
    assert info.exit_code == 0 and "pairs" in info.stdout
    board = invoke("leaderboard", "--results", str(db))
    assert "utility · phantom" in board.stdout and "utility_gain_few" in board.stdout
    # the same generator on another evaluation data set is another board row, and an unknown one a clean error
    bad = invoke("run", *TINY32, "--task", "utility", "--eval-dataset", "nope", "--results", str(db))
    assert bad.exit_code == 2 and "nope" in bad.output
