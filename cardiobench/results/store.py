"""The results store: one SQLite file (stdlib ``sqlite3``) holding every run.

- Location: ``--results PATH``, else ``$CARDIOBENCH_RESULTS``, else ``./cardiobench-results/results.db``
  (a folder given instead of a file means ``FOLDER/results.db``).
- Concurrency: WAL journal, a generous ``busy_timeout``, one short ``BEGIN IMMEDIATE`` transaction per
  write. A run row is one ``INSERT``, so it is either wholly there or not at all, and several
  processes (e.g. two ``cardiobench run``) can write at once without losing rows.
- Schema: the table ``schema_version`` records every migration applied; ``MIGRATIONS`` lists them in
  order. Opening a store to write applies the missing ones in one transaction; a store written by a newer
  cardiobench is refused with a clear error rather than misread. A reader takes an older store as it is
  (columns a later migration adds read as their defaults) and never upgrades it.
- Reading never writes: readers open the file read-only (``mode=ro``; ``immutable=1`` when even that fails,
  e.g. a WAL store on a read-only mount whose ``-shm`` file cannot be created). Reading a store that does
  not exist, or an empty (zero-byte) file, returns nothing and creates or changes nothing.
- A row that cannot be decoded (hand-edited, corrupt) is skipped by ``runs`` and reported through its
  ``skipped`` list; ``get`` of such a row is a ``StoreError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import random
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cardiobench.errors import CardiobenchError

#: the environment variable naming the store (a file, or a folder that gets ``results.db``)
RESULTS_ENV = "CARDIOBENCH_RESULTS"
DEFAULT_RESULTS_PATH = Path("cardiobench-results") / "results.db"

TASKS: tuple[str, ...] = ("generation", "segmentation", "synthesis", "utility", "throughput")
#: ok: finished and measured; failed: stopped with an error (kept for the record, never ranked)
STATUSES: tuple[str, ...] = ("ok", "failed")
DIRECTIONS: tuple[str, ...] = ("lower", "higher")
#: the unit of a run's distances (HD95, anatomy): mm, or px where the data set has no voxel spacing
DISTANCE_UNITS: tuple[str, ...] = ("mm", "px")

#: (version, statements); append new versions, never edit applied ones
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE runs (
                id               INTEGER PRIMARY KEY AUTOINCREMENT,
                created_at       TEXT NOT NULL,
                task             TEXT NOT NULL,
                dataset          TEXT NOT NULL,
                noise            TEXT,
                sampler          TEXT,
                backbone         TEXT,
                conditioning     TEXT,
                spec_json        TEXT NOT NULL,
                spec_hash        TEXT NOT NULL,
                train_hash       TEXT,
                seeds_json       TEXT NOT NULL,
                metrics_json     TEXT NOT NULL,
                directions_json  TEXT NOT NULL,
                spreads_json     TEXT NOT NULL,
                evaluator_id     TEXT,
                timings_json     TEXT NOT NULL,
                environment_json TEXT NOT NULL,
                artefacts_json   TEXT NOT NULL,
                status           TEXT NOT NULL
            )""",
            "CREATE INDEX runs_by_spec ON runs (spec_hash, status)",
            "CREATE INDEX runs_by_task ON runs (task, dataset, evaluator_id)",
        ),
    ),
    # 2: what a number needs to be read right: the evaluated sample count, the distance unit, the ruler's validity
    (2, ("ALTER TABLE runs ADD COLUMN context_json TEXT NOT NULL DEFAULT '{}'",)),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreError(CardiobenchError):
    """The results store cannot be used: unreadable, newer schema, bad record..."""


@dataclass(frozen=True)
class SkippedRow:
    """A stored row ``runs`` could not decode: its run id and why."""

    id: int | None
    reason: str


class _BadRow(Exception):
    """A row whose columns do not decode into a ``RunRecord``."""


def default_results_path() -> Path:
    """``$CARDIOBENCH_RESULTS`` if set, else ``./cardiobench-results/results.db``."""
    env = os.environ.get(RESULTS_ENV, "").strip()
    return resolve_results_path(env) if env else DEFAULT_RESULTS_PATH


