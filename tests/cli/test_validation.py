"""Bad input is refused before any work: ``--data-root`` that does not fit the data set, non-finite or
out-of-range numbers, too few samples, a config file that is not UTF-8. One line on stderr, exit code 2.

Training, sampling and evaluation are replaced by functions that fail the test if they are called, so
each refusal is shown to happen up front (and the tests take a fraction of a second each).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from cardiobench.engine import pipeline
from cardiobench.errors import CardiobenchError
from cardiobench.testing.cli import invoke

HUGE_SEED = "99999999999999999999999"


class Captured(CardiobenchError):
    """Raised by the stand-in of ``pipeline.execute``: the plan got that far, and is kept for the test."""


def module(name: str):
    """The module itself (``cardiobench.engine.train`` is also the name of a function of the package)."""
    return importlib.import_module(name)


def _forbid(*_args, **_kwargs):
    raise AssertionError("work started although the input should have been refused up front")


@pytest.fixture
def no_work(monkeypatch):
    """Training, sampling, evaluation and data loading all fail the test if called."""
    sample_mod, train_mod = module("cardiobench.engine.sample"), module("cardiobench.engine.train")
    metrics_pkg, io_mod = module("cardiobench.metrics"), module("cardiobench.metrics.io")
    evaluator_mod = module("cardiobench.metrics.evaluator")

    monkeypatch.setattr(pipeline, "execute", _forbid)
    monkeypatch.setattr(train_mod, "train", _forbid)
    monkeypatch.setattr(sample_mod, "sample", _forbid)
    monkeypatch.setattr(sample_mod, "load_model", _forbid)
    monkeypatch.setattr(metrics_pkg, "evaluate_generation", _forbid)
    monkeypatch.setattr(io_mod, "read_masks", _forbid)
    monkeypatch.setattr(evaluator_mod, "load_splits", _forbid)
    monkeypatch.setattr(evaluator_mod, "get_evaluator", _forbid)


@pytest.fixture
def captured_plans(monkeypatch):
    """``pipeline.execute`` records the plan and stops the command with exit code 2."""
    plans: list[pipeline.RunPlan] = []

    def capture(plan, *_args, **_kwargs):
        plans.append(plan)
        raise Captured("captured")

    monkeypatch.setattr(pipeline, "execute", capture)
    return plans


def refused(result, *needles: str) -> str:
    """The one error line of a refused command; every needle must be in it."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output and not lines[0].startswith("Error: unexpected "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def reached_execute(result) -> None:
    """The command got as far as the stand-in that stops it (after its progress header)."""
    assert result.exit_code == 2 and result.stderr.strip().endswith("Error: captured"), result.output


def _run(tmp_path, *args: str):
    return invoke("run", "--preset", "tiny", "--results", str(tmp_path / "r.db"), "--no-gif", *args)


# -- item 2: --data-root ----------------------------------------------------------------------------
def test_run_data_root_alone_selects_the_data_set_that_reads_files(tmp_path, captured_plans):
    root = tmp_path / "acdc"
    root.mkdir()
    result = _run(tmp_path, "--data-root", str(root))
    reached_execute(result)
    [plan] = captured_plans
    assert plan.train.dataset == "acdc" and plan.data_root == str(root)  # not the preset's phantom


def test_run_data_root_via_set_follows_the_same_rule(tmp_path, captured_plans):
    root = tmp_path / "acdc"
    root.mkdir()
    reached_execute(_run(tmp_path, "--set", f"data.data_root={str(root)!r}"))
    assert captured_plans[0].train.dataset == "acdc"


@pytest.mark.parametrize("command", ["run", "compare"])
def test_data_root_with_a_data_set_that_reads_no_files_is_refused(tmp_path, no_work, command):
    root = tmp_path / "acdc"
    root.mkdir()
    result = invoke(command, "--preset", "tiny", "--dataset", "phantom", "--data-root", str(root),
                    "--results", str(tmp_path / "r.db"))
    refused(result, "--data-root", str(root), "'phantom'", "takes no data root", "drop --data-root", "--dataset")


def test_data_root_with_phantom_from_a_config_file_is_refused(tmp_path, no_work):
    cfg = tmp_path / "mine.toml"
    cfg.write_text(f'[data]\ndataset = "phantom"\ndata_root = {str(tmp_path)!r}\n')
    refused(_run(tmp_path, "--config", str(cfg)), "data.data_root", "'phantom'", "takes no data root")


