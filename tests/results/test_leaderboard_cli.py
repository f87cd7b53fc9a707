"""``cardiobench leaderboard`` end to end with CliRunner."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import sqlite3
from pathlib import Path

import pytest
from lb_demo import fill_demo_store, generation_runs, grid_png

from cardiobench.results.store import SCHEMA_VERSION, ResultStore
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
    board = next(b for b in data["boards"] if b["ruler"] == "ev-7c1e2a9f" and b["n_samples"] == 256)
    assert board["sort_metric"] == "is" and board["rows"][0]["metrics"]["is"] == 2.44


@pytest.mark.parametrize("fmt, name", [("md", "board.md"), ("csv", "board.csv"), ("json", "board.json"),
                                       ("html", "board.html"), ("table", "board.txt")])
def test_exports_to_files(demo, tmp_path, fmt, name):
    out = tmp_path / name
    result = invoke("leaderboard", "--results", str(demo.path), "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Wrote {out} ({fmt}, 13 runs, 7 boards)" in result.output.replace("\n", "")
    text = out.read_text()
    assert {"md": "| FID ↓ |", "csv": "task,dataset", "json": '"boards"', "html": "data:image/png;base64,",
            "table": "FID ↓"}[fmt] in text
    assert out.stat().st_mode & 0o044  # readable by others, unlike a temp file


def test_format_is_inferred_from_the_extension(demo, tmp_path):
    out = tmp_path / "b.csv"
    assert invoke("leaderboard", "--results", str(demo.path), "-o", str(out)).exit_code == 0
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 13


def test_stdout_exports_are_clean(demo):
    result = invoke("leaderboard", "--results", str(demo.path), "--format", "csv")
    assert result.stdout.startswith("task,dataset,")
    assert invoke("leaderboard", "--results", str(demo.path), "-f", "md").stdout.startswith("### generation")


# -- a store received from someone else ---------------------------------------------------------
def test_html_export_never_embeds_a_file_the_run_did_not_write(demo, tmp_path):
    secret = tmp_path / "credentials"
    secret.write_bytes(b"[default]\naws_secret_access_key = TOPSECRET0123456789\n")
    photo = grid_png(tmp_path / "private.png", seed=5)  # an image, but not in any run's folder
    for i, path in enumerate((secret, photo, Path("/etc/passwd"))):
        run = generation_runs()[i]
        run.artefacts = {"sample_grid": str(path)}
        demo.add_run(run)
    out = tmp_path / "board.html"
    result = invoke("leaderboard", "--results", str(demo.path), "--all", "-o", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    for path in (secret, photo, Path("/etc/passwd")):
        assert base64.b64encode(path.read_bytes()).decode() not in page
    assert page.count("data:image/png;base64,") == 4  # the demo runs' own grids, under runs/SPEC/
    assert page.count("artefact not embedded: outside the run&#x27;s folder") == 3


def test_an_empty_store_file_is_read_as_empty_and_left_alone(tmp_path):
    db = tmp_path / "results.db"
    db.write_bytes(b"")
    result = invoke("leaderboard", "--results", str(db))
    assert result.exit_code == 0, result.output
    assert "No results yet" in result.output
    assert db.read_bytes() == b"" and [p.name for p in tmp_path.iterdir()] == ["results.db"]


def test_a_file_that_is_no_store_is_one_line_exit_2_and_left_alone(tmp_path):
    db = tmp_path / "results.db"
    db.write_bytes(b"PK\x03\x04 a zip, not SQLite" * 50)
    result = invoke("leaderboard", "--results", str(db))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert str(db) in result.output and "not an SQLite database" in result.output
    assert db.read_bytes() == b"PK\x03\x04 a zip, not SQLite" * 50


def test_a_corrupt_row_is_skipped_with_one_warning_line(demo):
    conn = sqlite3.connect(demo.path)
    conn.execute("UPDATE runs SET metrics_json = '{\"fid\": 18.4, oops' WHERE id = 2")  # hand-edited
    conn.commit()
    conn.close()
    result = invoke("leaderboard", "--results", str(demo.path), "-f", "json")
    assert result.exit_code == 0, result.output
    ids = [r["run_id"] for b in json.loads(result.stdout)["boards"] for r in b["rows"]]
    assert sorted(ids) == [1, *range(3, 14)]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Warning: skipped 1 unreadable row of {demo.path}: run 2 (metrics_json is not valid JSON")


def test_a_store_on_a_read_only_mount_can_be_read(tmp_path):
    """A WAL store in a folder nobody may write to (a read-only mount): SQLite can neither create nor open
    the store's -shm file there, and a plain open fails with "unable to open database file". chmod does
    not stop root, so for root the -shm path is made one that cannot be opened (a link to nowhere):
    the same failure, met the same way."""
    store = fill_demo_store(tmp_path / "res")
    folder = store.path.parent
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    if os.geteuid() == 0:
        Path(f"{store.path}-shm").symlink_to(tmp_path / "no-such-folder" / "shm")
    before = {p.name: p.read_bytes() for p in folder.glob("*.db")}
    for path in [*folder.rglob("*"), folder]:
        if not path.is_symlink():
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
    try:
        result = invoke("leaderboard", "--results", str(store.path), "-f", "json")
    finally:
        for path in [folder, *folder.rglob("*")]:
            if not path.is_symlink():
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
    assert result.exit_code == 0, result.output
    assert len([r for b in json.loads(result.stdout)["boards"] for r in b["rows"]]) == 13
    assert {p.name: p.read_bytes() for p in folder.glob("*.db")} == before


@pytest.mark.parametrize("command", [["run"], ["compare", "--noise", "gaussian"]])
def test_run_force_refuses_a_newer_store_before_training(tmp_path, monkeypatch, command):
    from cardiobench.engine import pipeline

    db = tmp_path / "results.db"
    ResultStore(db).add_run(generation_runs()[0])
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()

    def no_training(*args, **kwargs):
        pytest.fail("training started although the store cannot take the result")

    monkeypatch.setattr(pipeline, "_ensure_trained", no_training)
    result = invoke(*command, "--preset", "tiny", "--force", "--no-gif", "--results", str(db))
    assert result.exit_code == 2, result.output
    [line] = [x for x in result.stderr.strip().splitlines() if x.startswith("Error")]
    assert f"results store {db} has schema version {SCHEMA_VERSION + 1}, newer than this cardiobench" in line
    assert not (tmp_path / "runs").exists()


def test_a_store_of_the_previous_schema_is_ranked_without_being_changed(tmp_path):
    from test_results_store import _schema_1_store

    db = tmp_path / "results.db"
    _schema_1_store(db)
    before = db.read_bytes()
    result = invoke("leaderboard", "--results", str(db), "-f", "md")
    assert result.exit_code == 0, result.output
    assert "### generation · phantom — evaluator `ev1` · 64 samples · distances in mm" in result.stdout
    assert db.read_bytes() == before and ResultStore(db).schema_version() == 1


def test_the_demo_board_shows_counts_units_and_the_flagged_ruler(demo):
    out = invoke("leaderboard", "--results", str(demo.path)).stdout
    assert "evaluator ev-7c1e2a9f · 256 samples · distances in mm" in out
    assert "evaluator ev-7c1e2a9f · 64 samples · distances in mm" in out
    assert "ruler FLAGGED: accuracy 0.27 vs chance 0.2; ordering fails at mismatched < damaged" in out
    assert "128 test images · distances in px" in out and "HD95 mean (px) ↓" in out and "HD95 mean (mm) ↓" in out
