"""Leaderboards over the results store: ranking, and rendering as a rich table, Markdown, CSV, JSON or HTML.

A *board* ranks runs of one task and data set that were measured with the same ruler: the same
``evaluator_id`` for generation and segmentation, the same device for throughput. Runs measured with
different rulers are never ranked together; they land on separate boards, each labelled with its
ruler. Generation and segmentation boards are also split by what the numbers are measured on and in:
the number of samples scored (FID is biased by it; segmentation: test images) and the distance unit
(``mm``, or ``px`` for a data set without voxel spacing), both in the board's heading; distance columns
(HD95) carry the unit in their header. A ruler whose validity record is flagged says so on its board.
Within a board, rows are sorted best first by the sort metric's direction, and the best value
of every metric column is marked (bold green in the terminal and HTML, bold in Markdown).

Metric directions ("lower"/"higher" is better) come from the runs themselves (stored from the metric
plugins' metadata when the run was made), then from the metric plugins registered now; a metric
whose direction is unknown is shown without an arrow or a highlight and sorts high to low.

No metric name is known here: which values a board shows first (``headline``), which one it is ranked by
when ``--sort`` is not given (``sort_key``) and which count goes beside a figure (``counts``, e.g. the HD95
pairs left out as missing) are the metric plugins' registration metadata (``MetricMeta``,
``registry_meta``). A board whose metrics no plugin describes (throughput, a plugin uninstalled since)
shows every column and ranks by its first metric with a known direction.

Every number of a column is formatted by one rule (``MetricColumn``): the same decimals for all, whole
numbers only when every value is a count. A generation run's real-vs-real reference (what a perfect
generator scores: ``RunRecord.context["reference"]``, or for a row stored before that the ``reference`` of
the ``metrics.json`` in its run folder) is a row under the ranked ones, never ranked.
"""

from __future__ import annotations

import base64
import csv
import difflib
import html
import io
import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cardiobench import __version__
from cardiobench.errors import CardiobenchError
from cardiobench.results.store import TASKS, RunRecord, now_iso

FORMATS: tuple[str, ...] = ("table", "md", "csv", "json", "html")
#: file extension -> format, to infer ``--format`` from ``--out``
EXTENSIONS: dict[str, str] = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json",
                              ".html": "html", ".htm": "html", ".txt": "table"}
#: artefact keys holding a run's sample grid (PNG), in order of preference
GRID_KEYS: tuple[str, ...] = ("sample_grid", "samples_grid", "grid")
#: images larger than this are not embedded in the HTML page
MAX_EMBED_BYTES = 8 * 2**20
#: the only files the HTML page embeds: PNG and GIF images, told by their first bytes
IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF87a", "image/gif"),
                                             (b"GIF89a", "image/gif"))
ARROWS = {"lower": "↓", "higher": "↑"}
#: the label of a board's reference row(s)
REFERENCE_LABEL = "real vs real"
#: a run folder's metrics file larger than this is not read for its reference
MAX_METRICS_FILE_BYTES = 4 * 2**20


# -- what the metric plugins say about their values -----------------------------------------------
@dataclass(frozen=True)
class MetricMeta:
    """How to show metric values, from the metric plugins' registration metadata.

    ``headline``: task -> the values shown first and never truncated, in order (the plugins' ``order``,
    then each plugin's ``headline``); ``sort_keys``: task -> the value ranked by when ``--sort`` is not given
    (the first plugin of the task, by ``order``, that declares a ``sort_key``); ``counts``: value -> the
    count shown beside it (e.g. ``hd95_mean`` -> ``hd95_missing``).
    """

    headline: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sort_keys: Mapping[str, str] = field(default_factory=dict)
    counts: Mapping[str, str] = field(default_factory=dict)


def _plugin_position(comp: Any) -> tuple:
    order = comp.metadata.get("order")
    ok = isinstance(order, (int, float)) and not isinstance(order, bool)
    return (0, order, comp.name) if ok else (1, 0, comp.name)


def meta_from_components(components: Iterable[Any]) -> MetricMeta:
    """``MetricMeta`` from metric components (objects with ``name`` and ``metadata``)."""
    headline: dict[str, list[str]] = {}
    sort_keys: dict[str, str] = {}
    counts: dict[str, str] = {}
    for comp in sorted(components, key=_plugin_position):
        meta = comp.metadata
        tasks = [t for t in meta.get("tasks", ()) if isinstance(t, str)]
        names = meta.get("headline", ())
        names = [names] if isinstance(names, str) else [n for n in names if isinstance(n, str)]
        key = meta.get("sort_key")
        for task in tasks:
            shown = headline.setdefault(task, [])
            shown += [n for n in names if n not in shown]
            if isinstance(key, str) and task not in sort_keys:
                sort_keys[task] = key
        for name, count in (meta.get("counts") or {}).items() if isinstance(meta.get("counts"), Mapping) else ():
            if isinstance(name, str) and isinstance(count, str):
                counts.setdefault(name, count)
    return MetricMeta({t: tuple(v) for t, v in headline.items()}, sort_keys, counts)


def registry_meta() -> MetricMeta:
    """``MetricMeta`` of the metric plugins registered now (empty if the registry cannot be read)."""
    try:
        from cardiobench.plugins import registry

        return meta_from_components(registry("metric"))
    except Exception:
        return MetricMeta()


# -- model ------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class MetricColumn:
    """A metric column. Every cell follows one rule: ``decimals`` for all values (and spreads), or whole numbers
    with thousands separators when every value of the column is an ``int`` (``integer``: a count). ``count``
    names the metric whose value is shown beside each figure (``4.410 (2 missing)``)."""

    name: str
    direction: str | None  # "lower" | "higher" | None (unknown)
    best: float | None = None
    decimals: int | None = None  # shared by the whole column
    unit: str | None = None  # distance metrics: the board's distance unit ("mm" or "px"); else None
    integer: bool = False  # every value is a whole-number count
    count: str | None = None  # the metric counted beside each value (e.g. hd95_missing), if any

    def number(self, value: Any, spread: Any = None) -> str:
        """``value`` (and ``spread``) formatted by this column's rule."""
        if self.integer and isinstance(value, int) and not isinstance(value, bool):
            return format_value(value, spread, 0)
        if _is_number(value):
            value = float(value)
        return format_value(value, spread, self.decimals)

    def text(self, run: RunRecord) -> str:
        text = self.number(run.metrics.get(self.name), run.spreads.get(self.name))
        missing = self.missing(run)
        if missing is not None and run.metrics.get(self.name) is not None:
            text += f" ({missing:,} missing)"
        return text

    def missing(self, run: RunRecord) -> int | None:
        """The count beside this column's value for ``run`` (``count`` metric), ``None`` when unknown."""
        if self.count is None:
            return None
        value = run.metrics.get(self.count)
        if not _is_number(value) or value != value:
            return None
        return int(round(value))

    @property
    def label(self) -> str:
        """Header text, e.g. ``FID ↓``, ``HD95 mean (px) ↓``."""
        return f"{metric_label(self.name, self.unit)} {ARROWS.get(self.direction or '', '')}".strip()

    def is_best(self, value: float | None) -> bool:
        return value is not None and self.best is not None and value == self.best


@dataclass
class Column:
    """An identity column (what was run): header and how to read it from a record."""

    key: str
    header: str


