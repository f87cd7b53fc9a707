"""Atomic writes and the writable-folder check (cardiobench/paths.py)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from cardiobench.errors import CardiobenchError
from cardiobench.paths import atomic_write_image, check_writable_dir
from cardiobench.viz import save_grid


def _disk_full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_leaves_no_empty_png(tmp_path, monkeypatch):
    """A PNG is encoded in memory and renamed into place: a full disk leaves no 0-byte grid.png, no temp file."""
    masks = np.zeros((4, 8, 8), np.uint8)
    save_grid(tmp_path / "old.png", masks)
    before = (tmp_path / "old.png").read_bytes()
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError, match="No space"):
        save_grid(tmp_path / "grid.png", masks)
    with pytest.raises(OSError, match="No space"):
        save_grid(tmp_path / "old.png", masks + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]
    assert (tmp_path / "old.png").read_bytes() == before


def test_atomic_write_image_keeps_format_and_frames(tmp_path):
    from PIL import Image

    frames = [Image.new("RGB", (4, 4), c).convert("P") for c in ("red", "green", "blue")]
    atomic_write_image(tmp_path / "a.gif", frames[0], save_all=True, append_images=frames[1:], duration=50)
    with Image.open(tmp_path / "a.gif") as img:
        assert img.format == "GIF" and img.n_frames == 3
    atomic_write_image(tmp_path / "noext", frames[0])
    with Image.open(tmp_path / "noext") as img:
        assert img.format == "PNG"


def test_check_writable_dir(tmp_path, monkeypatch):
    new = check_writable_dir(tmp_path / "new" / "deep", "output folder")
    assert new == tmp_path / "new" / "deep" and not (tmp_path / "new").exists()  # judged, not created
    (tmp_path / "file").write_text("x")
    with pytest.raises(CardiobenchError, match=r"output folder .*file is a file, not a folder"):
        check_writable_dir(tmp_path / "file", "output folder")
    with pytest.raises(CardiobenchError, match=r"output folder .*file/sub cannot be created: .*file is a file"):
        check_writable_dir(tmp_path / "file" / "sub", "output folder")
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(CardiobenchError, match="cannot write into results folder .*read-only") as err:
        check_writable_dir(tmp_path, "results folder")
    assert "\n" not in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a folder without write permission")
def test_check_writable_dir_without_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(CardiobenchError, match="cannot write into cache folder"):
            check_writable_dir(locked, "cache folder")
    finally:
        locked.chmod(0o755)
