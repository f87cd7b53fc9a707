"""``nifti-pairs``: any folder of image / mask NIfTI pairs, with a label mapping, a CSV, and acdc's machinery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fake_acdc import write_nifti
from fake_nifti_pairs import BAD_PAIRS, GROUP_OF, MNMS_LABELS, build_fake_pairs

from cardiobench.data import GROUPS, SPLITS, open_dataset, resolve_dataset_name
from cardiobench.data.nifti_pairs import map_labels, parse_case, parse_labels, parse_pattern
from cardiobench.errors import CardiobenchError, DataError
from cardiobench.testing.cli import assert_one_line_error, invoke

MNMS = {"labels": MNMS_LABELS, "csv": "info.csv"}


@pytest.fixture
def pairs(tmp_path) -> Path:
    """A fresh fake folder, masks in the M&Ms order (1 LV, 2 MYO, 3 RV); tests may damage it."""
    return build_fake_pairs(tmp_path)


def info(root: Path, *opts: str, extra: tuple[str, ...] = ()):
    args = ["data", "info", "--dataset", "nifti-pairs", "--data-root", str(root), "--size", "32", *extra]
    for opt in opts:
        args += ["--dataset-opt", opt]
    return invoke(*args)


def mnms_opts() -> tuple[str, ...]:
    return (f"labels={MNMS_LABELS}", "csv=info.csv")


# -- reading --------------------------------------------------------------------------------------------------
def test_remapped_labels_give_the_acdc_order_masks(tmp_path):
    """The M&Ms-ordered folder read with labels={1: LV, 2: MYO, 3: RV} is slice for slice the ACDC-ordered one."""
    mnms = build_fake_pairs(tmp_path / "mnms")
    acdc = build_fake_pairs(tmp_path / "acdc", order="acdc")
    mapped = open_dataset("nifti-pairs", data_root=mnms, size=32, cache=False, **MNMS).load_all()
    truth = open_dataset("nifti-pairs", data_root=acdc, size=32, cache=False, csv="info.csv").load_all()
    for split in SPLITS:
        assert len(mapped[split]) > 0
        for name, arr in truth[split].arrays().items():
            np.testing.assert_array_equal(mapped[split].arrays()[name], arr, err_msg=f"{split}.{name}")
    unmapped = open_dataset("nifti-pairs", data_root=mnms, size=32, cache=False, csv="info.csv").load("train")
    np.testing.assert_array_equal(unmapped.masks == 1, mapped["train"].masks == 3)  # without it, RV and LV swap
    np.testing.assert_array_equal(unmapped.masks == 3, mapped["train"].masks == 1)


def test_info_json_groups_phases_spacing_and_splits(pairs):
    result = info(pairs, *mnms_opts(), extra=("--json",))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dataset"] == "nifti-pairs" and data["source"] == str(pairs)
    assert data["labels"] == {"1": "LV", "2": "MYO", "3": "RV"} and data["csv"] == str(pairs / "info.csv")
    splits = data["splits"]
    assert {s: splits[s]["patients"] for s in SPLITS} == {"train": 5, "val": 5, "test": 5}  # 1 per group each
    for group in ("NOR", "MINF", "DCM", "HCM", "RV"):  # the CSV's groups, three patients each
        assert sum(splits[s]["patients_by_group"][group] for s in SPLITS) == 3
    assert all(splits[s]["phases"]["ED"] == splits[s]["phases"]["ES"] > 0 for s in SPLITS)
    assert data["native"]["shapes"]["volumes"] == 30  # ED and ES of 15 patients; mm013's decoy frame not read
    assert data["native"]["spacing_mm"]["in_plane_min"] == pytest.approx(1.25)  # from the headers
    assert data["native"]["spacing_mm"]["in_plane_max"] == pytest.approx(1.60)
    assert data["spacing_unit"] == "mm" and data["split"]["name"] == "stratified"
    assert data["split"]["default_group_patients"] == []


def test_table_names_the_data_set_and_how_groups_were_found(pairs):
    result = info(pairs, *mnms_opts())
    assert result.exit_code == 0, result.output
    assert "nifti-pairs - 32x32 slices" in result.stdout
    assert "groups from" in result.stdout and "info.csv" in result.stdout


def test_csv_frames_pick_ed_and_es_not_the_decoy(pairs):
    source = open_dataset("nifti-pairs", data_root=pairs, size=32, cache=False, **MNMS)
    sets = source.load_all()
    for pid in ("mm013", "mm014"):
        s = next(sets[k] for k in SPLITS if pid in sets[k].patients)
        ed = s.masks[(s.patients == pid) & (s.phases == "ED")]
        assert len(ed) > 0 and set(np.unique(ed)) == {0, 1, 2, 3}  # a heart, not the decoy square of frame 01
        assert GROUPS[int(s.groups[s.patients == pid][0])] == GROUP_OF[pid] == "RV"  # from the CSV


def test_without_csv_every_patient_is_the_default_group(pairs):
    (pairs / "site2" / "mm013_frame01.nii.gz").unlink()  # without the CSV's frames, a patient keeps two
    (pairs / "site2" / "mm013_frame01_gt.nii.gz").unlink()
    source = open_dataset("nifti-pairs", data_root=pairs, size=32, cache=False, labels=MNMS_LABELS,
                          default_group="HCM")
    desc = source.describe()
    assert sum(desc["splits"][s]["patients_by_group"]["HCM"] for s in SPLITS) == 15
    assert len(desc["split"]["default_group_patients"]) == 15
    assert "15 patient(s) without a group counted as HCM" in desc["split"]["detail"]
    train = source.load("train")
    assert set(np.unique(train.phases)) == {"ED", "ES"}  # mm013: lower frame ED, higher ES


def test_three_frames_without_csv_is_bad_input(pairs):
    with pytest.raises(DataError, match="mm013 has 3 frames"):
        open_dataset("nifti-pairs", data_root=pairs, size=32, cache=False, labels=MNMS_LABELS).load("train")


def test_nnunet_layout_and_single_volume_patients(tmp_path):
    root = tmp_path / "nnunet"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        mask = np.zeros((30, 34, 3), np.uint8)
        mask[8:22, 9:25, :2] = 1  # a block of value 1 = LV in this data set
        mask[12:18, 13:21, :2] = 2
        write_nifti(root / "imagesTr" / f"heart_{k:03d}_0000.nii.gz", rng.normal(size=mask.shape), (1.2, 1.3, 6.0))
        write_nifti(root / "labelsTr" / f"heart_{k:03d}.nii.gz", mask, (1.2, 1.3, 6.0))
    source = open_dataset("nifti-pairs", data_root=root, size=16, cache=False, image_pattern="imagesTr/*_0000",
                          mask_pattern="labelsTr/*.nii.gz", labels={"1": "LV", "2": "background"})
    sets = source.load_all()
    assert sum(len(np.unique(s.patients)) for s in sets.values()) == 6
    for s in sets.values():
        assert set(np.unique(s.phases)) <= {"ED"} and set(np.unique(s.masks)) <= {0, 3}  # one volume each: ED
    native = source.describe()["native"]["spacing_mm"]
    assert (native["in_plane_min"], native["in_plane_max"]) == pytest.approx((1.2, 1.3))


def test_cache_hit_and_what_invalidates_it(pairs):
    first = open_dataset("nifti-pairs", data_root=pairs, size=32, **MNMS)
    first.load("train")
    again = open_dataset("nifti-pairs", data_root=pairs, size=32, **MNMS)
    again.load("train")
    assert first.cache_hit is False and again.cache_hit is True and again.cache_path() == first.cache_path()
    other_labels = open_dataset("nifti-pairs", data_root=pairs, size=32, csv="info.csv")
    assert other_labels.cache_path() != first.cache_path()
    (pairs / "info.csv").write_text((pairs / "info.csv").read_text().replace("mm001,NOR", "mm001,MINF"))
    assert open_dataset("nifti-pairs", data_root=pairs, size=32, **MNMS).cache_path() != first.cache_path()
    before = open_dataset("nifti-pairs", data_root=pairs, size=32, **MNMS).cache_key()
    st = (pairs / "mm002_ED.nii.gz").stat()
    os.utime(pairs / "mm002_ED.nii.gz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert open_dataset("nifti-pairs", data_root=pairs, size=32, **MNMS).cache_key() != before


def test_data_root_alone_does_not_pick_nifti_pairs(pairs):
    assert resolve_dataset_name(None, pairs) == "acdc"  # no root_markers: acdc stays the fallback
    result = invoke("data", "info", "--data-root", str(pairs))
    assert_one_line_error(result, "holds no training/ or testing/ folder")


def test_plugin_is_listed_with_its_metadata():
    data = json.loads(invoke("plugins", "--kind", "dataset", "--json").stdout)
    comp = {c["name"]: c for c in data["components"]}["nifti-pairs"]
    assert comp["metadata"]["needs_data"] is True and "root_markers" not in comp["metadata"]


# -- bad input: one line, exit 2 --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(BAD_PAIRS))
def test_bad_input_is_one_line_exit_2(pairs, case):
    damage, expected = BAD_PAIRS[case]
    damage(pairs)
    assert_one_line_error(info(pairs, *mnms_opts()), expected)
    assert_one_line_error(info(pairs, *mnms_opts(), extra=("--no-cache",)), expected)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(info(tmp_path / "empty"), "no NIfTI files (.nii.gz, .nii)")


def test_no_file_matches_the_mask_pattern(pairs):
    assert_one_line_error(info(pairs, "mask_pattern=*_seg"), "matches mask_pattern '*_seg'", "set mask_pattern")


@pytest.mark.parametrize(("opt", "expected"), [
    ('labels={"1":"LV","2":"MYOCARDIUM","3":"RV"}', "labels: mask value 2 maps to 'MYOCARDIUM', which is not a "
                                                    "structure - use one of: background, RV, MYO, LV"),
    ('labels={"one":"LV"}', "labels: key 'one' is not a mask value"),
    ("labels={1:LV}", "labels is not a JSON object"),
    ('labels={"0":"LV"}', "mask value 0 is background"),
    ("mask_pattern=gt", "mask_pattern must be a relative file name pattern with exactly one *"),
    ("image_pattern=*_*", "image_pattern must be"),
    ('groups={"HHD":"HYPERTROPHY"}', "groups: 'HHD' maps to 'HYPERTROPHY', not a pathology group"),
    ("default_group=healthy", "default_group is 'healthy', not a pathology group"),
    ("csv=nope.csv", "nope.csv: csv file missing"),
    ("test_fraction=1.5", "test_fraction must be in [0, 1)"),
    ("spacing_mm=1.5", "unknown option 'spacing_mm' for data set 'nifti-pairs'"),
])
def test_bad_options_are_one_line_exit_2(pairs, opt, expected):
    assert_one_line_error(info(pairs, opt), expected)


def test_bad_csv_is_one_line(pairs):
    (pairs / "info.csv").write_text("name,group\nmm001,NOR\n")
    assert_one_line_error(info(pairs, *mnms_opts()), "info.csv: no patient column (columns: name, group)")
    (pairs / "info.csv").write_text("patient,group,ED,ES\nmm001,NOR,,\nmm001,DCM,,\n")
    assert_one_line_error(info(pairs, *mnms_opts()), "patient mm001 is listed twice (lines 2 and 3)")
    (pairs / "info.csv").write_text("patient,group,ED,ES\nmm013,DCM,first,11\n")
    assert_one_line_error(info(pairs, *mnms_opts()), "line 2: ED is 'first', not a frame number")


def test_groups_option_maps_csv_values(pairs):
    csv = pairs / "info.csv"
    csv.write_text(csv.read_text().replace("mm001,NOR", "mm001,HHD").replace("mm004,MINF", "mm004,ihd"))
    result = info(pairs, *mnms_opts(), 'groups={"HHD":"NOR","IHD":"minf"}', extra=("--json",))
    assert result.exit_code == 0, result.output
    splits = json.loads(result.stdout)["splits"]
    assert sum(splits[s]["patients_by_group"]["NOR"] for s in SPLITS) == 3


def test_skip_bad_skips_the_patient_once(pairs):
    BAD_PAIRS["mask without its image"][0](pairs)
    BAD_PAIRS["image without its mask"][0](pairs)  # the same patient, twice bad: one line
    result = info(pairs, *mnms_opts(), extra=("--skip-bad", "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["skipped_count"] == 1 and data["skipped"][0]["patient"] == "mm001"
    assert sum(data["splits"][s]["patients"] for s in SPLITS) == 14  # mm001's complete pairs are not used either
    assert "Warning: skipped mm001:" in result.stderr


# -- training, end to end -------------------------------------------------------------------------------------
def test_trains_on_nifti_pairs(pairs, tmp_path):
    out = tmp_path / "ckpt"
    result = invoke("train", "--preset", "tiny", "--dataset", "nifti-pairs", "--data-root", str(pairs),
                    "--set", f"data.options.labels={MNMS_LABELS}", "--set", "data.options.csv=info.csv",
                    "--steps", "2", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "trained" and data["step"] == 2 and Path(data["checkpoint"]).is_file()
    assert data["spec"]["dataset"] == "nifti-pairs"
    bad = invoke("train", "--preset", "tiny", "--dataset", "nifti-pairs", "--data-root", str(pairs),
                 "--set", 'data.options.labels={"1":"LV","2":"MUSCLE","3":"RV"}', "--steps", "2",
                 "--out", str(tmp_path / "other"))
    assert_one_line_error(bad, "'MUSCLE', which is not a structure")


# -- helpers ----------------------------------------------------------------------------------------------------
def test_parse_case():
    assert parse_case("site/p1_ED") == ("p1", "ED", None)
    assert parse_case("p1-es") == ("p1", "ES", None)
    assert parse_case("training/patient001/patient001_frame12") == ("patient001", None, 12)
    assert parse_case("heart_003") == ("heart_003", None, None)


def test_parse_pattern_and_labels():
    pat = parse_pattern("*_sa_gt.nii.gz", "mask_pattern")
    assert pat.text == "*_sa_gt" and pat.case("A0S9V9/A0S9V9_sa_gt") == "A0S9V9/A0S9V9"
    assert pat.case("A0S9V9/A0S9V9_sa") is None
    assert parse_pattern("img?/*", "image_pattern").case("img1/x") == "x"
    assert parse_labels(None) == {1: 1, 2: 2, 3: 3}
    assert parse_labels({"1": "lv", "2": "MYO", "3": "RV", "4": "background"}) == {1: 3, 2: 2, 3: 1, 4: 0}
    with pytest.raises(CardiobenchError, match="not a structure"):
        parse_labels({"1": "scar"})


def test_map_labels_rejects_unknown_and_non_integer_values(tmp_path):
    table = parse_labels(MNMS_LABELS)
    mask = np.array([[0, 1], [2, 3]], np.int16)
    np.testing.assert_array_equal(map_labels(mask, tmp_path / "m.nii.gz", table), [[0, 3], [2, 1]])
    with pytest.raises(DataError, match=r"label values 4, 7 not in the labels mapping \(1 LV, 2 MYO, 3 RV\)"):
        map_labels(np.array([0, 4, 7, 1]), tmp_path / "m.nii.gz", table)
    with pytest.raises(DataError, match="label values are not integers"):
        map_labels(np.array([0.0, 1.5]), tmp_path / "m.nii.gz", table)
