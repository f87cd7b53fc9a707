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

The files are kept by the artefact store (``cardiobench.engine.store``, ``CHECKPOINTS``): writes go to a temp
file in the same folder, fsync'ed, then renamed over the target, so a crash leaves either the old or the new
checkpoint, never a torn one; the cache is keyed by spec hash, and shipped checkpoints are a read-only layer.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiobench.engine.store import ArtefactStore, publish
from cardiobench.errors import CardiobenchError

__all__ = [
    "CHECKPOINTS", "CHECKPOINT_NAME", "FORMAT", "FORMAT_VERSION", "SHIPPED_CHECKPOINTS", "CheckpointError",
    "cached_checkpoint_path", "capture_rng", "damaged", "find_cached_checkpoint", "install_shipped",
    "load_checkpoint", "publish", "restore_rng", "save_checkpoint", "shipped_checkpoint",
]

FORMAT = "cardiobench-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
#: trained checkpoints shipped with the package, named ``<train spec hash>.pt`` (a read-only cache layer)
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[1] / "assets" / "checkpoints"
_HINT = "train one with `cardiobench train ... --out DIR` and pass DIR/checkpoint.pt"
#: the format tags every file written by ``save_checkpoint`` starts with (denoiser and classifier checkpoints)
HEADER = {"format": FORMAT, "format_version": FORMAT_VERSION}


class CheckpointError(CardiobenchError):
    """A checkpoint file that is missing, unreadable or not a cardiobench checkpoint."""


def _check(state: Any, path: Path, hint: str) -> None:
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


#: the store of denoiser checkpoints: ``cache_dir("checkpoints")/<hash[:16]>/checkpoint.pt``, shipped
#: ``assets/checkpoints/<hash>.pt``
CHECKPOINTS = ArtefactStore(
    "checkpoints", what="checkpoint", hint=_HINT, error=CheckpointError,
    cache_name=lambda key: f"{key[:16]}/{CHECKPOINT_NAME}", shipped_dir=lambda: SHIPPED_CHECKPOINTS,
    header=HEADER, check=_check,
)


def _complete(state: dict[str, Any]) -> bool:
    return bool(state.get("complete"))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Serialise ``state`` and write it to ``path`` atomically (temp file + fsync + rename)."""
    return CHECKPOINTS.save(path, state)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    hint: str = _HINT) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a clear one-line ``CheckpointError`` otherwise.

    ``hint`` says how to get a good one (the default: train one; for the cache: ``--retrain``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    return CHECKPOINTS.read(path, hint=hint, map_location=map_location)


def damaged(path: str | os.PathLike, exc: BaseException, hint: str = _HINT) -> CheckpointError:
    """The error for a checkpoint that loaded but whose contents do not fit (a bit flip, a hand edit)."""
    return CHECKPOINTS.damaged(path, exc, hint)  # type: ignore[return-value]


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
    return CHECKPOINTS.cache_path(spec_hash)


def find_cached_checkpoint(spec_hash: str) -> Path | None:
    """The cached checkpoint of a *finished* training with this spec hash, or ``None``."""
    return CHECKPOINTS.find(spec_hash, _complete)


def shipped_checkpoint(spec_hash: str) -> Path | None:
    """The checkpoint of this training spec shipped with cardiobench, or ``None``."""
    return CHECKPOINTS.shipped(spec_hash)


def install_shipped(spec_hash: str) -> Path | None:
    """Copy a shipped checkpoint into the cache unless a finished one is there; the cached path, or ``None``."""
    return CHECKPOINTS.install_shipped(spec_hash, _complete)
