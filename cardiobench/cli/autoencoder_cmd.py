"""``cardiobench autoencoder``: train and describe the autoencoders of latent diffusion (docs/latent.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cardiobench.cli.options import command_group, config_option, preset_option, set_option
from cardiobench.cli.output import console, print_json
from cardiobench.cli.progress import terminal_progress
from cardiobench.hookspecs import hookimpl

autoencoder_app = command_group(
    "autoencoder", "Autoencoders for latent diffusion (cardiobench run --autoencoder NAME): train and describe.")

STATUS = {"trained": "trained now", "resumed": "continued an unfinished training", "reused": "reused the cached one"}


def _data(spec: dict[str, Any]) -> str:
    """The data an autoencoder was trained on, in words (``phantom 32x32``, ``acdc-h5 8x32x32 volumes``)."""
    from cardiobench.autoencoders.train import AutoencoderSpec

    try:
        return AutoencoderSpec.from_dict(spec).data
    except Exception:  # a foreign or damaged spec: what it says
        return f"{spec.get('dataset')} {spec.get('resolution')}x{spec.get('resolution')}"


def _print_report(report: dict[str, Any], status: str | None = None) -> None:
    out = console()
    spec = report.get("spec") or {}
    out.print(f"autoencoder [bold]{str(report.get('spec_hash'))[:16]}[/] ({spec.get('autoencoder')}, "
              f"{report.get('step')}/{report.get('total_steps')} steps) for {_data(spec)}")
    out.print(f"file: {report['path']}")
    if status:
        out.print(f"status: {STATUS.get(status, status)}")
    if report.get("latent_shape") is not None:
        shape = "x".join(str(s) for s in report["latent_shape"])
        out.print(f"latent: {shape} (channels x grid), scale factor {report['scale_factor']:.4f} (unit variance)")
    rec = report.get("reconstruction") or {}
    if rec:
        table = Table(title=f"reconstruction on the {rec.get('split')} split (n = {rec.get('n')})",
                      header_style="bold", title_justify="left")
        if "dice" in rec:  # label maps: Dice per structure
            table.add_column("structure")
            table.add_column("Dice", justify="right")
            for name, value in rec["dice"].items():
                table.add_row(name, f"{value:.3f}")
            table.add_row("[bold]mean[/]", f"[bold]{rec['dice_mean']:.3f}[/]")
            table.add_row("pixel accuracy", f"{rec['pixel_accuracy']:.3f}")
        else:  # images: L1 and PSNR of the grey levels on the [0, 1] scale
            table.add_column("score")
            table.add_column("value", justify="right")
            table.add_row("L1 (0..1)", f"{rec['l1']:.4f}")
            table.add_row("PSNR (dB, peak 1)", f"{rec['psnr']:.2f}")
        out.print(table)
    if report.get("seconds") is not None:
        out.print(f"trained in {report['seconds']:.1f} s on {report.get('device')}, {report.get('params')} parameters")


def _show(report: dict[str, Any], as_json: bool, status: str | None = None) -> None:
    if as_json:
        print_json(report)
    else:
        _print_report(report, status)


TRAIN_HELP = (
    "Train (or reuse, or continue) the autoencoder a latent run of the same options would use: same data set and "
    "resolution, the config's autoencoder.* keys (steps, batch_size, lr, seed, options).\n\n"
    "Cached by spec hash; an interrupted training continues where it stopped. Reports the reconstruction on the "
    "test split (a label-map autoencoder such as vae: Dice per structure; an image autoencoder such as image-vae: "
    "L1 and PSNR), the latent's shape and its scale factor."
)


@autoencoder_app.command("train", help=TRAIN_HELP)
def train(
    name: str = typer.Argument("vae", help="Autoencoder plugin (see `cardiobench plugins --kind autoencoder`)."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set plugin (default: the preset's, phantom)."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of a real data set (e.g. ACDC)."),
    resolution: int = typer.Option(None, "--resolution", help="Side of the slices (default: the preset's)."),
    preset: str = preset_option(),
    config_file: str = config_option(),
    sets: list[str] = set_option(),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps (default: autoencoder.steps, 2000)."),
    retrain: bool = typer.Option(False, "--retrain", help="Train even if the autoencoder is cached."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (no progress bar)."),
) -> None:
    """Train (or reuse) an autoencoder for latent diffusion."""
    from cardiobench.autoencoders import api

    result = api.train_autoencoder(name, preset=preset, config=config_file, sets=sets, dataset=dataset,
                                   data_root=data_root, resolution=resolution, steps=steps, retrain=retrain,
                                   device=device, progress=terminal_progress(enabled=not as_json))
    _show({"status": result.status, **api.autoencoder_info(result.path)}, as_json, result.status)


@autoencoder_app.command("info")
def info(
    path: Path = typer.Argument(..., help="An autoencoder checkpoint (.pt)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Describe an autoencoder checkpoint: spec, hash, latent shape and scale, reconstruction (Dice or L1/PSNR)."""
    from cardiobench.autoencoders import api

    _show(api.autoencoder_info(path), as_json)


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.add_typer(autoencoder_app, name="autoencoder")
