"""The evaluator's training objective: SSL (SimCLR) beside the pathology CNN, identities, the default by metadata."""

from __future__ import annotations

from dataclasses import asdict, replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl
from cardiobench.metrics.evaluator import (
    ASSETS,
    EvaluatorConfig,
    augment_views,
    config_identity,
    default_config,
    load_evaluator_file,
    nt_xent,
    to_input,
    train_evaluator,
    weights_digest,
)
from cardiobench.testing.metrics import contract_masks

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = EvaluatorConfig(size=32, width=8, features=16, epochs=2, batch_size=16, probe_epochs=20, threads=1)
#: the configuration dictionary every evaluator had before the objective option existed
LEGACY_KEYS = {"size", "width", "features", "num_classes", "epochs", "batch_size", "lr", "weight_decay",
               "roundtrip_prob", "seed", "threads"}


def tiny_data():
    return contract_masks(40, 32, seed=9), np.arange(40) % 5


def test_shipped_phantom_evaluator_keeps_its_id():
    ev = load_evaluator_file(ASSETS / "phantom-evaluator.pt")
    assert ev.config.objective == "pathology"
    assert ev.id == "e6aae41485c9"


def test_default_config_identity_is_the_legacy_dictionary():
    cfg = EvaluatorConfig()
    assert set(config_identity(cfg)) == LEGACY_KEYS
    # SSL-only fields cannot change a pathology evaluator's identity; the objective changes it
    state = {"w": torch.arange(4.0)}
    assert weights_digest(replace(cfg, ssl_temperature=0.5), state) == weights_digest(cfg, state)
    ssl = replace(cfg, objective="ssl")
    assert config_identity(ssl) == asdict(ssl)
    assert weights_digest(ssl, state) != weights_digest(cfg, state)
    assert weights_digest(replace(ssl, ssl_temperature=0.5), state) != weights_digest(ssl, state)
    with pytest.raises(CardiobenchError, match="unknown evaluator objective"):
        EvaluatorConfig(objective="nope")


def test_ssl_objective_trains_deterministically_with_its_own_identity(tmp_path):
    masks, groups = tiny_data()
    ssl = replace(TINY, objective="ssl")
    a = train_evaluator(masks, groups, ssl, eval_sets={"train": (masks, groups)})
    b = train_evaluator(masks, groups, ssl)
    p = train_evaluator(masks, groups, TINY)
    assert a.id == b.id and a.id != p.id
    assert a.meta["objective"] == "ssl" and p.meta["objective"] == "pathology"
    f, logits = a.predict(masks[:5])
    assert f.shape == (5, 16) and logits.shape == (5, 5) and np.isfinite(f).all()
    assert 0.0 <= a.meta["accuracy"]["train"] <= 1.0
    # the file round trip keeps the objective and the id (the projection head is not saved)
    loaded = load_evaluator_file(a.save(tmp_path / "ssl.pt"))
    assert loaded.config.objective == "ssl" and loaded.id == a.id
    assert not any(k.startswith("proj") for k in loaded.model.state_dict())


def test_augment_views_are_label_maps_and_seeded():
    lab = torch.as_tensor(contract_masks(8, 32, seed=1)).long()
    v1 = augment_views(lab, 32, torch.Generator().manual_seed(3))
    v2 = augment_views(lab, 32, torch.Generator().manual_seed(3))
    v3 = augment_views(lab, 32, torch.Generator().manual_seed(4))
    assert v1.shape == (8, 4, 32, 32) and torch.all(v1.sum(1) == 1)
    assert torch.equal(v1, v2) and not torch.equal(v1, v3)
    x = to_input(lab, 32)
    assert not torch.equal(v1, x)
    # views keep the anatomy: every structure present in a map survives its view (no structure is removed)
    assert torch.all((v1.sum((2, 3)) > 0) >= (x.sum((2, 3)) > 0))


def test_nt_xent_rewards_matching_views():
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    matched = nt_xent(z, z + 0.01 * torch.randn(16, 8), 0.2)
    unmatched = nt_xent(z, torch.randn(16, 8), 0.2)
    assert matched < 0.5 < unmatched


def test_default_objective_comes_from_dataset_metadata(register_plugin):
    from cardiobench.data.plugin import phantom

    assert default_config("phantom").objective == "pathology"  # keeps its shipped pathology evaluator
    assert default_config(None) == EvaluatorConfig()
    assert default_config("no-such-dataset") == EvaluatorConfig()

    def register_datasets(register):
        register("ssl-data", phantom, needs_data=False, evaluator_objective="ssl")
        register("plain-data", phantom, needs_data=False)

    register_plugin(SimpleNamespace(register_datasets=hookimpl(register_datasets)), "ssl-dataplug")
    assert default_config("ssl-data") == EvaluatorConfig(objective="ssl")
    assert default_config("plain-data").objective == "pathology"


def test_real_data_sets_get_the_ruler_the_study_chose():
    from cardiobench.plugins import registry

    meta = {c.name: c.metadata for c in registry("dataset")}
    for name in ("acdc", "acdc-h5"):  # the decision of the ruler study (docs/metrics.md)
        assert meta[name]["evaluator_objective"] == "ssl"
        assert default_config(name) == EvaluatorConfig(objective="ssl")
    assert "evaluator_objective" not in meta["phantom"]


def test_cli_objective_option():
    import json

    from cardiobench.testing.cli import invoke

    # the phantom's default objective is pathology: --objective pathology is its shipped evaluator
    result = invoke("evaluator", "info", "--dataset", "phantom", "--objective", "pathology", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["evaluator_id"] == "e6aae41485c9"
    # an SSL evaluator of the phantom is not cached in this fresh cache: info does not train, it says so
    result = invoke("evaluator", "info", "--dataset", "phantom", "--objective", "ssl")
    assert result.exit_code != 0 and "no evaluator for phantom" in result.stderr
    result = invoke("evaluator", "train", "--dataset", "phantom", "--objective", "ssl", "--ship")
    assert result.exit_code != 0 and "--ship writes phantom's default evaluator" in result.stderr
    result = invoke("evaluator", "info", "--dataset", "phantom", "--objective", "bogus")
    assert result.exit_code != 0 and "unknown evaluator objective" in result.stderr
