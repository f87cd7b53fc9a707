"""The Python API of autoencoders: ``cb.train_autoencoder`` and ``cb.autoencoder_info`` (as the CLI's commands)."""

from __future__ import annotations

import os
from typing import Any

from cardiobench.autoencoders.train import (
    AutoencoderResult,
    AutoencoderSpec,
    autoencoder_report,
    prepare_autoencoder,
    resolve_autoencoder_spec,
)
from cardiobench.config import resolve_config, volume_depth
from cardiobench.data import resolve_dataset_name
from cardiobench.plugins import get_component

__all__ = ["autoencoder_info", "run_data", "spec_from_config", "train_autoencoder"]


def spec_from_config(name: str, cfg: dict[str, dict[str, Any]]) -> AutoencoderSpec:
    """The resolved spec of autoencoder plugin ``name`` on a configuration's data (``data.*``) and recipe
    (``autoencoder.*``): the same spec ``cardiobench run --autoencoder NAME`` with that configuration trains."""
    get_component("autoencoder", name)
    section = cfg["autoencoder"]
    data = run_data(cfg)
    options = dict(section.get("options") or {})
    if data["dataset_options"].get("depth"):  # volumes: a 3-D autoencoder unless the options say otherwise
        options.setdefault("spatial_dims", 3)
    spec = AutoencoderSpec(autoencoder=name, options=options, **data, steps=section["steps"],
                           batch_size=section["batch_size"], lr=section["lr"], seed=section["seed"])
    return resolve_autoencoder_spec(spec)


def run_data(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The data fields of an ``AutoencoderSpec`` for a configuration (``data.*``; a volumetric one's ``depth`` among
    the data-set options, as a denoiser's spec has it)."""
    data = cfg["data"]
    depth = volume_depth(cfg)
    return {"dataset": data["dataset"], "resolution": int(data["resolution"]), "data_seed": int(data["seed"]),
            "dataset_options": {**(data.get("options") or {}), **({"depth": depth} if depth else {})}}


def train_autoencoder(name: str = "vae", *, preset: str | None = None, config: str | os.PathLike | None = None,
                      sets: list[str] | tuple[str, ...] = (), dataset: str | None = None,
                      data_root: str | os.PathLike | None = None, resolution: int | None = None,
                      steps: int | None = None, retrain: bool = False, device: str = "auto",
                      progress: Any = None) -> AutoencoderResult:
    """Train (or reuse, or continue) autoencoder ``name`` on a configuration's data: ``AutoencoderResult``
    (``.path``, ``.spec``, ``.status``). Options as ``cardiobench autoencoder train``."""
    overrides = {"data.dataset": dataset, "data.resolution": resolution, "autoencoder.steps": steps,
                 "data.data_root": str(data_root) if data_root is not None else None}
    cfg = resolve_config(preset, None if config is None else str(config),
                         {k: v for k, v in overrides.items() if v is not None}, list(sets or ()))
    root = cfg["data"].get("data_root")
    cfg["data"]["dataset"] = resolve_dataset_name(cfg["data"]["dataset"], root)
    return prepare_autoencoder(spec_from_config(name, cfg), device=device, data_root=root, retrain=retrain,
                               progress=progress)


def autoencoder_info(path: str | os.PathLike) -> dict[str, Any]:
    """JSON-able description of an autoencoder file (one-line ``CardiobenchError`` for a damaged one)."""
    return autoencoder_report(path)
