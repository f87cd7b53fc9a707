"""What a run records about where it ran; never fails."""

from __future__ import annotations

import subprocess

from cardiobench import __version__
from cardiobench.results import environment


def test_collect_environment_records_versions_device_and_plugins():
    env = environment.collect_environment("cpu", extra_key="x")
    assert env["cardiobench"] == __version__ and env["python"].count(".") == 2
    assert env["torch"] and env["numpy"]
    assert env["device"]["type"] == "cpu" and env["device"]["cores"] >= 1
    assert env["plugins"].get("cardiobench") == __version__
    assert env["extra_key"] == "x"
    assert env["git"] is None or len(env["git"]["commit"]) == 40


def test_no_git_is_not_an_error(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert environment.git_revision() is None
    assert environment.collect_environment()["git"] is None


def test_not_a_checkout(tmp_path):
    assert environment.git_revision(tmp_path) is None


def test_cuda_device_without_cuda_does_not_fail():
    info = environment.device_info("cuda:0")
    assert info["type"] == "cuda"  # name filled only where CUDA works
