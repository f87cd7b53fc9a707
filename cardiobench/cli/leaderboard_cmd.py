"""``cardiobench leaderboard``: rank stored runs, per evaluator, sample count and distance unit, and export them."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from cardiobench.cli.options import results_option
from cardiobench.cli.output import console
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl
from cardiobench.paths import atomic_write_bytes
from cardiobench.results import report
from cardiobench.results.store import TASKS, ResultStore, SkippedRow

EMPTY_HINT = (
    "Create results with `cardiobench run --noise gaussian --sampler ddpm` (one run), "
    "`cardiobench compare --noise gaussian,blurring --sampler ddpm,ddim` (a matrix) or `cardiobench bench` "
    "(throughput)."
)


def _choose_format(fmt: str | None, out: Path | None) -> str:
    if fmt is None:
        if out is not None and out.suffix.lower() in report.EXTENSIONS:
            return report.EXTENSIONS[out.suffix.lower()]
        return "table"
    fmt = fmt.lower()
    if fmt == "markdown":
        fmt = "md"
    if fmt not in report.FORMATS:
        raise CardiobenchError(f"unknown format {fmt!r}", f"use one of: {', '.join(report.FORMATS)}")
    return fmt


def _skipped_line(store: ResultStore, skipped: list[SkippedRow]) -> str:
    """One warning line naming every row left out, and why."""
    rows = "; ".join(f"run {s.id if s.id is not None else '?'} ({' '.join(s.reason.split())})" for s in skipped)
    n = len(skipped)
    return f"Warning: skipped {n} unreadable row{'s' if n != 1 else ''} of {store.path}: {rows}"


def leaderboard(
    task: str = typer.Option(None, "--task", help=f"Only this task: {', '.join(TASKS)}."),
    dataset: str = typer.Option(None, "--dataset", help="Only runs on this data set."),
    sort: str = typer.Option(
        None, "--sort", metavar="METRIC",
        help="Metric to rank by (default: the one the task's metric plugins name, e.g. fid or dice_mean).",
    ),
    fmt: str = typer.Option(
        None, "--format", "-f", metavar="FORMAT",
        help="table, md, csv, json or html (default: from --out's extension, else table).",
    ),
    out: Path = typer.Option(None, "--out", "-o", metavar="FILE", help="Write to FILE instead of the terminal."),
    show_all: bool = typer.Option(False, "--all", help="Every stored run, not only the latest per spec."),
    all_metrics: bool = typer.Option(
        False, "--all-metrics",
        help="Show every metric column: the table shows the headline ones (e.g. FID, KID, IS), md and html leave "
             "out detail columns (per-criterion anatomy counts, spreads); csv and json always have them all.",
    ),
    columns: str = typer.Option(
        None, "--columns", metavar="NAMES",
        help="Comma-separated columns to show, in this order: metric names (fid,kid,...) and identity columns "
             "(noise,sampler,steps,...); an unknown name is an error listing the valid ones.",
    ),
    results: str = results_option(),
) -> None:
    """Rank stored runs, best first; runs measured with different evaluators, on different numbers of samples or
    in different distance units (mm, px) are never ranked together."""
    if task is not None and task not in TASKS:
        raise CardiobenchError(f"unknown task {task!r}", f"use one of: {', '.join(TASKS)}")
    fmt = _choose_format(fmt, out)
    store = ResultStore(results)
    term = console(stderr=fmt != "table" and out is None)
    total = store.count()
    if total == 0:
        term.print(f"No results yet in {store.path}. {EMPTY_HINT}", soft_wrap=True)
        return
    skipped: list[SkippedRow] = []
    runs = store.runs(task=task, dataset=dataset, status="ok", skipped=skipped)
    if skipped:  # a hand-edited or corrupt row costs that row, not the board
        typer.echo(_skipped_line(store, skipped), err=True)
    if not runs:
        filters = " ".join(f"--{k} {v}" for k, v in (("task", task), ("dataset", dataset)) if v)
        what = f"match {filters}" if filters else "finished successfully"
        term.print(f"No runs {what} in {store.path} ({total} stored). {EMPTY_HINT}", soft_wrap=True)
        return
    wanted = None if columns is None else columns.split(",")
    boards = report.build_boards(
        runs, sort=sort, latest_only=not show_all, known_directions=report.registry_directions(),
        details=all_metrics or fmt in ("csv", "json"), headline_only=fmt == "table" and not all_metrics,
        columns=wanted, results_dir=store.path.parent,
    )
    if fmt == "table" and out is None:
        if term.is_terminal:  # fit the terminal: identity columns fold or merge, headline metrics stay whole
            tables = report.rich_tables(boards, width=term.width)
        else:  # piped or captured: no terminal width to respect, so don't fold
            tables = report.rich_tables(boards)
            term.width = max(term.width, report.natural_width(tables, term))
        for table in tables:
            term.print(table)
            term.print()
        return
    text = report.render(boards, fmt, base_dirs=[store.path.parent, Path.cwd()], source=str(store.path),
                         results_dir=store.path.parent)
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    try:
        atomic_write_bytes(out, text.encode("utf-8"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(out, 0o666 & ~umask)  # an export is for sharing: usual file permissions, not the temp file's 0600
    except OSError as exc:
        raise CardiobenchError(f"cannot write {out}: {exc.strerror or exc}") from None
    rows = sum(len(b.rows) for b in boards)
    console(stderr=True).print(f"Wrote {out} ({fmt}, {rows} run{'s' if rows != 1 else ''}, {len(boards)} board"
                               f"{'s' if len(boards) != 1 else ''}).", soft_wrap=True)


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.command(name="leaderboard")(leaderboard)
