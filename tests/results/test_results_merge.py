"""``merge_stores`` / ``cardiobench results merge``: idempotent, conflicts reported and kept once."""

from __future__ import annotations

import json

import pytest

from cardiobench.results.store import ResultStore, RunRecord, StoreError, merge_stores, row_fingerprint
from cardiobench.testing.cli import invoke


def record(spec_hash: str, fid: float = 12.5, **kw) -> RunRecord:
    base = dict(task="generation", dataset="phantom", noise="gaussian", sampler="ddpm", backbone="unet",
                spec={"sample": {"sampler": "ddpm"}}, spec_hash=spec_hash, train_hash="t1", seeds={"train": 0},
                metrics={"fid": fid, "kid": 0.01}, directions={"fid": "lower", "kid": "lower"}, evaluator_id="ev1",
                timings={"train_s": 1.5}, environment={"node": "a"}, artefacts={}, context={"n_samples": 8})
    base.update(kw)
    return RunRecord(**base)


@pytest.fixture
def two_jobs(tmp_path):
    a, b = ResultStore(tmp_path / "job-a" / "results.db"), ResultStore(tmp_path / "job-b" / "results.db")
    a.add_run(record("run1", 10.0))
    a.add_run(record("run2", 20.0, sampler="ddim"))
    b.add_run(record("run3", 30.0, noise="blurring"))
    b.add_run(record("run4", 40.0, status="failed"))
    return a, b


def _rows(store: ResultStore) -> list[tuple]:
    return sorted((r.spec_hash, r.status, r.metrics["fid"], r.created_at) for r in store.runs(status=None))


def test_merge_copies_every_row_and_twice_adds_nothing(tmp_path, two_jobs):
    a, b = two_jobs
    target = ResultStore(tmp_path / "all.db")
    first = merge_stores(target, [a, b])
    assert (first.added, first.already, first.conflicts) == (4, 0, [])
    assert _rows(target) == sorted(_rows(a) + _rows(b))  # created_at and every field kept
    by_hash = {r.spec_hash: r for r in target.runs(status=None)}
    for src in (a, b):
        for r in src.runs(status=None):
            assert row_fingerprint(by_hash[r.spec_hash]) == row_fingerprint(r)
    again = merge_stores(target, [a, b, target])
    assert (again.added, again.already, again.conflicts) == (0, 8, [])
    assert target.count() == 4


def test_the_same_run_in_two_stores_is_reported_not_duplicated(tmp_path, two_jobs):
    a, _ = two_jobs
    c = ResultStore(tmp_path / "job-c.db")
    c.add_run(record("run1", 10.0, environment={"node": "c"}))  # the same run on another node: same numbers
    c.add_run(record("run2", 25.0, sampler="ddim"))  # a rerun with other numbers
    target = ResultStore(tmp_path / "all.db")
    report = merge_stores(target, [a, c])
    assert report.added == 2 and len(report.conflicts) == 2
    same = {x.spec_hash: x.same_metrics for x in report.conflicts}
    assert same == {"run1": True, "run2": False}
    assert all(x.source == str(c.path) and x.kept is not None for x in report.conflicts)
    assert sorted(r.spec_hash for r in target.runs()) == ["run1", "run2"]
    assert target.find("run2").metrics["fid"] == 20.0  # the first store's row is kept


def test_cli_merge_reports_and_is_idempotent(tmp_path, two_jobs):
    a, b = two_jobs
    target = tmp_path / "merged.db"
    result = invoke("results", "merge", str(a.path.parent), str(b.path), "--results", str(target), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["added"] == 4 and data["conflicts"] == [] and data["target"] == str(target)
    result = invoke("results", "merge", str(a.path), str(b.path), "--results", str(target))
    assert result.exit_code == 0, result.output
    assert "0 run(s) added, 4 already there, 0 conflict(s)" in result.output
    lb = invoke("leaderboard", "--results", str(target), "--format", "json")
    rows = [row for board in json.loads(lb.stdout)["boards"] for row in board["rows"]]
    assert lb.exit_code == 0 and len(rows) == 3  # the failed run is not ranked


def test_missing_source_is_one_line_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        merge_stores(ResultStore(tmp_path / "t.db"), [ResultStore(tmp_path / "nope.db")])
    result = invoke("results", "merge", str(tmp_path / "nope.db"), "--results", str(tmp_path / "t.db"))
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Error:" in result.output
