"""``cardiobench bench`` end to end with the tiny preset (seconds)."""

import json

from cardiobench.results import ResultStore
from cardiobench.testing.cli import invoke

TINY = ("bench", "--preset", "tiny", "--threads", "1")


def test_bench_json_stores_a_throughput_run(tmp_path):
    db = tmp_path / "results.db"
    result = invoke(*TINY, "--results", str(db), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["device"]["type"] == "cpu" and out["torch_threads"] == 1 and len(out["results"]) == 1
    r = out["results"][0]
    assert r["backbone"] == "unet" and r["noise"] == "gaussian" and r["sampler"] == "ddpm"
    assert r["batch_size"] == 4 and r["sample_steps"] == 2 and r["nfe"] == 2 and r["max_time"] == 20.0
    assert r["repeats_made"] == {"train": 1, "sample": 1, "overhead": 1}
    assert all(v > 0 for v in r["metrics"].values())
    assert "sample img/s" in result.stderr  # the table goes to stderr with --json
    runs = ResultStore(db).runs(task="throughput")
    assert [x.id for x in runs] == [r["id"]]
    assert runs[0].metrics["images_per_s"] == r["metrics"]["images_per_s"]
    board = invoke("leaderboard", "--task", "throughput", "--results", str(db), "--format", "json")
    assert board.exit_code == 0, board.output
    assert "images_per_s" in board.stdout and "unet" in board.stdout


def test_bench_matrix_and_options(tmp_path):
    result = invoke(*TINY, "--noise", "gaussian,blurring", "--sampler", "ddpm,ddim", "--steps", "3",
                    "--batch-size", "2", "--resolution", "8", "--repeats", "2", "--dtype", "bf16", "--no-store",
                    "--max-time", "0", "--results", str(tmp_path / "r.db"), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    got = [(r["noise"], r["sampler"]) for r in out["results"]]
    assert sorted(got) == sorted((n, s) for n in ("gaussian", "blurring") for s in ("ddpm", "ddim"))
    assert all(r["nfe"] == 3 and r["batch_size"] == 2 and r["resolution"] == 8 and r["dtype"] == "bf16"
               and len(r["sample_loop_s"]) == 2 and r["max_time"] is None for r in out["results"])
    assert sum("train" in r["reused"] for r in out["results"]) == 2  # one training measurement per process
    assert out["results_store"] is None and not (tmp_path / "r.db").exists()


def test_bench_table_output(tmp_path):
    result = invoke(*TINY, "--results", str(tmp_path / "r.db"))
    assert result.exit_code == 0, result.output
    assert "cardiobench bench" in result.stdout and "unet 8ch" in result.stdout and "load average" in result.stdout


def test_bench_errors_are_one_line(tmp_path):
    for args, words in ((("--dtype", "fp64"), "unknown dtype"), (("--sampler", ","), "--sampler is empty"),
                        (("--noise", "nope"), "nope")):
        result = invoke(*TINY, "--results", str(tmp_path / "r.db"), *args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0]