@pytest.mark.parametrize("kind", ["file", "missing"])
@pytest.mark.parametrize("command", ["run", "compare"])
def test_run_data_root_that_is_not_a_folder_is_refused(tmp_path, no_work, command, kind):
    path = tmp_path / "plain.txt"
    if kind == "file":
        path.write_text("not a folder")
    result = invoke(command, "--preset", "tiny", "--data-root", str(path), "--results", str(tmp_path / "r.db"))
    refused(result, "--data-root", str(path), "is a file, not a folder" if kind == "file" else "does not exist")


@pytest.mark.parametrize("kind", ["phantom", "file"])
def test_train_data_root_is_checked_before_training(tmp_path, no_work, kind):
    path = tmp_path / "plain.txt"
    path.write_text("x")
    args = ["train", "--steps", "1", "--data-root", str(path if kind == "file" else tmp_path)]
    if kind == "phantom":
        args += ["--dataset", "phantom"]
    line = refused(invoke(*args), "--data-root")
    assert ("takes no data root" in line) if kind == "phantom" else ("is a file, not a folder" in line)


def test_train_data_root_alone_selects_acdc(tmp_path, monkeypatch):
    seen = {}

    def fake_train(spec, *_args, **kwargs):
        seen.update(dataset=spec.dataset, data_root=kwargs.get("data_root"))
        raise Captured("captured")

    monkeypatch.setattr(module("cardiobench.engine.train"), "train", fake_train)
    refused(invoke("train", "--steps", "1", "--size", "tiny", "--resolution", "16", "--data-root", str(tmp_path)),
            "captured")
    assert seen == {"dataset": "acdc", "data_root": str(tmp_path)}


@pytest.mark.parametrize("extra", [["--dataset", "phantom"], []])
def test_evaluate_data_root_is_checked_before_reading_samples(tmp_path, no_work, extra):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    root = tmp_path if extra else plain
    line = refused(invoke("evaluate", "--samples", str(tmp_path / "s.npz"), "--data-root", str(root), *extra),
                   "--data-root", str(root))
    assert ("takes no data root" in line) if extra else ("is a file, not a folder" in line)


@pytest.fixture
def captured_evaluation(tmp_path, monkeypatch):
    """``(samples file, seen)``: ``evaluate_generation`` records its data set and options in ``seen`` and stops."""
    seen = {}

    def fake_evaluate(masks, dataset, **kwargs):
        seen.update(dataset=dataset, data_options=kwargs.get("data_options"))
        raise Captured("captured")

    monkeypatch.setattr(module("cardiobench.metrics"), "evaluate_generation", fake_evaluate)
    samples = tmp_path / "s.npz"
    np.savez(samples, masks=np.zeros((4, 16, 16), np.uint8))
    return samples, seen


def test_evaluate_data_root_alone_selects_acdc(tmp_path, captured_evaluation):
    samples, seen = captured_evaluation
    refused(invoke("evaluate", "--samples", str(samples), "--data-root", str(tmp_path)), "captured")
    assert seen == {"dataset": "acdc", "data_options": {"data_root": str(tmp_path)}}


@pytest.mark.parametrize("sub", ["train", "info"])
def test_evaluator_data_root_is_checked_up_front(tmp_path, no_work, sub):
    refused(invoke("evaluator", sub, "--dataset", "phantom", "--data-root", str(tmp_path)),
            "--data-root", "'phantom'", "takes no data root")
    refused(invoke("evaluator", sub, "--data-root", str(tmp_path / "missing")), "--data-root", "does not exist")


# -- item 9: validation before work ----------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_run_non_finite_guidance_scale_is_refused_before_training(tmp_path, no_work, value):
    refused(_run(tmp_path, "--conditioning", "classifier-free", "--guidance-scale", value),
            "--guidance-scale", "finite", value)
    refused(_run(tmp_path, "--conditioning", "classifier-free", "--set", f"conditioning.guidance_scale={value}"),
            "conditioning.guidance_scale", "finite")


def test_compare_non_finite_guidance_scale_is_refused(tmp_path, no_work):
    result = invoke("compare", "--preset", "tiny", "--conditioning", "classifier-free", "--guidance-scale", "1,nan",
                    "--results", str(tmp_path / "r.db"))
    refused(result, "--guidance-scale", "finite")


def test_run_too_few_samples_for_the_metrics_is_refused_before_training(tmp_path, no_work):
    refused(_run(tmp_path, "--num-samples", "1"), "--num-samples", ">= 2", "got 1")
    refused(_run(tmp_path, "--set", "eval.num_samples=1"), "eval.num_samples", ">= 2")


