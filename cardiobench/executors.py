"""``compare --executor slurm|local``: the runs of a compare as jobs through submitit (Slurm job arrays, or local).

A compare fans out in two job arrays, then merges:

1. **train**: one job per distinct model (train spec hash), so each model is trained once, as in-process;
2. **run**: one job per run (sample, evaluate, store), each writing its *own* results store next to its outputs
   (``OUT/runs/<run hash[:12]>/results.db``): SQLite over a network file system is not safe for many writers;
3. **merge**: every job's store into the compare's store (``cardiobench.results.store.merge_stores``; idempotent,
   a run found twice is reported, not duplicated).

Runs the compare's store already holds are not submitted (unless forced). Jobs are ``submitit.helpers.Checkpointable``:
on preemption or a time limit Slurm signals the job, submitit requeues it, and the requeued job continues the
training from its latest checkpoint (written at least once a minute) and skips what is finished. ``executor``
``local`` runs the same jobs through submitit's local executor (subprocesses on this machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from cardiobench.engine import pipeline
from cardiobench.errors import CardiobenchError
from cardiobench.progress import Progress, resolve
from cardiobench.results.report import stored_reference
from cardiobench.results.store import MergeReport, ResultStore, merge_stores

__all__ = ["EXECUTORS", "ExecutorSettings", "FanOut", "RunJob", "TrainJob", "job_store_path", "make_executor",
           "run_jobs"]

EXECUTORS = ("local", "slurm")


@dataclass
class ExecutorSettings:
    """Where and how jobs run: ``kind`` (``local`` or ``slurm``), submitit's log ``folder``, the Slurm ``partition``,
    GPUs per job, the time limit in minutes, how many array tasks run at once, and any other submitit parameter
    (``options``, from ``--executor-opt key=value``: e.g. ``slurm_account``, ``cpus_per_task``, ``mem_gb``)."""

    kind: str
    folder: Path
    partition: str | None = None
    gpus_per_job: int | None = None
    time_min: int | None = None
    array_parallelism: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def parameters(self) -> dict[str, Any]:
        """The submitit ``update_parameters`` keyword arguments (AutoExecutor names)."""
        params: dict[str, Any] = {"name": "cardiobench"}
        if self.partition is not None:
            params["slurm_partition"] = self.partition
        if self.gpus_per_job is not None:
            params["gpus_per_node"] = self.gpus_per_job
        if self.time_min is not None:
            params["timeout_min"] = self.time_min
        if self.array_parallelism is not None:
            params["slurm_array_parallelism"] = self.array_parallelism
        return {**params, **self.options}


def make_executor(settings: ExecutorSettings) -> submitit.AutoExecutor:
    """A submitit executor of ``settings``; one-line errors for an unknown kind, no Slurm, or a bad parameter."""
    if settings.kind not in EXECUTORS:
        raise CardiobenchError(f"unknown executor {settings.kind!r}", f"use one of: {', '.join(EXECUTORS)}")
    for flag, value in (("--gpus-per-job", settings.gpus_per_job), ("--time", settings.time_min),
                        ("--array-parallelism", settings.array_parallelism)):
        if value is not None and value < (0 if flag == "--gpus-per-job" else 1):
            raise CardiobenchError(f"{flag} must be {'>= 0' if flag == '--gpus-per-job' else '>= 1'}, got {value}")
    try:
        executor = submitit.AutoExecutor(folder=settings.folder, cluster=settings.kind)
    except RuntimeError as exc:  # no srun on this machine
        raise CardiobenchError(f"--executor {settings.kind}: {exc}", "use --executor local on this machine") from None
    try:
        executor.update_parameters(**settings.parameters())
    except (ValueError, NameError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CardiobenchError(f"bad --executor-opt for {settings.kind}: {first}",
                               "see submitit's AutoExecutor parameters (e.g. slurm_account, cpus_per_task, mem_gb)"
                               ) from None
    return executor


def job_store_path(out_root: str | os.PathLike, plan: pipeline.RunPlan) -> Path:
    """The results store a run job writes: next to the run's outputs."""
    return Path(out_root) / "runs" / plan.spec_hash[:12] / "results.db"


