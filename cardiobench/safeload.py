"""Reading PyTorch files a user hands us: tensors and plain values only, never code, one line on failure.

Every ``.pt``/``.pth`` that cardiobench reads (checkpoints, noisy classifiers, evaluators, Inception weights)
goes through ``read_torch_file``. It loads with ``torch.load(weights_only=True)``, whose unpickler accepts
tensors, containers and plain values and refuses every other global, so a file whose pickle would call
``os.system`` (or anything else) is refused instead of run. Whatever goes wrong (missing, unreadable, not a
PyTorch file, truncated, bit-flipped, refused object) becomes one ``CardiobenchError`` line that names the
file and what to do, never torch's advice to retry with ``weights_only=False``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cardiobench.errors import CardiobenchError

#: the first bytes of what ``torch.save`` writes: a zip archive (torch >= 1.6) or a legacy pickle (protocol 2+)
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"


def _reason(exc: BaseException, head: bytes) -> str:
    """What is wrong with the file, in words (no traceback, no ``weights_only=False`` advice)."""
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
        return "it is not a PyTorch file"
    text = str(exc)
    refused = re.search(r"unsupported GLOBAL ([\w.]+)", text, re.IGNORECASE) or re.search(
        r"Unsupported (?:global|operand)[^:]*: ([^\s,]+)", text, re.IGNORECASE)
    if refused:
        return (f"it holds a Python object other than tensors and plain values ({refused.group(1)}), "
                "which is refused because loading it could run code")
    if "zip archive" in text or "central directory" in text or isinstance(exc, EOFError):
        return "it is truncated or corrupt"
    return f"it is corrupt ({type(exc).__name__})"


def read_torch_file(
    path: str | os.PathLike,
    *,
    what: str,
    hint: str,
    error: type[CardiobenchError] = CardiobenchError,
    map_location: Any = "cpu",
    mmap: bool = False,
) -> Any:
    """The object stored in a ``torch.save`` file, read weights-only; ``error`` (one line) on any failure.

    ``what`` names the kind of file in messages ("checkpoint", "evaluator file", ...); ``hint`` says how to
    get a good one. The caller checks the object's structure (format tags, keys) itself.
    """
    p = Path(path)
    if p.is_dir():
        raise error(f"{what} {p} is a folder, not a file", hint)
    if not p.exists():
        raise error(f"{what} {p} does not exist", hint)
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}", "check the path and its permissions") from None
    import torch

    try:
        return torch.load(p, map_location=map_location, weights_only=True, mmap=mmap and head.startswith(_ZIP_MAGIC))
    except MemoryError:
        raise error(f"cannot read {what} {p}: it declares more data than fits in memory", hint) from None
    except Exception as exc:  # torch.load raises KeyError, IndexError, RuntimeError, UnpicklingError... on junk
        raise error(f"cannot read {what} {p}: {_reason(exc, head)}", hint) from None


def check_state_dict(obj: Any, path: str | os.PathLike, *, what: str, hint: str,
                     error: type[CardiobenchError] = CardiobenchError) -> dict[str, Any]:
    """``obj`` if it is a flat ``{name: tensor}`` state dict, else ``error`` naming the file."""
    import torch

    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise error(f"{what} {path} is not a state dict (a mapping of parameter names to tensors)", hint)
    return obj
