"""``cardiobench run`` (one benchmark run) and ``cardiobench compare`` (a matrix of them, one leaderboard)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import typer
from rich.panel import Panel
from rich.table import Table

from cardiobench.cli import lazy_module
from cardiobench.cli.options import config_option, preset_option, results_option, set_option
from cardiobench.cli.output import console, print_json
from cardiobench.cli.progress import RichProgress
from cardiobench.cli.train_cmd import parse_options
from cardiobench.config import check_option
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.hookspecs import hookimpl
from cardiobench.results import report
from cardiobench.results.store import ResultStore

#: the prefix of a latent run's ceiling values among its metrics (``cardiobench.autoencoders.runs.CEILING_PREFIX``)
CEILING = "ceiling_"
#: what a latent run's ceiling passes through its autoencoder, per task (``cardiobench.engine.pipeline``)
CEILING_ITEMS = {"generation": "test masks", "segmentation": "the true masks of the segmented images",
                 "synthesis": "the real slices of the masks"}
pipeline = lazy_module("cardiobench.engine.pipeline")  # imports torch: on first use, not for --help
executors = lazy_module("cardiobench.executors")  # imports submitit and torch: only for --executor

ARROWS = {"lower": "↓", "higher": "↑"}
STRICT_HELP = ("Refuse (exit 2, before training or sampling) when the FID ruler's validity record is flagged "
               "(accuracy near chance, or a failed FID ordering; docs/metrics.md).")
TRAIN_STATUS = {
    "trained": "trained now",
    "resumed": "continued an interrupted training",
    "reused": "reused cached checkpoint",
    "reused-shipped": "reused checkpoint shipped with cardiobench (same spec hash; --retrain to train)",
    "skipped": "finished run found in the results store (use --force to redo it)",
}


def _torchrun_rank() -> int:
    """This process's rank as torchrun announced it (``RANK``; 0 without torchrun), before any group exists."""
    if os.environ.get("WORLD_SIZE", "1").strip() in ("", "0", "1"):
        return 0
    return int(os.environ.get("RANK", "0") or 0)


def _refuse_torchrun(command: str) -> None:
    """``compare`` is a sweep, not one model: under torchrun every rank would run every job of it."""
    if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
        raise CardiobenchError(f"`cardiobench {command}` does not run under torchrun",
                               "run one model data parallel with `torchrun ... -m cardiobench run` or `train` "
                               "(docs/scale-out.md), and fan runs out with `compare --executor`")


def _check_options(**options: tuple[str, Any]) -> None:
    """Typed options checked like the config keys they set, named as the user typed them (``--seed``), before
    any work: ``flag=(dotted_key, value)``; ``None`` values were not given."""
    for flag, (dotted, value) in options.items():
        check_option("--" + flag.replace("_", "-"), dotted, value)


def _root_flag(data_root: str | None) -> str:
    """Where the data root comes from, for messages: ``--data-root``, else the config key."""
    return "--data-root" if data_root is not None else "data.data_root"


def _split(value: str | None, what: str) -> list[str | None]:
    if value is None:
        return [None]
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise CardiobenchError(f"--{what} is empty", f"give one or more names separated by commas, e.g. --{what} a,b")
    return list(dict.fromkeys(items))


def _floats(value: str | None, what: str) -> list[float | None]:
    items = _split(value, what)
    try:
        return [None if v is None else float(v) for v in items]
    except ValueError:
        raise CardiobenchError(f"--{what} must be numbers separated by commas, got {value!r}", "e.g. 1,3") from None


def _row_values(*values: Any) -> list[str]:
    """A metric's value and its real-vs-real reference with one formatting rule (the same decimals)."""
    fmt = report.column_formatter(values)
    return ["–" if v is None else fmt(v) if isinstance(v, (int, float)) else str(v) for v in values]


