"""The training-loss curve as a PNG, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cardiobench.paths import atomic_write_image


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` values (shorter at the start), same length as ``values``."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """log10 positions of round values (1-2-5 per decade, or every digit in a narrow range) in [lo, hi]."""
    for mantissas in ((1, 2, 5), tuple(range(1, 10))):
        ticks = [math.log10(m) + k for k in range(math.floor(lo), math.ceil(hi) + 1) for m in mantissas]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 3:
            return ticks
    return _nice_ticks(lo, hi, 4)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def save_loss_curve(path: str | os.PathLike, losses: Sequence[float], title: str = "training loss",
                    width: int = 720, height: int = 400) -> Path:
    """Plot per-step ``losses`` (light) and their moving average (dark) on a log scale; write a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(15), _font(12)
    left, right, top, bottom = 70, 20, 36, 48
    pw, ph = width - left - right, height - top - bottom
    draw.text((left, 10), title, fill="black", font=font)
    draw.rectangle([left, top, left + pw, top + ph], outline=(80, 80, 80))
    v = np.asarray([x for x in losses], dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) == 0:
        draw.text((left + 10, top + 10), "no finite loss recorded", fill="black", font=font)
        return atomic_write_image(path, img)
    smooth = moving_average(v, max(1, len(v) // 50))
    lv, ls = np.log10(v), np.log10(smooth)
    ylo, yhi = float(np.percentile(lv, 0.5)), float(lv.max())
    ylo, yhi = min(ylo, float(ls.min())), max(yhi, ylo + 1e-3)
    pad = 0.04 * (yhi - ylo)
    ylo, yhi = ylo - pad, yhi + pad
    n = len(v)

    def xy(i: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
        xs = left + (i / max(n - 1, 1)) * pw
        ys = top + (1 - (np.clip(y, ylo, yhi) - ylo) / (yhi - ylo)) * ph
        return list(zip(xs.tolist(), ys.tolist(), strict=True))

    for tick in _log_ticks(ylo, yhi):  # log10 positions, labelled with the loss value
        y = top + (1 - (tick - ylo) / (yhi - ylo)) * ph
        draw.line([left, y, left + pw, y], fill=(232, 232, 232))
        draw.text((left - 6, y), f"{10 ** tick:.3g}", fill="black", font=small, anchor="rm")
    for tick in _nice_ticks(0, n - 1, 6):
        x = left + (tick / max(n - 1, 1)) * pw
        draw.line([x, top + ph, x, top + ph + 4], fill="black")
        draw.text((x, top + ph + 8), f"{int(tick)}", fill="black", font=small, anchor="mt")
    draw.text((left + pw / 2, height - 14), "optimizer step", fill="black", font=small, anchor="mm")
    idx = np.arange(n, dtype=np.float64)
    stride = max(1, n // (pw * 2))
    draw.line(xy(idx[::stride], lv[::stride]), fill=(170, 200, 235), width=1)
    draw.line(xy(idx, ls), fill=(20, 70, 160), width=2)
    draw.text((left + pw - 6, top + 6), f"last avg {smooth[-1]:.4g}", fill=(20, 70, 160), font=small, anchor="ra")
    return atomic_write_image(path, img)
