"""`cardiobench run` / `compare` with conditioning and the segmentation task, on the tiny preset."""

from __future__ import annotations

import json
import os

import pytest

from cardiobench.results.store import ResultStore
from cardiobench.testing.cli import invoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cond-cache")


@pytest.fixture(autouse=True)
def _shared_cache(monkeypatch, module_cache):
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(module_cache))
    monkeypatch.setenv("COLUMNS", "200")


def test_segmentation_run_with_controlnet_and_concat(tmp_path):
    db = tmp_path / "r.db"
    for method in ("controlnet", "concat"):
        res = invoke("run", "--preset", "tiny", "--task", "segmentation", "--conditioning", method, "-k", "3",
                     "--sampler", "ddim", "--results", str(db))
        assert res.exit_code == 0, res.output
        assert "Dice" in res.stdout and "HD95" in res.stdout and "majority vote" in res.stdout
    rows = ResultStore(db).runs()
    assert {r.conditioning for r in rows} == {"controlnet", "concat"}
    for row in rows:
        assert row.task == "segmentation" and row.evaluator_id.startswith("seg-")
        assert 0 <= row.metrics["dice_mean"] <= 1 and "uncertainty_mean" in row.metrics
        assert row.directions["dice_mean"] == "higher"
        for key in ("segmentations", "segmentation_grid", "metrics"):
            assert os.path.isfile(row.artefacts[key]), key
        assert row.spec["eval"]["ensemble_k"] == 3
    board = invoke("leaderboard", "--task", "segmentation", "--results", str(db), "--format", "json")
    assert board.exit_code == 0, board.output


def test_controlnet_alone_implies_the_segmentation_task(tmp_path):
    res = invoke("run", "--preset", "tiny", "--conditioning", "concat", "-k", "2", "--results", str(tmp_path / "r.db"),
                 "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["metrics"]["dice_mean"] >= 0


def test_classifier_free_run_reports_conditional_metrics(tmp_path):
    db = tmp_path / "r.db"
    res = invoke("run", "--preset", "tiny", "--conditioning", "classifier-free", "--guidance-scale", "2",
                 "--results", str(db), "--set", "eval.num_samples=10", "--json", "--no-gif")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert 0 <= data["metrics"]["cond_accuracy"] <= 1
    assert data["reference"]["cond_accuracy"] > 0
    [row] = ResultStore(db).runs()
    assert row.conditioning == "classifier-free" and row.spec["conditioning"]["guidance_scale"] == 2.0


def test_compare_over_guidance_scales_trains_one_model(tmp_path):
    db = tmp_path / "r.db"
    res = invoke("compare", "--preset", "tiny", "--conditioning", "classifier-free", "--guidance-scale", "1,3",
                 "--results", str(db), "--set", "eval.num_samples=10")
    assert res.exit_code == 0, res.output
    assert "2 runs, 1 model" in res.output
    rows = ResultStore(db).runs()
    assert sorted(r.spec["conditioning"]["guidance_scale"] for r in rows) == [1.0, 3.0]
    assert "s=3" in res.stdout


@pytest.mark.parametrize("args, message", [
    (("--task", "segmentation"), "segmentation needs an image-conditioning method"),
    (("--task", "segmentation", "--conditioning", "classifier-free"), "image-conditioning"),
    (("--task", "generation", "--conditioning", "controlnet"), "does not apply to task 'generation'"),
    (("--conditioning", "contrlnet"), "did you mean"),
    (("--conditioning", "concat", "--guidance-scale", "2"), "no guidance scale"),
    (("--task", "segmentation", "--conditioning", "classifier-guidance"), "image-conditioning"),
    (("--conditioning", "classifier-guidance", "--set", "conditioning.options.foo=1"), "bad option for conditioning"),
    (("--conditioning", "classifier-guidance", "--set", "conditioning.options.classifier_size=huge"),
     "unknown classifier size"),
])
def test_incompatible_conditioning_is_one_line_exit_2(tmp_path, args, message):
    res = invoke("run", "--preset", "tiny", *args, "--results", str(tmp_path / "r.db"))
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists() or not ResultStore(tmp_path / "r.db").runs()


def test_classifier_guidance_run_trains_its_classifier_once_and_compares_scales(tmp_path):
    """The unconditional model steered by a noisy classifier trained (then reused) for its forward process."""
    from cardiobench.paths import cache_dir

    db = tmp_path / "r.db"
    opts = ("--set", "conditioning.options.classifier_size=tiny", "--set", "conditioning.options.classifier_steps=20",
            "--set", "eval.num_samples=10", "--no-gif")
    res = invoke("compare", "--preset", "tiny", "--conditioning", "classifier-guidance", "--guidance-scale", "0,2",
                 "--results", str(db), *opts)
    assert res.exit_code == 0, res.output
    assert len(list(cache_dir("classifiers").glob("*.pt"))) == 1
    rows = ResultStore(db).runs()
    assert sorted(r.spec["conditioning"]["guidance_scale"] for r in rows) == [0.0, 2.0]
    for row in rows:
        assert row.conditioning == "classifier-guidance" and 0 <= row.metrics["cond_accuracy"] <= 1
        assert not row.spec["conditioning"].get("options", {}).get("classifier_checkpoint")


def test_sample_steers_an_unconditional_checkpoint_with_a_classifier_file(tmp_path):
    from cardiobench.paths import cache_dir

    res = invoke("run", "--preset", "tiny", "--results", str(tmp_path / "r.db"), "--no-gif", "--json")
    assert res.exit_code == 0, res.output
    ckpt = json.loads(res.stdout)["artefacts"]["checkpoint"]
    clf = invoke("classifier", "train", "--preset", "tiny", "--size", "tiny", "--steps", "20", "--json")
    assert clf.exit_code == 0, clf.output
    path = json.loads(clf.stdout)["path"]
    assert path.startswith(str(cache_dir("classifiers")))
    out = tmp_path / "s"
    res = invoke("sample", "-c", ckpt, "--classifier", path, "-s", "2", "--class", "DCM", "-n", "4", "--steps", "3",
                 "-o", str(out), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    spec = data["sample_spec"]
    assert spec["guidance"] == "classifier-guidance" and spec["guidance_scale"] == 2.0
    import numpy as np

    assert np.load(out / "samples.npz")["labels"].tolist() == [2, 2, 2, 2]
    bad = invoke("sample", "-c", ckpt, "--classifier", str(tmp_path / "none.pt"), "-o", str(out))
    assert bad.exit_code == 2 and "classifier checkpoint" in bad.stderr
    nolabel = invoke("sample", "-c", ckpt, "--class", "DCM", "-o", str(out))
    assert nolabel.exit_code == 2 and "--classifier FILE" in nolabel.stderr
