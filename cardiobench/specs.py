"""Specifications of the work cardiobench does, with stable hashes.

A spec is a frozen dataclass of plain JSON values. Its hash is the sha256 of its canonical JSON
(keys sorted, no whitespace, the spec's kind and schema version included), so two specs that mean the
same training get the same hash on every machine and Python version, and the hash keys caches:
``TrainSpec.hash()`` names the cached checkpoint that ``cardiobench run`` reuses.

What is *not* in a spec, because it does not change what is computed (or is machine-specific): the
device, a data set's folder (``data_root``), progress output, checkpoint cadence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from cardiobench.errors import CardiobenchError


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; tuples become lists. Non-JSON values are an error."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _plain(value: Any) -> Any:
    """``value`` with tuples turned into lists (recursively), so a spec round-trips through JSON unchanged."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ItemGeometry:
    """The shape of one data item of a spec with ``resolution`` and ``dataset_options`` (a denoiser's or an
    autoencoder's): a slice, or a volume of ``depth`` slices (the data set option ``depth``)."""

    resolution: int
    dataset_options: dict[str, Any]

    @property
    def depth(self) -> int | None:
        """Slices per volume of a volumetric spec (the data set option ``depth``), ``None`` for 2-D slices (also the
        slices of volumes, ``as_slices``)."""
        depth = self.dataset_options.get("depth")
        return None if depth is None or self.dataset_options.get("as_slices") else int(depth)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Spatial shape of one item: ``(resolution, resolution)``, or ``(depth, resolution, resolution)``."""
        side = (self.resolution, self.resolution)
        return side if self.depth is None else (self.depth, *side)

    @property
    def spatial_dims(self) -> int:
        """2 (slices) or 3 (volumes)."""
        return len(self.spatial_shape)


class _Spec:
    kind: ClassVar[str]
    version: ClassVar[int] = 1
    #: fields added after specs were first hashed: left out of ``to_dict`` (and so of the hash) while they hold
    #: their default, so every earlier spec keeps its hash and its cached or shipped checkpoint
    added_fields: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        data = _plain(asdict(self))  # type: ignore[call-overload]
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in self.added_fields:
                default = f.default_factory() if f.default_factory is not MISSING else f.default
                if data[f.name] == _plain(default):
                    del data[f.name]
        return data

    def hash(self) -> str:
        """sha256 (hex) of the canonical JSON of ``{"kind", "version", "spec"}``."""
        payload = {"kind": self.kind, "version": self.version, "spec": self.to_dict()}
        return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()

    def short_hash(self, n: int = 12) -> str:
        return self.hash()[:n]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise CardiobenchError(f"unknown {cls.kind} spec field(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any):
        return replace(self, **changes)  # type: ignore[type-var]

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, (dict, list, tuple)):
                object.__setattr__(self, f.name, _plain(value))
        try:
            canonical_json(self.to_dict())
        except (TypeError, ValueError) as exc:
            raise CardiobenchError(f"{self.kind} spec is not plain JSON: {exc}") from None


#: what a run does with a model: draw masks (``generation``), segment MRI images (``segmentation``), draw MRI
#: images for given label maps (``synthesis``, mask-to-image), or measure whether a mask generator's pairs help a
#: downstream segmenter (``utility``)
TASKS: tuple[str, ...] = ("generation", "segmentation", "synthesis", "utility")
LOSSES = ("mse", "smooth_l1")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class DataNoiseSpec(_Spec, ItemGeometry):
    """The fields every trained thing on diffused data shares: the data set (``dataset_options`` go to its factory
    besides ``size`` and ``seed``) and the noise process (``noise_options`` to its factory)."""

    dataset: str = "phantom"
    resolution: int = 32
    data_seed: int = 0
    dataset_options: dict[str, Any] = field(default_factory=dict)
    noise: str = "gaussian"
    noise_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolution < 8:
            raise CardiobenchError(f"resolution must be >= 8, got {self.resolution}")



@dataclass(frozen=True)
class TrainSpec(DataNoiseSpec):
    """Everything that determines a trained model (and nothing else).

    ``steps`` or ``epochs`` (exactly one) sets the training length; ``*_options`` are passed as keyword
    arguments to the plugin's factory (``noise_options`` to the noise process, ``backbone_options`` to the
    backbone, e.g. ``{"size": "small"}``, ``dataset_options`` to the data set besides ``size`` and ``seed``).
    ``representation`` names what a label map becomes as the diffused tensor (``onehot``: one-hot in [-1, 1]).
    ``warmup_steps`` ramps the learning rate linearly from ``lr / warmup_steps`` to ``lr``; ``ema_decay`` 0
    turns the EMA off; ``grad_clip`` 0 turns clipping off; ``precision`` ``bf16`` trains under bf16 autocast.
    """

    kind: ClassVar[str] = "train"
    added_fields: ClassVar[tuple[str, ...]] = ("representation", "representation_options", "shards")

    backbone: str = "unet"
    backbone_options: dict[str, Any] = field(default_factory=lambda: {"size": "small"})
    conditioning: str | None = None
    conditioning_options: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 32
    lr: float = 1e-4
    warmup_steps: int = 0
    loss: str = "smooth_l1"
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    precision: str = "fp32"
    representation: str = "onehot"
    representation_options: dict[str, Any] = field(default_factory=dict)
    #: data-parallel shards of every optimizer step, each ``batch_size`` slices with its own random stream: the
    #: global batch is ``batch_size * shards``; under torchrun it is the world size (``cardiobench.distributed``)
    shards: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.shards, int) or self.shards < 1:
            raise CardiobenchError(f"shards must be a positive integer, got {self.shards!r}")
        if (self.steps is None) == (self.epochs is None):
            raise CardiobenchError("set exactly one of steps and epochs", "e.g. --steps 2000 or --epochs 50")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise CardiobenchError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size < 1:
            raise CardiobenchError(f"batch size must be >= 1, got {self.batch_size}")
        if self.loss not in LOSSES:
            raise CardiobenchError(f"unknown loss {self.loss!r}", f"use one of: {', '.join(LOSSES)}")
        if self.precision not in PRECISIONS:
            raise CardiobenchError(f"unknown precision {self.precision!r}", f"use one of: {', '.join(PRECISIONS)}")
        if not self.lr > 0:
            raise CardiobenchError(f"learning rate must be > 0, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise CardiobenchError(f"EMA decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip < 0 or self.warmup_steps < 0:
            raise CardiobenchError("grad clip and warmup steps must be >= 0")

    def same_model_as(self, other: TrainSpec) -> bool:
        """True when the two differ at most in training length (``steps``/``epochs``): resumable."""
        a, b = self.to_dict(), other.to_dict()
        for key in ("steps", "epochs"):
            a.pop(key), b.pop(key)
        return a == b


@dataclass(frozen=True)
class SampleSpec(_Spec):
    """Everything that determines a set of samples drawn from a trained model (``train_hash``)."""

    kind: ClassVar[str] = "sample"

    train_hash: str
    sampler: str = "ddim"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    num_samples: int = 64
    seed: int = 0
    use_ema: bool = True
    guidance_scale: float | None = None
    guidance: str | None = None  # a sampling-time conditioning method (classifier guidance)
    guidance_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_samples < 1:
            raise CardiobenchError(f"number of samples must be >= 1, got {self.num_samples}")
        if self.steps is not None and self.steps < 1:
            raise CardiobenchError(f"sampling steps must be >= 1, got {self.steps}")


__all__ = ["LOSSES", "PRECISIONS", "TASKS", "DataNoiseSpec", "ItemGeometry", "SampleSpec", "TrainSpec",
           "canonical_json"]