class TrainJob(submitit.helpers.Checkpointable):
    """Train (or continue, or reuse) one plan's model; requeued on preemption, it continues its checkpoint."""

    def __call__(self, plan: pipeline.RunPlan) -> str:
        _, status = pipeline._ensure_trained(plan, retrain=False, progress=resolve(None))
        pipeline.ruler_check(plan)  # the run jobs then find the evaluator in the cache instead of each building it
        return status


class RunJob(submitit.helpers.Checkpointable):
    """One run (its model already trained: reused), stored in its own results store; returns the record's dict."""

    def __call__(self, plan: pipeline.RunPlan, out_root: str, force: bool, gif: bool) -> dict[str, Any]:
        store = ResultStore(job_store_path(out_root, plan))
        outcome = pipeline.execute(plan, store, Path(out_root), force=force, gif=gif)
        return {"record": outcome.record.to_dict(), "train_status": outcome.train_status}


@dataclass
class FanOut:
    """What ``run_jobs`` did: every plan's outcome (its record read back from the merged store), the merge report,
    and how many train and run jobs were submitted."""

    outcomes: list[pipeline.RunOutcome]
    merge: MergeReport
    train_jobs: int
    run_jobs: int


def run_jobs(plans: list[pipeline.RunPlan], store: ResultStore, out_root: str | os.PathLike,
             settings: ExecutorSettings, *, force: bool = False, gif: bool = False,
             progress: Progress | None = None) -> FanOut:
    """Run ``plans`` as jobs (see the module docstring) and merge their stores into ``store``."""
    progress = resolve(progress)
    store.check_writable()
    out_root = Path(out_root)
    todo = [p for p in plans if force or store.find(p.spec_hash) is None]
    models: dict[str, pipeline.RunPlan] = {}
    for plan in todo:
        models.setdefault(plan.train_hash, plan)
    executor = make_executor(settings)
    trained: dict[str, str] = {}
    if models:
        progress.log(f"[bold]submit[/] {len(models)} training job(s) ({settings.kind})")
        jobs = executor.map_array(TrainJob(), list(models.values()))
        trained = {h: _result(job, "training") for h, job in zip(models, jobs, strict=True)}
    run_results: dict[str, dict[str, Any]] = {}
    if todo:
        progress.log(f"[bold]submit[/] {len(todo)} run job(s) ({settings.kind})")
        jobs = executor.map_array(RunJob(), todo, [str(out_root)] * len(todo), [force] * len(todo),
                                  [gif] * len(todo))
        run_results = {p.spec_hash: _result(job, p.label) for p, job in zip(todo, jobs, strict=True)}
    sources = [ResultStore(job_store_path(out_root, p)) for p in todo]
    report = merge_stores(store, [s for s in sources if s.exists()])
    progress.log(f"[bold]merge[/] {len(sources)} job store(s) into {store.path}: {report.added} added, "
                 f"{report.already} already there, {len(report.conflicts)} conflict(s)")
    outcomes, seen = [], set()
    for plan in plans:
        record = store.find(plan.spec_hash)
        if record is None:
            raise CardiobenchError(f"the job of {plan.label} finished without a stored result",
                                   f"see the job logs in {settings.folder}")
        if plan.spec_hash not in run_results:
            status = "skipped"
        elif plan.train_hash in trained and plan.train_hash not in seen:  # the plan whose job trained the model
            status = trained[plan.train_hash]
        else:
            status = run_results[plan.spec_hash]["train_status"]
        seen.add(plan.train_hash)
        outcomes.append(pipeline.RunOutcome(plan, record, status, out_root / "runs" / plan.spec_hash[:12],
                                            reference=stored_reference(record, out_root)))
    return FanOut(outcomes, report, len(models), len(todo))


def _result(job: Any, what: str) -> Any:
    """A job's result; a failed job is one line naming it and its log."""
    try:
        return job.result()
    except Exception as exc:  # submitit's FailedJobError / UncompletedJobError carry the job's traceback
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        last = lines[-1] if lines else type(exc).__name__
        raise CardiobenchError(f"job {job.job_id} ({what}) failed: {last}",
                               f"its log: {getattr(job, 'paths', None) and job.paths.stderr}") from None