def _classifier_line(path: str) -> str:
    """The noisy classifier of a classifier-guidance run: its hash and test accuracy at uniform t."""
    from cardiobench.conditioning.classifier import classifier_report

    try:
        rep = classifier_report(path)
    except CardiobenchError:
        return f"{path} (no longer readable)"
    acc = (rep.get("accuracy") or {}).get("overall")
    return f"noisy classifier {str(rep.get('spec_hash'))[:12]} ({rep['spec']['size']}, {rep['spec']['steps']} steps" + (
        f", test accuracy {acc:.3f} at uniform t)" if acc is not None else ")")


def _ruler_validity(outcome: pipeline.RunOutcome) -> dict[str, Any] | None:
    """The run's ``ruler_validity`` (evaluation meta, or the stored run's context for a skipped run)."""
    found = outcome.meta.get("ruler_validity")
    if found is None:
        found = (getattr(outcome.record, "context", None) or {}).get("ruler_validity")
    return found if isinstance(found, dict) else None


def _halves_text(halves: dict[str, Any]) -> str:
    """The relative-FID reference in words: median and min-max real-vs-real FID over random halves."""
    return (f"real vs real FID {halves['median']:.3g} (median; min {halves['min']:.3g}, max {halves['max']:.3g}) "
            f"over {halves['n_splits']} random halvings of the test split ({halves['n_half']} masks per half): "
            "fid_relative = fid / median")


def _ruler_lines(outcomes: list[pipeline.RunOutcome]) -> list[str]:
    """One ``ruler:`` line per distinct evaluator of ``outcomes`` that has a validity record."""
    from cardiobench.metrics.validity import ruler_line

    seen: dict[str, str] = {}
    for outcome in outcomes:
        validity = _ruler_validity(outcome)
        rid = str(outcome.record.evaluator_id)
        if validity is not None and rid not in seen:
            seen[rid] = "ruler: " + ruler_line(rid, validity)
    return list(seen.values())


def _strict_ruler(plans: list[pipeline.RunPlan], term: Any) -> None:
    """``--strict-ruler``: every evaluator the plans will be measured with is checked before any work."""
    checked: set[str] = set()
    for plan in plans:
        key = repr((plan.train.dataset, plan.data_root, sorted(plan.train.dataset_options.items()),
                    plan.train.data_seed))
        if key in checked:
            continue
        checked.add(key)
        pipeline.ruler_check(plan, strict=True, log=lambda msg: term.print(msg, highlight=False))


