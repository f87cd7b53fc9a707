"""The noisy classifier of classifier guidance (Dhariwal & Nichol 2021): p(y | x_t, t) of the pathology group.

A small time-conditioned CNN (``NoisyClassifier``) reads a noised one-hot mask ``x_t`` (pixel space, as the
denoiser sees it) and its integer timestep, and predicts the pathology group (``cardiobench.data.GROUPS``).
It is trained on the training split noised by the *same* forward process as the diffusion model it guides::

    x0 = one-hot masks in [-1, 1];  y = pathology group;  t ~ U{0..T-1};  eps ~ N(0, I)   (one seeded generator)
    x_t = process.q_sample(x0, t, eps);  loss = cross_entropy(classifier(x_t, t), y);  Adam, cosine-decayed lr

A ``ClassifierSpec`` (data, forward process, size, training recipe) names the classifier; its hash keys the
cache ``cache_dir("classifiers")/<hash>.pt``, and a file ``cardiobench/assets/classifiers/<hash>.pt`` shipped
with the package is copied into the cache instead of training (``CLASSIFIERS``, an ``engine.store.ArtefactStore``).
The forward process is recorded without its ``prediction_type``: ``q(x_t | x_0)`` does not depend on what the
denoiser predicts, so one classifier serves epsilon-, v- and x0-prediction models of the same process. Training
runs on the shared loop (``cardiobench.engine.loop.TrainLoop``) and reports through ``progress``.

The checkpoint (``weights_only``-loadable) holds the spec, the weights, the architecture, the loss history and
the accuracy measured on the test split at uniform ``t`` per quarter of the time range (``accuracy``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cardiobench import __version__
from cardiobench.data.base import GROUPS, NUM_CLASSES
from cardiobench.engine.checkpoints import HEADER
from cardiobench.engine.store import ArtefactStore
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.models.layers import ConvNextBlock, Downsample, SinusoidalTimeEmbedding
from cardiobench.progress import Progress, resolve
from cardiobench.specs import DataNoiseSpec, TrainSpec

#: the ``kind`` entry of a classifier checkpoint (written with the checkpoints' format tags)
CHECKPOINT_KIND = "noisy-classifier"
#: classifiers shipped with the package, named ``<classifier spec hash>.pt``
SHIPPED_CLASSIFIERS = Path(__file__).resolve().parents[1] / "assets" / "classifiers"
TRAIN_HINT = "train it with `cardiobench classifier train` (see `cardiobench classifier train --help`)"
#: test-set accuracy is reported per quarter of the time range
NUM_BUCKETS = 4


def _check_file(state: Any, path: Path, hint: str) -> None:
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CardiobenchError(f"{path} is not a cardiobench noisy-classifier checkpoint", TRAIN_HINT)


#: the store of classifiers: ``cache_dir("classifiers")/<hash>.pt``, shipped ``assets/classifiers/<hash>.pt``
CLASSIFIERS = ArtefactStore("classifiers", what="classifier checkpoint", hint=f"delete it and {TRAIN_HINT}",
                            shipped_dir=lambda: SHIPPED_CLASSIFIERS, header=HEADER, check=_check_file)

#: named sizes: keyword arguments of ``NoisyClassifier`` (parameter counts at 32x32 in docs/conditioning.md)
SIZES: dict[str, dict[str, Any]] = {
    # unit tests: 3.5 k parameters, milliseconds per call
    "tiny": dict(channels=(8, 16), blocks=1, time_dim=16, ds_kernel=3),
    # the default: 0.16 M parameters, narrow at full resolution (cheap), wide after three downsamplings; at
    # 32x32 it matched a 0.31 M variant (16, 32, 96, 192) in test accuracy at 3/4 of its training time
    "small": dict(channels=(16, 32, 64, 128), blocks=1, time_dim=64, ds_kernel=3),
}

DEFAULT_SIZE = "small"
DEFAULT_STEPS = 1500
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 1e-3


class NoisyClassifier(nn.Module):
    """``(x_t (B, C, H, W), t (B,) long) -> logits (B, num_classes)``: a time-conditioned ConvNeXt encoder.

    Layout for ``channels = (c_0, ..., c_{L-1})``::

        t -> sinusoidal(c_0) -> Linear -> GELU -> Linear -> emb (B, time_dim)
        x -> 3x3 conv (C -> c_0)
        level i: ``blocks`` x ConvNeXt(c_i, emb), then Downsample (c_i -> c_{i+1}, halves H, W) for i < L-1
        GroupNorm -> GELU -> global average pool -> Linear (c_{L-1} -> num_classes)

    H and W must be divisible by ``2^(L-1)``. There is no batch statistic anywhere (GroupNorm), so each
    sample's logits depend on that sample only: the guidance gradient of a batch sum is per sample.
    """

    def __init__(self, in_channels: int = NUM_CLASSES, num_classes: int = len(GROUPS),
                 channels: tuple[int, ...] | list[int] = (16, 32, 64, 128), blocks: int = 1, time_dim: int = 64,
                 ds_kernel: int = 3):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 4 or channels[0] % 2:
            raise CardiobenchError(f"classifier channels must be >= 4 with an even first one, got {channels}")
        if int(blocks) < 1:
            raise CardiobenchError(f"classifier blocks per level must be >= 1, got {blocks}")
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.channels, self.blocks, self.time_dim, self.ds_kernel = channels, int(blocks), int(time_dim), int(ds_kernel)
        self.time_mlp = nn.Sequential(
            SinusoidalTimeEmbedding(channels[0]), nn.Linear(channels[0], time_dim), nn.GELU(),
            nn.Linear(time_dim, time_dim),
        )
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.levels = nn.ModuleList(
            nn.ModuleList(ConvNextBlock(c, c, time_dim, mult=2, ds_kernel=ds_kernel, inner_kernel=1)
                          for _ in range(self.blocks))
            for c in channels
        )
        self.downs = nn.ModuleList(Downsample(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True))
        self.head = nn.Sequential(nn.GroupNorm(1, channels[-1]), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(channels[-1], num_classes))

    def config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "num_classes": self.num_classes, "channels": list(self.channels),
                "blocks": self.blocks, "time_dim": self.time_dim, "ds_kernel": self.ds_kernel}

    def check_size(self, resolution: int) -> None:
        """A clear error for images this layout cannot downsample (the side must divide by ``2^(L-1)``)."""
        factor = 2 ** (len(self.channels) - 1)
        if resolution % factor:
            raise CardiobenchError(f"a classifier with {len(self.channels)} levels needs a resolution divisible by "
                                   f"{factor}, got {resolution}", "use another resolution or classifier size")

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(t)
        h = self.stem(x)
        for i, level in enumerate(self.levels):
            for block in level:
                h = block(h, emb)
            if i < len(self.downs):
                h = self.downs[i](h)
        return self.head(h)


def build_classifier(size: str = DEFAULT_SIZE, *, seed: int | None = None, **overrides: Any) -> NoisyClassifier:
    """A ``NoisyClassifier`` of a named size; with ``seed``, initialised from it without touching the global RNG."""
    if size not in SIZES:
        raise CardiobenchError(f"unknown classifier size {size!r}", f"use one of: {', '.join(SIZES)}")
    kwargs = {**SIZES[size], **overrides}
    if seed is None:
        return NoisyClassifier(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NoisyClassifier(**kwargs)


# -- the spec -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifierSpec(DataNoiseSpec):
    """Everything that determines a trained noisy classifier (and nothing else: no device, no data folder).

    ``noise_options`` are the forward process's resolved options (its ``config()`` without
    ``prediction_type``); ``steps`` optimizer steps of ``batch_size`` masks at learning rate ``lr``.
    """

    kind: ClassVar[str] = "classifier"

    size: str = DEFAULT_SIZE
    steps: int = DEFAULT_STEPS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size not in SIZES:
            raise CardiobenchError(f"unknown classifier size {self.size!r}", f"use one of: {', '.join(SIZES)}")
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CardiobenchError(f"classifier {name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise CardiobenchError(f"classifier learning rate must be > 0, got {self.lr}")


def build_noise_process(spec: ClassifierSpec):
    """The forward process of ``spec`` (a ``linear-gaussian`` process; an ``IncompatibleError`` otherwise)."""
    from cardiobench.plugins import get_component

    process = get_component("noise", spec.noise).create(**spec.noise_options)
    if getattr(process, "family", None) != "linear-gaussian":
        raise IncompatibleError(
            f"classifier guidance needs a linear-gaussian noise process; {spec.noise!r} is of family "
            f"{getattr(process, 'family', None)!r}", "use --noise gaussian or --noise blurring")
    return process


def forward_process_options(process: Any) -> dict[str, Any]:
    """A process's options that determine ``q(x_t | x_0)``: its ``config()`` without ``prediction_type``."""
    cfg = dict(process.config()) if callable(getattr(process, "config", None)) else {}
    cfg.pop("prediction_type", None)
    return cfg


