"""``cardiobench cache info`` and ``cardiobench cache clear``: what the cache holds, and removing it.

The cache folder is ``cardiobench.paths.cache_dir()`` (``$CARDIOBENCH_CACHE_DIR``, else the platform's user
cache folder). Only what cardiobench writes there is counted and removed, by name pattern per kind, so a
``CARDIOBENCH_CACHE_DIR`` pointed at a folder with other files in it never loses them.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cardiobench.cli.options import command_group
from cardiobench.cli.output import console, print_json
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl
from cardiobench.paths import cache_dir

cache_app = command_group(
    "cache", "What cardiobench keeps in its cache folder (data, checkpoints, evaluators, ...), and clearing it.")

_TEMP = re.compile(r"^\..+\.tmp$")  # an interrupted atomic write (cardiobench.paths.atomic_write_bytes)


@dataclass(frozen=True)
class CacheKind:
    """One subfolder of the cache: what it holds, which names are entries, what removing them costs."""

    name: str
    what: str
    if_removed: str
    pattern: str  # entries: names matching this (files, or folders for checkpoints), plus leftover temp files
    folders: bool = False

    def entries(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            if path.is_symlink():
                continue
            if _TEMP.match(path.name) and path.is_file():
                found.append(path)
            elif re.fullmatch(self.pattern, path.name) and (path.is_dir() if self.folders else path.is_file()):
                found.append(path)
        return found


KINDS: dict[str, CacheKind] = {k.name: k for k in (
    CacheKind("data", "preprocessed data sets", "rebuilt from the source on next use", r"[^.].*\.npz"),
    CacheKind("checkpoints", "trained denoisers, finished or resumable", "retrained by the next run (minutes to "
              "hours); shipped ones copied again", r"[0-9a-f]{16}", folders=True),
    CacheKind("evaluators", "FID/KID/IS evaluators per data set (mask and MR-image rulers)",
              "retrained on first use (~1-3 min)", r"[^.].*\.pt"),
    CacheKind("classifiers", "noisy classifiers (classifier guidance)", "retrained by the next run that needs one",
              r"[^.].*\.pt"),
    CacheKind("autoencoders", "autoencoders of latent diffusion", "retrained by the next latent run that needs one",
              r"[^.].*\.pt"),
    CacheKind("segmenters", "fixed segmenters (synthesis faithfulness, utility)",
              "retrained by the next synthesis or utility run (minutes each)", r"[^.].*\.pt"),
)}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed while we looked
                pass
    return total


def human_size(n: int) -> str:
    """Bytes as B, KiB, MiB or GiB with one decimal (``0 B`` for nothing)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def cache_report(root: Path | None = None) -> dict[str, Any]:
    """What the cache holds: per kind its path, entries and bytes; other subfolders (never removed)."""
    root = cache_dir(create=False) if root is None else root
    kinds = []
    for kind in KINDS.values():
        folder = root / kind.name
        entries = kind.entries(folder)
        kinds.append({
            "kind": kind.name, "path": str(folder), "entries": len(entries),
            "bytes": sum(_size(p) for p in entries), "what": kind.what, "if_removed": kind.if_removed,
        })
    other = [] if not root.is_dir() else [
        {"name": p.name, "path": str(p), "bytes": _size(p)}
        for p in sorted(root.iterdir()) if p.name not in KINDS and not p.is_symlink()
    ]
    return {
        "root": str(root),
        "set_by": "CARDIOBENCH_CACHE_DIR" if os.environ.get("CARDIOBENCH_CACHE_DIR") else "platform default",
        "kinds": kinds,
        "other": other,
        "total_bytes": sum(k["bytes"] for k in kinds),
    }


@cache_app.command("info")
def info(as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Size, number of entries and path of each kind of cached file, and what removing it costs."""
    report = cache_report()
    if as_json:
        print_json(report)
        return
    out = console()
    out.print(f"cache folder: {report['root']} ({report['set_by']}), {human_size(report['total_bytes'])} in all",
              soft_wrap=True)
    table = Table(show_edge=False)
    for col, justify in (("kind", "left"), ("entries", "right"), ("size", "right"), ("holds", "left"),
                         ("if removed", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for k in report["kinds"]:
        table.add_row(k["kind"], str(k["entries"]), human_size(k["bytes"]), k["what"], k["if_removed"])
    out.print(table)
    for o in report["other"]:
        out.print(f"[dim]{o['path']}: {human_size(o['bytes'])}, not cardiobench's (never removed)[/]", soft_wrap=True)
    out.print("Remove with `cardiobench cache clear [KIND]`.")


@cache_app.command("clear")
def clear(
    kind: str = typer.Argument(None, metavar="[KIND]", help=f"One of {', '.join(KINDS)}; default: all of them."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove cached files of one kind, or of every kind (asks first unless --yes)."""
    if kind is not None and kind not in KINDS:
        raise CardiobenchError(f"unknown cache kind {kind!r}", f"use one of: {', '.join(KINDS)}, or none for all")
    root = cache_dir(create=False)
    chosen = [KINDS[kind]] if kind is not None else list(KINDS.values())
    entries = [p for k in chosen for p in k.entries(root / k.name)]
    names = kind if kind is not None else "all kinds"
    if not entries:
        typer.echo(f"Nothing to remove: no cached {names} in {root}.")
        return
    size = human_size(sum(_size(p) for p in entries))
    if not yes:
        try:
            ok = typer.confirm(f"Remove {len(entries)} cached entries ({size}, {names}) from {root}?", default=False)
        except typer.Abort:
            raise CardiobenchError("cache clear needs a yes to its question and read none",
                                   "pass --yes to clear without asking") from None
        if not ok:
            typer.echo("Nothing removed.")
            return
    for path in entries:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    typer.echo(f"Removed {len(entries)} cached entries ({size}, {names}) from {root}.")


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
