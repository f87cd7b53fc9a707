"""``cardiobench train --launcher torchrun``: the command line it execs, and its one-line errors."""

from __future__ import annotations

import sys

import pytest

from cardiobench.cli.train_cmd import torchrun_argv
from cardiobench.testing.cli import invoke


def test_torchrun_argv_keeps_every_other_argument():
    args = ["--threads", "1", "train", "--launcher", "torchrun", "--steps", "5", "--nproc-per-node=2", "--out", "x"]
    assert torchrun_argv(args, 2) == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node", "2", "-m", "cardiobench", "--threads", "1", "train",
                                      "--steps", "5", "--out", "x"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--launcher", "mpirun"], "unknown launcher 'mpirun'"),
    (["--nproc-per-node", "2"], "--nproc-per-node needs --launcher"),
    (["--launcher", "torchrun", "--nproc-per-node", "0"], "--nproc-per-node must be >= 1"),
])
def test_launcher_errors_are_one_line(tmp_path, extra, message):
    result = invoke("train", "--preset", "tiny", "--out", str(tmp_path), *extra)
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "checkpoint.pt").exists()


def test_launcher_inside_torchrun_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = invoke("train", "--preset", "tiny", "--out", str(tmp_path), "--launcher", "torchrun")
    assert result.exit_code == 2 and "inside torchrun" in result.output
