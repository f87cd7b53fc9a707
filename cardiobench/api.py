"""The Python API: what the CLI does, as functions for notebooks and scripts.

    import cardiobench as cb

    outcome = cb.run(noise="gaussian", sampler="ddim", preset="tiny")   # train (or reuse), sample, evaluate, store
    outcome.metrics["fid"]
    result = cb.train(preset="tiny", steps=50)                          # TrainResult (checkpoint, loss, ...)
    model = cb.load_model(result.checkpoint)                            # LoadedModel(network, process, spec, state)
    masks = cb.sample(model, num_samples=8, steps=10).masks             # (8, H, W) uint8 label maps
    scores = cb.evaluate(masks, dataset="phantom")                      # {"metrics": {...}, "reference": ...}
    cb.metrics.dice(pred, target), cb.metrics.hd95(pred, target, spacing=(1.5, 1.5))

Settings resolve as in the CLI (defaults < preset < config file < ``sets`` < keyword options), so a call and
the command with the same options make the same model and the same result row. Progress is off unless
``progress=True`` (bars on stderr, as in the CLI) or a ``cardiobench.progress.Progress`` is given. Errors
are ``cardiobench.errors.CardiobenchError`` with the CLI's one-line message. ``import cardiobench`` stays light:
this module (and torch) loads on the first use of one of its names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench.autoencoders.runs import prepare_for_run
from cardiobench.engine import pipeline
from cardiobench.engine.sample import load_model as load
from cardiobench.engine.sample import read_samples
from cardiobench.engine.sample import sample as draw
from cardiobench.engine.train import train as run_training
from cardiobench.metrics.api import evaluate_generation
from cardiobench.results.store import ResultStore

__all__ = ["evaluate", "load_model", "run", "sample", "train"]


def _progress(progress: Any) -> Any:
    """``False``/``None``: silent; ``True``: the terminal reporter (rich, on stderr); else the given ``Progress``."""
    if progress is True:
        from cardiobench.cli.progress import terminal_progress

        return terminal_progress()
    return progress or None


def run(noise: str | None = None, sampler: str | None = None, *, preset: str | None = None,
        config: str | os.PathLike | None = None, sets: list[str] | tuple[str, ...] = (),
        results: str | os.PathLike | None = None, out: str | os.PathLike | None = None, retrain: bool = False,
        force: bool = False, gif: bool = True, progress: Any = False, **options: Any) -> Any:
    """One benchmark run, as ``cardiobench run``: returns the ``RunOutcome`` (``.metrics``, ``.record``, ``.out_dir``).

    ``options`` are the CLI's typed options by their Python names: ``dataset``, ``data_root``, ``backbone``,
    ``conditioning``, ``guidance_scale``, ``task``, ``steps`` (sampling), ``train_steps``, ``num_samples``,
    ``seed``, ``device``, ``ensemble_k``, ``autoencoder`` (latent diffusion: an autoencoder plugin, trained
    first if needed, or a trained autoencoder file; docs/latent.md), ``eval_dataset`` / ``eval_data_root``
    (``task="utility"``; ``task="synthesis"`` and ``"utility"``: docs/synthesis.md), ``dims`` / ``depth`` (``dims=3``:
    whole stacks as volumes of ``depth`` slices; docs/volumes.md). ``sets``: ``["key=value", ...]`` as
    ``--set``. ``results``: the store (default as the CLI: ``$CARDIOBENCH_RESULTS`` or
    ``./cardiobench-results/results.db``). A finished identical run is returned from the store unless ``force``.
    """
    cfg, _ = pipeline.run_config(preset, None if config is None else str(config), sets, noise=noise, sampler=sampler,
                                 **options)
    plan = pipeline.plan_from_config(cfg, root_flag="data_root")
    store = ResultStore(None if results is None else str(results))
    return pipeline.execute(plan, store, Path(out) if out is not None else store.path.parent, retrain=retrain,
                            force=force, progress=_progress(progress), gif=gif)


def train(*, preset: str | None = None, config: str | os.PathLike | None = None,
          sets: list[str] | tuple[str, ...] = (), out: str | os.PathLike | None = None, retrain: bool = False,
          progress: Any = False, **options: Any) -> Any:
    """Train (or reuse) a denoiser, as ``cardiobench train``: returns the ``TrainResult``.

    ``options`` by configuration key names: ``dataset``, ``data_root``, ``resolution``, ``noise``, ``backbone``,
    ``size``, ``conditioning``, ``steps``, ``epochs``, ``batch_size``, ``lr``, ``warmup_steps``, ``loss``,
    ``ema_decay``, ``grad_clip``, ``seed``, ``device``, ``autoencoder`` (latent diffusion: trained first if
    needed), and the option tables ``dataset_options``,
    ``noise_options``, ``backbone_options``, ``conditioning_options`` (dicts). ``out``: a folder for
    ``checkpoint.pt`` (default: the checkpoint cache).
    """
    cfg = pipeline.train_config(preset, None if config is None else str(config), sets, **options)
    spec = pipeline.train_spec_from_config(cfg)
    device, data_root, reporter = cfg["run"]["device"], cfg["data"]["data_root"], _progress(progress)
    prepare_for_run(spec, device=device, data_root=data_root, progress=reporter)  # a latent model's autoencoder
    return run_training(spec, out, retrain=retrain, device=device, data_root=data_root, progress=reporter)


def load_model(checkpoint: str | os.PathLike, *, use_ema: bool = True, device: str = "cpu") -> Any:
    """A trained model from a checkpoint file or folder: ``LoadedModel(network, process, spec, state)``."""
    return load(checkpoint, use_ema=use_ema, device=device)


def sample(model: Any, *, sampler: str = "ddim", steps: int | None = None, num_samples: int = 16, seed: int = 0,
           batch_size: int = 64, device: str = "auto", progress: Any = False, **kwargs: Any) -> Any:
    """Draw label maps from a ``LoadedModel`` or a checkpoint path: returns a ``SampleResult`` (``.masks``
    (N, H, W) uint8, ``.labels`` for class-conditioned models, ``.spec``). ``kwargs``: ``sampler_options``,
    ``labels``, ``guidance_scale``, ``use_ema`` (as ``cardiobench sample``)."""
    return draw(model, sampler=sampler, steps=steps, num_samples=num_samples, seed=seed, batch_size=batch_size,
                device=device, progress=_progress(progress), **kwargs)


def evaluate(samples: Any, dataset: str = "phantom", *, data_root: str | os.PathLike | None = None,
             data_options: dict[str, Any] | None = None, metrics: list[str] | None = None, labels: Any = None,
             device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Score generated label maps against a data set's test split, as ``cardiobench evaluate``.

    ``samples``: (N, H, W) label maps (numpy or torch), a ``SampleResult``, or a ``samples.npz`` path. Returns
    ``{"metrics", "directions", "reference", "meta"}`` (``cardiobench.metrics.api.evaluate_generation``).
    """
    if isinstance(samples, (str, os.PathLike)):
        samples, _ = read_samples(samples)
    elif hasattr(samples, "masks"):
        labels = samples.labels if labels is None else labels
        samples = samples.masks
    opts = {**(data_options or {}), **({"data_root": str(data_root)} if data_root is not None else {})}
    return evaluate_generation(np.asarray(samples), dataset, data_options=opts or None, metrics=metrics,
                               labels=labels, device=device, seed=seed)