def resolve_results_path(path: str | os.PathLike | None) -> Path:
    """The store file for a ``--results`` value: ``None`` = the default, a folder = ``FOLDER/results.db``."""
    if path is None or str(path).strip() == "":
        return default_results_path()
    p = Path(path).expanduser()
    if p.is_dir() or str(path).endswith(("/", os.sep)):
        return p / "results.db"
    return p


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of ``obj``'s canonical JSON (sorted keys): the same spec always hashes the same."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second (``2025-01-31T12:00:00+00:00``)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class RunRecord:
    """One run: what was run (spec), how it scored (metrics), with what ruler, where, and its files.

    ``metrics`` maps metric name -> value (``None`` when it could not be computed); ``directions``
    maps metric name -> ``"lower"`` or ``"higher"`` (what is better), as declared by the metric
    plugins; ``spreads`` maps metric name -> spread over seeds or repeats (std or IQR, optional).
    ``evaluator_id`` identifies the ruler (e.g. the hash of the feature extractor and reference set);
    only runs with the same ``evaluator_id`` are ranked together. It is ``None`` for throughput runs.
    ``spec_hash`` should be the run spec's own hash; left empty, it is ``stable_hash`` of the spec and
    the identity fields (task, dataset, noise, sampler, backbone, conditioning).
    ``context`` is what the numbers need to be read right (see ``CONTEXT_KEYS``): ``n_samples`` (how many
    samples, or for segmentation test images, were scored), ``distance_unit`` (``"mm"`` or ``"px"``: the unit
    of HD95 and every other distance) and ``ruler_validity`` (the evaluator's validity record, when the
    evaluation made one) and ``reference`` (generation: the same metrics for real data, the real-vs-real row the
    leaderboard and a re-printed run show beside the run's own). The leaderboard ranks together only runs of
    the same count and unit. Rows stored before it existed have ``{}``.
    ``id`` and ``created_at`` are set by the store.
    """

    task: str
    dataset: str
    noise: str | None = None
    sampler: str | None = None
    backbone: str | None = None
    conditioning: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    spec_hash: str = ""
    train_hash: str | None = None
    seeds: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    directions: dict[str, str] = field(default_factory=dict)
    spreads: dict[str, float] = field(default_factory=dict)
    evaluator_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    artefacts: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    id: int | None = None
    created_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# columns holding JSON, and the record field each comes from
_JSON_COLUMNS = {
    "spec_json": "spec",
    "seeds_json": "seeds",
    "metrics_json": "metrics",
    "directions_json": "directions",
    "spreads_json": "spreads",
    "timings_json": "timings",
    "environment_json": "environment",
    "artefacts_json": "artefacts",
    "context_json": "context",
}
#: keys of ``RunRecord.context`` that cardiobench writes and reads (others are kept as they are); ``reference``:
#: the run's real-vs-real values (metric name -> number), what a perfect generator scores with the same ruler
CONTEXT_KEYS: tuple[str, ...] = ("n_samples", "distance_unit", "ruler_validity", "reference")
#: JSON columns added by a later migration -> the value a row of an older store reads as
_ADDED_COLUMNS: dict[str, str] = {"context_json": "{}"}
_PLAIN_COLUMNS = (
    "created_at",
    "task",
    "dataset",
    "noise",
    "sampler",
    "backbone",
    "conditioning",
    "spec_hash",
    "train_hash",
    "evaluator_id",
    "status",
)
_IDENTITY_FIELDS = ("task", "dataset", "noise", "sampler", "backbone", "conditioning")
_FILTERS = ("task", "dataset", "noise", "sampler", "backbone", "conditioning", "evaluator_id", "spec_hash",
            "train_hash", "status")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers and non-finite floats as ``None`` (JSON has neither)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        obj = obj.item()
    return _finite_or_none(obj)


def _dumps(obj: Any, sort_keys: bool = True) -> str:
    return json.dumps(obj, sort_keys=sort_keys, default=str, allow_nan=False)


#: record fields whose key order is kept as given (the order metrics are shown in)
_ORDERED = ("metrics", "directions", "spreads", "timings", "artefacts")


