"""One store for trained artefacts: denoiser checkpoints, noisy classifiers and domain evaluators.

Each kind is an ``ArtefactStore`` that answers the same questions the same way:

- ``cache_path(key)``: where the cache entry of a key (a spec hash) lives, under ``cache_dir(<kind>)``;
- ``shipped(key)``: the file of that key shipped with the package (a read-only layer under the cache), or ``None``;
- ``save(path, state)``: ``torch.save`` of ``{**header, **state}`` written atomically (temp file, fsync, rename),
  so a crash leaves the old file or the new one, never a torn one;
- ``read(path)``: ``torch.load(weights_only=True)`` (``cardiobench.safeload``: no code from the file is run), then
  the kind's structure check; every failure is one ``CardiobenchError`` line naming the file and the fix;
- ``valid(path, key)``: whether a file is a readable entry of that key (its stored spec hash is the key, and the
  caller's ``accept`` agrees, e.g. a *finished* training); a damaged file is simply not valid;
- ``find(key)`` / ``install_shipped(key)`` / ``fetch(key)``: the valid cached entry; a shipped file copied into the
  cache; either, with how it was found (``reused`` / ``reused-shipped``).

``publish(src, dst)`` places a finished file somewhere else atomically (a hard link when possible).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cardiobench.errors import CardiobenchError
from cardiobench.paths import atomic_write_bytes, cache_dir
from cardiobench.safeload import read_torch_file

__all__ = ["ArtefactStore", "publish"]

#: ``accept(state) -> bool``: a further condition on a valid entry (e.g. a finished training)
Accept = Callable[[dict[str, Any]], bool]


class ArtefactStore:
    """The files of one kind of trained artefact (see the module docstring).

    ``kind``: the cache folder (``checkpoints``, ``classifiers``, ``evaluators``). ``what``: the files' name in
    messages; ``hint``: how to get a good one; ``error``: the exception class. ``cache_name(key)``: the entry's
    path below the cache folder. ``shipped_dir()``: the package's folder of shipped files (read when called, so
    it can be patched), ``shipped_name(key)`` a file's name there (``None``: nothing ships for that key).
    ``header``: entries written first in every file (format tags). ``check(state, path, hint)`` raises for an
    object that is not a file of this kind. ``key_field``: the entry holding the spec hash (``None``: files are
    not keyed by content, any readable file is valid).
    """

    def __init__(
        self,
        kind: str,
        *,
        what: str,
        hint: str,
        error: type[CardiobenchError] = CardiobenchError,
        cache_name: Callable[[str], str] = lambda key: f"{key}.pt",
        shipped_dir: Callable[[], Path] | None = None,
        shipped_name: Callable[[str], str | None] = lambda key: f"{key}.pt",
        header: dict[str, Any] | None = None,
        check: Callable[[Any, Path, str], None] | None = None,
        key_field: str | None = "spec_hash",
    ) -> None:
        self.kind, self.what, self.hint, self.error = kind, what, hint, error
        self.cache_name, self.shipped_dir, self.shipped_name = cache_name, shipped_dir, shipped_name
        self.header = dict(header or {})
        self.check, self.key_field = check, key_field

    # -- where --------------------------------------------------------------------------------------------
    def cache_path(self, key: str) -> Path:
        """The cache entry of ``key`` (its folder is created)."""
        path = cache_dir(self.kind) / self.cache_name(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def shipped(self, key: str) -> Path | None:
        """The file of ``key`` shipped with cardiobench, or ``None``."""
        name = self.shipped_name(key) if self.shipped_dir is not None else None
        if name is None:
            return None
        path = self.shipped_dir() / name
        return path if path.is_file() else None

    # -- files --------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, state: dict[str, Any]) -> Path:
        """Serialise ``{**header, **state}`` and write it to ``path`` atomically."""
        import torch

        buf = io.BytesIO()
        torch.save({**self.header, **state}, buf)
        path = Path(path)
        atomic_write_bytes(path, buf.getbuffer())
        return path

    def read(self, path: str | os.PathLike, *, hint: str | None = None, map_location: Any = "cpu",
             mmap: bool = False) -> dict[str, Any]:
        """The file's dict, read weights-only and checked; one ``error`` line otherwise."""
        path = Path(path)
        hint = self.hint if hint is None else hint
        state = read_torch_file(path, what=self.what, hint=hint, error=self.error, map_location=map_location,
                                mmap=mmap)
        if self.check is not None:
            self.check(state, path, hint)
        elif not isinstance(state, dict):
            raise self.error(f"{path} is not a cardiobench {self.what}", hint)
        return state

    def damaged(self, path: str | os.PathLike, exc: BaseException, hint: str | None = None) -> CardiobenchError:
        """The error for a file that loaded but whose contents do not fit (a bit flip, a hand edit)."""
        return self.error(f"{self.what} {path} is damaged: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:160]}", self.hint if hint is None else hint)

    # -- entries ------------------------------------------------------------------------------------------
    def valid(self, path: str | os.PathLike, key: str, accept: Accept | None = None) -> bool:
        """Whether ``path`` is a readable file of ``key`` (and ``accept`` agrees); a damaged file is not."""
        path = Path(path)
        if not path.is_file():
            return False
        try:
            state = self.read(path, mmap=True)
        except CardiobenchError:
            return False
        if self.key_field is not None and state.get(self.key_field) != key:
            return False
        return accept is None or bool(accept(state))

    def find(self, key: str, accept: Accept | None = None) -> Path | None:
        """The valid cache entry of ``key``, or ``None``."""
        path = cache_dir(self.kind, create=False) / self.cache_name(key)
        return path if self.valid(path, key, accept) else None

    def install_shipped(self, key: str, accept: Accept | None = None) -> Path | None:
        """Copy the shipped file of ``key`` into the cache unless a valid entry is there; the entry, or ``None``
        (no shipped file, or nothing to do)."""
        if self.find(key, accept) is not None:
            return None
        shipped = self.shipped(key)
        if shipped is None or not self.valid(shipped, key, accept):
            return None
        return publish(shipped, self.cache_path(key), link=False)

    def fetch(self, key: str, accept: Accept | None = None) -> tuple[Path, str] | None:
        """``(cache entry, "reused")``, else ``(entry, "reused-shipped")`` after copying the shipped file into the
        cache, else ``None`` (train it)."""
        found = self.find(key, accept)
        if found is not None:
            return found, "reused"
        installed = self.install_shipped(key, accept)
        return (installed, "reused-shipped") if installed is not None else None


def publish(src: Path, dst: Path, *, link: bool = True) -> Path:
    """Place the finished file ``src`` at ``dst`` atomically: a hard link when possible (``link``), else a copy."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if Path(src).resolve() == dst.resolve():
        return dst
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            if not link:
                raise OSError("copy asked for")
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst
