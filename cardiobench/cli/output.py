"""Shared helpers for command output: rich consoles and JSON printing."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console


def console(stderr: bool = False) -> Console:
    """A rich console; progress and tables go to stderr when stdout carries JSON."""
    return Console(stderr=stderr, highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
