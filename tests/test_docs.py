"""Documentation stays in step with the code (the datasette pattern)."""

from pathlib import Path

import pytest

from cardiobench import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("register_"))


def test_there_are_hooks():
    assert "register_samplers" in HOOKS and "register_commands" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_is_documented(hook):
    text = (DOCS / "plugins.md").read_text()
    assert f"### {hook}\n" in text, f"docs/plugins.md has no '### {hook}' section"
    assert getattr(hookspecs, hook).__doc__, f"hookspec {hook} has no docstring"
