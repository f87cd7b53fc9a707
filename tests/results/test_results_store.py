"""The SQLite results store: round trips, filters, schema versions, atomicity, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from cardiobench.results.store import (
    DEFAULT_RESULTS_PATH,
    MIGRATIONS,
    SCHEMA_VERSION,
    ResultStore,
    RunRecord,
    SkippedRow,
    StoreError,
    default_results_path,
    resolve_results_path,
)


def record(**kw) -> RunRecord:
    base = dict(
        task="generation", dataset="phantom", noise="gaussian", sampler="ddpm", backbone="unet",
        spec={"train": {"steps": 3}, "sample": {"steps": 4}}, train_hash="t1", seeds={"train": 0, "sample": 1},
        metrics={"fid": 12.5, "kid": 0.01}, directions={"fid": "lower", "kid": "lower"},
        evaluator_id="ev1", timings={"train_s": 1.5}, environment={"torch": "2"},
        artefacts={"sample_grid": "runs/1/grid.png"}, context={"n_samples": 64, "distance_unit": "mm"},
    )
    base.update(kw)
    return RunRecord(**base)


def test_round_trip_keeps_every_field(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    rec = record(spreads={"fid": 0.4})
    run_id = store.add_run(rec)
    assert rec.id == run_id and rec.created_at and rec.spec_hash
    got = store.get(run_id)
    assert got == rec
    assert list(got.metrics) == ["fid", "kid"]  # the order metrics were given in is kept


def test_metric_order_is_kept_as_given(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    store.add_run(record(metrics={"kid": 0.1, "fid": 3.0, "is": 2.0}))
    assert list(store.runs()[0].metrics) == ["kid", "fid", "is"]


def test_default_spec_hash_tells_components_apart(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    a, b = record(sampler="ddpm"), record(sampler="ddim")
    store.add_run(a)
    store.add_run(b)
    assert a.spec_hash != b.spec_hash
    explicit = record(spec_hash="abc")
    store.add_run(explicit)
    assert store.get(explicit.id).spec_hash == "abc"


def test_filters_latest_and_find(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    store.add_run(record(spec_hash="s1"))
    second = record(spec_hash="s1", metrics={"fid": 9.0})
    store.add_run(second)
    store.add_run(record(spec_hash="s2", dataset="acdc", sampler="ddim"))
    store.add_run(record(spec_hash="s3", status="failed", metrics={}))
    store.add_run(record(task="throughput", spec_hash="s4", evaluator_id=None, metrics={"images_per_s": 5.0},
                         directions={"images_per_s": "higher"}))
    assert [r.spec_hash for r in store.runs()] == ["s1", "s1", "s2", "s4"]  # finished only, oldest first
    assert len(store.runs(status=None)) == 5
    assert [r.spec_hash for r in store.runs(dataset="acdc")] == ["s2"]
    assert [r.spec_hash for r in store.runs(task="throughput")] == ["s4"]
    assert [r.spec_hash for r in store.runs(sampler="ddim", dataset="phantom")] == []
    assert store.find("s1").id == second.id
    assert store.find("s1", evaluator_id="other") is None
    assert store.find("s3") is None  # a failed run is not a finished one
    assert store.latest(task="generation").spec_hash == "s2"
    assert store.runs(newest_first=True, limit=2)[0].spec_hash == "s4"
    assert store.count() == 5 and store.count("failed") == 1
    with pytest.raises(TypeError, match="unknown filter"):
        store.runs(colour="red")


def test_reading_a_missing_store_creates_nothing(tmp_path):
    store = ResultStore(tmp_path / "nested" / "r.db")
    assert store.runs() == [] and store.find("x") is None and store.latest() is None
    assert store.count() == 0 and store.get(1) is None and store.schema_version() == 0
    assert not (tmp_path / "nested").exists()


def test_schema_version_table_and_wal(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    store.add_run(record())
    assert store.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
    finally:
        conn.close()
    # a second opener does not re-apply migrations
    ResultStore(store.path).add_run(record())
    assert ResultStore(store.path).count() == 2


def test_a_newer_schema_is_refused(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    store.add_run(record())
    _newer_schema(store.path)
    with pytest.raises(StoreError, match="newer than this cardiobench"):
        ResultStore(store.path).runs()
    with pytest.raises(StoreError, match="newer than this cardiobench"):
        ResultStore(store.path).add_run(record())


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "r.db"
    bad.write_text("not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        ResultStore(bad).runs()
    assert bad.read_text() == "not sqlite at all" * 100


def _newer_schema(path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()


def test_reading_an_empty_file_writes_nothing(tmp_path):
    empty = tmp_path / "results.db"
    empty.write_bytes(b"")
    store = ResultStore(empty)
    assert store.runs() == [] and store.count() == 0 and store.get(1) is None and store.schema_version() == 0
    assert store.latest() is None and store.find("x") is None
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["results.db"]
    store.add_run(record())  # a writer may still start the store there
    assert ResultStore(empty).count() == 1


def test_reading_a_store_never_changes_it(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    store.add_run(record())
    before = store.path.read_bytes()
    assert len(ResultStore(store.path).runs()) == 1
    assert store.path.read_bytes() == before


def test_a_database_of_something_else_is_refused_unchanged(tmp_path):
    other = tmp_path / "r.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    with pytest.raises(StoreError, match="not a cardiobench results store"):
        ResultStore(other).runs()
    assert other.read_bytes() == before


def test_corrupt_rows_are_skipped_and_reported(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    ids = [store.add_run(record(spec_hash=f"s{i}")) for i in range(4)]
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE runs SET metrics_json = '{\"fid\": 1.0,' WHERE id = ?", (ids[1],))  # cut short
    conn.execute("UPDATE runs SET directions_json = '[\"lower\"]' WHERE id = ?", (ids[2],))  # not an object
    conn.commit()
    conn.close()
    skipped: list[SkippedRow] = []
    assert [r.id for r in store.runs(skipped=skipped)] == [ids[0], ids[3]]
    assert [s.id for s in skipped] == [ids[1], ids[2]]
    assert "metrics_json is not valid JSON" in skipped[0].reason
    assert skipped[1].reason == "directions_json is not a JSON object"
    assert [r.id for r in store.runs()] == [ids[0], ids[3]]  # without a list: still skipped
    assert store.find("s3").id == ids[3] and store.find("s1") is None
    with pytest.raises(StoreError, match=f"run {ids[1]} in .* cannot be read: metrics_json is not valid JSON"):
        store.get(ids[1])


@pytest.mark.parametrize(
    "column, value, reason",
    [
        ("metrics_json", '{"fid": "12"}', "metric 'fid' is not a number"),
        ("spreads_json", '{"fid": [1]}', "spread of 'fid' is not a number"),
        ("directions_json", '{"fid": ["lower"]}', "direction of 'fid' is not text"),
        ("dataset", b"\x00", "dataset is bytes, not text"),  # a BLOB: TEXT affinity keeps it one
        ("artefacts_json", "null", "artefacts_json is not a JSON object"),
    ],
)
def test_rows_of_the_wrong_shape_are_skipped(tmp_path, column, value, reason):
    store = ResultStore(tmp_path / "r.db")
    store.add_run(record())
    conn = sqlite3.connect(store.path)
    conn.execute(f"UPDATE runs SET {column} = ?", (value,))
    conn.commit()
    conn.close()
    skipped: list[SkippedRow] = []
    assert store.runs(skipped=skipped) == [] and skipped == [SkippedRow(1, reason)]


def test_check_writable_refuses_before_any_work(tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "r.db")
    store.check_writable()  # no file yet: the first run creates it
    store.add_run(record())
    store.check_writable()
    _newer_schema(store.path)
    with pytest.raises(StoreError, match="newer than this cardiobench"):
        ResultStore(store.path).check_writable()
    writable = ResultStore(tmp_path / "w.db")
    writable.add_run(record())
    from cardiobench.results import store as store_mod

    # a read-only mount answers "not writable" even to root, whom chmod does not stop
    monkeypatch.setattr(store_mod.os, "access", lambda path, mode: mode != store_mod.os.W_OK)
    with pytest.raises(StoreError, match="is read-only"):
        writable.check_writable()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"task": "painting"}, "task"),
        ({"status": "maybe"}, "status"),
        ({"dataset": ""}, "dataset"),
        ({"directions": {"fid": "down"}}, "direction"),
        ({"metrics": {"fid": "12"}}, "number"),
        ({"context": {"distance_unit": "cm"}}, "distance_unit must be one of mm, px"),
        ({"context": {"n_samples": -1}}, "n_samples"),
        ({"context": {"n_samples": True}}, "n_samples"),
        ({"context": {"n_samples": 64.0}}, "n_samples"),
        ({"context": {"ruler_validity": "flagged"}}, "ruler_validity"),
        ({"context": ["n_samples", 64]}, "context must be a mapping"),
    ],
)
def test_bad_records_are_refused_before_writing(tmp_path, change, message):
    store = ResultStore(tmp_path / "r.db")
    with pytest.raises(StoreError, match=message):
        store.add_run(record(**change))
    assert store.count() == 0


def test_non_finite_metrics_are_stored_as_missing(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    store.add_run(record(metrics={"fid": float("nan"), "kid": float("inf"), "is": 2.0}))
    assert store.runs()[0].metrics == {"fid": None, "kid": None, "is": 2.0}


def test_a_transaction_that_fails_leaves_nothing(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    store.add_run(record())
    with pytest.raises(RuntimeError), store._connection(create=True) as conn, store._transaction(conn):
        conn.execute("DELETE FROM runs")
        raise RuntimeError("crash mid-write")
    assert store.count() == 1


def test_results_path_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("CARDIOBENCH_RESULTS", raising=False)
    assert default_results_path() == DEFAULT_RESULTS_PATH
    assert resolve_results_path(None) == DEFAULT_RESULTS_PATH
    assert resolve_results_path(tmp_path) == tmp_path / "results.db"  # an existing folder
    assert resolve_results_path("newdir/") == resolve_results_path("newdir") / "results.db"
    assert resolve_results_path(tmp_path / "x.db") == tmp_path / "x.db"
    monkeypatch.setenv("CARDIOBENCH_RESULTS", str(tmp_path / "env.db"))
    assert ResultStore().path == tmp_path / "env.db"
    assert ResultStore(tmp_path / "explicit.db").path == tmp_path / "explicit.db"


# -- two processes writing at once -------------------------------------------------------------
ROWS_PER_WRITER = 50


def _writer(path: str, name: str, barrier) -> None:
    store = ResultStore(path)
    barrier.wait(timeout=60)
    for i in range(ROWS_PER_WRITER):
        store.add_run(record(spec_hash=f"{name}-{i}", metrics={"fid": float(i)}))


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "results.db")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(path, name, barrier)) for name in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    runs = ResultStore(path).runs()
    assert len(runs) == 2 * ROWS_PER_WRITER
    assert len({r.id for r in runs}) == 2 * ROWS_PER_WRITER
    hashes = {r.spec_hash for r in runs}
    assert hashes == {f"{n}-{i}" for n in "ab" for i in range(ROWS_PER_WRITER)}


# -- context: sample count, distance unit, ruler validity (schema 2) -----------------------------
def test_context_round_trips_as_plain_json(tmp_path):
    import numpy as np

    store = ResultStore(tmp_path / "r.db")
    validity = {"valid": np.bool_(False), "flag": "near chance", "accuracy": np.float32(0.25), "chance": 0.2,
                "ordering": {"real<blobs": True, "gap": float("nan")}}
    store.add_run(record(context={"n_samples": 256, "distance_unit": "px", "ruler_validity": validity}))
    (got,) = store.runs()
    assert got.context == {"n_samples": 256, "distance_unit": "px",
                           "ruler_validity": {"valid": False, "flag": "near chance", "accuracy": 0.25, "chance": 0.2,
                                              "ordering": {"real<blobs": True, "gap": None}}}
    assert ResultStore(store.path).get(got.id).context["distance_unit"] == "px"


def _schema_1_store(path) -> None:
    """A store as cardiobench wrote it before schema 2 (no context_json column), holding one run."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    version, statements = MIGRATIONS[0]
    assert version == 1
    for statement in statements:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 'then')")
    conn.execute(
        "INSERT INTO runs (created_at, task, dataset, noise, sampler, backbone, spec_json, spec_hash, seeds_json, "
        "metrics_json, directions_json, spreads_json, evaluator_id, timings_json, environment_json, artefacts_json, "
        "status) VALUES ('2025-01-01T00:00:00+00:00', 'generation', 'phantom', 'gaussian', 'ddpm', 'unet', "
        "'{\"sample\": {\"num_samples\": 64}}', 'old', '{}', '{\"fid\": 7.5}', '{\"fid\": \"lower\"}', '{}', "
        "'ev1', '{}', '{}', '{}', 'ok')")
    conn.commit()
    conn.close()


def test_a_schema_1_store_is_read_as_it_is_and_upgraded_by_the_first_write(tmp_path):
    assert SCHEMA_VERSION == 2
    path = tmp_path / "results.db"
    _schema_1_store(path)
    before = path.read_bytes()
    store = ResultStore(path)
    (old,) = store.runs()  # a reader takes the old schema as it is...
    assert old.spec_hash == "old" and old.metrics == {"fid": 7.5} and old.context == {}
    assert store.schema_version() == 1 and store.count() == 1 and store.get(old.id) == old
    assert path.read_bytes() == before  # ...and writes nothing (SQLite's -shm/-wal side files aside)

    store.add_run(record(spec_hash="new", context={"n_samples": 256, "distance_unit": "px"}))  # a writer upgrades
    assert ResultStore(path).schema_version() == 2
    conn = sqlite3.connect(path)
    try:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    finally:
        conn.close()
    old_again, new = ResultStore(path).runs()
    assert old_again == old  # the old row is kept as it was, its context empty
    assert new.spec_hash == "new" and new.context == {"n_samples": 256, "distance_unit": "px"}