@dataclass
class Board:
    """Ranked runs of one task and data set, all measured with the same ruler."""

    task: str
    dataset: str
    ruler_kind: str  # "evaluator" or "device"
    ruler: str | None
    sort_metric: str | None
    columns: list[Column]
    metrics: list[MetricColumn]
    rows: list[RunRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: samples scored by every run here (segmentation: test images); None: unknown, or throughput
    n_samples: int | None = None
    #: the unit of every distance on this board ("mm" or "px"); None for throughput
    distance_unit: str | None = None
    #: (D, H, W) of the volumes every run here scored (a volumetric run, ``--dims 3``); None for slices
    volume_shape: tuple[int, ...] | None = None
    #: one line per flagged validity record of this board's ruler, e.g. "ruler FLAGGED: near chance ..."
    ruler_flags: list[str] = field(default_factory=list)
    #: the sort metric's column (also when ``--columns`` does not show it)
    sort_column: MetricColumn | None = None
    #: real-vs-real reference rows: (label, values), never ranked
    references: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: run id -> that run's real-vs-real reference values (runs that have one)
    run_references: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: metric columns of these runs that the board does not show (``--all-metrics`` shows them)
    hidden: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.task} · {self.dataset}"

    @property
    def ruler_label(self) -> str:
        return f"{self.ruler_kind} {self.ruler if self.ruler else 'unknown'}"

    @property
    def context_label(self) -> str:
        """What every number here is measured on and in, e.g. ``256 samples · distances in px``; "" for throughput."""
        if self.task not in QUALITY_TASKS:
            return ""
        what = {"segmentation": "test images", "synthesis": "test masks", "utility": "test slices"}.get(self.task,
                                                                                                        "samples")
        if self.volume_shape:
            what = ("test volumes" if self.task == "segmentation" else "volumes") + \
                f" of {'x'.join(map(str, self.volume_shape))}"
        count = f"{self.n_samples:,} {what}" if self.n_samples is not None else f"{what} count unknown"
        return f"{count} · distances in {self.distance_unit or 'mm'}"

    @property
    def heading(self) -> str:
        """The board's one-line heading: task, data set, ruler, sample count and distance unit."""
        context = self.context_label
        return f"{self.title} — {self.ruler_label}" + (f" · {context}" if context else "")

    @property
    def sort_label(self) -> str:
        if self.sort_metric is None:
            return "not sorted (no metric)"
        col = self.sort_column or self.metric(self.sort_metric)
        how = {"lower": "lower is better", "higher": "higher is better"}.get(col.direction or "", "direction unknown")
        return f"sorted by {col.label} ({how})"

    def metric(self, name: str) -> MetricColumn:
        return next(m for m in self.metrics if m.name == name)


class LeaderboardError(CardiobenchError):
    """A leaderboard request that cannot be answered (e.g. unknown sort metric)."""


# -- what the numbers are measured on and in (RunRecord.context) --------------------------------
#: tasks whose boards are split by sample count and distance unit (throughput is split by device only)
QUALITY_TASKS: tuple[str, ...] = ("generation", "segmentation", "synthesis", "utility")


def is_distance_metric(name: str) -> bool:
    """Metrics whose values are distances, in the run's distance unit: ``hd95`` and ``hd95_*`` (their ``_std``
    spreads too), except ``hd95_missing`` and ``hd95_missing_*`` (counts)."""
    base = name[: -len("_std")] if name.endswith("_std") else name
    return (base == "hd95" or base.startswith("hd95_")) and not base.startswith("hd95_missing")


def sample_count(run: RunRecord) -> int | None:
    """How many samples (segmentation: test images) the run's metrics were computed on: ``context["n_samples"]``;
    for a generation row stored before the context existed, its spec's ``sample.num_samples`` (every
    sample drawn was scored); else ``None`` (unknown)."""
    n = (run.context or {}).get("n_samples")
    if n is None and run.task == "generation":
        n = _spec_get(run.spec or {}, "sample.num_samples")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def volume_shape(run: RunRecord) -> tuple[int, ...] | None:
    """``(D, H, W)`` of the volumes a volumetric run scored (``context["volume_shape"]``), ``None`` for slices."""
    shape = (run.context or {}).get("volume_shape")
    return tuple(int(v) for v in shape) if isinstance(shape, list) and shape else None


def distance_unit(run: RunRecord) -> str | None:
    """The unit of the run's distances: ``context["distance_unit"]`` (``"mm"`` or ``"px"``); ``"mm"`` for a row
    stored before units were recorded (every data set then had a voxel spacing); ``None`` for throughput."""
    if run.task not in QUALITY_TASKS:
        return None
    unit = (run.context or {}).get("distance_unit")
    return unit if isinstance(unit, str) and unit else "mm"


def ruler_flag(run: RunRecord) -> str | None:
    """One line when the run's ruler validity record is flagged (``valid`` false or a ``flag`` given):
    ``ruler FLAGGED: <flag>``, or without a flag text ``ruler FLAGGED: not valid (accuracy 0.231, chance
    0.200)``; ``None`` when it is valid or there is none (rows stored before validity records existed)."""
    validity = (run.context or {}).get("ruler_validity")
    if not isinstance(validity, Mapping):
        return None
    flag = validity.get("flag")
    if validity.get("valid") is not False and not flag:
        return None
    if flag:
        return f"ruler FLAGGED: {' '.join(str(flag).split())}"
    acc, chance = validity.get("accuracy"), validity.get("chance")
    numbers = [f"{name} {value:.3f}" for name, value in (("accuracy", acc), ("chance", chance))
               if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)]
    return "ruler FLAGGED: not valid" + (f" ({', '.join(numbers)})" if numbers else "")


# -- formatting helpers --------------------------------------------------------------------------
#: upper-cased parts of composite metric names (structures, pathology groups)
_ACRONYMS = {"lv", "myo", "rv", "nor", "minf", "dcm", "hcm"}
_PREFIXES = {"dice": "Dice", "hd95": "HD95", "fid": "FID", "kid": "KID", "cond": "cond.", "uncertainty": "uncertainty"}
_SUFFIXES = {"single": "(1 sample)", "fg": "foreground", "class": "per class"}


def metric_label(name: str, unit: str | None = None) -> str:
    """``fid`` -> ``FID``, ``hd95`` -> ``HD95``, ``dice_lv`` -> ``Dice LV``, ``fid_class_mean`` -> ``FID per class
    mean``; other longer names stay as they are. With ``unit``, a distance metric (``is_distance_metric``)
    says it: ``metric_label("hd95_mean", "px")`` -> ``HD95 mean (px)``."""
    suffix = f" ({unit})" if unit and is_distance_metric(name) else ""
    if len(name) <= 4 and name.isalnum():
        return name.upper() + suffix
    head, _, rest = name.partition("_")
    if head not in _PREFIXES or not rest:
        return name + suffix
    parts = [p.upper() if p in _ACRONYMS else _SUFFIXES.get(p, p) for p in rest.split("_")]
    return " ".join([_PREFIXES[head], *parts]) + suffix


