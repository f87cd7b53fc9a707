"""``cardiobench train`` and ``cardiobench sample`` end to end (tiny U-Net, tiny phantom, a few steps)."""

import json

import numpy as np
import pytest
import torch

from cardiobench.testing.cli import invoke

TRAIN = ["train", "--size", "tiny", "--resolution", "16", "--timesteps", "50", "--batch-size", "8",
         "--dataset-opt", "train_patients=1", "--dataset-opt", "test_patients=1", "--lr", "1e-3"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_then_sample(tmp_path):
    run = tmp_path / "run"
    result = invoke(*TRAIN, "--steps", "6", "--out", str(run), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["status"] == "trained" and info["step"] == 6 and info["spec"]["backbone_options"]["size"] == "tiny"
    assert (run / "checkpoint.pt").is_file() and (run / "loss_curve.png").is_file()

    again = invoke(*TRAIN, "--steps", "6", "--out", str(run))
    assert again.exit_code == 0 and "reused" in again.stdout

    more = invoke(*TRAIN, "--steps", "8", "--out", str(tmp_path / "more"), "--resume", str(run), "--json")
    assert more.exit_code == 0, more.output
    assert json.loads(more.stdout)["steps_run"] == 2

    out = tmp_path / "samples"
    result = invoke("sample", "--checkpoint", str(run / "checkpoint.pt"), "--sampler", "ddim", "--steps", "3",
                    "-n", "4", "--out", str(out), "--eta", "0.5", "--json")
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["num_samples"] == 4 and meta["sample_spec"]["sampler_options"] == {"eta": 0.5}
    with np.load(out / "samples.npz") as data:
        assert data["masks"].shape == (4, 16, 16) and data["masks"].dtype == np.uint8
    assert (out / "samples.png").is_file()

    table = invoke("sample", "--checkpoint", str(run), "--sampler", "ddpm", "--steps", "2", "-n", "2",
                   "--out", str(out))
    assert table.exit_code == 0 and "grid" in table.stdout, table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "--checkpoint", "{tmp}/missing.pt", "--out", "{tmp}/o"], "does not exist"),
        (["sample", "--checkpoint", "{tmp}/junk.pt", "--out", "{tmp}/o"], "cannot read checkpoint"),
        (["train", "--steps", "5", "--epochs", "2"], "train.steps and train.epochs are both set"),
        (["train", "--noise", "gausian", "--steps", "1"], "did you mean 'gaussian'"),
        (["train", "--loss", "l3", "--steps", "1"], "unknown loss"),
        (["train", "--size", "huge", "--steps", "1"], "unknown unet size"),
        (["train", "--backbone-opt", "oops", "--steps", "1"], "is not KEY=VALUE"),
        (["train", "--device", "cuda:7", "--steps", "1"] if not torch.cuda.is_available() else
         ["train", "--device", "tpu", "--steps", "1"], "device"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    result = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
