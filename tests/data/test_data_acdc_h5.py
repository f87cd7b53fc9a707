"""The ``acdc-h5`` data set on tiny HDF5 trees: layouts, groups, phases, splits, pixel units, cache, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
from fake_acdc import build_fake_acdc
from fake_acdc_h5 import (
    BAD_H5_INPUTS,
    FRAMES,
    GROUP_OF,
    NUMBERS,
    SSL4MIS_SPLIT,
    build_fake_h5,
    patient_volumes,
    volume_dir,
    volume_shape,
    write_lists,
)
from test_data_cli import assert_one_line_error

from cardiobench.data import GROUPS, open_dataset
from cardiobench.data.acdc_h5 import GROUP_RANGES, ACDCH5Source, group_of
from cardiobench.data.source import DataWarning
from cardiobench.errors import CardiobenchError, DataError
from cardiobench.testing.cli import invoke
from cardiobench.testing.datasets import DatasetContract

ALL_IDS = set(GROUP_OF)


@pytest.fixture
def h5_root(tmp_path):
    """A fresh fake acdc-h5 tree (its root, holding volumes/ and split_ssl4mis.json); tests may damage it."""
    return build_fake_h5(tmp_path)


def load(root, **kw):
    src = open_dataset("acdc-h5", data_root=str(root), size=kw.pop("size", 32), **kw)
    return src, src.load_all()


def split_patients(sets) -> dict[str, set[str]]:
    return {s: set(np.unique(sets[s].patients)) for s in ("train", "val", "test")}


class TestFakeH5Contract(DatasetContract):
    expect_size = 32
    check_centred = True
    require_nonempty = ("train", "val", "test")

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _tree(cls, tmp_path_factory):
        cls.root = build_fake_h5(tmp_path_factory.mktemp("h5-contract"))

    def make_source(self):
        return ACDCH5Source(data_root=self.root, size=32, cache=False)


def test_group_table():
    assert [group_of(n) for n in (1, 20, 21, 40, 41, 60, 61, 80, 81, 100)] == [
        "DCM", "DCM", "HCM", "HCM", "MINF", "MINF", "NOR", "NOR", "RV", "RV"]
    assert group_of(0) is None and group_of(101) is None
    assert {g for g, _, _ in GROUP_RANGES} == set(GROUPS)


def test_groups_phases_and_transpose(h5_root):
    src, sets = load(h5_root, cache=False)
    assert src.name == "acdc-h5" and src.spacing_unit == "px"
    every = np.concatenate([sets[s].patients for s in sets])
    groups = np.concatenate([sets[s].groups for s in sets])
    for pid in ALL_IDS:
        assert {GROUPS[g] for g in groups[every == pid]} == {GROUP_OF[pid]}
    # (Z, Y, X) in the file -> (H, W, Z) = (Y, X, Z) in the volume, voxel for voxel; ED = the lower frame
    patient = next(p for p in src.patients([]) if p.id == "patient022")
    volumes = src.read_patient(patient)
    assert [v.phase for v in volumes] == ["ED", "ES"]
    for vol, (frame, image, label) in zip(volumes, patient_volumes(22), strict=True):
        assert vol.source.endswith(f"patient022_frame{frame:02d}.h5")
        assert vol.mask.shape == (label.shape[1], label.shape[2], label.shape[0])
        for k in range(label.shape[0]):
            np.testing.assert_array_equal(vol.mask[..., k], label[k])
            np.testing.assert_array_equal(vol.image[..., k], image[k])
    assert FRAMES[22] == (4, 15) and volumes[0].mask.sum() > volumes[1].mask.sum()  # ED is the larger heart
    shapes = src.describe()["native"]["shapes"]  # reported as (H, W, Z) = (Y, X, Z)
    zyx = np.array([volume_shape(n) for n in NUMBERS])
    assert shapes["rows"] == [zyx[:, 1].min(), zyx[:, 1].max()] and shapes["cols"] == [zyx[:, 2].min(), zyx[:, 2].max()]
    assert shapes["slices"] == [zyx[:, 0].min(), zyx[:, 0].max()]


def test_default_split_is_stratified_three_way(h5_root):
    src, sets = load(h5_root, cache=False)
    by_split = split_patients(sets)
    assert set().union(*by_split.values()) == ALL_IDS
    assert sum(len(v) for v in by_split.values()) == len(ALL_IDS)  # disjoint
    for split, ids in by_split.items():  # three patients per group: one in each split
        assert sorted(GROUP_OF[i] for i in ids) == sorted(GROUPS), split
    desc = src.describe()
    assert desc["split"]["name"] == "stratified" and desc["options"]["split"] == "stratified"
    assert {g: desc["splits"]["test"]["patients_by_group"][g] for g in GROUPS} == dict.fromkeys(GROUPS, 1)
    assert split_patients(load(h5_root, cache=False)[1]) == by_split
    assert any(split_patients(load(h5_root, cache=False, seed=s)[1]) != by_split for s in (1, 2, 3))


def test_ssl4mis_split_from_the_root(h5_root):
    src, sets = load(h5_root, split="ssl4mis", cache=False)
    assert split_patients(sets) == {k: set(v) for k, v in SSL4MIS_SPLIT.items()}
    desc = src.describe()
    assert desc["split"]["name"] == "ssl4mis" and desc["split"]["file"] == str(h5_root / "split_ssl4mis.json")
    assert {k: desc["splits"][k]["patients"] for k in SSL4MIS_SPLIT} == {k: len(v) for k, v in SSL4MIS_SPLIT.items()}


def test_split_file_json_and_list_folder(h5_root, tmp_path):
    custom = {"train": sorted(ALL_IDS)[:9], "val": sorted(ALL_IDS)[9:12], "test": sorted(ALL_IDS)[12:]}
    (tmp_path / "mine.json").write_text(json.dumps(custom))
    _, sets = load(h5_root, split_file=str(tmp_path / "mine.json"), cache=False)  # split_file implies ssl4mis
    assert split_patients(sets) == {k: set(v) for k, v in custom.items()}
    lists = write_lists(tmp_path / "lists", SSL4MIS_SPLIT)  # patient022_frame04, patient022_frame15 ...
    assert "patient022_frame04\npatient022_frame15" in (lists / "train.list").read_text()
    _, sets = load(h5_root, split="ssl4mis", split_file=str(lists), cache=False)
    assert split_patients(sets) == {k: set(v) for k, v in SSL4MIS_SPLIT.items()}


def test_list_files_beside_the_volumes_are_the_default(tmp_path):
    root = build_fake_h5(tmp_path, layout="ACDC_training_volumes", split=None)
    write_lists(root, SSL4MIS_SPLIT)  # SSL4MIS keeps train.list etc. beside ACDC_training_volumes/
    src, sets = load(root, split="ssl4mis", cache=False)
    assert src.root == root / "ACDC_training_volumes" and src.split_file == root
    assert split_patients(sets) == {k: set(v) for k, v in SSL4MIS_SPLIT.items()}


def test_patients_missing_from_the_split_file_are_left_out_and_listed(h5_root, tmp_path):
    part = {"train": ["patient001", "patient021"], "val": ["patient041"], "test": ["patient061", "patient099"]}
    (tmp_path / "part.json").write_text(json.dumps(part))
    with pytest.warns(UserWarning, match=r"part.json: 1 listed patient\(s\) have no usable volumes .*patient099"):
        src, sets = load(h5_root, split_file=str(tmp_path / "part.json"), cache=False)
    assert split_patients(sets) == {"train": {"patient001", "patient021"}, "val": {"patient041"},
                                    "test": {"patient061"}}
    desc = src.describe()
    assert set(desc["unassigned_patients"]) == ALL_IDS - {"patient001", "patient021", "patient041", "patient061"}
    assert desc["split"]["listed_but_absent"] == ["patient099"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"train": ["patient001"], "val": ["patient001"], "test": []}, "patient001 is in both train and val"),
        ({"train": ["patient001", "patient001"], "val": [], "test": []}, "'patient001' is listed twice in train"),
        ({"train": ["patient001"], "val": ["patient1"], "test": []}, "patient001 is in both train and val"),
        ({"train": ["heart7"], "val": [], "test": []}, "train[0]: 'heart7' is not a patient"),
        ({"train": [], "val": []}, "missing key test"),
        ({"train": [], "val": [], "test": [], "unlabelled": []}, "unexpected key 'unlabelled'"),
        ({"train": "patient001", "val": [], "test": []}, "train is not a list of patient ids"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_split_file_is_one_line_error(h5_root, tmp_path, content, expected):
    path = tmp_path / "split.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataError) as exc:
        open_dataset("acdc-h5", data_root=str(h5_root), split_file=str(path))
    msg = exc.value.format_message()
    assert msg.startswith(str(path)) and expected in msg and "\n" not in msg and " - " in msg
    result = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root),
                    "--dataset-opt", f"split_file={path}")
    assert_one_line_error(result, expected)


def test_bad_list_folder(h5_root, tmp_path):
    lists = write_lists(tmp_path / "lists", SSL4MIS_SPLIT)
    (lists / "val.list").write_text("patient001_frame01\n")  # patient001 is in train.list too
    with pytest.raises(DataError, match="patient001 is in both train and val"):
        open_dataset("acdc-h5", data_root=str(h5_root), split_file=str(lists))
    (lists / "test.list").unlink()
    with pytest.raises(DataError, match=r"test.list: missing"):
        open_dataset("acdc-h5", data_root=str(h5_root), split_file=str(lists))


def test_split_option_errors(h5_root, tmp_path):
    with pytest.raises(CardiobenchError, match="unknown split 'random'.*stratified, ssl4mis"):
        open_dataset("acdc-h5", data_root=str(h5_root), split="random")
    with pytest.raises(CardiobenchError, match="split_file is read with split=ssl4mis"):
        open_dataset("acdc-h5", data_root=str(h5_root), split="stratified", split_file="x.json")
    (h5_root / "split_ssl4mis.json").unlink()
    with pytest.raises(DataError, match="split=ssl4mis: no split_ssl4mis.json .* - pass split_file=PATH"):
        open_dataset("acdc-h5", data_root=str(h5_root), split="ssl4mis")
    with pytest.raises(DataError, match="split file .*nope.json does not exist"):
        open_dataset("acdc-h5", data_root=str(h5_root), split_file=str(tmp_path / "nope.json"))


def test_pixel_units_and_spacing_mm(h5_root):
    src, sets = load(h5_root, cache=False, split="ssl4mis")
    s = sets["train"]
    side = s.spacing[:, 0] * 32  # spacing 1.0 px: after resizing, the crop side (source pixels) / 32
    assert np.allclose(side, np.round(side), atol=1e-3) and (side >= 10).all()
    desc = src.describe()
    assert desc["spacing_unit"] == "px" and desc["splits"]["train"]["spacing"]["unit"] == "px"
    assert "spacing_mm" not in desc["splits"]["train"] and "spacing_mm" not in desc["native"]
    assert desc["native"]["spacing"] == {"in_plane_min": 1.0, "in_plane_max": 1.0, "thickness_min": None,
                                         "thickness_max": None, "unit": "px"}
    mm, mm_sets = load(h5_root, cache=False, split="ssl4mis", spacing_mm=1.5)
    assert mm.spacing_unit == "mm" and mm.describe()["splits"]["train"]["spacing"]["unit"] == "mm"
    np.testing.assert_allclose(mm_sets["train"].spacing, 1.5 * s.spacing, rtol=1e-6)
    np.testing.assert_array_equal(mm_sets["train"].masks, s.masks)
    aniso, an_sets = load(h5_root, cache=False, split="ssl4mis", spacing_mm=[1.2, 1.6])
    np.testing.assert_allclose(an_sets["train"].spacing[:, 0] / an_sets["train"].spacing[:, 1], 0.75, rtol=1e-5)
    assert aniso.describe()["native"]["spacing_mm"]["in_plane_max"] == pytest.approx(1.6)


@pytest.mark.parametrize("value", [0, -1.5, "big", [1.0, 2.0, 3.0], [], float("nan"), True])
def test_bad_spacing_mm(h5_root, value):
    with pytest.raises(CardiobenchError, match="spacing_mm must be a positive in-plane pixel spacing"):
        open_dataset("acdc-h5", data_root=str(h5_root), spacing_mm=value)


@pytest.mark.parametrize("layout", ["", "volumes", "ACDC_training_volumes"])
def test_layouts(tmp_path, layout):
    root = build_fake_h5(tmp_path, layout=layout)
    for arg in {root, root / layout}:
        src = open_dataset("acdc-h5", data_root=str(arg), size=32, split="ssl4mis", cache=False)
        assert src.root == (root / layout if layout else root)
        assert src.split_file == root / "split_ssl4mis.json"  # found beside the volumes or in their parent
    assert split_patients(src.load_all()) == {k: set(v) for k, v in SSL4MIS_SPLIT.items()}


def test_root_errors_and_env_var(h5_root, tmp_path, monkeypatch):
    monkeypatch.delenv("CARDIOBENCH_ACDC_H5_ROOT", raising=False)
    with pytest.raises(DataError, match="no --data-root given and CARDIOBENCH_ACDC_H5_ROOT is not set"):
        open_dataset("acdc-h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no patientNNN_frameFF.h5 files"):
        open_dataset("acdc-h5", data_root=str(tmp_path / "empty"))
    nifti = build_fake_acdc(tmp_path / "nifti")
    with pytest.raises(DataError, match="holds the NIfTI release .* - read it with --dataset acdc"):
        open_dataset("acdc-h5", data_root=str(nifti))
    with pytest.raises(DataError, match="but HDF5 volumes .* - read them with --dataset acdc-h5"):
        open_dataset("acdc", data_root=str(h5_root))
    monkeypatch.setenv("CARDIOBENCH_ACDC_H5_ROOT", str(h5_root))
    assert open_dataset("acdc-h5", size=32).root == h5_root / "volumes"


def test_cache_key_covers_split_split_file_and_spacing(h5_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "cache"))
    src, sets = load(h5_root)
    first = src.cache_path()
    assert src.cache_hit is False and first.is_file()
    again, again_sets = load(h5_root)
    assert again.cache_hit is True and again.cache_path() == src.cache_path()
    assert split_patients(again_sets) == split_patients(sets)
    assert again.describe()["split"]["name"] == "stratified" and again.describe()["spacing_unit"] == "px"
    paths = {src.cache_path()}
    for kw in ({"split": "ssl4mis"}, {"spacing_mm": 1.5}, {"test_fraction": 0.4}):
        paths.add(open_dataset("acdc-h5", data_root=str(h5_root), size=32, **kw).cache_path())
    assert len(paths) == 4
    ssl = open_dataset("acdc-h5", data_root=str(h5_root), size=32, split="ssl4mis").cache_path()
    changed = dict(SSL4MIS_SPLIT, val=["patient023"], test=[*SSL4MIS_SPLIT["test"], "patient003"])
    (h5_root / "split_ssl4mis.json").write_text(json.dumps(changed))
    assert open_dataset("acdc-h5", data_root=str(h5_root), size=32, split="ssl4mis").cache_path() != ssl
    f = volume_dir(h5_root) / "patient001_frame01.h5"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert open_dataset("acdc-h5", data_root=str(h5_root), size=32).cache_path() != first


# -- bad input: one DataError naming the file and the fix, exit 2 from the CLI, or a skip with skip_bad ---------


@pytest.mark.parametrize("case", list(BAD_H5_INPUTS))
def test_bad_input_raises_one_line_error_naming_the_file(h5_root, case):
    damage, expected, _ = BAD_H5_INPUTS[case]
    damage(volume_dir(h5_root))
    with pytest.raises(DataError) as exc:
        load(h5_root, cache=False)
    msg = exc.value.format_message()
    assert str(volume_dir(h5_root)) in msg and expected in msg and "\n" not in msg
    assert " - " in msg  # followed by what to do about it


@pytest.mark.parametrize("case", list(BAD_H5_INPUTS))
def test_bad_input_is_one_line_exit_2_from_the_cli(h5_root, case, tmp_path, monkeypatch):
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "cache"))  # the cache on: the fingerprint too
    damage, expected, _ = BAD_H5_INPUTS[case]
    damage(volume_dir(h5_root))
    result = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root), "--size", "32")
    assert_one_line_error(result, expected)


@pytest.mark.parametrize("case", list(BAD_H5_INPUTS))
def test_skip_bad_warns_skips_and_counts(h5_root, case):
    damage, expected, patient = BAD_H5_INPUTS[case]
    damage(volume_dir(h5_root))
    with pytest.warns(DataWarning, match=f"skipped {patient}: .*{expected[:20]}"):
        src, sets = load(h5_root, cache=False, skip_bad=True)
    used = set().union(*split_patients(sets).values())
    assert used == ALL_IDS - {patient}
    skipped = src.describe()["skipped"]
    assert [s["patient"] for s in skipped] == [patient] and expected in skipped[0]["problem"]


def test_skip_bad_from_the_cli(h5_root):
    BAD_H5_INPUTS["truncated HDF5"][0](volume_dir(h5_root))
    result = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root), "--size", "32",
                    "--skip-bad", "--no-cache", "--json")
    assert result.exit_code == 0, result.output
    assert "Warning: skipped patient001" in result.stderr and "1 bad patient" in result.stderr
    data = json.loads(result.stdout)
    assert data["skipped_count"] == 1 and data["skipped"][0]["patient"] == "patient001"


def test_nan_voxels_are_black_with_a_warning(h5_root):
    from fake_acdc_h5 import _rewrite

    from cardiobench.data.source import NonFiniteWarning

    path = volume_dir(h5_root) / "patient002_frame01.h5"

    def some_nan(d):
        d["image"].reshape(-1)[:3] = np.nan
        return d

    _rewrite(path, some_nan)
    with pytest.warns(NonFiniteWarning, match=rf"^{path}: 3 of \d+ voxels are NaN or infinite"):
        _, sets = load(h5_root, cache=False)
    assert all(np.isfinite(s.images).all() for s in sets.values())


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_info_shows_pixel_units_never_mm(h5_root):
    result = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root), "--size", "32",
                    "--no-cache")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "acdc-h5 - 32x32 slices" in out and "src px/px" in out and "mm/px" not in out
    assert "not stored in the files" in out and not re.search(r"\d\s+mm\b", out)  # no value in mm
    assert "split: stratified" in out
    mm = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root), "--size", "32", "--no-cache",
                "--dataset-opt", "spacing_mm=1.5")
    assert mm.exit_code == 0 and "mm/px" in mm.stdout and "1.50-1.50 mm (given with spacing_mm)" in mm.stdout


def test_info_json_with_dataset_opt(h5_root):
    result = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root), "--size", "32",
                    "--no-cache", "--json", "--dataset-opt", "split=ssl4mis")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["spacing_unit"] == "px" and data["split"]["name"] == "ssl4mis"
    assert {k: data["splits"][k]["patients"] for k in SSL4MIS_SPLIT} == {k: len(v) for k, v in SSL4MIS_SPLIT.items()}
    assert data["native"]["shapes"]["volumes"] == 2 * len(NUMBERS)
    bad = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root), "--dataset-opt", "split")
    assert_one_line_error(bad, "--dataset-opt 'split' is not KEY=VALUE")
    dup = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root), "--dataset-opt", "size=8")
    assert_one_line_error(dup, "duplicates an option of its own", "--size")
    unknown = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", str(h5_root), "--dataset-opt", "x=1")
    assert_one_line_error(unknown, "unknown option 'x' for data set 'acdc-h5'")


def test_registered_as_a_plugin_that_needs_data():
    data = json.loads(invoke("plugins", "--kind", "dataset", "--json").stdout)
    names = {c["name"]: c for c in data["components"]}
    assert names["acdc-h5"]["metadata"]["needs_data"] is True
    assert names["acdc-h5"]["metadata"]["root_env"] == "CARDIOBENCH_ACDC_H5_ROOT"


def test_a_read_only_tree_is_read_and_left_unchanged(h5_root, tmp_path, monkeypatch):
    """Shared data is often read-only: reading needs no write access (no HDF5 file locks) and writes nothing."""
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path / "cache"))
    ro = tmp_path / "ro"
    shutil.copytree(h5_root, ro)
    for p in [ro, *ro.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        before = {p: p.stat().st_mtime_ns for p in ro.rglob("*")}
        _, sets = load(ro)
        assert len(sets["train"]) > 0
        assert {p: p.stat().st_mtime_ns for p in ro.rglob("*")} == before
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_a_data_root_alone_selects_the_data_set_whose_layout_it_holds(tmp_path):
    from cardiobench.data import resolve_dataset_name

    h5 = tmp_path / "h5" / "volumes"
    h5.mkdir(parents=True)
    (h5 / "patient001_frame01.h5").write_bytes(b"")
    nifti = tmp_path / "nifti" / "database" / "training"
    nifti.mkdir(parents=True)
    assert resolve_dataset_name(None, tmp_path / "h5") == "acdc-h5"
    assert resolve_dataset_name(None, h5) == "acdc-h5"
    assert resolve_dataset_name(None, tmp_path / "nifti") == "acdc"
    assert resolve_dataset_name(None, tmp_path / "empty") == "acdc"  # the first reader says what is missing
    assert resolve_dataset_name("acdc", h5) == "acdc" and resolve_dataset_name(None, None) == "phantom"
