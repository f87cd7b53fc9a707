"""Typed registries: name -> factory + metadata, one registry per plugin kind."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cardiobench.errors import CardiobenchError, UnknownComponentError

#: plugin kinds, in display order: kind -> (hook name, CLI noun)
KINDS: dict[str, str] = {
    "dataset": "register_datasets",
    "representation": "register_representations",
    "noise": "register_noise_processes",
    "sampler": "register_samplers",
    "autoencoder": "register_autoencoders",
    "backbone": "register_backbones",
    "conditioning": "register_conditioning",
    "metric": "register_metrics",
}

#: lower-case words joined by ``-`` or ``_``, optionally ending in ``+`` or ``++`` (``dpm-solver++``)
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*\+{0,2}$")


@dataclass(frozen=True)
class Component:
    """One registered component of a kind."""

    kind: str
    name: str
    factory: Callable[..., Any]
    summary: str
    origin: str  # distribution that registered it ("cardiobench" for built-ins)
    version: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def create(self, *args: Any, **kwargs: Any) -> Any:
        return self.factory(*args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.metadata.items()}
        return {
            "kind": self.kind,
            "name": self.name,
            "summary": self.summary,
            "origin": self.origin,
            "version": self.version,
            "metadata": meta,
        }


def _first_doc_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Registry:
    """Components of one kind, by name."""

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}")
        self.kind = kind
        self._items: dict[str, Component] = {}

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        origin: str,
        version: str,
        summary: str | None = None,
        **metadata: Any,
    ) -> Component:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise CardiobenchError(
                f"{origin} tried to register {self.kind} {name!r}: invalid name",
                "use lower-case letters, digits, '-' or '_', starting with a letter (optionally ending in '+' or '++')",
            )
        if not callable(factory):
            raise CardiobenchError(f"{origin} registered {self.kind} {name!r} with a factory that is not callable")
        if name in self._items:
            other = self._items[name].origin
            raise CardiobenchError(
                f"{self.kind} {name!r} is registered twice: by {other} and by {origin}",
                "uninstall one of them, or restrict loading with CARDIOBENCH_LOAD_PLUGINS",
            )
        comp = Component(
            kind=self.kind,
            name=name,
            factory=factory,
            summary=summary if summary is not None else _first_doc_line(factory),
            origin=origin,
            version=version,
            metadata=dict(metadata),
        )
        self._items[name] = comp
        return comp

    def get(self, name: str) -> Component:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownComponentError(self._unknown_message(name), self._hint(name)) from None

    def _unknown_message(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}"

    def _hint(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        if close:
            return "did you mean " + " or ".join(repr(c) for c in close) + "?"
        known = ", ".join(sorted(self._items)) or "none"
        return f"known: {known} (see `cardiobench plugins`)"

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[Component]:
        return iter(sorted(self._items.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return len(self._items)
