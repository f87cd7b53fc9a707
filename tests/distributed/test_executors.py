"""``compare --executor slurm|local`` through submitit: settings, errors, and a 2 x 2 tiny compare as local jobs."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cardiobench.errors import CardiobenchError
from cardiobench.executors import ExecutorSettings, RunJob, TrainJob, make_executor
from cardiobench.results.store import ResultStore
from cardiobench.testing.cli import invoke

COMPARE = ("compare", "--preset", "tiny", "--noise", "gaussian,blurring", "--sampler", "ddpm,ddim")


def test_slurm_flags_become_submitit_parameters(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("srun", "sbatch"):  # submitit only checks that Slurm is there; nothing is submitted
        (fake / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake / tool).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    settings = ExecutorSettings("slurm", tmp_path / "logs", partition="gpu", gpus_per_job=2, time_min=90,
                                array_parallelism=3, options={"slurm_account": "abc", "cpus_per_task": 8})
    params = make_executor(settings)._executor.parameters
    assert params["partition"] == "gpu" and params["time"] == 90 and params["array_parallelism"] == 3
    assert params["gpus_per_node"] == 2 and params["account"] == "abc" and params["cpus_per_task"] == 8


def test_executor_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    with pytest.raises(CardiobenchError, match="srun"):
        make_executor(ExecutorSettings("slurm", tmp_path))
    with pytest.raises(CardiobenchError, match="unknown executor 'pbs'"):
        make_executor(ExecutorSettings("pbs", tmp_path))
    with pytest.raises(CardiobenchError, match="bad --executor-opt for local"):
        make_executor(ExecutorSettings("local", tmp_path, options={"no_such_parameter": 1}))
    result = invoke(*COMPARE, "--partition", "gpu", "--results", str(tmp_path / "r.db"))
    assert result.exit_code == 2 and "need --executor" in result.output and result.output.count("\n") == 1


def _board(db) -> list[tuple]:
    lb = invoke("leaderboard", "--results", str(db), "--format", "json")
    assert lb.exit_code == 0, lb.output
    rows = [row for board in json.loads(lb.stdout)["boards"] for row in board["rows"]]
    return sorted((r["noise"], r["sampler"], json.dumps(r["metrics"], sort_keys=True)) for r in rows)


@pytest.mark.slow
def test_local_executor_compare_trains_each_model_once_and_matches_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "cache-jobs"))
    jobs_db = tmp_path / "jobs" / "results.db"
    result = invoke(*COMPARE, "--executor", "local", "--results", str(jobs_db), "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert "submit 2 training job(s) (local)" in result.stderr and "submit 4 run job(s)" in result.stderr
    statuses = sorted(r["train_status"] for r in runs)
    assert statuses == ["reused", "reused", "trained", "trained"]  # 2 models, each trained once, by its job
    for r in runs:  # each run job wrote its own store next to its outputs
        assert ResultStore(jobs_db.parent / "runs" / r["spec_hash"][:12] / "results.db").count() == 1
    assert ResultStore(jobs_db).count() == 4

    again = invoke(*COMPARE, "--executor", "local", "--results", str(jobs_db), "--json")
    assert again.exit_code == 0, again.output  # nothing left to do: no job, nothing added
    assert "submit" not in again.stderr and ResultStore(jobs_db).count() == 4
    assert {r["train_status"] for r in json.loads(again.stdout)["runs"]} == {"skipped"}

    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "cache-here"))  # train everything again, here
    here_db = tmp_path / "here" / "results.db"
    local = invoke(*COMPARE, "--results", str(here_db))
    assert local.exit_code == 0, local.output
    assert _board(jobs_db) == _board(here_db) and len(_board(here_db)) == 4


def test_compare_refuses_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = invoke("compare", "--preset", "tiny", "--results", str(tmp_path / "r.db"))
    assert result.exit_code == 2 and "does not run under torchrun" in result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "r.db").exists()


def test_jobs_requeue_themselves_with_the_same_arguments():
    """On preemption submitit calls ``job.checkpoint(*args)`` and resubmits what it returns: the same call, which
    continues the training from its checkpoint and skips finished runs."""
    for job, args in ((TrainJob(), ("plan",)), (RunJob(), ("plan", "out", False, False))):
        again = job.checkpoint(*args)
        assert again.function is job and again.args == args