def _summary(outcome: pipeline.RunOutcome) -> list[Any]:
    rec, plan = outcome.record, outcome.plan
    spec = Table.grid(padding=(0, 2))
    spec.add_column(style="bold")
    spec.add_column()
    t = plan.train
    vol = t.spatial_dims == 3
    item = "volumes" if vol else "samples"
    spec.add_row("data", f"{t.dataset} {'x'.join(map(str, t.spatial_shape))}" + (" volumes (D x H x W)" if vol else ""))
    length = f"{t.steps} steps" if t.steps else f"{t.epochs} epochs"
    size = t.backbone_options.get("size") or f"{t.backbone_options.get('base_channels', '?')} ch"
    spec.add_row("model", f"{t.noise} ({t.noise_options.get('prediction_type', '')}) · {t.backbone} {size} · "
                          f"{length} · train hash {(rec.train_hash or '-')[:12]}")
    status = TRAIN_STATUS.get(outcome.train_status, outcome.train_status)
    if outcome.meta.get("base_model"):  # e.g. a ControlNet: only its control branch was trained
        status += f" · on the frozen base model {outcome.meta['base_model'][:12]}"
    spec.add_row("checkpoint", status)
    steps = plan.sample_steps if plan.sample_steps is not None else "default"
    if plan.task == "segmentation":
        spec.add_row("segmenting", f"{plan.sampler} · {steps} steps · up to {plan.eval_samples} {plan.eval_split} "
                                   f"{'volumes' if vol else 'images'} "
                                   f"x {plan.ensemble_k} samples (majority vote) · seed {plan.sample_seed}")
    elif plan.task == "utility":
        u = plan.utility
        spec.add_row("utility", f"{plan.sampler} · {steps} steps · {plan.eval_samples} masks, an image each from "
                                f"synthesis model {u['synthesis_hash'][:12]} ({u['synthesis'].get('conditioning')}) · "
                                f"segmenters scored on {u['eval_dataset'] or t.dataset} test")
    elif plan.task == "synthesis":
        spec.add_row("synthesizing", f"{plan.sampler} · {steps} steps · one image for each of up to "
                                     f"{plan.eval_samples} {plan.eval_split} masks · seed {plan.sample_seed}")
    else:
        spec.add_row("sampling", f"{plan.sampler} · {steps} steps · {plan.eval_samples} {item} · "
                                 f"seed {plan.sample_seed}")
    if plan.conditioning:
        scale = f" · scale {plan.guidance_scale:g}" if plan.guidance_scale is not None else ""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(plan.train.conditioning_options.items()) if v is not None)
        spec.add_row("conditioning", f"{plan.conditioning}{scale}" + (f" · {opts}" if opts else ""))
    if rec.artefacts.get("classifier"):
        spec.add_row("classifier", _classifier_line(rec.artefacts["classifier"]))
    validity = _ruler_validity(outcome)
    if validity is not None:  # the domain evaluator's validity record: valid, or FLAGGED in one line
        from cardiobench.metrics.validity import ruler_line

        spec.add_row("ruler", ruler_line(str(rec.evaluator_id), validity))
    else:
        spec.add_row("ruler", f"evaluator {rec.evaluator_id}"
                     + (f" (test accuracy {outcome.meta['evaluator_accuracy']:.3f})"
                        if outcome.meta.get("evaluator_accuracy") is not None else ""))
    halves = outcome.meta.get("fid_real_halves")
    if halves:
        spec.add_row("FID reference", _halves_text(halves))
    ceiling = {k.removeprefix(CEILING): v for k, v in rec.metrics.items() if k.startswith(CEILING)}
    autoencoder = (plan.train.representation_options or {}).get("autoencoder")
    if isinstance(autoencoder, dict):  # a latent run: its autoencoder and the ceiling it sets
        recon = (outcome.meta.get("latent_ceiling") or {}).get("reconstruction") or {}
        if "psnr" in recon:  # an image autoencoder
            quality = f"reconstruction PSNR {recon['psnr']:.2f} dB, L1 {recon.get('l1', float('nan')):.4f}"
        else:
            dice = " ".join(f"{k} {v:.3f}" for k, v in (recon.get("dice") or {}).items())
            mean = ceiling.get("recon_dice_mean")
            quality = f"reconstruction Dice {dice or (f'{mean:.3f}' if mean is not None else '-')}"
        what = CEILING_ITEMS.get(rec.task, "real items")
        spec.add_row("autoencoder", f"{autoencoder.get('autoencoder')} · trained {autoencoder.get('steps')} steps · "
                                    f"{quality} (the ceiling column: {what} through the autoencoder)")

    metrics = Table(title="metrics", header_style="bold", title_justify="left")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    if outcome.reference:
        metrics.add_column("real vs real", justify="right")
    if ceiling:
        metrics.add_column("latent ceiling", justify="right")
    unit = report.distance_unit(rec)  # HD95 says mm or px (a data set without voxel spacing)
    if unit == "px":
        spec.add_row("distances", "in px: the data set has no voxel spacing (anatomy: mm thresholds at a nominal "
                                  "1.5 mm pixel)")
    meta = report.registry_meta()  # headline metrics and counts from the metric plugins' registration metadata
    headline = [m for m in meta.headline.get(rec.task, ()) if m in rec.metrics]
    counts = set(meta.counts.values())
    names = headline + sorted(m for m in rec.metrics if m not in headline and m not in counts
                              and not report.is_detail_metric(m) and not m.startswith(CEILING))
    for name in names:
        arrow = ARROWS.get(rec.directions.get(name, ""), "")
        value, *ref = _row_values(rec.metrics.get(name), *([outcome.reference.get(name)] if outcome.reference else []))
        count = meta.counts.get(name)
        if count is not None and rec.metrics.get(count) is not None:  # e.g. HD95: pairs without a value
            value += f" ({rec.metrics[count]:g} missing)"
        if ceiling:
            ref += _row_values(ceiling.get(name))[:1]
        metrics.add_row(f"{report.metric_label(name, unit)} {arrow}", value, *ref)
    timing = Table.grid(padding=(0, 2))
    timing.add_column(style="bold")
    timing.add_column()
    for key, label in (("autoencoder_s", "autoencoder"), ("train_s", "train"), ("sample_s", "sample"),
                       ("gif_s", "GIF"), ("eval_s", "evaluate"), ("total_s", "total")):
        if rec.timings.get(key) is not None:
            timing.add_row(label, f"{rec.timings[key]:.1f} s")
    files = Table.grid(padding=(0, 2))
    files.add_column(style="bold")
    files.add_column()
    for key, path in rec.artefacts.items():
        files.add_row(key, path)
    return [
        Panel(spec, title=f"run #{rec.id} · {plan.label}", title_align="left"),
        metrics,
        Panel(timing, title="timings", title_align="left"),
        Panel(files, title="artefacts", title_align="left"),
    ]


