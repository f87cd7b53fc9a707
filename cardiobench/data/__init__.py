"""Data sets of paired 2-D short-axis slices: the real ACDC layout and a synthetic phantom.

Open any registered data set (built-in or plugin) by name::

    from cardiobench.data import open_dataset
    train = open_dataset(size=32).load("train")          # the phantom (DEFAULT_DATASET)
    acdc = open_dataset("acdc", data_root="~/ACDC/database")
"""

from __future__ import annotations

import os
from typing import Any

from cardiobench.data.base import GROUPS, LABELS, NUM_CLASSES, SPLITS, STRUCTURES, DataSource, SliceSet

#: the data set used when none is named: synthetic, offline, always available
DEFAULT_DATASET = "phantom"


def resolve_dataset_name(dataset: str | None, data_root: str | os.PathLike | None = None) -> str:
    """The data set to use: ``dataset`` if given; else ``acdc`` when a data root was given explicitly
    (e.g. ``--data-root``), else ``DEFAULT_DATASET``."""
    if dataset:
        return dataset
    return "acdc" if data_root else DEFAULT_DATASET


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
