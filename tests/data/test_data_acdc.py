"""The ACDC loader on a fake release tree: layout, splits, metadata, cache, and every error path."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from fake_acdc import (
    BAD_INPUTS,
    FAKE_PATIENTS,
    P1,
    build_fake_acdc,
    dangling_link,
    looping_link,
    set_nonfinite,
    training_only_patients,
    write_nifti,
)

from cardiobench.data import GROUPS, open_dataset
from cardiobench.data.acdc import ACDCSource
from cardiobench.data.source import DataWarning, NonFiniteWarning
from cardiobench.errors import CardiobenchError, DataError
from cardiobench.testing.datasets import DatasetContract

TRAINING = [p for p in FAKE_PATIENTS if p.pool == "training"]
LABELLED_TEST = [p for p in FAKE_PATIENTS if p.pool == "testing" and p.has_gt]


class TestFakeACDCContract(DatasetContract):
    expect_size = 32
    check_centred = True
    require_nonempty = ("train", "val", "test")

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _tree(cls, tmp_path_factory):
        cls.root = build_fake_acdc(tmp_path_factory.mktemp("acdc-contract"))

    def make_source(self):
        return ACDCSource(data_root=self.root, size=32, cache=False)


def load(root, **kw):
    src = open_dataset("acdc", data_root=str(root), size=kw.pop("size", 32), **kw)
    return src, src.load_all()


def test_registered_and_splits_by_patient(fake_acdc):
    src, sets = load(fake_acdc)
    assert src.name == "acdc"
    train_p, val_p, test_p = (set(np.unique(sets[s].patients)) for s in ("train", "val", "test"))
    assert train_p | val_p == {p.id for p in TRAINING}
    assert not (train_p & val_p)
    assert test_p == {p.id for p in LABELLED_TEST}  # patient103 ships no _gt: not used
    assert src.describe()["unlabelled_patients"] == ["patient103"]
    # stratified: one of each group's two training patients goes to validation (val_fraction 0.2 -> at least 1)
    groups = sets["val"].groups[np.unique(sets["val"].patients, return_index=True)[1]]
    assert sorted(GROUPS[g] for g in groups) == sorted(GROUPS)


def test_groups_phases_and_metadata(fake_acdc):
    _, sets = load(fake_acdc)
    s = sets["train"]
    by_id = {p.id: p for p in FAKE_PATIENTS}
    for pid in np.unique(s.patients):
        rows = s.patients == pid
        assert {GROUPS[g] for g in s.groups[rows]} == {by_id[pid].group}
        assert set(s.phases[rows]) == {"ED", "ES"}
        # the fake hearts fill every slice but the last, which is empty and dropped
        z = by_id[pid].shape[2]
        assert sorted(set(s.slice_index[rows])) == list(range(z - 1))


def test_ed_is_read_from_info_cfg_not_frame_01(fake_acdc):
    _, sets = load(fake_acdc, val_fraction=0.0)
    s = sets["train"]
    rows = (s.patients == "patient002") & (s.phases == "ED")
    assert rows.any() and (s.masks[rows] == 3).any(axis=(1, 2)).all()  # the decoy frame01 has no LV


def test_spacing_after_resize_is_in_mm(fake_acdc):
    _, sets = load(fake_acdc, size=32)
    s = sets["train"]
    rows = s.patients == "patient001"
    # a square crop of `side` source pixels at 1.5625 mm becomes 32 px: spacing = 1.5625 * side / 32
    side = s.spacing[rows][:, 0] * 32 / 1.5625
    assert np.allclose(side, np.round(side), atol=1e-3) and (side >= 10).all()
    assert np.allclose(s.spacing[rows][:, 0], s.spacing[rows][:, 1])


def test_database_parent_and_env_var(fake_acdc, monkeypatch):
    _, sets = load(fake_acdc.parent)  # the folder holding database/
    assert len(sets["train"]) > 0
    monkeypatch.setenv("CARDIOBENCH_ACDC_ROOT", str(fake_acdc))
    src = open_dataset("acdc", size=32)
    assert src.root == fake_acdc


def test_labels_preserved_and_images_in_range(fake_acdc):
    _, sets = load(fake_acdc, size=64)
    for s in sets.values():
        assert set(np.unique(s.masks)) == {0, 1, 2, 3}
        assert s.images.min() >= 0 and s.images.max() <= 1
        # blood is bright, myocardium dark: the intensities follow the labels through preprocessing
        assert s.images[s.masks == 3].mean() > s.images[s.masks == 2].mean() + 0.2


def test_cache_hit_then_invalidated_by_a_file_change_or_an_option(fake_acdc):
    src, sets = load(fake_acdc)
    first = src.cache_path()
    assert src.cache_hit is False and first.is_file()
    again = open_dataset("acdc", data_root=str(fake_acdc), size=32)
    again.load("train")
    assert again.cache_hit is True and again.cache_path() == src.cache_path()
    np.testing.assert_array_equal(again.load("train").masks, sets["train"].masks)
    assert open_dataset("acdc", data_root=str(fake_acdc), size=40).cache_path() != src.cache_path()
    assert open_dataset("acdc", data_root=str(fake_acdc), size=32, seed=1).cache_path() != src.cache_path()
    info = fake_acdc / "training" / "patient001" / "Info.cfg"
    st = info.stat()
    os.utime(info, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = open_dataset("acdc", data_root=str(fake_acdc), size=32)
    assert touched.cache_path() != first
    touched.load("train")
    assert touched.cache_hit is False


def test_damaged_cache_file_is_rebuilt(fake_acdc):
    src, _ = load(fake_acdc)
    src.cache_path().write_bytes(b"not an npz")
    again = open_dataset("acdc", data_root=str(fake_acdc), size=32)
    with pytest.warns(UserWarning, match="unreadable cache"):
        again.load("train")
    assert again.cache_hit is False


def test_rotation_augmentation_only_on_train(fake_acdc):
    _, plain = load(fake_acdc, cache=False)
    _, aug = load(fake_acdc, cache=False, rotations=2, rotation_angles=[90, 180, 270])
    assert len(aug["train"]) == 3 * len(plain["train"])
    assert len(aug["val"]) == len(plain["val"]) and len(aug["test"]) == len(plain["test"])
    assert set(np.unique(aug["train"].masks)) == {0, 1, 2, 3}


def test_unknown_option_is_a_clear_error(fake_acdc):
    with pytest.raises(CardiobenchError, match="unknown option 'colour'.*known options"):
        open_dataset("acdc", data_root=str(fake_acdc), colour="red")


# -- bad input: one DataError naming the file and the problem, or a skip with skip_bad -----------------


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_one_line_error_naming_the_file(fake_acdc, case):
    damage, expected = BAD_INPUTS[case]
    damage(fake_acdc)
    with pytest.raises(DataError) as exc:
        load(fake_acdc, cache=False)
    msg = exc.value.format_message()
    assert expected in msg and "patient001" in msg and "\n" not in msg
    assert " - " in msg  # followed by what to do about it


@pytest.mark.parametrize(
    "case",
    ["missing Info.cfg key", "truncated NIfTI", "labels outside 0..3", "dangling symlink", "symlink loop",
     "no finite voxel"],
)
def test_skip_bad_warns_skips_and_counts(fake_acdc, case):
    BAD_INPUTS[case][0](fake_acdc)
    with pytest.warns(DataWarning, match="skipped patient001"):
        src, sets = load(fake_acdc, cache=False, skip_bad=True)
    assert "patient001" not in set(sets["train"].patients) | set(sets["val"].patients)
    skipped = src.describe()["skipped"]
    assert len(skipped) == 1 and skipped[0]["patient"] == "patient001"


@pytest.mark.parametrize("make_link", [dangling_link, looping_link])
@pytest.mark.parametrize("name", ["patient001_frame01.nii.gz", "patient001_frame09_gt.nii.gz", "Info.cfg"])
def test_broken_symlink_with_the_cache_on(fake_acdc, make_link, name):
    """The cache fingerprint stats every file: a link that leads nowhere must not crash it."""
    link = fake_acdc / P1 / name
    make_link(link)
    with pytest.raises(DataError) as exc:
        load(fake_acdc)  # cache on (the default)
    msg = exc.value.format_message()
    assert msg.startswith(f"{link}: symbolic link to ") and "cannot be followed" in msg and "\n" not in msg
    with pytest.warns(DataWarning, match=f"skipped patient001: {link}"):
        src, sets = load(fake_acdc, skip_bad=True)
    assert set(sets["train"].patients) | set(sets["val"].patients) == {p.id for p in TRAINING} - {"patient001"}
    assert src.cache_path().is_file()


def test_unused_broken_symlink_is_ignored_with_or_without_cache(fake_acdc):
    """A frame Info.cfg does not name is never read: a broken link there changes nothing, cache or not."""
    dangling_link(fake_acdc / "training/patient002/patient002_frame01.nii.gz")  # patient002's decoy (ED is 3)
    for cache in (False, True):
        _, sets = load(fake_acdc, cache=cache, val_fraction=0.0)
        assert "patient002" in set(sets["train"].patients)


@pytest.mark.parametrize("target", ["gone-patient011", "patient011"])  # dangling, a loop
def test_broken_symlink_in_place_of_a_patient_folder(fake_acdc, target):
    """Such a patient used to vanish without a word (``is_dir()`` is False for it)."""
    link = fake_acdc / "training" / "patient011"
    link.symlink_to(target)
    with pytest.raises(DataError, match=f"^{link}: symbolic link to .* cannot be followed"):
        load(fake_acdc)
    with pytest.warns(DataWarning, match="skipped patient011"):
        src, sets = load(fake_acdc, skip_bad=True)
    assert set(sets["train"].patients) | set(sets["val"].patients) == {p.id for p in TRAINING}
    assert [s["patient"] for s in src.describe()["skipped"]] == ["patient011"]


def test_nonfinite_voxels_are_black_with_one_warning_naming_the_file(fake_acdc):
    path = fake_acdc / P1 / "patient001_frame01.nii.gz"
    set_nonfinite(path)  # NaN, +inf, -inf
    with pytest.warns(NonFiniteWarning, match=rf"^{path}: 3 of {40 * 48 * 6} voxels are NaN or infinite") as rec:
        _, sets = load(fake_acdc, val_fraction=0.0)
    assert len([w for w in rec if issubclass(w.category, NonFiniteWarning)]) == 1
    s = sets["train"]
    ed = (s.patients == "patient001") & (s.phases == "ED")
    # the volume is not blacked out: normalised from its finite voxels, blood bright, muscle dark
    assert ed.any() and np.isfinite(s.images[ed]).all() and s.images[ed].max() > 0.9
    assert s.images[ed][s.masks[ed] == 3].mean() > s.images[ed][s.masks[ed] == 2].mean() + 0.2


def split_patients(sets) -> dict[str, set[str]]:
    return {s: set(np.unique(sets[s].patients)) for s in ("train", "val", "test")}


def test_training_only_tree_is_split_three_ways(tmp_path):
    """Most users hold only training/: it is split into train / val / test, stratified by group and seeded."""
    patients = training_only_patients(3)
    root = build_fake_acdc(tmp_path, patients)
    assert not (root / "testing").exists()
    src, sets = load(root, cache=False)
    by_split = split_patients(sets)
    assert set().union(*by_split.values()) == {p.id for p in patients}
    assert not (by_split["train"] & by_split["val"] or by_split["train"] & by_split["test"]
                or by_split["val"] & by_split["test"])
    group_of = {p.id: p.group for p in patients}
    for split, ids in by_split.items():  # 3 per group: one train, one val, one test patient each
        assert sorted(group_of[i] for i in ids) == sorted(GROUPS), split
    desc = src.describe()
    assert desc["split"]["name"] == "stratified" and "test_fraction 0.2" in desc["split"]["detail"]
    assert desc["options"]["test_fraction"] == 0.2
    _, again = load(root, cache=False)
    assert split_patients(again) == by_split  # seeded
    seeds = [split_patients(load(root, cache=False, seed=s)[1])["test"] for s in range(1, 4)]
    assert any(t != by_split["test"] for t in seeds)
    _, no_test = load(root, cache=False, test_fraction=0.0)
    assert len(no_test["test"]) == 0 and len(no_test["train"]) > 0


def test_release_without_testing_folder_draws_test_from_training(fake_acdc):
    import shutil

    shutil.rmtree(fake_acdc / "testing")
    _, sets = load(fake_acdc)  # used to be "testing: missing"
    by_split = split_patients(sets)
    assert set().union(*by_split.values()) == {p.id for p in TRAINING}
    assert len(by_split["test"]) == 5  # one of each group's two patients; none left for val
    assert not by_split["test"] & (by_split["train"] | by_split["val"])


def test_unlabelled_testing_folder_counts_as_absent(fake_acdc):
    import shutil

    for p in LABELLED_TEST:
        shutil.rmtree(fake_acdc / "testing" / p.id)  # only patient103, without _gt files, is left
    src, sets = load(fake_acdc, cache=False)
    by_split = split_patients(sets)
    assert by_split["test"] and by_split["test"] <= {p.id for p in TRAINING}
    assert src.describe()["unlabelled_patients"] == ["patient103"]
    assert src.describe()["split"]["name"] == "stratified"


def test_labelled_testing_folder_keeps_the_release_split(fake_acdc):
    src, sets = load(fake_acdc, test_fraction=0.5)  # test_fraction only matters without a labelled testing/
    assert split_patients(sets)["test"] == {p.id for p in LABELLED_TEST}
    assert src.describe()["split"]["name"] == "pools"


def test_missing_training_folder(fake_acdc):
    import shutil

    shutil.rmtree(fake_acdc / "training")
    with pytest.raises(DataError, match=r"training: missing"):
        load(fake_acdc, cache=False)
    with pytest.warns(DataWarning):
        _, sets = load(fake_acdc, cache=False, skip_bad=True)
    assert split_patients(sets)["test"] == {p.id for p in LABELLED_TEST} and len(sets["train"]) == 0


@pytest.mark.parametrize("value", [1.0, -0.1, "x", True])
def test_bad_test_fraction(fake_acdc, value):
    with pytest.raises(CardiobenchError, match="test_fraction must be in"):
        open_dataset("acdc", data_root=str(fake_acdc), test_fraction=value)


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        (None, "no --data-root given and CARDIOBENCH_ACDC_ROOT is not set"),
        ("does-not-exist", "does not exist"),
        ("empty", "holds no training/ or testing/ folder"),
        ("database/training", "is inside the ACDC tree"),
    ],
)
def test_bad_root(fake_acdc, monkeypatch, root, expected):
    monkeypatch.delenv("CARDIOBENCH_ACDC_ROOT", raising=False)
    (fake_acdc.parent / "empty").mkdir()
    arg = None if root is None else str(fake_acdc.parent / root)
    with pytest.raises(DataError, match=expected) as exc:
        open_dataset("acdc", data_root=arg)
    if root is None:
        assert "register on the ACDC challenge site" in exc.value.format_message()


def test_float_labels_that_are_integers_are_fine(fake_acdc):
    path = fake_acdc / P1 / "patient001_frame01_gt.nii.gz"
    img = nib.load(str(path))
    write_nifti(path, np.asarray(img.dataobj).astype(np.float32), (1.5625, 1.5625, 10.0))
    _, sets = load(fake_acdc, cache=False, val_fraction=0.0)
    assert "patient001" in set(sets["train"].patients)
