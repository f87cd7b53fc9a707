"""``cardiobench train``: train a denoiser on a data set with a noise process; resumable checkpoints."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cardiobench.cli import lazy_module
from cardiobench.cli.options import config_option, preset_option, set_option
from cardiobench.cli.output import console, print_json
from cardiobench.cli.progress import terminal_progress
from cardiobench.config import check_option, parse_set
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl
from cardiobench.specs import LOSSES

distributed = lazy_module("cardiobench.distributed")  # imports torch: on first use, not for --help


def parse_options(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["key=value", ...]`` (values parsed as TOML: numbers, true/false, [lists]; bare words are strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CardiobenchError(f"{flag} {item!r} is not KEY=VALUE", f"e.g. {flag} num_timesteps=500")
        key, value = parse_set(item)
        out[key] = value
    return out


LAUNCHERS = ("torchrun",)


def torchrun_argv(args: list[str], nproc: int) -> list[str]:
    """The command line that runs ``cardiobench ARGS`` (without ``--launcher``/``--nproc-per-node``) under
    ``torchrun --standalone --nproc_per_node NPROC`` (``python -m torch.distributed.run``: a free local port)."""
    rest: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--launcher", "--nproc-per-node"):
            skip = True
        elif not arg.startswith(("--launcher=", "--nproc-per-node=")):
            rest.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "cardiobench", *rest]


def exec_torchrun(launcher: str | None, nproc: int | None) -> None:
    """``--launcher torchrun``: replace this process by the same command under torchrun."""
    if launcher not in LAUNCHERS:
        raise CardiobenchError(f"unknown launcher {launcher!r}" if launcher else "--nproc-per-node needs --launcher",
                               "use --launcher torchrun")
    if os.environ.get("WORLD_SIZE"):
        raise CardiobenchError("--launcher torchrun given inside torchrun", "drop --launcher")
    if nproc is None:
        import torch

        nproc = torch.cuda.device_count()
        if nproc < 1:
            raise CardiobenchError("no GPU here: say how many processes", "e.g. --nproc-per-node 2 (gloo on the CPU)")
    if nproc < 1:
        raise CardiobenchError(f"--nproc-per-node must be >= 1, got {nproc}")
    if "train" not in sys.argv[1:]:
        raise CardiobenchError("--launcher works from the command line only", "run `cardiobench train ... "
                               "--launcher torchrun`, or torchrun yourself (docs/scale-out.md)")
    argv = torchrun_argv(sys.argv[1:], nproc)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


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
    data_seed: int = typer.Option(None, "--data-seed", help="Seed of the data set (phantom generation, splits)."),
    dataset_opt: list[str] = typer.Option(None, "--dataset-opt", help="Other data set option KEY=VALUE, e.g. "
                                          "train_patients=4 (phantom)."),
    resolution: int = typer.Option(None, "--resolution", help="Side of the square slices, in pixels."),
    noise: str = typer.Option(None, "--noise", help="Noise process plugin: gaussian, blurring, ..."),
    timesteps: int = typer.Option(None, "--timesteps", help="T, the number of diffusion steps."),
    schedule: str = typer.Option(None, "--schedule", help="Beta schedule of the gaussian process: cosine, linear."),
    prediction: str = typer.Option(None, "--prediction", help="What the network predicts: epsilon, v, x0."),
    noise_opt: list[str] = typer.Option(None, "--noise-opt", help="Other noise-process option KEY=VALUE."),
    representation: str = typer.Option(None, "--representation", help="What a label map becomes as the diffused "
                                       "tensor (representation plugin; default onehot)."),
    autoencoder: str = typer.Option(None, "--autoencoder", help="Diffuse this autoencoder's latent (a plugin, "
                                    "trained first if needed, or a trained .pt file; docs/latent.md)."),
    backbone: str = typer.Option(None, "--backbone", help="Backbone plugin."),
    size: str = typer.Option(None, "--size", help="Named backbone size (unet: tiny, small, base)."),
    backbone_opt: list[str] = typer.Option(None, "--backbone-opt", help="Backbone option KEY=VALUE, e.g. "
                                           "base_channels=48."),
    conditioning: str = typer.Option(None, "--conditioning", help="Conditioning method that trains the network: "
                                     "classifier-free, controlnet, concat (docs/conditioning.md)."),
    conditioning_opt: list[str] = typer.Option(None, "--conditioning-opt", help="Conditioning option KEY=VALUE, "
                                               "e.g. p_uncond=0.2."),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps (replaces the preset's --epochs)."),
    epochs: int = typer.Option(None, "--epochs", help="Passes over the training split (replaces --steps)."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Slices per optimizer step."),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate."),
    warmup_steps: int = typer.Option(None, "--warmup-steps", help="Linear learning-rate warm-up steps."),
    loss: str = typer.Option(None, "--loss", help=f"Loss: {', '.join(LOSSES)}."),
    ema_decay: float = typer.Option(None, "--ema-decay", help="EMA decay of the weights (0 = off)."),
    grad_clip: float = typer.Option(None, "--grad-clip", help="Gradient-norm clip (0 = off)."),
    seed: int = typer.Option(None, "--seed", help="Seed of initialisation, batch order, timesteps and noise."),
    bf16: bool = typer.Option(None, "--bf16", help="Train under bf16 autocast (config train.precision)."),
    preset: str = preset_option(None, "Default: quick, the preset `cardiobench run` uses."),
    config_file: str = config_option(),
    sets: list[str] = set_option(),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for checkpoint.pt and loss_curve.png "
                             "(default: the checkpoint cache, keyed by the spec hash)."),
    resume: Path = typer.Option(None, "--resume", help="Continue this checkpoint (file or folder) of the same "
                                "model, e.g. with more --steps."),
    retrain: bool = typer.Option(False, "--retrain", help="Ignore existing and cached checkpoints."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Checkpoint every N steps "
                                         "(default: at least once a minute, and at the end)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout (progress on stderr)."),
    launcher: str = typer.Option(None, "--launcher", help="torchrun: run this very command data-parallel under "
                                 "`torchrun --standalone --nproc_per_node N` (docs/scale-out.md)."),
    nproc: int = typer.Option(None, "--nproc-per-node", help="With --launcher torchrun: processes (default: the "
                              "GPUs of this machine)."),
) -> None:
    """Train a denoiser; re-running the same command continues an interrupted training or reuses a finished one.

    Settings resolve exactly as `cardiobench run`'s: defaults < --preset (quick) < --config < --set < options,
    so `cardiobench train` and `cardiobench run` with the same options train the same model (one spec hash).
    """
    from cardiobench.engine.pipeline import train_config, train_spec_from_config
    from cardiobench.factories import build_process

    checked = {  # before any work, with the config's bounds: flag -> (config key, value)
        "--resolution": ("data.resolution", resolution), "--data-seed": ("data.seed", data_seed),
        "--seed": ("train.seed", seed), "--steps": ("train.steps", steps), "--epochs": ("train.epochs", epochs),
        "--batch-size": ("train.batch_size", batch_size), "--lr": ("train.lr", lr),
        "--warmup-steps": ("train.warmup_steps", warmup_steps), "--ema-decay": ("train.ema_decay", ema_decay),
        "--grad-clip": ("train.grad_clip", grad_clip), "--timesteps": ("diffusion.num_timesteps", timesteps),
    }
    for flag, (dotted, value) in checked.items():
        if value is not None:
            check_option(flag, dotted, value)
    if launcher is not None or nproc is not None:
        exec_torchrun(launcher, nproc)
    options = {
        "dataset": dataset, "data_root": data_root, "data_seed": data_seed, "resolution": resolution, "noise": noise,
        "timesteps": timesteps, "schedule": schedule, "prediction": prediction, "backbone": backbone, "size": size,
        "conditioning": conditioning, "steps": steps, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "warmup_steps": warmup_steps, "loss": loss, "ema_decay": ema_decay, "grad_clip": grad_clip, "seed": seed,
        "device": device, "precision": None if bf16 is None else ("bf16" if bf16 else "fp32"),
        "representation": representation, "autoencoder": autoencoder,
    }
    for name, items, flag in (("dataset_options", dataset_opt, "--dataset-opt"),
                              ("noise_options", noise_opt, "--noise-opt"),
                              ("backbone_options", backbone_opt, "--backbone-opt"),
                              ("conditioning_options", conditioning_opt, "--conditioning-opt")):
        if items:
            options[name] = parse_options(items, flag)
    cfg = train_config(preset, config_file, sets, **options)
    spec = train_spec_from_config(cfg)
    build_process(spec)  # a --noise-opt the process does not take: one line naming it, before any work
    device = cfg["run"]["device"]
    data_root = cfg["data"]["data_root"]
    from cardiobench.paths import cache_dir, check_writable_dir

    check_writable_dir(out if out is not None else cache_dir(), "--out folder" if out is not None else
                       "cache folder (CARDIOBENCH_CACHE_DIR)")
    from cardiobench.engine.train import train as run_training

    main = distributed.is_main()  # under torchrun, rank 0 alone reports
    from cardiobench.autoencoders.runs import prepare_for_run

    with distributed.main_first():  # a latent model's autoencoder: reused, or trained now (rank 0 first)
        prepare_for_run(spec, device=device, data_root=data_root, progress=terminal_progress(enabled=main))
    result = run_training(
        spec, out, resume=resume, retrain=retrain, device=device,
        data_root=data_root, checkpoint_every=checkpoint_every, progress=terminal_progress(enabled=main),
    )
    if not main:
        return
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
        "model": f"{spec.backbone} {spec.backbone_options.get('size', '')}, {result.params / 1e6:.2f} M "
                 f"parameters on {result.device}",
        "next": f"cardiobench sample --checkpoint {result.checkpoint} --out samples",
    }
    console().print(summary_table(rows, "cardiobench train"))


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.command(name="train")(train)
