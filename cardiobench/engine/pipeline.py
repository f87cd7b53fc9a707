"""The benchmark pipeline behind ``cardiobench run`` and ``compare``: config -> plan -> train, sample, evaluate, store.

What depends on what (so work is never repeated):

- the **train spec** (data, noise process, backbone, training hyper-parameters, seed) names a checkpoint,
  cached under its hash; a matching shipped checkpoint (``cardiobench/assets/checkpoints``) is reused;
- the **run spec** adds the sampler, its steps and options, the sample count and seed, and the metric set;
  a finished run is found in the results store by its hash and not redone (unless forced);
- the **evaluator id** (the ruler) is stored with every row, so only runs measured alike are ranked together.
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from cardiobench import config as cfgmod
from cardiobench.errors import CardiobenchError
from cardiobench.plugins import check_compatible, get_component
from cardiobench.results.store import ResultStore, RunRecord, stable_hash
from cardiobench.specs import TrainSpec

#: trained checkpoints shipped with the package, named ``<train spec hash>.pt``
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[1] / "assets" / "checkpoints"


def _accepted(factory: Any, candidates: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``candidates`` the plugin factory takes as keyword arguments."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(candidates)
    return {k: v for k, v in candidates.items() if k in params}


def train_spec_from_config(cfg: dict[str, dict[str, Any]]) -> TrainSpec:
    """The ``TrainSpec`` a resolved configuration describes.

    Generic keys (``diffusion.num_timesteps``, ``beta_schedule``, ``prediction_type``; the image size) go
    to the noise process only if its factory takes them (blurring has no beta schedule); ``*.options``
    tables always go through as they are, so a typo there fails loudly in the plugin.
    """
    data, model, diff, train = cfg["data"], cfg["model"], cfg["diffusion"], cfg["train"]
    noise = get_component("noise", diff["noise"])
    generic = {
        "num_timesteps": diff["num_timesteps"],
        "beta_schedule": diff["beta_schedule"],
        "prediction_type": diff["prediction_type"],
        "image_size": data["resolution"],
    }
    noise_options = {**_accepted(noise.factory, generic), **(diff.get("options") or {})}
    backbone = get_component("backbone", model["backbone"])
    if model.get("size"):
        backbone_options: dict[str, Any] = {"size": model["size"]}
    else:
        backbone_options = {"base_channels": model["base_channels"], "channel_mults": list(model["channel_mults"])}
    backbone_options = {**_accepted(backbone.factory, backbone_options), **(model.get("options") or {})}
    return TrainSpec(
        dataset=data["dataset"],
        resolution=data["resolution"],
        data_seed=data["seed"],
        dataset_options=dict(data.get("options") or {}),
        noise=diff["noise"],
        noise_options=noise_options,
        backbone=model["backbone"],
        backbone_options=backbone_options,
        steps=train["steps"],
        epochs=train["epochs"],
        batch_size=train["batch_size"],
        lr=train["lr"],
        warmup_steps=train["warmup_steps"],
        loss=train["loss"],
        ema_decay=train["ema_decay"],
        grad_clip=train["grad_clip"],
        seed=train["seed"],
        precision=train["precision"],
    )


@dataclass
class RunPlan:
    """One benchmark run, fully specified before any work starts."""

    task: str
    train: TrainSpec
    sampler: str
    sampler_options: dict[str, Any]
    sample_steps: int | None
    sample_seed: int
    sample_batch: int
    grid_samples: int
    eval_samples: int
    metrics: list[str]
    device: str
    data_root: str | None
    config: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)

    @property
    def train_hash(self) -> str:
        return self.train.hash()

    def spec(self) -> dict[str, Any]:
        """Everything that determines the result (not where or how fast it ran)."""
        return {
            "task": self.task,
            "train": self.train.to_dict(),
            "train_hash": self.train_hash,
            "sample": {
                "sampler": self.sampler,
                "options": self.sampler_options,
                "steps": self.sample_steps,
                "seed": self.sample_seed,
                "num_samples": self.eval_samples,
            },
            "eval": {"metrics": sorted(self.metrics)},
        }

    @property
    def spec_hash(self) -> str:
        return stable_hash(self.spec())

    @property
    def label(self) -> str:
        return f"{self.train.noise} x {self.sampler} ({self.train.backbone}, {self.train.dataset})"


def plan_from_config(cfg: dict[str, dict[str, Any]]) -> RunPlan:
    """Validate the combination and build the plan; raises one-line errors before any work starts."""
    task = cfg["run"]["task"]
    if task != "generation":
        raise CardiobenchError(f"task {task!r} is not available in `cardiobench run` yet",
                               "use --task generation (segmentation needs a conditioning method)")
    method = cfg["conditioning"]["method"]
    if method:
        get_component("conditioning", method)
    noise, sampler = cfg["diffusion"]["noise"], cfg["sample"]["sampler"]
    check_compatible(noise=noise, sampler=sampler, conditioning=method, task=task)
    sampler_comp = get_component("sampler", sampler)
    smp_generic = _accepted(sampler_comp.factory, {"eta": cfg["sample"]["eta"]})
    for name in cfg["eval"]["metrics"]:
        get_component("metric", name)
    return RunPlan(
        task=task,
        train=train_spec_from_config(cfg),
        sampler=sampler,
        sampler_options={**smp_generic, **(cfg["sample"].get("options") or {})},
        sample_steps=cfg["sample"]["steps"],
        sample_seed=cfg["sample"]["seed"],
        sample_batch=cfg["sample"]["batch_size"],
        grid_samples=cfg["sample"]["num_samples"],
        eval_samples=cfg["eval"]["num_samples"],
        metrics=list(cfg["eval"]["metrics"]),
        device=cfg["run"]["device"],
        data_root=cfg["data"]["data_root"],
        config=cfg,
    )


def resolve(preset: str | None, config_file: str | None, overrides: dict[str, Any], sets: list[str]
            ) -> dict[str, dict[str, Any]]:
    """The run configuration: defaults < preset < config file < ``--set`` < typed options."""
    return cfgmod.resolve_config(preset, config_file, overrides, sets or ())


# -- execution -----------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    plan: RunPlan
    record: RunRecord
    train_status: str  # trained | resumed | reused | reused-shipped | skipped (finished run found in the store)
    out_dir: Path
    reference: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def shipped_checkpoint(train_hash: str) -> Path | None:
    path = SHIPPED_CHECKPOINTS / f"{train_hash}.pt"
    return path if path.is_file() else None


def _ensure_trained(plan: RunPlan, *, retrain: bool, quiet: bool, console: Console):
    """Train, continue, or reuse the plan's model; the checkpoint lives in the cache."""
    from cardiobench.engine.checkpoints import cached_checkpoint_path, find_cached_checkpoint
    from cardiobench.engine.train import resolve_spec, train

    spec = resolve_spec(plan.train)
    status_override = None
    if not retrain and find_cached_checkpoint(spec.hash()) is None:
        shipped = shipped_checkpoint(spec.hash())
        if shipped is not None:
            dst = cached_checkpoint_path(spec.hash())
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_suffix(".tmp")
            shutil.copyfile(shipped, tmp)
            tmp.replace(dst)
            status_override = "reused-shipped"
    result = train(spec, None, retrain=retrain, device=plan.device, data_root=plan.data_root, quiet=quiet,
                   console=console)
    return result, (status_override if status_override and result.status == "reused" else result.status)


