"""Where cardiobench keeps caches (preprocessed data, checkpoints, evaluators) and results."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir(*parts: str, create: bool = True) -> Path:
    """The cache folder joined with ``parts`` (created unless ``create=False``).

    The cache folder is ``$CARDIOBENCH_CACHE_DIR`` when set, else the platform's user cache folder for
    cardiobench (platformdirs): ``$XDG_CACHE_HOME/cardiobench`` (default ``~/.cache/cardiobench``) on Linux,
    ``~/Library/Caches/cardiobench`` on macOS, ``%LOCALAPPDATA%\\cardiobench\\Cache`` on Windows.
    """
    root = os.environ.get("CARDIOBENCH_CACHE_DIR")
    if not root:
        from platformdirs import user_cache_dir

        root = user_cache_dir("cardiobench", appauthor=False)
    path = Path(root, *parts).expanduser()
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from cardiobench.errors import CardiobenchError

        raise CardiobenchError(f"cannot create the cache folder {path}: {exc.strerror or exc}",
                               "set CARDIOBENCH_CACHE_DIR to a writable folder") from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the usual permissions of a new file, not mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_image(path: str | os.PathLike, image, **save_kwargs) -> Path:
    """Write a PIL image to ``path`` atomically (format from the suffix, PNG without one): encoded in memory,
    then ``atomic_write_bytes``, so a full disk or a crash never leaves a 0-byte or half-written picture."""
    import io

    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save_kwargs)
    atomic_write_bytes(path, buf.getvalue())
    return path


def check_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a folder cardiobench can write into, checked before any work; nothing is created.

    A missing folder is judged by its nearest existing ancestor (the writer creates the folder later, so a
    command that fails for another reason leaves no empty folder behind). Raises a one-line
    ``CardiobenchError`` naming the folder and the fix when ``path`` (or an ancestor) is a file, or the folder
    does not take a new file (read-only, no permission, no space left for even a small file).
    """
    from cardiobench.errors import CardiobenchError, os_error

    p = Path(path).expanduser()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        problem = "is a file, not a folder" if probe == p else f"cannot be created: {probe} is a file"
        raise CardiobenchError(f"{what} {p} {problem}", "choose a folder (it is created if missing)")
    try:
        with tempfile.TemporaryFile(dir=probe) as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        err = os_error(exc)
        raise CardiobenchError(f"cannot write into {what} {p}: {exc.strerror or exc}", err.hint) from None
    return p
