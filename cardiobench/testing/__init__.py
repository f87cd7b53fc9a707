"""Reusable contract test suites: every registered component of a kind must pass its suite.

A third-party plugin runs the same suite on itself by subclassing the kind's contract class in
its own tests (the diffusers ``SchedulerCommonTest`` pattern). See ``docs/plugins.md``.

``CONTRACTS`` maps every plugin kind (``cardiobench.registry.KINDS``) to its suite; ``contract_suite(kind,
name, **attributes)`` builds the suite of one registered component (what ``tests/test_contracts_all_kinds.py``
runs on every built-in); ``contract_checks(suite)`` lists its checks. The ``cardiobench_register`` pytest
fixture (``cardiobench.testing.pytest_plugin``, installed as a ``pytest11`` plugin) registers a component
in-process for one test.

This module imports nothing heavy: the pytest plugin imports it at pytest start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CONTRACTS", "contract_checks", "contract_for", "contract_suite"]

#: kind -> (module, contract class, class attribute naming the component under test)
CONTRACTS: dict[str, tuple[str, str, str]] = {
    "dataset": ("cardiobench.testing.datasets", "DatasetContract", "dataset_name"),
    "representation": ("cardiobench.testing.representations", "RepresentationContract", "representation_name"),
    "noise": ("cardiobench.testing.diffusion", "NoiseProcessContract", "process_name"),
    "sampler": ("cardiobench.testing.diffusion", "SamplerContract", "sampler_name"),
    "backbone": ("cardiobench.testing.backbones", "BackboneContract", "backbone"),
    "conditioning": ("cardiobench.testing.conditioning", "ConditioningContract", "method"),
    "metric": ("cardiobench.testing.metrics", "MetricContract", "metric_name"),
    "autoencoder": ("cardiobench.testing.autoencoders", "AutoencoderContract", "autoencoder_name"),
}


def contract_for(kind: str) -> type:
    """The contract class of ``kind`` (``KeyError`` naming the kind if it has none)."""
    if kind not in CONTRACTS:
        raise KeyError(f"plugin kind {kind!r} has no contract suite: add one to cardiobench.testing.CONTRACTS")
    module, cls, _ = CONTRACTS[kind]
    return getattr(importlib.import_module(module), cls)


def contract_suite(kind: str, name: str, **attributes: Any) -> type:
    """A subclass of ``kind``'s contract checking the registered component ``name``.

    ``attributes`` override the contract's class attributes (small sizes, options) and may add methods
    (e.g. ``make_context`` for a metric that needs more context); see each contract's docstring.
    """
    base = contract_for(kind)
    attribute = CONTRACTS[kind][2]
    title = "".join(part.capitalize() for part in f"{kind}-{name}".replace("_", "-").split("-"))
    return type(f"{title}Contract", (base,), {attribute: name, "__module__": base.__module__, **attributes})


def contract_checks(suite: type) -> list[str]:
    """The names of ``suite``'s checks (its ``test_*`` methods), in definition order (base classes first)."""
    names: list[str] = []
    for cls in reversed(suite.__mro__):
        for attr, value in vars(cls).items():
            if attr.startswith("test_") and callable(value) and attr not in names:
                names.append(attr)
    return names
