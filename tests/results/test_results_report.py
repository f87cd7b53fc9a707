"""Ranking runs into boards, and the Markdown / CSV / JSON / HTML renderers."""

from __future__ import annotations

import base64
import csv
import io
import json

import pytest
from lb_demo import fill_demo_store, throughput_runs

from cardiobench.hookspecs import hookimpl
from cardiobench.results import report
from cardiobench.results.store import RunRecord


def numbered(runs: list[RunRecord]) -> list[RunRecord]:
    for i, run in enumerate(runs, 1):
        run.id = i
        run.spec_hash = run.spec_hash or f"spec{i}"
    return runs


def gen(noise, sampler, metrics, evaluator="ev1", directions=None, **kw) -> RunRecord:
    return RunRecord(task="generation", dataset="phantom", noise=noise, sampler=sampler, backbone="unet",
                     metrics=metrics, evaluator_id=evaluator,
                     directions=directions if directions is not None else {"fid": "lower", "is": "higher"}, **kw)


def test_rows_of_different_evaluators_are_never_ranked_together():
    runs = numbered([gen("gaussian", "ddpm", {"fid": 20.0}, "evA"), gen("blurring", "ddpm", {"fid": 5.0}, "evB"),
                     gen("gaussian", "ddim", {"fid": 10.0}, "evA")])
    boards = report.build_boards(runs)
    assert [(b.ruler, [r.id for r in b.rows]) for b in boards] == [("evA", [3, 1]), ("evB", [2])]
    assert all(b.ruler_kind == "evaluator" for b in boards)


def test_volumes_are_never_ranked_with_slices():
    ctx = {"n_samples": 64, "distance_unit": "px"}
    runs = numbered([gen("gaussian", "ddim", {"fid": 0.2}, context=dict(ctx)),
                     gen("gaussian", "ddim", {"fid": 0.4}, context={**ctx, "volume_shape": [8, 32, 32]}),
                     gen("blurring", "ddim", {"fid": 0.3}, context={**ctx, "volume_shape": [8, 32, 32]})])
    boards = report.build_boards(runs)
    assert sorted(sorted(r.id for r in b.rows) for b in boards) == [[1], [2, 3]]
    volumes = next(b for b in boards if b.volume_shape)
    assert volumes.volume_shape == (8, 32, 32) and "64 volumes of 8x32x32" in volumes.heading
    assert "64 samples" in next(b for b in boards if not b.volume_shape).heading


def test_best_first_by_direction_and_best_marked_per_column():
    runs = numbered([gen("a", "ddpm", {"fid": 20.0, "is": 2.5}), gen("b", "ddpm", {"fid": 10.0, "is": 1.5}),
                     gen("c", "ddpm", {"fid": None, "is": 3.0})])
    (board,) = report.build_boards(runs)
    assert board.sort_metric == "fid" and [r.noise for r in board.rows] == ["b", "a", "c"]  # missing value last
    assert board.metric("fid").best == 10.0 and board.metric("is").best == 3.0
    assert board.metric("fid").label == "FID ↓" and board.metric("is").label == "IS ↑"
    (board,) = report.build_boards(runs, sort="is")
    assert [r.noise for r in board.rows] == ["c", "a", "b"]
    assert [m.name for m in board.metrics] == ["is", "fid"]  # the sort metric comes first


def test_nothing_is_marked_best_when_there_is_nothing_to_beat():
    runs = numbered([gen("a", "ddpm", {"fid": 7.0, "is": 2.0}), gen("b", "ddpm", {"fid": 9.0, "is": 2.0})])
    (board,) = report.build_boards(runs)
    assert board.metric("is").best is None and board.metric("fid").best == 7.0
    (single,) = report.build_boards(runs[:1])
    assert single.metric("fid").best is None


def test_unknown_sort_metric_lists_the_available_ones():
    runs = numbered([gen("a", "ddpm", {"fid": 1.0, "kid": 0.1})])
    with pytest.raises(report.LeaderboardError) as exc:
        report.build_boards(runs, sort="fd")
    assert "unknown metric 'fd'" in str(exc.value) and "did you mean 'fid'" in str(exc.value)
    assert "available: fid, kid" in str(exc.value)


