"""Autoencoders: their spec, training, store and report (``cardiobench autoencoder train`` / ``info``).

An ``AutoencoderSpec`` (the autoencoder plugin and its options, the data set and resolution, the training
recipe) names a trained autoencoder; its hash keys the cache ``cache_dir("autoencoders")/<hash>.pt``
(``AUTOENCODERS``, an ``engine.store.ArtefactStore``: atomic writes, ``weights_only`` reads, one-line errors).
Training runs on the shared loop (``engine.loop.TrainLoop``: NaN stop, Ctrl-C and periodic checkpoints,
progress); an unfinished file of the same spec is continued (resume), a finished one reused.

The training items are what the autoencoder encodes (its ``data``): the uint8 label maps (``"mask"``), or the
MR slices as uint8 grey levels (``"image"``, ``images_to_grey``). Per step (batch order from ``(seed, epoch)``,
reparameterisation noise from one seeded generator)::

    loss = autoencoder.loss(items[batch], generator)     (vae: CE + Dice + beta KL; image-vae: L1 + beta KL)
    Adam (lr), grad-norm clip 1

After training, on the full splits with the deterministic encoding ``mu = encode(items).mean``:

    scale_factor = 1 / std(mu over the training split)          (Rombach et al. 2022, sec. 4.3.2 / appendix G:
                                                                 the diffused latent has unit variance)
    reconstruction on the test split of  to_items(decode(mu)):  Dice per structure (masks), or L1 and PSNR (images)

all stored in the checkpoint with the latent's shape (``latent_shape``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from einops import rearrange

from cardiobench import __version__
from cardiobench.autoencoders.base import DATA_KINDS, Autoencoder
from cardiobench.data import open_dataset
from cardiobench.data.base import STRUCTURES
from cardiobench.diffusion.intensity import grey_to_images, images_to_grey
from cardiobench.engine.checkpoints import HEADER
from cardiobench.engine.loop import Checkpointing, LoopStats, TrainLoop
from cardiobench.engine.store import ArtefactStore
from cardiobench.errors import CardiobenchError, DataError, IncompatibleError
from cardiobench.factories import create, resolve_device
from cardiobench.metrics.functional import dice
from cardiobench.plugins import get_component
from cardiobench.progress import Progress, resolve
from cardiobench.specs import ItemGeometry, _Spec

__all__ = [
    "AUTOENCODERS", "AutoencoderResult", "AutoencoderSpec", "LoadedAutoencoder", "autoencoder_report",
    "autoencoder_data", "build_autoencoder", "encode_items", "image_scores", "load_autoencoder", "prepare_autoencoder",
    "read_autoencoder_file", "reconstruct", "resolve_autoencoder_spec", "split_items", "train_autoencoder",
]

#: the ``kind`` entry of an autoencoder checkpoint (written after the checkpoints' format tags)
CHECKPOINT_KIND = "autoencoder"
TRAIN_HINT = "train it with `cardiobench autoencoder train` (see `cardiobench autoencoder train --help`)"
#: a checkpoint is written at least this often while training (seconds)
CHECKPOINT_SECONDS = 60.0
DEFAULT_STEPS = 2000


def _check_file(state: Any, path: Path, hint: str) -> None:
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CardiobenchError(f"{path} is not a cardiobench autoencoder checkpoint", TRAIN_HINT)
    missing = [k for k in ("spec", "spec_hash", "model", "step", "total_steps") if k not in state]
    if missing:
        raise CardiobenchError(f"autoencoder checkpoint {path} is damaged: it lacks {', '.join(missing)}", hint)


#: the store of autoencoders: ``cache_dir("autoencoders")/<spec hash>.pt`` (none ship with the package)
AUTOENCODERS = ArtefactStore("autoencoders", what="autoencoder checkpoint", hint=f"delete it and {TRAIN_HINT}",
                             header=HEADER, check=_check_file)


# -- the spec -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AutoencoderSpec(_Spec, ItemGeometry):
    """Everything that determines a trained autoencoder (no device, no data folder).

    ``autoencoder``: the plugin (kind ``autoencoder``); ``options`` its factory options (resolved: its
    ``config()``); the data set at ``resolution``; ``steps`` Adam steps of ``batch_size`` items at ``lr``.
    """

    kind: ClassVar[str] = "autoencoder"

    autoencoder: str = "vae"
    options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "phantom"
    resolution: int = 32
    data_seed: int = 0
    dataset_options: dict[str, Any] = field(default_factory=dict)
    steps: int = DEFAULT_STEPS
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("steps", "batch_size", "resolution"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CardiobenchError(f"autoencoder {name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise CardiobenchError(f"autoencoder learning rate must be > 0, got {self.lr}")

    @property
    def data(self) -> str:
        """The data it was trained on, in words (``phantom 32x32``; volumes: ``phantom 8x32x32 volumes``)."""
        return f"{self.dataset} {'x'.join(map(str, self.spatial_shape))}" + (" volumes" if self.depth else "")

    def data_fields(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "resolution": self.resolution, "data_seed": self.data_seed,
                "dataset_options": self.dataset_options}


def autoencoder_data(name: str) -> str:
    """What autoencoder plugin ``name`` encodes: its registration metadata ``data``, ``"mask"`` (the default) or
    ``"image"``; a one-line ``CardiobenchError`` for anything else."""
    data = get_component("autoencoder", name).metadata.get("data", "mask")
    if data not in DATA_KINDS:
        raise CardiobenchError(f"autoencoder {name!r} is registered with data={data!r}",
                               f"register it with data= one of: {', '.join(DATA_KINDS)}")
    return str(data)


def build_autoencoder(spec: AutoencoderSpec) -> Autoencoder:
    """The (untrained) network of ``spec``, initialised from ``spec.seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = create("autoencoder", spec.autoencoder, **spec.options)
    if not isinstance(model, Autoencoder):
        raise CardiobenchError(f"autoencoder {spec.autoencoder!r} did not return a cardiobench Autoencoder")
    if model.data != autoencoder_data(spec.autoencoder):
        raise CardiobenchError(f"autoencoder {spec.autoencoder!r} encodes data={model.data!r} but is registered with "
                               f"data={autoencoder_data(spec.autoencoder)!r}", "make the two agree")
    if model.spatial_dims != spec.spatial_dims:
        raise IncompatibleError(f"autoencoder {spec.autoencoder!r} is {model.spatial_dims}-D, its data ({spec.data}) "
                                f"are {spec.spatial_dims}-D",
                                f"set autoencoder.options.spatial_dims={spec.spatial_dims} (a run sets it itself)")
    try:
        model.latent_shape(spec.spatial_shape)
    except ValueError as exc:
        raise CardiobenchError(f"autoencoder {spec.autoencoder!r} cannot encode {spec.data}: {exc}",
                               "use another resolution or depth, or fewer levels (channels)") from None
    return model


