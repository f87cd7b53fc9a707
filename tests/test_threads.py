"""The thread policy (cardiobench.threads) and the CLI's --threads / CARDIOBENCH_THREADS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from cardiobench import cli, threads
from cardiobench.errors import CardiobenchError
from cardiobench.hookspecs import hookimpl
from cardiobench.threads import ThreadDecision, choose_threads, thread_policy

THREAD_VARS = ("CARDIOBENCH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")


@pytest.fixture
def clean_env(monkeypatch):
    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)


def decide(option=None, env=None, **machine):
    machine = {"affinity": 2, "quota": None, **machine}
    return choose_threads(option, {} if env is None else env, **machine)


# -- the decision -------------------------------------------------------------------------------------------
def test_auto_uses_every_cpu_of_the_affinity_mask():
    d = decide()
    assert (d.threads, d.source, d.default, d.cpus, d.lowered) == (2, "auto", 2, 2, False)
    assert decide(affinity=6).threads == 6


def test_a_cpu_quota_caps_the_threads():
    d = decide(affinity=8, quota=2.0)
    assert (d.threads, d.cpus, d.default, d.lowered) == (2, 2, 8, True)
    assert decide(affinity=8, quota=1.5).threads == 2  # a fraction of a CPU still runs a thread
    assert decide(affinity=8, quota=0.2).threads == 1
    assert decide(affinity=2, quota=16.0).threads == 2  # the mask caps too


def test_this_machines_facts_give_a_sane_choice():
    d = choose_threads(None, {})
    assert d.threads == d.cpus and 1 <= d.cpus <= d.default == threads.affinity_cpus()


def test_explicit_choices_win_in_order():
    env = {"CARDIOBENCH_THREADS": "3", "OMP_NUM_THREADS": "4"}
    assert (decide(5, env, quota=1.0).threads, decide(5, env).source) == (5, "--threads")
    assert (decide(None, env, quota=1.0).threads, decide(None, env).source) == (3, "CARDIOBENCH_THREADS")
    d = decide(None, {"OMP_NUM_THREADS": "4"}, quota=1.0)
    assert (d.threads, d.source, d.lowered) == (4, "OMP_NUM_THREADS", False)
    assert decide(None, {"MKL_NUM_THREADS": "3"}, quota=1.0).source == "MKL_NUM_THREADS"
    assert decide(None, {"CARDIOBENCH_THREADS": " "}, quota=1.0).source == "auto"  # empty = unset


def test_explicit_values_above_the_cpu_count_are_kept():
    assert decide(16).threads == 16


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", ""])
def test_bad_counts_are_one_line_errors(bad):
    with pytest.raises(CardiobenchError) as exc:
        decide(bad)
    assert "--threads must be a whole number of threads >= 1" in str(exc.value) and "\n" not in str(exc.value)
    if bad.strip():
        with pytest.raises(CardiobenchError, match="CARDIOBENCH_THREADS must be a whole number"):
            decide(None, {"CARDIOBENCH_THREADS": bad})


def test_cgroup_quota(tmp_path):
    assert threads.cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) == 2.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpu_limit(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    assert threads.cgroup_cpu_limit(v1) == 1.0


def test_machine_facts_of_this_machine_are_sane():
    assert threads.affinity_cpus() >= 1
    quota = threads.cgroup_cpu_limit()
    assert quota is None or quota > 0


# -- the one-line notice ------------------------------------------------------------------------------------
def test_notice_only_when_auto_lowered_threads_and_applied():
    lowered = ThreadDecision(2, "auto", 8, 2, applied=True)
    text = lowered.notice()
    assert "\n" not in text and text.startswith("Note: using 2 CPU threads instead of 8 (the CPU quota")
    assert "--threads N" in text and "CARDIOBENCH_THREADS=N" in text
    assert ThreadDecision(1, "auto", 2, 1, applied=True).notice().startswith("Note: using 1 CPU thread instead")
    assert ThreadDecision(2, "auto", 8, 2, applied=False).notice() == ""  # an imported torch is left alone
    assert ThreadDecision(1, "--threads", 2, 2, applied=True).notice() == ""  # asked for
    assert ThreadDecision(2, "auto", 2, 2, applied=True).notice() == ""


# -- applying it --------------------------------------------------------------------------------------------
def test_policy_sets_passive_wait_and_threads_before_torch_then_restores(monkeypatch):
    monkeypatch.setattr(threads, "_torch_loaded", lambda: False)
    env: dict[str, str] = {}
    with thread_policy(None, env, affinity=4, quota=1.0) as d:
        assert env == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"} and d.applied and d.lowered
    assert env == {}
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}  # the user's choices are kept
    with thread_policy(None, env, affinity=4, quota=1.0) as d:
        assert env == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"} and d.source == "OMP_NUM_THREADS"
    env = {"OMP_NUM_THREADS": "2"}
    with thread_policy(1, env, affinity=2, quota=None):  # --threads wins over it
        assert env["OMP_NUM_THREADS"] == "1"
    assert env == {"OMP_NUM_THREADS": "2"}


def test_policy_leaves_an_imported_torch_alone_unless_asked():
    import torch

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    env: dict[str, str] = {}
    with thread_policy(None, env, affinity=64, quota=1.0) as d:
        assert torch.get_num_threads() == before and not d.applied and d.notice() == ""
    with thread_policy(target, env, affinity=4, quota=None) as d:
        assert torch.get_num_threads() == target and d.applied
    assert torch.get_num_threads() == before and env == {}


# -- the CLI ------------------------------------------------------------------------------------------------
def run_main(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        cli.main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("args", [("--threads", "0"), ("--threads", "-1"), ("--threads=-3",), ("--threads", "x")])
def test_cli_rejects_bad_thread_counts_in_one_line(capsys, clean_env, args):
    code, out, err = run_main(capsys, *args, "plugins")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: --threads must be a whole number of threads >= 1")


def test_cli_rejects_a_bad_environment_variable(capsys, clean_env, monkeypatch):
    monkeypatch.setenv("CARDIOBENCH_THREADS", "0")
    code, _, err = run_main(capsys, "plugins")
    assert code == 2 and err.count("\n") == 1 and "CARDIOBENCH_THREADS must be a whole number" in err


def test_cli_says_in_one_stderr_line_when_it_lowers_threads(capsys, clean_env, monkeypatch, register_plugin):
    def register_commands(app):
        app.command(name="work")(lambda: print(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS"),
                                                            "wait": os.environ.get("OMP_WAIT_POLICY")})))

    register_plugin(SimpleNamespace(register_commands=hookimpl(register_commands)), "work-plugin")
    monkeypatch.setattr(threads, "_torch_loaded", lambda: False)  # as in a fresh `cardiobench` process
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1.5)  # a container allowed 1.5 CPUs
    code, out, err = run_main(capsys, "work")
    assert code == 0 and json.loads(out) == {"threads": "2", "wait": "PASSIVE"}  # stdout: the command's alone
    assert err.splitlines() == ["Note: using 2 CPU threads instead of 8 (the CPU quota of this container); choose "
                                "with `cardiobench --threads N` or CARDIOBENCH_THREADS=N"]
    assert "OMP_NUM_THREADS" not in os.environ and "OMP_WAIT_POLICY" not in os.environ  # restored after
    code, out, err = run_main(capsys, "--threads", "3", "work")  # asked for: no notice
    assert (code, json.loads(out), err) == (0, {"threads": "3", "wait": "PASSIVE"}, "")
    code, out, err = run_main(capsys, "plugins", "--json")  # no torch work: no notice
    assert code == 0 and err == ""
    code, out, err = run_main(capsys, "--help")  # help: no policy, no notice
    assert code == 0 and err == "" and "--threads" in out


def test_threads_reach_torch_in_a_fresh_process(tmp_path):
    # `plugins` imports torch (the component plugins) after the policy ran, as every command does
    script = ("import sys\nfrom cardiobench.cli import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
              "import torch\nprint('THREADS', torch.get_num_threads())\n")
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    for args, extra in ((["--threads", "1"], {}), ([], {"CARDIOBENCH_THREADS": "1"})):
        out = subprocess.run([sys.executable, "-c", script, *args, "plugins", "--json"], capture_output=True,
                             text=True, env={**env, **extra}, timeout=300, check=True)
        assert out.stdout.strip().splitlines()[-1] == "THREADS 1", out.stderr