def _gif(plan: RunPlan, checkpoint: Path, path: Path, n: int = 16, frames: int = 24) -> None:
    """The reverse process of ``n`` samples as an animated GIF (the seed report's Figure 11)."""
    import torch

    from cardiobench.data.tensors import onehot_to_masks
    from cardiobench.engine.sample import load_model
    from cardiobench.engine.train import model_channels, resolve_device
    from cardiobench.viz import mask_grid

    dev = resolve_device(plan.device)
    model, process, tspec, _ = load_model(checkpoint, device=dev)
    smp = get_component("sampler", plan.sampler).create(process, **plan.sampler_options)
    smp.set_timesteps(plan.sample_steps)
    total = len(smp.timesteps)
    keep = {round(i * (total - 1) / (frames - 1)) for i in range(frames)}
    shape = (n, model_channels(tspec)[1], tspec.resolution, tspec.resolution)
    generator = torch.Generator().manual_seed(plan.sample_seed)
    images = []
    for step in smp.iter_sample(lambda x, t: model(x, t), shape, generator=generator, device=dev):
        if step.index in keep:
            masks = onehot_to_masks(step.x_t.float()).cpu().numpy()
            images.append(mask_grid(masks, nrow=4, scale=4).convert("P"))
    images += [images[-1]] * 6  # linger on the result
    tmp = path.with_suffix(".tmp.gif")
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=120, loop=0)
    tmp.replace(path)