def resolve_classifier_spec(spec: ClassifierSpec) -> ClassifierSpec:
    """``spec`` with the forward process's options spelled out (idempotent), so equal classifiers share a hash."""
    process = build_noise_process(spec)
    return spec.replace(noise_options=forward_process_options(process))


def classifier_spec_for(train_spec: TrainSpec, **overrides: Any) -> ClassifierSpec:
    """The classifier for a diffusion model's ``TrainSpec``: same data, same forward process; ``overrides``
    set ``size``, ``steps``, ``batch_size``, ``lr`` or ``seed`` (``None`` values are ignored)."""
    known = {"size", "steps", "batch_size", "lr", "seed"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise CardiobenchError(f"unknown classifier option(s): {', '.join(unknown)}",
                               f"use: {', '.join(sorted(known))}")
    spec = ClassifierSpec(
        dataset=train_spec.dataset, resolution=train_spec.resolution, data_seed=train_spec.data_seed,
        dataset_options=dict(train_spec.dataset_options), noise=train_spec.noise,
        noise_options=dict(train_spec.noise_options), **{k: v for k, v in overrides.items() if v is not None},
    )
    return resolve_classifier_spec(spec)


# -- data -----------------------------------------------------------------------------------------------------
def _load_split(spec: ClassifierSpec, split: str, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(masks (N, H, W) uint8, groups (N,) long)`` of one split of the spec's data set."""
    from cardiobench.data import open_dataset

    root = {"data_root": str(data_root)} if data_root else {}
    source = open_dataset(spec.dataset, size=spec.resolution, seed=spec.data_seed, **root, **spec.dataset_options)
    data = source.load(split)
    if len(data) == 0:
        raise CardiobenchError(f"data set {spec.dataset!r} has no {split} slices", "a classifier needs both splits")
    if data.masks.shape[1:] != (spec.resolution, spec.resolution):
        raise CardiobenchError(f"data set {spec.dataset!r} gave {data.masks.shape[1:]} slices, expected "
                               f"{spec.resolution}x{spec.resolution}")
    return torch.from_numpy(data.masks.astype("uint8")), torch.as_tensor(data.groups, dtype=torch.long)


def time_buckets(num_timesteps: int, n: int = NUM_BUCKETS) -> list[tuple[int, int]]:
    """``n`` consecutive ``[lo, hi)`` ranges covering ``0 .. T-1`` (empty ones dropped)."""
    edges = [round(i * num_timesteps / n) for i in range(n + 1)]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}-{hi - 1}"


@torch.no_grad()
def evaluate_classifier(model: nn.Module, process: Any, masks: torch.Tensor, groups: torch.Tensor, *,
                        seed: int = 0, batch_size: int = 256) -> dict[str, Any]:
    """Accuracy and cross-entropy of ``model`` on ``masks`` noised at uniform ``t`` in each quarter of the time range.

    Every mask is scored once per bucket, at a timestep and noise drawn from a generator seeded with ``seed``
    (so the numbers are reproducible). ``overall`` is the mean over buckets (accuracy at uniform ``t``);
    ``chance`` the frequency of the most common group (the best constant guess).
    """
    from cardiobench.data.tensors import masks_to_onehot

    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed * 1_000_003 + 104_729)
    n = len(masks)
    per_bucket: dict[str, dict[str, float]] = {}
    for lo, hi in time_buckets(process.num_timesteps):
        t_all = torch.randint(lo, hi, (n,), generator=g)
        correct, loss = 0, 0.0
        for s in range(0, n, batch_size):
            x0 = masks_to_onehot(masks[s : s + batch_size])
            noise = torch.randn(x0.shape, generator=g)
            t = t_all[s : s + batch_size]
            x_t = process.q_sample(x0, t, noise)
            logits = model(x_t.to(device), t.to(device)).float().cpu()
            y = groups[s : s + batch_size]
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
        per_bucket[bucket_name(lo, hi)] = {"accuracy": round(correct / n, 4), "loss": round(loss / n, 4)}
    counts = torch.bincount(groups, minlength=len(GROUPS))
    return {
        "overall": round(sum(b["accuracy"] for b in per_bucket.values()) / len(per_bucket), 4),
        "loss": round(sum(b["loss"] for b in per_bucket.values()) / len(per_bucket), 4),
        "buckets": per_bucket,
        "n": n,
        "chance": round(float(counts.max()) / n, 4),
        "split": "test",
    }


# -- training -------------------------------------------------------------------------------------------------
def _lr_at(spec: ClassifierSpec, step: int) -> float:
    """Cosine decay from ``lr`` to ``lr / 10`` over the training."""
    frac = step / max(spec.steps - 1, 1)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def train_classifier(spec: ClassifierSpec, *, device: str | torch.device = "auto", data_root: str | None = None,
                     progress: Progress | None = None) -> dict[str, Any]:
    """Train the classifier of ``spec`` and measure it; returns the checkpoint state (see ``save_classifier``).

    Deterministic: initialisation, batch order, timesteps and noise come from seeds, on the CPU (same machine
    and thread count -> the same weights bit for bit). Runs on the shared training loop
    (``cardiobench.engine.loop``); ``progress`` shows it (default: silent).
    """
    from cardiobench.data.tensors import masks_to_onehot
    from cardiobench.engine.loop import TrainLoop
    from cardiobench.factories import resolve_device

    spec = resolve_classifier_spec(spec)
    dev = resolve_device(device)
    process = build_noise_process(spec)
    masks, groups = _load_split(spec, "train", data_root)
    test_masks, test_groups = _load_split(spec, "test", data_root)
    n = len(masks)
    bs = min(spec.batch_size, n)
    per_epoch = n // bs
    model = build_classifier(spec.size, seed=spec.seed).to(dev)
    model.check_size(spec.resolution)
    loop = TrainLoop(torch.optim.Adam(model.parameters(), lr=spec.lr), lr_at=lambda step: _lr_at(spec, step))
    gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + 31)
    correct_recent: list[float] = []
    order = torch.empty(0, dtype=torch.long)

    def loss_at(step: int) -> torch.Tensor:
        nonlocal order, correct_recent
        batch = step % per_epoch
        if batch == 0:
            order = torch.randperm(n, generator=gen)
        idx = order[batch * bs : (batch + 1) * bs]
        x0 = masks_to_onehot(masks[idx])
        t = process.sample_timesteps(len(idx), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        x_t = process.q_sample(x0, t, noise).to(dev)
        y = groups[idx].to(dev)
        logits = model(x_t, t.to(dev))
        correct_recent = (correct_recent + [float((logits.argmax(1) == y).float().mean())])[-50:]
        return F.cross_entropy(logits, y)

    def accuracy() -> dict[str, str]:
        return {"acc": f"{sum(correct_recent) / max(len(correct_recent), 1):.2f}"}

    t0 = time.perf_counter()
    model.train()
    loop.run(loss_at, spec.steps, items_per_step=bs, progress=progress, label="classifier",
             what="classifier training", hint="lower the learning rate", fields=accuracy, report_every=10)
    seconds = time.perf_counter() - t0
    history = loop.history
    model.eval()
    accuracy_test = evaluate_classifier(model, process, test_masks, test_groups, seed=spec.seed)
    return {
        "kind": CHECKPOINT_KIND,
        "spec": spec.to_dict(),
        "spec_hash": spec.hash(),
        "architecture": model.config(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "loss_history": torch.tensor(history, dtype=torch.float32),
        "accuracy": accuracy_test,
        "meta": {
            "cardiobench_version": __version__, "torch_version": str(torch.__version__), "device": str(dev),
            "seconds": round(seconds, 2), "params": sum(p.numel() for p in model.parameters()),
            "n_train": n, "train_accuracy_last50": round(sum(correct_recent) / max(len(correct_recent), 1), 4),
            "final_loss": round(sum(history[-50:]) / max(len(history[-50:]), 1), 4),
            "groups": list(GROUPS),
        },
    }


# -- files ----------------------------------------------------------------------------------------------------
def classifier_cache_path(spec_hash: str) -> Path:
    """Where the classifier of a spec hash lives in the cache."""
    return CLASSIFIERS.cache_path(spec_hash)


def shipped_classifier(spec_hash: str) -> Path | None:
    """The classifier of this spec hash shipped with cardiobench, or ``None``."""
    return CLASSIFIERS.shipped(spec_hash)


def save_classifier(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a classifier checkpoint atomically."""
    return CLASSIFIERS.save(path, state)


def read_classifier_file(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict of a classifier file (``weights_only``); a one-line ``CardiobenchError`` otherwise."""
    return CLASSIFIERS.read(path)


def load_classifier(path: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[NoisyClassifier, ClassifierSpec, dict[str, Any]]:
    """``(model in eval mode without parameter gradients, spec, meta)`` of a classifier file.

    ``meta`` holds ``spec_hash``, ``accuracy``, ``architecture`` and the training metadata.
    """
    state = read_classifier_file(path)
    try:
        spec = ClassifierSpec.from_dict(state["spec"])
        model = NoisyClassifier(**state["architecture"])
        model.load_state_dict(state["model"])
    except Exception as exc:  # keys, types or shapes that do not fit: a damaged file or another version
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CardiobenchError(f"classifier checkpoint {path} does not fit this cardiobench: {reason}",
                               f"delete it and {TRAIN_HINT}") from None
    model.eval().requires_grad_(False).to(device)
    meta = {"spec_hash": state.get("spec_hash"), "accuracy": state.get("accuracy", {}),
            "architecture": state["architecture"], **state.get("meta", {})}
    return model, spec, meta


@dataclass
class ClassifierResult:
    """Where a classifier is and how it got there: ``status`` is ``trained``, ``reused`` or ``reused-shipped``."""

    path: Path
    spec: ClassifierSpec
    status: str


def prepare_classifier(spec: ClassifierSpec, *, device: str | torch.device = "auto", data_root: str | None = None,
                       retrain: bool = False, progress: Progress | None = None) -> ClassifierResult:
    """The cached classifier of ``spec``; else the shipped one, copied into the cache; else trained now.

    A corrupt cache entry counts as missing (trained again). ``retrain`` ignores the cache and shipped files.
    """
    spec = resolve_classifier_spec(spec)
    h = spec.hash()
    found = None if retrain else CLASSIFIERS.fetch(h)
    if found is not None:
        return ClassifierResult(found[0], spec, found[1])
    resolve(progress).log(f"[bold]classifier[/] training {spec.size} noisy classifier {h[:12]} "
                          f"({spec.dataset} {spec.resolution}px, {spec.noise}, {spec.steps} steps)")
    state = train_classifier(spec, device=device, data_root=data_root, progress=progress)
    path = save_classifier(classifier_cache_path(h), state)
    return ClassifierResult(path, spec, "trained")


def ensure_classifier(spec: ClassifierSpec, *, device: str | torch.device = "auto", data_root: str | None = None,
                      retrain: bool = False, progress: Progress | None = None) -> Path:
    """The path of the trained classifier of ``spec`` (reused, copied from the package, or trained now)."""
    return prepare_classifier(spec, device=device, data_root=data_root, retrain=retrain, progress=progress).path


def classifier_report(path: str | Path) -> dict[str, Any]:
    """JSON-able description of a classifier file: spec, hash, accuracy, training time, parameters."""
    state = read_classifier_file(path)
    return {
        "path": str(path),
        "spec_hash": state.get("spec_hash"),
        "spec": state.get("spec"),
        "architecture": state.get("architecture"),
        "accuracy": state.get("accuracy", {}),
        **{k: v for k, v in state.get("meta", {}).items()},
    }


__all__ = [
    "CLASSIFIERS", "ClassifierResult", "ClassifierSpec", "DEFAULT_BATCH_SIZE", "DEFAULT_LR", "DEFAULT_SIZE",
    "DEFAULT_STEPS", "NoisyClassifier", "SIZES", "build_classifier", "classifier_cache_path", "classifier_report",
    "classifier_spec_for", "ensure_classifier", "evaluate_classifier", "forward_process_options", "load_classifier",
    "prepare_classifier", "read_classifier_file", "resolve_classifier_spec", "save_classifier", "shipped_classifier",
    "time_buckets", "train_classifier",
]
