"""Size checks before decompressing: zip bombs and lying .npy headers are refused by every reader, cheaply."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from npz_bombs import MIB, small_npz, write_lying_npy, write_lying_npz, write_zero_bomb

from cardiobench.data import safe_npz
from cardiobench.data.source import VolumeSource
from cardiobench.engine.sample import read_samples
from cardiobench.errors import CardiobenchError, DataError
from cardiobench.metrics.io import read_masks
from cardiobench.testing.cli import invoke


def peak_mib(fn, *args):
    """Run ``fn(*args)``; return (result or raised exception, peak traced memory in MiB)."""
    tracemalloc.start()
    try:
        try:
            out = fn(*args)
        except Exception as exc:  # noqa: BLE001 - returned to the test, which checks its type
            out = exc
        return out, tracemalloc.get_traced_memory()[1] / MIB
    finally:
        tracemalloc.stop()


def read_cache(path):
    """The data cache's reader: returns None (rebuild) with a warning for a file it refuses."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = VolumeSource()._read_cache(path)
    assert out is None
    return " ".join(str(w.message) for w in rec)


@pytest.fixture(scope="session")
def gib_bomb(tmp_path_factory):
    """The issue's file: ~1 MB on disk, a member of 1 GiB (+1 MiB) of zeros (takes ~4 s to write)."""
    return write_zero_bomb(tmp_path_factory.mktemp("bomb") / "samples.npz", 1025)


def test_a_1gib_bomb_is_refused_under_the_default_cap_before_decompressing(gib_bomb, monkeypatch):
    monkeypatch.delenv(safe_npz.MAX_BYTES_ENV, raising=False)
    assert gib_bomb.stat().st_size < 2 * MIB
    err, peak = peak_mib(read_masks, gib_bomb)
    assert isinstance(err, DataError), err
    msg = err.format_message()
    assert msg.startswith(f"{gib_bomb}: declares 1,074,790,528 bytes of array data (largest member masks.npy")
    assert "above the 1,073,741,824 bytes limit; not loaded" in msg  # 1 GiB: exact bytes when the sizes are close
    assert f"{safe_npz.MAX_BYTES_ENV}=" in msg and "\n" not in msg
    assert peak < 16, f"peak {peak:.0f} MiB"  # it was 1 GiB (numpy allocates the declared array), ~2 GB RSS
    result = invoke("evaluate", "--samples", str(gib_bomb))
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"Error: {msg}"]


@pytest.mark.parametrize("reader", ["read_masks", "read_samples", "cache"])
def test_every_reader_checks_the_declared_size_first(tmp_path, monkeypatch, reader):
    monkeypatch.setenv(safe_npz.MAX_BYTES_ENV, "4M")
    bomb = write_zero_bomb(tmp_path / "x.npz", 64, member="meta.npy" if reader == "cache" else "masks.npy")
    if reader == "cache":
        text, peak = peak_mib(read_cache, bomb)
        assert "above the 4.0 MiB limit" in text, text
    else:
        err, peak = peak_mib(read_masks if reader == "read_masks" else read_samples, bomb)
        assert isinstance(err, DataError) and "declares 64.0 MiB of array data" in str(err), err
        assert "above the 4.0 MiB limit" in str(err)
    assert peak < 8, f"peak {peak:.0f} MiB"  # a 64 MiB member was inflated before


@pytest.mark.parametrize("reader", ["read_masks", "read_samples", "cache"])
def test_a_header_declaring_more_than_the_member_holds_is_refused(tmp_path, reader):
    shape = (1 << 28,)  # 256 MiB declared, 16 bytes held: under the cap, but a lie
    path = write_lying_npz(tmp_path / "x.npz", shape, member="meta.npy" if reader == "cache" else "masks.npy")
    expected = "declares shape (268435456,) uint8 (268435456 bytes) but holds 16 bytes of data"
    if reader == "cache":
        text, peak = peak_mib(read_cache, path)
        assert expected in text, text
    else:
        err, peak = peak_mib(read_masks if reader == "read_masks" else read_samples, path)
        assert isinstance(err, DataError) and expected in str(err), err
    assert peak < 8, f"peak {peak:.0f} MiB"  # numpy allocated the declared 256 MiB first


