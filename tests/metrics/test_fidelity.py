"""torch-fidelity with the domain ruler (and the Inception path): ordering, adaptation, errors."""

from __future__ import annotations

import warnings
from unittest import mock

import numpy as np
import pytest
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.metrics.baselines import random_blob_masks, shuffle_classes
from cardiobench.metrics.evaluator import ASSETS
from cardiobench.metrics.fidelity import (
    ColourMaskDataset,
    FidelityWarning,
    LabelMapDataset,
    check_inception_weights,
    fidelity_metrics,
    read_inception_weights,
)
from cardiobench.testing.metrics import contract_masks

SHIPPED = ASSETS / "phantom-evaluator.pt"


def test_datasets_return_bare_uint8_chw():
    m = contract_masks(3, 16)
    item = LabelMapDataset(m)[1]
    assert isinstance(item, torch.Tensor) and item.dtype == torch.uint8 and item.shape == (1, 16, 16)
    rgb = ColourMaskDataset(m)[1]
    assert rgb.dtype == torch.uint8 and rgb.shape == (3, 16, 16)


def test_ordering_real_shuffled_blobs(phantom64):
    """Done-when of issue 5: real-vs-real FID << class-shuffled FID << random-blob FID; IS of real data."""
    rng = np.random.default_rng(0)
    train, test = phantom64["train"], phantom64["test"]
    n = 200
    real = test.masks[np.sort(rng.permutation(len(test))[:n])]
    fake_real = train.masks[np.sort(rng.permutation(len(train))[:n])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FidelityWarning)
        ref = fidelity_metrics(fake_real, real, evaluator_path=SHIPPED)
        shuffled = fidelity_metrics(shuffle_classes(fake_real, seed=1), real, evaluator_path=SHIPPED)
        blobs = fidelity_metrics(random_blob_masks(n, 64, seed=2), real, evaluator_path=SHIPPED)
    assert ref["fid"] * 5 < shuffled["fid"] < blobs["fid"], (ref["fid"], shuffled["fid"], blobs["fid"])
    assert ref["kid"] < shuffled["kid"] < blobs["kid"]
    assert ref["precision"] > 0.6 and ref["recall"] > 0.6
    assert max(shuffled["recall"], blobs["recall"]) < ref["recall"] - 0.3
    # 5 balanced groups: IS of real data is the number of groups the evaluator tells apart (at most 5)
    assert 2.5 < ref["is"] <= 5.0 and blobs["is"] < ref["is"]


def test_small_sets_adapt_with_warnings(phantom64):
    m = phantom64["test"].masks
    with pytest.warns(FidelityWarning, match="KID subset size lowered"):
        out = fidelity_metrics(m[:12], m[12:20], evaluator_path=SHIPPED)
    assert out["_settings"]["kid_subset_size"] == 4 and out["_settings"]["isc_splits"] == 1
    with pytest.warns(FidelityWarning, match="precision/recall skipped"):
        out = fidelity_metrics(m[:3], m[3:6], evaluator_path=SHIPPED)
    assert np.isnan(out["precision"]) and np.isfinite(out["fid"])
    with pytest.raises(CardiobenchError, match="at least 2"):
        fidelity_metrics(m[:1], m[1:5], evaluator_path=SHIPPED)


def test_missing_inception_weights_is_one_line(tmp_path):
    with pytest.raises(CardiobenchError) as exc:
        check_inception_weights(tmp_path / "nope.pth")
    msg = str(exc.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg and "\n" not in msg
    with pytest.raises(CardiobenchError, match="--inception-weights"):
        check_inception_weights(None)


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A state dict of the right shape for torch-fidelity's InceptionV3 (random weights), as its loader reads it."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    with (
        mock.patch.object(fe, "load_state_dict_from_url", return_value={}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None),
    ):
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return path


def test_inception_pipeline(random_inception_weights):
    """The standard inception-v3-compat path end to end. Pipeline only: random weights; to keep it fast on a
    CPU the network resizes to 96 px instead of 299, and FID/KID use its 64-d layer (a 2048-d FID spends its
    time in the matrix square root)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    cls = fe.FeatureExtractorInceptionV3
    layer = staticmethod(lambda metric: "logits_unbiased" if metric == "isc" else "64")
    m = contract_masks(4, 32)
    with (
        warnings.catch_warnings(),
        mock.patch.object(cls, "INPUT_IMAGE_SIZE", 96),
        mock.patch.object(cls, "get_default_feature_layer_for_metric", layer),
    ):
        warnings.simplefilter("ignore", FidelityWarning)
        out = fidelity_metrics(m[:2], m[2:], feature_extractor="inception", inception_weights=random_inception_weights)
    assert np.isfinite(out["fid"]) and np.isfinite(out["is"]) and out["_settings"]["feature_extractor"] == "inception"


class _RunsCode:
    """A pickle payload: unpickling it with ``weights_only=False`` runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious_weights(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048), "payload": _RunsCode(marker)}, path)
    return path, marker


def test_inception_weights_that_run_code_are_refused(malicious_weights):
    """torch-fidelity unpickles its weights with weights_only=False: cardiobench must never hand it the file."""
    path, marker = malicious_weights
    with pytest.raises(CardiobenchError, match="could run code") as exc:
        read_inception_weights(path)
    assert "\n" not in str(exc.value) and "weights_only" not in str(exc.value)
    m = contract_masks(4, 32)
    with pytest.raises(CardiobenchError, match="could run code"):  # the metric path itself, not only the CLI check
        fidelity_metrics(m[:2], m[2:], feature_extractor="inception", inception_weights=path)
    assert not marker.exists()


def test_cli_refuses_inception_weights_that_run_code(malicious_weights, tmp_path, monkeypatch):
    from cardiobench.testing.cli import invoke

    path, marker = malicious_weights
    np.save(tmp_path / "s.npy", contract_masks(4, 32))
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "cache"))
    result = invoke("evaluate", "--samples", str(tmp_path / "s.npy"), "--feature-extractor", "inception",
                    "--inception-weights", str(path))
    assert result.exit_code == 2, result.output
    assert "could run code" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_inception_weights_of_the_wrong_network_are_one_line(tmp_path):
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(CardiobenchError, match="not torch-fidelity's InceptionV3"):
        read_inception_weights(tmp_path / "other.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CardiobenchError, match="not a state dict"):
        read_inception_weights(tmp_path / "list.pth")


def test_unpublished_inception_weights_warn(random_inception_weights):
    """Random weights under the published file name: usable, but FID is said not to be comparable."""
    with pytest.warns(FidelityWarning, match="not torch-fidelity's published Inception file"):
        state = read_inception_weights(random_inception_weights)
    assert state["fc.weight"].shape == (1008, 2048)
