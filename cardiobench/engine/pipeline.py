"""The benchmark pipeline behind ``cardiobench run`` and ``compare``: config -> plan -> train, sample, evaluate, store.

What depends on what (so work is never repeated):

- the **train spec** (data, noise process, backbone, training hyper-parameters, seed) names a checkpoint,
  cached under its hash; a matching shipped checkpoint (``cardiobench/assets/checkpoints``) is reused;
- the **run spec** adds the sampler, its steps and options, the sample count and seed, and the metric set;
  a finished run is found in the results store by its hash and not redone (unless forced);
- the **evaluator id** (the ruler) is stored with every row, so only runs measured alike are ranked together.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench import config as cfgmod
from cardiobench import distributed
from cardiobench.autoencoders.runs import (
    CEILING_PREFIX,
    autoencoder_spec_from_config,
    ceiling_values,
    is_file_name,
    latent_ceiling,
    latent_representation,
    prepare_for_run,
    test_items,
)
from cardiobench.autoencoders.train import autoencoder_data
from cardiobench.config import volume_depth
from cardiobench.data import open_dataset
from cardiobench.diffusion.intensity import grey_to_images, images_to_grey
from cardiobench.downstream.segmenter import SegmenterSpec
from cardiobench.errors import CardiobenchError, DataError, IncompatibleError
from cardiobench.factories import (
    accepted_options,
    build_conditioning,
    build_process,
    build_variable,
    check_spatial_dims,
    create,
    map_downsampling,
    resolve_device,
    resolve_spec,
    unbounded_sampler_options,
)
from cardiobench.metrics.api import evaluate_generation, evaluate_segmentation, metric_components
from cardiobench.metrics.paired import evaluate_synthesis
from cardiobench.paths import atomic_write_bytes, atomic_write_image, cache_dir, check_writable_dir
from cardiobench.plugins import check_compatible, get_component, registry
from cardiobench.progress import Progress
from cardiobench.progress import resolve as resolve_progress
from cardiobench.results.store import ResultStore, RunRecord, stable_hash
from cardiobench.specs import TASKS, TrainSpec

#: the subset of generic settings a plugin factory takes (``cardiobench.factories.accepted_options``)
_accepted = accepted_options


def addressed_options(options: dict[str, Any] | None, kind: str, name: str) -> dict[str, Any]:
    """The options of a ``*.options`` table that belong to component ``name`` of ``kind``: its flat keys, and the
    keys of a sub-table named after the component (``sample.options.ddim.eta = 0.5`` goes to ``ddim`` only).
    Sub-tables named after other registered components of the kind belong to those and are left out."""
    options = dict(options or {})
    names = {c.name for c in registry(kind)}
    own = options.pop(name, None) if isinstance(options.get(name), dict) else None
    flat = {k: v for k, v in options.items() if not (k in names and isinstance(v, dict))}
    return {**flat, **(own or {})}


def sampler_options_of(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The options a configuration gives its sampler: the generic ``sample.eta`` if the sampler's factory names
    ``eta``, then ``sample.options`` (flat keys, and the sub-table named after the sampler)."""
    sample = cfg["sample"]
    comp = get_component("sampler", sample["sampler"])
    return {**_accepted(comp.factory, {"eta": sample["eta"]}, named_only=True),
            **addressed_options(sample.get("options"), "sampler", sample["sampler"])}


def flat_options(options: dict[str, Any] | None, kind: str) -> list[str]:
    """The keys of a ``*.options`` table not addressed to one component of ``kind`` (they go to every one)."""
    names = {c.name for c in registry(kind)}
    return [k for k, v in (options or {}).items() if not (k in names and isinstance(v, dict))]


def train_spec_from_config(cfg: dict[str, dict[str, Any]]) -> TrainSpec:
    """The ``TrainSpec`` a resolved configuration describes.

    Generic keys (``diffusion.num_timesteps``, ``beta_schedule``, ``prediction_type``; the image size) go
    to the noise process only if its factory takes them (blurring has no beta schedule); ``*.options``
    tables always go through as they are, so a typo there fails loudly in the plugin.
    """
    data, model, diff, train = cfg["data"], cfg["model"], cfg["diffusion"], cfg["train"]
    depth = volume_depth(cfg)
    noise = get_component("noise", diff["noise"])
    representation, representation_options = _representation_of(cfg)
    generic = {
        "num_timesteps": diff["num_timesteps"],
        "beta_schedule": diff["beta_schedule"],
        "prediction_type": diff["prediction_type"],
        # the side of the diffused grid: the slice's, or an autoencoder latent's (blurring's DCT runs over it); a
        # volume's (D, H, W) grid
        "image_size": _grid_size(create("representation", representation, **representation_options),
                                 data["resolution"], depth),
    }
    own = addressed_options(diff.get("options"), "noise", diff["noise"])
    if depth and "spacing" not in own and _accepted(noise.factory, {"spacing": None}, named_only=True):
        generic["spacing"] = volume_spacing_ratio(cfg, depth)  # blurring's 3-D DCT in physical units
    noise_options = {**_accepted(noise.factory, generic), **own}
    backbone = get_component("backbone", model["backbone"])
    if model.get("size"):
        backbone_options: dict[str, Any] = {"size": model["size"]}
    else:
        backbone_options = {"base_channels": model["base_channels"], "channel_mults": list(model["channel_mults"])}
    backbone_options = {**_accepted(backbone.factory, backbone_options), **(model.get("options") or {})}
    method = cfg["conditioning"]["method"]
    trains = bool(method) and get_component("conditioning", method).metadata.get("trains_network", True)
    return TrainSpec(
        conditioning=method if trains else None,
        conditioning_options=dict(cfg["conditioning"].get("options") or {}) if trains else {},
        dataset=data["dataset"],
        resolution=data["resolution"],
        data_seed=data["seed"],
        dataset_options={**(data.get("options") or {}), **({"depth": depth} if depth else {})},
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
        representation=representation,
        representation_options=representation_options,
    )


#: tasks a volumetric run may do (synthesis and utility measure with 2-D rulers and a 2-D segmenter)
VOLUME_TASKS: tuple[str, ...] = ("generation", "segmentation")


def _check_volumes(cfg: dict[str, dict[str, Any]], task: str) -> None:
    """A volumetric run (``--dims 3``): the task and every component that sees the volume's geometry support 3-D
    (registration metadata ``spatial_dims``; absent: 2-D only). One-line ``IncompatibleError`` otherwise."""
    if task not in VOLUME_TASKS:
        raise IncompatibleError(f"task {task!r} works on 2-D slices only", f"use --dims 2, or a task of: "
                                f"{', '.join(VOLUME_TASKS)}")
    check_spatial_dims("backbone", cfg["model"]["backbone"], 3)
    check_spatial_dims("noise", cfg["diffusion"]["noise"], 3)
    check_spatial_dims("sampler", cfg["sample"]["sampler"], 3)
    check_spatial_dims("representation", _representation_of(cfg)[0], 3)
    name = (cfg.get("autoencoder") or {}).get("name")
    if name and not is_file_name(str(name)):  # a trained file says its own geometry (checked against the data)
        check_spatial_dims("autoencoder", name, 3)
    if cfg["conditioning"]["method"]:
        check_spatial_dims("conditioning", cfg["conditioning"]["method"], 3)


def volume_spacing_ratio(cfg: dict[str, dict[str, Any]], depth: int) -> list[float] | None:
    """The per-axis spacing of a volumetric run's voxels in in-plane pixels, ``[slice / in-plane, 1, 1]`` (medians of
    the training volumes), for a process whose frequencies use it (blurring's 3-D DCT); ``None`` (isotropic in
    voxels) when the data set measures in px, where the slice axis is in source slices and no ratio is physical."""
    data = cfg["data"]
    options = {**(data.get("options") or {}), "depth": depth, "seed": data["seed"],
               **({"data_root": data["data_root"]} if data.get("data_root") else {})}
    source = open_dataset(data["dataset"], size=data["resolution"], **options)
    if getattr(source, "spacing_unit", "mm") != "mm":
        return None
    sp = np.median(np.asarray(source.load("train").spacing, dtype=np.float64), axis=0)
    return [round(float(sp[0] / sp[1:].mean()), 4), 1.0, 1.0]


def _grid_size(representation: Any, resolution: int, depth: int | None) -> int | list[int]:
    """The diffused grid a process with an ``image_size`` is built for: the side of a square slice (an int), or a
    volume's ``[D, H, W]``."""
    if depth is None:
        return int(representation.shape(resolution)[-1])
    return [int(v) for v in representation.shape((depth, resolution, resolution))[1:]]


