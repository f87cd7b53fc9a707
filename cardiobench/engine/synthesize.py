"""Mask-to-image synthesis: label maps -> MRI slices, from a model that diffuses images (``--task synthesis``).

The checkpoint diffuses the image (a representation registered with ``diffuses="image"``, e.g. ``mri``) and is
conditioned on the one-hot label map by an image-conditioning method (``concat`` or ``controlnet``, the
segmentation task reversed; ``cardiobench.data.pairs``). One image per mask, drawn by the one sampling runner
(``cardiobench.engine.runner.draw`` through ``engine.segment.draw_given``), seeded like ``cardiobench sample``.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench.diffusion.intensity import grey_to_images
from cardiobench.engine.segment import draw_given
from cardiobench.errors import DataError
from cardiobench.metrics.segmentation import as_label_maps
from cardiobench.paths import atomic_write_bytes
from cardiobench.progress import Progress

__all__ = ["IMAGES_NAME", "SynthesisResult", "synthesize", "write_images"]

IMAGES_NAME = "images.npz"


@dataclass
class SynthesisResult:
    """``images`` (N, H, W) uint8 grey levels, drawn for ``masks`` (N, H, W) uint8 labels."""

    images: np.ndarray
    masks: np.ndarray
    seconds: float
    device: str
    checkpoint: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def float_images(self) -> np.ndarray:
        """The images as float32 in [0, 1] (what data sets and metrics take)."""
        return grey_to_images(self.images)


def synthesize(
    checkpoint: str | os.PathLike,
    masks: np.ndarray,
    *,
    sampler: str = "ddim",
    steps: int | None = None,
    sampler_options: dict[str, Any] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    guidance_scale: float = 1.0,
    use_ema: bool = True,
    device: str = "auto",
    progress: Progress | None = None,
) -> SynthesisResult:
    """One MRI slice for each label map of ``masks`` (N, H, W), labels ``0..3``.

    ``guidance_scale``: the method's scale (the ControlNet conditioning scale; ``concat`` has none).
    """
    try:
        labels = as_label_maps(masks, "masks")
    except ValueError as exc:
        raise DataError(str(exc), "give label maps with the values 0..3 (background, RV, MYO, LV)") from None
    t0 = time.perf_counter()
    out, meta, dev = draw_given(checkpoint, labels, diffuses="image", k=1, sampler=sampler, steps=steps,
                                sampler_options=sampler_options, seed=seed, batch_size=batch_size,
                                guidance_scale=guidance_scale, use_ema=use_ema, device=device, progress=progress,
                                label="synthesize")
    return SynthesisResult(images=out[:, 0], masks=labels, seconds=time.perf_counter() - t0, device=dev,
                           checkpoint=str(checkpoint), meta=meta)


def write_images(result: SynthesisResult, path: str | os.PathLike) -> Path:
    """``images.npz``: ``images`` (N, H, W) uint8 grey levels and the ``masks`` they were drawn for."""
    buf = io.BytesIO()
    np.savez_compressed(buf, images=result.images, masks=result.masks)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
