"""``cardiobench leaderboard`` end to end with CliRunner."""

from __future__ import annotations

import csv
import io
import json

import pytest
from lb_demo import fill_demo_store

from cardiobench.testing.cli import invoke


@pytest.fixture
def demo(tmp_path):
    return fill_demo_store(tmp_path / "res")


def test_empty_store_is_a_friendly_exit_0(tmp_path):
    result = invoke("leaderboard", "--results", str(tmp_path / "none.db"))
    assert result.exit_code == 0
    assert "No results yet" in result.output and "cardiobench run --noise gaussian --sampler ddpm" in result.output
    assert not (tmp_path / "none.db").exists()


def test_table_shows_one_board_per_evaluator(demo):
    result = invoke("leaderboard", "--results", str(demo.path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "evaluator ev-7c1e2a9f" in out and "evaluator ev-03b5d6e1" in out
    assert "device demo GPU" in out and "FID ↓" in out and "images_per_s ↑" in out
    assert "sorted by FID ↓ (lower is better) · 4 runs" in out
    assert "…" not in out  # captured output is not folded to 80 columns


def test_task_and_dataset_filters(demo):
    out = invoke("leaderboard", "--results", str(demo.path), "--task", "throughput").stdout
    assert "throughput" in out and "generation" not in out
    result = invoke("leaderboard", "--results", str(demo.path), "--dataset", "acdc")
    assert result.exit_code == 0 and "No runs match --dataset acdc" in result.output


def test_folder_and_env_var_name_the_store(demo, monkeypatch):
    assert "ev-7c1e2a9f" in invoke("leaderboard", "--results", str(demo.path.parent)).stdout
    result = invoke("leaderboard", env={"CARDIOBENCH_RESULTS": str(demo.path)})
    assert result.exit_code == 0 and "ev-7c1e2a9f" in result.stdout


def test_unknown_sort_metric_is_one_line_exit_2(demo):
    result = invoke("leaderboard", "--results", str(demo.path), "--sort", "fd")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "unknown metric 'fd'" in lines[0] and "available: fid, kid" in lines[0]


@pytest.mark.parametrize(
    "args, message", [(["--task", "paint"], "unknown task"), (["--format", "pdf"], "unknown format")]
)
def test_bad_options_exit_2(demo, args, message):
    result = invoke("leaderboard", "--results", str(demo.path), *args)
    assert result.exit_code == 2 and message in result.output


def test_sort_option(demo):
    data = json.loads(invoke("leaderboard", "--results", str(demo.path), "--sort", "is", "-f", "json").stdout)
    board = next(b for b in data["boards"] if b["ruler"] == "ev-7c1e2a9f")
    assert board["sort_metric"] == "is" and board["rows"][0]["metrics"]["is"] == 2.44


@pytest.mark.parametrize("fmt, name", [("md", "board.md"), ("csv", "board.csv"), ("json", "board.json"),
                                       ("html", "board.html"), ("table", "board.txt")])
def test_exports_to_files(demo, tmp_path, fmt, name):
    out = tmp_path / name
    result = invoke("leaderboard", "--results", str(demo.path), "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Wrote {out} ({fmt}, 9 runs, 4 boards)" in result.output.replace("\n", "")
    text = out.read_text()
    assert {"md": "| FID ↓ |", "csv": "task,dataset", "json": '"boards"', "html": "data:image/png;base64,",
            "table": "FID ↓"}[fmt] in text
    assert out.stat().st_mode & 0o044  # readable by others, unlike a temp file


def test_format_is_inferred_from_the_extension(demo, tmp_path):
    out = tmp_path / "b.csv"
    assert invoke("leaderboard", "--results", str(demo.path), "-o", str(out)).exit_code == 0
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 9


def test_stdout_exports_are_clean(demo):
    result = invoke("leaderboard", "--results", str(demo.path), "--format", "csv")
    assert result.stdout.startswith("task,dataset,")
    assert invoke("leaderboard", "--results", str(demo.path), "-f", "md").stdout.startswith("### generation")
