"""``cardiobench sample``: draw masks from a trained checkpoint; writes ``samples.npz`` and ``samples.png``."""

from __future__ import annotations

from pathlib import Path

import typer

from cardiobench.cli import lazy_module
from cardiobench.cli.output import console, print_json
from cardiobench.cli.progress import terminal_progress
from cardiobench.cli.train_cmd import parse_options, summary_table
from cardiobench.config import check_option
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl

distributed = lazy_module("cardiobench.distributed")  # imports torch: on first use, not for --help


def sample(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="checkpoint.pt written by `cardiobench train` "
                                    "(or its folder)."),
    sampler: str = typer.Option("ddim", "--sampler", help="Sampler plugin: ddim, ddpm, dpm-solver++, ..."),
    steps: int = typer.Option(None, "--steps", help="Inference steps (default: the sampler's, e.g. 50 for ddim)."),
    num_samples: int = typer.Option(64, "--num-samples", "-n", help="How many masks to draw."),
    out: Path = typer.Option(Path("samples"), "--out", "-o", help="Folder for samples.npz and samples.png."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial and per-step noise."),
    eta: float = typer.Option(None, "--eta", help="DDIM stochasticity (0 = deterministic, 1 = DDPM-like)."),
    sampler_opt: list[str] = typer.Option(None, "--sampler-opt", help="Other sampler option KEY=VALUE, e.g. "
                                          "timestep_spacing=trailing."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Samples per network call."),
    class_name: str = typer.Option(None, "--class", help="Class-conditioned models: draw only this pathology group "
                                   "(NOR, MINF, DCM, HCM, RV); default: every group in turn."),
    guidance_scale: float = typer.Option(1.0, "--guidance-scale", "-s", help="Classifier-free guidance scale "
                                         "(1 = the conditional model), or classifier-guidance weight w with "
                                         "--classifier (0 = unguided)."),
    classifier: Path = typer.Option(None, "--classifier", help="Classifier guidance: steer this unconditional "
                                    "checkpoint with a noisy classifier file (`cardiobench classifier train`)."),
    no_ema: bool = typer.Option(False, "--no-ema", help="Use the raw weights instead of the EMA weights."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (no progress bar)."),
) -> None:
    """Sample label maps from a trained model: OUT/samples.npz (key `masks`, N x H x W uint8) and OUT/samples.png."""
    from cardiobench.engine.sample import sample as run_sampling
    from cardiobench.engine.sample import write_samples

    checked = {  # before loading the model, with the config's bounds: flag -> (config key, value)
        "--seed": ("sample.seed", seed), "--num-samples": ("sample.num_samples", num_samples),
        "--steps": ("sample.steps", steps), "--batch-size": ("sample.batch_size", batch_size),
        "--eta": ("sample.eta", eta), "--guidance-scale": ("conditioning.guidance_scale", guidance_scale),
    }
    for flag, (dotted, value) in checked.items():
        check_option(flag, dotted, value)
    from cardiobench.paths import check_writable_dir

    check_writable_dir(out, "--out folder")  # a file there, read-only, full: said before sampling
    options = parse_options(sampler_opt, "--sampler-opt")
    if eta is not None:
        options["eta"] = eta
    labels = None
    if class_name is not None:
        from cardiobench.data.base import GROUPS

        if class_name.upper() not in GROUPS:
            raise CardiobenchError(f"unknown class {class_name!r}", f"use one of: {', '.join(GROUPS)}")
        labels = [GROUPS.index(class_name.upper())] * num_samples
    guidance = None
    if classifier is not None:
        from cardiobench.conditioning.classifier import load_classifier
        from cardiobench.conditioning.classifier_guidance import ClassifierGuidance

        _, cspec, _ = load_classifier(classifier)  # a clear one-line error for a missing or corrupt file
        guidance = ClassifierGuidance(str(classifier), classifier_size=cspec.size, classifier_steps=cspec.steps)
    result = run_sampling(
        checkpoint, sampler=sampler, steps=steps, num_samples=num_samples, seed=seed, sampler_options=options,
        batch_size=batch_size, use_ema=not no_ema, device=device, progress=terminal_progress(),
        labels=labels, guidance_scale=guidance_scale, guidance=guidance,
    )
    if not distributed.is_main():  # under torchrun every rank drew its batches; rank 0 writes and reports
        return
    files = write_samples(result, out)
    if as_json:
        print_json(result.to_dict())
        return
    rows = {
        "samples": f"{len(result.masks)} masks of {result.masks.shape[-1]}x{result.masks.shape[-1]} "
                   f"in {result.seconds:.1f} s on {result.device}",
        "sampler": f"{sampler} ({steps or 'default'} steps{', ' + str(options) if options else ''}), seed {seed}, "
                   f"{'raw' if no_ema else 'EMA'} weights",
        **({"guidance": f"classifier guidance, w = {guidance_scale:g}, classifier {classifier}"} if guidance else {}),
        "label maps": files["samples"],
        "grid": files["grid"],
    }
    console().print(summary_table(rows, "cardiobench sample"))


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.command(name="sample")(sample)
