"""Colour-coded pictures of label maps: the shared look of every mask grid cardiobench writes.

Only numpy and Pillow. Masks are ACDC label maps (0 background, 1 RV, 2 MYO, 3 LV); one-hot
batches ``(N, 4, H, W)`` (any scale, decoded by argmax) are accepted too, and torch tensors are
converted with ``numpy.asarray`` (move them to the CPU first).

    from cardiobench.viz import colorize, mask_grid, save_grid
    save_grid("samples.png", masks)                      # masks only
    save_grid("pairs.png", masks, images=images, nrow=8)  # each mask beside its image
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cardiobench.paths import atomic_write_image

#: RGB colour of each label: black background, red RV, green MYO, blue LV (the seed's Figure 8 look)
PALETTE: np.ndarray = np.array(
    [
        (0, 0, 0),  # 0 background
        (230, 57, 53),  # 1 RV cavity
        (67, 191, 85),  # 2 myocardium
        (52, 120, 246),  # 3 LV cavity
    ],
    dtype=np.uint8,
)
#: colour for label values outside 0..3 (so corrupt masks are visible, never a crash)
INVALID_COLOUR = (255, 0, 255)


def _as_label_maps(masks: Any) -> np.ndarray:
    """(N, H, W) or (H, W) labels, or (N, K, H, W) one-hot/scores -> (N, H, W) integer labels."""
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 4:
        if m.shape[1] == 1:
            m = m[:, 0]
        else:
            m = m.argmax(axis=1)
    if m.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) labels or (N, K, H, W) one-hot, got shape {np.shape(masks)}")
    if np.issubdtype(m.dtype, np.floating):
        m = np.rint(m)
    return m.astype(np.int64, copy=False)


def colorize(masks: Any) -> np.ndarray:
    """(N, H, W) labels 0..3 -> (N, H, W, 3) uint8 RGB (see ``PALETTE``); a single (H, W) map -> (H, W, 3)."""
    single = np.ndim(masks) == 2
    m = _as_label_maps(masks)
    bad = (m < 0) | (m >= len(PALETTE))
    rgb = PALETTE[np.clip(m, 0, len(PALETTE) - 1)]
    if bad.any():
        rgb[bad] = INVALID_COLOUR
    return rgb[0] if single else rgb


def _as_grey(images: Any, n: int, shape: tuple[int, int], value_range: tuple[float, float]) -> np.ndarray:
    """Images (N, H, W) or (N, 1, H, W), float in ``value_range`` or uint8 -> (N, H, W, 3) uint8."""
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or len(x) != n or x.shape[1:] != shape:
        raise ValueError(f"images must match masks: expected ({n}, {shape[0]}, {shape[1]}), got {np.shape(images)}")
    if x.dtype != np.uint8:
        lo, hi = value_range
        x = np.clip((x.astype(np.float32) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        x = np.rint(x * 255.0).astype(np.uint8)
    return np.repeat(x[..., None], 3, axis=-1)


def overlay(images: Any, masks: Any, alpha: float = 0.45, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(N, H, W, 3) uint8: the grey images with the coloured structures blended on top (background left as is)."""
    m = _as_label_maps(masks)
    grey = _as_grey(images, len(m), m.shape[1:], value_range).astype(np.float32)
    col = colorize(m).astype(np.float32)
    fg = (m != 0)[..., None]
    out = np.where(fg, (1 - alpha) * grey + alpha * col, grey)
    return np.rint(out).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def mask_grid(
    masks: Any,
    nrow: int | None = None,
    images: Any = None,
    scale: int = 3,
    pad: int = 2,
    row_labels: Sequence[str] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    background: tuple[int, int, int] = (255, 255, 255),
    caption: str | None = None,
    legend: bool = False,
) -> Image.Image:
    """A PIL image: colour-coded masks in a grid, each optionally beside its image (image left, mask right).

    masks:  (N, H, W) labels 0..3, or (N, K, H, W) one-hot/scores (argmax).
    nrow:   items per grid row (as in ``torchvision.utils.make_grid``); default about sqrt(N).
    images: optional (N, H, W) or (N, 1, H, W) grey images, float in ``value_range`` or uint8.
    scale:  integer up-scaling of each pixel (nearest neighbour, so label edges stay crisp).
    row_labels: optional text drawn at the left of each grid row.
    caption: optional line of text above the grid (e.g. a GIF frame's timestep).
    legend: a colour key (RV, MYO, LV) below the grid.
    """
    m = _as_label_maps(masks)
    n, h, w = m.shape
    if n == 0:
        raise ValueError("mask_grid needs at least one mask")
    scale = max(1, int(scale))
    tiles = colorize(m)
    if images is not None:
        grey = _as_grey(images, n, (h, w), value_range)
        tiles = np.concatenate([grey, tiles], axis=2)  # image | mask, side by side
    th, tw = tiles.shape[1] * scale, tiles.shape[2] * scale
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    ncol = nrow if nrow else max(1, math.ceil(math.sqrt(n)))
    ncol = max(1, min(int(ncol), n))
    rows = math.ceil(n / ncol)

    label_w = 0
    font = None
    if row_labels:
        font = _font(max(10, min(th // 3, 18)))
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        label_w = max(int(probe.textlength(str(t), font=font)) for t in row_labels) + 2 * pad + 4

    inner = pad if images is None else pad * 2  # pairs get a wider gap so they read as units
    width = label_w + ncol * tw + (ncol + 1) * inner
    height = rows * th + (rows + 1) * pad
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        y = pad + r * (th + pad)
        x = label_w + inner + c * (tw + inner)
        canvas[y : y + th, x : x + tw] = tiles[i]
    img = Image.fromarray(canvas, mode="RGB")
    if row_labels and font is not None:
        draw = ImageDraw.Draw(img)
        for r, text in enumerate(list(row_labels)[:rows]):
            y = pad + r * (th + pad) + th // 2
            draw.text((pad + 2, y), str(text), fill=(0, 0, 0), font=font, anchor="lm")
    if caption or legend:
        img = _annotate(img, caption, legend, background)
    return img


#: names of the coloured labels, for the legend
LABEL_NAMES: tuple[str, ...] = ("RV", "MYO", "LV")


def _annotate(img: Image.Image, caption: str | None, legend: bool, background: tuple[int, int, int]
              ) -> Image.Image:
    """``img`` with a caption line above and/or a colour legend below."""
    font = _font(12)
    line = 18
    top = line if caption else 0
    bottom = line if legend else 0
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    key_w = sum(int(probe.textlength(n, font=font)) + 22 for n in LABEL_NAMES) + 4 if legend else 0
    cap_w = int(probe.textlength(caption, font=font)) + 8 if caption else 0
    out = Image.new("RGB", (max(img.width, key_w, cap_w), img.height + top + bottom), background)
    out.paste(img, (0, top))
    draw = ImageDraw.Draw(out)
    if caption:
        draw.text((4, line // 2), caption, fill=(0, 0, 0), font=font, anchor="lm")
    if legend:
        x, y = 4, top + img.height + line // 2
        for label, name in enumerate(LABEL_NAMES, start=1):
            draw.rectangle((x, y - 5, x + 10, y + 5), fill=tuple(int(v) for v in PALETTE[label]))
            draw.text((x + 14, y), name, fill=(0, 0, 0), font=font, anchor="lm")
            x += int(draw.textlength(name, font=font)) + 22
    return out


def save_grid(path: str | os.PathLike, masks: Any, images: Any = None, **kwargs: Any) -> Path:
    """Write ``mask_grid(masks, images=images, **kwargs)`` to ``path`` (format from the suffix, PNG by default)."""
    return atomic_write_image(path, mask_grid(masks, images=images, **kwargs))


def volume_grid(volumes: Any, images: Any = None, row_labels: Sequence[str] | None = None, **kwargs: Any
                ) -> Image.Image:
    """Label volumes (N, D, H, W) as a grid with one volume per row, its D slices base (left) to apex (right);
    ``images`` (N, D, H, W) optionally beside each slice. Rows are labelled ``row_labels`` (default: "#i")."""
    v = np.asarray(volumes)
    if v.ndim != 4:
        raise ValueError(f"volumes must be (N, D, H, W) label maps, got shape {v.shape}")
    n, d = v.shape[:2]
    flat_images = None if images is None else np.asarray(images).reshape(n * d, *v.shape[2:])
    labels = list(row_labels) if row_labels is not None else [f"#{i}" for i in range(n)]
    return mask_grid(v.reshape(n * d, *v.shape[2:]), nrow=d, images=flat_images, row_labels=labels, **kwargs)


def save_volume_grid(path: str | os.PathLike, volumes: Any, images: Any = None, **kwargs: Any) -> Path:
    """Write ``volume_grid(volumes, images, **kwargs)`` to ``path``."""
    return atomic_write_image(path, volume_grid(volumes, images=images, **kwargs))


#: column titles of ``segmentation_grid``
SEGMENTATION_COLUMNS: tuple[str, ...] = ("image", "ground truth", "prediction", "uncertainty")


def heatmap(values: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(..., H, W) floats -> (..., H, W, 3) uint8 on a black -> red -> yellow ramp (``value_range`` -> 0..1).

    0 is black, 0.5 pure red (255, 0, 0), 1 yellow (255, 255, 0): R rises over the first half, G over the second.
    """
    lo, hi = value_range
    u = np.clip((np.asarray(values, dtype=np.float32) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    r = np.clip(2.0 * u, 0.0, 1.0)
    g = np.clip(2.0 * u - 1.0, 0.0, 1.0)
    rgb = np.stack([r, g, np.zeros_like(u)], axis=-1)
    return np.rint(rgb * 255.0).astype(np.uint8)


def segmentation_grid(
    images: Any,
    truth: Any,
    pred: Any,
    uncertainty: Any,
    n: int = 8,
    scale: int = 4,
    pad: int = 2,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """A PIL image with one row per case (the first ``n``) and four columns under a header row:
    image (grey) | ground truth (``PALETTE``) | prediction (``PALETTE``) | uncertainty (``heatmap``, 0..1).

    images: (N, H, W) float in [0, 1] (or uint8); truth, pred: (N, H, W) labels 0..3; uncertainty: (N, H, W)
    float in [0, 1] (e.g. the ensemble disagreement of ``cardiobench.metrics.ensemble.majority_vote``).
    Layout: tiles of (H * scale, W * scale) pixels, ``pad`` pixels around and between them; the header row
    (column titles, and the heatmap's 0..1 colour scale under "uncertainty") sits on top, so the picture is
    ``4 * W * scale + 5 * pad`` wide and ``header + n * (H * scale + pad) + pad`` high.
    """
    t, p = _as_label_maps(truth), _as_label_maps(pred)
    if t.shape != p.shape:
        raise ValueError(f"truth and pred shapes differ: {t.shape} vs {p.shape}")
    u = np.asarray(uncertainty)
    if u.shape != t.shape:
        raise ValueError(f"uncertainty must match the masks: expected {t.shape}, got {u.shape}")
    total, h, w = t.shape
    rows = min(max(int(n), 1), total)
    if rows == 0:
        raise ValueError("segmentation_grid needs at least one case")
    scale = max(1, int(scale))
    imgs = np.asarray(images)
    grey = _as_grey(imgs[:rows] if imgs.ndim >= 3 else imgs, rows, (h, w), (0.0, 1.0))
    columns = [grey, colorize(t[:rows]), colorize(p[:rows]), heatmap(u[:rows])]
    tiles = np.stack(columns, axis=1)  # (rows, 4, H, W, 3)
    th, tw = h * scale, w * scale
    if scale > 1:
        tiles = tiles.repeat(scale, axis=2).repeat(scale, axis=3)

    font = _font(max(10, min(tw // 9, 16)))
    small = _font(max(9, min(tw // 12, 12)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    _, top, _, bottom = probe.textbbox((0, 0), "Ag", font=font)
    text_h = int(bottom - top) + 4
    bar_h = max(6, text_h // 2)  # the heatmap's scale, 0 .. 1, under the uncertainty title
    header = text_h + bar_h + 3 * pad
    ncol = len(columns)
    width = ncol * tw + (ncol + 1) * pad
    height = header + rows * th + (rows + 1) * pad
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    for r in range(rows):
        y = header + pad + r * (th + pad)
        for c in range(ncol):
            x = pad + c * (tw + pad)
            canvas[y : y + th, x : x + tw] = tiles[r, c]
    # colour scale: "0" [black -> yellow ramp] "1", centred in the last column's header
    x0 = pad + (ncol - 1) * (tw + pad)
    label_w = int(probe.textlength("0", font=small)) + 3
    bar_w = max(8, tw // 2)
    bx = x0 + (tw - bar_w) // 2
    by = pad + text_h + pad
    canvas[by : by + bar_h, bx : bx + bar_w] = heatmap(np.linspace(0.0, 1.0, bar_w))[None]
    img = Image.fromarray(canvas, mode="RGB")
    draw = ImageDraw.Draw(img)
    for c, title in enumerate(SEGMENTATION_COLUMNS):
        x = pad + c * (tw + pad) + tw // 2
        draw.text((x, pad + text_h // 2), title, fill=(0, 0, 0), font=font, anchor="mm")
    draw.text((bx - label_w, by + bar_h // 2), "0", fill=(0, 0, 0), font=small, anchor="lm")
    draw.text((bx + bar_w + 3, by + bar_h // 2), "1", fill=(0, 0, 0), font=small, anchor="lm")
    return img


def save_segmentation_grid(
    path: str | os.PathLike,
    images: Any,
    truth: Any,
    pred: Any,
    uncertainty: Any,
    n: int = 8,
    scale: int = 4,
) -> Path:
    """Write ``segmentation_grid(images, truth, pred, uncertainty, n, scale)`` to ``path`` atomically
    (format from the suffix, PNG by default); returns the path."""
    return atomic_write_image(path, segmentation_grid(images, truth, pred, uncertainty, n=n, scale=scale))


#: column titles of ``synthesis_grid``
SYNTHESIS_COLUMNS: tuple[str, ...] = ("label map", "generated", "real image")


def synthesis_grid(masks: Any, generated: Any, real: Any = None, n: int = 8, scale: int = 4, pad: int = 2,
                   background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """A PIL image with one row per case (the first ``n``) under a header row: the conditioning label map
    (``PALETTE``) | the generated MRI slice (grey) | the real slice of the same mask (grey; left out when
    ``real`` is ``None``). ``generated``/``real``: (N, H, W) float in [0, 1] or uint8 grey levels."""
    m = _as_label_maps(masks)
    total, h, w = m.shape
    rows = min(max(int(n), 1), total)
    if rows == 0:
        raise ValueError("synthesis_grid needs at least one case")
    columns = [colorize(m[:rows]), _as_grey(np.asarray(generated)[:rows], rows, (h, w), (0.0, 1.0))]
    if real is not None:
        columns.append(_as_grey(np.asarray(real)[:rows], rows, (h, w), (0.0, 1.0)))
    scale = max(1, int(scale))
    th, tw = h * scale, w * scale
    tiles = np.stack(columns, axis=1).repeat(scale, axis=2).repeat(scale, axis=3)  # (rows, C, th, tw, 3)
    font = _font(max(10, min(tw // 8, 16)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    _, top, _, bottom = probe.textbbox((0, 0), "Ag", font=font)
    header = int(bottom - top) + 4 + 2 * pad
    ncol = len(columns)
    canvas = np.empty((header + rows * th + (rows + 1) * pad, ncol * tw + (ncol + 1) * pad, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    for r in range(rows):
        y = header + pad + r * (th + pad)
        for c in range(ncol):
            x = pad + c * (tw + pad)
            canvas[y : y + th, x : x + tw] = tiles[r, c]
    img = Image.fromarray(canvas, mode="RGB")
    draw = ImageDraw.Draw(img)
    for c, title in enumerate(SYNTHESIS_COLUMNS[:ncol]):
        draw.text((pad + c * (tw + pad) + tw // 2, pad + header // 2), title, fill=(0, 0, 0), font=font,
                  anchor="mm")
    return img


def save_synthesis_grid(path: str | os.PathLike, masks: Any, generated: Any, real: Any = None, n: int = 8,
                        scale: int = 4) -> Path:
    """Write ``synthesis_grid(masks, generated, real, n, scale)`` to ``path`` atomically; returns the path."""
    return atomic_write_image(path, synthesis_grid(masks, generated, real, n=n, scale=scale))


__all__ = [
    "PALETTE",
    "SEGMENTATION_COLUMNS",
    "SYNTHESIS_COLUMNS",
    "colorize",
    "heatmap",
    "mask_grid",
    "overlay",
    "save_grid",
    "save_volume_grid",
    "volume_grid",
    "save_segmentation_grid",
    "save_synthesis_grid",
    "segmentation_grid",
    "synthesis_grid",
]