def test_run_seed_out_of_range_is_refused(tmp_path, no_work):
    refused(_run(tmp_path, "--seed", HUGE_SEED), "--seed", "<= 4294967295", HUGE_SEED)
    refused(_run(tmp_path, "--seed", "-1"), "--seed", ">= 0")
    refused(_run(tmp_path, "--set", f"sample.seed={HUGE_SEED}"), "sample.seed", "<= 4294967295")


def test_run_resolution_out_of_range_is_refused(tmp_path, no_work):
    refused(_run(tmp_path, "--set", "data.resolution=100000"), "data.resolution", "<= 512", "100000")


def test_run_config_that_is_not_utf8_is_one_line_naming_the_file(tmp_path, no_work):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[preset]\ndescription = "caf\xe9"\n'.encode("latin-1"))
    refused(_run(tmp_path, "--config", str(bad)), str(bad), "UTF-8")
    refused(invoke("run", "--preset", str(bad), "--results", str(tmp_path / "r.db")), str(bad), "UTF-8")


def test_run_unknown_noise_option_is_reported_as_a_noise_process_option(tmp_path, no_work):
    line = refused(_run(tmp_path, "--set", "diffusion.options.foo=1"), "noise process 'gaussian'", "foo")
    assert "sampler" not in line.split(" - ")[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--seed", HUGE_SEED], ["--seed", "<= 4294967295"]),
        (["--data-seed", HUGE_SEED], ["--data-seed", "<= 4294967295"]),
        (["--resolution", "100000"], ["--resolution", "<= 512"]),
        (["--grad-clip", "nan"], ["--grad-clip", "finite"]),
        (["--lr", "inf"], ["--lr", "finite"]),
        (["--noise-opt", "foo=1"], ["noise process 'gaussian'", "foo"]),
    ],
)
def test_train_bad_numbers_are_refused_before_training(no_work, args, needles):
    refused(invoke("train", "--steps", "1", "--size", "tiny", "--resolution", "16", *args), *needles)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--guidance-scale", "nan"], ["--guidance-scale", "finite"]),
        (["--eta", "inf"], ["--eta", "finite"]),
        (["--seed", HUGE_SEED], ["--seed", "<= 4294967295"]),
        (["--num-samples", "0"], ["--num-samples", ">= 1"]),
    ],
)
def test_sample_bad_numbers_are_refused_before_loading_the_model(tmp_path, no_work, args, needles):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"not read")
    refused(invoke("sample", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), *args), *needles)


@pytest.mark.parametrize("args", [
    ["classifier", "train", "--dataset", "phantom", "--data-root", "{tmp}"],
    ["data", "info", "--dataset", "phantom", "--data-root", "{tmp}"],
    ["data", "preview", "--dataset", "phantom", "--data-root", "{tmp}", "--out", "{tmp}/g.png"],
])
def test_data_root_beside_the_phantom_is_refused_by_classifier_and_data_commands(tmp_path, args):
    result = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "takes no data root" in lines[0], lines


def test_out_naming_an_existing_file_is_refused_before_work(tmp_path, monkeypatch):
    """`sample --out FILE` and `train --out FILE`: one line naming the path, before sampling or training."""
    sample_mod = importlib.import_module("cardiobench.engine.sample")
    train_mod = importlib.import_module("cardiobench.engine.train")

    def never(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(sample_mod, "sample", never)
    monkeypatch.setattr(train_mod, "train", never)
    (tmp_path / "taken").write_text("x")
    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"x")
    for args in (["sample", "--checkpoint", str(ckpt), "--out", str(tmp_path / "taken")],
                 ["train", "--steps", "1", "--out", str(tmp_path / "taken")]):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(tmp_path / "taken") in lines[0] and "is a file" in lines[0], lines


def test_unwritable_cache_is_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "cachefile" / "sub"))
    result = invoke("train", "--steps", "1")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cachefile" in lines[0] and "CARDIOBENCH_CACHE_DIR" in lines[0], lines


def test_sample_with_a_junk_checkpoint_leaves_no_empty_out_folder(tmp_path):
    junk = tmp_path / "ck.pt"
    junk.write_text("junk\n")
    out = tmp_path / "samples"
    result = invoke("sample", "--checkpoint", str(junk), "--out", str(out))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "cannot read checkpoint" in result.stderr and not out.exists()