def test_directions_come_from_runs_then_known_then_unknown():
    runs = numbered([gen("a", "ddpm", {"dice": 0.8, "oddity": 1.0}, directions={}),
                     gen("b", "ddpm", {"dice": 0.9, "oddity": 3.0}, directions={})])
    (board,) = report.build_boards(runs, known_directions={"dice": "higher"})
    assert board.sort_metric == "dice" and board.metric("dice").direction == "higher"
    assert [r.noise for r in board.rows] == ["b", "a"]
    assert board.metric("oddity").direction is None and board.metric("oddity").best is None
    assert board.metric("oddity").label == "oddity"
    (board,) = report.build_boards(runs, sort="oddity")
    assert [r.noise for r in board.rows] == ["b", "a"] and "direction of 'oddity' unknown" in board.notes[0]


def test_registry_directions_read_metric_plugins(register_plugin):
    class Metrics:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            register("test-fid", lambda **kw: None, summary="Fréchet distance", direction="lower")
            register("test-dice", lambda **kw: None, summary="Dice",
                     direction={"test_dice_mean": "higher", "test_dice_lv": "higher"})

    register_plugin(Metrics(), name="test-metrics")
    directions = report.registry_directions()
    expected = {"test-fid": "lower", "test_dice_mean": "higher", "test_dice_lv": "higher"}
    assert {k: directions.get(k) for k in expected} == expected


def test_latest_run_per_spec_unless_all():
    runs = numbered([gen("a", "ddpm", {"fid": 5.0}, spec_hash="s"), gen("a", "ddpm", {"fid": 7.0}, spec_hash="s")])
    (board,) = report.build_boards(runs)
    assert [r.id for r in board.rows] == [2]
    (board,) = report.build_boards(runs, latest_only=False)
    assert [r.id for r in board.rows] == [1, 2]


def test_failed_runs_are_not_ranked():
    runs = numbered([gen("a", "ddpm", {"fid": 5.0}), gen("b", "ddpm", {"fid": 1.0}, status="failed")])
    (board,) = report.build_boards(runs)
    assert [r.noise for r in board.rows] == ["a"]


def test_throughput_is_grouped_by_device():
    boards = report.build_boards(numbered(throughput_runs()))
    assert [(b.ruler_kind, b.ruler) for b in boards] == [("device", "demo GPU"), ("device", "demo CPU")]
    assert all(b.sort_metric == "images_per_s" and b.rows[0].sampler == "ddim" for b in boards)
    assert [c.key for c in boards[0].columns] == ["backbone", "noise", "sampler", "steps", "batch", "dtype"]


@pytest.mark.parametrize(
    "values, decimals", [([12.5, 130.2], 1), ([0.0123, 0.02], 4), ([1.5, 2.25], 3), ([25000.0], 0), ([], 3)]
)
def test_one_number_of_decimals_per_column(values, decimals):
    assert report.decimals_for(values) == decimals


def test_format_value():
    assert report.format_value(None) == "–"
    assert report.format_value(24510.0, 490.2, 0) == "24,510 ± 490"
    assert report.format_value(0.01234) == "0.0123"
    assert report.format_value(3) == "3"


@pytest.fixture
def demo_boards(tmp_path):
    store = fill_demo_store(tmp_path)
    return report.build_boards(store.runs()), store


def test_markdown(demo_boards):
    boards, _ = demo_boards
    md = report.to_markdown(boards)
    assert "### generation · phantom — evaluator `ev-7c1e2a9f`" in md
    assert "| # | noise | sampler | steps | backbone | seeds | FID ↓ | KID ↓ | IS ↑ | plausible ↑ | run |" in md
    assert "| 1 | blurring | ddpm | 50 | unet | 0 | **15.86 ± 0.63** |" in md
    assert "### throughput · phantom — device `demo CPU`" in md