def resolve_autoencoder_spec(spec: AutoencoderSpec) -> AutoencoderSpec:
    """``spec`` with the network's options spelled out (its ``config()``; idempotent): equal autoencoders share a
    hash whether their options were named (``{"size": "tiny"}``) or spelled out."""
    return spec.replace(options=dict(build_autoencoder(spec).config()))


# -- data -----------------------------------------------------------------------------------------------------
def split_items(spec: AutoencoderSpec, split: str, data_root: str | None, data: str = "mask") -> torch.Tensor:
    """(N, *S) uint8 items of one split of the spec's data set (slices (N, H, W), or volumes (N, D, H, W) for a
    spec with a ``depth``): label maps (``data="mask"``) or 8-bit grey levels of the MR slices (``data="image"``)."""
    root = {"data_root": str(data_root)} if data_root else {}
    source = open_dataset(spec.dataset, size=spec.resolution, seed=spec.data_seed, **root, **spec.dataset_options)
    loaded = source.load(split)
    if len(loaded) == 0:
        raise DataError(f"data set {spec.dataset!r} has no {split} slices", "an autoencoder needs train and test")
    if loaded.masks.shape[1:] != spec.spatial_shape:
        raise DataError(f"data set {spec.dataset!r} gave {'x'.join(map(str, loaded.masks.shape[1:]))} items, "
                        f"expected {spec.data}")
    if data == "image":
        return torch.from_numpy(images_to_grey(loaded.images))
    return torch.from_numpy(loaded.masks.astype("uint8"))


