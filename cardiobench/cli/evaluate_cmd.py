"""``cardiobench evaluate``: score a folder (or file) of generated label maps against a data set.

Prints every metric beside the real-vs-real reference (what a perfect generator would score) and the
ruler that measured them (the evaluator id). ``--json`` prints the whole result for scripts.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import typer
from rich.table import Table

from cardiobench.cli.output import console, print_json
from cardiobench.hookspecs import hookimpl

ARROW = {"lower": "↓", "higher": "↑"}


def _row_values(*values) -> list[str]:
    """A metric's value and its reference with one formatting rule (the same decimals); NaN is n/a."""
    from cardiobench.results.report import column_formatter

    fmt = column_formatter(v for v in values if not (isinstance(v, float) and math.isnan(v)))
    return ["-" if v is None else "n/a" if isinstance(v, float) and math.isnan(v)
            else fmt(v) if isinstance(v, (int, float)) else str(v) for v in values]


def evaluate(
    samples: Path = typer.Option(..., "--samples", "-s", help="File or folder of label maps (.npz, .npy, PNG, NIfTI)."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set the samples imitate (default phantom; "
                                "with --data-root, the one whose files the folder holds: acdc or acdc-h5)."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of a real data set (e.g. ACDC); alone, it "
                                   "selects the data set whose layout it holds."),
    dataset_opt: list[str] = typer.Option(None, "--dataset-opt", help="Data set option KEY=VALUE (repeatable), as "
                                          "the run was made with, e.g. split=ssl4mis (docs/data.md)."),
    feature_extractor: str = typer.Option(
        "domain", "--feature-extractor", help="Ruler for FID/KID/IS/PR: domain or inception."
    ),
    inception_weights: Path = typer.Option(
        None, "--inception-weights", help="torch-fidelity Inception weights file (for --feature-extractor inception)."
    ),
    metrics: str = typer.Option(
        None, "--metrics", help="Comma-separated metric plugins (default: all for generation)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    no_reference: bool = typer.Option(False, "--no-reference", help="Skip the real-vs-real reference."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    strict_ruler: bool = typer.Option(False, "--strict-ruler", help="Refuse (exit 2, before reading the samples) "
                                      "when the FID ruler's validity record is flagged (docs/metrics.md)."),
) -> None:
    """Evaluate generated masks: FID/KID/IS/precision/recall, anatomy, memorisation, diversity."""
    from cardiobench.engine.pipeline import select_dataset
    from cardiobench.errors import CardiobenchError
    from cardiobench.metrics import evaluate_generation
    from cardiobench.metrics.fidelity import FEATURE_EXTRACTORS, FidelityWarning, read_inception_weights
    from cardiobench.metrics.io import read_masks
    from cardiobench.metrics.validity import ruler_line

    if feature_extractor not in FEATURE_EXTRACTORS:
        raise CardiobenchError(
            f"unknown feature extractor {feature_extractor!r}", f"use one of: {', '.join(FEATURE_EXTRACTORS)}"
        )
    if feature_extractor == "inception":
        read_inception_weights(inception_weights)  # fail before any work (weights-only, checked)
    dataset = select_dataset(dataset, data_root)  # before reading anything
    from cardiobench.cli.data_cmd import parse_dataset_options

    data_options = parse_dataset_options(dataset_opt) | ({"data_root": str(data_root)} if data_root is not None else {})
    err = console(stderr=True)
    chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    if strict_ruler and _uses_ruler(chosen):
        _check_ruler(dataset, data_options, feature_extractor, log=lambda msg: err.print(msg, highlight=False))
    masks, _ = read_masks(samples)
    if masks.ndim == 4:  # volumes: the data set's volumes of that depth (--dataset-opt depth=D may say it too)
        if data_options.get("depth", masks.shape[1]) != masks.shape[1]:
            raise CardiobenchError(f"{samples}: volumes of {masks.shape[1]} slices, but --dataset-opt depth="
                                   f"{data_options['depth']}", f"use --dataset-opt depth={masks.shape[1]}")
        data_options["depth"] = int(masks.shape[1])
    with warnings.catch_warnings():
        # set-size adaptations are reported in meta["notes"], printed below; other warnings (bad voxels, a ruler
        # that is not the published one) still reach the user
        warnings.simplefilter("ignore", FidelityWarning)
        result = evaluate_generation(
            masks,
            dataset,
            data_options=data_options or None,
            metrics=chosen,
            device=device,
            feature_extractor=feature_extractor,
            inception_weights=inception_weights,
            reference=not no_reference,
            log=lambda msg: err.print(msg, highlight=False),
        )
    if as_json:
        print_json(result)
        return
    meta = result["meta"]
    out = console()
    title = (
        f"{len(masks)} {'volumes' if masks.ndim == 4 else 'samples'} from {samples} vs {dataset} test split "
        f"({meta['n_real']} {'volumes' if masks.ndim == 4 else 'masks'}, {'x'.join(map(str, masks.shape[1:]))}, "
        f"distances in {meta.get('distance_unit', 'mm')})"
    )
    table = Table(title=title, header_style="bold")
    table.add_column("metric")
    table.add_column("samples", justify="right")
    if result.get("reference"):
        table.add_column("real vs real", justify="right")
    for name, value in result["metrics"].items():
        values = [value, result["reference"].get(name)] if result.get("reference") else [value]
        table.add_row(f"{name} {ARROW.get(result['directions'].get(name, ''), '')}".strip(), *_row_values(*values))
    out.print(table)
    acc = meta.get("evaluator_accuracy")
    if meta.get("ruler_validity") is not None and meta["feature_extractor"] == "domain":
        out.print("ruler: " + ruler_line(meta["evaluator_id"], meta["ruler_validity"]), highlight=False,
                  soft_wrap=True)
        out.print(f"features: domain; KID subset {meta.get('kid_subset_size')}; reference uses "
                  f"{meta['n_reference']} training masks", highlight=False)
    elif meta.get("evaluator_id"):
        out.print(
            f"ruler: {meta['feature_extractor']} features, evaluator [bold]{meta['evaluator_id']}[/]"
            + (f" (test accuracy {acc:.3f})" if isinstance(acc, float) else "")
            + f"; KID subset {meta.get('kid_subset_size')}; reference uses {meta['n_reference']} training masks",
            highlight=False,
        )
    halves = meta.get("fid_real_halves")
    if halves:
        out.print(f"relative FID: fid / {halves['median']:.4g}, the median real-vs-real FID of {halves['n_splits']} "
                  f"random halves of the test split ({halves['n_half']} masks each; min {halves['min']:.4g}, max "
                  f"{halves['max']:.4g})", highlight=False)
    for note in meta.get("notes", []):
        err.print(f"[yellow]Note:[/] {note}", highlight=False)


def _uses_ruler(chosen: list[str] | None) -> bool:
    """Whether the metrics an evaluation computes (``None``: the defaults) read the domain evaluator's features
    (registration metadata ``uses_evaluator``)."""
    from cardiobench.metrics.api import metric_components

    return any(comp.metadata.get("uses_evaluator") for _, comp in metric_components("generation", chosen))


def _check_ruler(dataset: str, data_options: dict, feature_extractor: str, *, log) -> None:
    """``--strict-ruler``: the domain evaluator's validity record, checked before any samples are read."""
    from cardiobench.errors import CardiobenchError
    from cardiobench.metrics.evaluator import get_evaluator
    from cardiobench.metrics.validity import check_strict, ruler_validity

    if feature_extractor != "domain":
        raise CardiobenchError(f"--strict-ruler checks the domain evaluator's validity record; the {feature_extractor}"
                               " ruler has none", "drop --strict-ruler, or use --feature-extractor domain")
    ev = get_evaluator(dataset, data_options or None, log=log)
    check_strict(ev.id, ruler_validity(ev.validity))


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate)