def test_csv_is_one_flat_table(demo_boards):
    boards, _ = demo_boards
    rows = list(csv.DictReader(io.StringIO(report.to_csv(boards))))
    assert len(rows) == 13
    first_gen = next(r for r in rows if r["ruler"] == "ev-7c1e2a9f" and r["n_samples"] == "256")
    assert first_gen["rank"] == "1" and first_gen["noise"] == "blurring" and float(first_gen["fid"]) == 15.86
    assert first_gen["fid_spread"] == "0.63" and first_gen["images_per_s"] == ""


def test_json_has_directions_and_best(demo_boards):
    boards, _ = demo_boards
    data = json.loads(report.to_json(boards))
    assert data["format"] == "cardiobench.leaderboard/1"
    board = next(b for b in data["boards"] if b["ruler"] == "ev-7c1e2a9f" and b["n_samples"] == 256)
    assert board["metrics"][0] == {"name": "fid", "label": "FID ↓", "direction": "lower", "unit": None, "best": 15.86}
    assert board["n_samples"] == 256 and board["distance_unit"] == "mm" and board["ruler_flags"] == []
    assert board["rows"][0]["context"] == {"n_samples": 256, "distance_unit": "mm"}
    assert board["rows"][0]["best"] == ["fid", "kid", "is", "plausible"]
    assert board["rows"][0]["artefacts"]["sample_grid"].endswith(".png")


def test_html_is_self_contained_with_grids(demo_boards, tmp_path):
    boards, store = demo_boards
    page = report.to_html(boards, base_dirs=[store.path.parent], source=str(store.path),
                          results_dir=store.path.parent)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "src=\"http" not in page and "<link" not in page and "<script" not in page
    uris = page.split('src="data:image/png;base64,')[1:]
    assert len(uris) == 4  # one grid per generation run that has one
    png = base64.b64decode(uris[0].split('"', 1)[0])
    assert png.startswith(b"\x89PNG")
    assert 'class="num best">15.86 ± 0.63<' in page and "FID ↓" in page


def test_html_escapes_and_resolves_relative_grid_paths(tmp_path):
    from lb_demo import grid_png

    grid_png(tmp_path / "runs" / "spec1" / "g.png", seed=1)  # the run's folder: runs/SPEC_HASH[:12]
    run = numbered([gen("<b>x</b>", "ddpm", {"fid": 1.0}, artefacts={"sample_grid": "runs/spec1/g.png"})])[0]
    page = report.to_html(report.build_boards([run]), base_dirs=[tmp_path], results_dir=tmp_path)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.count("data:image/png;base64,") == 1
    missing = numbered([gen("a", "ddpm", {"fid": 1.0}, artefacts={"sample_grid": "nowhere.png"})])
    page = report.to_html(report.build_boards(missing), results_dir=tmp_path)
    assert "data:image" not in page and "run 1: artefact not embedded: file not found" in page


def test_text_render_does_not_fold(demo_boards):
    boards, _ = demo_boards
    text = report.render(boards, "table")
    assert "plausible ↑" in text and "25,245 ± 490" in text
    with pytest.raises(report.LeaderboardError):
        report.render(boards, "pdf")



def test_terminal_table_marks_best_bold_green_and_escapes_markup():
    runs = numbered([gen("[red]x", "ddpm", {"fid": 5.0}), gen("b", "ddpm", {"fid": 7.0})])
    (table,) = report.rich_tables(report.build_boards(runs))
    fid = next(c for c in table.columns if c.header == "FID ↓")
    assert list(fid.cells) == ["[bold green]5.000[/]", "7.000"]
    noise = next(c for c in table.columns if c.header == "noise")
    assert list(noise.cells)[0] == "\\[red]x"


