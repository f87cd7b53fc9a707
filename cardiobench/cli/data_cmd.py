"""``cardiobench data``: what a data set holds (``info``) and what it looks like (``preview``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich import box
from rich.table import Table

from cardiobench.cli.options import command_group
from cardiobench.cli.output import console, print_json
from cardiobench.config import DEFAULT_DEPTH, SCHEMA
from cardiobench.data import DEFAULT_DATASET, GROUPS, SPLITS, open_dataset
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl
from cardiobench.paths import atomic_write_image

data_app = command_group(
    "data", "Inspect data sets: counts per split and group (info), a grid of masks beside their images (preview).")

DATASET_HELP = (f"Data set name (default {DEFAULT_DATASET}; with --data-root, the one whose layout the folder holds). "
                "See `cardiobench plugins`.")
ROOT_HELP = (
    "Folder of a real data set: acdc, the folder holding training/ (and testing/); acdc-h5, the folder of "
    "patientNNN_frameFF.h5 files or its parent (default: $CARDIOBENCH_ACDC_ROOT, $CARDIOBENCH_ACDC_H5_ROOT); "
    "nifti-pairs (with --dataset nifti-pairs), a folder of image/mask NIfTI pairs."
)
SKIP_HELP = "Warn about bad patients and skip them instead of stopping at the first one."
OPT_HELP = (
    "Other data set option KEY=VALUE (repeatable), e.g. split=ssl4mis, spacing_mm=1.5 (acdc-h5), "
    "test_fraction=0.2, val_fraction=0.2."
)

#: default --size: what a run uses (config key ``data.resolution``), so ``data info`` describes the data runs see
SIZE: int = SCHEMA["data"]["resolution"].default


def parse_dataset_options(items: list[str] | None) -> dict[str, Any]:
    """``["split=ssl4mis", "spacing_mm=[1.5,1.5]"]`` -> options (values parsed as TOML; bare words are strings)."""
    from cardiobench.config import parse_set

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CardiobenchError(f"--dataset-opt {item!r} is not KEY=VALUE", "e.g. --dataset-opt split=ssl4mis")
        key, value = parse_set(item)
        out[key] = value
    return out


def volume_options(dims: int, depth: int | None) -> dict[str, Any]:
    """The data set options of ``--dims`` / ``--depth``: ``{"depth": D}`` for volumes, ``{}`` for slices."""
    if dims not in (2, 3):
        raise CardiobenchError(f"--dims must be 2 (slices) or 3 (volumes), got {dims}")
    if dims == 2:
        if depth is not None:
            raise CardiobenchError(f"--depth {depth} describes volumes, but --dims is 2", "add --dims 3")
        return {}
    return {"depth": DEFAULT_DEPTH if depth is None else depth}


def _open(
    dataset: str | None,
    data_root: Path | None,
    size: int,
    seed: int,
    skip_bad: bool,
    no_cache: bool,
    extra: dict[str, Any] | None = None,
):
    from cardiobench.engine.pipeline import select_dataset

    name = select_dataset(dataset, data_root)  # a root the data set cannot use is refused, not ignored
    options: dict[str, Any] = dict(extra or {})
    for key in ("size", "seed", "data_root", "skip_bad", "cache"):
        if key in options:
            flag = {"data_root": "--data-root", "skip_bad": "--skip-bad", "cache": "--no-cache"}.get(key, f"--{key}")
            raise CardiobenchError(f"--dataset-opt {key}=... duplicates an option of its own", f"use {flag}")
    options |= {"size": size, "seed": seed}
    if data_root is not None:
        options["data_root"] = str(data_root)
    if skip_bad:
        options["skip_bad"] = True
    if no_cache:
        options["cache"] = False
    return name, open_dataset(name, **options)


def _load_all(name: str, source: Any) -> dict[str, Any]:
    """Every split, with a spinner on stderr the first time (building can take seconds)."""
    from cardiobench.data.source import DataWarning, VolumeSource

    err = console(stderr=True)
    cached = isinstance(source, VolumeSource) and source.cache and source.cache_path().is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # reported once, below, from describe()
        if cached:
            return {s: source.load(s) for s in SPLITS}
        with err.status(f"preparing {name} (first time; cached afterwards)...", spinner="dots"):
            return {s: source.load(s) for s in SPLITS}


def _describe(name: str, source: Any) -> dict[str, Any]:
    from cardiobench.data.source import summarize

    sets = _load_all(name, source)
    if hasattr(source, "describe"):
        return source.describe()
    unit = str(getattr(source, "spacing_unit", "mm"))
    return {"dataset": name, "spacing_unit": unit, "splits": summarize(sets, unit), "skipped": []}  # no describe()


def _report_skipped(info: dict[str, Any]) -> None:
    skipped = info.get("skipped") or []
    if not skipped:
        return
    err = console(stderr=True)
    for item in skipped:
        err.print(f"[yellow]Warning:[/] skipped {item['patient']}: {item['problem']}", soft_wrap=True)
    err.print(f"[yellow]Warning:[/] {len(skipped)} bad patient(s) or folder(s) skipped (--skip-bad)")


@data_app.command("info")
def info(
    dataset: str = typer.Option(None, "--dataset", "-d", help=DATASET_HELP),
    data_root: Path = typer.Option(None, "--data-root", help=ROOT_HELP),
    size: int = typer.Option(SIZE, "--size", help="Side of the square slices after preprocessing (pixels); "
                             "default: a run's (config key data.resolution)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the patient splits (and of the phantom)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rebuild without reading or writing the cache."),
    dataset_opt: list[str] = typer.Option(None, "--dataset-opt", help=OPT_HELP),
    dims: int = typer.Option(2, "--dims", help="2: slices; 3: whole stacks as volumes of --depth slices."),
    depth: int = typer.Option(None, "--depth", help="Volumes: slices per volume (default 8 with --dims 3)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Patients and slices (or volumes) per split and group, class frequencies, native shapes and spacings."""
    name, source = _open(dataset, data_root, size, seed, skip_bad, no_cache,
                         parse_dataset_options(dataset_opt) | volume_options(dims, depth))
    desc = _describe(name, source)
    _report_skipped(desc)
    if as_json:
        print_json(desc | {"skipped_count": len(desc.get("skipped") or [])})
        return
    _print_info(desc, size)


