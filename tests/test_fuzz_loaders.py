"""Fuzz every loader of a user's file: damaged files give exit 2 and one line, never exit 1 or a traceback.

Each loader starts from a valid file of its kind; the mutations are deterministic (seeded): empty, cut short
at several points, random bytes of the same length, text and CSV, bytes flipped in the header and at random
places. A mutation may leave a file valid (a flipped bit in a tensor's data still loads): then the command
may succeed, but it must never fail any other way than with exit 2 and one ``Error:`` line.

The loaders: checkpoints, classifiers, samples (``.npz``, ``.npy``), a NIfTI of an ``acdc`` tree, an HDF5 volume
of an ``acdc-h5`` tree, the results store, and (through the Python API) evaluators and Inception weights.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cardiobench.testing.cli import invoke

pytestmark = pytest.mark.usefixtures("one_thread")


def _flip(data: bytes, seed: int, n: int, lo: int = 0, hi: int | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    buf = bytearray(data)
    hi = len(buf) if hi is None else min(hi, len(buf))
    for pos in rng.integers(lo, hi, size=n):
        buf[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


#: name -> (bytes of a valid file) -> damaged bytes
MUTATIONS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda d: b"",
    "one-byte": lambda d: d[:1],
    "cut-10pc": lambda d: d[: len(d) // 10],
    "cut-half": lambda d: d[: len(d) // 2],
    "cut-last-byte": lambda d: d[:-1],
    "random": lambda d: np.random.default_rng(1).integers(0, 256, len(d), dtype=np.uint8).tobytes(),
    "text": lambda d: b"hello world, this is not a data file\n" * 4,
    "csv": lambda d: b"a,b,c\n1,2,3\n=cmd|' /C calc'!A0,4,5\n",
    "flip-header": lambda d: _flip(d, 2, 4, 0, 64),
    "flip-start": lambda d: _flip(d, 3, 8, 0, 2048),
    "flip-random": lambda d: _flip(d, 4, 16),
    "flip-tail": lambda d: _flip(d, 5, 8, max(0, len(d) - 512)),
}
#: mutations that can never leave a valid file: the command must refuse them (exit 2)
ALWAYS_BAD = {"empty", "one-byte", "cut-10pc", "cut-half", "random", "text", "csv"}


@dataclass
class Loader:
    """A kind of file a user hands to cardiobench, and the command that reads it."""

    suffix: str
    valid: Callable[[Path], bytes]  # tmp folder -> bytes of a valid file
    command: Callable[[Path, Path], list[str]]  # (damaged file, tmp folder) -> CLI arguments
    #: (folder of the valid file, test folder, bytes) -> what the command reads, holding those bytes
    place: Callable[[Path, Path, bytes], Path] | None = None
    empty_ok: bool = False  # an empty file is a valid file of this kind (an empty SQLite database)
    read_only: bool = False  # the command only reads: the file must be byte-identical afterwards


def _tiny_checkpoint(tmp: Path) -> bytes:
    from cardiobench.engine.train import train
    from cardiobench.specs import TrainSpec

    spec = TrainSpec(dataset="phantom", resolution=16, dataset_options={"train_patients": 1, "test_patients": 1},
                     noise_options={"num_timesteps": 20}, backbone_options={"size": "tiny"}, batch_size=4,
                     steps=1, warmup_steps=1)
    return train(spec, tmp / "run").checkpoint.read_bytes()


def _shipped_classifier(tmp: Path) -> bytes:
    from cardiobench.conditioning.classifier import SHIPPED_CLASSIFIERS

    return sorted(SHIPPED_CLASSIFIERS.glob("*.pt"))[0].read_bytes()


def _samples_npz(tmp: Path) -> bytes:
    from cardiobench.testing.metrics import contract_masks

    np.savez_compressed(tmp / "s.npz", masks=contract_masks(6, 32))
    return (tmp / "s.npz").read_bytes()


def _samples_npy(tmp: Path) -> bytes:
    from cardiobench.testing.metrics import contract_masks

    np.save(tmp / "s.npy", contract_masks(6, 32))
    return (tmp / "s.npy").read_bytes()


def _results_store(tmp: Path) -> bytes:
    from cardiobench.results.store import ResultStore

    with ResultStore(tmp / "valid.db")._connection(create=True):  # an empty store with the current schema
        pass
    return (tmp / "valid.db").read_bytes()


def _data_helper(name: str):
    """``tests/data/<name>.py`` (the fake-tree builders), imported under its own name as the data tests do."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there; fake_acdc_h5 imports fake_acdc
    spec.loader.exec_module(module)
    return module


def _fake_acdc(tmp: Path) -> Path:
    return _data_helper("fake_acdc").build_fake_acdc(tmp / "acdc")


def _nifti_valid(tmp: Path) -> bytes:
    root = _fake_acdc(tmp)
    return sorted((root / "training").glob("patient*/patient*_frame*_gt.nii*"))[0].read_bytes()


def _nifti_place(base: Path, tmp: Path, data: bytes) -> Path:
    template = base / "acdc" / "database"
    root = tmp / "acdc"
    shutil.copytree(template, root)
    target = sorted((root / "training").glob("patient*/patient*_frame*_gt.nii*"))[0]
    target.write_bytes(data)
    return root


