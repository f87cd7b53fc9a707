"""``cardiobench classifier``: train and describe the noisy classifiers of classifier guidance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cardiobench.cli.options import command_group, config_option, preset_option, set_option
from cardiobench.cli.output import console, print_json
from cardiobench.cli.progress import terminal_progress
from cardiobench.hookspecs import hookimpl

classifier_app = command_group(
    "classifier", "Noisy classifiers p(group | x_t, t) for classifier guidance (--conditioning classifier-guidance).")

STATUS = {
    "trained": "trained now",
    "reused": "reused the cached classifier",
    "reused-shipped": "copied the classifier shipped with cardiobench into the cache",
}


def _print_report(report: dict[str, Any], status: str | None = None) -> None:
    out = console()
    spec = report.get("spec") or {}
    out.print(f"classifier [bold]{str(report.get('spec_hash'))[:16]}[/] ({spec.get('size')}, {spec.get('steps')} "
              f"steps) for {spec.get('dataset')} {spec.get('resolution')}px, noise {spec.get('noise')} "
              f"{spec.get('noise_options')}")
    out.print(f"file: {report['path']}")
    if status:
        out.print(f"status: {STATUS.get(status, status)}")
    acc = report.get("accuracy") or {}
    if acc:
        out.print(f"test-split accuracy by timestep (n = {acc.get('n')}, chance {acc.get('chance')}):")
        table = Table(header_style="bold")
        for col in ("t", "accuracy", "cross-entropy"):
            table.add_column(col, justify="right" if col != "t" else "left")
        for name, b in (acc.get("buckets") or {}).items():
            table.add_row(name, f"{b['accuracy']:.3f}", f"{b['loss']:.3f}")
        table.add_row("[bold]uniform t[/]", f"[bold]{acc['overall']:.3f}[/]", f"{acc['loss']:.3f}")
        out.print(table)
    if report.get("seconds") is not None:
        out.print(f"trained in {report['seconds']:.1f} s on {report.get('device')}, {report.get('params')} parameters")


def _show(report: dict[str, Any], as_json: bool, status: str | None = None) -> None:
    """``--json``: the report as JSON on stdout; else in words and a table."""
    if as_json:
        print_json(report)
    else:
        _print_report(report, status)


TRAIN_HELP = (
    "Train (or reuse) the classifier for the models of a preset: same data, same forward noise process.\n\n"
    "It depends on the forward process only (not on the prediction type or the U-Net): one classifier serves "
    "every model of the preset's data and noise process. --size and --steps default to the config's "
    "conditioning.options (classifier_size, classifier_steps) when its method is classifier-guidance, else to "
    "small and 1500."
)


@classifier_app.command("train", help=TRAIN_HELP)
def train(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set plugin (default: the preset's, phantom)."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of a real data set (e.g. ACDC)."),
    resolution: int = typer.Option(None, "--resolution", help="Side of the slices (default: the preset's, 32)."),
    noise: str = typer.Option(None, "--noise", help="Noise process of the model to guide (default: the preset's, "
                              "gaussian)."),
    preset: str = preset_option(),
    config_file: str = config_option(),
    sets: list[str] = set_option(),
    steps: int = typer.Option(None, "--steps", help="Classifier optimizer steps (default 1500)."),
    size: str = typer.Option(None, "--size", help="Classifier size: tiny or small (default small)."),
    retrain: bool = typer.Option(False, "--retrain", help="Train even if the classifier is cached or shipped."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (no progress bar)."),
) -> None:
    """Train (or reuse) the classifier for the models of a preset: same data, same forward noise process."""
    from cardiobench.conditioning.classifier import classifier_report, classifier_spec_for, prepare_classifier
    from cardiobench.config import resolve_config
    from cardiobench.engine.pipeline import select_dataset, train_spec_from_config
    from cardiobench.plugins import get_component

    overrides = {"data.dataset": dataset, "data.resolution": resolution, "diffusion.noise": noise,
                 "data.data_root": str(data_root) if data_root is not None else None}
    cfg = resolve_config(preset, config_file, {k: v for k, v in overrides.items() if v is not None}, sets or ())
    root = cfg["data"].get("data_root")
    select_dataset(cfg["data"]["dataset"], root, flag="--data-root" if data_root is not None else "data.data_root")
    cond = cfg.get("conditioning") or {}
    method = get_component("conditioning", cond["method"]) if cond.get("method") else None
    steers = method is not None and method.metadata.get("auxiliary") == "classifier"
    opts = (cond.get("options") or {}) if steers else {}  # the options of a method that steers with this classifier
    size = size if size is not None else opts.get("classifier_size")
    steps = steps if steps is not None else opts.get("classifier_steps")
    spec = classifier_spec_for(train_spec_from_config(cfg), size=size, steps=steps)
    result = prepare_classifier(spec, device=device, data_root=root, retrain=retrain,
                                progress=terminal_progress(enabled=not as_json))
    _show({"status": result.status, **classifier_report(result.path)}, as_json, result.status)


@classifier_app.command("info")
def info(
    path: Path = typer.Argument(..., help="A classifier checkpoint (.pt)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Describe a classifier checkpoint: its spec, hash and test accuracy per timestep range."""
    from cardiobench.conditioning.classifier import classifier_report

    _show(classifier_report(path), as_json)


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.add_typer(classifier_app, name="classifier")