def _check_record(rec: RunRecord) -> None:
    if rec.task not in TASKS:
        raise StoreError(f"run task {rec.task!r} is not one of {', '.join(TASKS)}")
    if rec.status not in STATUSES:
        raise StoreError(f"run status {rec.status!r} is not one of {', '.join(STATUSES)}")
    if not rec.dataset:
        raise StoreError("a run needs its dataset name")
    for name, value in rec.metrics.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise StoreError(f"metric {name!r} must be a number or None, got {type(value).__name__}")
    for name, direction in rec.directions.items():
        if direction not in DIRECTIONS:
            raise StoreError(f"direction of metric {name!r} must be 'lower' or 'higher', got {direction!r}")
    if not isinstance(rec.context, Mapping):
        raise StoreError(f"run context must be a mapping, got {type(rec.context).__name__}")
    n = rec.context.get("n_samples")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise StoreError(f"context n_samples must be a whole number >= 0 or None, got {n!r}")
    unit = rec.context.get("distance_unit")
    if unit is not None and unit not in DISTANCE_UNITS:
        raise StoreError(f"context distance_unit must be one of {', '.join(DISTANCE_UNITS)}, got {unit!r}")
    validity = rec.context.get("ruler_validity")
    if validity is not None and not isinstance(validity, Mapping):
        raise StoreError(f"context ruler_validity must be a mapping or None, got {type(validity).__name__}")
    reference = rec.context.get("reference")
    if reference is not None:
        if not isinstance(reference, Mapping):
            raise StoreError(f"context reference must be a mapping or None, got {type(reference).__name__}")
        for name, value in reference.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
                raise StoreError(f"context reference {name!r} must be a number or None, got {type(value).__name__}")


