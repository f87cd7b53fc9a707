"""The fixed reference segmenter: a standard 2-D U-Net with a fixed recipe, trained on (image, mask) pairs.

It serves two purposes:

- **Downstream utility.** The same segmenter, trained with the same recipe on real, real + synthetic or
  synthetic-only pairs and scored on the real test split, measures how useful generated pairs are.
- **Image-mask faithfulness.** Trained on every real training pair of a data set, it is the *reference
  segmenter* (``reference_segmenter``): a generated MR image that is faithful to the mask it was conditioned
  on should be segmented back into that mask.

**Network.** MONAI's ``BasicUNet`` (``spatial_dims=2, in_channels=1, out_channels=4``), four 2x max-pool
downsamplings, instance norm, LeakyReLU, transposed-convolution upsampling; ``features`` are its six widths
(the five encoder levels and the last decoder level). The default ``(16, 16, 32, 64, 128, 16)`` halves
MONAI's default ``(32, 32, 64, 128, 256, 32)``: 0.50 M parameters instead of 1.98 M, small enough to train
on a CPU in minutes at 32x32. The side of the slices must be a multiple of 16 and at least 32 (the bottom
level is then at least 2x2, which instance norm needs).

**Recipe** (``SegmenterSpec``; every field is part of the spec hash, which names the cached file):

    loss       MONAI DiceCELoss (softmax, to_onehot_y, background included, batch Dice: the Dice of each
               class is computed over the whole batch, so slices without a structure do not make it noisy)
               = cross-entropy + (1 - soft Dice), equal weights
    optimizer  AdamW, ``lr`` (1e-3) with ``weight_decay`` (1e-4); cosine decay from ``lr`` to ``lr / 10``
               over ``steps``
    batches    ``batch_size`` pairs; epochs of a seeded permutation of the pairs (the last partial batch of
               an epoch is dropped); fewer pairs than ``batch_size``: every pair in every batch
    augment    per pair, seeded: one of the 8 flips / 90-degree rotations (the dihedral group, uniform),
               applied to the image and the mask alike, then an intensity scale in [0.9, 1.1] and a shift
               in [-0.1, 0.1] on the image (not clipped)

**Why 2000 steps** (real ACDC, ``acdc-h5`` ssl4mis split, 32x32, one CPU thread, test split of 367 slices,
mean Dice over RV/MYO/LV): trained on all 1,269 training slices, 500 steps 0.827, 1000 steps 0.844 (0.857 with
seed 1), 2000 steps 0.867 (0.869 with seed 1), 3000 steps 0.871: past 2000 steps the gain is a few thousandths
for 50 % more time. One step (batch 32) takes about 0.09 s on an idle CPU core, so 2000 steps about 3 minutes
(5-8 minutes were measured on a shared, busy 2-core machine). Augmentation at 2000
steps: +0.023 per-slice Dice on all slices (paired bootstrap 95 % CI [0.014, 0.031]), +0.076 Dice on the slices
of 3 patients (0.631 vs 0.555). With 3 patients (60 slices) longer training overfits a little (0.666 at 500
steps, 0.631 at 2000); the recipe is fixed regardless of the training set, as a downstream-utility protocol
must be.

**Determinism.** Initialisation (``seed``), batch order and augmentation (a generator seeded from ``seed``) are
seeded, and on the CPU training runs under ``torch.use_deterministic_algorithms``: the same spec and pairs give
the same weights bit for bit (same machine, same torch thread count). On a GPU it is seeded but not bit-exact.

**Cache.** ``train_segmenter`` fills ``spec.data`` with the fingerprint of the pairs (``fingerprint_pairs``), so
the spec hash names the training data too; the trained segmenter is stored as
``$CARDIOBENCH_CACHE_DIR/segmenters/<spec hash>.pt`` (``SEGMENTERS``, an ``engine.store.ArtefactStore``:
atomic writes, ``weights_only`` reads). A cached file that cannot be read is an error naming the file (delete
it to train again), never silently replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from cardiobench import __version__
from cardiobench.data import open_dataset
from cardiobench.data.base import NUM_CLASSES, SliceSet
from cardiobench.engine.loop import TrainLoop
from cardiobench.engine.store import ArtefactStore
from cardiobench.errors import CardiobenchError, DataError
from cardiobench.factories import resolve_device
from cardiobench.metrics.api import evaluate_segmentation
from cardiobench.metrics.segmentation import dice_scores
from cardiobench.progress import Progress, resolve
from cardiobench.specs import _Spec

__all__ = [
    "DEFAULT_FEATURES", "DEFAULT_STEPS", "SEGMENTERS", "Segmenter", "SegmenterSpec", "augment_batch",
    "build_network", "fingerprint_pairs", "load_segmenter", "per_slice_dice", "reference_segmenter",
    "score_segmenter", "segmenter_cache_path", "subset_patients", "train_segmenter",
]

#: the ``format`` entry of a segmenter file
FORMAT = "cardiobench-segmenter/1"
CHECKPOINT_KIND = "segmenter"
_HINT = "delete the file and run again to train the segmenter anew"
#: MONAI BasicUNet widths: half of MONAI's default (32, 32, 64, 128, 256, 32); 0.50 M parameters
DEFAULT_FEATURES: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
#: optimizer steps of the fixed recipe (chosen on real ACDC at 32x32: near convergence, see the module docstring)
DEFAULT_STEPS = 2000
#: the slices' side must be a multiple of this (four 2x downsamplings) and at least ``2 * _DIVISOR``
_DIVISOR = 16


def _check_file(state: Any, path: Path, hint: str) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("kind") != CHECKPOINT_KIND:
        raise CardiobenchError(f"{path} is not a cardiobench segmenter file (expected format {FORMAT})", hint)


#: the store of segmenters: ``cache_dir("segmenters")/<spec hash>.pt`` (nothing ships with the package)
SEGMENTERS = ArtefactStore("segmenters", what="segmenter file", hint=_HINT,
                           header={"format": FORMAT, "kind": CHECKPOINT_KIND}, check=_check_file)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class SegmenterSpec(_Spec):
    """Everything that determines a trained segmenter: network, recipe, seed and the training data's fingerprint.

    ``data`` is the ``fingerprint_pairs`` of the training pairs, filled in by ``train_segmenter`` (whatever it
    held before is replaced). See the module docstring for what each field does.
    """

    kind: ClassVar[str] = "segmenter"

    resolution: int = 32
    features: tuple[int, ...] | list[int] = DEFAULT_FEATURES
    steps: int = DEFAULT_STEPS
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0
    data: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        r = self.resolution
        if not _positive_int(r) or r < 2 * _DIVISOR or r % _DIVISOR:
            raise CardiobenchError(f"segmenter resolution must be a multiple of {_DIVISOR} and >= {2 * _DIVISOR}, "
                                   f"got {r!r}", "use 32, 48, 64, ... (the U-Net halves the side four times)")
        feats = self.features
        if not isinstance(feats, list) or len(feats) != 6 or not all(_positive_int(f) for f in feats):
            raise CardiobenchError(f"segmenter features must be 6 positive integers, got {feats!r}",
                                   f"e.g. {list(DEFAULT_FEATURES)}")
        for name in ("steps", "batch_size"):
            if not _positive_int(getattr(self, name)):
                raise CardiobenchError(f"segmenter {name} must be a positive integer, got {getattr(self, name)!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise CardiobenchError(f"segmenter learning rate must be > 0, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise CardiobenchError(f"segmenter weight decay must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.augment, bool):
            raise CardiobenchError(f"segmenter augment must be true or false, got {self.augment!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise CardiobenchError(f"segmenter seed must be an integer, got {self.seed!r}")
        if not isinstance(self.data, str):
            raise CardiobenchError(f"segmenter data fingerprint must be a string, got {self.data!r}")


# -- data ----------------------------------------------------------------------------------------------------
def fingerprint_pairs(images: np.ndarray, masks: np.ndarray) -> str:
    """sha256 (hex) of the shapes, dtypes and bytes of ``images`` and ``masks`` (C order): which pairs."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(images), np.ascontiguousarray(masks)):
        h.update(f"{a.shape}|{a.dtype.str}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _check_images(images: Any, resolution: int, name: str = "images") -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 3:
        raise DataError(f"{name} must be (N, H, W), got shape {x.shape}")
    if x.shape[1:] != (resolution, resolution):
        raise DataError(f"{name} are {x.shape[1]}x{x.shape[2]}, the segmenter is for {resolution}x{resolution}",
                        "resize them, or use a segmenter of that resolution")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{name} must be floating point in [0, 1], got {x.dtype}")
    return x


def _check_pairs(images: Any, masks: Any, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    x = _check_images(images, resolution)
    m = np.asarray(masks)
    if m.shape != x.shape:
        raise DataError(f"masks must match images, got {m.shape} and {x.shape}")
    if not np.issubdtype(m.dtype, np.integer):
        raise DataError(f"masks must be integer labels 0..{NUM_CLASSES - 1}, got {m.dtype}")
    if len(m) == 0:
        raise DataError("cannot train a segmenter on no pairs")
    if m.min() < 0 or m.max() >= NUM_CLASSES:
        raise DataError(f"mask labels must be 0..{NUM_CLASSES - 1}, got {int(m.min())}..{int(m.max())}")
    if not np.all(np.isfinite(x)):
        raise DataError("images hold NaN or infinite values")
    return x, m


def subset_patients(slices: SliceSet, n: int) -> SliceSet:
    """The slices of the first ``n`` patients (patient ids sorted as strings), in their original order."""
    ids = sorted({str(p) for p in slices.patients})
    if not _positive_int(n) or n > len(ids):
        raise CardiobenchError(f"cannot take {n!r} patients of a split of {len(ids)}")
    keep = set(ids[:n])
    return slices.subset(np.array([str(p) in keep for p in slices.patients], dtype=bool))


# -- network and augmentation --------------------------------------------------------------------------------
def build_network(spec: SegmenterSpec) -> nn.Module:
    """MONAI ``BasicUNet`` (2-D, 1 -> 4 channels, ``spec.features``), initialised from ``spec.seed`` without
    touching the global random state."""
    from monai.networks.nets import BasicUNet  # a runtime dependency; imported here: it takes seconds

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return BasicUNet(spatial_dims=2, in_channels=1, out_channels=NUM_CLASSES, features=tuple(spec.features))


def augment_batch(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch of images ``x`` (B, 1, H, W) float and masks ``y`` (B, 1, H, W): per pair one of the 8
    flips / 90-degree rotations (both), then an intensity scale in [0.9, 1.1] and a shift in [-0.1, 0.1] (the
    image only). All randomness from ``gen``; square slices only."""
    b = x.shape[0]
    u = torch.rand(b, 3, generator=gen)
    code = torch.randint(0, 8, (b,), generator=gen)
    x, y = x.clone(), y.clone()
    for c in range(1, 8):  # 0: identity
        sel = code == c
        if not bool(sel.any()):
            continue
        k, flip = c % 4, c >= 4
        xs, ys = x[sel], y[sel]
        if flip:
            xs, ys = xs.flip(-1), ys.flip(-1)
        x[sel], y[sel] = torch.rot90(xs, k, (-2, -1)), torch.rot90(ys, k, (-2, -1))
    scale = (0.9 + 0.2 * u[:, 0]).view(b, 1, 1, 1)
    shift = (0.2 * u[:, 1] - 0.1).view(b, 1, 1, 1)
    return x * scale + shift, y


def _lr_at(spec: SegmenterSpec, step: int) -> float:
    """Cosine decay from ``lr`` to ``lr / 10`` over the training."""
    frac = step / max(spec.steps - 1, 1)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


@contextlib.contextmanager
def _deterministic(dev: torch.device):
    """``torch.use_deterministic_algorithms`` on the CPU (bit-reproducible weights); on a GPU nothing (it would
    need ``CUBLAS_WORKSPACE_CONFIG`` and warn about every non-deterministic kernel)."""
    if dev.type != "cpu":
        yield
        return
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old)


# -- the segmenter -------------------------------------------------------------------------------------------
@dataclass
class Segmenter:
    """A trained network (eval mode, no parameter gradients) and its spec.

    ``meta``: ``train_seconds``, ``images_per_s``, ``final_loss`` (mean of the last 50 steps), ``n_pairs``,
    ``steps``, ``params``, ``device``, ``torch``, ``threads``, ``cardiobench_version``. ``status``: ``trained``
    (now) or ``reused`` (read from the cache); ``path``: its file, if any.
    """

    model: nn.Module
    spec: SegmenterSpec
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    status: str = "trained"

    @property
    def id(self) -> str:
        """The first 12 hex digits of the spec hash (which includes the training data's fingerprint)."""
        return self.spec.short_hash()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def predict(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """(N, H, W) float images in [0, 1] (H = W = ``spec.resolution``) -> (N, H, W) uint8 labels 0..3."""
        x = _check_images(images, self.spec.resolution)
        if len(x) == 0:
            return np.zeros(x.shape, dtype=np.uint8)
        self.model.eval()
        dev = self.device
        out = []
        for s in range(0, len(x), max(int(batch_size), 1)):
            xb = torch.from_numpy(np.ascontiguousarray(x[s : s + batch_size], dtype=np.float32))[:, None]
            out.append(self.model(xb.to(dev)).argmax(1).to(torch.uint8).cpu())
        return torch.cat(out).numpy()

    def state(self) -> dict[str, Any]:
        """The file's contents (without the store's header)."""
        return {"spec": self.spec.to_dict(), "spec_hash": self.spec.hash(),
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "meta": dict(self.meta)}

    def save(self, path: str | Path) -> Path:
        """Write the segmenter atomically (``SEGMENTERS.save``)."""
        self.path = SEGMENTERS.save(path, self.state())
        return self.path


def segmenter_cache_path(spec: SegmenterSpec) -> Path:
    """Where the segmenter of ``spec`` (with its ``data`` filled in) is cached."""
    return SEGMENTERS.cache_path(spec.hash())


def load_segmenter(path: str | Path, *, device: str | torch.device = "cpu", key: str | None = None) -> Segmenter:
    """A segmenter file (``weights_only``); one ``CardiobenchError`` line naming the file otherwise. ``key``: the
    spec hash the file must hold (a cache entry)."""
    path = Path(path)
    state = SEGMENTERS.read(path)
    try:
        spec = SegmenterSpec.from_dict(state["spec"])
        if state.get("spec_hash") != spec.hash():
            raise ValueError("its stored spec hash does not match its spec")
        if key is not None and spec.hash() != key:
            raise ValueError(f"it holds segmenter {spec.short_hash()}, not {key[:12]}")
        model = build_network(spec)
        model.load_state_dict(state["model"])
        meta = dict(state.get("meta", {}))
    except Exception as exc:  # keys, types or shapes that do not fit: a damaged file or another version
        raise SEGMENTERS.damaged(path, exc) from None
    model.eval().requires_grad_(False).to(resolve_device(device))
    return Segmenter(model=model, spec=spec, meta=meta, path=path, status="reused")


def _fit(x_np: np.ndarray, m_np: np.ndarray, spec: SegmenterSpec, dev: torch.device,
         progress: Progress | None) -> Segmenter:
    from monai.losses import DiceCELoss  # a runtime dependency; imported here: it takes seconds

    n = len(x_np)
    bs = min(spec.batch_size, n)
    per_epoch = n // bs
    with _deterministic(dev):
        model = build_network(spec).to(dev)
        x_all = torch.from_numpy(np.ascontiguousarray(x_np, dtype=np.float32))[:, None]
        y_all = torch.from_numpy(np.ascontiguousarray(m_np, dtype=np.int64))[:, None]
        gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + 7919)
        loss_fn = DiceCELoss(include_background=True, to_onehot_y=True, softmax=True, batch=True)
        opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        loop = TrainLoop(opt, lr_at=lambda step: _lr_at(spec, step))
        order = torch.empty(0, dtype=torch.long)

        def loss_at(step: int) -> torch.Tensor:
            nonlocal order
            b = step % per_epoch
            if b == 0:
                order = torch.randperm(n, generator=gen)
            idx = order[b * bs : (b + 1) * bs]
            x, y = x_all[idx], y_all[idx]
            if spec.augment:
                x, y = augment_batch(x, y, gen)
            return loss_fn(model(x.to(dev)), y.to(dev))

        model.train()
        stats = loop.run(loss_at, spec.steps, items_per_step=bs, progress=progress, label="segmenter",
                         what="segmenter training", hint="lower the segmenter's learning rate (SegmenterSpec.lr)",
                         report_every=10)
    model.eval().requires_grad_(False)
    tail = loop.history[-50:]
    meta = {
        "train_seconds": round(stats.seconds, 2),
        "images_per_s": round(stats.images_per_s, 1) if stats.images_per_s else None,
        "final_loss": round(sum(tail) / len(tail), 5) if tail else None,
        "n_pairs": int(n),
        "steps": int(loop.step),
        "params": int(sum(p.numel() for p in model.parameters())),
        "device": str(dev),
        "threads": int(torch.get_num_threads()),
        "torch": str(torch.__version__),
        "cardiobench_version": __version__,
        "loss_history": [round(v, 5) for v in loop.history],
    }
    return Segmenter(model=model, spec=spec, meta=meta, status="trained")


def train_segmenter(images: np.ndarray, masks: np.ndarray, spec: SegmenterSpec | None = None, *,
                    device: str = "auto", progress: Progress | None = None, cache: bool = True) -> Segmenter:
    """Train the segmenter of ``spec`` (default ``SegmenterSpec()``) on the pairs, or reuse its cached file.

    ``images`` (N, H, W) float in [0, 1], ``masks`` (N, H, W) integer labels 0..3, H = W = ``spec.resolution``.
    ``spec.data`` is set to ``fingerprint_pairs(images, masks)``; the result's spec hash keys the cache
    (``cache=False``: neither read nor written). A cached file that cannot be read is a ``CardiobenchError``
    naming it. Training runs on the shared loop (``cardiobench.engine.loop``) and reports through ``progress``.
    """
    spec = spec or SegmenterSpec()
    x, m = _check_pairs(images, masks, spec.resolution)
    spec = spec.replace(data=fingerprint_pairs(x, m))
    path = segmenter_cache_path(spec) if cache else None
    if path is not None and path.exists():
        return load_segmenter(path, device=device, key=spec.hash())
    dev = resolve_device(device)
    resolve(progress).log(f"[bold]segmenter[/] training {spec.short_hash()} on {len(x)} pairs "
                          f"({spec.resolution}px, {spec.steps} steps, {dev})")
    seg = _fit(x, m, spec, dev, progress)
    if path is not None:
        seg.save(path)
    return seg


# -- scoring -------------------------------------------------------------------------------------------------
def per_slice_dice(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(per slice (N,), per structure (N, 3))`` Dice of label maps.

    Per structure k (RV, MYO, LV): ``2 |P_k & G_k| / (|P_k| + |G_k|)``, NaN where the structure is in neither
    map. Per slice: the mean over the structures present in either map (absent ones are skipped, a structure
    present in only one map counts 0); NaN for a slice where neither map has any foreground.
    """
    dice = dice_scores(pred, target)
    p, g = np.asarray(pred), np.asarray(target)
    present = np.stack([((p == k) | (g == k)).reshape(len(p), -1).any(1) for k in range(1, NUM_CLASSES)], axis=1)
    per_structure = np.where(present, dice, np.nan)
    counts = present.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_slice = np.where(counts > 0, np.nansum(per_structure, axis=1) / np.maximum(counts, 1), np.nan)
    return per_slice.astype(np.float64), per_structure


def score_segmenter(seg: Segmenter, test: SliceSet, *, distance_unit: str | None = None) -> dict[str, Any]:
    """Segment ``test.images`` and score them against ``test.masks`` (``evaluate_segmentation``, spacing
    ``test.spacing`` in ``distance_unit``: ``"px"`` for a data set without voxel spacing such as ``acdc-h5``;
    ``None``: mm).

    Returns ``{"metrics": ...evaluate_segmentation metrics..., "per_slice_dice": (N,) float64 (see
    ``per_slice_dice``; NaN for a slice with no foreground in either map), "per_structure_dice": (N, 3),
    "meta": evaluate_segmentation's meta}``.
    """
    pred = seg.predict(test.images)
    result = evaluate_segmentation(pred, test.masks, test.spacing, distance_unit=distance_unit)
    per_slice, per_structure = per_slice_dice(pred, test.masks)
    return {"metrics": result["metrics"], "per_slice_dice": per_slice, "per_structure_dice": per_structure,
            "meta": {**result["meta"], "segmenter_id": seg.id, "n_slices": int(len(test))}}


def reference_segmenter(dataset: str, resolution: int, data_options: dict[str, Any] | None = None, *,
                        device: str = "auto", progress: Progress | None = None) -> Segmenter:
    """The default spec at ``resolution`` trained on ``dataset``'s full real training split (cached)."""
    source = open_dataset(dataset, size=resolution, **(data_options or {}))
    train = source.load("train")
    if len(train) == 0:
        raise CardiobenchError(f"data set {dataset!r} has no training slices", "a reference segmenter needs them")
    return train_segmenter(train.images, train.masks, SegmenterSpec(resolution=resolution), device=device,
                           progress=progress)
