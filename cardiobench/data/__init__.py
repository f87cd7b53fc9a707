"""Data sets of paired 2-D short-axis slices: the real ACDC layout and a synthetic phantom.

Open any registered data set (built-in or plugin) by name::

    from cardiobench.data import open_dataset
    train = open_dataset(size=32).load("train")          # the phantom (DEFAULT_DATASET)
    acdc = open_dataset("acdc", data_root="~/ACDC/database")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cardiobench.data.base import GROUPS, LABELS, NUM_CLASSES, SPLITS, STRUCTURES, DataSource, SliceSet

#: the data set used when none is named: synthetic, offline, always available
DEFAULT_DATASET = "phantom"


def resolve_dataset_name(dataset: str | None, data_root: str | os.PathLike | None = None) -> str:
    """The data set to use: ``dataset`` if given; else, when a data root was given explicitly (e.g.
    ``--data-root``), the first registered data set whose ``root_markers`` (glob patterns registered as
    metadata, e.g. ``training`` or ``*.h5``) match inside that folder, or failing that the first data set that
    reads files (its loader then says what the folder lacks); else ``DEFAULT_DATASET``."""
    if dataset:
        return dataset
    if not data_root:
        return DEFAULT_DATASET
    from cardiobench.plugins import registry

    readers = [c for c in registry("dataset") if c.metadata.get("needs_data", True)]
    root = Path(data_root).expanduser()
    for comp in readers:
        markers = comp.metadata.get("root_markers", ())
        if root.is_dir() and any(next(root.glob(pattern), None) is not None for pattern in markers):
            return comp.name
    return readers[0].name if readers else DEFAULT_DATASET


def open_dataset(name: str | None = None, **options: Any) -> DataSource:
    """Build the registered data set ``name`` (default ``DEFAULT_DATASET``) with ``options``
    (``size``, ``data_root``, ``seed``, ...). Unknown names and options give one-line errors."""
    from cardiobench.plugins import get_component

    name = resolve_dataset_name(name, options.get("data_root"))
    return get_component("dataset", name).create(**options)


__all__ = [
    "DEFAULT_DATASET",
    "GROUPS",
    "LABELS",
    "NUM_CLASSES",
    "SPLITS",
    "STRUCTURES",
    "DataSource",
    "SliceSet",
    "open_dataset",
    "resolve_dataset_name",
]
