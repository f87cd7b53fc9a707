"""``cardiobench results merge``: merge the results stores of many jobs (one per node or Slurm task) into one."""

from __future__ import annotations

from pathlib import Path

import typer

from cardiobench.cli.options import command_group, results_option
from cardiobench.cli.output import console, print_json
from cardiobench.hookspecs import hookimpl
from cardiobench.results.store import ResultStore, merge_stores

results_app = command_group("results", "Results stores: merge the stores of many jobs into one.")


@results_app.command("merge")
def merge(
    stores: list[Path] = typer.Argument(..., metavar="STORE...", help="Results stores to merge (results.db files, "
                                        "or folders holding one)."),
    results: str = results_option(),
    as_json: bool = typer.Option(False, "--json", help="Print what was merged as JSON on stdout."),
) -> None:
    """Copy every run of STORE... into the results store (--results); idempotent.

    A run already there is not added again; the same run found as a different row (another node's copy, a
    rerun) is reported and kept once. SQLite over a network file system is not safe, so each job writes its own
    store and this merges them (`compare --executor` does it at the end).
    """
    target = ResultStore(results)
    report = merge_stores(target, [ResultStore(s) for s in stores])
    if as_json:
        print_json({"target": str(target.path), **report.to_dict()})
        return
    term = console()
    term.print(f"merged {len(stores)} store(s) into {target.path}: {report.added} run(s) added, "
               f"{report.already} already there, {len(report.conflicts)} conflict(s)", soft_wrap=True)
    for c in report.conflicts:
        what = "same metrics" if c.same_metrics else "different metrics"
        term.print(f"  conflict: {c.label} (run {c.spec_hash[:12]}) in {c.source} is already run {c.kept} "
                   f"({what}); kept once", soft_wrap=True)
    for store, row in report.skipped:
        term.print(f"  skipped unreadable row {row.id} of {store}: {row.reason}", soft_wrap=True)


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.add_typer(results_app, name="results")