def _outcome_json(outcome: pipeline.RunOutcome) -> dict[str, Any]:
    rec = outcome.record
    return {
        "id": rec.id,
        "spec_hash": rec.spec_hash,
        "train_hash": rec.train_hash,
        "train_status": outcome.train_status,
        "noise": rec.noise,
        "sampler": rec.sampler,
        "representation": outcome.plan.train.representation,
        "backbone": rec.backbone,
        "dataset": rec.dataset,
        "evaluator_id": rec.evaluator_id,
        "ruler_validity": _ruler_validity(outcome),
        "metrics": rec.metrics,
        "directions": rec.directions,
        "reference": outcome.reference,
        "timings": rec.timings,
        "artefacts": rec.artefacts,
    }


def run(
    noise: str = typer.Option(None, "--noise", help="Noise process plugin (e.g. gaussian, blurring)."),
    sampler: str = typer.Option(None, "--sampler", help="Sampler plugin (e.g. ddpm, ddim, dpm-solver++)."),
    representation: str = typer.Option(None, "--representation", help="What a label map becomes as the diffused "
                                       "tensor (representation plugin; default onehot)."),
    autoencoder: str = typer.Option(None, "--autoencoder", help="Latent diffusion: an autoencoder plugin (e.g. "
                                    "vae; trained first if needed) or a trained autoencoder file (.pt). See "
                                    "docs/latent.md."),
    dataset: str = typer.Option(None, "--dataset", help="Data set plugin (default phantom)."),
    data_root: str = typer.Option(None, "--data-root", help="Folder of the real data (e.g. ACDC)."),
    dims: int = typer.Option(None, "--dims", help="2: slices (default); 3: whole short-axis stacks as volumes of "
                             "--depth slices (docs/volumes.md)."),
    depth: int = typer.Option(None, "--depth", help="Volumes: slices per volume (default: the preset's, else 8)."),
    backbone: str = typer.Option(None, "--backbone", help="Backbone plugin (default unet)."),
    conditioning: str = typer.Option(None, "--conditioning", help="Conditioning plugin (none by default): "
                                     "classifier-free, classifier-guidance, controlnet, concat."),
    guidance_scale: float = typer.Option(None, "--guidance-scale", "-s", help="Guidance scale (classifier(-free) "
                                         "guidance), or the ControlNet conditioning scale."),
    task: str = typer.Option(None, "--task", help="generation (default), segmentation (default for controlnet "
                             "and concat), synthesis (mask-to-image) or utility (downstream segmentation gain)."),
    ensemble_k: int = typer.Option(None, "--ensemble-k", "-k", help="Segmentation: samples per image (majority "
                                   "vote)."),
    preset: str = preset_option(None, "Default: quick; segmentation / synthesis for those tasks."),
    config_file: str = config_option(),
    sets: list[str] = set_option(),
    steps: int = typer.Option(None, "--steps", help="Sampling (inference) steps."),
    train_steps: int = typer.Option(None, "--train-steps", help="Training steps (overrides the preset)."),
    num_samples: int = typer.Option(None, "--num-samples", "-n", help="Samples generated and evaluated (utility: "
                                    "synthetic pairs)."),
    eval_dataset: str = typer.Option(None, "--eval-dataset", help="Utility: the data set whose test split scores "
                                     "the segmenters (cross-data-set evaluation; default the run's)."),
    eval_data_root: str = typer.Option(None, "--eval-data-root", help="Utility: the folder of --eval-dataset."),
    seed: int = typer.Option(None, "--seed", help="Seed of training and sampling."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    out: Path = typer.Option(None, "--out", help="Folder for run artefacts (default: next to the results store)."),
    results: str = results_option(),
    retrain: bool = typer.Option(False, "--retrain", help="Train even if a matching checkpoint exists."),
    force: bool = typer.Option(False, "--force", help="Redo the run even if the store has it."),
    gif: bool = typer.Option(True, "--gif/--no-gif", help="Write the reverse-process GIF."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable result on stdout (progress stays on stderr)."),
    strict_ruler: bool = typer.Option(False, "--strict-ruler", help=STRICT_HELP),
) -> None:
    """Train (or reuse), sample, evaluate and store one run; print a summary."""
    _check_options(seed=("train.seed", seed), guidance_scale=("conditioning.guidance_scale", guidance_scale),
                   num_samples=("eval.num_samples", num_samples), steps=("sample.steps", steps),
                   train_steps=("train.steps", train_steps), ensemble_k=("eval.ensemble_k", ensemble_k),
                   depth=("data.depth", depth))
    cfg, preset = pipeline.run_config(
        preset, config_file, sets, noise=noise, sampler=sampler, representation=representation,
        autoencoder=autoencoder, dataset=dataset,
        data_root=data_root, backbone=backbone, conditioning=conditioning, task=task, steps=steps,
        train_steps=train_steps,
        num_samples=num_samples, seed=seed, device=device, guidance_scale=guidance_scale, ensemble_k=ensemble_k,
        eval_dataset=eval_dataset, eval_data_root=eval_data_root, dims=dims, depth=depth)
    plan = pipeline.plan_from_config(cfg, root_flag=_root_flag(data_root))
    store = ResultStore(results)
    out_root = out or store.path.parent
    term = console(stderr=True)
    if strict_ruler:  # before the header: a refusal is the command's one line of output
        _strict_ruler([plan], term)
    main = _torchrun_rank() == 0  # under torchrun every rank runs this command; rank 0 alone reports
    if main:
        term.print(f"[bold]cardiobench run[/] {plan.label} · preset {preset} · run spec "
                   f"{plan.spec_hash[:12]}")
    outcome = pipeline.execute(plan, store, out_root, retrain=retrain, force=force,
                               progress=RichProgress(term) if main else None, gif=gif)
    if outcome is None:  # a helping rank under torchrun: rank 0 prints and stores
        return
    if as_json:
        print_json(_outcome_json(outcome))
        return
    out_console = console()
    for part in _summary(outcome):
        out_console.print(part)
    out_console.print(f"Stored in {store.path}. See all runs with `cardiobench leaderboard`.")


def compare(
    noise: str = typer.Option("gaussian", "--noise", help="Comma-separated noise processes."),
    sampler: str = typer.Option("ddpm", "--sampler", help="Comma-separated samplers."),
    representation: str = typer.Option(None, "--representation", help="Comma-separated representations (e.g. "
                                       "onehot,bits)."),
    autoencoder: str = typer.Option(None, "--autoencoder", help="Comma-separated autoencoders for latent "
                                    "diffusion; none = pixel space (e.g. none,vae). See docs/latent.md."),
    backbone: str = typer.Option(None, "--backbone", help="Comma-separated backbones."),
    conditioning: str = typer.Option(None, "--conditioning", help="Comma-separated conditioning methods."),
    guidance_scale: str = typer.Option(None, "--guidance-scale", "-s", help="Comma-separated guidance scales."),
    task: str = typer.Option(None, "--task", help="generation (default), segmentation, synthesis or utility."),
    dataset: str = typer.Option(None, "--dataset", help="Data set plugin (default phantom)."),
    data_root: str = typer.Option(None, "--data-root", help="Folder of the real data (e.g. ACDC)."),
    dims: int = typer.Option(None, "--dims", help="2: slices; 3: volumes of --depth slices (docs/volumes.md)."),
    depth: int = typer.Option(None, "--depth", help="Volumes: slices per volume (default: the preset's, else 8)."),
    preset: str = preset_option(None, "Default: quick; segmentation for segmentation runs."),
    config_file: str = config_option(),
    sets: list[str] = set_option(),
    steps: int = typer.Option(None, "--steps", help="Sampling (inference) steps."),
    train_steps: int = typer.Option(None, "--train-steps", help="Training steps (overrides the preset)."),
    num_samples: int = typer.Option(None, "--num-samples", "-n", help="Samples generated and evaluated per run."),
    seed: int = typer.Option(None, "--seed", help="Seed of training and sampling."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    out: Path = typer.Option(None, "--out", help="Folder for run artefacts (default: next to the results store)."),
    results: str = results_option(),
    force: bool = typer.Option(False, "--force", help="Redo runs the store already has."),
    gif: bool = typer.Option(False, "--gif/--no-gif", help="Write reverse-process GIFs."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable results on stdout (progress on stderr)."),
    strict_ruler: bool = typer.Option(False, "--strict-ruler", help=STRICT_HELP),
    executor: str = typer.Option(None, "--executor", help="Run the jobs through submitit: slurm (job arrays) or "
                                 "local (subprocesses here); each job writes its own store, merged at the end "
                                 "(docs/scale-out.md). Default: in this process."),
    partition: str = typer.Option(None, "--partition", help="--executor slurm: the Slurm partition."),
    gpus_per_job: int = typer.Option(None, "--gpus-per-job", help="--executor: GPUs of each job."),
    time_min: int = typer.Option(60, "--time", help="--executor: time limit of each job, in minutes."),
    array_parallelism: int = typer.Option(None, "--array-parallelism", help="--executor slurm: array tasks "
                                          "running at once."),
    executor_opt: list[str] = typer.Option(None, "--executor-opt", help="Any other submitit parameter KEY=VALUE, "
                                           "e.g. slurm_account=abc, cpus_per_task=8, mem_gb=32 (repeatable)."),
) -> None:
    """Run every combination of the given plugins; each model is trained once; one leaderboard at the end.

    Interrupt it at any time: finished runs are stored, and running the same command again continues.
    With --executor slurm|local, one job per model trains it and one job per run samples, evaluates and stores
    into its own store; the stores are merged into --results at the end.
    """
    _refuse_torchrun("compare")
    if executor is None and (partition or gpus_per_job is not None or array_parallelism is not None
                             or executor_opt):
        raise CardiobenchError("--partition, --gpus-per-job, --array-parallelism and --executor-opt need --executor",
                               "add --executor slurm (or local)")
    scales = _floats(guidance_scale, "guidance-scale")
    for scale in scales:
        _check_options(guidance_scale=("conditioning.guidance_scale", scale))
    _check_options(seed=("train.seed", seed), num_samples=("eval.num_samples", num_samples),
                   steps=("sample.steps", steps), train_steps=("train.steps", train_steps),
                   depth=("data.depth", depth))
    term = console(stderr=True)
    plans: list[pipeline.RunPlan] = []
    skipped: list[str] = []
    task = task or pipeline.task_of(conditioning)
    noises, samplers = _split(noise, "noise"), _split(sampler, "sampler")
    autoencoders = [None if a in (None, "none") else a for a in _split(autoencoder, "autoencoder")]
    for n, s, r, a, b, c, g in itertools.product(noises, samplers, _split(representation, "representation"),
                                                 autoencoders, _split(backbone, "backbone"),
                                                 _split(conditioning, "conditioning"), scales):
        cfg, _ = pipeline.run_config(
            preset, config_file, sets, noise=n, sampler=s, representation=r, autoencoder=a, backbone=b,
            dataset=dataset, data_root=data_root,
            steps=steps, train_steps=train_steps, num_samples=num_samples, seed=seed, device=device,
            conditioning=c, guidance_scale=g, task=task, dims=dims, depth=depth)
        for kind, names, table, key in (("sampler", samplers, "sample", "sample.options"),
                                        ("noise", noises, "diffusion", "diffusion.options")):
            flat = pipeline.flat_options(cfg[table].get("options"), kind)
            if len(names) > 1 and flat:
                raise CardiobenchError(
                    f"{key}.{flat[0]} would go to every {kind} of this compare ({', '.join(map(str, names))})",
                    f"address it to one: --set {key}.{names[0]}.{flat[0]}=...")
        try:
            plans.append(pipeline.plan_from_config(cfg, root_flag=_root_flag(data_root)))
        except IncompatibleError as exc:
            what = " x ".join(str(v) for v in (n, s, r, a, c, None if g is None else f"s={g:g}") if v is not None)
            skipped.append(f"{what}: {exc.format_message()}")
    for line in skipped:
        term.print(f"[yellow]skip[/] {line}", soft_wrap=True)
    if not plans:
        raise CardiobenchError("no compatible combination to run", "see `cardiobench plugins` for what works together")
    plans.sort(key=lambda p: p.train_hash)  # runs sharing a model follow each other: trained once, sampled often
    models = len({p.train_hash for p in plans})
    store = ResultStore(results)
    out_root = out or store.path.parent
    if strict_ruler:  # before the header: a refusal is the command's one line of output
        _strict_ruler(plans, term)
    term.print(f"[bold]cardiobench compare[/] {len(plans)} runs, {models} model{'s' if models != 1 else ''} "
               f"to train or reuse · results in {store.path}")
    outcomes = []
    if executor is not None:
        settings = executors.ExecutorSettings(executor, Path(out_root) / "submitit", partition=partition,
                                    gpus_per_job=gpus_per_job, time_min=time_min,
                                    array_parallelism=array_parallelism,
                                    options=parse_options(executor_opt, "--executor-opt"))
        fan = executors.run_jobs(plans, store, out_root, settings, force=force, gif=gif, progress=RichProgress(term))
        outcomes = fan.outcomes
        for c in fan.merge.conflicts:
            term.print(f"[yellow]conflict[/] {c.label} (run {c.spec_hash[:12]}) in {c.source}: already run "
                       f"#{c.kept}; kept once", soft_wrap=True)
    for i, plan in enumerate(plans if executor is None else [], 1):
        term.rule(f"[{i}/{len(plans)}] {plan.label}")
        outcome = pipeline.execute(plan, store, out_root, force=force, progress=RichProgress(term), gif=gif)
        term.print(f"{TRAIN_STATUS.get(outcome.train_status, outcome.train_status)} · run #{outcome.record.id}")
        outcomes.append(outcome)
    if as_json:
        print_json({"runs": [_outcome_json(o) for o in outcomes], "skipped": skipped})
        return
    out_console = console()
    boards = report.build_boards([o.record for o in outcomes], latest_only=True,
                                 known_directions=report.registry_directions(), details=False,
                                 headline_only=out_console.is_terminal, results_dir=out_root)
    if out_console.is_terminal:  # headline columns whole at the terminal's width (`leaderboard --all-metrics`)
        tables = report.rich_tables(boards, width=out_console.width)
    else:
        tables = report.rich_tables(boards)
        out_console.width = max(out_console.width, report.natural_width(tables, out_console))
    for table in tables:
        out_console.print(table)
    for line in _ruler_lines(outcomes):
        out_console.print(line, highlight=False, soft_wrap=True)


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.command(name="run")(run)
    app.command(name="compare")(compare)
