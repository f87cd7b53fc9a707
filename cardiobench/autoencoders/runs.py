"""Latent diffusion in a run: which autoencoder a configuration names, training it first, and the ceiling it sets.

``cardiobench run --autoencoder vae`` (config key ``autoencoder.name``) diffuses in the autoencoder's latent: the
run's ``TrainSpec`` gets a representation registered with ``autoencoder=True`` metadata (the built-in ``latent``)
whose option ``autoencoder`` is the autoencoder's full spec, so the denoiser's hash includes the autoencoder's
identity. ``autoencoder.name`` may also be a trained autoencoder file (``.pt``): it must have been trained on the
run's data set and resolution (else a one-line error naming both) and is copied into the autoencoder store.

The **ceiling**: an autoencoder whose reconstructions are poor caps what any latent model can reach. Every latent
run also scores real items passed through ``encode``/``decode`` as it scores what it draws (``latent_ceiling``):
a generation run the test masks with its metrics, a segmentation run the ground truth of the images it segments
(Dice, HD95), a synthesis run the real slices of the masks it draws for (image FID, faithfulness), beside the
autoencoder's reconstruction report (Dice per structure, or PSNR and L1 for images).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiobench.autoencoders.api import run_data, spec_from_config
from cardiobench.autoencoders.train import (
    AUTOENCODERS,
    AutoencoderSpec,
    LoadedAutoencoder,
    load_autoencoder,
    prepare_autoencoder,
    reconstruct,
    split_items,
)
from cardiobench.engine.store import publish
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.plugins import get_component, registry
from cardiobench.progress import Progress, resolve
from cardiobench.specs import TrainSpec

__all__ = ["autoencoder_of", "autoencoder_spec_from_config", "ceiling_values", "is_file_name", "latent_ceiling",
           "latent_representation", "prepare_for_run", "test_items"]

#: the prefix of the ceiling's values among a run's metrics (direction "none": shown, never ranked)
CEILING_PREFIX = "ceiling_"


def is_file_name(name: str) -> bool:
    """Whether ``autoencoder.name`` names a trained file (``.pt``, a path) rather than a plugin."""
    return name.endswith(".pt") or "/" in name or "\\" in name or Path(name).is_file()


def autoencoder_spec_from_config(cfg: dict[str, dict[str, Any]]) -> AutoencoderSpec | None:
    """The resolved autoencoder a configuration names (``autoencoder.name``), ``None`` when it names none.

    A plugin name: trained on the run's data (``data.*``) with ``autoencoder.steps``, ``batch_size``, ``lr``,
    ``seed`` and ``options``. A file: its own spec, checked against the run's data set and resolution, and
    installed into the autoencoder store so the latent representation finds it by hash."""
    section = cfg.get("autoencoder") or {}
    name = section.get("name")
    if not name:
        return None
    if not is_file_name(str(name)):
        return spec_from_config(name, cfg)  # an unknown name: one line with a did-you-mean
    data = run_data(cfg)
    loaded = load_autoencoder(Path(name).expanduser())
    spec = loaded.spec
    if spec.data_fields() != data:
        ours_spec = AutoencoderSpec(**data)
        differ = (spec.data_seed, spec.dataset_options) != (data["data_seed"], data["dataset_options"])
        theirs = f"{spec.data}" + (f" (data seed {spec.data_seed}, options {spec.dataset_options})" if differ else "")
        ours = ours_spec.data + (f" (data seed {data['data_seed']}, options {data['dataset_options']})"
                                 if differ else "")
        raise CardiobenchError(f"autoencoder {name} was trained on {theirs}, this run is on {ours}",
                               "train one for this data with `cardiobench autoencoder train`, or name the plugin "
                               "(--autoencoder vae) to train it first")
    h = spec.hash()
    if not AUTOENCODERS.valid(AUTOENCODERS.cache_path(h), h, accept=lambda s: bool(s.get("complete"))):
        publish(loaded.path, AUTOENCODERS.cache_path(h), link=False)
    return spec


def latent_representation(representation: str | None, default: str) -> str:
    """The representation that diffuses an autoencoder's latent: ``representation`` if it is one (registered with
    ``autoencoder=True``), else, when it is the default (``default``: none chosen), the registered one (built-ins
    first); an ``IncompatibleError`` for another explicit choice."""
    name = representation or default
    if get_component("representation", name).metadata.get("autoencoder"):
        return name
    latent = sorted((c for c in registry("representation") if c.metadata.get("autoencoder")),
                    key=lambda c: (c.origin != "cardiobench", c.name))
    if name != default or not latent:
        names = ", ".join(c.name for c in latent) or "none is installed"
        raise IncompatibleError(f"representation {name!r} cannot diffuse an autoencoder's latent",
                                f"drop --representation, or use one that can ({names})")
    return latent[0].name


def autoencoder_of(spec: TrainSpec) -> AutoencoderSpec | None:
    """The autoencoder a model diffuses the latent of (its representation's ``autoencoder`` option), else ``None``."""
    if not get_component("representation", spec.representation).metadata.get("autoencoder"):
        return None
    try:
        return AutoencoderSpec.from_dict(spec.representation_options["autoencoder"])
    except (KeyError, TypeError) as exc:
        raise CardiobenchError(f"representation {spec.representation!r} needs the option 'autoencoder' "
                               f"(an autoencoder spec): {exc}", "name one with --autoencoder NAME") from None


def prepare_for_run(spec: TrainSpec, *, device: str, data_root: str | None,
                    progress: Progress | None = None) -> LoadedAutoencoder | None:
    """Before a latent model trains: its autoencoder, reused or trained now (like a ControlNet's base model)."""
    ae = autoencoder_of(spec)
    if ae is None:
        return None
    result = prepare_autoencoder(ae, device=device, data_root=data_root, progress=progress)
    if result.status == "reused":
        resolve(progress).log(f"[bold]autoencoder[/] reuse {ae.autoencoder} {result.spec.short_hash()} "
                              f"({ae.data})")
    return load_autoencoder(result.path)


def test_items(ae: LoadedAutoencoder, *, n: int, data_root: str | None) -> np.ndarray:
    """``n`` label maps of the autoencoder's test split, evenly spread ((n, *S) uint8): what a generation run's
    ceiling scores."""
    test = split_items(ae.spec, "test", data_root).numpy()
    pick = np.unique(np.linspace(0, len(test) - 1, min(n, len(test))).round().astype(int))
    return test[pick]


def latent_ceiling(ae: LoadedAutoencoder, items: np.ndarray,
                   score: Callable[[np.ndarray], dict[str, Any]]) -> dict[str, Any]:
    """The ceiling of a latent run: real ``items`` (uint8: the label maps, or grey levels for an image autoencoder)
    through ``to_items(decode(encode(x)))``, scored by ``score`` as the run scores what it draws, with the
    autoencoder's reconstruction report of its test split.

    ``{"autoencoder", "latent_shape", "scale_factor", "reconstruction", "n", "metrics"}``."""
    recon = reconstruct(ae.model, torch.from_numpy(np.ascontiguousarray(items))).numpy()
    scored = score(recon)
    return {"autoencoder": ae.spec_hash, "latent_shape": ae.report.get("latent_shape"),
            "scale_factor": ae.scale_factor, "reconstruction": ae.report.get("reconstruction", {}),
            "n": int(len(items)), "metrics": scored["metrics"]}


#: the reconstruction report's summary values a run keeps among its ceiling values (``ceiling_recon_<key>``):
#: a mask autoencoder's mean Dice, an image autoencoder's PSNR and L1
RECONSTRUCTION_SUMMARY = ("dice_mean", "psnr", "l1")


def ceiling_values(ceiling: dict[str, Any]) -> dict[str, Any]:
    """The values a run stores for its ceiling (without the prefix): the reconstruction summary, then the metrics."""
    rec = ceiling.get("reconstruction") or {}
    return {**{f"recon_{k}": rec[k] for k in RECONSTRUCTION_SUMMARY if k in rec}, **ceiling["metrics"]}