def _print_info(desc: dict[str, Any], size: int) -> None:
    out = console()
    splits = desc["splits"]
    vol = desc.get("dims") == 3
    shape = "x".join(map(str, desc.get("item_shape") or (size, size)))
    title = f"{desc['dataset']} - {shape} {'volumes' if vol else 'slices'}"
    if desc.get("source"):
        title += f" - {desc['source']}"
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    unit = desc.get("spacing_unit") or "mm"
    unit_col = {"mm": "mm/px", "px": "src px/px"}.get(unit, f"{unit}/px")
    counted = ["volumes", "slices"] if vol else ["slices"]
    spacing_cols = [unit_col, f"slice {unit}"] if vol else [unit_col]
    for col in ("split", "patients", *counted, "ED", "ES", *GROUPS, *spacing_cols):
        table.add_column(col, justify="left" if col == "split" else "right", no_wrap=True)
    totals = np.zeros(3 + len(counted) + len(GROUPS), dtype=np.int64)
    for split, s in splits.items():
        row = [s["patients"], *(s[c] for c in counted), s["phases"]["ED"], s["phases"]["ES"],
               *(s["groups"][g] for g in GROUPS)]
        totals += np.asarray(row)
        cells = []
        for key in ("spacing", "slice_spacing") if vol else ("spacing",):
            sp = s.get(key) or (s.get("spacing_mm") if key == "spacing" else None)
            cells.append(f"{sp['median']:.2f}" if sp else "-")
        table.add_row(split, *map(str, row), *cells)
    table.add_row("[bold]total[/]", *(f"[bold]{v}[/]" for v in totals), *([""] * len(spacing_cols)),
                  end_section=True)
    out.print(table)

    freq = Table(title="class frequencies (share of pixels)", header_style="bold", box=box.SIMPLE_HEAD)
    freq.add_column("split")
    labels = list(next(iter(splits.values()))["class_frequencies"])
    for label in labels:
        freq.add_column(label, justify="right")
    for split, s in splits.items():
        freq.add_row(split, *(f"{s['class_frequencies'][k]:.3f}" for k in labels))
    out.print(freq)

    native = desc.get("native") or {}
    shapes, spacing = native.get("shapes") or {}, native.get("spacing") or native.get("spacing_mm") or {}
    if shapes.get("volumes"):
        common = ", ".join(f"{k} ({n})" for k, n in shapes.get("most_common", []))
        out.print(
            f"native volumes: {shapes['volumes']} ({shapes['distinct']} shapes; rows {_rng(shapes['rows'])}, "
            f"cols {_rng(shapes['cols'])}, slices {_rng(shapes['slices'])}; most common {common})"
        )
    if unit == "px":
        out.print(
            "native spacing: not stored in the files - spacings and distances are in pixels of the source images "
            "(src px); give the in-plane spacing with --dataset-opt spacing_mm=1.5 to use mm"
        )
    elif spacing.get("in_plane_min") is not None:
        line = f"native spacing: in-plane {spacing['in_plane_min']:.2f}-{spacing['in_plane_max']:.2f} {unit}"
        if (desc.get("options") or {}).get("spacing_mm"):
            line += " (given with spacing_mm)"
        if spacing.get("thickness_min") is not None:
            line += f", slice thickness {spacing['thickness_min']:.1f}-{spacing['thickness_max']:.1f} mm"
        out.print(line)
    if vol:
        v = desc.get("volumes") or {}
        out.print(f"volumes: each stack's labelled slices (base to apex) to {v.get('depth')} slices by "
                  f"{v.get('depth_mode')}"
                  + (f", {v['slices_dropped']} source slices beyond the depth dropped"
                     if v.get("slices_dropped") else "")
                  + "; one in-plane crop per stack (docs/volumes.md)")
    split = desc.get("split") or {}
    if split.get("detail"):
        out.print(f"split: {split['name']} - {split['detail']}")
    if desc.get("unlabelled_patients"):
        out.print(f"test patients without ground truth (not used): {len(desc['unlabelled_patients'])}")
    if desc.get("unassigned_patients"):
        out.print(f"patients the split file does not name (not used): {len(desc['unassigned_patients'])}")
    if desc.get("skipped"):
        out.print(f"[yellow]skipped (bad input): {len(desc['skipped'])}[/]")
    cache = desc.get("cache") or {}
    if cache.get("path"):
        state = "hit" if cache.get("hit") else "built"
        out.print(f"cache: {state}, loaded in {cache.get('load_seconds', 0):.2f} s - {cache['path']}")


