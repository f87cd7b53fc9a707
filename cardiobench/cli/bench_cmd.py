"""``cardiobench bench``: training and sampling throughput, sampler overhead and peak memory, stored as
``task="throughput"`` runs (see ``cardiobench.bench`` and ``docs/performance.md``)."""

from __future__ import annotations

import itertools
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cardiobench.cli.options import config_option, preset_option, results_option, set_option
from cardiobench.cli.output import console, print_json
from cardiobench.cli.progress import terminal_progress
from cardiobench.config import DEFAULT_PRESET, resolve_config
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.hookspecs import hookimpl

#: default --max-time: a CPU sampling loop of the quick preset (~15 s) is timed twice, so the command takes
#: under a minute; fast measurements (a GPU, the training step) still get every repeat
MAX_TIME = 20.0


def split_names(value: str | None, flag: str) -> list[str | None]:
    """``"a,b"`` -> ``["a", "b"]`` (duplicates dropped, order kept); ``None`` -> ``[None]`` (the preset's)."""
    if value is None:
        return [None]
    items = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not items:
        raise CardiobenchError(f"{flag} is empty", f"give one or more names separated by commas, e.g. {flag} a,b")
    return items


def _fmt(value: float | None, spread: float | None = None, digits: int = 3) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"
    if spread is not None:
        text += f" ± {spread:.2g}"
    return text


def results_table(results: list, title: str, caption: str | None = None) -> Table:
    """One row per case: median ± IQR of each metric."""
    table = Table(title=title, caption=caption, header_style="bold", title_justify="left", caption_justify="left")
    for name, justify in (("backbone", "left"), ("params", "right"), ("noise", "left"), ("sampler", "left"),
                          ("train img/s ↑", "right"), ("sample img/s ↑", "right"), ("ms/NFE ↓", "right"),
                          ("sampler ms/step ↓", "right"), ("TFLOP/s", "right"), ("peak MiB train/sample", "right")):
        table.add_column(name, justify=justify)
    for r in results:
        m, s, c = r.metrics(), r.spreads(), r.case
        peak = "/".join(_fmt(m[k], digits=4) for k in ("peak_mem_mb_train", "peak_mem_mb_sample"))
        table.add_row(
            c.backbone_label, f"{r.params / 1e6:.2f} M", c.noise, c.sampler,
            _fmt(m["images_per_s_train"], s.get("images_per_s_train")),
            _fmt(m["images_per_s"], s.get("images_per_s")),
            _fmt(m["ms_per_nfe"], s.get("ms_per_nfe")),
            _fmt(m["sampler_overhead_ms"], s.get("sampler_overhead_ms")),
            _fmt(m["tflops_sample"], digits=2), peak,
        )
    return table