class ResultStore:
    """A SQLite results store. Cheap to create; each call opens its own short-lived connection,
    so one object may be used from several threads and a fresh one in every process.
    """

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 60.0):
        self.path = resolve_results_path(path)
        self.timeout = timeout
        self._ready = False

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.is_file()

    def _check_header(self) -> None:
        """A non-empty file must start with SQLite's 16-byte magic. SQLite itself reads a file shorter than one
        page as an empty database (and would write over it), so a truncated or foreign file is refused here."""
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise StoreError(f"cannot read results store {self.path}: {exc.strerror}") from None
        if head and head != SQLITE_MAGIC:
            raise StoreError(f"{self.path} is not a cardiobench results store (not an SQLite database)",
                             "use another --results file, or move this one away")

    # -- connections ----------------------------------------------------------------------
    def _connect(self, query: str = "") -> sqlite3.Connection:
        """A connection to the store; ``query`` (e.g. ``mode=ro``) opens it through a SQLite URI."""
        try:
            if query:
                uri = f"{self.path.resolve().as_uri()}?{query}"
                conn = sqlite3.connect(uri, timeout=self.timeout, isolation_level=None, uri=True)
            else:
                conn = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results store {self.path}: {exc}") from None
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return conn

    def _inspect(self, conn: sqlite3.Connection) -> int | None:
        """The schema version, ``None`` for an empty database (e.g. a zero-byte file); a database that holds
        other tables but no cardiobench schema is a ``StoreError``."""
        version = self._schema_version(conn)
        if version == 0:
            if not self._rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table'"):
                return None
            raise StoreError(f"{self.path} is not a cardiobench results store (it has no schema_version table)",
                             "use another --results file")
        return version

    def _newer_error(self, version: int) -> StoreError:
        return StoreError(
            f"results store {self.path} has schema version {version}, newer than this cardiobench "
            f"understands ({SCHEMA_VERSION})",
            "upgrade cardiobench, or use another --results file",
        )

    def _open_reader(self) -> tuple[sqlite3.Connection, int | None]:
        """A read-only connection and the schema version (see ``_inspect``). Tries ``mode=ro`` first; where
        SQLite cannot even read that way (a WAL store on a read-only mount cannot create its ``-shm``
        file), ``immutable=1``: no locks and no shared memory, correct because nobody can write there."""
        conn = self._connect("mode=ro")
        try:
            return conn, self._inspect(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            text = str(exc).lower()
            if not any(s in text for s in ("readonly", "read-only", "unable to open", "disk i/o")):
                raise
        except BaseException:
            conn.close()
            raise
        conn = self._connect("mode=ro&immutable=1")
        try:
            return conn, self._inspect(conn)
        except BaseException:
            conn.close()
            raise

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection | None]:
        """A read-only connection to a store of this schema, or ``None`` when there is nothing to read (no
        file, an empty file). Never writes to the file, never creates it."""
        if not self.exists():
            yield None
            return
        self._check_header()
        conn: sqlite3.Connection | None = None
        try:
            conn, version = self._open_reader()
            if version is not None and version > SCHEMA_VERSION:
                raise self._newer_error(version)
            # an older schema is read as it is (added columns read as their defaults); only writers upgrade it
            yield None if version is None else conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"results store {self.path} cannot be used: {exc}") from None
        finally:
            if conn is not None:
                conn.close()

    def check_writable(self) -> None:
        """Raise ``StoreError`` now if ``add_run`` would refuse later: a store with a newer schema, a file that is
        not a results store, a read-only store. Run it before expensive work (training) that ends in a write."""
        if not self.exists():
            from cardiobench.paths import check_writable_dir

            check_writable_dir(self.path.parent, "results folder")  # it is created with the first row
            return
        self._check_header()
        conn: sqlite3.Connection | None = None
        try:
            conn, version = self._open_reader()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"results store {self.path} cannot be used: {exc}") from None
        finally:
            if conn is not None:
                conn.close()
        if version is not None and version > SCHEMA_VERSION:
            raise self._newer_error(version)
        for what in (self.path, self.path.parent):
            if not os.access(what, os.W_OK):
                raise StoreError(f"results store {self.path} is read-only ({what} is not writable)",
                                 "use another --results file")

    @contextlib.contextmanager
    def _connection(self, create: bool) -> Iterator[sqlite3.Connection | None]:
        """``create=True``: a writable connection, schema created or migrated; ``create=False``: ``_reader``."""
        if not create:
            with self._reader() as conn:
                yield conn
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the results folder {self.path.parent}: {exc.strerror}") from None
        if self.exists():
            self._check_header()
        conn = self._connect()
        try:
            if not self._ready:
                self._prepare(conn)
                self._ready = True
            yield conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"results store {self.path} cannot be used: {exc}") from None
        finally:
            conn.close()

    @staticmethod
    @contextlib.contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (takes the write lock up front, so it never deadlocks on upgrade) ... COMMIT."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _rows(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Run a query to its end, so no half-read statement keeps holding a read lock."""
        cur = conn.execute(sql, params)
        try:
            return cur.fetchall()
        finally:
            cur.close()

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        if not self._rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"):
            return 0
        return int(self._rows(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL (persistent in the file). Switching needs the file to itself, and SQLite answers
        "locked" at once rather than waiting when another process has it open, so retry until
        ``timeout``. Where a file system can't do WAL, SQLite keeps its rollback journal: just as
        correct, writers only wait on each other a little longer."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._rows(conn, "PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + random.random() * 0.04)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL mode, then any migration not yet applied (one writer does it; the others wait and see)."""
        current = self._schema_version(conn)
        if current == SCHEMA_VERSION:
            return
        if current > SCHEMA_VERSION:
            raise self._newer_error(current)
        self._set_wal(conn)
        with self._transaction(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
            current = self._schema_version(conn)
            if current > SCHEMA_VERSION:
                raise self._newer_error(current)
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now_iso()))

    def schema_version(self) -> int:
        """The store's schema version (0 if the file doesn't exist yet)."""
        with self._connection(create=False) as conn:
            return 0 if conn is None else self._schema_version(conn)

    # -- writing --------------------------------------------------------------------------
    def add_run(self, record: RunRecord) -> int:
        """Store ``record`` atomically (one transaction); sets and returns its ``id``."""
        _check_record(record)
        if not record.spec_hash:
            record.spec_hash = stable_hash({k: getattr(record, k) for k in _IDENTITY_FIELDS} | {"spec": record.spec})
        if not record.created_at:
            record.created_at = now_iso()
        values: dict[str, Any] = {col: getattr(record, col) for col in _PLAIN_COLUMNS}
        metrics = {k: _finite_or_none(v) for k, v in record.metrics.items()}
        spreads = {k: _finite_or_none(v) for k, v in record.spreads.items()}
        context = _plain(record.context)
        for col, attr in _JSON_COLUMNS.items():
            value = {"metrics": metrics, "spreads": spreads, "context": context}.get(attr, getattr(record, attr))
            try:
                values[col] = _dumps(value, sort_keys=attr not in _ORDERED)
            except ValueError as exc:  # NaN somewhere deep in a dict
                raise StoreError(f"run field {attr!r} cannot be stored as JSON: {exc}") from None
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._connection(create=True) as conn, self._transaction(conn):
            cur = conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(values.values()))
            new_id = int(cur.lastrowid)
        record.id = new_id
        return new_id

    # -- reading --------------------------------------------------------------------------
    @staticmethod
    def _record(row: sqlite3.Row) -> RunRecord:
        """The record of a row; ``_BadRow`` (with the reason) when a column does not decode."""
        return _decode_row(row)

    def runs(
        self,
        *,
        status: str | None = "ok",
        newest_first: bool = False,
        limit: int | None = None,
        skipped: list[SkippedRow] | None = None,
        **filters: str | None,
    ) -> list[RunRecord]:
        """Runs matching every given filter (``task``, ``dataset``, ``noise``, ``sampler``, ``backbone``,
        ``conditioning``, ``evaluator_id``, ``spec_hash``, ``train_hash``); ``None`` = any value.
        ``status`` defaults to finished runs only; ``status=None`` returns all. Oldest first by default.
        Rows that cannot be decoded (hand-edited, corrupt) are left out; pass a list as ``skipped`` to
        receive a ``SkippedRow`` (run id and reason) for each.
        """
        unknown = set(filters) - set(_FILTERS)
        if unknown:
            raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))}; use {', '.join(_FILTERS)}")
        filters["status"] = status
        where = [(f"{col} = ?", value) for col, value in filters.items() if value is not None]
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(w for w, _ in where)
        sql += " ORDER BY id " + ("DESC" if newest_first else "ASC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._connection(create=False) as conn:
            if conn is None:
                return []
            rows = self._rows(conn, sql, tuple(v for _, v in where))
        out = []
        for row in rows:
            try:
                out.append(self._record(row))
            except _BadRow as exc:
                if skipped is not None:
                    skipped.append(SkippedRow(_row_id(row), str(exc)))
        return out

    def latest(self, **filters: str | None) -> RunRecord | None:
        """The most recent run matching ``filters`` (same as ``runs``), or ``None``."""
        found = self.runs(newest_first=True, limit=1, **filters)
        return found[0] if found else None

    def find(self, spec_hash: str, evaluator_id: str | None = None) -> RunRecord | None:
        """The latest finished run of this spec (optionally measured by this evaluator), or ``None``.

        ``compare`` uses it to skip work already done.
        """
        return self.latest(spec_hash=spec_hash, evaluator_id=evaluator_id)

    def get(self, run_id: int) -> RunRecord | None:
        with self._connection(create=False) as conn:
            if conn is None:
                return None
            rows = self._rows(conn, "SELECT * FROM runs WHERE id = ?", (int(run_id),))
        if not rows:
            return None
        try:
            return self._record(rows[0])
        except _BadRow as exc:
            raise StoreError(f"run {run_id} in {self.path} cannot be read: {exc}") from None

    def count(self, status: str | None = None) -> int:
        with self._connection(create=False) as conn:
            if conn is None:
                return 0
            if status is None:
                return int(self._rows(conn, "SELECT COUNT(*) FROM runs")[0][0])
            return int(self._rows(conn, "SELECT COUNT(*) FROM runs WHERE status = ?", (status,))[0][0])


# -- merging stores --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MergeConflict:
    """A run found in two stores (same run spec hash, evaluator and status, different rows): reported, kept once.

    ``kept``: the id of the row already in the target; ``source``: the store whose row was not added;
    ``same_metrics``: whether both rows hold the same numbers (a copy from another node) or not (a rerun)."""

    spec_hash: str
    evaluator_id: str | None
    label: str
    source: str
    kept: int | None
    same_metrics: bool


@dataclass
class MergeReport:
    """What ``merge_stores`` did: rows ``added``, rows ``already`` there (identical), ``conflicts`` and rows of the
    sources that could not be read (``skipped``: (store, ``SkippedRow``))."""

    added: int = 0
    already: int = 0
    conflicts: list[MergeConflict] = field(default_factory=list)
    skipped: list[tuple[str, SkippedRow]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "already": self.already,
                "conflicts": [c.__dict__ for c in self.conflicts],
                "skipped": [{"store": s, "id": r.id, "reason": r.reason} for s, r in self.skipped]}


def row_fingerprint(record: RunRecord) -> str:
    """Identity of a stored row across stores: every field but the store's own ``id``."""
    return stable_hash({k: v for k, v in record.to_dict().items() if k != "id"}, length=32)


