"""`cardiobench cache info` / `cache clear`, and where the cache lives (CARDIOBENCH_CACHE_DIR, XDG_CACHE_HOME)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from cardiobench.cli.cache_cmd import KINDS, human_size
from cardiobench.paths import cache_dir
from cardiobench.testing.cli import invoke


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    """A cache folder with entries of every kind, leftovers and files that are not cardiobench's."""
    root = tmp_path / "cache"
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(root))
    files = {
        "data/phantom-32px-0123456789abcdef0123.npz": 1000,
        "data/.phantom-64px-aaaa.npz.x1y2.tmp": 10,  # an interrupted atomic write
        "data/notes.txt": 7,  # not cardiobench's: counted nowhere, never removed
        "checkpoints/0123456789abcdef/checkpoint.pt": 5000,
        "checkpoints/0123456789abcdef/.checkpoint.pt.x.tmp": 50,
        "checkpoints/fedcba9876543210/checkpoint.pt": 3000,
        "checkpoints/my-run/checkpoint.pt": 1,  # not a cardiobench hash folder
        "evaluators/phantom-0123456789abcdef-01234567.pt": 400,
        "elsewhere/keep.bin": 20,
    }
    for rel, size in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
    return root


def info_json() -> dict:
    result = invoke("cache", "info", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cache_dir_follows_xdg_cache_home_and_cardiobench_cache_dir_comes_first(monkeypatch, tmp_path):
    monkeypatch.delenv("CARDIOBENCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache_dir("data") == tmp_path / "xdg" / "cardiobench" / "data"
        assert (tmp_path / "xdg" / "cardiobench" / "data").is_dir()
    assert not (tmp_path / "nowhere").exists()
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir("evaluators") == tmp_path / "mine" / "evaluators"
    assert cache_dir("x", create=False) == tmp_path / "mine" / "x" and not (tmp_path / "mine" / "x").exists()


def test_info_counts_each_kind(cache):
    report = info_json()
    assert report["root"] == str(cache) and report["set_by"] == "CARDIOBENCH_CACHE_DIR"
    kinds = {k["kind"]: k for k in report["kinds"]}
    assert list(kinds) == list(KINDS)
    assert (kinds["data"]["entries"], kinds["data"]["bytes"]) == (2, 1010)
    assert (kinds["checkpoints"]["entries"], kinds["checkpoints"]["bytes"]) == (2, 8050)
    assert (kinds["evaluators"]["entries"], kinds["evaluators"]["bytes"]) == (1, 400)
    assert (kinds["classifiers"]["entries"], kinds["classifiers"]["bytes"]) == (0, 0)
    assert kinds["checkpoints"]["path"] == str(cache / "checkpoints")
    assert all(k["what"] and k["if_removed"] for k in kinds.values())
    assert report["total_bytes"] == 1010 + 8050 + 400
    assert report["other"] == [{"name": "elsewhere", "path": str(cache / "elsewhere"), "bytes": 20}]


def test_info_table(cache):
    result = invoke("cache", "info", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert str(cache) in result.stdout and "cache clear" in result.stdout
    for name in KINDS:
        assert re.search(rf"\b{name}\b", result.stdout)
    assert human_size(8050) in result.stdout and "not cardiobench's" in result.stdout


def test_info_on_a_missing_cache_creates_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "none"))
    report = info_json()
    assert report["total_bytes"] == 0 and all(k["entries"] == 0 for k in report["kinds"])
    assert not (tmp_path / "none").exists()


def test_clear_one_kind_with_yes_removes_only_its_entries(cache):
    result = invoke("cache", "clear", "checkpoints", "--yes")
    assert result.exit_code == 0, result.output
    assert "Removed 2 cached entries" in result.stdout and human_size(8050) in result.stdout
    assert sorted(p.name for p in (cache / "checkpoints").iterdir()) == ["my-run"]
    assert (cache / "data" / "phantom-32px-0123456789abcdef0123.npz").exists()


def test_clear_everything_keeps_what_is_not_cardiobenchs(cache):
    result = invoke("cache", "clear", "-y")
    assert result.exit_code == 0, result.output
    assert "Removed 5 cached entries" in result.stdout
    left = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())
    assert left == ["checkpoints/my-run/checkpoint.pt", "data/notes.txt", "elsewhere/keep.bin"]
    again = invoke("cache", "clear", "--yes")
    assert again.exit_code == 0 and "Nothing to remove" in again.stdout


def test_clear_asks_first(cache):
    declined = invoke("cache", "clear", "data", input="n\n")
    assert declined.exit_code == 0 and "Remove 2 cached entries" in declined.stdout
    assert "Nothing removed." in declined.stdout and len(list((cache / "data").iterdir())) == 3
    accepted = invoke("cache", "clear", "data", input="y\n")
    assert accepted.exit_code == 0 and "Removed 2 cached entries" in accepted.stdout
    assert [p.name for p in (cache / "data").iterdir()] == ["notes.txt"]


def test_clear_without_an_answer_is_a_one_line_error(cache):
    result = invoke("cache", "clear", "evaluators", input="")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "pass --yes" in result.stderr and result.stderr.startswith("Error:")
    assert len(list((cache / "evaluators").iterdir())) == 1


def test_unknown_kind_is_a_one_line_error(cache):
    result = invoke("cache", "clear", "models", "--yes")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "unknown cache kind 'models'" in result.stderr
    assert "data, checkpoints, evaluators, classifiers, autoencoders, segmenters" in result.stderr


def test_what_cardiobench_writes_is_what_cache_counts(monkeypatch, tmp_path):
    """The writers' file names match the patterns cache info counts and cache clear removes."""
    from cardiobench.autoencoders.train import AUTOENCODERS
    from cardiobench.conditioning.classifier import classifier_cache_path
    from cardiobench.data import open_dataset
    from cardiobench.downstream.segmenter import SegmenterSpec, segmenter_cache_path
    from cardiobench.engine.checkpoints import cached_checkpoint_path
    from cardiobench.metrics.evaluator import EvaluatorConfig, cache_path
    from cardiobench.metrics.image_ruler import ImageEvaluatorConfig, image_cache_path

    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "c"))
    written = {
        "checkpoints": cached_checkpoint_path("ab" * 32).parent,
        "evaluators": cache_path("phantom", "cd" * 32, EvaluatorConfig()),
        "classifiers": classifier_cache_path("ef" * 32),
        "data": open_dataset("phantom", size=16).cache_path(),
        "autoencoders": AUTOENCODERS.cache_path("01" * 32),
        "segmenters": segmenter_cache_path(SegmenterSpec(data="x")),
    }
    for kind, path in written.items():
        if kind == "checkpoints":
            (path / "checkpoint.pt").write_bytes(b"x")
        else:
            path.write_bytes(b"x")
        assert KINDS[kind].entries(path.parent) == [path], kind
    image_ruler = image_cache_path("phantom", "cd" * 32, ImageEvaluatorConfig())  # beside the mask rulers
    image_ruler.write_bytes(b"x")
    assert KINDS["evaluators"].entries(image_ruler.parent) == sorted([written["evaluators"], image_ruler])
    assert {k["kind"]: k["entries"] for k in info_json()["kinds"]} == {
        "data": 1, "checkpoints": 1, "evaluators": 2, "classifiers": 1, "autoencoders": 1, "segmenters": 1}
    assert os.listdir(tmp_path / "c")  # sanity: the writers used the cache folder
