"""``cardiobench plugins``: list every registered component, every plugin that failed and every name clash."""

from __future__ import annotations

import typer
from rich.table import Table

from cardiobench.cli.output import console, print_json
from cardiobench.hookspecs import hookimpl
from cardiobench.plugins import get_plugin_manager
from cardiobench.registry import KINDS


def _meta_text(meta: dict) -> str:
    parts = []
    for key, value in meta.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
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