def merge_stores(target: ResultStore, sources: list[ResultStore]) -> MergeReport:
    """Copy every row of ``sources`` into ``target`` (``created_at`` and all fields kept, new ids).

    Idempotent: a row already in ``target`` (same fields, ``row_fingerprint``) is counted in ``already`` and not
    added again, so merging twice adds nothing. A row of the same run (run spec hash, evaluator id and status) as
    a different row already in ``target`` or added before is a ``MergeConflict``: reported, not added. The
    target's schema is checked before anything is written; a source that does not exist is an error.
    """
    target.check_writable()
    for src in sources:
        if not src.exists():
            raise StoreError(f"results store {src.path} does not exist", "pass the results.db files to merge")
    report = MergeReport()
    have = target.runs(status=None)
    prints = {row_fingerprint(r) for r in have}
    runs: dict[tuple[str, str | None, str], RunRecord] = {}
    for r in have:
        runs.setdefault((r.spec_hash, r.evaluator_id, r.status), r)
    for src in sources:
        same_file = src.path.resolve() == target.path.resolve()
        skipped: list[SkippedRow] = []
        for record in src.runs(status=None, skipped=skipped):
            fp = row_fingerprint(record)
            key = (record.spec_hash, record.evaluator_id, record.status)
            if fp in prints or same_file:
                report.already += 1
                continue
            other = runs.get(key)
            if other is not None:
                label = f"{record.noise} x {record.sampler} ({record.backbone}, {record.dataset})"
                report.conflicts.append(MergeConflict(record.spec_hash, record.evaluator_id, label, str(src.path),
                                                      other.id, other.metrics == record.metrics))
                continue
            copy = RunRecord.from_dict({**record.to_dict(), "id": None})
            target.add_run(copy)
            prints.add(fp)
            runs[key] = copy
            report.added += 1
        report.skipped.extend((str(src.path), row) for row in skipped)
    return report