# -- what a page meant for sharing may contain --------------------------------------------------
def test_html_embeds_only_images_the_run_wrote_in_its_own_folder(tmp_path, monkeypatch):
    from lb_demo import grid_png

    res = tmp_path / "res"
    secret = tmp_path / "credentials"
    secret.write_bytes(b"aws_secret_access_key = TOPSECRET0123456789")
    outside_png = grid_png(tmp_path / "holiday.png", seed=3)  # a real image, but not the run's
    folder = res / "runs" / "spec5"
    fake = folder / "grid.png"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(secret.read_bytes())  # named like a grid, inside the run's folder, but no image
    (res / "runs" / "spec6").mkdir(parents=True)
    (res / "runs" / "spec6" / "grid.png").symlink_to(outside_png)  # a link out of the run's folder
    grid_png(res / "runs" / "spec7" / "grid.png", seed=1)
    gif = res / "runs" / "spec8" / "grid.gif"
    gif.parent.mkdir(parents=True)
    gif.write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    grid_png(res / "runs" / "spec9" / "grid.png", seed=2)
    arts = ["/etc/passwd", str(secret), str(outside_png), "../credentials", str(fake),
            str(res / "runs" / "spec6" / "grid.png"), str(res / "runs" / "spec7" / "grid.png"), str(gif),
            "/elsewhere/on/the/senders/machine/runs/spec9/grid.png"]
    runs = numbered([gen(f"n{i}", "ddpm", {"fid": float(i)}, artefacts={"sample_grid": a})
                     for i, a in enumerate(arts, 1)])
    page = report.to_html(report.build_boards(runs), base_dirs=[res], results_dir=res)

    for leaked in (secret.read_bytes(), (tmp_path / "holiday.png").read_bytes(), open("/etc/passwd", "rb").read()):
        assert base64.b64encode(leaked).decode() not in page
    uris = page.split('src="data:')[1:]
    assert [u.split(";", 1)[0] for u in uris] == ["image/png", "image/gif", "image/png"]  # runs 7, 8, 9 only
    assert "(run 7)" in page and "(run 8)" in page and "(run 9)" in page  # 9: a moved folder, found by name
    for run_id in (1, 2, 3, 4, 6):
        assert f"run {run_id}: artefact not embedded: outside the run&#x27;s folder" in page
    assert "run 5: artefact not embedded: not a PNG or GIF image" in page

    monkeypatch.setattr(report, "MAX_EMBED_BYTES", 100)  # a sane size cap
    page = report.to_html(report.build_boards(runs[6:7]), results_dir=res)
    assert "data:image" not in page and "run 7: artefact not embedded: larger than" in page


def test_markdown_export_lets_no_raw_html_or_links_through():
    runs = numbered([gen("<img src=x onerror=alert(1)>", "a|b", {"fid": 1.0}, evaluator="ev`<b>",
                         conditioning="[click](http://evil.example)\n<script>x</script>"),
                     gen("ok & fine", "ddpm", {"fid": 2.0}, evaluator="ev`<b>")])
    runs[0].dataset = runs[1].dataset = "phantom<i>"
    md = report.to_markdown(report.build_boards(runs))
    assert "<img" not in md and "<script" not in md and "<i>" not in md and "<b>" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "ok &amp; fine" in md
    assert "\\[click\\](http://evil.example) &lt;script&gt;" in md  # no link, and still one line
    assert "### generation · phantom&lt;i&gt; — evaluator ev\\`&lt;b&gt;" in md  # not a code span: escaped
    lines = md.splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 4 and {r.replace("\\|", "").count("|") for r in rows} == {8}  # no cell breaks the table