def _rng(pair: list[int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}-{pair[1]}"


@data_app.command("preview")
def preview(
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    dataset: str = typer.Option(None, "--dataset", "-d", help=DATASET_HELP),
    data_root: Path = typer.Option(None, "--data-root", help=ROOT_HELP),
    split: str = typer.Option("train", "--split", help=f"One of: {', '.join(SPLITS)}."),
    n: int = typer.Option(6, "--n", "-n", min=1, max=64, help="Slices per group (one grid row per group)."),
    size: int = typer.Option(SIZE, "--size", help="Side of the square slices after preprocessing (pixels); "
                             "default: a run's (config key data.resolution)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data set and of the choice of slices."),
    scale: int = typer.Option(2, "--scale", min=1, max=16, help="Pixel magnification in the PNG."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=SKIP_HELP),
    dataset_opt: list[str] = typer.Option(None, "--dataset-opt", help=OPT_HELP),
    dims: int = typer.Option(2, "--dims", help="2: slices; 3: one whole volume per group (base to apex)."),
    depth: int = typer.Option(None, "--depth", help="Volumes: slices per volume (default 8 with --dims 3)."),
) -> None:
    """A grid of colour-coded masks beside their images: one labelled row per pathology group."""
    from cardiobench.viz import mask_grid

    if split not in SPLITS:
        raise CardiobenchError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
    name, source = _open(dataset, data_root, size, seed, skip_bad, False,
                         parse_dataset_options(dataset_opt) | volume_options(dims, depth))
    sets = _load_all(name, source)
    if hasattr(source, "describe"):
        _report_skipped(source.describe())
    s = sets[split]
    if len(s) == 0:
        raise CardiobenchError(f"the {split} split of {name} is empty", "try --split train")
    rng = np.random.default_rng(seed)
    masks, images, labels = [], [], []
    if s.dims == 3:  # one volume per group, its slices base to apex
        n = s.masks.shape[1]
    for g, group in enumerate(GROUPS):
        idx = np.flatnonzero(s.groups == g)
        if idx.size == 0:
            continue
        if s.dims == 3:
            one = int(rng.choice(idx))
            masks.append(s.masks[one])
            images.append(s.images[one])
            labels.append(f"{group} ({idx.size})")
            continue
        pick = np.sort(rng.choice(idx, size=min(n, idx.size), replace=False))
        row_m = np.zeros((n, s.size, s.size), np.uint8)
        row_i = np.zeros((n, s.size, s.size), np.float32)
        row_m[: pick.size], row_i[: pick.size] = s.masks[pick], s.images[pick]
        masks.append(row_m)
        images.append(row_i)
        labels.append(f"{group} ({idx.size})")
    grid = mask_grid(np.concatenate(masks), nrow=n, images=np.concatenate(images), scale=scale, row_labels=labels)
    try:
        atomic_write_image(out, grid)
    except (OSError, ValueError, KeyError) as exc:
        raise CardiobenchError(f"cannot write {out}: {exc}", "choose a writable .png path") from None
    what = f"one {split} volume of {n} slices (base to apex)" if s.dims == 3 else f"{n} {split} slices"
    console().print(
        f"wrote {out} ({grid.width}x{grid.height}): {len(labels)} groups x {what} of {name}, "
        f"each image beside its mask (red RV, green MYO, blue LV)"
    )


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


__all__ = ["data_app", "info", "preview"]