# -- issue 12: --strict-ruler refuses a flagged evaluator before any sampling -------------------------------
FLAG = "accuracy 0.2 vs chance 0.2; ordering fails at real < mismatched"


def _evaluator(valid: bool):
    """A tiny untrained evaluator carrying a validity record (flagged, or valid)."""
    from cardiobench.metrics.evaluator import Evaluator, EvaluatorConfig, PathologyCNN

    cfg = EvaluatorConfig(size=16, width=4, features=8, epochs=1)
    ordering = {"real": 0.5, "mismatched": 3.0, "damaged": 12.0, "blobs": 44.0} if valid else dict.fromkeys(
        ("real", "mismatched", "damaged", "blobs"), 0.0)
    record = {"version": 1, "valid": valid, "flag": None if valid else FLAG, "accuracy": 0.8 if valid else 0.2,
              "chance": 0.2, "ordering": ordering}
    return Evaluator(model=PathologyCNN(cfg).eval(), config=cfg, meta={"validity": record, "accuracy": {}})


@pytest.fixture
def ruler(monkeypatch, no_work):
    """``get_evaluator`` returns the evaluator the test sets (``ruler["valid"] = True/False``); all else fails."""
    state: dict = {"valid": False, "calls": 0}

    def fake_get_evaluator(*_args, **_kwargs):
        state["calls"] += 1
        return _evaluator(state["valid"])

    monkeypatch.setattr(module("cardiobench.metrics.evaluator"), "get_evaluator", fake_get_evaluator)
    return state


def test_run_strict_ruler_refuses_a_flagged_evaluator_before_training_or_sampling(tmp_path, ruler):
    line = refused(_run(tmp_path, "--strict-ruler"), "--strict-ruler", "FLAGGED", "ordering fails at real < mismatched",
                   "FID is not meaningful")
    assert ruler["calls"] == 1 and line.startswith("Error: --strict-ruler: evaluator ")


def test_run_strict_ruler_lets_a_valid_evaluator_through(tmp_path, ruler, captured_plans):
    ruler["valid"] = True
    reached_execute(_run(tmp_path, "--strict-ruler"))
    assert ruler["calls"] == 1 and len(captured_plans) == 1


def test_run_without_strict_ruler_does_not_check_up_front(tmp_path, ruler, captured_plans):
    reached_execute(_run(tmp_path))  # a flagged ruler is shown in the summary, not refused
    assert ruler["calls"] == 0


def test_compare_strict_ruler_refuses_before_any_run(tmp_path, ruler):
    result = invoke("compare", "--preset", "tiny", "--sampler", "ddpm,ddim", "--results", str(tmp_path / "r.db"),
                    "--strict-ruler")
    refused(result, "--strict-ruler", "FLAGGED")
    assert ruler["calls"] == 1  # both runs share the data set: one check


def test_evaluate_strict_ruler_refuses_before_reading_samples(tmp_path, ruler):
    refused(invoke("evaluate", "--samples", str(tmp_path / "s.npz"), "--strict-ruler"), "--strict-ruler", "FLAGGED")
    assert ruler["calls"] == 1


def test_evaluate_strict_ruler_skips_the_check_without_fidelity_metrics(tmp_path, ruler):
    result = invoke("evaluate", "--samples", str(tmp_path / "s.npz"), "--strict-ruler", "--metrics", "anatomy")
    assert result.exit_code != 0 and "work started" in result.output  # read_masks is reached: no ruler needed
    assert ruler["calls"] == 0


def test_evaluator_info_shows_a_flagged_ruler_in_one_line(ruler):
    result = invoke("evaluator", "info", "--dataset", "phantom")
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("ruler: ")]
    assert len(lines) == 1 and "FLAGGED: " + FLAG + " — FID is not meaningful" in lines[0], result.stdout


def test_evaluate_dataset_opt_reaches_the_data_set_and_a_bad_one_is_one_line(tmp_path, captured_evaluation):
    samples, seen = captured_evaluation
    refused(invoke("evaluate", "--samples", str(samples), "--data-root", str(tmp_path), "--dataset-opt",
                   "split=ssl4mis", "--dataset-opt", "spacing_mm=1.5"), "captured")
    assert seen == {"dataset": "acdc", "data_options": {"split": "ssl4mis", "spacing_mm": 1.5,
                                                        "data_root": str(tmp_path)}}
    refused(invoke("evaluate", "--samples", str(samples), "--dataset-opt", "split"), "--dataset-opt 'split' is not "
            "KEY=VALUE")