def execute(plan: RunPlan, store: ResultStore, out_root: Path, *, retrain: bool = False, force: bool = False,
            quiet: bool = False, console: Console | None = None, gif: bool = True) -> RunOutcome:
    """Run the plan end to end (or return the stored result of an identical finished run)."""
    from cardiobench.engine.sample import sample, write_samples
    from cardiobench.metrics.api import evaluate_generation
    from cardiobench.results.environment import collect_environment

    console = console or Console(stderr=True)
    spec_hash = plan.spec_hash
    out_dir = Path(out_root) / "runs" / spec_hash[:12]
    if not force and not retrain:
        done = store.find(spec_hash)
        if done is not None:
            return RunOutcome(plan, done, "skipped", out_dir)

    t0 = time.perf_counter()
    trained, train_status = _ensure_trained(plan, retrain=retrain, quiet=quiet, console=console)
    t_train = time.perf_counter() - t0

    t1 = time.perf_counter()
    samples = sample(trained.checkpoint, sampler=plan.sampler, steps=plan.sample_steps,
                     num_samples=plan.eval_samples, seed=plan.sample_seed, sampler_options=plan.sampler_options,
                     batch_size=plan.sample_batch, device=plan.device, quiet=quiet, console=console)
    t_sample = time.perf_counter() - t1
    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_samples(samples, out_dir)
    from cardiobench.viz import save_grid

    grid = out_dir / "grid.png"
    save_grid(grid, samples.masks[: plan.grid_samples], scale=4)
    artefacts: dict[str, str] = {"samples": files["samples"], "sample_grid": str(grid)}
    if gif:
        t_gif = time.perf_counter()
        _gif(plan, trained.checkpoint, out_dir / "reverse.gif")
        artefacts["reverse_gif"] = str(out_dir / "reverse.gif")
        t_gif = time.perf_counter() - t_gif
    else:
        t_gif = 0.0
    if trained.loss_curve is not None and Path(trained.loss_curve).is_file():
        shutil.copyfile(trained.loss_curve, out_dir / "loss_curve.png")
        artefacts["loss_curve"] = str(out_dir / "loss_curve.png")

    t2 = time.perf_counter()
    if not quiet:
        console.print(f"[bold]evaluate[/] {len(samples.masks)} samples against the {plan.train.dataset} test split")
    data_options = {**plan.train.dataset_options, **({"data_root": plan.data_root} if plan.data_root else {}),
                    **({"seed": plan.train.data_seed} if plan.train.data_seed else {})}
    evaluation = evaluate_generation(samples.masks, plan.train.dataset, data_options=data_options or None,
                                     metrics=plan.metrics or None, device=str(samples.device), seed=plan.sample_seed)
    t_eval = time.perf_counter() - t2
    meta = evaluation["meta"]
    timings = {
        "train_s": round(t_train, 3),
        "train_images_per_s": trained.images_per_s,
        "sample_s": round(t_sample, 3),
        "sample_images_per_s": round(len(samples.masks) / t_sample, 3) if t_sample else None,
        "gif_s": round(t_gif, 3),
        "eval_s": round(t_eval, 3),
        "total_s": round(time.perf_counter() - t0, 3),
    }
    metrics_path = out_dir / "metrics.json"
    payload = {"spec": plan.spec(), "spec_hash": spec_hash, "train_status": train_status, **evaluation,
               "timings": timings}
    tmp = metrics_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(metrics_path)
    artefacts["metrics"] = str(metrics_path)
    artefacts["checkpoint"] = str(trained.checkpoint)
    record = RunRecord(
        task=plan.task,
        dataset=plan.train.dataset,
        noise=plan.train.noise,
        sampler=plan.sampler,
        backbone=plan.train.backbone,
        conditioning=None,
        spec=plan.spec(),
        spec_hash=spec_hash,
        train_hash=trained.spec_hash,
        seeds={"train": plan.train.seed, "data": plan.train.data_seed, "sample": plan.sample_seed},
        metrics=evaluation["metrics"],
        directions={k: v for k, v in evaluation["directions"].items() if v in ("lower", "higher")},
        evaluator_id=meta.get("evaluator_id"),
        timings=timings,
        environment=collect_environment(samples.device, train_status=train_status,
                                        evaluator_accuracy=meta.get("evaluator_accuracy")),
        artefacts=artefacts,
    )
    record.id = store.add_run(record)
    return RunOutcome(plan, record, train_status, out_dir, evaluation.get("reference", {}), meta)