def _representation_of(cfg: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The representation a configuration diffuses and its options: ``diffusion.representation``; with an
    autoencoder (``autoencoder.name``), one that diffuses its latent, with the autoencoder's spec as its option
    ``autoencoder`` (``cardiobench.autoencoders.runs``)."""
    diff = cfg["diffusion"]
    default = TrainSpec.__dataclass_fields__["representation"].default
    name = diff.get("representation") or default
    options = dict(diff.get("representation_options") or {})
    autoencoder = autoencoder_spec_from_config(cfg)
    task = cfg.get("run", {}).get("task", "generation")
    images = [c.name for c in registry("representation") if c.metadata.get("diffuses") == "image"]
    if autoencoder is not None:  # its latent replaces the representation; what it encodes must fit the task
        _check_autoencoder_data(autoencoder.autoencoder, task)
        name = latent_representation(diff.get("representation"), default)
        options["autoencoder"] = autoencoder.to_dict()
        return name, options
    if task == "synthesis" and name == default and images:  # synthesis diffuses the image: the default becomes it
        name = images[0]
    if (name in images) != (task == "synthesis"):
        raise IncompatibleError(
            f"representation {name!r} " + ("diffuses MRI images: it belongs to --task synthesis" if name in images
                                           else "diffuses label maps; synthesis diffuses the MRI image"),
            "drop --representation" if task == "synthesis" else "use --task synthesis, or another representation")
    return name, options


def _check_autoencoder_data(name: str, task: str) -> None:
    """An autoencoder encodes label maps or MRI images (``autoencoder_data``); synthesis diffuses the image, every
    other task the label map. One ``IncompatibleError`` line naming the ones that fit."""
    wants = "image" if task == "synthesis" else "mask"
    has = autoencoder_data(name)
    if has != wants:
        words = {"image": "MRI images", "mask": "label maps"}
        fitting = [c.name for c in registry("autoencoder") if c.metadata.get("data", "mask") == wants]
        raise IncompatibleError(f"autoencoder {name!r} encodes {words[has]}; --task {task} diffuses {words[wants]}",
                                f"use --autoencoder {' or '.join(fitting)}" if fitting else
                                f"install an autoencoder of {words[wants]}")


#: fewest samples a generation run can be scored on (FID and its peers compare sets of at least 2 masks;
#: ``evaluate_generation`` refuses fewer), checked before training rather than after sampling
MIN_GENERATION_SAMPLES = 2


def takes_data_root(component: Any) -> bool:
    """Whether a registered data set reads files from a data root: all do, except those registered with
    ``needs_data=False`` (generated on the fly, like the phantom), which have nothing to read."""
    return bool(component.metadata.get("needs_data", True))


def select_dataset(dataset: str | None, data_root: str | os.PathLike | None, *, flag: str = "--data-root") -> str:
    """The data set a command uses, checked before any work: ``dataset`` if named, else the one a data root
    selects (``cardiobench.data.resolve_dataset_name``, as ``data info`` does), else the default.

    A data root (named ``flag`` in messages) must be an existing folder, and the data set must take one:
    ``--data-root`` beside a data set that reads no files is refused rather than silently ignored.
    """
    from cardiobench.data import resolve_dataset_name

    root = None if data_root is None or not str(data_root).strip() else str(data_root)
    name = resolve_dataset_name(dataset, root)
    comp = get_component("dataset", name)  # an unknown name: one line with a did-you-mean
    if root is None:
        return name
    if not takes_data_root(comp):
        readers = [c.name for c in registry("dataset") if takes_data_root(c)]
        hint = f"drop {flag} to use {name}"
        if readers:
            hint += f", or choose a data set that reads files with --dataset ({', '.join(readers)})"
        raise CardiobenchError(f"{flag} {root} was given, but data set {name!r} reads no files and takes no data "
                               "root", hint)
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"{flag} {root} does not exist", f"pass the folder that holds the {name} files")
    if not path.is_dir():
        raise DataError(f"{flag} {root} is a file, not a folder", f"pass the folder that holds the {name} files")
    return name


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
    conditioning: str | None = None
    conditioning_options: dict[str, Any] = field(default_factory=dict)
    #: guidance scale (classifier(-free) guidance) or ControlNet conditioning scale; None where a method has none
    guidance_scale: float | None = None
    ensemble_k: int = 1
    eval_split: str = "test"
    #: the sampler's every option as built (defaults included), so a changed default changes the run hash
    sampler_config: dict[str, Any] = field(default_factory=dict)
    #: the utility task's settings (config section ``utility``, the synthesis model's train hash resolved)
    utility: dict[str, Any] = field(default_factory=dict)

    @property
    def train_hash(self) -> str:
        return self.train.hash()

    def spec(self) -> dict[str, Any]:
        """Everything that determines the result (not where or how fast it ran)."""
        spec: dict[str, Any] = {
            "task": self.task,
            "train": self.train.to_dict(),
            "train_hash": self.train_hash,
            "sample": {
                "sampler": self.sampler,
                "options": self.sampler_options,
                "steps": self.sample_steps,
                "seed": self.sample_seed,
                "num_samples": self.eval_samples,
                **({"resolved": self.sampler_config} if self.sampler_config else {}),
            },
            "eval": {"metrics": sorted(self.metrics)},
        }
        if self.conditioning:
            spec["conditioning"] = {"method": self.conditioning, "options": self.conditioning_options,
                                    "guidance_scale": self.guidance_scale}
        if self.task == "segmentation":
            spec["eval"].update(ensemble_k=self.ensemble_k, split=self.eval_split)
        elif self.task == "synthesis":
            spec["eval"].update(split=self.eval_split)
        elif self.task == "utility":
            spec["utility"] = self.utility
        return spec

    @property
    def spec_hash(self) -> str:
        return stable_hash(self.spec())

    @property
    def label(self) -> str:
        cond = ""
        if self.conditioning:
            scale = f" s={self.guidance_scale:g}" if self.guidance_scale is not None else ""
            cond = f", {self.conditioning}{scale}"
        default = TrainSpec.__dataclass_fields__["representation"].default  # the label names only another one
        rep = "" if self.train.representation == default else f"{self.train.representation} "
        return f"{rep}{self.train.noise} x {self.sampler} ({self.train.backbone}, {self.train.dataset}{cond})"


def _sampler_config(name: str, train: TrainSpec, options: dict[str, Any], steps: int | None) -> dict[str, Any]:
    """The sampler's resolved options (its ``config()``), built on the run's noise process; ``{}`` if it has none.

    Building it checks the noise process's options (``diffusion.options``, ``--noise-opt``) and the sampler's,
    each a one-line error naming the component, before any work."""
    process = build_process(resolve_spec(train, build_process(train)))  # the process's own errors first
    sampler = create("sampler", name, process, **options)
    if steps is not None:
        sampler.set_timesteps(steps)
    config = getattr(sampler, "config", None)
    return json.loads(json.dumps(config(), default=str)) if callable(config) else {}


def plan_from_config(cfg: dict[str, dict[str, Any]], *, root_flag: str = "data.data_root") -> RunPlan:
    """Validate the combination and build the plan; raises one-line errors before any work starts.

    ``root_flag`` names where ``data.data_root`` came from in messages (``--data-root`` on the command line).
    """
    task = cfg["run"]["task"]
    if task not in TASKS:
        raise CardiobenchError(f"unknown task {task!r}", f"use one of: {', '.join(TASKS)}")
    select_dataset(cfg["data"]["dataset"], cfg["data"]["data_root"], flag=root_flag)
    n_eval = cfg["eval"]["num_samples"]
    if task == "generation" and n_eval < MIN_GENERATION_SAMPLES:
        raise cfgmod.ConfigError(
            f"eval.num_samples (--num-samples) must be >= {MIN_GENERATION_SAMPLES} for generation: the metrics "
            f"compare sets of at least {MIN_GENERATION_SAMPLES} masks, got {n_eval}", "e.g. --num-samples 64")
    method = cfg["conditioning"]["method"]
    scale = float(cfg["conditioning"]["guidance_scale"])
    condition = None
    if method:
        comp = get_component("conditioning", method)
        condition = comp.metadata.get("condition")
    if task in ("segmentation", "synthesis") and condition != "image":
        image_methods = [c.name for c in registry("conditioning") if c.metadata.get("condition") == "image"
                         and task in tuple(c.metadata.get("tasks", (task,)))]
        what = "an image-conditioning" if task == "segmentation" else "a map-conditioning (the label map)"
        raise IncompatibleError(
            f"{task} needs {what} method" + (f"; {method!r} conditions on {condition}s" if method else ""),
            "add " + " or ".join(f"--conditioning {m}" for m in image_methods))
    if task == "utility" and condition == "image":
        raise IncompatibleError(f"utility measures a mask generator; {method!r} conditions on images",
                                "drop --conditioning, or use a label method (classifier-free)")
    noise, sampler = cfg["diffusion"]["noise"], cfg["sample"]["sampler"]
    # the representation as resolved: an autoencoder turns the configured one into its latent
    check_compatible(noise=noise, sampler=sampler, conditioning=method, task=task,
                     representation=_representation_of(cfg)[0])
    if volume_depth(cfg):
        _check_volumes(cfg, task)
    has_scale = bool(method) and comp.metadata.get("has_scale", True)
    if method and not has_scale and scale != 1.0:
        raise IncompatibleError(f"{method} has no guidance scale (got {scale:g})", "leave --guidance-scale at 1")

    for name in cfg["eval"]["metrics"]:
        get_component("metric", name)
    options = dict(cfg["conditioning"].get("options") or {})
    made = None
    if method:  # the method's options, checked now rather than after training
        try:
            made = comp.create(**options)
        except TypeError as exc:
            raise CardiobenchError(f"bad option for conditioning {method!r}: {exc}",
                                   "see the method's options in docs/conditioning.md") from None
    # resolved (every default spelled out): the hash in the run spec, metrics.json and the store is the one that
    # names the checkpoint
    train = resolve_spec(train_spec_from_config(cfg))
    # what is diffused fits the process and the guidance (e.g. self-conditioning), checked before training
    variable = build_variable(train)
    variable.check_guidance(bool(getattr(made, "needs_grad", False)))
    if condition == "image":  # the paired map must come down to the diffused grid (an autoencoder's latent)
        map_downsampling(variable.representation, train)
    sampler_options = unbounded_sampler_options(sampler, variable.representation, sampler_options_of(cfg))
    if task in ("synthesis", "utility"):
        _check_segmenter(task, cfg)
    utility = _utility_settings(cfg, root_flag) if task == "utility" else {}
    return RunPlan(
        task=task,
        train=train,
        sampler=sampler,
        sampler_options=sampler_options,
        sampler_config=_sampler_config(sampler, train, sampler_options, cfg["sample"]["steps"]),
        sample_steps=cfg["sample"]["steps"],
        sample_seed=cfg["sample"]["seed"],
        sample_batch=cfg["sample"]["batch_size"],
        grid_samples=cfg["sample"]["num_samples"],
        eval_samples=cfg["eval"]["num_samples"],
        metrics=list(cfg["eval"]["metrics"]),
        device=cfg["run"]["device"],
        data_root=cfg["data"]["data_root"],
        config=cfg,
        conditioning=method or None,
        conditioning_options=options if method else {},
        guidance_scale=scale if has_scale else None,
        ensemble_k=int(cfg["eval"]["ensemble_k"]) if task == "segmentation" else 1,
        eval_split=cfg["eval"]["split"],
        utility=utility,
    )


def synthesis_config(cfg: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The configuration of the mask-to-image model a utility run pairs its masks with: the ``synthesis`` preset on
    the run's data, with ``utility.synthesis`` as the method (and ``utility.synthesis_steps`` if set)."""
    data, util = cfg["data"], cfg["utility"]
    overrides = {"data.dataset": data["dataset"], "data.resolution": data["resolution"], "data.seed": data["seed"],
                 "data.options": data.get("options"), "data.data_root": data["data_root"],
                 "conditioning.method": util["synthesis"], "train.steps": util["synthesis_steps"],
                 "run.device": cfg["run"]["device"]}
    return resolve("synthesis", None, {k: v for k, v in overrides.items() if v is not None}, [])


def _check_segmenter(task: str, cfg: dict[str, dict[str, Any]]) -> None:
    """The fixed segmenter of the synthesis (faithfulness) and utility tasks fits the run's resolution and options:
    checked before any training, not after it."""
    options = dict(cfg["utility"].get("segmenter") or {}) if task == "utility" else {}
    try:
        SegmenterSpec(resolution=int(cfg["data"]["resolution"]), **options)
    except TypeError as exc:
        raise CardiobenchError(f"utility.segmenter: {exc}", "see the recipe's fields in docs/synthesis.md") from None
    except CardiobenchError as exc:
        raise CardiobenchError(f"--task {task} scores with the fixed segmenter: {exc.message}") from None


def _utility_settings(cfg: dict[str, dict[str, Any]], root_flag: str) -> dict[str, Any]:
    """The utility task's settings as they enter the run spec, checked before any work: the synthesis model's plan
    (its method must serve synthesis), the evaluation data set (selected like ``--dataset``)."""
    util = cfg["utility"]
    if cfg["eval"]["num_samples"] < MIN_GENERATION_SAMPLES:
        raise cfgmod.ConfigError(f"eval.num_samples (--num-samples) is the number of synthetic pairs and must be "
                                 f">= {MIN_GENERATION_SAMPLES}, got {cfg['eval']['num_samples']}",
                                 "e.g. --num-samples 512")
    synthesis = plan_from_config(synthesis_config(cfg), root_flag=root_flag)
    eval_dataset = util["eval_dataset"]
    if eval_dataset or util["eval_data_root"]:
        eval_dataset = select_dataset(eval_dataset, util["eval_data_root"], flag="--eval-data-root")
    return {"synthesis": synthesis.train.to_dict(), "synthesis_hash": synthesis.train_hash,
            "synthesis_sampler": synthesis.sampler, "synthesis_steps": synthesis.sample_steps,
            "few_patients": util["few_patients"], "eval_dataset": eval_dataset,
            "eval_options": dict(util.get("eval_options") or {}),
            **({"segmenter": dict(util["segmenter"])} if util.get("segmenter") else {})}


def resolve(preset: str | None, config_file: str | None, overrides: dict[str, Any], sets: list[str]
            ) -> dict[str, dict[str, Any]]:
    """The run configuration: defaults < preset < config file < ``--set`` < typed options."""
    return cfgmod.resolve_config(preset, config_file, overrides, sets or ())


def task_of(conditioning: str | None) -> str | None:
    """The task conditioning methods imply when none is given: segmentation when every method named
    (comma-separated) applies to segmentation only (registration metadata ``tasks``), else ``None``."""
    names = [c.strip() for c in (conditioning or "").split(",") if c.strip()]
    if not names:
        return None
    tasks = [tuple(get_component("conditioning", n).metadata.get("tasks", ())) for n in names]
    if all(t and "generation" not in t and "segmentation" in t for t in tasks):
        return "segmentation"
    return None


def _serves(conditioning: str, task: str) -> bool:
    """Whether every method named in ``conditioning`` (comma-separated) applies to ``task``."""
    names = [c.strip() for c in conditioning.split(",") if c.strip()]
    return all(task in tuple(get_component("conditioning", n).metadata.get("tasks", (task,))) for n in names)


def default_preset(task: str | None) -> str:
    """The preset of a run that names none: ``segmentation`` / ``synthesis`` for those tasks, else the default
    (quick)."""
    return task if task in ("segmentation", "synthesis") else cfgmod.DEFAULT_PRESET


#: the options of ``cardiobench run`` / ``cardiobench.run`` -> the configuration key each sets
RUN_OPTION_KEYS: dict[str, str] = {
    "noise": "diffusion.noise", "sampler": "sample.sampler", "dataset": "data.dataset", "data_root": "data.data_root",
    "backbone": "model.backbone", "conditioning": "conditioning.method", "task": "run.task",
    "steps": "sample.steps", "train_steps": "train.steps", "num_samples": "eval.num_samples", "seed": "train.seed",
    "device": "run.device", "guidance_scale": "conditioning.guidance_scale", "ensemble_k": "eval.ensemble_k",
    "representation": "diffusion.representation", "autoencoder": "autoencoder.name",
    "eval_dataset": "utility.eval_dataset", "eval_data_root": "utility.eval_data_root", "depth": "data.depth",
}
#: ``--dims``: 2 (slices) or 3 (volumes of ``data.depth`` slices)
DIMS: tuple[int, ...] = (2, 3)


#: the options of ``cardiobench train`` / ``cardiobench.train`` -> the configuration key each sets
TRAIN_OPTION_KEYS: dict[str, str] = {
    "dataset": "data.dataset", "data_root": "data.data_root", "data_seed": "data.seed",
    "resolution": "data.resolution", "dataset_options": "data.options", "noise": "diffusion.noise",
    "timesteps": "diffusion.num_timesteps", "schedule": "diffusion.beta_schedule",
    "prediction": "diffusion.prediction_type", "noise_options": "diffusion.options", "backbone": "model.backbone",
    "representation": "diffusion.representation", "representation_options": "diffusion.representation_options",
    "size": "model.size", "backbone_options": "model.options", "conditioning": "conditioning.method",
    "conditioning_options": "conditioning.options", "steps": "train.steps", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "lr": "train.lr", "warmup_steps": "train.warmup_steps", "loss": "train.loss",
    "ema_decay": "train.ema_decay", "grad_clip": "train.grad_clip", "seed": "train.seed",
    "precision": "train.precision", "device": "run.device", "autoencoder": "autoencoder.name",
}


def train_config(preset: str | None = None, config_file: str | None = None,
                 sets: list[str] | tuple[str, ...] = (), **options: Any) -> dict[str, dict[str, Any]]:
    """The configuration of a training from ``cardiobench train``'s options (``TRAIN_OPTION_KEYS``; ``None``: not
    given), resolved through the same layers as a run (defaults < preset < config < sets < options), so the two
    commands train the same model for the same options. The data set is selected (a data root alone picks the
    one whose layout it holds) and a conditioning method that trains no network is refused, before any work."""
    unknown = sorted(set(options) - set(TRAIN_OPTION_KEYS))
    if unknown:
        raise CardiobenchError(f"unknown training option(s): {', '.join(unknown)}",
                               f"use: {', '.join(TRAIN_OPTION_KEYS)} (or sets=['key=value'])")
    overrides = {TRAIN_OPTION_KEYS[k]: v for k, v in options.items() if v is not None}
    if overrides.get("data.data_root") is not None:
        overrides["data.data_root"] = str(overrides["data.data_root"])
    cfg = resolve(preset, config_file, overrides, list(sets or ()))
    flag = "--data-root" if options.get("data_root") is not None else "data.data_root"
    cfg["data"]["dataset"] = select_dataset(cfg["data"]["dataset"], cfg["data"]["data_root"], flag=flag)
    method = cfg["conditioning"]["method"]
    if method and not get_component("conditioning", method).metadata.get("trains_network", True):
        raise CardiobenchError(f"{method} does not train the diffusion network",
                               "train the unconditional model (no --conditioning); see docs/conditioning.md")
    return cfg


def run_config(preset: str | None = None, config_file: str | None = None, sets: list[str] | tuple[str, ...] = (),
               **options: Any) -> tuple[dict[str, dict[str, Any]], str]:
    """``(configuration, preset used)`` of a run from the CLI's options (``RUN_OPTION_KEYS``; ``None``: not given).

    ``seed`` seeds training and sampling; an unset task follows the conditioning method; an unset preset
    follows the task. Unknown option names are an error naming them.
    """
    dims = options.pop("dims", None)
    unknown = sorted(set(options) - set(RUN_OPTION_KEYS))
    if unknown:
        raise CardiobenchError(f"unknown run option(s): {', '.join(unknown)}",
                               f"use: dims, {', '.join(RUN_OPTION_KEYS)} (or sets=['key=value'])")
    options = {k: v for k, v in options.items() if v is not None}
    if dims is not None and dims not in DIMS:
        raise CardiobenchError(f"--dims must be 2 (slices) or 3 (volumes), got {dims}")
    if dims == 2 and options.get("depth"):
        raise CardiobenchError(f"--depth {options['depth']} describes volumes, but --dims is 2",
                               "use --dims 3, or leave --depth out")
    if dims == 2:
        options["depth"] = 0  # slices, whatever the preset says
    implied = task_of(options.get("conditioning"))
    if implied is not None and "task" not in options:
        # a preset (or config file) that names a task the methods also serve keeps it: --preset synthesis with
        # --conditioning concat synthesizes; otherwise the methods' task (concat alone: segmentation)
        named = [cfgmod.load_preset(p)["run"]["task"] for p in (preset, config_file) if p]
        options["task"] = next((t for t in reversed(named) if _serves(options["conditioning"], t)), implied)
    preset = preset or default_preset(options.get("task"))
    overrides = {RUN_OPTION_KEYS[k]: v for k, v in options.items() if v is not None}
    if "seed" in options:
        overrides["sample.seed"] = options["seed"]
    cfg = resolve(preset, config_file, overrides, list(sets or ()))
    if dims == 3 and not volume_depth(cfg):  # volumes, at the preset's depth or the CPU default
        cfg = resolve(preset, config_file, {**overrides, "data.depth": cfgmod.DEFAULT_DEPTH}, list(sets or ()))
    return cfg, preset


# -- execution -----------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    plan: RunPlan
    record: RunRecord
    train_status: str  # trained | resumed | reused | reused-shipped | skipped (finished run found in the store)
    out_dir: Path
    reference: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _ensure_trained(plan: RunPlan, *, retrain: bool, progress: Progress):
    """Train, continue, or reuse the plan's model; the checkpoint lives in the cache."""
    from cardiobench.engine.checkpoints import install_shipped
    from cardiobench.engine.train import train

    spec = resolve_spec(plan.train)
    shipped = None if retrain else install_shipped(spec.hash())
    if shipped is not None:
        progress.log(f"[bold]shipped[/] checkpoint {spec.short_hash()} comes with cardiobench: no training needed")
    result = train(spec, None, retrain=retrain, device=plan.device, data_root=plan.data_root, progress=progress)
    return result, ("reused-shipped" if shipped is not None and result.status == "reused" else result.status)


def _gif_frames(plan: RunPlan) -> Any:
    """A recorder of the reverse process of the run's first samples (the seed report's Figure 11), taken during
    the sampling pass itself, so the GIF ends on the very masks the grid shows. Label-conditioned runs: one
    class per column (the samples cycle through the classes)."""
    from cardiobench.data.base import GROUPS
    from cardiobench.engine.runner import FrameRecorder

    nrow = len(GROUPS) if plan.conditioning else 4
    n = min(plan.eval_samples, plan.sample_batch, nrow * max(1, round(16 / nrow)))
    return FrameRecorder(n=n - n % nrow if n >= nrow else n)


def _write_gif(frames: Any, path: Path, *, nrow: int) -> None:
    """The recorded frames as an animated GIF, each labelled with the sampler step and timestep it shows."""
    from PIL import Image

    from cardiobench.viz import mask_grid

    def flat(masks: Any) -> tuple[Any, int]:  # volumes: one row of slices per volume
        return (masks.reshape(-1, *masks.shape[2:]), masks.shape[1]) if masks.ndim == 4 else (masks, nrow)

    # an adaptive palette of the few colours a mask grid has: no dithering speckle in the label colours
    images = [mask_grid(*flat(masks[: 4 if masks.ndim == 4 else None]), scale=4, caption=caption
                        ).convert("P", palette=Image.Palette.ADAPTIVE)
              for masks, caption in zip(frames.images, frames.captions, strict=True)]
    images += [images[-1]] * 6  # linger on the result
    atomic_write_image(path, images[0], save_all=True, append_images=images[1:], duration=120, loop=0)


def data_options(plan: RunPlan) -> dict[str, Any]:
    """The options the run's data set is opened with: its spec's options, the data root and a non-zero seed."""
    return {**plan.train.dataset_options, **({"data_root": plan.data_root} if plan.data_root else {}),
            **({"seed": plan.train.data_seed} if plan.train.data_seed else {})}


def _guidance(plan: RunPlan, *, progress: Progress):
    """The sampling-time method (classifier guidance, with its classifier trained or reused), or ``None``."""
    if not plan.conditioning:
        return None
    comp = get_component("conditioning", plan.conditioning)
    if comp.metadata.get("trains_network", True):
        return None
    method = comp.create(**plan.conditioning_options)
    # e.g. train or reuse the noisy classifier
    method.prepare(resolve_spec(plan.train), device=plan.device, data_root=plan.data_root, progress=progress)
    return method


def _class_rows(labels: Any, per_class: int) -> tuple[Any, list[str]]:
    """Indices of up to ``per_class`` samples of each requested class, class by class (equal counts), and the
    class names: the rows of a class-conditioned sample grid."""
    from cardiobench.data.base import GROUPS

    classes = [c for c in range(len(GROUPS)) if (labels == c).any()]
    per = min([per_class] + [int((labels == c).sum()) for c in classes])
    idx = np.concatenate([np.flatnonzero(labels == c)[:per] for c in classes])
    return idx, [GROUPS[c] for c in classes]


def draw_samples(plan: RunPlan, checkpoint: Path, *, progress: Progress | None,
                  frames: Any = None) -> tuple[Any, Any]:
    """``(guidance, samples)``: the run's samples, drawn in one process or sharded over the ranks of torchrun
    (every rank calls this; the masks are gathered). A classifier guidance needs is trained by rank 0 first."""
    from cardiobench.engine.sample import sample

    with distributed.main_first():
        guidance = _guidance(plan, progress=resolve_progress(progress))
    samples = sample(checkpoint, sampler=plan.sampler, steps=plan.sample_steps,
                     num_samples=plan.eval_samples, seed=plan.sample_seed, sampler_options=plan.sampler_options,
                     batch_size=plan.sample_batch, device=plan.device, progress=progress,
                     guidance_scale=plan.guidance_scale if plan.guidance_scale is not None else 1.0,
                     guidance=guidance, frames=frames)
    return guidance, samples


def _generation(plan: RunPlan, checkpoint: Path, out_dir: Path, *, gif: bool, progress: Progress
                ) -> tuple[dict[str, Any], dict[str, str], dict[str, float]]:
    """Sample, write the artefacts and evaluate: ``(evaluation, artefacts, timings)``."""
    from cardiobench.engine.sample import write_samples
    from cardiobench.viz import save_grid, save_volume_grid

    frames = _gif_frames(plan) if gif else None
    t1 = time.perf_counter()
    guidance, samples = draw_samples(plan, checkpoint, progress=progress, frames=frames)
    t_sample = time.perf_counter() - t1 - (frames.seconds if frames is not None else 0.0)
    files = write_samples(samples, out_dir)
    grid = out_dir / "grid.png"
    if samples.masks.ndim == 4:  # volumes: one per row, base to apex; class-conditioned: two per class
        rows, names = (_class_rows(samples.labels, per_class=2) if samples.labels is not None
                       else (list(range(min(8, len(samples.masks)))), None))
        per = len(rows) // len(names) if names else 1
        save_volume_grid(grid, samples.masks[rows], scale=4, legend=True,
                         row_labels=None if names is None else [n for n in names for _ in range(per)])
    elif samples.labels is not None:  # class-conditioned: one labelled row per requested class
        rows, names = _class_rows(samples.labels, per_class=8)
        save_grid(grid, samples.masks[rows], nrow=len(rows) // len(names), row_labels=names, scale=4, legend=True)
    else:
        save_grid(grid, samples.masks[: plan.grid_samples], scale=4, legend=True)
    artefacts: dict[str, str] = {"samples": files["samples"], "sample_grid": str(grid)}
    if getattr(guidance, "classifier_checkpoint", None):  # classifier guidance: the classifier it used
        artefacts["classifier"] = str(guidance.classifier_checkpoint)
    t_gif = 0.0
    if frames is not None and frames.images:
        from cardiobench.data.base import GROUPS

        t_gif = time.perf_counter()
        _write_gif(frames, out_dir / "reverse.gif", nrow=len(GROUPS) if samples.labels is not None else 4)
        artefacts["reverse_gif"] = str(out_dir / "reverse.gif")
        t_gif = time.perf_counter() - t_gif + frames.seconds
    progress.log(f"[bold]evaluate[/] {len(samples.masks)} samples against the {plan.train.dataset} test split")
    t2 = time.perf_counter()
    evaluation = evaluate_generation(samples.masks, plan.train.dataset, data_options=data_options(plan) or None,
                                     metrics=plan.metrics or None, device=str(samples.device), seed=plan.sample_seed,
                                     labels=samples.labels, log=progress.log if progress.enabled else None)
    timings = {"sample_s": round(t_sample, 3),
               "sample_images_per_s": round(len(samples.masks) / t_sample, 3) if t_sample else None,
               "gif_s": round(t_gif, 3), "eval_s": round(time.perf_counter() - t2, 3)}
    return evaluation, artefacts, timings


def _segmentation(plan: RunPlan, checkpoint: Path, out_dir: Path, *, progress: Progress
                  ) -> tuple[dict[str, Any], dict[str, str], dict[str, float]]:
    """Segment test images with a k-sample ensemble, write the artefacts and evaluate Dice/HD95."""
    from cardiobench.engine.segment import PREDICTIONS_NAME, segment, write_segmentations
    from cardiobench.metrics.ensemble import ensemble_summary
    from cardiobench.viz import save_segmentation_grid

    t = plan.train
    source, cases = eval_cases(plan)
    t1 = time.perf_counter()
    result = segment(checkpoint, cases.images, k=plan.ensemble_k, sampler=plan.sampler, steps=plan.sample_steps,
                     sampler_options=plan.sampler_options, seed=plan.sample_seed, batch_size=plan.sample_batch,
                     guidance_scale=plan.guidance_scale if plan.guidance_scale is not None else 1.0,
                     device=plan.device, progress=progress)
    t_sample = time.perf_counter() - t1
    pred_path = write_segmentations(result, out_dir / PREDICTIONS_NAME)
    if cases.dims == 3:  # volumes: the slices of the first one, base to apex
        shown = [a[0][:8] for a in (cases.images, cases.masks, result.votes, result.uncertainty)]
    else:
        show = np.unique(np.linspace(0, len(cases) - 1, min(8, len(cases))).round().astype(int))  # spread out
        shown = [a[show] for a in (cases.images, cases.masks, result.votes, result.uncertainty)]
    grid = save_segmentation_grid(out_dir / "grid.png", *shown, n=len(shown[0]))
    unit = getattr(source, "spacing_unit", "mm")  # px: a data set without voxel spacing (e.g. acdc-h5)
    progress.log(f"[bold]evaluate[/] {len(cases)} segmentations ({plan.ensemble_k} samples each) against the "
                 f"{t.dataset} {plan.eval_split} split, distances in {unit}")
    t2 = time.perf_counter()
    evaluation = evaluate_segmentation(result.votes, cases.masks, cases.spacing, metrics=plan.metrics or None,
                                       device=result.device, distance_unit=unit)
    single = evaluate_segmentation(result.samples[:, 0], cases.masks, cases.spacing, metrics=["dice"],
                                   distance_unit=unit)
    evaluation["metrics"]["dice_mean_single"] = single["metrics"]["dice_mean"]
    evaluation["directions"]["dice_mean_single"] = "none"
    summary = ensemble_summary(result.uncertainty, result.votes)
    evaluation["metrics"].update(summary)
    evaluation["directions"].update({k: "none" for k in summary})
    evaluation["meta"].update(n_images=int(len(cases)), ensemble_k=plan.ensemble_k, split=plan.eval_split)
    timings = {"sample_s": round(t_sample, 3),
               "sample_images_per_s": round(len(cases) * plan.ensemble_k / t_sample, 3) if t_sample else None,
               "eval_s": round(time.perf_counter() - t2, 3)}
    return evaluation, {"segmentations": str(pred_path), "segmentation_grid": str(grid)}, timings


def _latent_ceiling(plan: RunPlan, ae: Any, progress: Progress) -> dict[str, Any] | None:
    """What a latent run could reach at best: the real counterparts of what it draws, through its autoencoder,
    scored as the run scores its draws (``cardiobench.autoencoders.runs.latent_ceiling``). ``None`` for the utility
    task (it scores a segmenter trained on the draws, not the draws)."""
    log = progress.log if progress.enabled else None
    if plan.task == "generation":
        progress.log("[bold]ceiling[/] the test masks through the autoencoder, scored with the same metrics")
        items = test_items(ae, n=plan.eval_samples, data_root=plan.data_root)
        return latent_ceiling(ae, items, lambda recon: evaluate_generation(
            recon, plan.train.dataset, data_options=data_options(plan) or None, metrics=plan.metrics or None,
            device=str(resolve_device(plan.device)), seed=plan.sample_seed, log=log))
    if plan.task not in ("segmentation", "synthesis"):
        return None
    source, cases = eval_cases(plan)
    unit = getattr(source, "spacing_unit", "mm")
    if plan.task == "segmentation":
        progress.log("[bold]ceiling[/] the ground truth of the segmented images through the autoencoder, scored "
                     "as the segmentations")
        return latent_ceiling(ae, cases.masks.astype("uint8"), lambda recon: evaluate_segmentation(
            recon, cases.masks, cases.spacing, metrics=plan.metrics or None, distance_unit=unit))
    progress.log("[bold]ceiling[/] the real slices of the masks through the autoencoder, scored as the drawn ones")
    return latent_ceiling(ae, images_to_grey(cases.images), lambda recon: evaluate_synthesis(
        grey_to_images(recon), cases.masks, cases.images, plan.train.dataset, data_options=data_options(plan) or None,
        metrics=plan.metrics or None, device=str(resolve_device(plan.device)), seed=plan.sample_seed,
        distance_unit=unit, log=log))


def eval_cases(plan: RunPlan) -> tuple[Any, Any]:
    """``(source, cases)``: the data set and up to ``eval.num_samples`` pairs of its evaluation split, spread evenly
    over its patients and slices (segmentation: the images segmented; synthesis: the masks drawn for)."""
    t = plan.train
    source = open_dataset(t.dataset, size=t.resolution, **data_options(plan))
    split = source.load(plan.eval_split)
    if len(split) == 0:
        raise CardiobenchError(f"the {plan.eval_split} split of {t.dataset!r} is empty", "use --set eval.split=val")
    n = min(plan.eval_samples, len(split))
    pick = np.unique(np.linspace(0, len(split) - 1, n).round().astype(int))
    return source, split.subset(pick)


def ruler_check(plan: RunPlan, *, strict: bool = False, log: Any = None) -> tuple[str, dict[str, Any] | None] | None:
    """``(evaluator id, validity)`` of the domain evaluator a generation run will be measured with, found (or
    trained) before any training or sampling; ``validity`` has the shape of ``meta["ruler_validity"]``.
    ``None`` when the run uses no evaluator (segmentation; no fidelity metric and no conditional one on a
    conditioned run). ``strict`` (``--strict-ruler``): a flagged ruler is a one-line error."""
    if plan.task != "generation" or not any(
            c.metadata.get("uses_evaluator") and (plan.conditioning or not c.metadata.get("needs_labels"))
            for c in run_metrics(plan)):
        return None
    from cardiobench.metrics.evaluator import get_evaluator
    from cardiobench.metrics.validity import check_strict, ruler_validity

    ev = get_evaluator(plan.train.dataset, data_options(plan) or None, log=log)
    validity = ruler_validity(ev.validity)
    if strict:
        check_strict(ev.id, validity)
    return ev.id, validity


def run_metrics(plan: RunPlan) -> list[Any]:
    """The registered metrics a run computes: those it names, else every metric registered as a default
    (``default=True`` metadata; a metric without it is computed only when named), for the run's task."""
    return [comp for _, comp in metric_components(plan.task, plan.metrics or None)]


def _base_model_hash(plan: RunPlan) -> str | None:
    """The train hash of the frozen base model a method builds on (ControlNet), else ``None``."""
    spec = resolve_spec(plan.train)
    method = build_conditioning(spec)
    base = method.base_spec(spec) if method is not None else None
    return resolve_spec(base).hash() if base is not None else None


def run_context(task: str, meta: dict[str, Any], reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run's numbers need to be read right (``RunRecord.context``), from the evaluation's ``meta``: the
    samples scored (segmentation: test images), the distance unit, the ruler's validity record if any, and the
    real-vs-real reference values (generation), so a re-printed run keeps its reference column."""
    n = meta.get("n_samples") if task == "generation" else meta.get("n_images", meta.get("n_cases"))
    context = {"n_samples": None if n is None else int(n), "distance_unit": meta.get("distance_unit", "mm"),
               "ruler_validity": meta.get("ruler_validity"), "reference": reference or None}
    return {k: v for k, v in context.items() if v is not None}


def execute(plan: RunPlan, store: ResultStore, out_root: Path, *, retrain: bool = False, force: bool = False,
            progress: Progress | None = None, gif: bool = True) -> RunOutcome | None:
    """Run the plan end to end (or return the stored result of an identical finished run).

    ``progress``: where training, sampling and evaluation report (default: silent). Under torchrun every rank
    calls it: the ranks train together (DistributedDataParallel) and share the sampling; rank 0 alone evaluates,
    writes the artefacts and stores the row, and the other ranks return ``None``."""
    from cardiobench.results.environment import collect_environment

    progress = resolve_progress(progress)
    store.check_writable()  # a store this run could not write to (newer schema, read-only) is refused before any work
    spec_hash = plan.spec_hash
    out_dir = Path(out_root) / "runs" / spec_hash[:12]
    for folder, what in ((cache_dir(), "cache folder (CARDIOBENCH_CACHE_DIR)"), (out_dir, "run folder")):
        check_writable_dir(folder, what)  # read-only or full: said now, not after training
    if not force and not retrain:
        done = store.find(spec_hash)
        if done is not None:
            from cardiobench.results.report import stored_reference

            return RunOutcome(plan, done, "skipped", out_dir, reference=stored_reference(done, out_root))

    t0 = time.perf_counter()
    # a latent model's autoencoder first (reused, or trained now), like a ControlNet's base model; under torchrun
    # rank 0 trains it and the other ranks then read it
    with distributed.main_first():
        autoencoder = prepare_for_run(plan.train, device=plan.device, data_root=plan.data_root, progress=progress)
    t_autoencoder = time.perf_counter() - t0
    trained, train_status = _ensure_trained(plan, retrain=retrain, progress=progress)  # data parallel under torchrun
    t_train = time.perf_counter() - t0 - t_autoencoder
    if not distributed.is_main():  # under torchrun: this rank helps sample; rank 0 evaluates, writes and stores
        if plan.task in ("generation", "utility"):
            draw_samples(plan, trained.checkpoint, progress=None)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    if plan.task == "segmentation":
        evaluation, artefacts, timings = _segmentation(plan, trained.checkpoint, out_dir, progress=progress)
    elif plan.task in ("synthesis", "utility"):
        from cardiobench.engine import paired_tasks

        run_task = paired_tasks.synthesis if plan.task == "synthesis" else paired_tasks.utility
        evaluation, artefacts, timings = run_task(plan, trained.checkpoint, out_dir, progress=progress)
    else:
        evaluation, artefacts, timings = _generation(plan, trained.checkpoint, out_dir, gif=gif, progress=progress)
    if trained.loss_curve is not None and Path(trained.loss_curve).is_file():
        shutil.copyfile(trained.loss_curve, out_dir / "loss_curve.png")
        artefacts["loss_curve"] = str(out_dir / "loss_curve.png")
    meta = evaluation["meta"]
    ceiling = None if autoencoder is None else _latent_ceiling(plan, autoencoder, progress)
    if ceiling is not None:  # the ceiling of a latent run: real items through the autoencoder, scored alike
        meta["latent_ceiling"] = ceiling
        for key, value in ceiling_values(ceiling).items():
            evaluation["metrics"][CEILING_PREFIX + key] = value
            evaluation["directions"][CEILING_PREFIX + key] = "none"
    base = _base_model_hash(plan)
    if base:
        meta["base_model"] = base
    timings = {**({"autoencoder_s": round(t_autoencoder, 3)} if autoencoder is not None else {}),
               "train_s": round(t_train, 3), "train_images_per_s": trained.images_per_s, **timings,
               "total_s": round(time.perf_counter() - t0, 3)}
    metrics_path = out_dir / "metrics.json"
    payload = {"spec": plan.spec(), "spec_hash": spec_hash, "train_status": train_status, **evaluation,
               "timings": timings}
    atomic_write_bytes(metrics_path, json.dumps(payload, indent=2, default=str).encode())
    artefacts["metrics"] = str(metrics_path)
    artefacts["checkpoint"] = str(trained.checkpoint)
    record = RunRecord(
        context={**run_context(plan.task, meta, evaluation.get("reference")),
                 # a volumetric run's items are volumes: boards never rank them with slices
                 **({"volume_shape": list(plan.train.spatial_shape)} if plan.train.spatial_dims == 3 else {})},
        task=plan.task,
        dataset=plan.train.dataset,
        noise=plan.train.noise,
        sampler=plan.sampler,
        backbone=plan.train.backbone,
        conditioning=plan.conditioning,
        spec=plan.spec(),
        spec_hash=spec_hash,
        train_hash=trained.spec_hash,
        seeds={"train": plan.train.seed, "data": plan.train.data_seed, "sample": plan.sample_seed},
        metrics=evaluation["metrics"],
        directions={k: v for k, v in evaluation["directions"].items() if v in ("lower", "higher")},
        evaluator_id=meta.get("evaluator_id"),
        timings=timings,
        environment=collect_environment(trained.device, train_status=train_status,
                                        evaluator_accuracy=meta.get("evaluator_accuracy")),
        artefacts=artefacts,
    )
    record.id = store.add_run(record)
    return RunOutcome(plan, record, train_status, out_dir, evaluation.get("reference", {}), meta)