H5_TARGET = "volumes/patient001_frame01.h5"


def _h5_valid(tmp: Path) -> bytes:
    _data_helper("fake_acdc")
    root = _data_helper("fake_acdc_h5").build_fake_h5(tmp / "h5", numbers=(1, 21, 41, 61, 81))
    return (root / H5_TARGET).read_bytes()


def _h5_place(base: Path, tmp: Path, data: bytes) -> Path:
    root = tmp / "acdc-h5"
    shutil.copytree(base / "h5" / "acdc-h5", root)
    (root / H5_TARGET).write_bytes(data)
    return root


LOADERS: dict[str, Loader] = {
    "checkpoint": Loader(".pt", _tiny_checkpoint, lambda f, t: [
        "sample", "--checkpoint", str(f), "--sampler", "ddim", "--steps", "2", "-n", "2", "--out", str(t / "o")]),
    "classifier": Loader(".pt", _shipped_classifier, lambda f, t: ["classifier", "info", str(f)]),
    "samples-npz": Loader(".npz", _samples_npz, lambda f, t: [
        "evaluate", "--samples", str(f), "--metrics", "anatomy", "--no-reference", "--json"]),
    "samples-npy": Loader(".npy", _samples_npy, lambda f, t: [
        "evaluate", "--samples", str(f), "--metrics", "anatomy", "--no-reference", "--json"]),
    "nifti": Loader(".nii.gz", _nifti_valid, lambda f, t: ["data", "info", "--data-root", str(f), "--no-cache"],
                    _nifti_place),
    "hdf5": Loader(".h5", _h5_valid, lambda f, t: ["data", "info", "--dataset", "acdc-h5", "--data-root", str(f),
                                                 "--no-cache", "--size", "32"], _h5_place),
    "results-store": Loader(".db", _results_store, lambda f, t: ["leaderboard", "--results", str(f)],
                            empty_ok=True, read_only=True),
}


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    """The valid file of every loader, built once."""
    out = {}
    for name, loader in LOADERS.items():
        tmp = tmp_path_factory.mktemp(name)
        out[name] = (tmp, loader.valid(tmp))
    return out


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_valid_file_is_read(loader, valid_files, tmp_path):
    """The starting point works, so a refusal below is about the damage, not the setup."""
    spec = LOADERS[loader]
    base, data = valid_files[loader]
    path = spec.place(base, tmp_path, data) if spec.place else tmp_path / f"valid{spec.suffix}"
    if not spec.place:
        path.write_bytes(data)
    result = invoke(*spec.command(path, tmp_path))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_damaged_file_is_one_line_exit_2(loader, mutation, valid_files, tmp_path):
    spec = LOADERS[loader]
    base, data = valid_files[loader]
    damaged = MUTATIONS[mutation](data)
    if spec.place:
        path = spec.place(base, tmp_path, damaged)
    else:
        path = tmp_path / f"damaged{spec.suffix}"
        path.write_bytes(damaged)
    result = invoke(*spec.command(path, tmp_path))
    assert "Traceback" not in result.output, result.output
    if spec.read_only:
        assert path.read_bytes() == damaged, f"{loader}/{mutation}: reading wrote into the file"
    bad = mutation in ALWAYS_BAD and not (spec.empty_ok and mutation == "empty")
    if bad or result.exit_code != 0:
        assert result.exit_code == 2, f"{loader}/{mutation}: exit {result.exit_code}: {result.output}"
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1 and "unexpected" not in errors[0], result.stderr


def _evaluator_file(tmp: Path) -> bytes:
    from cardiobench.metrics.evaluator import ASSETS

    return (ASSETS / "phantom-evaluator.pt").read_bytes()


def _inception_file(tmp: Path) -> bytes:
    import torch

    torch.save({"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}, tmp / "w.pth")
    return (tmp / "w.pth").read_bytes()


def _read_evaluator(path: Path) -> None:
    from cardiobench.metrics.evaluator import load_evaluator_file

    load_evaluator_file(path)


def _read_inception(path: Path) -> None:
    import warnings

    from cardiobench.metrics.fidelity import read_inception_weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not the published file: said with a warning, not an error
        read_inception_weights(path)


#: loaders with no command of their own (the evaluator is picked by data set; Inception weights are read by
#: ``evaluate --inception-weights`` before anything else, see tests/metrics/test_fidelity.py): the Python API
API_LOADERS: dict[str, tuple[Callable[[Path], bytes], Callable[[Path], None]]] = {
    "evaluator": (_evaluator_file, _read_evaluator),
    "inception-weights": (_inception_file, _read_inception),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("loader", sorted(API_LOADERS))
def test_damaged_file_api_is_one_line_error(loader, mutation, tmp_path):
    from cardiobench.errors import CardiobenchError

    valid, read = API_LOADERS[loader]
    path = tmp_path / "damaged.pt"
    path.write_bytes(MUTATIONS[mutation](valid(tmp_path)))
    try:
        read(path)
    except CardiobenchError as exc:
        assert "\n" not in str(exc) and "weights_only" not in str(exc) and str(path) in str(exc)
    else:
        assert mutation not in ALWAYS_BAD, f"{loader}/{mutation} was accepted"
