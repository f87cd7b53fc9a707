"""The contract every data set plugin must meet, as a reusable pytest suite.

In your plugin's tests::

    from cardiobench.testing.datasets import DatasetContract

    class TestMyDataset(DatasetContract):
        dataset_name = "my-data"                                   # as registered
        dataset_options = {"size": 32, "data_root": TINY_FIXTURE}  # what the pipeline would pass

or, for a source that is not registered, override ``make_source``::

        def make_source(self):
            return my_factory(size=32, data_root=tiny_fixture_root)

With ``dataset_name`` the suite also checks the registration: a summary, the metadata types (``needs_data``,
``default``: bool; ``root_env``: str; ``root_markers``: tuple of glob patterns) and that the factory takes the
options the pipeline passes (``size``, ``seed``, and ``data_root`` unless ``needs_data=False``).

The suite loads each split once per class (cached on the class) and checks shapes, dtypes, value ranges,
metadata, no empty slices, no patient shared between splits, determinism and, when the source has one, a
JSON-able ``describe()``. Class attributes tune it:

- ``expect_size``: the side the slices must have (None: any, but square);
- ``require_nonempty``: splits that must hold slices (default: train);
- ``check_centred``: the region of interest must be centred (what ``cardiobench.data.preprocess`` does);
- ``depth``: the source yields volumes of ``depth`` slices (``(N, depth, S, S)``, spacing ``(N, 3)``; a data set
  opened with the option ``depth``, ``--dims 3``): every check then runs on volumes, the ROI over the whole
  volume, and ``SliceSet.slices()`` must give their slices. ``make_source`` / ``dataset_options`` must open the
  source with that depth.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, ClassVar

import numpy as np

from cardiobench.data.base import GROUPS, NUM_CLASSES, SPLITS, SliceSet


class DatasetContract:
    """Subclass as ``Test...``; set ``dataset_name`` (registered) or implement ``make_source``."""

    #: registered name of the data set under test (None: ``make_source`` builds it)
    dataset_name: ClassVar[str | None] = None
    #: factory options (small: the suite loads every split twice)
    dataset_options: ClassVar[dict[str, Any]] = {}
    expect_size: ClassVar[int | None] = None
    require_nonempty: ClassVar[tuple[str, ...]] = ("train",)
    check_centred: ClassVar[bool] = False
    depth: ClassVar[int | None] = None
    _loaded: ClassVar[dict[type, tuple[Any, dict[str, SliceSet]]]] = {}

    def make_source(self) -> Any:
        """A fresh data source (``name`` and ``load(split)``); keep it small, the suite loads it twice."""
        if not self.dataset_name:
            raise NotImplementedError("set dataset_name (and dataset_options) or override make_source")
        from cardiobench.plugins import get_component

        return get_component("dataset", self.dataset_name).create(**self.dataset_options)

    # -- helpers ---------------------------------------------------------------------------
    def _source_and_splits(self) -> tuple[Any, dict[str, SliceSet]]:
        cls = type(self)
        if cls not in DatasetContract._loaded:
            source = self.make_source()
            DatasetContract._loaded[cls] = (source, {s: source.load(s) for s in SPLITS})
        return DatasetContract._loaded[cls]

    def splits(self) -> dict[str, SliceSet]:
        return self._source_and_splits()[1]

    # -- the contract ----------------------------------------------------------------------
    def test_registration_metadata(self):
        if not self.dataset_name:
            return
        from cardiobench.plugins import get_component

        comp = get_component("dataset", self.dataset_name)
        assert comp.summary, "give the factory a docstring or a summary"
        meta = comp.metadata
        for key in ("needs_data", "default"):
            assert isinstance(meta.get(key, False), bool), f"metadata {key!r} must be a bool"
        assert isinstance(meta.get("root_env", ""), str), "metadata 'root_env' must be an environment variable name"
        markers = meta.get("root_markers", ())
        assert isinstance(markers, tuple) and all(isinstance(m, str) and m for m in markers), (
            "metadata 'root_markers' must be a tuple of glob patterns")
        params = inspect.signature(comp.factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        wanted = ["size", "seed"] + (["data_root"] if meta.get("needs_data", True) else [])
        missing = [k for k in wanted if k not in params and not takes_any]
        assert not missing, f"the factory must take the options the pipeline passes: {missing}"

    def test_has_name(self):
        source, _ = self._source_and_splits()
        assert isinstance(source.name, str) and source.name

    def test_every_split_is_a_sliceset(self):
        for split, s in self.splits().items():
            assert isinstance(s, SliceSet), split
        for split in self.require_nonempty:
            assert len(self.splits()[split]) > 0, f"{split} is empty"

    def test_shapes_and_dtypes(self):
        vol = self.depth is not None
        for split, s in self.splits().items():
            n = len(s)
            assert s.masks.ndim == (4 if vol else 3) and s.masks.dtype == np.uint8, split
            assert s.dims == (3 if vol else 2), split
            if vol:
                assert s.masks.shape[1] == self.depth, f"{split}: volumes of {s.masks.shape[1]} slices"
            assert s.images.shape == s.masks.shape and s.images.dtype == np.float32, split
            assert s.masks.shape[-2] == s.masks.shape[-1], f"{split}: slices are not square"
            if self.expect_size is not None and n:
                assert s.size == self.expect_size, split
            assert s.groups.shape == (n,) and np.issubdtype(s.groups.dtype, np.integer), split
            assert s.slice_index.shape == (n,) and np.issubdtype(s.slice_index.dtype, np.integer), split
            assert s.spacing.shape == (n, 3 if vol else 2) and s.spacing.dtype == np.float32, split
            assert s.patients.shape == (n,) and s.phases.shape == (n,), split

    def test_value_ranges(self):
        for split, s in self.splits().items():
            if not len(s):
                continue
            assert s.masks.max() < NUM_CLASSES, f"{split}: label above {NUM_CLASSES - 1}"
            assert np.isfinite(s.images).all(), split
            assert s.images.min() >= 0.0 and s.images.max() <= 1.0, f"{split}: images outside [0, 1]"
            assert s.groups.min() >= 0 and s.groups.max() < len(GROUPS), split
            assert set(np.unique(s.phases)) <= {"ED", "ES"}, split
            assert (s.slice_index >= 0).all(), split
            assert np.isfinite(s.spacing).all() and (s.spacing > 0).all(), f"{split}: spacing must be > 0 mm"

    def test_no_empty_slices(self):
        for split, s in self.splits().items():
            if len(s):
                what = "volume" if self.depth is not None else "slice"
                assert s.masks.reshape(len(s), -1).any(axis=1).all(), f"{split} holds an all-background {what}"

    def test_volumes_give_their_slices(self):
        if self.depth is None:
            return
        for split, s in self.splits().items():
            flat = s.slices()
            assert flat.dims == 2 and len(flat) == len(s) * self.depth, split
            np.testing.assert_array_equal(flat.masks.reshape(s.masks.shape), s.masks, err_msg=split)
            np.testing.assert_array_equal(flat.spacing[:: self.depth], s.spacing[:, 1:], err_msg=split)

    def test_splits_share_no_patient(self):
        seen: dict[str, str] = {}
        for split, s in self.splits().items():
            for p in np.unique(s.patients):
                assert p not in seen, f"patient {p} is in {seen.get(p)} and {split}"
                seen[str(p)] = split

    def test_patient_has_one_group(self):
        for split, s in self.splits().items():
            for p in np.unique(s.patients):
                assert len(np.unique(s.groups[s.patients == p])) == 1, f"{split}: {p} has several groups"

    def test_deterministic(self):
        fresh = self.make_source()
        for split, s in self.splits().items():
            again = fresh.load(split)
            for name, arr in s.arrays().items():
                np.testing.assert_array_equal(arr, again.arrays()[name], err_msg=f"{split}.{name}")

    def test_roi_centred(self):
        if not self.check_centred:
            return
        for split, s in self.splits().items():
            if not len(s):
                continue
            fg = s.masks > 0
            if fg.ndim == 4:  # a volume: one ROI over all its slices
                fg = fg.any(axis=1)
            rows, cols = fg.any(axis=2), fg.any(axis=1)
            idx = np.arange(s.size)
            for name, occ in (("rows", rows), ("cols", cols)):
                first = np.where(occ, idx, s.size).min(axis=1)
                last = np.where(occ, idx, -1).max(axis=1)
                offset = (first + last) / 2 - (s.size - 1) / 2
                assert np.abs(offset).max() <= 1.5, f"{split}: region of interest off-centre ({name})"

    def test_describe_is_json(self):
        source, _ = self._source_and_splits()
        if hasattr(source, "describe"):
            desc = source.describe()
            json.dumps(desc)
            for split in SPLITS:
                counted = "volumes" if self.depth is not None else "slices"
                assert desc["splits"][split][counted] == len(self.splits()[split])