def test_a_npy_header_declaring_more_than_the_file_holds_is_refused(tmp_path, monkeypatch):
    path = write_lying_npy(tmp_path / "x.npy", (1 << 28,))
    err, peak = peak_mib(read_masks, path)
    assert isinstance(err, DataError), err
    assert "header declares shape (268435456,) uint8 (268435456 bytes) but the file holds 16 bytes" in str(err)
    assert peak < 8, f"peak {peak:.0f} MiB"
    monkeypatch.setenv(safe_npz.MAX_BYTES_ENV, "1M")
    with pytest.raises(DataError, match=r"declares 256\.0 MiB of array data .* above the 1\.0 MiB limit"):
        read_masks(path)


def test_the_cap_is_configurable_and_genuine_files_load(tmp_path, monkeypatch):
    path = tmp_path / "samples.npz"
    masks = np.zeros((64, 32, 32), np.uint8)  # 64 KiB
    np.savez_compressed(path, masks=masks, metadata=np.array('{"ok": true}'))
    np.save(tmp_path / "m.npy", masks)
    got, meta = read_samples(path)
    assert got.shape == (64, 32, 32) and meta == {"ok": True}
    assert read_masks(tmp_path / "m.npy")[0].shape == (64, 32, 32)
    monkeypatch.setenv(safe_npz.MAX_BYTES_ENV, "16K")
    for reader, p in ((read_samples, path), (read_masks, tmp_path / "m.npy")):
        with pytest.raises(DataError, match=r"above the 16\.0 KiB limit.*CARDIOBENCH_MAX_NPZ_BYTES"):
            reader(p)
    monkeypatch.setenv(safe_npz.MAX_BYTES_ENV, "1MiB")
    assert read_samples(path)[0].shape == (64, 32, 32)
    for raw, n in (("4G", 4 << 30), ("512m", 512 << 20), ("1048576", 1 << 20), ("1.5K", 1536)):
        monkeypatch.setenv(safe_npz.MAX_BYTES_ENV, raw)
        assert safe_npz.max_bytes() == n
    monkeypatch.setenv(safe_npz.MAX_BYTES_ENV, "lots")
    with pytest.raises(CardiobenchError, match="^CARDIOBENCH_MAX_NPZ_BYTES='lots' is not a size"):
        read_masks(tmp_path / "m.npy")  # the setting's own error, not "m.npy: unreadable (...)"


def test_bad_cap_and_damaged_samples_are_one_line_errors(tmp_path):
    path = small_npz(tmp_path / "samples.npz")
    result = invoke("evaluate", "--samples", str(path), env={safe_npz.MAX_BYTES_ENV: "lots"})
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("Error: CARDIOBENCH_MAX_NPZ_BYTES='lots' is not a size")
    (tmp_path / "broken.npz").write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="broken.npz: unreadable"):
        read_samples(tmp_path / "broken.npz")
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(DataError, match=r"other.npz: not a readable samples.npz \(KeyError"):
        read_samples(tmp_path / "other.npz")  # used to raise a bare KeyError


def test_object_arrays_are_refused_before_unpickling(tmp_path):
    np.savez(tmp_path / "obj.npz", masks=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj.npz \(member masks.npy\): holds Python objects"):
        read_masks(tmp_path / "obj.npz")


def test_a_cache_above_the_cap_is_not_written(fake_acdc, monkeypatch):
    from cardiobench.data import open_dataset

    monkeypatch.setenv(safe_npz.MAX_BYTES_ENV, "64K")
    src = open_dataset("acdc", data_root=str(fake_acdc), size=32)
    with pytest.warns(UserWarning, match=r"not caching acdc-32px-.*above the 64\.0 KiB limit.*CARDIOBENCH_MAX_NPZ"):
        src.load("train")
    assert not src.cache_path().exists()  # written, it would be refused (and rebuilt) on every load
    monkeypatch.delenv(safe_npz.MAX_BYTES_ENV)
    again = open_dataset("acdc", data_root=str(fake_acdc), size=32)
    again.load("train")
    assert again.cache_hit is False and again.cache_path().is_file()
