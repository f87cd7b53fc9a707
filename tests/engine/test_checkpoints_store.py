"""The artefact store shared by denoiser checkpoints, noisy classifiers and evaluators."""

from __future__ import annotations

import pytest
import torch

from cardiobench.conditioning.classifier import CLASSIFIERS, SHIPPED_CLASSIFIERS, load_classifier
from cardiobench.engine import checkpoints as ck
from cardiobench.engine.store import ArtefactStore
from cardiobench.errors import CardiobenchError
from cardiobench.metrics.evaluator import EVALUATORS, load_evaluator_file


def _check(state, path, hint):
    if not isinstance(state, dict) or state.get("format") != "test-artefact":
        raise CardiobenchError(f"{path} is not a test artefact", hint)


@pytest.fixture
def store(tmp_path):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    return ArtefactStore("tests", what="test artefact", hint="make one", header={"format": "test-artefact"},
                         check=_check, shipped_dir=lambda: shipped)


def test_save_read_and_validity_by_spec_hash(store, tmp_path):
    path = store.cache_path("abc")
    assert path.parent.is_dir() and path.name == "abc.pt"
    store.save(path, {"spec_hash": "abc", "weights": torch.ones(2), "complete": False})
    state = store.read(path)
    assert list(state)[0] == "format" and torch.equal(state["weights"], torch.ones(2))
    assert store.valid(path, "abc") and not store.valid(path, "other")
    assert not store.valid(path, "abc", accept=lambda s: s["complete"])
    assert store.find("abc") == path and store.find("nope") is None
    assert store.fetch("abc") == (path, "reused")
    assert [p.name for p in path.parent.iterdir()] == ["abc.pt"]  # no temp file left behind


def test_damaged_entries_are_misses_and_one_line_errors(store):
    path = store.cache_path("abc")
    path.write_bytes(b"junk")
    assert not store.valid(path, "abc") and store.find("abc") is None
    with pytest.raises(CardiobenchError, match="cannot read test artefact .* not a PyTorch file") as err:
        store.read(path)
    assert "\n" not in str(err.value)
    torch.save({"format": "another"}, path)
    with pytest.raises(CardiobenchError, match="is not a test artefact"):
        store.read(path)
    assert "is damaged: KeyError" in str(store.damaged(path, KeyError("model")))


def test_shipped_files_are_copied_into_the_cache(store):
    assert store.shipped("abc") is None and store.fetch("abc") is None
    shipped = store.shipped_dir() / "abc.pt"
    store.save(shipped, {"spec_hash": "abc"})
    assert store.shipped("abc") == shipped
    path, status = store.fetch("abc")
    assert status == "reused-shipped" and path == store.cache_path("abc")
    assert path.read_bytes() == shipped.read_bytes() and path.stat().st_ino != shipped.stat().st_ino
    assert store.install_shipped("abc") is None  # a valid entry is there already
    assert store.fetch("abc") == (path, "reused")


def test_the_shipped_artefacts_are_valid_entries_of_their_hashes():
    """Every shipped checkpoint and classifier reads through the store as the entry of the hash it is named by."""
    checkpoints = sorted(ck.SHIPPED_CHECKPOINTS.glob("*.pt"))
    classifiers = sorted(SHIPPED_CLASSIFIERS.glob("*.pt"))
    assert checkpoints and classifiers
    for path in checkpoints:
        assert ck.CHECKPOINTS.valid(path, path.stem, lambda s: s["complete"]), path
        assert ck.shipped_checkpoint(path.stem) == path
    for path in classifiers:
        assert CLASSIFIERS.valid(path, path.stem), path
        assert load_classifier(path)[1].hash() == path.stem
    assert load_evaluator_file(EVALUATORS.shipped("phantom")).id == "e6aae41485c9"
    assert EVALUATORS.shipped("acdc") is None


def test_install_shipped_checkpoint_fills_the_cache():
    path = sorted(ck.SHIPPED_CHECKPOINTS.glob("*.pt"))[0]
    cached = ck.install_shipped(path.stem)
    assert cached == ck.cached_checkpoint_path(path.stem) and ck.find_cached_checkpoint(path.stem) == cached
    assert ck.install_shipped(path.stem) is None
    assert ck.load_checkpoint(cached.parent)["spec_hash"] == path.stem