def decimals_for(values: Iterable[Any]) -> int:
    """Decimals that show every value of a column to about 3-4 significant figures, the same for all."""
    nums = [abs(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    m = max(nums, default=0.0)
    if m >= 100:
        return 1 if m < 1000 else 0
    if m >= 10:
        return 2
    if m >= 1 or m == 0:
        return 3
    return min(8, 2 - math.floor(math.log10(m)))


def format_value(value: Any, spread: Any = None, decimals: int | None = None) -> str:
    """A metric value for humans: fixed ``decimals`` (default: from the value; an ``int`` without decimals
    given stays whole), thousands separators, ``± spread``; ``–`` for a missing value, ``n/a`` for NaN."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value != value:
        return "n/a"
    if decimals is None:
        text = f"{value:,}" if isinstance(value, int) else f"{value:,.{decimals_for([value])}f}"
        decimals = 0 if isinstance(value, int) else decimals_for([value])
    else:
        text = f"{value:,.{decimals}f}"
    if isinstance(spread, (int, float)) and not isinstance(spread, bool):
        text += f" ± {spread:,.{decimals}f}"
    return text


def column_formatter(values: Iterable[Any]) -> Any:
    """One formatting rule for a column of ``values`` (e.g. a run summary's value and reference columns):
    returns ``fmt(value, spread=None) -> str`` giving every number the same decimals (``decimals_for``),
    or whole numbers when every value is an ``int``."""
    values = [v for v in values if _is_number(v)]
    col = MetricColumn("", None, decimals=decimals_for(values),
                       integer=bool(values) and all(isinstance(v, int) for v in values))
    return col.number


def _spec_get(spec: Mapping[str, Any], *paths: str) -> Any:
    """The first of the dotted ``paths`` present in ``spec`` (e.g. ``"sample.steps"``), else ``None``."""
    for path in paths:
        node: Any = spec
        for part in path.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                node = None
                break
        if node is not None:
            return node
    return None


def _seeds_text(seeds: Any) -> str:
    """Compact seeds: ``{"train": 0, "sample": 0}`` -> ``0``; ``{"train": 0, "sample": [1, 2]}`` -> ``0/1,2``."""
    if isinstance(seeds, Mapping):
        parts = [_seeds_text(v) for v in seeds.values()]
        return parts[0] if len(set(parts)) == 1 else "/".join(parts)
    if isinstance(seeds, (list, tuple)):
        return ",".join(str(s) for s in seeds)
    return "" if seeds is None else str(seeds)


#: identity columns per task: key -> header; values come from ``cell``
_IDENTITY: dict[str, tuple[tuple[str, str], ...]] = {
    "generation": (("noise", "noise"), ("sampler", "sampler"), ("steps", "steps"), ("backbone", "backbone"),
                   ("conditioning", "conditioning"), ("seeds", "seeds")),
    "segmentation": (("noise", "noise"), ("sampler", "sampler"), ("steps", "steps"), ("backbone", "backbone"),
                     ("conditioning", "conditioning"), ("seeds", "seeds")),
    "synthesis": (("noise", "noise"), ("sampler", "sampler"), ("steps", "steps"), ("backbone", "backbone"),
                  ("conditioning", "conditioning"), ("seeds", "seeds")),
    "utility": (("noise", "noise"), ("sampler", "sampler"), ("steps", "steps"), ("backbone", "backbone"),
                ("conditioning", "conditioning"), ("seeds", "seeds")),
    "throughput": (("backbone", "backbone"), ("noise", "noise"), ("sampler", "sampler"), ("steps", "steps"),
                   ("batch", "batch"),
                   ("dtype", "dtype"), ("resolution", "res")),
}


def cell(run: RunRecord, key: str) -> str:
    """The text of identity column ``key`` for ``run`` ("" when unknown)."""
    spec = run.spec or {}
    if key == "conditioning":
        value = run.conditioning
        scale = _spec_get(spec, "conditioning.guidance_scale")
        if value and scale is not None:
            value = f"{value} s={float(scale):g}"
        k = _spec_get(spec, "eval.ensemble_k")
        if value and k is not None:
            value = f"{value} k={k}"
    elif key in ("noise", "sampler", "backbone"):
        value = getattr(run, key)
        rep = _spec_get(spec, "train.representation") if key == "noise" else None
        if value and rep:  # a spec names its representation only when it is not the default (one-hot)
            value = f"{value} ({rep})"
    elif key == "steps":
        value = _spec_get(spec, "sample.steps", "sample_steps", "bench.sample_steps", "steps")
    elif key == "batch":
        value = _spec_get(spec, "bench.batch_size", "batch_size")
    elif key == "dtype":
        value = _spec_get(spec, "bench.dtype", "dtype")
    elif key == "resolution":
        value = _spec_get(spec, "data.resolution", "resolution")
    elif key == "seeds":
        return _seeds_text(run.seeds)
    else:
        value = _spec_get(spec, key)
    return "" if value is None else str(value)


def device_name(run: RunRecord) -> str | None:
    dev = (run.environment or {}).get("device")
    if isinstance(dev, Mapping):
        return dev.get("name") or dev.get("type")
    return None if dev is None else str(dev)


# -- directions ---------------------------------------------------------------------------------
def registry_directions() -> dict[str, str]:
    """Metric name -> direction, from the metric plugins registered now (empty if anything fails).

    A metric plugin declares ``direction="lower"`` (for the metric of its own name) or a mapping
    ``direction={"dice_mean": "higher", ...}`` / ``directions={...}`` for every value it reports.
    """
    out: dict[str, str] = {}
    try:
        from cardiobench.plugins import registry

        for comp in registry("metric"):
            for key in ("direction", "directions"):
                value = comp.metadata.get(key)
                if isinstance(value, str):
                    out.setdefault(comp.name, value)
                elif isinstance(value, Mapping):
                    for name, direction in value.items():
                        if isinstance(direction, str):
                            out.setdefault(str(name), direction)
    except Exception:
        return {}
    return {k: v for k, v in out.items() if v in ARROWS}


def _directions(runs: Sequence[RunRecord], names: Iterable[str], known: Mapping[str, str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        stored = [r.directions.get(name) for r in sorted(runs, key=lambda r: r.id or 0, reverse=True)]
        stored = [d for d in stored if d in ARROWS]
        out[name] = stored[0] if stored else known.get(name)
    return out


# -- building boards ------------------------------------------------------------------------------
#: the prefix of a latent run's ceiling values (``cardiobench.autoencoders.runs.CEILING_PREFIX``)
CEILING_PREFIX = "ceiling_"


def is_detail_metric(name: str) -> bool:
    """Per-criterion anatomy counts, ``*_std`` spreads and a latent run's ceiling values beyond its reconstruction
    Dice and FID: stored and exported, not shown by default."""
    if name.startswith(CEILING_PREFIX):
        return name not in (CEILING_PREFIX + "recon_dice_mean", CEILING_PREFIX + "fid")
    return (name.startswith("anatomy_") and name != "anatomy_valid_frac") or name.endswith("_std")


def available_metrics(runs: Iterable[RunRecord]) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        for name in run.metrics:
            seen.setdefault(name, None)
    return list(seen)


def latest_per_spec(runs: Iterable[RunRecord]) -> list[RunRecord]:
    """The newest run of every (spec hash, evaluator) pair; re-runs replace older rows."""
    best: dict[tuple, RunRecord] = {}
    for run in runs:
        key = (run.spec_hash, run.evaluator_id, run.task, run.dataset, run.noise, run.sampler, run.backbone,
               run.conditioning, device_name(run) if run.task == "throughput" else None)
        if key not in best or (run.id or 0) > (best[key].id or 0):
            best[key] = run
    return sorted(best.values(), key=lambda r: r.id or 0)


def _ruler(run: RunRecord) -> tuple[str, str | None]:
    if run.task == "throughput":
        return "device", device_name(run)
    return "evaluator", run.evaluator_id


def _sort_rows(rows: list[RunRecord], metric: str | None, direction: str | None) -> list[RunRecord]:
    rows = sorted(rows, key=lambda r: r.id or 0)
    if metric is None:
        return rows
    present = [r for r in rows if r.metrics.get(metric) is not None]
    missing = [r for r in rows if r.metrics.get(metric) is None]
    present.sort(key=lambda r: r.metrics[metric], reverse=direction != "lower")
    return present + missing


def identity_keys(task: str) -> list[str]:
    """The identity columns a board of ``task`` may show (``--columns`` names), in display order."""
    return [key for key, _ in _IDENTITY.get(task, _IDENTITY["generation"])]


def column_names(runs: Iterable[RunRecord]) -> list[str]:
    """Every name ``--columns`` accepts for ``runs``: their tasks' identity columns, then their metrics."""
    runs = list(runs)
    names: dict[str, None] = {}
    for task in dict.fromkeys(r.task for r in runs):
        names.update(dict.fromkeys(identity_keys(task)))
    names.update(dict.fromkeys(available_metrics(runs)))
    return list(names)


def check_columns(columns: Sequence[str], runs: Iterable[RunRecord]) -> list[str]:
    """``columns`` checked against ``column_names(runs)``: the first unknown one is a one-line
    ``LeaderboardError`` naming it and listing the valid ones. Returns them without blanks and repeats."""
    valid = column_names(runs)
    wanted = list(dict.fromkeys(c.strip() for c in columns if c and c.strip()))
    if not wanted:
        raise LeaderboardError("--columns names no column", f"valid columns: {', '.join(valid) or 'none'}")
    for name in wanted:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise LeaderboardError(f"unknown column {name!r} for --columns",
                                   f"{hint}valid columns: {', '.join(valid) if valid else 'none'}")
    return wanted


# -- the real-vs-real reference ------------------------------------------------------------------
def _numbers(values: Any) -> dict[str, Any] | None:
    """The numeric (or null) entries of a mapping, ``None`` when there are none."""
    if not isinstance(values, Mapping):
        return None
    out = {str(k): v for k, v in values.items() if v is None or _is_number(v)}
    return out if any(v is not None for v in out.values()) else None


def _reference_file(run: RunRecord, results_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``reference`` of the ``metrics.json`` that ``cardiobench run`` wrote in the run's folder (rows stored
    before the reference was kept in the row). Only a regular file inside the run's own folder, at most
    ``MAX_METRICS_FILE_BYTES``, is read: the same rule as the HTML export's images."""
    folder = run_folder(run, results_dir)
    if folder is None:
        return None
    arts = run.artefacts if isinstance(run.artefacts, Mapping) else {}
    tries = [folder / "metrics.json"]
    if isinstance(arts.get("metrics"), str):
        tries.insert(0, folder / Path(arts["metrics"]).name)
    for path in dict.fromkeys(tries):
        try:
            real = path.resolve(strict=True)
            if not real.is_relative_to(folder) or not real.is_file():
                continue
            if real.stat().st_size > MAX_METRICS_FILE_BYTES:
                continue
            data = json.loads(real.read_text(encoding="utf-8"))
        except (OSError, RuntimeError, ValueError):
            continue
        if isinstance(data, Mapping) and data.get("spec_hash") in (None, run.spec_hash):
            return _numbers(data.get("reference"))
    return None


def stored_reference(run: RunRecord, results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """A run's real-vs-real reference values: ``context["reference"]``; for a row stored without it, the
    ``reference`` of the ``metrics.json`` in its run folder under ``results_dir`` (``_reference_file``); else
    ``{}`` (segmentation and throughput runs have none)."""
    found = _numbers((run.context or {}).get("reference"))
    if found is None and results_dir is not None and run.task == "generation":
        found = _reference_file(run, results_dir)
    return dict(found or {})


def _references(rows: Sequence[RunRecord], results_dir: str | os.PathLike | None
                ) -> tuple[list[tuple[str, dict]], dict[int, dict]]:
    """The reference rows of a board, one per distinct reference of ``rows`` (labelled ``real vs real``, or,
    when the runs' references differ, ``real vs real (runs 3, 4)``), and each run's own (by run id)."""
    found: dict[str, tuple[dict, list[int]]] = {}
    per_run: dict[int, dict] = {}
    for run in sorted(rows, key=lambda r: r.id or 0):
        ref = stored_reference(run, results_dir)
        if ref:
            per_run[run.id or 0] = ref
            key = json.dumps(ref, sort_keys=True, default=str)
            found.setdefault(key, (ref, []))[1].append(run.id or 0)
    if len(found) == 1:
        return [(REFERENCE_LABEL, next(iter(found.values()))[0])], per_run
    return [(f"{REFERENCE_LABEL} (run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))})", ref)
            for ref, ids in found.values()], per_run


#: the utility figures a generator's row on its generation board shows (from its latest utility run)
UTILITY_FIGURES: tuple[str, ...] = ("utility_gain_few", "utility_gain_all", "utility_synth_ratio")


def _sampling(run: RunRecord) -> tuple:
    sample = (run.spec or {}).get("sample") or {}
    return (run.spec or {}).get("train_hash"), sample.get("sampler"), sample.get("steps"), sample.get("seed")


def with_utility(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """``runs`` with each generation row given the utility figures (``UTILITY_FIGURES``) of the latest utility run
    of the same generator: same data set, train hash, sampler, steps and sample seed. The rows are copies; the
    store is not changed. A generation row without a utility run is returned as it is."""
    latest: dict[tuple, RunRecord] = {}
    for run in runs:
        if run.task == "utility":
            key = (run.dataset, *_sampling(run))
            if key not in latest or (run.id or 0) > (latest[key].id or 0):
                latest[key] = run
    if not latest:
        return list(runs)
    out = []
    for run in runs:
        found = latest.get((run.dataset, *_sampling(run))) if run.task == "generation" else None
        if found is None:
            out.append(run)
            continue
        extra = {k: found.metrics[k] for k in UTILITY_FIGURES if k in found.metrics}
        out.append(replace(run, metrics={**run.metrics, **extra},
                           directions={**run.directions, **{k: found.directions.get(k, "higher") for k in extra}}))
    return out


def build_boards(
    runs: Iterable[RunRecord],
    *,
    sort: str | None = None,
    latest_only: bool = True,
    known_directions: Mapping[str, str] | None = None,
    details: bool = True,
    headline_only: bool = False,
    columns: Sequence[str] | None = None,
    meta: MetricMeta | None = None,
    results_dir: str | os.PathLike | None = None,
) -> list[Board]:
    """Group ``runs`` into boards (task, data set, ruler) and rank each one.

    Which metric columns a board shows, headline ones first (``meta.headline``: the metric plugins' metadata;
    ``meta=None`` reads the plugins registered now):

    - ``columns``: exactly these, in this order (metric names and identity keys, ``check_columns``; without
      an identity key, the usual identity columns);
    - ``headline_only``: the headline metrics and the sort metric (every non-detail one on a board without
      headline metrics), for a terminal; the others are listed in ``Board.hidden``;
    - else every metric, without the detail ones (``is_detail_metric``: per-criterion anatomy counts,
      ``*_std`` spreads) unless ``details``.

    A count shown beside a figure (``meta.counts``, e.g. ``hd95_missing``) is not a column of its own in
    those views unless named in ``columns``.

    ``sort`` is the metric to rank by (default: ``meta.sort_keys`` of the task, else the board's first
    metric with a known direction); it must be a metric of at least one run, else ``LeaderboardError``.
    ``known_directions`` fills in directions the runs did not store (see ``registry_directions``).
    ``results_dir``: the results folder, to find the reference of rows stored before it was kept in the row
    (``stored_reference``).
    """
    runs = [r for r in runs if r.status == "ok"]
    if latest_only:
        runs = latest_per_spec(runs)
    runs = with_utility(runs)
    meta = registry_meta() if meta is None else meta
    if sort is not None:
        names = available_metrics(runs)
        if sort not in names:
            close = difflib.get_close_matches(sort, names, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise LeaderboardError(
                f"unknown metric {sort!r} for --sort",
                f"{hint}available: {', '.join(names) if names else 'none (no metrics stored)'}",
            )
    if columns is not None:
        columns = check_columns(columns, runs)
    known = dict(known_directions or {})
    # one board per task, data set, ruler, sample count, distance unit and item (slices, or volumes of one shape):
    # nothing else is ranked together
    groups: dict[tuple[str, str, str, str | None, int | None, str | None, tuple[int, ...] | None],
                 list[RunRecord]] = {}
    for run in runs:
        kind, ruler = _ruler(run)
        count = sample_count(run) if run.task in QUALITY_TASKS else None
        groups.setdefault((run.task, run.dataset, kind, ruler, count, distance_unit(run), volume_shape(run)),
                          []).append(run)

    def order(item: tuple[tuple, list[RunRecord]]) -> tuple:
        (task, dataset, *_), rows = item
        task_rank = TASKS.index(task) if task in TASKS else len(TASKS)
        return (task_rank, dataset, -max(r.id or 0 for r in rows))

    boards: list[Board] = []
    for (task, dataset, kind, ruler, count, unit, shape), rows in sorted(groups.items(), key=order):
        every = available_metrics(rows)
        directions = _directions(rows, every, known)
        notes: list[str] = []
        metric = sort if sort in every else None
        if sort is not None and metric is None:
            notes.append(f"no run here has {sort!r}")
        if metric is None:
            default = meta.sort_keys.get(task)
            if default in every:
                metric = default
            else:
                metric = next((n for n in every if directions[n] is not None), every[0] if every else None)
        shown = _shown_metrics(task, every, metric, meta, details=details, headline_only=headline_only,
                               columns=columns)
        keys = identity_keys(task)
        if columns is not None and any(c in keys for c in columns):
            keys = [c for c in columns if c in keys]
        header = dict(_IDENTITY.get(task, _IDENTITY["generation"]))
        ident = [Column(key, header[key]) for key in keys if any(cell(r, key) for r in rows)]

        metrics = [_metric_column(name, rows, directions, unit, meta, every) for name in shown]
        sort_column = next((m for m in metrics if m.name == metric), None)
        if metric is not None and sort_column is None:
            sort_column = _metric_column(metric, rows, directions, unit, meta, every)
        if metric is not None and directions.get(metric) is None:
            notes.append(f"direction of {metric!r} unknown: sorted high to low")
        references, per_run = _references(rows, results_dir)
        counted = {m.count for m in metrics if m.count}
        hidden = [n for n in every if n not in shown and n not in counted] if columns is None else []
        board = Board(
            task=task,
            dataset=dataset,
            ruler_kind=kind,
            ruler=ruler,
            sort_metric=metric,
            columns=ident,
            metrics=metrics,
            rows=_sort_rows(rows, metric, directions.get(metric) if metric else None),
            notes=notes,
            n_samples=count,
            distance_unit=unit,
            volume_shape=shape,
            ruler_flags=list(dict.fromkeys(f for r in rows if (f := ruler_flag(r)))),
            sort_column=sort_column,
            references=references,
            run_references=per_run,
            hidden=hidden if headline_only else [],
        )
        boards.append(board)
    return boards


def _metric_column(name: str, rows: Sequence[RunRecord], directions: Mapping[str, str | None], unit: str | None,
                   meta: MetricMeta, every: Sequence[str]) -> MetricColumn:
    """The column of metric ``name`` over ``rows``: one formatting rule, its best value, its count metric."""
    values = [r.metrics.get(name) for r in rows if r.metrics.get(name) is not None]
    numbers = [v for v in values if _is_number(v)]
    count = meta.counts.get(name)
    col = MetricColumn(name, directions.get(name), decimals=decimals_for(numbers),
                       unit=unit if is_distance_metric(name) else None,
                       integer=bool(numbers) and all(isinstance(v, int) for v in numbers),
                       count=count if count in every else None)
    if len(set(values)) > 1:  # a best worth marking needs something to beat
        col.best = min(values) if col.direction == "lower" else max(values) if col.direction else None
    return col


def _shown_metrics(task: str, every: list[str], sort: str | None, meta: MetricMeta, *, details: bool,
                   headline_only: bool, columns: Sequence[str] | None) -> list[str]:
    """The metric columns of a board, in order: see ``build_boards``."""
    if columns is not None:
        return [c for c in columns if c in every]
    # counts are shown beside their figures; only "every metric" (details) has them as columns too
    counted = set() if details and not headline_only else {meta.counts[n] for n in every if n in meta.counts}
    candidates = [n for n in every if n not in counted]
    headline = [n for n in meta.headline.get(task, ()) if n in candidates]
    if headline_only and headline:
        names = headline
    else:
        names = headline + [n for n in candidates if n not in headline and (details or not is_detail_metric(n))]
    if sort is not None and sort in every:  # the sort metric comes first
        names = [sort] + [n for n in names if n != sort]
    return names


# -- renderers --------------------------------------------------------------------------------
def _hidden_note(board: Board) -> str | None:
    """``3 more columns (precision, recall, f_score): --all-metrics or --columns`` for a board that hides some."""
    if not board.hidden:
        return None
    n = len(board.hidden)
    listed = ", ".join(board.hidden[:6]) + (", ..." if n > 6 else "")
    return f"{n} more column{'s' if n != 1 else ''} ({listed}): --all-metrics or --columns"


def _caption(board: Board) -> str:
    parts = [board.sort_label, f"{len(board.rows)} run{'s' if len(board.rows) != 1 else ''}", *board.notes]
    if board.references:
        parts.append(f"{REFERENCE_LABEL}: the same metrics for real data, not ranked")
    if any(m.count for m in board.metrics):
        parts.append("(N missing): (image, structure) pairs with one mask empty, so without a value: left out "
                     "of a mean, scored the image diagonal in a penalised one")
    if (note := _hidden_note(board)) is not None:
        parts.append(note)
    return " · ".join(parts)


def _row_cells(board: Board, rank: int, run: RunRecord, esc: Any, best: str) -> list[str]:
    """Rank, identity cells, metric cells (``best`` pattern around the best values), run id; escaped."""
    cells = [str(rank)] + [esc(cell(run, c.key)) for c in board.columns]
    for m in board.metrics:
        text = esc(m.text(run))
        cells.append(best.format(text) if m.is_best(run.metrics.get(m.name)) else text)
    return cells + [str(run.id)]


def _reference_cells(board: Board, label: str, values: Mapping[str, Any], esc: Any) -> list[str]:
    """A reference row: no rank, the label in the first identity column, values by each column's rule."""
    ident = [esc(label)] + [""] * (len(board.columns) - 1) if board.columns else []
    cells = ["ref" if not board.columns else ""] + ident
    cells += [esc(m.number(values.get(m.name))) for m in board.metrics]
    return cells + [""]


def _shared_identity(board: Board) -> list[Column]:
    """Identity columns whose text is the same (and not empty) for every run of the board."""
    shared = []
    for col in board.columns:
        texts = {cell(r, col.key) for r in board.rows}
        if len(texts) == 1 and "" not in texts:
            shared.append(col)
    return shared


def _metric_width(m: MetricColumn, board: Board) -> int:
    """The width metric column ``m`` needs: its header or its widest cell (reference rows included)."""
    cells = [m.text(r) for r in board.rows] + [m.number(v.get(m.name)) for _, v in board.references]
    return max([len(m.label), *map(len, cells)])


def _rich_table(board: Board, escape: Any, shared: Sequence[Column] = (), metrics: Sequence[int] | None = None,
                part: tuple[int, int] = (1, 1), heading_width: bool = True) -> Any:
    """The rich table of ``board``; the identity columns in ``shared`` become one ``every run: ...`` line under
    the heading instead of columns; ``metrics``: the indices of the metric columns to show (default all);
    ``part``: (this part, parts) of a board split over several tables (heading on the first, caption on the
    last); ``heading_width``: at least as wide as the heading, so that it never folds."""
    from rich.table import Table

    context = f" · {escape(board.context_label)}" if board.context_label else ""
    flags = "".join(f"\n[bold red]{escape(line)}[/]" for line in board.ruler_flags)
    common = ""
    if shared:
        run = board.rows[0]
        common = "\nevery run: " + " · ".join(escape(f"{c.header} {cell(run, c.key)}") for c in shared)
    first, last = part[0] == 1, part[0] == part[1]
    title = f"[bold]{escape(board.title)}[/] — {escape(board.ruler_label)}{context}{flags}{common}"
    if part[1] > 1:
        title = title if first else f"[bold]{escape(board.title)}[/] — {escape(board.ruler_label)}{context}"
        title += f"\n(columns, part {part[0]} of {part[1]})"
    table = Table(
        title=title,
        min_width=max(len(line) for line in [board.heading, *board.ruler_flags]) if heading_width else None,
        caption=_caption(board) if last else None,
        header_style="bold",
        title_justify="left",
        caption_justify="left",
    )
    keep = [i for i, c in enumerate(board.columns) if c not in shared]
    shown = list(range(len(board.metrics))) if metrics is None else list(metrics)
    table.add_column("#", justify="right", no_wrap=True)
    for i in keep:
        table.add_column(board.columns[i].header, overflow="fold")
    for j in shown:
        m = board.metrics[j]
        table.add_column(m.label, justify="right", no_wrap=True, min_width=_metric_width(m, board))
    table.add_column("run", justify="right", no_wrap=True, style="dim")
    n_ident = len(board.columns)

    def pick(cells: list[str]) -> list[str]:
        return [*(cells[1 + i] for i in keep), *(cells[1 + n_ident + j] for j in shown), cells[-1]]

    for rank, run in enumerate(board.rows, 1):
        cells = _row_cells(board, rank, run, escape, "[bold green]{}[/]")
        table.add_row(cells[0], *pick(cells), end_section=rank == len(board.rows) and bool(board.references))
    for label, values in board.references:
        cells = _reference_cells(board, label, values, escape)
        if keep:  # the label in the first identity column shown
            cells = ["", escape(label), *[""] * (n_ident - 1), *cells[1 + n_ident:]]
            cells[1:1 + n_ident] = [escape(label) if i == keep[0] else "" for i in range(n_ident)]
        table.add_row(cells[0], *pick(cells), style="italic")
    return table


def rich_tables(boards: Sequence[Board], width: int | None = None) -> list[Any]:
    """One ``rich.table.Table`` per board. Metric columns never wrap and are never cut.

    With ``width`` (a terminal's), a board wider than that first shows the identity columns that are the same
    for every run as one ``every run: ...`` line under its heading instead (at least one identity column
    stays, for the reference row's label); a board still too wide (``--all-metrics``) is split into several
    tables of whole metric columns, each with the rank, identity and run columns, the headline ones in the
    first. Identity columns fold before anything else."""
    from rich.console import Console
    from rich.markup import escape

    tables = []
    measure = Console(width=10_000, color_system=None) if width is not None else None
    for board in boards:
        table = _rich_table(board, escape)
        if measure is None or natural_width([table], measure) <= width:
            tables.append(table)
            continue
        shared = _shared_identity(board)
        if shared and len(shared) == len(board.columns):
            shared = shared[1:]
        table = _rich_table(board, escape, shared)
        if natural_width([table], measure) <= width or len(board.metrics) < 2:
            tables.append(table)
            continue
        base = natural_width([_rich_table(board, escape, shared, metrics=[], heading_width=False)], measure)
        groups: list[list[int]] = [[]]
        used = base
        for j, m in enumerate(board.metrics):
            need = _metric_width(m, board) + 3  # padding and a border
            if groups[-1] and used + need > width:
                groups.append([])
                used = base
            groups[-1].append(j)
            used += need
        tables += [_rich_table(board, escape, shared, metrics=g, part=(k, len(groups)))
                   for k, g in enumerate(groups, 1)]
    return tables


def natural_width(tables: Sequence[Any], console: Any) -> int:
    """The width the widest table needs to show without folding."""
    from rich.measure import Measurement

    options = console.options.update_width(10_000)
    widths = [Measurement.get(console, options, t).maximum for t in tables]
    return max(widths, default=80)


def render_text(boards: Sequence[Board]) -> str:
    """The rich tables as plain text, at their natural width (for ``--format table --out FILE``)."""
    from rich.console import Console

    buf = io.StringIO()
    tables = rich_tables(boards)
    console = Console(file=buf, width=1000, color_system=None, highlight=False)
    console.width = natural_width(tables, console)
    for table in tables:
        console.print(table)
        console.print()
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


#: Markdown export: HTML's special characters become entities (no raw HTML, no autolinks), and the
#: characters of table cells, code spans and link/image syntax are backslash-escaped
_MD_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\", "`": "\\`", "[": "\\[", "]": "\\]"}


def _md_escape(text: str) -> str:
    """``text`` as inert Markdown: one line, no raw HTML, no links or images, no table breaks."""
    return "".join(_MD_ESCAPES.get(c, c) for c in re.sub(r"[\r\n]+", " ", str(text)))


def _md_code(text: str) -> str:
    """``text`` as a code span when it is plain (letters, digits, ``._:/+@-`` and spaces), else escaped text."""
    text = str(text)
    return f"`{text}`" if re.fullmatch(r"[\w.:/+@ -]+", text) else _md_escape(text)


def to_markdown(boards: Sequence[Board]) -> str:
    out: list[str] = []
    for board in boards:
        ruler = _md_code(board.ruler or "unknown")
        context = f" · {_md_escape(board.context_label)}" if board.context_label else ""
        out.append(f"### {_md_escape(board.title)} — {_md_escape(board.ruler_kind)} {ruler}{context}")
        out.append("")
        for line in board.ruler_flags:
            out.append(f"**{_md_escape(line)}**")
            out.append("")
        headers = ["#"] + [c.header for c in board.columns] + [m.label for m in board.metrics] + ["run"]
        out.append("| " + " | ".join(_md_escape(h) for h in headers) + " |")
        aligns = ["---:"] + [":---" for _ in board.columns] + ["---:" for _ in board.metrics] + ["---:"]
        out.append("| " + " | ".join(aligns) + " |")
        for rank, run in enumerate(board.rows, 1):
            out.append("| " + " | ".join(_row_cells(board, rank, run, _md_escape, "**{}**")) + " |")
        for label, values in board.references:
            out.append("| " + " | ".join(_reference_cells(board, label, values, _md_escape)) + " |")
        out.append("")
        out.append(f"*{_md_escape(_caption(board))}; best value per column in bold.*")
        out.append("")
    return "\n".join(out)


#: text cells starting with one of these are formulas to a spreadsheet (OWASP CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as data: text that would start a formula gets a leading ``'``.
    Numbers, and text that is just a number (``-1``), are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def to_csv(boards: Sequence[Board]) -> str:
    """One flat table of every board's rows; metric columns are the union, spreads as ``NAME_spread``, the count
    beside a figure as ``NAME_missing`` right after it (e.g. ``hd95_mean_missing``), the run's real-vs-real
    reference as ``NAME_reference``. Text cells that a spreadsheet would run as a formula are neutralised
    (``csv_cell``)."""
    metric_names: list[str] = []
    spread_names: list[str] = []
    reference_names: list[str] = []
    counts: dict[str, str] = {}
    for board in boards:
        for m in board.metrics:
            if m.name not in metric_names:
                metric_names.append(m.name)
            if m.count:
                counts.setdefault(m.name, m.count)
            if any(m.name in r.spreads for r in board.rows) and m.name not in spread_names:
                spread_names.append(m.name)
            if any(m.name in values for _, values in board.references) and m.name not in reference_names:
                reference_names.append(m.name)
    metric_cols: list[tuple[str, str, str]] = []  # (header, kind, metric)
    for name in metric_names:
        metric_cols.append((name, "value", name))
        if name in counts:
            metric_cols.append((f"{name}_missing", "count", name))
    ident = ["noise", "sampler", "steps", "backbone", "conditioning", "seeds", "batch", "dtype", "resolution"]
    header = (["task", "dataset", "ruler_kind", "ruler", "n_samples", "distance_unit", "ruler_flag", "rank", "run_id",
               "created_at", "spec_hash"] + ident + [h for h, _, _ in metric_cols]
              + [f"{n}_spread" for n in spread_names] + [f"{n}_reference" for n in reference_names])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(h) for h in header])
    for board in boards:
        by_name = {m.name: m for m in board.metrics}
        for rank, run in enumerate(board.rows, 1):
            reference = board.run_references.get(run.id or 0, {})
            row = [board.task, board.dataset, board.ruler_kind, board.ruler or "",
                   "" if board.n_samples is None else board.n_samples, board.distance_unit or "",
                   ruler_flag(run) or "", rank, run.id, run.created_at, run.spec_hash] + [cell(run, k) for k in ident]
            for _, kind, name in metric_cols:
                if kind == "count":
                    col = by_name.get(name)
                    missing = col.missing(run) if col is not None else None
                    row.append("" if missing is None else missing)
                else:
                    row.append("" if run.metrics.get(name) is None else run.metrics[name])
            row += ["" if run.spreads.get(n) is None else run.spreads[n] for n in spread_names]
            row += ["" if reference.get(n) is None else reference[n] for n in reference_names]
            writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def to_data(boards: Sequence[Board]) -> dict[str, Any]:
    """The leaderboard as plain data (what ``--format json`` prints)."""
    return {
        "format": "cardiobench.leaderboard/1",
        "generated_at": now_iso(),
        "cardiobench": __version__,
        "boards": [
            {
                "task": b.task,
                "dataset": b.dataset,
                "ruler_kind": b.ruler_kind,
                "ruler": b.ruler,
                "n_samples": b.n_samples,
                "distance_unit": b.distance_unit,
                "ruler_flags": b.ruler_flags,
                "sort_metric": b.sort_metric,
                "notes": b.notes,
                "metrics": [{"name": m.name, "label": m.label, "direction": m.direction, "unit": m.unit,
                             "best": m.best, **({"count": m.count} if m.count else {})} for m in b.metrics],
                "hidden": b.hidden,
                "references": [{"label": label, "metrics": values} for label, values in b.references],
                "rows": [
                    {
                        "rank": rank,
                        "run_id": r.id,
                        "created_at": r.created_at,
                        **{c.key: cell(r, c.key) for c in b.columns},
                        "spec_hash": r.spec_hash,
                        "train_hash": r.train_hash,
                        "evaluator_id": r.evaluator_id,
                        "metrics": r.metrics,
                        "spreads": r.spreads,
                        "best": [m.name for m in b.metrics if m.is_best(r.metrics.get(m.name))],
                        # the count beside each figure that has one, e.g. {"hd95_mean": 3}: pairs left out
                        "missing": {m.name: n for m in b.metrics if (n := m.missing(r)) is not None},
                        "reference": b.run_references.get(r.id or 0, {}),
                        "timings": r.timings,
                        "artefacts": r.artefacts,
                        "context": r.context,
                    }
                    for rank, r in enumerate(b.rows, 1)
                ],
            }
            for b in boards
        ],
    }


def to_json(boards: Sequence[Board]) -> str:
    return json.dumps(to_data(boards), indent=2, default=str)


# -- HTML ------------------------------------------------------------------------------------
_CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --best:#067647; --bestbg:#ecfdf3; --head:#f8f9fb; }
* { box-sizing: border-box; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 28px 32px 48px; max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 36px 0 2px; }
.sub, .caption, footer { color: var(--muted); }
.ruler { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; background: var(--head);
         border: 1px solid var(--line); border-radius: 4px; padding: 1px 6px; }
/* a board wider than the page scrolls inside its own box, never the page; rank and first column stay put */
.wrap { overflow-x: auto; max-width: 100%; margin-top: 10px; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th:first-child, td:first-child { position: sticky; left: 0; background: #fff; }
th:first-child { background: var(--head); }
tr.ref td { font-style: italic; color: var(--muted); border-top: 2px solid var(--line); }
tbody tr:last-child td { border-bottom: none; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { background: var(--head); text-align: left; font-weight: 600; }
th.num, td.num { text-align: right; }
tbody tr:hover { background: #f5f8ff; }
td.best { color: var(--best); background: var(--bestbg); font-weight: 700; }
td.rank { color: var(--muted); }
.flag { color: #b42318; background: #fef3f2; border: 1px solid #fecdca; border-radius: 4px; font-weight: 600;
        padding: 4px 10px; margin: 8px 0 0; display: inline-block; }
.caption { margin: 6px 0 0; font-size: 13px; }
.grids { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 16px; margin-top: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; }
figure img { width: 100%; image-rendering: pixelated; display: block; border-radius: 3px; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 6px; }
footer { margin-top: 40px; font-size: 12px; border-top: 1px solid var(--line); padding-top: 10px; }
"""


_SPEC_DIR = re.compile(r"[0-9A-Za-z_-]{1,64}")


def run_folder(run: RunRecord, results_dir: str | os.PathLike) -> Path | None:
    """Where ``cardiobench run`` writes the run's files: ``RESULTS_DIR/runs/SPEC_HASH[:12]`` (``results_dir`` with
    its symbolic links resolved); ``None`` when the run's spec hash cannot name a folder."""
    name = (run.spec_hash or "")[:12]
    if not _SPEC_DIR.fullmatch(name):
        return None
    return Path(results_dir).resolve() / "runs" / name


def _read_image(path: Path) -> tuple[str | None, str | None]:
    """``(data URI, None)`` for a PNG or GIF file of at most ``MAX_EMBED_BYTES``, else ``(None, reason)``."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        too_big = f"larger than {MAX_EMBED_BYTES // 2**20} MiB"
        if info.st_size > MAX_EMBED_BYTES:
            return None, too_big
        data = fh.read(MAX_EMBED_BYTES + 1)
    if len(data) > MAX_EMBED_BYTES:
        return None, too_big
    mime = next((m for magic, m in IMAGE_MAGIC if data.startswith(magic)), None)
    if mime is None:
        return None, "not a PNG or GIF image"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", None


def grid_image(run: RunRecord, results_dir: str | os.PathLike | None,
               base_dirs: Sequence[str | os.PathLike] = ()) -> tuple[str | None, str | None]:
    """The run's sample grid (artefact ``sample_grid``, or any key with ``grid``) as a data URI to embed.

    Returns ``(uri, None)``; ``(None, reason)`` when the run names a grid that is not embedded; ``(None, None)``
    when it names none. Only a file the run wrote itself is embedded: its real path (symbolic links
    resolved) lies inside the run's folder ``run_folder(run, results_dir)``, and it is a PNG or GIF (by its
    first bytes) of at most ``MAX_EMBED_BYTES``. A store received from someone else can therefore never
    pull any other local file into a page meant for sharing. Relative paths are tried against each of
    ``base_dirs`` and the current folder; a path from another machine is looked up by its file name in the
    run's folder.
    """
    arts = run.artefacts if isinstance(run.artefacts, Mapping) else {}
    values = [arts[k] for k in GRID_KEYS if isinstance(arts.get(k), str)]
    values += [v for k, v in arts.items() if "grid" in str(k) and isinstance(v, str) and v not in values]
    if not values:
        return None, None
    if results_dir is None:
        return None, "no results folder to embed from"
    folder = run_folder(run, results_dir)
    if folder is None:
        return None, "the run has no spec hash naming its folder"
    reason = None
    for value in values:
        p = Path(value).expanduser()
        tries = [p] if p.is_absolute() else [Path(b) / p for b in base_dirs] + [p]
        tries.append(folder / p.name)  # the run's folder moved here from elsewhere
        for t in tries:
            try:
                if not t.is_file():
                    continue
                real = t.resolve(strict=True)
            except (OSError, RuntimeError):  # unreadable, a symbolic link loop
                continue
            if not real.is_relative_to(folder):
                reason = reason or "outside the run's folder"
                continue
            uri, why = _read_image(real)
            if uri is not None:
                return uri, None
            reason = reason or why
    return None, reason or "file not found"


def to_html(boards: Sequence[Board], base_dirs: Sequence[Path] = (), title: str = "cardiobench leaderboard",
            source: str | None = None, results_dir: str | os.PathLike | None = None) -> str:
    """A self-contained page: inline CSS, sample grids embedded as base64 data URIs.

    ``results_dir`` is the folder holding the results store: only grids inside a run's own folder there
    are embedded (see ``grid_image``); the page says why any other grid a run names is not.
    """
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        '<p class="sub">Runs are ranked only against runs measured with the same ruler (evaluator for quality, '
        "device for throughput), on the same number of samples and in the same distance unit (mm, or px where "
        "the data set has no voxel spacing). Best value per column highlighted; ↓ lower is better, "
        "↑ higher is better.</p>",
    ]
    for board in boards:
        parts.append(f"<section><h2>{e(board.title)}</h2>")
        context = f" · {e(board.context_label)}" if board.context_label else ""
        ruler = f'{e(board.ruler_kind)} <span class="ruler">{e(board.ruler or "unknown")}</span>'
        parts.append(f"<div>{ruler}{context}</div>")
        parts += [f'<p class="flag">{e(line)}</p>' for line in board.ruler_flags]
        parts.append('<div class="wrap"><table><thead><tr><th class="num">#</th>')
        parts += [f"<th>{e(c.header)}</th>" for c in board.columns]
        parts += [f'<th class="num">{e(m.label)}</th>' for m in board.metrics]
        parts.append('<th class="num">run</th></tr></thead><tbody>')
        for rank, run in enumerate(board.rows, 1):
            parts.append(f'<tr><td class="num rank">{rank}</td>')
            parts += [f"<td>{e(cell(run, c.key))}</td>" for c in board.columns]
            for m in board.metrics:
                cls = "num best" if m.is_best(run.metrics.get(m.name)) else "num"
                parts.append(f'<td class="{cls}">{e(m.text(run))}</td>')
            parts.append(f'<td class="num rank">{run.id}</td></tr>')
        for label, values in board.references:
            cells = _reference_cells(board, label, values, e)
            parts.append('<tr class="ref"><td class="num rank"></td>'
                         + "".join(f"<td>{c}</td>" for c in cells[1:1 + len(board.columns)])
                         + "".join(f'<td class="num">{c}</td>' for c in cells[1 + len(board.columns):-1])
                         + '<td class="num rank"></td></tr>')
        parts.append(f'</tbody></table></div><p class="caption">{e(_caption(board))}</p>')
        figures = []
        refused = []
        for rank, run in enumerate(board.rows, 1):
            uri, reason = grid_image(run, results_dir, base_dirs)
            if uri is None:
                if reason:
                    refused.append(f"run {run.id}: artefact not embedded: {reason}")
                continue
            what = " · ".join(
                f"{text} steps" if c.key == "steps" else text
                for c in board.columns[:3]
                if (text := cell(run, c.key))
            )
            score = ""
            if board.sort_column is not None:
                m = board.sort_column
                score = f" — {m.label} {m.number(run.metrics.get(m.name))}"
            alt = f"sample grid of run {run.id}"
            figures.append(
                f'<figure><img src="{uri}" alt="{e(alt)}">'
                f"<figcaption>#{rank} {e(what)}{e(score)} (run {run.id})</figcaption></figure>"
            )
        if figures:
            parts.append('<div class="grids">' + "".join(figures) + "</div>")
        parts += [f'<p class="caption">{e(line)}</p>' for line in refused]
        parts.append("</section>")
    footer = f"generated by cardiobench {e(__version__)} at {e(now_iso())}"
    if source:
        footer += f" from {e(source)}"
    parts.append(f"<footer>{footer}</footer></body></html>")
    return "\n".join(parts)


def render(boards: Sequence[Board], fmt: str, *, base_dirs: Sequence[Path] = (), source: str | None = None,
           results_dir: str | os.PathLike | None = None) -> str:
    """The leaderboard in ``fmt`` (one of ``FORMATS``) as text; ``results_dir`` and ``base_dirs``: see ``to_html``."""
    if fmt == "table":
        return render_text(boards)
    if fmt == "md":
        return to_markdown(boards)
    if fmt == "csv":
        return to_csv(boards)
    if fmt == "json":
        return to_json(boards)
    if fmt == "html":
        return to_html(boards, base_dirs=base_dirs, source=source, results_dir=results_dir)
    raise LeaderboardError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