def test_csv_export_neutralises_formula_cells_but_keeps_numbers():
    run = gen("=HYPERLINK(\"http://evil.example\",\"x\")", "+cmd|' /C calc'!A0", {"fid": -1.5, "=1+1": 2.0},
              conditioning="-2+3", seeds={"train": -1})
    run.dataset, run.backbone = "\tphantom", "@SUM(A1)"
    text = report.to_csv(report.build_boards(numbered([run])))
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["noise"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert row["sampler"] == "'+cmd|' /C calc'!A0" and row["backbone"] == "'@SUM(A1)"
    assert row["conditioning"] == "'-2+3" and row["dataset"] == "'\tphantom"
    assert "'=1+1" in row and row["'=1+1"] == "2.0"  # a metric name in the header, too
    assert row["fid"] == "-1.5" and row["seeds"] == "-1" and row["rank"] == "1"  # real numbers stay numbers
    assert report.csv_cell(-3) == -3 and report.csv_cell("-3.5e2") == "-3.5e2" and report.csv_cell("x-1") == "x-1"


# -- what the numbers are measured on and in: sample count, distance unit, ruler validity -------------
def seg(method: str, metrics: dict, unit: str | None, n: int | None = 128, **kw) -> RunRecord:
    context = {k: v for k, v in (("n_samples", n), ("distance_unit", unit)) if v is not None}
    return RunRecord(task="segmentation", dataset="acdc-h5", noise="gaussian", sampler="ddim", backbone="unet",
                     conditioning=method, metrics=metrics, evaluator_id="seg-acdc-1", context=context,
                     directions={"dice_mean": "higher", "hd95_mean": "lower", "hd95_lv": "lower",
                                 "hd95_missing": "lower"}, **kw)


def test_rows_in_px_and_rows_in_mm_are_never_ranked_together():
    runs = numbered([seg("controlnet", {"dice_mean": 0.87, "hd95_mean": 2.9}, "px"),
                     seg("concat", {"dice_mean": 0.84, "hd95_mean": 3.6}, "px"),
                     seg("controlnet", {"dice_mean": 0.90, "hd95_mean": 4.4}, "mm")])
    boards = report.build_boards(runs)
    assert [(b.distance_unit, [r.id for r in b.rows]) for b in boards] == [("mm", [3]), ("px", [1, 2])]
    assert [b.ruler for b in boards] == ["seg-acdc-1", "seg-acdc-1"]  # same ruler, still apart
    px = boards[1]
    assert px.heading == "segmentation · acdc-h5 — evaluator seg-acdc-1 · 128 test images · distances in px"
    assert px.metric("hd95_mean").label == "HD95 mean (px) ↓" and px.metric("hd95_mean").unit == "px"
    assert px.metric("dice_mean").label == "Dice mean ↑" and px.metric("dice_mean").unit is None
    assert boards[0].metric("hd95_mean").label == "HD95 mean (mm) ↓"


def test_rows_of_different_sample_counts_are_never_ranked_together_and_say_their_count():
    small = gen("gaussian", "ddpm", {"fid": 9.0}, context={"n_samples": 64, "distance_unit": "mm"})
    big = [gen(n, "ddpm", {"fid": f}, context={"n_samples": 256, "distance_unit": "mm"})
           for n, f in (("gaussian", 18.0), ("blurring", 15.0))]
    boards = report.build_boards(numbered([big[0], small, big[1]]))
    assert [(b.n_samples, [r.noise for r in b.rows]) for b in boards] == [(256, ["blurring", "gaussian"]),
                                                                          (64, ["gaussian"])]
    assert boards[1].heading == "generation · phantom — evaluator ev1 · 64 samples · distances in mm"
    md = report.to_markdown(boards)
    assert "### generation · phantom — evaluator `ev1` · 256 samples · distances in mm" in md
    assert "### generation · phantom — evaluator `ev1` · 64 samples · distances in mm" in md
    text = report.render(boards, "table")
    assert "evaluator ev1 · 256 samples" in text and "evaluator ev1 · 64 samples" in text
    rows = list(csv.DictReader(io.StringIO(report.to_csv(boards))))
    assert [(r["n_samples"], r["rank"], r["noise"]) for r in rows] == [
        ("256", "1", "blurring"), ("256", "2", "gaussian"), ("64", "1", "gaussian")]
    assert [b["n_samples"] for b in json.loads(report.to_json(boards))["boards"]] == [256, 64]
    assert "64 samples · distances in mm" in report.to_html(boards)


def test_rows_stored_before_the_context_take_their_count_from_the_spec_and_mm():
    old_gen = gen("gaussian", "ddpm", {"fid": 9.0}, spec={"sample": {"num_samples": 64}})
    new_gen = gen("blurring", "ddpm", {"fid": 8.0}, context={"n_samples": 64, "distance_unit": "mm"})
    old_seg = seg("controlnet", {"dice_mean": 0.9, "hd95_mean": 4.0}, None, n=None)
    boards = report.build_boards(numbered([old_gen, new_gen, old_seg]))
    assert [(b.task, b.n_samples, b.distance_unit, len(b.rows)) for b in boards] == [
        ("generation", 64, "mm", 2), ("segmentation", None, "mm", 1)]
    assert boards[1].context_label == "test images count unknown · distances in mm"
    assert report.sample_count(old_gen) == 64 and report.distance_unit(old_gen) == "mm"
    (tp,) = report.build_boards(numbered(throughput_runs()[:1]))
    assert tp.context_label == "" and tp.heading == "throughput · phantom — device demo CPU"
    assert report.distance_unit(tp.rows[0]) is None and tp.n_samples is None


def test_a_px_row_says_px_and_never_mm_in_every_format():
    run = seg("controlnet", {"dice_mean": 0.87, "hd95_mean": 2.9, "hd95_lv": 2.3, "hd95_missing": 1.0}, "px")
    boards = report.build_boards(numbered([run]))
    for fmt in report.FORMATS:
        text = report.render(boards, fmt)
        assert "(mm)" not in text and "in mm" not in text and ",mm," not in text, fmt
        assert "(px)" in text or ",px," in text, fmt
    assert "HD95 mean (px) ↓" in report.render(boards, "table")
    assert "| HD95 mean (px) ↓ | HD95 LV (px) ↓ | HD95 missing ↓ |" in report.render(boards, "md")
    [row] = list(csv.DictReader(io.StringIO(report.render(boards, "csv"))))
    assert row["distance_unit"] == "px" and row["hd95_mean"] == "2.9"
    data = json.loads(report.render(boards, "json"))["boards"][0]
    assert data["distance_unit"] == "px"
    assert {m["name"]: (m["unit"], m["label"]) for m in data["metrics"]} == {
        "dice_mean": (None, "Dice mean ↑"), "hd95_mean": ("px", "HD95 mean (px) ↓"),
        "hd95_lv": ("px", "HD95 LV (px) ↓"), "hd95_missing": (None, "HD95 missing ↓")}
    page = report.render(boards, "html")
    assert '<th class="num">HD95 mean (px) ↓</th>' in page and "128 test images · distances in px" in page


def test_distance_metrics_and_their_labels():
    assert report.is_distance_metric("hd95_mean") and report.is_distance_metric("hd95_rv_std")
    assert report.is_distance_metric("hd95")
    assert not report.is_distance_metric("hd95_missing") and not report.is_distance_metric("dice_mean")
    assert report.metric_label("hd95_myo", "px") == "HD95 MYO (px)" and report.metric_label("hd95", "mm") == "HD95 (mm)"
    assert report.metric_label("fid", "px") == "FID" and report.metric_label("hd95_mean") == "HD95 mean"


FLAGGED = {"valid": False, "flag": "evaluator accuracy 0.27 is near chance", "accuracy": 0.27, "chance": 0.2,
           "ordering": {"real < shuffled < blobs": False}}


def test_a_flagged_ruler_is_one_line_on_its_board_in_every_format():
    flagged = gen("gaussian", "ddpm", {"fid": 5.0}, evaluator="evF",
                  context={"n_samples": 64, "distance_unit": "mm", "ruler_validity": FLAGGED})
    older = gen("blurring", "ddpm", {"fid": 6.0}, evaluator="evF", context={"n_samples": 64, "distance_unit": "mm"})
    valid = gen("gaussian", "ddim", {"fid": 7.0}, evaluator="evG",
                context={"n_samples": 64, "distance_unit": "mm", "ruler_validity": {**FLAGGED, "valid": True,
                                                                                     "flag": None}})
    boards = report.build_boards(numbered([flagged, older, valid]))
    assert [(b.ruler, b.ruler_flags) for b in boards] == [
        ("evG", []), ("evF", ["ruler FLAGGED: evaluator accuracy 0.27 is near chance"])]
    line = "ruler FLAGGED: evaluator accuracy 0.27 is near chance"
    for fmt in report.FORMATS:
        text = report.render(boards, fmt)
        assert text.count(line) == 1, fmt  # csv: in the flagged row's ruler_flag cell
    text = report.render(boards, "table")
    assert text.index("evaluator evF") < text.index(line) < text.index("FID ↓", text.index("evaluator evF"))
    assert f"**{line}**" in report.render(boards, "md")
    rows = list(csv.DictReader(io.StringIO(report.render(boards, "csv"))))
    assert [(r["ruler"], r["ruler_flag"]) for r in rows] == [("evG", ""), ("evF", line), ("evF", "")]
    data = json.loads(report.render(boards, "json"))["boards"]
    assert [b["ruler_flags"] for b in data] == [[], [line]]
    assert data[1]["rows"][0]["context"]["ruler_validity"]["accuracy"] == 0.27
    assert f'<p class="flag">{line}</p>' in report.render(boards, "html")


def test_rows_without_a_validity_record_show_no_flag():
    boards = report.build_boards(numbered([gen("a", "ddpm", {"fid": 1.0}, context={"n_samples": 8})]))
    assert boards[0].ruler_flags == []
    for fmt in report.FORMATS:
        assert "FLAGGED" not in report.render(boards, fmt)


def test_ruler_flag_line():
    run = gen("a", "ddpm", {"fid": 1.0}, context={"ruler_validity": {"valid": False, "flag": None, "accuracy": 0.21,
                                                                     "chance": 0.2}})
    assert report.ruler_flag(run) == "ruler FLAGGED: not valid (accuracy 0.210, chance 0.200)"
    run.context["ruler_validity"] = {"valid": True, "flag": None, "accuracy": 0.8, "chance": 0.2}
    assert report.ruler_flag(run) is None
    run.context["ruler_validity"] = {"valid": True, "flag": "ordering\nbroken"}  # a flag is shown even if valid
    assert report.ruler_flag(run) == "ruler FLAGGED: ordering broken"
    run.context["ruler_validity"] = "garbage"
    assert report.ruler_flag(run) is None


def test_a_generator_row_shows_the_utility_figures_of_its_latest_utility_run():
    sample = {"sampler": "ddim", "steps": 50, "seed": 0}
    spec = {"train_hash": "t1", "sample": sample}
    util = {"utility_gain_few": 0.04, "utility_gain_all": 0.01, "utility_synth_ratio": 0.8,
            "utility_real_all_dice": 0.9}
    runs = numbered([
        gen("gaussian", "ddim", {"fid": 3.0}, spec=spec),
        gen("blurring", "ddim", {"fid": 2.0}, spec={"train_hash": "t2", "sample": sample}),
        RunRecord(task="utility", dataset="phantom", noise="gaussian", sampler="ddim", backbone="unet", spec=spec,
                  metrics={**util, "utility_gain_few": 0.01}, evaluator_id="seg-x", directions={}),
        RunRecord(task="utility", dataset="phantom", noise="gaussian", sampler="ddim", backbone="unet", spec=spec,
                  metrics=util, evaluator_id="seg-x", directions={"utility_gain_few": "higher"}),
        gen("gaussian", "ddim", {"fid": 4.0}, spec={"train_hash": "t1", "sample": {**sample, "steps": 10}}),
    ])
    out = {r.id: r for r in report.with_utility(runs)}
    assert {k: out[1].metrics[k] for k in report.UTILITY_FIGURES} == {k: util[k] for k in report.UTILITY_FIGURES}
    assert "utility_real_all_dice" not in out[1].metrics and out[1].directions["utility_gain_few"] == "higher"
    assert "utility_gain_few" not in out[2].metrics and "utility_gain_few" not in out[5].metrics  # other generators
    assert "utility_gain_few" not in runs[0].metrics  # copies: the stored row is unchanged
    board = next(b for b in report.build_boards(runs) if b.task == "generation")
    assert "utility_gain_few" in [m.name for m in board.metrics]
