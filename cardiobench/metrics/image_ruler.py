"""The image ruler: a small domain evaluator of MR slices, the ruler of image FID/KID (mask-to-image synthesis).

ImageNet Inception weights cannot be downloaded here (and grey 32-px cardiac crops are far from ImageNet), so
every data set gets an image ruler of its own, made like the mask ruler (``cardiobench.metrics.evaluator``):

- **Network** (``ImageCNN``): one grey channel in, four conv blocks (conv 3x3, BatchNorm, ReLU; widths w, w,
  2w, 4w, then 4w at 4x4), global average pooling, a 128-d embedding (``features``: FID, KID) and a linear
  pathology head (``logits``). The stem is strided by ``size // 32`` so a 64-px ruler costs what a 32-px one
  does. BatchNorm (not GroupNorm) keeps the features sensitive to global brightness and contrast: in eval mode
  it is a fixed affine map, where a per-image normalisation would cancel a global intensity error.
- **Input**: (N, H, W) images, float in [0, 1] or uint8 0..255 (divided by 255; floats are clipped to [0, 1],
  and a float array outside [-0.5, 1.5] is refused as mis-scaled), resized bilinearly (with antialiasing) to
  the ruler's native ``size`` when H differs, mapped to [-1, 1]. Compare samples and references at one
  resolution: the resize is part of what the ruler sees.
- **Objectives** (``ImageEvaluatorConfig.objective``): ``"ssl+pathology"`` (the default), SimCLR (Chen et al.,
  ICML 2020; the NT-Xent loss is ``evaluator.nt_xent``) on two ``augment_images`` views of each training
  image plus ``pathology_weight`` x the cross-entropy of the pathology head on both views, trained together;
  ``"ssl"``, SimCLR alone, then a linear probe (the frozen features -> pathology group); ``"pathology"``,
  supervised cross-entropy on one augmented view. The augmentations are integer shifts (reflect padding),
  horizontal flips and a mild gamma/contrast/brightness jitter (``intensity_jitter`` 0.3 of the full ranges,
  so that a global intensity error stays visible): no resampling, blur, noise, inversion or patch shuffling,
  so the ruler is never taught to ignore the damages of its own validity check. Why the default: on ACDC at
  32 px, ``"ssl"`` is the most sensitive to blur and noise but its probe is too weak for the validity record
  (test accuracy 0.35 against a bar of 0.38) and its FIDs barely see a wrong pathology mix; ``"pathology"``
  is valid but weighs a pathology mix far above image quality (a 1-px blur is 8x the real-vs-real FID,
  24x under the default); ``"ssl+pathology"`` is valid and keeps most of the SSL ruler's sensitivity.
- **Training** is deterministic (seeded, CPU, ``torch.use_deterministic_algorithms``, ``threads`` fixed) on the
  real training split at ``size``, on the shared training loop (``TrainLoop``, via the mask ruler's epoch
  helpers). The identity ``ImageEvaluator.id`` is the first 12 hex digits of the sha256 of the file format,
  the configuration and every tensor (name, dtype, shape, bytes) in key order.
- **Cache**: ``get_image_evaluator`` trains on first use and caches the file under the evaluators cache
  (``$CARDIOBENCH_CACHE_DIR/evaluators/images-<dataset>-<data fingerprint>-<config hash>.pt``) through an
  ``ArtefactStore`` of its own format (``IMAGE_FORMAT``): read weights-only; a damaged file is one
  ``CardiobenchError`` line naming the file and the fix.
- **Validity record** (``image_validity_record``, stored in the file as ``meta["validity"]``): the mask ruler's
  definition (``cardiobench.metrics.validity``) with image sets. On the real test images the FIDs must
  increase strictly ``real < mismatched < damaged < blobs``:

  - ``real``: ``n`` training images drawn at random (patients differ from the test split's);
  - ``mismatched``: ``n`` training images drawn with the mask ruler's group balances 1/15 .. 5/15
    (``validity.mismatch_shares``), median over the 5 balances: real images, wrong pathology mix;
  - ``damaged``: the ``real`` images damaged by each of ``IMAGE_DAMAGES`` (what a poor generator shows:
    ``blur``, Gaussian sigma ``size / 32`` px, i.e. 1 px at 32 px: over-smoothing; ``noise``, additive
    Gaussian noise of std 0.05: residual sampling noise; ``patches``, the 4x4 grid of patches shuffled:
    incoherent anatomy with right local texture; ``inverted``, 1 - x: wrong contrast), median over them;
  - ``blobs``: ``n`` smooth random intensity fields (``random_intensity_fields``): no anatomy at all;

  and the probe's test accuracy must be at least chance (the most frequent test group's share) + 0.1
  (``validity.judge``). Recorded, not judged: every damage's and balance's FID, single-group FIDs, and the
  real-vs-real halves of the test split (the relative-FID floor).
- **image_fidelity**: FID (``fidelity.frechet_distance``, torch-fidelity's formula), KID (torch-fidelity's
  ``kid_features_to_metric``), the floor (the median FID of random halves of the reference,
  ``fidelity.real_vs_real_halves``) and relative FID (``fidelity.relative_fid``). With ``inception_weights``
  the same keys prefixed ``image_inception_`` come from torch-fidelity's InceptionV3 read from that local file
  weights-only (``fidelity.SafeInceptionV3``; grey repeated to 3 channels, uint8).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import nn
from torch.utils.data import Dataset

from cardiobench.data.base import GROUPS
from cardiobench.engine.loop import TrainLoop, as_progress
from cardiobench.engine.store import ArtefactStore
from cardiobench.errors import CardiobenchError, warn
from cardiobench.metrics import evaluator as _mask_ruler
from cardiobench.metrics import validity as _validity
from cardiobench.metrics.evaluator import hash_tensors, load_splits, nt_xent
from cardiobench.metrics.fidelity import FidelityWarning, frechet_distance, real_vs_real_halves, relative_fid
from cardiobench.progress import Progress

__all__ = [
    "IMAGE_DAMAGES",
    "IMAGE_EVALUATORS",
    "IMAGE_FORMAT",
    "ImageCNN",
    "ImageEvaluator",
    "ImageEvaluatorConfig",
    "as_images",
    "augment_images",
    "build_image_evaluator",
    "get_image_evaluator",
    "image_cache_path",
    "image_fidelity",
    "image_fingerprint",
    "image_validity_record",
    "image_weights_digest",
    "load_image_evaluator",
    "random_intensity_fields",
    "train_image_evaluator",
]

IMAGE_FORMAT = "cardiobench-image-evaluator/1"
#: cache entries of image rulers start with this, beside the mask rulers in the same folder
CACHE_PREFIX = "images-"
OBJECTIVES: tuple[str, ...] = ("ssl", "pathology", "ssl+pathology")
_HINT = "delete it and run again: the image ruler is retrained (deterministically) on first use"


def _check_file(blob: Any, path: Path, hint: str) -> None:
    if not isinstance(blob, dict) or blob.get("format") != IMAGE_FORMAT:
        raise CardiobenchError(f"{path} is not a cardiobench image evaluator file (expected format {IMAGE_FORMAT})",
                               hint)


#: the store of image rulers: ``cache_dir("evaluators")/images-<dataset>-<fingerprint>-<config hash>.pt``
IMAGE_EVALUATORS = ArtefactStore("evaluators", what="image evaluator file", hint=_HINT,
                                 header={"format": IMAGE_FORMAT}, check=_check_file, key_field=None)


@dataclass(frozen=True)
class ImageEvaluatorConfig:
    """Architecture and training recipe of an image ruler; all of it is part of the ruler's identity."""

    size: int = 32  # native input side (images are resized to it)
    width: int = 32  # channels of the first blocks (doubled, then doubled again)
    features: int = 128  # dimension of the FID/KID features
    num_classes: int = len(GROUPS)
    objective: str = "ssl+pathology"  # | "ssl" (SimCLR + linear probe) | "pathology" (supervised); see the notes
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1  # fixed so training is bit-reproducible on one machine
    ssl_temperature: float = 0.2  # NT-Xent temperature
    ssl_projection: int = 64  # SimCLR projection head output (discarded after training)
    probe_epochs: int = 200  # full-batch steps of the linear probe on the frozen SSL features
    pathology_weight: float = 1.0  # "ssl+pathology": weight of the cross-entropy term beside NT-Xent
    intensity_jitter: float = 0.3  # scales the gamma/contrast/brightness ranges of ``augment_images`` (0: none)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise CardiobenchError(f"unknown image evaluator objective {self.objective!r}",
                                   f"use one of: {', '.join(OBJECTIVES)}")
        if self.size < 8 or self.size % 4:
            raise CardiobenchError(f"image evaluator size {self.size} must be a multiple of 4, at least 8")


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ImageCNN(nn.Module):
    """(B, 1, S, S) images in [-1, 1] -> (features (B, F), logits (B, classes))."""

    def __init__(self, config: ImageEvaluatorConfig):
        super().__init__()
        c = config.width
        self.body = nn.Sequential(
            _block(1, c, stride=max(1, config.size // 32)),  # 64 -> 32: full-resolution work stays small
            _block(c, c),
            nn.MaxPool2d(2),
            _block(c, 2 * c),
            nn.MaxPool2d(2),
            _block(2 * c, 4 * c),
            nn.MaxPool2d(2),
            _block(4 * c, 4 * c),  # 4x4 at 32 px: the receptive field spans the slice
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.embed = nn.Sequential(nn.Linear(4 * c, config.features), nn.ReLU(inplace=True))
        self.head = nn.Linear(config.features, config.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.embed(self.body(x))
        return feats, self.head(feats)


# -- inputs ---------------------------------------------------------------------------------------------------
def as_images(images, what: str = "images") -> np.ndarray:
    """(N, H, W) (or (N, 1, H, W)) images -> (N, H, W) float32 in [0, 1]. uint8 is divided by 255; floats are
    clipped to [0, 1] (a diffusion sample overshoots a little) and refused when outside [-0.5, 1.5] (0..255
    floats, or [-1, 1] data: rescale them first)."""
    a = np.asarray(images)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise CardiobenchError(f"{what} must be (N, H, W) grey images, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
        raise CardiobenchError(f"{what} must be float in [0, 1] or uint8 0..255, got {a.dtype}")
    a = a.astype(np.float32)
    if a.size and (not np.isfinite(a).all() or a.min() < -0.5 or a.max() > 1.5):
        raise CardiobenchError(
            f"{what} are not in [0, 1] (range {np.nanmin(a):.3g}..{np.nanmax(a):.3g}, or not finite)",
            "pass floats in [0, 1] or uint8 0..255")
    return np.clip(a, 0.0, 1.0)


def _to_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) float [0, 1] -> (B, 1, size, size) in [-1, 1] (bilinear with antialiasing when H != size)."""
    x = x[:, None].float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x * 2.0 - 1.0


def augment_images(x: torch.Tensor, gen: torch.Generator, intensity: float = 1.0) -> torch.Tensor:
    """One random view of each (B, 1, S, S) image in [-1, 1] (the SimCLR views; one view for the pathology
    objective). Per image: a shift of up to S/8 px in each direction (reflect padding, integer: no resampling
    blur), a horizontal flip (p 0.5), a gamma in [0.7, 1.43] (log-uniform) and a contrast factor in
    [0.85, 1.15] with a brightness offset of +-0.05 (in [0, 1] units), clipped; ``intensity`` scales these
    three ranges (log-gamma, contrast - 1, brightness; the default config uses 0.3: gamma in [0.9, 1.11],
    contrast +-4.5 %, brightness +-0.015). Never blur, noise,
    inversion or patch shuffling (the damages of the validity check). All randomness comes from ``gen``."""
    b, _, s, _ = x.shape
    pad = max(1, s // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    off = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen)
    u = torch.rand(b, 4, generator=gen)
    rows = (off[:, 0, None] + torch.arange(s))[:, :, None].expand(b, s, s)
    cols = (off[:, 1, None] + torch.arange(s))[:, None, :].expand(b, s, s)
    flat = padded[:, 0].reshape(b, -1)
    out = flat.gather(1, (rows * (s + 2 * pad) + cols).reshape(b, -1)).reshape(b, 1, s, s)
    out = torch.where((u[:, 0] < 0.5)[:, None, None, None], out.flip(-1), out)
    img = (out + 1.0) / 2.0
    gamma = torch.exp((u[:, 1] * 2 - 1) * 0.357 * intensity)[:, None, None, None]
    contrast = (1.0 + (u[:, 2] * 2 - 1) * 0.15 * intensity)[:, None, None, None]
    bright = ((u[:, 3] * 2 - 1) * 0.05 * intensity)[:, None, None, None]
    img = (img.clamp(0, 1) ** gamma - 0.5) * contrast + 0.5 + bright
    return img.clamp(0, 1) * 2.0 - 1.0


# -- damages and baselines of the validity record --------------------------------------------------------------
def blur(images, *, seed: int = 0, sigma: float | None = None) -> np.ndarray:
    """Gaussian blur of sigma ``size / 32`` px (1 px at 32, 2 at 64) per image (reflect borders)."""
    x = as_images(images)
    s = x.shape[-1] / 32.0 if sigma is None else sigma
    return gaussian_filter(x, (0, s, s), mode="reflect").astype(np.float32)


def noise(images, *, seed: int = 0, std: float = 0.05) -> np.ndarray:
    """Additive Gaussian noise of ``std`` (in [0, 1] units), seeded, clipped to [0, 1]."""
    x = as_images(images)
    rng = np.random.default_rng(seed)
    return np.clip(x + rng.standard_normal(x.shape).astype(np.float32) * std, 0, 1).astype(np.float32)


def shuffle_patches(images, *, seed: int = 0, grid: int = 4) -> np.ndarray:
    """Each image cut into ``grid`` x ``grid`` patches, put back in a random (never the identity) order."""
    x = as_images(images)
    n, h, w = x.shape
    ph, pw = h // grid, w // grid
    rng = np.random.default_rng(seed)
    out = x.copy()
    tiles = x[:, : ph * grid, : pw * grid].reshape(n, grid, ph, grid, pw).transpose(0, 1, 3, 2, 4)
    tiles = tiles.reshape(n, grid * grid, ph, pw)
    for i in range(n):
        perm = np.arange(grid * grid)
        while (perm == np.arange(grid * grid)).all():
            perm = rng.permutation(grid * grid)
        t = tiles[i, perm].reshape(grid, grid, ph, pw).transpose(0, 2, 1, 3).reshape(grid * ph, grid * pw)
        out[i, : ph * grid, : pw * grid] = t
    return out


def invert(images, *, seed: int = 0) -> np.ndarray:
    """1 - x: the contrast inverted (deterministic)."""
    return (1.0 - as_images(images)).astype(np.float32)


#: the damages of the ``damaged`` set: name -> ``f(images, *, seed) -> images`` (see the module docstring)
IMAGE_DAMAGES: dict[str, Callable[..., np.ndarray]] = {
    "blur": blur,
    "noise": noise,
    "patches": shuffle_patches,
    "inverted": invert,
}


def random_intensity_fields(n: int, size: int, seed: int = 0, sigma: float | None = None) -> np.ndarray:
    """(n, size, size) float32 smooth random fields (white noise smoothed with sigma ``size / 21``), each
    stretched to [0, 1]: the "no anatomy at all" baseline."""
    rng = np.random.default_rng(seed)
    s = size / 21.0 if sigma is None else sigma
    f = gaussian_filter(rng.standard_normal((n, size, size)), (0, s, s))
    lo, hi = f.min(axis=(1, 2), keepdims=True), f.max(axis=(1, 2), keepdims=True)
    return ((f - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


# -- identity -------------------------------------------------------------------------------------------------
def image_weights_digest(config: ImageEvaluatorConfig, state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 (hex) of the format, the configuration and every tensor's name, dtype, shape and bytes in key
    order (the recipe of ``evaluator.weights_digest``, with the image ruler's format in front so that an image
    ruler and a mask ruler can never share an id)."""
    h = hashlib.sha256()
    h.update(f"{IMAGE_FORMAT}|".encode())
    h.update(json.dumps(asdict(config), sort_keys=True).encode())
    return hash_tensors(h, state_dict).hexdigest()


def image_fingerprint(images: np.ndarray, groups: np.ndarray) -> str:
    """sha256 (hex) of the training images (float32) and groups: which data a ruler was trained on."""
    h = hashlib.sha256()
    x = np.ascontiguousarray(images, dtype=np.float32)
    h.update(f"images|{x.shape}|".encode())
    h.update(x.tobytes())
    h.update(np.ascontiguousarray(groups, dtype=np.int64).tobytes())
    return h.hexdigest()


@dataclass
class ImageEvaluator:
    """A trained image ruler: the model (eval mode, CPU), its configuration, identity and report."""

    model: ImageCNN
    config: ImageEvaluatorConfig
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def digest(self) -> str:
        return image_weights_digest(self.config, self.model.state_dict())

    @property
    def id(self) -> str:
        """The ruler's identity: the first 12 hex digits of ``digest``."""
        return self.digest[:12]

    @property
    def validity(self) -> dict[str, Any] | None:
        """The validity record measured when it was trained (``image_validity_record``), if any."""
        return self.meta.get("validity")

    @torch.no_grad()
    def predict(self, images, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W) images (float [0, 1] or uint8) -> (features (N, F) float64, logits (N, classes) float64)."""
        x = torch.from_numpy(as_images(images))
        self.model.eval()
        feats, logits = [], []
        for s in range(0, len(x), batch_size):
            f, lg = self.model(_to_input(x[s : s + batch_size], self.config.size))
            feats.append(f)
            logits.append(lg)
        if not feats:
            return np.zeros((0, self.config.features)), np.zeros((0, self.config.num_classes))
        return torch.cat(feats).double().numpy(), torch.cat(logits).double().numpy()

    def features(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """(N, H, W) images (float [0, 1] or uint8 0..255), any H -> (N, F) float64 FID/KID features."""
        return self.predict(images, batch_size=batch_size)[0]

    def accuracy(self, images, groups) -> float:
        _, logits = self.predict(images)
        return float((logits.argmax(1) == np.asarray(groups)).mean()) if len(logits) else float("nan")

    def save(self, path: str | Path) -> Path:
        """Write the ruler atomically (``IMAGE_EVALUATORS.save``)."""
        self.path = IMAGE_EVALUATORS.save(path, {"config": asdict(self.config), "state_dict": self.model.state_dict(),
                                                 "meta": self.meta})
        return self.path


def load_image_evaluator(path: str | Path) -> ImageEvaluator:
    """Read a ruler written by ``ImageEvaluator.save`` (weights-only); one error line if the file is not one."""
    path = Path(path)
    blob = IMAGE_EVALUATORS.read(path)
    try:
        config = ImageEvaluatorConfig(**blob["config"])
        model = ImageCNN(config)
        model.load_state_dict(blob["state_dict"])
        meta = dict(blob.get("meta", {}))
    except Exception as exc:  # keys, types or shapes that do not fit: a damaged file or another version
        raise IMAGE_EVALUATORS.damaged(path, exc) from None
    model.eval().requires_grad_(False)
    return ImageEvaluator(model=model, config=config, meta=meta, path=path)


# -- training -------------------------------------------------------------------------------------------------
def _deterministic(threads: int):
    """The mask ruler's deterministic context (seeded algorithms, fixed threads)."""
    return _mask_ruler._deterministic(threads)


def _one_cycle(params: list[torch.Tensor], cfg: ImageEvaluatorConfig, steps: int) -> TrainLoop:
    """AdamW with the one-cycle learning rate (the mask ruler's recipe)."""
    return _mask_ruler._one_cycle(params, cfg, steps)  # type: ignore[arg-type]


def _run_epochs(loop: TrainLoop, cfg: ImageEvaluatorConfig, n: int, per_epoch: int, gen: torch.Generator,
                batch_loss, line, progress: Progress) -> None:
    """The mask ruler's epoch loop (seeded permutation per epoch, a line per epoch) on the shared loop."""
    _mask_ruler._run_epochs(loop, cfg, n, per_epoch, gen, batch_loss, line, progress)  # type: ignore[arg-type]


def _train_pathology(model: ImageCNN, x_all: torch.Tensor, y_all: torch.Tensor, cfg: ImageEvaluatorConfig,
                     gen: torch.Generator, progress: Progress) -> None:
    """Supervised: cross-entropy on the pathology group of one ``augment_images`` view per image."""
    per_epoch = (len(x_all) + cfg.batch_size - 1) // cfg.batch_size
    loop = _one_cycle(list(model.parameters()), cfg, cfg.epochs * per_epoch)
    model.train()

    def batch_loss(idx: torch.Tensor, tally) -> torch.Tensor:
        _, logits = model(augment_images(x_all[idx], gen, cfg.intensity_jitter))
        loss = F.cross_entropy(logits, y_all[idx])
        tally.add(loss, len(idx), int((logits.argmax(1) == y_all[idx]).sum()))
        return loss

    _run_epochs(loop, cfg, len(x_all), per_epoch, gen, batch_loss,
                lambda t: f"loss {t.loss / t.items:.4f}, train accuracy {t.correct / t.items:.3f}", progress)


def _train_ssl(model: ImageCNN, x_all: torch.Tensor, y_all: torch.Tensor, cfg: ImageEvaluatorConfig,
               gen: torch.Generator, progress: Progress) -> None:
    """SimCLR on two ``augment_images`` views (projection head discarded), then the linear probe ``head`` on
    the frozen features of the unaugmented training images (full batch, cross-entropy). ``"ssl+pathology"``:
    NT-Xent plus ``pathology_weight`` x the cross-entropy of ``head`` on both views, trained together (no
    separate probe)."""
    joint = cfg.objective == "ssl+pathology"
    proj = nn.Sequential(nn.Linear(cfg.features, cfg.features), nn.ReLU(inplace=True),
                         nn.Linear(cfg.features, cfg.ssl_projection))
    params = [*model.body.parameters(), *model.embed.parameters(), *proj.parameters()]
    if joint:
        params += list(model.head.parameters())
    per_epoch = len(x_all) // cfg.batch_size if len(x_all) >= 2 * cfg.batch_size else 1
    loop = _one_cycle(params, cfg, cfg.epochs * per_epoch)
    model.train()
    proj.train()

    def batch_loss(idx: torch.Tensor, tally) -> torch.Tensor:
        x = x_all[idx]
        views = torch.cat([augment_images(x, gen, cfg.intensity_jitter), augment_images(x, gen, cfg.intensity_jitter)])
        feats = model.embed(model.body(views))
        z = proj(feats)
        loss = nt_xent(z[: len(idx)], z[len(idx) :], cfg.ssl_temperature)
        correct = 0
        if joint:
            logits, y = model.head(feats), y_all[idx].repeat(2)
            loss = loss + cfg.pathology_weight * F.cross_entropy(logits, y)
            correct = int((logits.argmax(1) == y).sum()) // 2
        tally.add(loss, len(idx), correct)
        return loss

    _run_epochs(loop, cfg, len(x_all), per_epoch, gen, batch_loss,
                lambda t: f"loss {t.loss / max(t.items, 1):.4f}" + (
                    f", train accuracy {t.correct / max(t.items, 1):.3f}" if joint else ""), progress)
    model.eval()
    if joint:
        return
    with torch.no_grad():
        feats = torch.cat([model.embed(model.body(x_all[s : s + 256])) for s in range(0, len(x_all), 256)])
    probe = TrainLoop(torch.optim.AdamW(model.head.parameters(), lr=1e-2, weight_decay=cfg.weight_decay))
    probe.run(lambda _step: F.cross_entropy(model.head(feats), y_all), cfg.probe_epochs, progress=progress,
              label="linear probe", what="linear probe training")


def train_image_evaluator(
    train_images: np.ndarray,
    train_groups: np.ndarray,
    config: ImageEvaluatorConfig | None = None,
    *,
    eval_sets: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    progress: Progress | None = None,
) -> ImageEvaluator:
    """Train an ``ImageCNN`` deterministically on the CPU with ``config.objective``; ``eval_sets`` (name ->
    (images, groups)) are scored afterwards into ``meta["accuracy"]``."""
    reporter = as_progress(progress)
    cfg = config or ImageEvaluatorConfig()
    groups = np.asarray(train_groups, dtype=np.int64)
    x = as_images(train_images, "training images")
    if len(x) == 0:
        raise CardiobenchError("cannot train an image evaluator on an empty training split")
    if len(np.unique(groups)) < 2:
        raise CardiobenchError("the training split has fewer than two pathology groups; an image evaluator needs "
                               "labels (its probe)")
    t0 = time.perf_counter()
    with _deterministic(cfg.threads):
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        model = ImageCNN(cfg)
        x_all = _to_input(torch.from_numpy(x), cfg.size).contiguous()
        y_all = torch.as_tensor(groups)
        train = _train_pathology if cfg.objective == "pathology" else _train_ssl
        train(model, x_all, y_all, cfg, gen, reporter)
        model.eval().requires_grad_(False)
    ev = ImageEvaluator(model=model, config=cfg)
    meta: dict[str, Any] = {
        "format": IMAGE_FORMAT,
        "groups": list(GROUPS),
        "train_fingerprint": image_fingerprint(x, groups),
        "n_train": int(len(groups)),
        "train_seconds": round(time.perf_counter() - t0, 2),
        "torch": str(torch.__version__),
        "objective": cfg.objective,
        "accuracy": {},
    }
    for name, (imgs, y) in (eval_sets or {}).items():
        if len(imgs):
            meta["accuracy"][name] = round(ev.accuracy(imgs, np.asarray(y, dtype=np.int64)), 4)
    ev.meta = meta
    return ev


# -- the validity record --------------------------------------------------------------------------------------
def _pick_balance(train_groups: np.ndarray, groups: list[int], shares: np.ndarray, n: int,
                  rng: np.random.Generator) -> np.ndarray:
    """The mask ruler's draw of ``n`` training items with a group balance (``validity._pick_balance``)."""
    return _validity._pick_balance(train_groups, groups, shares, n, rng)


def image_validity_record(
    features: Callable[[np.ndarray], np.ndarray],
    test_images: np.ndarray,
    test_groups: np.ndarray,
    train_images: np.ndarray,
    train_groups: np.ndarray,
    *,
    accuracy: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The validity record of an image ruler (see the module docstring): ``features(images) -> (N, F)``;
    images (N, S, S) float in [0, 1] at the ruler's native size; groups index ``GROUPS``. The keys are those
    of ``validity.validity_record`` (``valid``, ``flag``, ``ordering``, ...) plus ``kind: "image"``."""
    t0 = time.perf_counter()
    test_images, train_images = as_images(test_images), as_images(train_images)
    test_groups = np.asarray(test_groups, dtype=np.int64)
    train_groups = np.asarray(train_groups, dtype=np.int64)
    chance = _validity.chance_level(test_groups)
    accuracy = float("nan") if accuracy is None else float(accuracy)
    counts = np.bincount(train_groups, minlength=len(GROUPS)) if train_groups.size else np.zeros(len(GROUPS), int)
    present = [g for g in range(len(GROUPS)) if counts[g] > 0]
    shares = _validity.mismatch_shares(len(present))
    fit = min((int(counts[g] / shares[0].max()) for g in present), default=0)
    n = int(min(len(test_images), len(train_images), fit))
    record: dict[str, Any] = {
        "version": _validity.VERSION,
        "kind": "image",
        "accuracy": round(accuracy, 4),
        "chance": round(chance, 4),
        "chance_rule": _validity.CHANCE_RULE,
        "accuracy_margin": _validity.ACCURACY_MARGIN,
        "n": n,
        "n_test": int(len(test_images)),
        "size": int(test_images.shape[-1]) if len(test_images) else None,
        "seed": seed,
        "damages": list(IMAGE_DAMAGES),
    }
    if n < _validity.MIN_SET or len(present) < 2:
        reason = f"too few images to test the ordering (sets of {n}, {len(present)} groups)"
        if not _validity.accuracy_ok(record["accuracy"], chance):
            reason = f"accuracy {record['accuracy']:.3g} vs chance {chance:.3g}; {reason}"
        record.update(valid=False, flag=reason, ordering=dict.fromkeys(_validity.ORDERING, float("nan")),
                      ordering_failures=list(_validity.ORDERING[1:]), seconds=round(time.perf_counter() - t0, 2))
        return record
    rng = np.random.default_rng(seed)
    f_test = np.asarray(features(test_images))
    f_train = np.asarray(features(train_images))

    def fid(f: np.ndarray) -> float:
        return frechet_distance(f_test, f)

    pick = np.sort(rng.permutation(len(train_images))[:n])
    real = train_images[pick]
    balances = [fid(f_train[_pick_balance(train_groups, present, sh, n, rng)]) for sh in shares]
    per_damage = {name: fid(np.asarray(features(fn(real, seed=seed)))) for name, fn in IMAGE_DAMAGES.items()}
    ordering = {
        "real": fid(f_train[pick]),
        "mismatched": float(np.median(balances)),
        "damaged": float(np.median(list(per_damage.values()))),
        "blobs": fid(np.asarray(features(random_intensity_fields(n, int(real.shape[-1]), seed=seed)))),
    }
    single = {GROUPS[g]: fid(f_train[rng.permutation(np.flatnonzero(train_groups == g))[:n]]) for g in present}
    valid, flag = _validity.judge(record["accuracy"], chance, ordering)
    record.update(
        valid=valid,
        flag=flag,
        ordering={k: round(v, 6) for k, v in ordering.items()},
        ordering_failures=_validity.ordering_failures(ordering),
        mismatched_per_balance=[round(v, 6) for v in balances],
        damaged_per_transform={k: round(v, 6) for k, v in per_damage.items()},
        single_group={k: round(v, 6) for k, v in single.items()},
        real_halves=real_vs_real_halves(f_test, seed=seed),
        seconds=round(time.perf_counter() - t0, 2),
    )
    return record


def add_image_validity(ev: ImageEvaluator, splits: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """Measure ``ev``'s validity record on ``splits`` ("train" and "test" SliceSets at its size) into ``ev.meta``."""
    train, test = splits["train"], splits["test"]
    record = image_validity_record(ev.features, test.images, test.groups, train.images, train.groups,
                                   accuracy=ev.accuracy(test.images, test.groups) if len(test) else None, seed=seed)
    ev.meta["validity"] = record
    return record


# -- getting the image ruler of a data set --------------------------------------------------------------------
def image_cache_path(dataset: str, fingerprint: str, config: ImageEvaluatorConfig) -> Path:
    """Where the image ruler trained on this data with this configuration is cached."""
    cfg = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:8]
    return IMAGE_EVALUATORS.cache_path(f"{CACHE_PREFIX}{dataset}-{fingerprint[:16]}-{cfg}")


def build_image_evaluator(dataset: str, splits: dict[str, Any], config: ImageEvaluatorConfig | None = None, *,
                          progress: Progress | None = None) -> ImageEvaluator:
    """Train on ``splits["train"]`` images, score every split into ``meta`` and, with a test split, measure the
    validity record."""
    reporter = as_progress(progress)
    train = splits["train"]
    ev = train_image_evaluator(train.images, train.groups, config,
                               eval_sets={name: (s.images, s.groups) for name, s in splits.items()},
                               progress=reporter)
    ev.meta["dataset"] = dataset
    if "test" in splits:
        record = add_image_validity(ev, splits)
        if reporter.enabled:
            reporter.log(f"image ruler validity ({record.get('seconds')} s): "
                         f"{_validity.ruler_line(ev.id, _validity.ruler_validity(record))}")
    return ev


def get_image_evaluator(
    dataset: str,
    data_options: dict[str, Any] | None = None,
    *,
    size: int,
    config: ImageEvaluatorConfig | None = None,
    train: bool = True,
    progress: Progress | None = None,
) -> ImageEvaluator:
    """The image ruler of ``dataset`` at ``size``: the cached one, else trained now on the training split's
    images at ``size`` and cached (``image_cache_path``).

    ``data_options`` go to ``open_dataset`` (e.g. ``data_root``, ``split``). ``config=None``:
    ``ImageEvaluatorConfig(size=size)``; a config of another size is an error. A damaged cache file is a
    one-line ``CardiobenchError`` naming it (delete it to retrain). ``train=False``: an error instead of training.
    """
    reporter = as_progress(progress)
    cfg = config or ImageEvaluatorConfig(size=size)
    if cfg.size != size:
        raise CardiobenchError(f"the image evaluator config has size {cfg.size} but size={size} was asked for",
                               f"use replace(config, size={size})")
    splits = load_splits(dataset, size, data_options)
    tr = splits["train"]
    fingerprint = image_fingerprint(as_images(tr.images), tr.groups)
    path = image_cache_path(dataset, fingerprint, cfg)
    if path.is_file():
        return load_image_evaluator(path)
    if not train:
        raise CardiobenchError(f"no {size}-px image evaluator for {dataset} yet",
                               "call get_image_evaluator with train=True (trains on the CPU)")
    if reporter.enabled:
        reporter.log(f"training the {dataset} image ruler ({cfg.objective} objective, {len(tr)} images at "
                     f"{size} px, {cfg.epochs} epochs, CPU) ...")
    ev = build_image_evaluator(dataset, splits, cfg, progress=reporter)
    ev.save(path)
    return ev


# -- image FID ------------------------------------------------------------------------------------------------
class _GreyRGBDataset(Dataset):
    """(N, H, W) images in [0, 1] -> items (3, H, W) uint8 (grey repeated), what torch-fidelity's Inception takes."""

    def __init__(self, images: np.ndarray):
        u8 = np.round(as_images(images) * 255.0).astype(np.uint8)
        self.images = torch.from_numpy(np.ascontiguousarray(u8))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i][None].expand(3, -1, -1).contiguous()


def inception_image_features(images, inception_weights: str | os.PathLike, *, batch_size: int = 64) -> np.ndarray:
    """(N, F) float64 FID features of grey images from torch-fidelity's InceptionV3, its weights read from the
    local file weights-only (``fidelity.SafeInceptionV3``); the network resizes to 299 px itself."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    from cardiobench.metrics.fidelity import INCEPTION_EXTRACTOR, check_inception_weights, register_domain_extractor

    register_domain_extractor()
    weights = str(check_inception_weights(inception_weights))
    layer = FEATURE_EXTRACTORS_REGISTRY[INCEPTION_EXTRACTOR].get_default_feature_layer_for_metric("fid")
    extractor = create_feature_extractor(INCEPTION_EXTRACTOR, [layer], cuda=False,
                                         feature_extractor_weights_path=weights, verbose=False)
    feats = get_featuresdict_from_dataset(_GreyRGBDataset(images), extractor, batch_size, False, True, False)[layer]
    return feats.double().numpy()


def _kid(f1: np.ndarray, f2: np.ndarray, seed: int, subset_size: int | None) -> tuple[float, float]:
    """torch-fidelity's KID (polynomial kernel, 100 subsets) of two feature sets; the subset size adapts
    (``fidelity._adapt``) with a ``FidelityWarning``."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    from cardiobench.metrics.fidelity import _adapt

    kid, _, _, notes = _adapt(len(f1), len(f2), subset_size, None)
    for note in notes:
        if note.startswith("KID"):
            warn(note, FidelityWarning)
    out = kid_features_to_metric(torch.as_tensor(f1, dtype=torch.float32), torch.as_tensor(f2, dtype=torch.float32),
                                 kid_subsets=100, kid_subset_size=kid, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def _fidelity_from_features(f_fake: np.ndarray, f_real: np.ndarray, f_ref: np.ndarray, seed: int,
                            kid_subset_size: int | None, prefix: str) -> dict[str, float]:
    fid = frechet_distance(f_fake, f_real)
    kid, kid_std = _kid(f_fake, f_real, seed, kid_subset_size)
    floor = real_vs_real_halves(f_ref, seed=seed)
    return {
        f"{prefix}fid": fid,
        f"{prefix}kid": kid,
        f"{prefix}kid_std": kid_std,
        f"{prefix}fid_real": float("nan") if floor is None else float(floor["median"]),
        f"{prefix}fid_relative": relative_fid(fid, floor),
    }


def image_fidelity(
    fake: np.ndarray,
    real: np.ndarray,
    evaluator: ImageEvaluator,
    *,
    reference: np.ndarray | None = None,
    seed: int = 0,
    inception_weights: str | os.PathLike | None = None,
    kid_subset_size: int | None = None,
) -> dict[str, float]:
    """Image FID/KID of ``fake`` against ``real`` under the image ruler ``evaluator``.

    ``fake``, ``real`` (and ``reference``): (N, H, W) grey images, float in [0, 1] or uint8 0..255 (both are
    accepted and agree: uint8 is divided by 255); give them at one resolution. Returns ``image_fid``,
    ``image_kid`` (``image_kid_std``), ``image_fid_real`` (the floor: the median FID of 5 random disjoint halves
    of ``reference``, default ``real``) and ``image_fid_relative`` (``image_fid / image_fid_real``). With
    ``inception_weights`` (torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``, a local file): the
    same keys from InceptionV3's 2048-d pool features, prefixed ``image_inception_``. The KID subset size is
    at most half the smaller set (``kid_subset_size`` to set it)."""
    fk, rl = as_images(fake, "fake images"), as_images(real, "real images")
    ref = rl if reference is None else as_images(reference, "reference images")
    if len(fk) < 2 or len(rl) < 2:
        raise CardiobenchError(f"image FID needs at least 2 images per set, got {len(fk)} fake and {len(rl)} real")
    out = _fidelity_from_features(evaluator.features(fk), evaluator.features(rl),
                                  evaluator.features(ref), seed, kid_subset_size, "image_")
    if inception_weights is not None:
        feats = [inception_image_features(x, inception_weights) for x in (fk, rl)]
        f_ref = feats[1] if reference is None else inception_image_features(ref, inception_weights)
        out.update(_fidelity_from_features(feats[0], feats[1], f_ref, seed, kid_subset_size, "image_inception_"))
    return out
