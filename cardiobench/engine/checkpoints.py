"""Training checkpoints: atomic writes, safe loads, RNG capture, and the cache keyed by spec hash.

A checkpoint is a dict of plain values and tensors only, so ``torch.load(path, weights_only=True)``
reads it (no code from the file is ever run)::

    format, format_version     "cardiobench-checkpoint", 1
    spec, spec_hash            the resolved TrainSpec as a dict, and its sha256
    step, total_steps, complete
    model, ema, optimizer      state dicts (ema is None when the EMA is off)
    rng                        torch CPU (+ CUDA), numpy, python, and the training generator's state
    data_state                 epoch, batch within the epoch, items and batches per epoch
    loss_history               (step,) float32: the loss of every optimizer step
    meta                       versions, device, seconds trained, images/s

Writes go to a temp file in the same folder, fsync'ed, then renamed over the target, so a crash
leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.paths import atomic_write_bytes, cache_dir
from cardiobench.safeload import read_torch_file

FORMAT = "cardiobench-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(CardiobenchError):
    """A checkpoint file that is missing, unreadable or not a cardiobench checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Serialise ``state`` and write it to ``path`` atomically (temp file + fsync + rename)."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getbuffer())
    return path


_HINT = "train one with `cardiobench train ... --out DIR` and pass DIR/checkpoint.pt"


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    hint: str = _HINT) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a clear one-line ``CheckpointError`` otherwise.

    ``hint`` says how to get a good one (the default: train one; for the cache: ``--retrain``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = read_torch_file(path, what="checkpoint", hint=hint, error=CheckpointError, map_location=map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cardiobench checkpoint", hint)
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {state.get('format_version')}, this cardiobench reads "
            f"{FORMAT_VERSION}", "retrain with this version (`cardiobench train ... --retrain`)")
    missing = [k for k in ("spec", "spec_hash", "step", "total_steps", "model") if k not in state]
    if missing or not isinstance(state.get("spec"), dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"checkpoint {path} is damaged or not a denoiser checkpoint: "
                              f"{', '.join(missing) or 'spec or model'} missing or malformed", hint)
    return state


def damaged(path: str | os.PathLike, exc: BaseException, hint: str = _HINT) -> CheckpointError:
    """The error for a checkpoint that loaded but whose contents do not fit (a bit flip, a hand edit)."""
    return CheckpointError(f"checkpoint {path} is damaged: {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:160]}", hint)


# -- RNG states as plain values -------------------------------------------------------------------
def capture_rng(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG state a training step may touch, as tensors/lists (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, pstate, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(pstate), "gauss_next": gauss_next},
        "generator": generator.get_state() if generator is not None else None,
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of ``capture_rng``."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    if generator is not None and state.get("generator") is not None:
        generator.set_state(state["generator"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the cache ----------------------------------------------------------------------------------
def cached_checkpoint_path(spec_hash: str) -> Path:
    """Where the checkpoint of a training spec lives in the cache: ``cache_dir("checkpoints")/<hash>/``."""
    return cache_dir("checkpoints", spec_hash[:16]) / CHECKPOINT_NAME


def find_cached_checkpoint(spec_hash: str) -> Path | None:
    """The cached checkpoint of a *finished* training with this spec hash, or ``None``."""
    path = cache_dir("checkpoints") / spec_hash[:16] / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = read_torch_file(path, what="checkpoint", hint="", mmap=True)
    except CardiobenchError:  # a corrupt cache entry is a cache miss
        return None
    if isinstance(state, dict) and state.get("spec_hash") == spec_hash and state.get("complete"):
        return path
    return None


#: trained checkpoints shipped with the package, named ``<train spec hash>.pt`` (a read-only cache layer)
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[1] / "assets" / "checkpoints"


def shipped_checkpoint(spec_hash: str) -> Path | None:
    """The checkpoint of this training spec shipped with cardiobench, or ``None``."""
    path = SHIPPED_CHECKPOINTS / f"{spec_hash}.pt"
    return path if path.is_file() else None


def install_shipped(spec_hash: str) -> Path | None:
    """Copy a shipped checkpoint into the cache unless a finished one is there; the cached path, or ``None``."""
    if find_cached_checkpoint(spec_hash) is not None:
        return None
    shipped = shipped_checkpoint(spec_hash)
    if shipped is None:
        return None
    dst = cached_checkpoint_path(spec_hash)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    shutil.copyfile(shipped, tmp)
    os.replace(tmp, dst)
    return dst


def publish(src: Path, dst: Path) -> Path:
    """Place a finished checkpoint at ``dst`` atomically: a hard link when possible, else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() == dst.resolve():
        return dst
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst
