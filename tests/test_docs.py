"""Documentation stays in step with the code (the datasette pattern)."""

import re
from pathlib import Path

import pluggy
import pytest

from cardiobench import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("register_"))


def test_there_are_hooks():
    assert "register_samplers" in HOOKS and "register_commands" in HOOKS



# -- hook documentation (datasette's test_plugin_hooks_are_documented): every hookspec is documented in
# docs/plugins.md under a heading with its exact signature, and every hook documented there exists with it -------
def _hook_signatures() -> dict[str, str]:
    """hook name -> ``name(arg, ...)``, from the hookspecs as pluggy registers them."""
    pm = pluggy.PluginManager("cardiobench")
    pm.add_hookspecs(hookspecs)
    names = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "cardiobench_spec")]
    return {n: f"{n}({', '.join(getattr(pm.hook, n).spec.argnames)})" for n in names}


def _documented_hooks() -> list[str]:
    """The level-3 headings of the "## Hooks" section of docs/plugins.md."""
    text = (DOCS / "plugins.md").read_text()
    assert "\n## Hooks\n" in text, "docs/plugins.md has no '## Hooks' section"
    section = text.split("\n## Hooks\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^### (.+?)\s*$", section, flags=re.M)


SIGNATURES = _hook_signatures()


def test_hookspecs_are_found():
    assert set(HOOKS) <= set(SIGNATURES) and SIGNATURES["register_commands"] == "register_commands(app)"


@pytest.mark.parametrize("hook", sorted(SIGNATURES))
def test_every_hookspec_is_documented_with_its_signature(hook):
    heading = SIGNATURES[hook]
    assert heading in _documented_hooks(), f"docs/plugins.md has no '### {heading}' heading under '## Hooks'"
    assert getattr(hookspecs, hook).__doc__, f"hookspec {hook} has no docstring"


@pytest.mark.parametrize("heading", _documented_hooks())
def test_every_documented_hook_exists_with_that_signature(heading):
    match = re.fullmatch(r"(\w+)\((.*)\)", heading)
    assert match, f"'### {heading}' under '## Hooks' is not a hook signature like 'register_metrics(register)'"
    name = match.group(1)
    assert name in SIGNATURES, f"docs/plugins.md documents hook {name}, which cardiobench/hookspecs.py does not have"
    assert heading == SIGNATURES[name], f"documented as '{heading}', the hookspec is '{SIGNATURES[name]}'"
