"""``cardiobench train``: train a denoiser on a data set with a noise process; resumable checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cardiobench.cli.output import console, print_json
from cardiobench.config import check_option, parse_set
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl
from cardiobench.specs import LOSSES, TrainSpec

#: training length when neither --steps nor --epochs is given
DEFAULT_STEPS = 2000


def parse_options(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["key=value", ...]`` (values parsed as TOML: numbers, true/false, [lists]; bare words are strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CardiobenchError(f"{flag} {item!r} is not KEY=VALUE", f"e.g. {flag} num_timesteps=500")
        key, value = parse_set(item)
        out[key] = value
    return out


def summary_table(rows: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def train(
    dataset: str = typer.Option(None, "--dataset", help="Data set plugin (default phantom; with --data-root, "
                                "the one whose layout the folder holds). See `cardiobench plugins`."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of a real data set (e.g. ACDC); alone, it "
                                   "selects the data set whose layout it holds."),
    data_seed: int = typer.Option(0, "--data-seed", help="Seed of the data set (phantom generation, splits)."),
    dataset_opt: list[str] = typer.Option(None, "--dataset-opt", help="Other data set option KEY=VALUE, e.g. "
                                          "train_patients=4 (phantom)."),
    resolution: int = typer.Option(32, "--resolution", help="Side of the square slices, in pixels."),
    noise: str = typer.Option("gaussian", "--noise", help="Noise process plugin: gaussian, blurring, ..."),
    timesteps: int = typer.Option(None, "--timesteps", help="T, the number of diffusion steps (process default)."),
    schedule: str = typer.Option(None, "--schedule", help="Beta schedule of the gaussian process: cosine, linear."),
    prediction: str = typer.Option(None, "--prediction", help="What the network predicts: epsilon, v, x0."),
    noise_opt: list[str] = typer.Option(None, "--noise-opt", help="Other noise-process option KEY=VALUE."),
    backbone: str = typer.Option("unet", "--backbone", help="Backbone plugin."),
    size: str = typer.Option("small", "--size", help="Named backbone size (unet: tiny, small, base)."),
    backbone_opt: list[str] = typer.Option(None, "--backbone-opt", help="Backbone option KEY=VALUE, e.g. "
                                           "base_channels=48."),
    conditioning: str = typer.Option(None, "--conditioning", help="Conditioning method that trains the network: "
                                     "classifier-free, controlnet, concat (docs/conditioning.md)."),
    conditioning_opt: list[str] = typer.Option(None, "--conditioning-opt", help="Conditioning option KEY=VALUE, "
                                               "e.g. p_uncond=0.2."),
    steps: int = typer.Option(None, "--steps", help=f"Optimizer steps (default {DEFAULT_STEPS} if no --epochs)."),
    epochs: int = typer.Option(None, "--epochs", help="Passes over the training split (instead of --steps)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Slices per optimizer step."),
    lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate."),
    warmup_steps: int = typer.Option(0, "--warmup-steps", help="Linear learning-rate warm-up steps."),
    loss: str = typer.Option("smooth_l1", "--loss", help=f"Loss: {', '.join(LOSSES)}."),
    ema_decay: float = typer.Option(0.999, "--ema-decay", help="EMA decay of the weights (0 = off)."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Gradient-norm clip (0 = off)."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, batch order, timesteps and noise."),
    bf16: bool = typer.Option(False, "--bf16", help="Train under bf16 autocast."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for checkpoint.pt and loss_curve.png "
                             "(default: the checkpoint cache, keyed by the spec hash)."),
    resume: Path = typer.Option(None, "--resume", help="Continue this checkpoint (file or folder) of the same "
                                "model, e.g. with more --steps."),
    retrain: bool = typer.Option(False, "--retrain", help="Ignore existing and cached checkpoints."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Checkpoint every N steps "
                                         "(default: at least once a minute, and at the end)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (no progress bar)."),
) -> None:
    """Train a denoiser; re-running the same command continues an interrupted training or reuses a finished one."""
    from cardiobench.engine.pipeline import noise_process, select_dataset

    checked = {  # before any work, with the config's bounds: flag -> (config key, value)
        "--resolution": ("data.resolution", resolution), "--data-seed": ("data.seed", data_seed),
        "--seed": ("train.seed", seed), "--steps": ("train.steps", steps), "--epochs": ("train.epochs", epochs),
        "--batch-size": ("train.batch_size", batch_size), "--lr": ("train.lr", lr),
        "--warmup-steps": ("train.warmup_steps", warmup_steps), "--ema-decay": ("train.ema_decay", ema_decay),
        "--grad-clip": ("train.grad_clip", grad_clip), "--timesteps": ("diffusion.num_timesteps", timesteps),
    }
    for flag, (dotted, value) in checked.items():
        check_option(flag, dotted, value)
    dataset = select_dataset(dataset, data_root)
    noise_options = parse_options(noise_opt, "--noise-opt")
    for key, value in (("num_timesteps", timesteps), ("beta_schedule", schedule), ("prediction_type", prediction)):
        if value is not None:
            noise_options[key] = value
    backbone_options = {"size": size, **parse_options(backbone_opt, "--backbone-opt")}
    if steps is None and epochs is None:
        steps = DEFAULT_STEPS
    spec = TrainSpec(
        dataset=dataset, resolution=resolution, data_seed=data_seed,
        dataset_options=parse_options(dataset_opt, "--dataset-opt"), noise=noise, noise_options=noise_options,
        backbone=backbone, backbone_options=backbone_options, steps=steps, epochs=epochs, batch_size=batch_size,
        lr=lr, warmup_steps=warmup_steps, loss=loss, ema_decay=ema_decay, grad_clip=grad_clip, seed=seed,
        precision="bf16" if bf16 else "fp32", conditioning=conditioning or None,
        conditioning_options=parse_options(conditioning_opt, "--conditioning-opt"),
    )
    if conditioning:
        from cardiobench.plugins import get_component

        if not get_component("conditioning", conditioning).metadata.get("trains_network", True):
            raise CardiobenchError(f"{conditioning} does not train the diffusion network",
                                   "train the unconditional model (no --conditioning); see docs/conditioning.md")
    noise_process(spec)  # a --noise-opt the process does not take: one line naming it, before any work
    from cardiobench.paths import cache_dir, check_writable_dir

    check_writable_dir(out if out is not None else cache_dir(), "--out folder" if out is not None else
                       "cache folder (CARDIOBENCH_CACHE_DIR)")
    from cardiobench.engine.train import train as run_training

    result = run_training(
        spec, out, resume=resume, retrain=retrain, device=device,
        data_root=str(data_root) if data_root else None, checkpoint_every=checkpoint_every,
        quiet=as_json, console=console(stderr=True),
    )
    if as_json:
        print_json(result.to_dict())
        return
    words = {"trained": "trained", "resumed": "resumed and trained", "reused": "reused an existing checkpoint"}
    rows = {
        "status": words.get(result.status, result.status),
        "checkpoint": result.checkpoint,
        "spec hash": result.spec_hash[:16],
        "steps": f"{result.step} / {result.total_steps} ({result.steps_run} now)",
        "time": f"{result.seconds:.1f} s" if result.steps_run else "-",
        "images/s": f"{result.images_per_s:.1f}" if result.images_per_s else "-",
        "loss (last 50 steps)": f"{result.final_loss:.5f}" if result.final_loss is not None else "-",
        "loss curve": result.loss_curve or "-",
        "model": f"{spec.backbone} {size}, {result.params / 1e6:.2f} M parameters on {result.device}",
        "next": f"cardiobench sample --checkpoint {result.checkpoint} --out samples",
    }
    console().print(summary_table(rows, "cardiobench train"))


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.command(name="train")(train)
