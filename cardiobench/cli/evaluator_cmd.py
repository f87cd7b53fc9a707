"""``cardiobench evaluator``: train a data set's domain evaluator (the FID/KID/IS ruler) and describe it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cardiobench.cli.options import command_group
from cardiobench.cli.output import console, print_json
from cardiobench.cli.progress import terminal_progress
from cardiobench.data.base import GROUPS
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl

evaluator_app = command_group(
    "evaluator", "The domain evaluator (pathology or SSL CNN) whose features measure FID/KID/IS/precision/recall.")


DATASET_HELP = "default phantom; with --data-root, the data set whose layout the folder holds (acdc, acdc-h5)."
ROOT_HELP = "Folder of a real data set (e.g. ACDC); alone, it selects the data set whose layout it holds."


OBJECTIVE_HELP = ("Training objective: pathology (supervised pathology-group CNN) or ssl (SimCLR contrastive "
                  "features + a linear probe); default: the data set's registered ruler (docs/metrics.md).")


def _options(data_root: Path | None) -> dict[str, Any]:
    return {"data_root": str(data_root)} if data_root is not None else {}


def _config(dataset: str, objective: str | None) -> Any:
    """The evaluator configuration for ``--objective`` (``None``: the data set's default, ``default_config``).
    Returns ``None`` when that is the data set's default, so that ``get_evaluator`` uses a shipped evaluator."""
    from cardiobench.metrics.evaluator import EvaluatorConfig, default_config

    if objective is None:
        return None
    cfg = EvaluatorConfig(objective=objective)
    return None if cfg == default_config(dataset) else cfg


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
    _print_validity(report)
    if report.get("command"):
        out.print(f"regenerate with: {report['command']}")


def _show(report: dict[str, Any], as_json: bool) -> None:
    """``--json``: the report as JSON on stdout; else in words and tables."""
    if as_json:
        print_json(report)
    else:
        _print_report(report)


def _print_validity(report: dict[str, Any]) -> None:
    """The validity record: the one ``ruler:`` line, then the FIDs behind it."""
    from cardiobench.metrics.validity import ruler_line, ruler_validity

    out = console()
    record = report.get("validity")
    out.print("ruler: " + ruler_line(report["evaluator_id"], ruler_validity(record)), highlight=False, soft_wrap=True)
    if not record or not record.get("ordering"):
        return
    table = Table(title=f"validity: FID of the {record.get('n_test')} test masks against {record.get('n')} masks of "
                        f"each set ({record.get('size')} px); must increase down the table", header_style="bold")
    for col in ("set", "FID", "details"):
        table.add_column(col)
    details = {
        "real": "training masks (real vs real)",
        "mismatched": "per group balance: " + ", ".join(f"{v:.3g}" for v in record.get("mismatched_per_balance", [])),
        "damaged": ", ".join(f"{k} {v:.3g}" for k, v in (record.get("damaged_per_transform") or {}).items()),
        "blobs": "random blob label fields",
    }
    for name, value in record["ordering"].items():
        table.add_row(name, f"{value:.4g}", details.get(name, ""))
    out.print(table)
    single = record.get("single_group") or {}
    if single:
        out.print("one group only (not judged): " + ", ".join(f"{k} {v:.3g}" for k, v in single.items()),
                  highlight=False)
    halves = record.get("real_halves")
    if halves:
        out.print(f"real vs real, random halves of the test split: median {halves['median']:.4g} (min "
                  f"{halves['min']:.4g}, max {halves['max']:.4g}; {halves['n_splits']} halvings of {halves['n_half']})",
                  highlight=False)
    out.print(f"accuracy {record.get('accuracy')} vs chance {record.get('chance')} ({record.get('chance_rule')}); "
              f"measured in {record.get('seconds')} s", highlight=False)


def _write_shipped(ev: Any, dataset: str) -> None:
    """Write ``ev`` as the package's shipped evaluator of ``dataset`` (weights + JSON report)."""
    from cardiobench.metrics.evaluator import ASSETS, SHIPPED, evaluator_report

    stem = SHIPPED[dataset]
    ev.save(ASSETS / f"{stem}.pt")
    report = evaluator_report(ev)
    report["path"] = f"cardiobench/assets/{stem}.pt"
    (ASSETS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")


@evaluator_app.command("train")
def train(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set whose training split it learns; "
                                + DATASET_HELP),
    data_root: Path = typer.Option(None, "--data-root", help=ROOT_HELP),
    ship: bool = typer.Option(
        False, "--ship", help="Write it to cardiobench/assets (the evaluator shipped with the package)."
    ),
    objective: str = typer.Option(None, "--objective", help=OBJECTIVE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Train the evaluator deterministically (CPU, seeded; about a minute on the phantom) and cache it."""
    from cardiobench.engine.pipeline import select_dataset
    from cardiobench.metrics.evaluator import (
        REGENERATE,
        SHIPPED,
        build_evaluator,
        cache_path,
        data_fingerprint,
        default_config,
        evaluator_report,
        load_splits,
    )

    dataset = select_dataset(dataset, data_root)
    cfg = _config(dataset, objective) or default_config(dataset)
    if ship and cfg != default_config(dataset):
        raise CardiobenchError(f"--ship writes {dataset}'s default evaluator ({default_config(dataset).objective} "
                               f"objective); drop --objective {objective}")
    if ship and dataset not in SHIPPED:
        raise CardiobenchError(f"only these data sets ship an evaluator: {', '.join(SHIPPED)}")
    if ship and data_root is not None:
        raise CardiobenchError("--ship writes the package's evaluator; it takes the data set's default options only")
    splits = load_splits(dataset, cfg.size, _options(data_root))
    ev = build_evaluator(dataset, splits, cfg, progress=terminal_progress())
    ev.meta["command"] = (
        REGENERATE.format(dataset=dataset)
        if ship
        else "cardiobench evaluator train "
        + " ".join(
            shlex.quote(a) for a in (["--dataset", dataset] + (["--data-root", str(data_root)] if data_root else [])
                                     + (["--objective", objective] if objective else []))
        )
    )
    cached = cache_path(dataset, data_fingerprint(splits["train"].masks, splits["train"].groups), cfg)
    ev.save(cached)
    if ship:
        _write_shipped(ev, dataset)
    _show(evaluator_report(ev), as_json)


@evaluator_app.command("info")
def info(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set; " + DATASET_HELP),
    data_root: Path = typer.Option(None, "--data-root", help=ROOT_HELP),
    objective: str = typer.Option(None, "--objective", help=OBJECTIVE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The evaluator in use for a data set: id, sha256, accuracy per split, where it is stored."""
    from cardiobench.engine.pipeline import select_dataset
    from cardiobench.metrics.evaluator import evaluator_report, get_evaluator

    dataset = select_dataset(dataset, data_root)
    ev = get_evaluator(dataset, _options(data_root), config=_config(dataset, objective), train=False)
    _show(evaluator_report(ev), as_json)


@evaluator_app.command("validate")
def validate(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set; " + DATASET_HELP),
    data_root: Path = typer.Option(None, "--data-root", help=ROOT_HELP),
    ship: bool = typer.Option(False, "--ship", help="Store the record in the package's shipped evaluator."),
    objective: str = typer.Option(None, "--objective", help=OBJECTIVE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Measure the validity record of a data set's evaluator again and store it in its file (its id is unchanged).

    Evaluators are measured when they are trained, and older cached files when they are first loaded; this
    re-measures one (e.g. after the definition of the record changed). With --ship the shipped file and its
    JSON are rewritten, keeping the published evaluator id.
    """
    from cardiobench.engine.pipeline import select_dataset
    from cardiobench.metrics.evaluator import (
        SHIPPED,
        add_validity,
        evaluator_report,
        get_evaluator,
        load_evaluator_file,
        load_splits,
        shipped_paths,
    )
    from cardiobench.paths import cache_dir

    dataset = select_dataset(dataset, data_root)
    if ship and dataset not in SHIPPED:
        raise CardiobenchError(f"only these data sets ship an evaluator: {', '.join(SHIPPED)}")
    if ship and (data_root is not None or _config(dataset, objective) is not None):
        raise CardiobenchError("--ship writes the package's evaluator; it takes the data set's default options only")
    progress = terminal_progress()
    if ship:
        ev = load_evaluator_file(shipped_paths(dataset)[0])
    else:
        ev = get_evaluator(dataset, _options(data_root), config=_config(dataset, objective), train=False,
                           progress=progress)
    add_validity(ev, load_splits(dataset, ev.config.size, _options(data_root)), progress=progress)
    if ship:
        _write_shipped(ev, dataset)
    elif ev.path is not None and ev.path.resolve().is_relative_to(cache_dir().resolve()):
        ev.save(ev.path)
    else:
        progress.log(f"[yellow]Note:[/] {ev.path} is the shipped file; the record was not stored (use --ship)")
    _show(evaluator_report(ev), as_json)


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.add_typer(evaluator_app, name="evaluator")
