"""The CLI shell: help, version, one-line errors with exit code 2, --debug tracebacks."""

import json

import pytest

from cardiobench import __version__, cli
from cardiobench.errors import CardiobenchError
from cardiobench.testing.cli import invoke


def run_main(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        cli.main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.strip() == f"cardiobench {__version__}"


def test_help_lists_plugins_command(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and "plugins" in out


def test_invoke_helper_runs_a_command():
    result = invoke("plugins", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["failures"] == []


def test_plugins_json_lists_every_builtin(capsys):
    code, out, _ = run_main(capsys, "plugins", "--json")
    data = json.loads(out)
    assert code == 0 and data["failures"] == []
    assert all(c["origin"] == "cardiobench" for c in data["components"])


def test_user_error_is_one_line_exit_2(capsys):
    code, out, err = run_main(capsys, "plugins", "--kind", "nope")
    assert code == 2
    assert err.strip().splitlines() == ["Error: unknown kind 'nope' - use one of: " + ", ".join(
        ["dataset", "representation", "noise", "sampler", "autoencoder", "backbone", "conditioning", "metric"])]


def test_usage_error_exit_2(capsys):
    code, _, err = run_main(capsys, "no-such-command")
    assert code == 2 and "No such command" in err


_build_app = cli.build_app


def _app_with(command):
    app = _build_app()
    app.command(name="boom")(command)
    return app


def test_unexpected_exception_is_one_line_unless_debug(capsys, monkeypatch):
    def boom():
        raise RuntimeError("kaput")

    monkeypatch.setattr(cli, "build_app", lambda: _app_with(boom))
    code, _, err = run_main(capsys, "boom")
    assert code == 1 and "Traceback" not in err
    assert err.strip() == "Error: unexpected RuntimeError: kaput (run with --debug for the traceback)"
    code, _, err = run_main(capsys, "--debug", "boom")
    assert code == 1 and "Traceback" in err


def test_cardiobench_error_under_invoke_is_one_line_exit_2(monkeypatch):
    def bad():
        raise CardiobenchError("missing weights file 'x.pth'", "pass --inception-weights FILE")

    monkeypatch.setattr(cli, "build_app", lambda: _app_with(bad))
    result = invoke("boom")
    assert result.exit_code == 2
    assert result.stderr == "Error: missing weights file 'x.pth' - pass --inception-weights FILE\n"


@pytest.mark.parametrize(("errno_name", "hint"), [("ENOSPC", "disk is full"), ("EROFS", "read-only"),
                                                  ("EACCES", "writable location"), ("ENOTDIR", "not a folder")])
def test_filesystem_errors_are_one_line_exit_2_naming_the_path(monkeypatch, errno_name, hint):
    import errno
    import os

    def full():
        code = getattr(errno, errno_name)
        raise OSError(code, os.strerror(code), "/data/runs/grid.png")

    monkeypatch.setattr(cli, "build_app", lambda: _app_with(full))
    result = invoke("boom")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "/data/runs/grid.png" in lines[0] and hint in lines[0], lines
    assert "unexpected" not in lines[0]


@pytest.mark.parametrize("args, needle", [
    (("data", "preview"), "Error: Missing option '--out' / '-o' - see 'cardiobench data preview --help'"),
    (("frobnicate",), "Error: No such command 'frobnicate' - see 'cardiobench --help'"),
    (("run", "--steps", "abc"), "Invalid value for '--steps'"),
])
def test_usage_errors_are_one_line_exit_2(capsys, args, needle):
    code, out, err = run_main(capsys, *args)
    assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["run"], ["compare"], ["train"], ["leaderboard"]])
def test_flags_show_no_type_placeholder_in_help(capsys, monkeypatch, command):
    """Issue 20 item 6: Typer prints `<bool>` beside every on/off flag, as if `--force` took a value."""
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run_main(capsys, *command, "--help")
    assert code == 0 and "--help" in out and "<bool>" not in out