def _batches(items: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    return [items[s:s + batch_size] for s in range(0, len(items), batch_size)]


@torch.no_grad()
def encode_items(model: Autoencoder, items: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """The deterministic encoding ``mu`` of items (N, *S) (label maps or grey levels, as ``model.data``) ->
    (N, c, *S / f), float32 on the CPU."""
    device = next(model.parameters()).device
    return torch.cat([model.encode(b.to(device))[0].float().cpu() for b in _batches(items, batch_size)])


@torch.no_grad()
def reconstruct(model: Autoencoder, items: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """``to_items(decode(mu))``: items (N, *S) through the autoencoder, (N, *S) uint8 on the CPU (for label maps
    the argmax of the logits, for images the rounded grey levels)."""
    device = next(model.parameters()).device
    return torch.cat([model.to_items(model.decode(model.encode(b.to(device))[0])).cpu()
                      for b in _batches(items, batch_size)])


#: PSNR's mean squared error floor: a slice reconstructed exactly scores 100 dB, not infinity
PSNR_MSE_FLOOR = 1e-10


def image_scores(recon: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """``{"l1", "psnr"}`` of (N, *S) uint8 grey levels against the real ones, on the [0, 1] scale (g / 255):
    l1 = mean |r - t| over the split; psnr = mean over slices of 10 log10(1 / MSE_i) dB (peak 1, MSE_i of
    slice i, floored at ``PSNR_MSE_FLOOR``)."""
    r = rearrange(grey_to_images(recon), "n ... -> n (...)")
    t = rearrange(grey_to_images(target), "n ... -> n (...)")
    mse = np.maximum(((r - t) ** 2).mean(axis=1), PSNR_MSE_FLOOR)  # MSE_i per slice
    psnr = 10.0 * np.log10(1.0 / mse)  # PSNR_i = 10 log10(peak^2 / MSE_i), peak 1
    return {"l1": float(np.abs(r - t).mean()), "psnr": float(psnr.mean())}


def reconstruction_report(model: Autoencoder, items: torch.Tensor, split: str = "test") -> dict[str, Any]:
    """How well ``to_items(decode(mu))`` reproduces ``items`` (N, H, W).

    Label maps: Dice per structure (mean over slices; a structure absent from both maps scores 1), its mean and
    the pixel accuracy. Images: ``l1`` and ``psnr`` (dB, peak 1: the mean of per-slice PSNR) of the grey levels on
    the [0, 1] scale (``image_scores``). Both with ``n`` and ``split``."""
    recon = reconstruct(model, items).numpy()
    target = items.numpy()
    if model.data == "image":
        scores = image_scores(recon, target)
        return {"l1": round(scores["l1"], 5), "psnr": round(scores["psnr"], 3), "n": int(len(items)),
                "split": split}
    per_slice = dice(recon, target, num_classes=model.num_classes)  # (N, K - 1): the structures, no background
    per = {name: round(float(per_slice[:, i].mean()), 4) for i, name in enumerate(STRUCTURES[:per_slice.shape[1]])}
    return {"dice": per, "dice_mean": round(float(np.mean(list(per.values()))), 4),
            "pixel_accuracy": round(float((recon == target).mean()), 4), "n": int(len(items)), "split": split}


# -- training -------------------------------------------------------------------------------------------------
def _epoch_order(spec: AutoencoderSpec, n: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(spec.seed * 1_000_003 + 7919 * (epoch + 1))
    return torch.randperm(n, generator=g)


def train_autoencoder(spec: AutoencoderSpec, path: str | Path, *, device: str | torch.device = "auto",
                      data_root: str | None = None, start: dict[str, Any] | None = None,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Train the autoencoder of ``spec`` (continuing the checkpoint ``start`` if given), checkpointing to ``path``;
    returns the finished checkpoint state (also written to ``path``).

    Deterministic on the CPU: initialisation, batch order and noise come from seeds; 10 steps, then a resume to
    20, give the 20-step weights bit for bit."""
    spec = resolve_autoencoder_spec(spec)
    dev = resolve_device(device)
    model = build_autoencoder(spec).to(dev)
    items = split_items(spec, "train", data_root, model.data)  # label maps or grey levels, as the autoencoder encodes
    n = len(items)
    bs = min(spec.batch_size, n)
    per_epoch = n // bs
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    loop = TrainLoop(optimizer, grad_clip=1.0)
    gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + 101)
    seconds_before = 0.0
    if start is not None:
        try:
            model.load_state_dict(start["model"])
            optimizer.load_state_dict(start["optimizer"])
            gen.set_state(start["generator"])
            loop.step = int(start["step"])
            loop.history = [float(x) for x in start["loss_history"].tolist()]
            seconds_before = float(start.get("meta", {}).get("seconds", 0.0))
        except Exception as exc:  # shapes or keys that do not fit: a damaged file
            raise AUTOENCODERS.damaged(path, exc) from None
    parts: dict[str, float] = {}

    def loss_at(step: int) -> torch.Tensor:
        epoch, batch = divmod(step, per_epoch)
        idx = _epoch_order(spec, n, epoch)[batch * bs:(batch + 1) * bs]
        loss, found = model.loss(items[idx], gen)
        parts.update(found)
        return loss

    def state(complete: bool, seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "kind": CHECKPOINT_KIND, "spec": spec.to_dict(), "spec_hash": spec.hash(),
            "autoencoder": spec.autoencoder, "architecture": model.config(),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "generator": gen.get_state(), "step": loop.step,
            "total_steps": spec.steps, "complete": complete,
            "loss_history": torch.tensor(loop.history, dtype=torch.float32),
            **(extra or {}),
            "meta": {"cardiobench_version": __version__, "torch_version": str(torch.__version__), "device": str(dev),
                     "seconds": round(seconds, 2), "params": sum(p.numel() for p in model.parameters()),
                     "n_train": n},
        }

    def save(stats: LoopStats) -> None:
        AUTOENCODERS.save(path, state(False, seconds_before + stats.seconds))

    model.train()
    stats = loop.run(
        loss_at, spec.steps, items_per_step=bs, progress=progress, label="autoencoder", what="autoencoder training",
        hint="lower --lr", report_every=10, fields=lambda: {k: f"{v:.3f}" for k, v in parts.items()},
        checkpoint=Checkpointing(Path(path), save,
                                 seconds=CHECKPOINT_SECONDS),
    )
    seconds = seconds_before + stats.seconds
    model.eval()
    latents = encode_items(model, items)
    std = float(latents.std())
    if not np.isfinite(std) or std <= 0:
        raise CardiobenchError(f"the autoencoder's latent has standard deviation {std}: it cannot be scaled",
                               "train it longer or with another seed")
    test = split_items(spec, "test", data_root, model.data)
    extra = {"scale_factor": 1.0 / std, "latent_mean": float(latents.mean()),
             "latent_shape": list(model.latent_shape(spec.spatial_shape)),
             "reconstruction": reconstruction_report(model, test)}
    final = state(True, seconds, extra)
    AUTOENCODERS.save(path, final)
    return final


# -- files ----------------------------------------------------------------------------------------------------
def read_autoencoder_file(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict of an autoencoder file (``weights_only``); a one-line ``CardiobenchError`` otherwise."""
    return AUTOENCODERS.read(path)


@dataclass
class LoadedAutoencoder:
    """A trained autoencoder: the network (eval mode, no gradients), its spec, the latent scale factor and the
    reconstruction report of its test split."""

    model: Autoencoder
    spec: AutoencoderSpec
    scale_factor: float
    path: Path
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def spec_hash(self) -> str:
        return self.spec.hash()


def load_autoencoder(path: str | Path, device: str | torch.device = "cpu") -> LoadedAutoencoder:
    """A finished autoencoder file as a ``LoadedAutoencoder``; one ``CardiobenchError`` line for a damaged,
    unfinished or foreign file."""
    path = Path(path)
    state = read_autoencoder_file(path)
    if not state.get("complete") or "scale_factor" not in state:
        raise CardiobenchError(f"autoencoder {path} is not fully trained ({state.get('step')} of "
                               f"{state.get('total_steps')} steps)", f"finish it: {TRAIN_HINT}")
    try:
        spec = AutoencoderSpec.from_dict(state["spec"])
        model = create("autoencoder", spec.autoencoder, **state["architecture"])
        model.load_state_dict(state["model"])
        scale = float(state["scale_factor"])
    except CardiobenchError:
        raise
    except Exception as exc:  # keys, types or shapes that do not fit: a damaged file or another version
        raise AUTOENCODERS.damaged(path, exc) from None
    model.eval().requires_grad_(False).to(device)
    return LoadedAutoencoder(model, spec, scale, path, autoencoder_report(path, state))


@dataclass
class AutoencoderResult:
    """Where an autoencoder is and how it got there: ``status`` is ``trained``, ``resumed`` or ``reused``."""

    path: Path
    spec: AutoencoderSpec
    status: str


def prepare_autoencoder(spec: AutoencoderSpec, *, device: str | torch.device = "auto", data_root: str | None = None,
                        retrain: bool = False, progress: Progress | None = None) -> AutoencoderResult:
    """The cached autoencoder of ``spec`` if finished; else an unfinished one continued; else trained now.

    A damaged cache entry counts as missing (trained again, the file replaced). ``retrain`` ignores the cache."""
    spec = resolve_autoencoder_spec(spec)
    h = spec.hash()
    path = AUTOENCODERS.cache_path(h)
    if not retrain and AUTOENCODERS.valid(path, h, accept=lambda s: bool(s.get("complete"))):
        return AutoencoderResult(path, spec, "reused")
    start = None if retrain or not AUTOENCODERS.valid(path, h) else AUTOENCODERS.read(path)
    resolve(progress).log(f"[bold]autoencoder[/] {'continuing' if start else 'training'} {spec.autoencoder} "
                          f"{h[:12]} ({spec.data}, {spec.steps} steps)")
    t0 = time.perf_counter()
    train_autoencoder(spec, path, device=device, data_root=data_root, start=start, progress=progress)
    resolve(progress).log(f"[bold]autoencoder[/] {h[:12]} trained in {time.perf_counter() - t0:.1f} s")
    return AutoencoderResult(path, spec, "resumed" if start else "trained")


def autoencoder_report(path: str | Path, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-able description of an autoencoder file: spec, hash, latent shape and scale, reconstruction scores
    (Dice for label maps, L1 and PSNR for images)."""
    state = read_autoencoder_file(path) if state is None else state
    history = state.get("loss_history")
    tail = history.tolist()[-50:] if isinstance(history, torch.Tensor) else []
    return {
        "path": str(path), "spec_hash": state.get("spec_hash"), "spec": state.get("spec"),
        "complete": bool(state.get("complete")), "step": state.get("step"), "total_steps": state.get("total_steps"),
        "latent_shape": state.get("latent_shape"), "scale_factor": state.get("scale_factor"),
        "latent_mean": state.get("latent_mean"), "reconstruction": state.get("reconstruction", {}),
        "final_loss": round(sum(tail) / len(tail), 4) if tail else None,
        **{k: v for k, v in state.get("meta", {}).items()},
    }
