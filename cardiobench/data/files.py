"""Files and folders of real data sets: the checks every reader makes before it reads, with one-line errors.

``broken_link`` (a symbolic link that cannot be followed), ``root_folder`` (the data set's root from
``--data-root`` or its environment variable) and ``read_text`` (a small text file such as ACDC's ``Info.cfg`` or a
CSV), shared by ``acdc``, ``acdc-h5`` and ``nifti-pairs``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cardiobench.errors import DataError

__all__ = ["broken_link", "read_text", "root_folder"]


def broken_link(path: Path) -> DataError | None:
    """A ``DataError`` naming ``path`` if it is a symbolic link that cannot be followed (dangling, loop), else None."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
        return None
    except OSError as exc:  # ENOENT: dangling; ELOOP: a loop; EACCES...
        try:
            target = os.readlink(path)
        except OSError:  # pragma: no cover - it was a link a moment ago
            target = "?"
        return DataError(
            f"{path}: symbolic link to {target} cannot be followed ({exc.strerror or type(exc).__name__})",
            "point the link at the real file or folder, or replace it with a copy",
        )


def root_folder(data_root: str | os.PathLike | None, *, dataset: str, label: str, env: str, hint: str) -> Path:
    """The existing folder ``data_root`` (else ``$env``) of data set ``dataset``; ``label`` names it in messages
    ("ACDC root ... does not exist"), ``hint`` says how to get the data."""
    if data_root is None or str(data_root).strip() == "":
        data_root = os.environ.get(env) or None
    if data_root is None:
        raise DataError(f"the {dataset} data set needs its files: no --data-root given and {env} is not set", hint)
    root = Path(data_root).expanduser()
    if not root.exists():
        raise DataError(f"{label} root {root} does not exist", hint)
    if not root.is_dir():
        raise DataError(f"{label} root {root} is not a folder", hint)
    return root


def read_text(path: Path, *, missing: str, hint: str, encoding: str = "utf-8") -> str:
    """The text of ``path`` (undecodable bytes replaced); a broken link, a missing file (``f"{path}: {missing}"``,
    with ``hint``) or an unreadable one -> ``DataError``."""
    err = broken_link(path)
    if err is not None:
        raise err
    if not path.is_file():
        raise DataError(f"{path}: {missing}", hint)
    try:
        return path.read_text(encoding=encoding, errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror or exc})", "check the file's permissions") from None
