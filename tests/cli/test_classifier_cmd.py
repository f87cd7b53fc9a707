"""``cardiobench classifier train|info`` (tiny preset, tiny classifier, a temporary cache)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cardiobench.conditioning.classifier import classifier_spec_for
from cardiobench.config import resolve_config
from cardiobench.engine.pipeline import train_spec_from_config
from cardiobench.paths import cache_dir
from cardiobench.testing.cli import invoke

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = ("classifier", "train", "--preset", "tiny", "--size", "tiny", "--steps", "4", "--device", "cpu")


def test_train_writes_the_cached_classifier_of_the_preset_and_reuses_it():
    result = invoke(*ARGS, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = classifier_spec_for(train_spec_from_config(resolve_config("tiny")), size="tiny", steps=4)
    assert report["status"] == "trained" and report["spec_hash"] == expected.hash()
    assert Path(report["path"]) == cache_dir("classifiers") / f"{expected.hash()}.pt"
    assert report["spec"]["noise_options"]["num_timesteps"] == 20 and report["spec"]["resolution"] == 16
    assert set(report["accuracy"]["buckets"]) == {"0-4", "5-9", "10-14", "15-19"}
    assert torch.load(report["path"], weights_only=True)["spec_hash"] == expected.hash()

    again = invoke(*ARGS, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "reused"

    table = invoke(*ARGS)
    assert table.exit_code == 0, table.output
    for text in ("reused the cached classifier", "0-4", "15-19", "uniform t", expected.hash()[:16]):
        assert text in table.stdout


def test_noise_option_and_config_options_select_the_classifier():
    blur = invoke(*ARGS, "--noise", "blurring", "--json")
    assert blur.exit_code == 0, blur.output
    spec = json.loads(blur.stdout)["spec"]
    assert spec["noise"] == "blurring" and spec["noise_options"]["image_size"] == 16
    # the size and steps of a classifier-guidance config are the defaults
    res = invoke("classifier", "train", "--preset", "tiny", "--device", "cpu", "--json",
                 "--set", "conditioning.method=classifier-guidance",
                 "--set", "conditioning.options.classifier_size=tiny",
                 "--set", "conditioning.options.classifier_steps=3")
    assert res.exit_code == 0, res.output
    spec = json.loads(res.stdout)["spec"]
    assert (spec["size"], spec["steps"]) == ("tiny", 3)


def test_info_describes_a_file_and_rejects_missing_or_corrupt_ones(tmp_path):
    path = json.loads(invoke(*ARGS, "--json").stdout)["path"]
    info = invoke("classifier", "info", path, "--json")
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["path"] == path
    text = invoke("classifier", "info", path)
    assert text.exit_code == 0 and "test-split accuracy" in text.stdout

    missing = invoke("classifier", "info", str(tmp_path / "nope.pt"))
    assert missing.exit_code == 2
    assert missing.stderr.strip().count("\n") == 0 and "nope.pt does not exist" in missing.stderr
    assert "cardiobench classifier train" in missing.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    corrupt = invoke("classifier", "info", str(bad))
    assert corrupt.exit_code == 2 and corrupt.stderr.strip().count("\n") == 0
    assert "cannot read classifier checkpoint" in corrupt.stderr


def test_bad_options_are_one_line_errors():
    res = invoke("classifier", "train", "--preset", "tiny", "--size", "huge")
    assert res.exit_code == 2 and "unknown classifier size 'huge'" in res.stderr
    assert res.stderr.strip().count("\n") == 0
    res = invoke("classifier", "train", "--preset", "tiny", "--steps", "0")
    assert res.exit_code == 2 and "steps" in res.stderr
