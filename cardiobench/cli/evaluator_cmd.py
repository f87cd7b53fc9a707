"""``cardiobench evaluator``: train a data set's domain evaluator (the FID/KID/IS ruler) and describe it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cardiobench.cli.output import console, print_json
from cardiobench.data.base import GROUPS
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl

evaluator_app = typer.Typer(
    name="evaluator",
    help="The domain evaluator (pathology CNN) whose features measure FID/KID/IS/precision/recall.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


ROOT_HELP = "Folder of a real data set (e.g. ACDC); alone, it selects acdc."


def _options(data_root: Path | None) -> dict[str, Any]:
    return {"data_root": str(data_root)} if data_root is not None else {}


def _print_report(report: dict[str, Any]) -> None:
    out = console()
    out.print(f"evaluator [bold]{report['evaluator_id']}[/] ({report.get('dataset')}), sha256 {report['sha256']}")
    if report.get("path"):
        out.print(f"file: {report['path']}")
    acc = report.get("accuracy") or {}
    if acc:
        table = Table(title="pathology-group accuracy", header_style="bold")
        for col in ("split", "accuracy", "n"):
            table.add_column(col)
        for split, value in acc.items():
            cm = (report.get("confusion") or {}).get(split)
            n = sum(map(sum, cm)) if cm else ""
            table.add_row(split, f"{value:.3f}", str(n))
        out.print(table)
    cm = (report.get("confusion") or {}).get("test")
    if cm:
        table = Table(title="test confusion (rows: true group, columns: predicted)", header_style="bold")
        table.add_column("")
        for g in GROUPS:
            table.add_column(g, justify="right")
        for g, row in zip(GROUPS, cm, strict=False):
            table.add_row(g, *[str(v) for v in row])
        out.print(table)
    if report.get("command"):
        out.print(f"regenerate with: {report['command']}")


@evaluator_app.command("train")
def train(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set whose training split it learns (default "
                                "phantom; acdc when --data-root is given)."),
    data_root: Path = typer.Option(None, "--data-root", help=ROOT_HELP),
    ship: bool = typer.Option(
        False, "--ship", help="Write it to cardiobench/assets (the evaluator shipped with the package)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Train the evaluator deterministically (CPU, seeded; about a minute on the phantom) and cache it."""
    from cardiobench.engine.pipeline import select_dataset
    from cardiobench.metrics.evaluator import (
        ASSETS,
        REGENERATE,
        SHIPPED,
        EvaluatorConfig,
        build_evaluator,
        cache_path,
        data_fingerprint,
        evaluator_report,
        load_splits,
    )

    dataset = select_dataset(dataset, data_root)
    if ship and dataset not in SHIPPED:
        raise CardiobenchError(f"only these data sets ship an evaluator: {', '.join(SHIPPED)}")
    if ship and data_root is not None:
        raise CardiobenchError("--ship writes the package's evaluator; it takes the data set's default options only")
    err = console(stderr=True)
    cfg = EvaluatorConfig()
    splits = load_splits(dataset, cfg.size, _options(data_root))
    ev = build_evaluator(dataset, splits, cfg, log=lambda msg: err.print(msg, highlight=False))
    ev.meta["command"] = (
        REGENERATE.format(dataset=dataset)
        if ship
        else "cardiobench evaluator train "
        + " ".join(
            shlex.quote(a) for a in (["--dataset", dataset] + (["--data-root", str(data_root)] if data_root else []))
        )
    )
    cached = cache_path(dataset, data_fingerprint(splits["train"].masks, splits["train"].groups), cfg)
    ev.save(cached)
    if ship:
        stem = SHIPPED[dataset]
        ev.save(ASSETS / f"{stem}.pt")
        report = evaluator_report(ev)
        report["path"] = f"cardiobench/assets/{stem}.pt"
        (ASSETS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    report = evaluator_report(ev)
    if as_json:
        print_json(report)
    else:
        _print_report(report)


@evaluator_app.command("info")
def info(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set (default phantom; acdc when --data-root is "
                                "given)."),
    data_root: Path = typer.Option(None, "--data-root", help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The evaluator in use for a data set: id, sha256, accuracy per split, where it is stored."""
    from cardiobench.engine.pipeline import select_dataset
    from cardiobench.metrics.evaluator import evaluator_report, get_evaluator

    dataset = select_dataset(dataset, data_root)
    ev = get_evaluator(dataset, _options(data_root), train=False)
    report = evaluator_report(ev)
    if as_json:
        print_json(report)
    else:
        _print_report(report)


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.add_typer(evaluator_app, name="evaluator")