def bench(
    backbone: str = typer.Option(None, "--backbone", help="Comma-separated backbones (default: the preset's)."),
    size: str = typer.Option(None, "--size", help="Comma-separated backbone sizes, e.g. tiny,small,base "
                             "(default: the preset's widths)."),
    sampler: str = typer.Option(None, "--sampler", help="Comma-separated samplers, e.g. ddpm,ddim."),
    noise: str = typer.Option(None, "--noise", help="Comma-separated noise processes, e.g. gaussian,blurring."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Images per batch (bench.batch_size)."),
    resolution: int = typer.Option(None, "--resolution", help="Side of the square inputs (data.resolution)."),
    steps: int = typer.Option(None, "--steps", help="Sampler steps of the sampling loop (bench.sample_steps)."),
    warmup: int = typer.Option(None, "--warmup", help="Untimed warm-up repeats (bench.warmup)."),
    repeats: int = typer.Option(None, "--repeats", help="Timed repeats; median and IQR reported (bench.repeats)."),
    max_time: float = typer.Option(MAX_TIME, "--max-time", min=0.0, help="Stop repeating a measurement once its "
                                   "timed repeats add up to this many seconds (after at least 2); 0 = no limit."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: the preset's run.device)."),
    dtype: str = typer.Option(None, "--dtype", help="Network precision: fp32, bf16 or fp16 (autocast)."),
    compile_: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the backbone."),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                       help="channels_last memory format for the backbone and its inputs."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads of torch for the measurement "
                                "(default: the global thread policy's, see `cardiobench --help`)."),
    preset: str = preset_option(),
    config_file: str = config_option(),
    sets: list[str] = set_option(),
    results: str = results_option(),
    store_results: bool = typer.Option(True, "--store/--no-store", help="Write the runs to the results store."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout (the table goes to "
                                 "stderr)."),
) -> None:
    """Measure training and sampling throughput of every backbone x noise x sampler combination."""
    import torch

    from cardiobench.bench import case_from_config, load_average, run_cases
    from cardiobench.factories import resolve_device
    from cardiobench.plugins import check_compatible
    from cardiobench.results.environment import collect_environment
    from cardiobench.results.store import ResultStore

    cases = []
    skipped: list[str] = []
    for b, z, n, s in itertools.product(split_names(backbone, "--backbone"), split_names(size, "--size"),
                                        split_names(noise, "--noise"), split_names(sampler, "--sampler")):
        overrides: dict[str, Any] = {
            "model.backbone": b, "model.size": z, "diffusion.noise": n, "sample.sampler": s,
            "bench.batch_size": batch_size, "data.resolution": resolution, "bench.sample_steps": steps,
            "bench.warmup": warmup, "bench.repeats": repeats, "run.device": device, "bench.dtype": dtype,
            "bench.compile": compile_, "bench.channels_last": channels_last,
        }
        cfg = resolve_config(preset, config_file, {k: v for k, v in overrides.items() if v is not None}, sets or ())
        try:
            check_compatible(noise=cfg["diffusion"]["noise"], sampler=cfg["sample"]["sampler"])
        except IncompatibleError as exc:
            skipped.append(f"{cfg['diffusion']['noise']} x {cfg['sample']['sampler']}: {exc.format_message()}")
            continue
        cases.append(case_from_config(cfg, device=str(resolve_device(cfg["run"]["device"])),
                                      max_time=max_time or None))
    err = console(stderr=True)
    for line in skipped:
        err.print(f"[yellow]skip[/] {line}", soft_wrap=True)
    if not cases:
        raise CardiobenchError("no compatible combination to measure", "see `cardiobench plugins`")
    if store_results:
        ResultStore(results).check_writable()  # a newer-schema or read-only store: refused before measuring

    load_start = load_average()
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        measured = run_cases(cases, progress=terminal_progress(enabled=not as_json))
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(saved_threads)
    load_end = load_average()

    env = collect_environment(cases[0].device, load_average={"start": load_start, "end": load_end},
                              torch_threads=used_threads)
    ids: list[int | None] = []
    store = ResultStore(results)
    if store_results:
        for r in measured:
            ids.append(store.add_run(r.record(env)))
    c0 = cases[0]
    dev = env.get("device", {})
    where = dev.get("name") or dev.get("type") or c0.device
    if dev.get("cores"):
        where += f", {dev['cores']} cores, {used_threads} torch threads"
    made = sorted({r.sample.seconds.n for r in measured} | {r.train.seconds.n for r in measured})
    counts = f"{made[0]}-{made[-1]}" if made[0] != made[-1] else f"{made[0]}"
    caption = (f"median ± IQR over {counts} of {c0.repeats} repeats after {c0.warmup} warm-up · batch {c0.batch_size}, "
               f"{c0.resolution}x{c0.resolution}, {c0.sample_steps} sampler steps, {c0.dtype}"
               f"{', compiled' if c0.compile else ''}{', channels_last' if c0.channels_last else ''} · {where}"
               f" · load average {_load_text(load_start)} -> {_load_text(load_end)}")
    if store_results:
        caption += f" · stored in {store.path} (`cardiobench leaderboard --task throughput`)"
    table = results_table(measured, f"cardiobench bench · preset {preset or DEFAULT_PRESET}", caption)
    if as_json:
        _print_table(err, table)
        print_json({
            "device": dev, "torch_threads": used_threads,
            "load_average": {"start": load_start, "end": load_end},
            "results": [r.to_dict() | {"id": i} for r, i in itertools.zip_longest(measured, ids)],
            "skipped": skipped, "results_store": str(store.path) if store_results else None,
        })
        return
    _print_table(console(), table)


def _print_table(term: Console, table: Table) -> None:
    """Print at the table's natural width when the output is not a terminal (no folded cells in logs)."""
    from cardiobench.results.report import natural_width

    if not term.is_terminal:
        term.width = max(term.width, natural_width([table], term))
    term.print(table)


def _load_text(load: tuple[float, float, float] | None) -> str:
    return "n/a" if load is None else f"{load[0]:.2f}"


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.command(name="bench")(bench)