# -- decoding rows ----------------------------------------------------------------------------------
#: JSON columns that must hold an object (``seeds_json`` may hold any JSON value)
_OBJECT_COLUMNS = ("spec_json", "metrics_json", "directions_json", "spreads_json", "timings_json",
                   "environment_json", "artefacts_json", "context_json")
_REQUIRED_TEXT = ("created_at", "task", "dataset", "spec_hash", "status")


def _row_id(row: sqlite3.Row) -> int | None:
    value = row["id"]
    return value if isinstance(value, int) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _decode_row(row: sqlite3.Row) -> RunRecord:
    """A ``RunRecord`` from a ``runs`` row, checked so the leaderboard can rely on its types; ``_BadRow`` if not."""
    data: dict[str, Any] = {}
    for col in _PLAIN_COLUMNS:
        value = row[col]
        if value is None and col not in _REQUIRED_TEXT:
            data[col] = None
        elif isinstance(value, str):
            data[col] = value
        else:
            raise _BadRow(f"{col} is {'missing' if value is None else type(value).__name__}, not text")
    data["id"] = row["id"]
    present = set(row.keys())
    for col, attr in _JSON_COLUMNS.items():
        raw = row[col] if col in present or col not in _ADDED_COLUMNS else _ADDED_COLUMNS[col]
        try:
            value = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise _BadRow(f"{col} is not valid JSON ({exc})") from None
        if col in _OBJECT_COLUMNS and not isinstance(value, dict):
            raise _BadRow(f"{col} is not a JSON object")
        data[attr] = value
    for name, value in data["metrics"].items():
        if value is not None and not _is_number(value):
            raise _BadRow(f"metric {name!r} is not a number")
    for name, value in data["spreads"].items():
        if value is not None and not _is_number(value):
            raise _BadRow(f"spread of {name!r} is not a number")
    for name, value in data["directions"].items():
        if not isinstance(value, str):
            raise _BadRow(f"direction of {name!r} is not text")
    return RunRecord(**data)
