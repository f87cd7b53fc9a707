"""A board people can read (issue 20): headline columns first and whole at 120 columns, ``--columns``,
``--all-metrics``, headline and sort key from the metric plugins' metadata, one formatting rule per column,
the real-vs-real reference kept, the HD95 missing count beside every HD95 figure."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from lb_demo import fill_full_store, full_generation_runs, full_segmentation_runs, generation_runs

from cardiobench.hookspecs import hookimpl
from cardiobench.results import report
from cardiobench.results.store import ResultStore, RunRecord
from cardiobench.testing.cli import invoke

ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: a terminal 120 columns wide (rich reads TTY_COMPATIBLE; colours are stripped below)
TERMINAL_120 = {"TTY_COMPATIBLE": "1", "COLUMNS": "120", "LINES": "60"}


@pytest.fixture
def full(tmp_path) -> ResultStore:
    return fill_full_store(tmp_path / "res")


def numbered(runs: list[RunRecord]) -> list[RunRecord]:
    for i, run in enumerate(runs, 1):
        run.id = i
        run.spec_hash = run.spec_hash or f"spec{i}"
    return runs


def terminal(*args: str) -> str:
    result = invoke("leaderboard", *args, env=TERMINAL_120)
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout)


# -- item 4: headline columns first, whole, in 120 columns ------------------------------------------------
def test_fid_kid_and_is_are_whole_in_a_120_column_terminal(full):
    out = terminal("--results", str(full.path))
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "…" not in out
    gen = out[: out.index("segmentation ·")]
    header = next(line for line in gen.splitlines() if "FID ↓" in line)
    assert header.index("FID ↓") < header.index("KID ↓") < header.index("IS ↑")  # headline first, in order
    for value in ("0.62", "0.0007", "3.090", "27.20", "0.0310", "1.590"):
        assert f" {value} " in gen, value
    assert "precision" not in header and "more columns (fid_relative, kid_std" in " ".join(gen.split())
    assert "--all-metrics or --columns" in " ".join(gen.split())
    # identical identity values move to one line instead of squeezing the columns
    assert "every run: noise gaussian · sampler ddim · steps 25 · backbone unet · seeds 0" in gen


def test_all_metrics_shows_the_rest_split_into_tables_that_fit(full):
    out = terminal("--results", str(full.path), "--all-metrics", "--task", "generation")
    assert max(len(line) for line in out.splitlines()) <= 120 and "…" not in out
    for label in ("FID ↓", "precision ↑", "recall ↑", "anatomy_empty ↓", "FID per class mean ↓"):
        assert label in out, label
    assert "(columns, part 1 of" in out
    assert out.index("FID ↓") < out.index("precision ↑")  # headline in the first part


def test_a_piped_table_is_headline_first_and_never_folded(full):
    out = invoke("leaderboard", "--results", str(full.path), "--task", "segmentation").stdout
    header = next(line for line in out.splitlines() if "Dice mean ↑" in line)
    assert header.index("Dice mean ↑") < header.index("HD95 mean (px) ↓") < header.index("HD95 penalised mean")
    assert "Dice RV" not in out and "…" not in out


def test_columns_picks_and_orders_the_columns(full):
    result = invoke("leaderboard", "--results", str(full.path), "--task", "generation",
                    "--columns", "conditioning,kid,fid", "-f", "md")
    assert result.exit_code == 0, result.output
    assert "| # | conditioning | KID ↓ | FID ↓ | run |" in result.stdout
    assert "| 1 | classifier-free s=1 | **0.0007** | **0.62** | 2 |" in result.stdout
    table = invoke("leaderboard", "--results", str(full.path), "--task", "generation", "--columns", "is").stdout
    assert "IS ↑" in table and "FID ↓" not in table.split("sorted by")[0]
    assert "sorted by FID ↓ (lower is better)" in table  # still ranked by FID, though not shown


def test_an_unknown_column_is_one_line_listing_the_valid_ones_exit_2(full):
    result = invoke("leaderboard", "--results", str(full.path), "--columns", "fid,fidd")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert "unknown column 'fidd' for --columns" in line and "did you mean 'fid'?" in line
    assert "valid columns: noise, sampler, steps, backbone, conditioning, seeds" in line and ", kid," in line


def test_headline_and_default_sort_come_from_the_plugins_metadata(register_plugin):
    class Zeta:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            register("zeta", lambda: None, summary="a test metric", tasks=("generation",),
                     direction={"zeta": "higher"}, order=-1, headline=("zeta",), sort_key="zeta")

    runs = numbered([RunRecord(task="generation", dataset="phantom", noise=n, evaluator_id="ev",
                               metrics={"fid": f, "kid": 0.01, "zeta": z, "other": 1.0},
                               directions={"fid": "lower", "zeta": "higher"})
                     for n, f, z in (("a", 5.0, 0.1), ("b", 9.0, 0.9))])
    (board,) = report.build_boards(runs)
    assert board.sort_metric == "fid" and [m.name for m in board.metrics][:2] == ["fid", "kid"]
    register_plugin(Zeta(), name="zeta-plugin")
    (board,) = report.build_boards(runs, headline_only=True)
    assert board.sort_metric == "zeta" and [r.noise for r in board.rows] == ["b", "a"]
    assert [m.name for m in board.metrics] == ["zeta", "fid", "kid"] and board.hidden == ["other"]


def test_no_metric_name_is_known_to_the_report():
    """Metadata of made-up components decides it all: no built-in name is needed."""
    comps = [SimpleNamespace(name="m2", metadata={"tasks": ("generation",), "order": 2, "headline": ("b",)}),
             SimpleNamespace(name="m1", metadata={"tasks": ("generation",), "order": 1, "headline": ("c", "a"),
                                                  "sort_key": "a", "counts": {"c": "c_n"}})]
    meta = report.meta_from_components(comps)
    assert meta.headline == {"generation": ("c", "a", "b")} and meta.sort_keys == {"generation": "a"}
    runs = numbered([RunRecord(task="generation", dataset="d", noise=str(i), evaluator_id="ev",
                               metrics={"fid": 1.0 + i, "a": a, "b": 2.0, "c": 3.0, "c_n": i},
                               directions={"a": "lower", "fid": "lower"}) for i, a in ((1, 7.0), (2, 3.0))])
    (board,) = report.build_boards(runs, meta=meta, headline_only=True)
    assert board.sort_metric == "a" and [m.name for m in board.metrics] == ["a", "c", "b"]
    assert [r.noise for r in board.rows] == ["2", "1"] and board.metric("c").count == "c_n"
    assert board.hidden == ["fid"]
    (plain,) = report.build_boards(runs, meta=report.MetricMeta())  # nothing described: first directed metric
    assert plain.sort_metric == "fid" and [m.name for m in plain.metrics][0] == "fid"


def test_an_html_board_scrolls_inside_its_own_box(full):
    page = report.to_html(report.build_boards(full.runs()), results_dir=full.path.parent)
    assert page.count("<table>") == 2 and page.count('<div class="wrap"><table>') == 2
    rule = re.search(r"\.wrap \{([^}]*)\}", page).group(1)
    assert "overflow-x: auto" in rule and "max-width: 100%" in rule


# -- item 6: the reference, one format per column ------------------------------------------------------
def test_the_real_vs_real_reference_is_kept_in_every_format(full):
    boards = report.build_boards(full.runs())
    gen = boards[0]
    assert gen.references == [("real vs real", full_generation_runs()[0].context["reference"])]
    text = report.render(boards, "table")
    ref_line = next(line for line in text.splitlines() if "real vs real" in line)
    assert "0.06" in ref_line and "0.0001" in ref_line and "2.950" in ref_line
    md = report.render(boards, "md")
    assert "|  | real vs real |  |  |  |  |  | 0.06 | 0.0001 | 2.950 |" in md
    rows = list(csv.DictReader(io.StringIO(report.render(boards, "csv"))))
    assert rows[0]["fid_reference"] == "0.06" and rows[0]["is_reference"] == "2.95"
    data = json.loads(report.render(boards, "json"))["boards"][0]
    assert data["references"][0]["metrics"]["fid"] == 0.06 and data["rows"][0]["reference"]["kid"] == 0.0001
    page = report.render(boards, "html")
    assert '<tr class="ref">' in page and "<td>real vs real</td>" in page
    assert not boards[1].references  # segmentation has none


def test_a_row_stored_before_the_reference_takes_it_from_its_run_folder(tmp_path):
    """``cardiobench run`` has always written the reference into runs/SPEC/metrics.json."""
    store = ResultStore(tmp_path / "results.db")
    run = generation_runs()[0]
    run.artefacts["metrics"] = f"/elsewhere/runs/{run.spec_hash[:12]}/metrics.json"
    store.add_run(run)
    folder = tmp_path / "runs" / run.spec_hash[:12]
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"spec_hash": run.spec_hash, "metrics": run.metrics,
                                                     "reference": {"fid": 0.05, "kid": 0.0002, "is": 2.9}}))
    out = invoke("leaderboard", "--results", str(store.path)).stdout
    ref_line = next(line for line in out.splitlines() if "real vs real" in line)
    assert "0.05" in ref_line and "0.0002" in ref_line and "2.900" in ref_line
    outside = tmp_path / "metrics.json"  # a file outside the run's folder is never read
    (folder / "metrics.json").unlink()
    (folder / "metrics.json").symlink_to(outside)
    outside.write_text(json.dumps({"reference": {"fid": 1.0}}))
    assert "real vs real" not in invoke("leaderboard", "--results", str(store.path)).stdout


def test_one_formatting_rule_per_column():
    runs = numbered([RunRecord(task="generation", dataset="d", noise=n, evaluator_id="ev",
                               metrics={"cond_accuracy": v, "count": c}, directions={"cond_accuracy": "higher"})
                     for n, v, c in (("a", 1, 3), ("b", 0.9525, 12))])
    (board,) = report.build_boards(runs)
    assert [board.metric("cond_accuracy").text(r) for r in board.rows] == ["1.000", "0.953"]
    assert [board.metric("count").text(r) for r in board.rows] == ["3", "12"]  # a count stays whole
    (table,) = report.rich_tables([board])
    cells = list(next(c for c in table.columns if c.header.startswith("cond")).cells)
    assert cells == ["[bold green]1.000[/]", "0.953"]
    fmt = report.column_formatter([1, 0.9525, None])
    assert (fmt(1), fmt(0.9525), fmt(None)) == ("1.000", "0.953", "–")


# -- item 12: the HD95 missing count beside every HD95 figure -----------------------------------------
def test_the_missing_count_is_beside_every_hd95_figure_in_every_format():
    boards = report.build_boards(numbered(full_segmentation_runs()), details=False)
    (board,) = boards
    assert board.metric("hd95_mean").count == "hd95_missing" and board.metric("hd95_lv").count == "hd95_missing_lv"
    assert "hd95_missing" not in [m.name for m in board.metrics]  # beside the figures, not a column of its own
    text = report.render(boards, "table")
    assert "3.620 (5 missing)" in text and "5.480 (5 missing)" in text and "2.940 (0 missing)" in text
    md = report.render(boards, "md")
    assert "| 3.620 (5 missing) | 5.480 (5 missing) |" in md and "| 4.720 (5 missing) |" in md
    assert "5.480 (5 missing)" in report.render(boards, "html")
    [*_, row] = list(csv.DictReader(io.StringIO(report.render(boards, "csv"))))
    assert row["hd95_mean"] == "3.62" and row["hd95_mean_missing"] == "5" and row["hd95_lv_missing"] == "0"
    assert row["hd95_penalised_mean_missing"] == "5"
    data = json.loads(report.render(boards, "json"))["boards"][0]
    assert data["rows"][1]["missing"] == {"hd95_mean": 5, "hd95_penalised_mean": 5, "hd95_rv": 5, "hd95_myo": 0,
                                          "hd95_lv": 0}
    assert {m["name"]: m.get("count") for m in data["metrics"]}["hd95_mean"] == "hd95_missing"


def test_old_rows_without_the_new_values_still_render():
    old = RunRecord(task="segmentation", dataset="acdc", noise="gaussian", evaluator_id="seg-acdc-1",
                    metrics={"dice_mean": 0.9, "hd95_mean": 4.0, "hd95_lv": 3.0, "hd95_missing": 2},
                    directions={"dice_mean": "higher", "hd95_mean": "lower"})
    boards = report.build_boards(numbered([old]))
    for fmt in report.FORMATS:
        assert report.render(boards, fmt)
    text = report.render(boards, "table")
    assert "4.000 (2 missing)" in text and " 3.000 " in text  # no per-structure count stored: none shown
    assert "HD95 penalised" not in text


def test_the_demo_board_keeps_its_exports(tmp_path):
    """The format demo of docs/leaderboard.md renders with the new columns (smoke test of every format)."""
    store = fill_full_store(tmp_path)
    for fmt in report.FORMATS:
        text = report.render(report.build_boards(store.runs()), fmt, results_dir=Path(tmp_path))
        assert "hd95" in text.lower(), fmt


def test_the_store_keeps_and_checks_the_reference(tmp_path):
    import numpy as np

    from cardiobench.results.store import StoreError

    store = ResultStore(tmp_path / "results.db")
    run = generation_runs()[0]
    run.context["reference"] = {"fid": np.float32(0.5), "kid": None}
    store.add_run(run)
    assert store.get(run.id).context["reference"] == {"fid": 0.5, "kid": None}
    bad = generation_runs()[1]
    bad.context["reference"] = {"fid": "low"}
    with pytest.raises(StoreError, match="context reference 'fid' must be a number or None"):
        store.add_run(bad)


def test_a_non_default_representation_shows_beside_the_noise_process():
    from cardiobench.results.report import cell
    from cardiobench.results.store import RunRecord

    def row(train: dict) -> RunRecord:
        return RunRecord(task="generation", dataset="phantom", noise="gaussian", sampler="ddpm", backbone="unet",
                         spec={"train": train})

    assert cell(row({"noise": "gaussian"}), "noise") == "gaussian"
    assert cell(row({"noise": "gaussian", "representation": "bits"}), "noise") == "gaussian (bits)"


def test_a_latent_runs_ceiling_shows_only_its_dice_and_fid_by_default():
    from cardiobench.autoencoders.runs import CEILING_PREFIX as RUNS_PREFIX
    from cardiobench.results.report import CEILING_PREFIX, is_detail_metric

    assert CEILING_PREFIX == RUNS_PREFIX  # the store's names and the board's rule agree
    assert not is_detail_metric("ceiling_fid") and not is_detail_metric("ceiling_recon_dice_mean")
    for name in ("ceiling_kid", "ceiling_anatomy_holes_in_lv", "ceiling_precision", "ceiling_fid_relative"):
        assert is_detail_metric(name), name
    assert not is_detail_metric("fid") and is_detail_metric("anatomy_holes_in_lv")
