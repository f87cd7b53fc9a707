"""`cardiobench run` and `compare` end to end on the tiny preset (seconds per run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from cardiobench.engine import pipeline
from cardiobench.hookspecs import hookimpl
from cardiobench.results.store import ResultStore
from cardiobench.testing.cli import invoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("run-cache")


@pytest.fixture(autouse=True)
def _shared_cache(monkeypatch, module_cache):
    """One cache for the module: the tiny phantom, its evaluator and checkpoints are built once."""
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(module_cache))
    monkeypatch.setenv("COLUMNS", "200")


def test_run_trains_samples_evaluates_stores_and_reuses(tmp_path):
    db = tmp_path / "results.db"
    result = invoke("run", "--preset", "tiny", "--noise", "gaussian", "--sampler", "ddpm", "--results", str(db))
    assert result.exit_code == 0, result.output
    assert "FID ↓" in result.stdout and "real vs real" in result.stdout and "anatomy" in result.stdout
    [row] = ResultStore(db).runs()
    assert row.task == "generation" and row.noise == "gaussian" and row.sampler == "ddpm"
    assert row.evaluator_id and row.metrics["fid"] is not None and row.directions["fid"] == "lower"
    for key in ("sample_grid", "reverse_gif", "loss_curve", "metrics", "samples"):
        assert os.path.isfile(row.artefacts[key]), key
    stored = json.loads(open(row.artefacts["metrics"]).read())
    assert stored["spec_hash"] == row.spec_hash and stored["metrics"]["fid"] == pytest.approx(row.metrics["fid"])

    again = invoke("run", "--preset", "tiny", "--noise", "gaussian", "--sampler", "ddpm", "--results", str(db),
                   "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["train_status"] == "skipped" and data["id"] == row.id
    assert ResultStore(db).count() == 1

    other = invoke("run", "--preset", "tiny", "--sampler", "ddim", "--steps", "3", "--results", str(db), "--json",
                   "--no-gif")
    assert other.exit_code == 0, other.output
    data = json.loads(other.stdout)
    assert data["train_status"] == "reused" and data["train_hash"] == row.train_hash  # same model, trained once


def test_compare_trains_each_model_once_and_resumes_after_interrupt(tmp_path, monkeypatch):
    db = tmp_path / "results.db"
    args = ("compare", "--preset", "tiny", "--noise", "gaussian,blurring", "--sampler", "ddpm,ddim",
            "--results", str(db))
    real_execute = pipeline.execute
    calls = []

    def interrupted(plan, *a, **kw):
        calls.append(plan)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_execute(plan, *a, **kw)

    monkeypatch.setattr(pipeline, "execute", interrupted)
    first = invoke(*args)
    assert first.exit_code == 130 and "run the same command again" in first.stderr
    assert ResultStore(db).count() == 2
    monkeypatch.setattr(pipeline, "execute", real_execute)

    second = invoke(*args)
    assert second.exit_code == 0, second.output
    rows = ResultStore(db).runs()
    assert len(rows) == 4
    assert {(r.noise, r.sampler) for r in rows} == {(n, s) for n in ("gaussian", "blurring") for s in ("ddpm", "ddim")}
    assert len({r.train_hash for r in rows}) == 2
    assert second.stdout.count("finished run found") == 0 and "2 models" in second.stderr
    assert second.stderr.count("finished run found in the results store") == 2

    third = invoke(*args)
    assert third.exit_code == 0 and ResultStore(db).count() == 4
    assert third.stderr.count("finished run found in the results store") == 4
    board = [line for line in third.stdout.splitlines() if "gaussian" in line or "blurring" in line]
    assert len(board) == 4

    # docs/usage.md shows this very compare as `leaderboard --format md`: its heading and columns are what a user
    # gets (the numbers may differ in the last digits between machines)
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "usage.md").read_text()
    md = invoke("leaderboard", "--results", str(db), "--format", "md")
    assert md.exit_code == 0, md.output
    got = [line for line in md.stdout.splitlines() if line.startswith(("| #", "### generation"))]
    assert len(got) == 2 and all(line in doc for line in got), got
    rows = [line.split(" | ")[1:3] for line in md.stdout.splitlines() if line.startswith("| 1 ") or
            line.startswith("| 2 ") or line.startswith("| 3 ") or line.startswith("| 4 ")]
    documented = [line.split(" | ")[1:3] for line in doc.split("cardiobench leaderboard --format md")[1]
                  .split("sorted by")[0].splitlines() if line[:4] in ("| 1 ", "| 2 ", "| 3 ", "| 4 ")]
    assert sorted(rows) == sorted(documented)  # the same runs (their order may change with the last digits)


def test_incompatible_pairs_are_skipped_up_front_and_rejected_by_run(tmp_path, register_plugin):
    def register_samplers(register):
        register("cat-only", lambda process, **o: None, families=("categorical",))

    register_plugin(SimpleNamespace(register_samplers=hookimpl(register_samplers)), "catplug")
    db = tmp_path / "results.db"
    result = invoke("run", "--preset", "tiny", "--sampler", "cat-only", "--results", str(db))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: sampler 'cat-only' does not support noise process 'gaussian'")
    assert len(result.stderr.strip().splitlines()) == 1
    result = invoke("compare", "--preset", "tiny", "--sampler", "cat-only", "--results", str(db))
    assert result.exit_code == 2 and "no compatible combination" in result.stderr
    assert not db.exists() or ResultStore(db).count() == 0


def test_unknown_plugin_and_bad_config_are_one_line_errors(tmp_path):
    result = invoke("run", "--noise", "gausian", "--results", str(tmp_path / "r.db"))
    assert result.exit_code == 2 and "did you mean 'gaussian'" in result.stderr
    result = invoke("run", "--preset", "tiny", "--set", "train.lrr=1", "--results", str(tmp_path / "r.db"))
    assert result.exit_code == 2 and "train.lr" in result.stderr and "Traceback" not in result.output


def test_two_run_processes_writing_one_store_lose_nothing(tmp_path, module_cache):
    db = tmp_path / "results.db"
    env = {k: v for k, v in os.environ.items()}
    env["CARDIOBENCH_CACHE_DIR"] = str(module_cache)
    procs = [
        subprocess.Popen([sys.executable, "-m", "cardiobench", "run", "--preset", "tiny", "--seed", str(seed),
                          "--no-gif", "--json", "--results", str(db)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    rows = ResultStore(db).runs()
    assert sorted(r.seeds["sample"] for r in rows) == [1, 2]


def test_a_run_shows_its_work_and_its_gif_ends_on_the_grid_s_samples(tmp_path):
    """Issue 20 item 2: sampler steps with a rate beside the bar (plain lines off a terminal), progress on stderr
    with --json too, the GIF drawn during the sampling pass (its last frame = the first samples), captioned with
    the timestep, and timings whose parts add up to the total; metrics.json and the store name one train hash."""
    import numpy as np
    from PIL import Image

    from cardiobench.engine.sample import read_samples

    db = tmp_path / "results.db"
    res = invoke("run", "--preset", "tiny", "--sampler", "ddim", "--steps", "4", "--results", str(db), "--json")
    assert res.exit_code == 0, res.output
    assert "cardiobench run" in res.stderr and "sample 4/4 step" in res.stderr and "step/s" in res.stderr
    data = json.loads(res.stdout)
    masks, _ = read_samples(data["artefacts"]["samples"])
    gif = Image.open(data["artefacts"]["reverse_gif"])
    gif.seek(gif.n_frames - 1)
    from cardiobench.viz import mask_grid

    last = mask_grid(masks[:8], nrow=4, scale=4, caption="step 4/4 (x0)")  # tiny: 8 samples in one batch
    assert np.array_equal(np.asarray(gif.convert("RGB")), np.asarray(last))  # exact colours: no dithering
    t = data["timings"]
    parts = t["train_s"] + t["sample_s"] + t["gif_s"] + t["eval_s"]
    assert parts <= t["total_s"] + 1e-3 and parts > 0.8 * t["total_s"], t
    stored = json.loads(open(data["artefacts"]["metrics"]).read())
    assert stored["spec"]["train_hash"] == data["train_hash"]


def test_sampler_options_are_addressed_to_their_sampler(tmp_path, register_plugin):
    """Issue 20 item 9: a **kwargs sampler never gets `eta`; `sample.options` in a two-sampler compare must
    name its sampler; an addressed option goes to that sampler only."""
    seen = []

    class Plain:
        @staticmethod
        @hookimpl
        def register_samplers(register):
            def make(process, **options):
                from cardiobench.diffusion.ddim import DDIMSampler

                seen.append(dict(options))
                return DDIMSampler(process, **options)

            register("plain-kw", make, families=("linear-gaussian",))

    register_plugin(Plain(), "plain-kw")
    cfg = pipeline.resolve("tiny", None, {"sample.sampler": "plain-kw"}, [])
    plan = pipeline.plan_from_config(cfg)
    assert "eta" not in plan.sampler_options and seen and "eta" not in seen[-1]
    cfg = pipeline.resolve("tiny", None, {"sample.sampler": "ddim"}, ["sample.options.ddim.eta=0.5",
                                                                       "sample.options.ddpm.clip_x0=false"])
    assert pipeline.plan_from_config(cfg).sampler_options == {"eta": 0.5}
    bad = invoke("compare", "--preset", "tiny", "--sampler", "ddpm,ddim", "--set", "sample.options.eta=0.5",
                 "--results", str(tmp_path / "r.db"))
    assert bad.exit_code == 2 and "would go to every sampler" in bad.output and "sample.options.ddpm.eta" in bad.output
