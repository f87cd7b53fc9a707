"""``cardiobench plugins``: list every registered component, every plugin that failed and every name clash."""

from __future__ import annotations

import typer
from rich.table import Table

from cardiobench.cli.output import console, print_json
from cardiobench.hookspecs import hookimpl
from cardiobench.plugins import get_plugin_manager
from cardiobench.registry import KINDS


def _summary(value: dict) -> str:
    """A mapping in a few words: ``20 values: 19 lower, 1 higher`` when its values are a few words repeated (a
    metric's directions), else ``5 values: a, b, c, ...`` (its first keys). ``--json`` has it whole."""
    n = len(value)
    words = [v for v in value.values() if isinstance(v, str)]
    if words and len(words) == n and len(set(words)) <= 3:
        counts: dict[str, int] = {}
        for word in words:
            counts[word] = counts.get(word, 0) + 1
        tally = ", ".join(f"{k} {word}" for word, k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"{n} value{'s' if n != 1 else ''}: {tally}"
    keys = [str(k) for k in value]
    return f"{n} value{'s' if n != 1 else ''}: {', '.join(keys[:3])}{', ...' if n > 3 else ''}"


def _meta_text(meta: dict) -> str:
    """A component's metadata on a line or two: lists joined, mappings summarised (``_summary``)."""
    parts = []
    for key, value in meta.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = f"({_summary(value)})" if value else "{}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def plugins(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    kind: str = typer.Option(None, "--kind", help=f"Only this kind: {', '.join(KINDS)}."),
) -> None:
    """List registered components (data sets, noise processes, samplers, ...) and failed plugins."""
    pm = get_plugin_manager()
    regs = pm.registries()
    if kind is not None and kind not in KINDS:
        from cardiobench.errors import CardiobenchError

        raise CardiobenchError(f"unknown kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    kinds = [kind] if kind else list(KINDS)
    components = [c for k in kinds for c in regs[k]]
    if as_json:
        print_json(
            {
                "components": [c.to_dict() for c in components],
                "failures": [f.to_dict() for f in pm.failures],
            }
        )
        return
    out = console()
    table = Table(title="cardiobench components", header_style="bold")
    for col in ("kind", "name", "summary", "details", "origin"):
        table.add_column(col, overflow="fold")
    for c in components:
        table.add_row(c.kind, f"[bold]{c.name}[/]", c.summary, _meta_text(c.metadata), f"{c.origin} {c.version}")
    out.print(table)
    if pm.failures:
        bad = Table(title="plugin failures and name clashes (skipped)", header_style="bold red")
        for col in ("distribution", "plugin", "stage", "error"):
            bad.add_column(col, overflow="fold")
        for f in pm.failures:
            bad.add_row(f.distribution, f.plugin, f.stage, f.error)
        out.print(bad)


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.command(name="plugins")(plugins)
