"""Side-by-side with the peers, in one process: diffusers (samplers, a U-Net) and MONAI (Dice, HD95).

    .venv/bin/python benchmarks/peer_comparison.py [--parts a,b,c,d,e] [--rounds 3] [--threads N] [--json-out F]

(a) Sampling: the same network (the quick preset's U-Net ``small`` unless ``--size``), batch 64 and step count
    (20 unless ``--steps``) through our ``ddpm``/``ddim`` samplers and through diffusers' ``DDPMScheduler``/
    ``DDIMScheduler`` loop, configured alike (T = 1000, ``squaredcos_cap_v2`` = our cosine, leading spacing,
    x0 clipped, epsilon prediction, DDIM eta = 0). Rounds alternate which runs first; the ratio is
    ours/diffusers images/s per round (median over rounds). Before timing, DDIM from the same x_T with a
    stand-in network must give the same sample (checked: max |difference| < 1e-4).
(b) Sampler overhead per step with a zero-cost stand-in network (batch 64, 4x32x32, 50 steps): our loop
    (``cardiobench.bench.measure``) versus diffusers' loop of ``scheduler.step`` (as a pipeline calls it,
    under ``torch.no_grad``). Targets: DDIM <= 1/4 of diffusers' DDIM step, DDPM <= diffusers' DDPM step.
(c) Dice + HD95 of 1,000 pairs of 128x128 label maps (3 structures): ``cardiobench.metrics.segmentation``
    versus MONAI's ``compute_dice`` + ``compute_hausdorff_distance(percentile=95)`` on one-hot inputs (the
    conversion is not counted against MONAI). The values must agree (asserted). Target: >= 10x faster.
(d) Training images/s (one optimizer step: q_sample, forward, smooth L1, backward, clip, Adam) of our U-Net
    ``small`` versus a diffusers ``UNet2DModel`` of about the same parameter count at 32x32 batch 32, and of
    the seed-report U-Net (``base``) at 64x64 batch 16 (the seed's batch).

(e) 3-D Dice + HD95 of 50 volumes 10x64x64, spacing (10, 1.5, 1.5) mm: ``cb.metrics.dice``/``hd95`` versus
    MONAI's ``compute_dice`` + ``compute_hausdorff_distance(spacing=...)``; values asserted equal. Target: >= 5x.

Every figure is a median over rounds with its IQR; the load average is printed before and after each part.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiobench.bench import BenchCase, StandInNetwork, summarize
from cardiobench.bench import cases as cb
from cardiobench.bench.measure import NetworkFn, measure_training
from cardiobench.bench.timing import load_average, synchronize, time_repeats

SHAPE_B = (64, 4, 32, 32)  # the reference shape of (a) and (b)
TARGETS = {"ddim_overhead_fraction": 0.25, "ddpm_overhead_fraction": 1.0, "sampling_ratio": 1.0,
           "metrics_speedup": 10.0, "metrics_3d_speedup": 5.0}


def log(msg: str) -> None:
    print(msg, flush=True)


def stats_dict(samples, scale: float = 1.0) -> dict[str, float]:
    s = summarize(samples)
    return {"median": s.median * scale, "iqr": s.iqr * scale, "n": s.n}


def alternate(runs: dict[str, Any], rounds: int, device: torch.device | str) -> dict[str, list[float]]:
    """Seconds of each callable per round, the order reversed every other round (drift hits both alike)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        names = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in names:
            times[name].append(time_repeats(runs[name], warmup=0, repeats=1, device=device).samples[0])
    return times


# -- diffusers side ---------------------------------------------------------------------------------------
def diffusers_scheduler(kind: str, steps: int):
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                  prediction_type="epsilon", timestep_spacing="leading", steps_offset=0)
    if kind == "ddpm":
        sched = DDPMScheduler(variance_type="fixed_small", **common)
    else:
        sched = DDIMScheduler(set_alpha_to_one=True, **common)
    sched.set_timesteps(steps)
    return sched


def diffusers_loop(sched, fn, x_T: torch.Tensor, generator: torch.Generator, kind: str) -> torch.Tensor:
    """The denoising loop of diffusers' DDPMPipeline / DDIMPipeline (under ``torch.no_grad``)."""
    x = x_T.clone()
    # ours re-derives eps from the clipped x0 (DDIM's use_clipped_model_output, our default): the same arithmetic
    extra = {"eta": 0.0, "use_clipped_model_output": True} if kind == "ddim" else {}
    with torch.no_grad():
        for t in sched.timesteps:
            m = fn(x, t)
            x = sched.step(m, t, x, generator=generator, **extra).prev_sample
    return x


def our_sampler(kind: str, steps: int, resolution: int = 32):
    case = BenchCase(sampler=kind, sample_steps=steps, resolution=resolution,
                     sampler_options={"eta": 0.0} if kind == "ddim" else {})
    return cb.build_sampler(case, cb.build_process(case))


def check_ddim_parity(steps: int) -> float:
    """Max |ours - diffusers| of DDIM (eta 0) from the same x_T with the stand-in network m = 0.5 x + 0.1."""
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn((8, 4, 32, 32), generator=g)

    def fn(x, t):
        return 0.5 * x + 0.1

    ours = our_sampler("ddim", steps).sample(fn, x_T.shape, x_T=x_T)
    theirs = diffusers_loop(diffusers_scheduler("ddim", steps), fn, x_T, torch.Generator(), "ddim")
    return float((ours - theirs).abs().max())


# -- (a) sampling with the network --------------------------------------------------------------------------
def part_a(args) -> dict[str, Any]:
    diff = check_ddim_parity(args.steps)
    assert diff < 1e-4, f"DDIM differs from diffusers by {diff}: the loops do not do the same work"
    log(f"(a) DDIM parity with diffusers: max |difference| {diff:.2e}")
    case = BenchCase(backbone_options={"size": args.size}, batch_size=args.batch, sample_steps=args.steps,
                     device=args.device)
    model = cb.build_network(case).eval()
    fn = NetworkFn(model, case)
    params = cb.param_count(model)
    dev = torch.device(args.device)
    out: dict[str, Any] = {"network": case.backbone_label, "params": params, "batch": args.batch,
                           "steps": args.steps, "shape": list(case.shape)}
    for kind in ("ddpm", "ddim"):
        ours_s = our_sampler(kind, args.steps)
        sched = diffusers_scheduler(kind, args.steps)
        g = torch.Generator(device=dev).manual_seed(0)
        x_T = torch.randn(case.shape, generator=g, device=dev)

        run_ours = partial(ours_s.sample, fn, case.shape, generator=g, device=dev, x_T=x_T)
        run_theirs = partial(diffusers_loop, sched, fn, x_T, g, kind)
        # warm-up: a 2-step loop of each
        our_sampler(kind, 2).sample(fn, case.shape, generator=g, device=dev, x_T=x_T)
        diffusers_loop(diffusers_scheduler(kind, 2), fn, x_T, g, kind)
        times = alternate({"ours": run_ours, "diffusers": run_theirs}, args.rounds, dev)
        t_ours, t_theirs = times["ours"], times["diffusers"]
        ratios = [a / b for a, b in zip(t_theirs, t_ours, strict=True)]  # ours img/s over theirs = their time / ours
        out[kind] = {
            "ours_images_per_s": stats_dict([args.batch / t for t in t_ours]),
            "diffusers_images_per_s": stats_dict([args.batch / t for t in t_theirs]),
            "ratio": stats_dict(ratios),
            "ours_s": t_ours, "diffusers_s": t_theirs,
        }
        log(f"(a) {kind}: ours {out[kind]['ours_images_per_s']['median']:.2f} img/s, diffusers "
            f"{out[kind]['diffusers_images_per_s']['median']:.2f} img/s, ratio {out[kind]['ratio']['median']:.3f} "
            f"(IQR {out[kind]['ratio']['iqr']:.3f})")
    return out


# -- (b) per-step overhead ------------------------------------------------------------------------------------
def part_b(args) -> dict[str, Any]:
    steps = 50
    dev = torch.device(args.device)
    g = torch.Generator(device=dev).manual_seed(0)
    m = torch.randn(SHAPE_B, generator=g, device=dev)
    x_T = torch.randn(SHAPE_B, generator=g, device=dev)
    stand_in = StandInNetwork(m)
    out: dict[str, Any] = {"shape": list(SHAPE_B), "steps": steps}
    repeats = max(5, args.rounds)
    for kind in ("ddpm", "ddim"):
        ours_s = our_sampler(kind, steps)
        sched = diffusers_scheduler(kind, steps)

        run_ours = partial(ours_s.sample, stand_in, SHAPE_B, generator=g, device=dev, x_T=x_T)
        run_theirs = partial(diffusers_loop, sched, stand_in, x_T, g, kind)
        run_ours()  # warm-up (builds our step plan)
        run_theirs()
        times = alternate({"ours": run_ours, "diffusers": run_theirs}, repeats, dev)
        t_ours = [t / steps for t in times["ours"]]
        t_theirs = [t / steps for t in times["diffusers"]]
        frac = [a / b for a, b in zip(t_ours, t_theirs, strict=True)]
        target = TARGETS[f"{kind}_overhead_fraction"]
        out[kind] = {"ours_ms": stats_dict(t_ours, 1000.0), "diffusers_ms": stats_dict(t_theirs, 1000.0),
                     "fraction": stats_dict(frac), "target_fraction": target,
                     "meets_target": summarize(frac).median <= target}
        log(f"(b) {kind} overhead per step: ours {out[kind]['ours_ms']['median']:.3f} ms, diffusers "
            f"{out[kind]['diffusers_ms']['median']:.3f} ms, fraction {out[kind]['fraction']['median']:.3f} "
            f"(target <= {target}) {'MET' if out[kind]['meets_target'] else 'MISSED'}")
    return out


# -- (c) Dice + HD95 vs MONAI ---------------------------------------------------------------------------------
def part_c(args) -> dict[str, Any]:
    from monai.metrics import compute_dice, compute_hausdorff_distance

    from cardiobench.metrics.segmentation import dice_scores, hd95_distances
    from cardiobench.testing.metrics import contract_masks

    n, size = 1000, 128
    pred, target = contract_masks(n, size, seed=0), contract_masks(n, size, seed=1)
    for name, m in (("pred", pred), ("target", target)):  # every structure present: no empty-mask conventions
        assert all((m == k).any(axis=(1, 2)).all() for k in (1, 2, 3)), f"{name} has an empty structure"

    def onehot(a):
        return torch.nn.functional.one_hot(torch.from_numpy(a).long(), 4).permute(0, 3, 1, 2).float()

    yp, yt = onehot(pred), onehot(target)
    t_ours_dice, t_ours_hd = [], []
    ours_dice = ours_hd = None
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        ours_dice = dice_scores(pred, target)
        t1 = time.perf_counter()
        ours_hd = hd95_distances(pred, target)
        t2 = time.perf_counter()
        t_ours_dice.append(t1 - t0)
        t_ours_hd.append(t2 - t1)
    t0 = time.perf_counter()
    monai_dice = compute_dice(yp, yt, include_background=False).numpy()
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monai_hd = compute_hausdorff_distance(yp, yt, include_background=False, percentile=95).numpy()
    t2 = time.perf_counter()
    dice_diff = float(np.abs(ours_dice - monai_dice).max())
    hd_diff = float(np.abs(ours_hd - monai_hd).max())
    assert np.allclose(ours_dice, monai_dice, rtol=0, atol=1e-6), f"Dice differs from MONAI by {dice_diff}"
    assert np.allclose(ours_hd, monai_hd, rtol=1e-6, atol=1e-5), f"HD95 differs from MONAI by {hd_diff}"
    ours_total = [a + b for a, b in zip(t_ours_dice, t_ours_hd, strict=True)]
    monai_total = (t1 - t0) + (t2 - t1)
    out = {
        "pairs": n, "size": size,
        "ours_dice_s": stats_dict(t_ours_dice), "ours_hd95_s": stats_dict(t_ours_hd),
        "ours_total_s": stats_dict(ours_total),
        "monai_dice_s": t1 - t0, "monai_hd95_s": t2 - t1, "monai_total_s": monai_total,
        "speedup": monai_total / summarize(ours_total).median,
        "max_abs_diff": {"dice": dice_diff, "hd95": hd_diff},
        "mean": {"dice": float(ours_dice.mean()), "hd95_px": float(ours_hd.mean())},
    }
    out["meets_target"] = out["speedup"] >= TARGETS["metrics_speedup"]
    log(f"(c) Dice+HD95 of {n} pairs {size}x{size}: ours {out['ours_total_s']['median']:.3f} s "
        f"(dice {out['ours_dice_s']['median']:.3f} + hd95 {out['ours_hd95_s']['median']:.3f}), MONAI "
        f"{monai_total:.2f} s (dice {t1 - t0:.3f} + hd95 {t2 - t1:.2f}); {out['speedup']:.1f}x "
        f"{'MET' if out['meets_target'] else 'MISSED'}; max |diff| dice {dice_diff:.1e}, hd95 {hd_diff:.1e}")
    return out


# -- (e) 3-D Dice + HD95 vs MONAI, anisotropic spacing --------------------------------------------------------
def part_e(args) -> dict[str, Any]:
    """Volumes (short-axis stacks: D slices of 64x64, 10 mm between slices, 1.5 mm in plane) through
    ``cb.metrics.dice`` / ``hd95`` against MONAI's ``compute_dice`` / ``compute_hausdorff_distance(spacing=...)``;
    values asserted equal. Target: >= 5x faster."""
    from monai.metrics import compute_dice, compute_hausdorff_distance

    from cardiobench.metrics.functional import dice, hd95
    from cardiobench.testing.metrics import contract_masks

    n, depth, size, spacing = 50, 10, 64, (10.0, 1.5, 1.5)
    # every slice holds every structure (contract masks), so no empty-mask conventions enter
    pred = contract_masks(n * depth, size, seed=0).reshape(n, depth, size, size)
    target = contract_masks(n * depth, size, seed=1).reshape(n, depth, size, size)

    def onehot(a):
        return torch.nn.functional.one_hot(torch.from_numpy(a).long(), 4).permute(0, 4, 1, 2, 3).float()

    yp, yt = onehot(pred), onehot(target)
    t_ours: list[float] = []
    t_monai: list[float] = []
    ours_dice = ours_hd = monai_dice = monai_hd = None
    for _ in range(args.rounds):  # alternating, so drifting load hits both alike
        t0 = time.perf_counter()
        ours_dice = dice(pred, target, num_classes=4)
        ours_hd = hd95(pred, target, spacing=spacing, num_classes=4)
        t1 = time.perf_counter()
        monai_dice = compute_dice(yp, yt, include_background=False).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            monai_hd = compute_hausdorff_distance(yp, yt, include_background=False, percentile=95,
                                                  spacing=list(spacing)).numpy()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_monai.append(t2 - t1)
    dice_diff = float(np.abs(ours_dice - monai_dice).max())
    hd_diff = float(np.abs(ours_hd - monai_hd).max())
    assert np.allclose(ours_dice, monai_dice, rtol=0, atol=1e-6), f"3-D Dice differs from MONAI by {dice_diff}"
    assert np.allclose(ours_hd, monai_hd, rtol=1e-5, atol=1e-4), f"3-D HD95 differs from MONAI by {hd_diff}"
    out = {
        "volumes": n, "shape": [depth, size, size], "spacing_mm": list(spacing),
        "ours_s": stats_dict(t_ours), "monai_s": stats_dict(t_monai),
        "speedup": summarize(t_monai).median / summarize(t_ours).median,
        "max_abs_diff": {"dice": dice_diff, "hd95_mm": hd_diff},
        "mean": {"dice": float(ours_dice.mean()), "hd95_mm": float(ours_hd.mean())},
    }
    out["meets_target"] = out["speedup"] >= TARGETS["metrics_3d_speedup"]
    log(f"(e) 3-D Dice+HD95 of {n} volumes {depth}x{size}x{size}, spacing {spacing} mm: ours "
        f"{out['ours_s']['median']:.3f} s, MONAI {out['monai_s']['median']:.2f} s; {out['speedup']:.1f}x "
        f"{'MET' if out['meets_target'] else 'MISSED'}; max |diff| dice {dice_diff:.1e}, hd95 {hd_diff:.1e} mm")
    return out


# -- (d) training throughput ----------------------------------------------------------------------------------
class DiffusersUNet(torch.nn.Module):
    """``UNet2DModel`` with our ``(x, t) -> tensor`` calling convention."""

    def __init__(self, **config):
        super().__init__()
        from diffusers import UNet2DModel

        self.net = UNet2DModel(**config)

    def forward(self, x, t):
        return self.net(x, t).sample


#: a diffusers UNet2DModel of about the parameter count of our ``small`` (0.98 M vs 1.00 M)
DIFFUSERS_SMALL = dict(
    sample_size=32, in_channels=4, out_channels=4, block_out_channels=(32, 48, 64), layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=16,
)


def _train_rounds(models: dict[str, tuple[torch.nn.Module, BenchCase]], rounds: int) -> dict[str, Any]:
    process = cb.build_process(next(iter(models.values()))[1])
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(rounds):
        names = list(models) if r % 2 == 0 else list(reversed(models))
        for name in names:
            model, case = models[name]
            phase = measure_training(model, process, case)  # 1 warm-up (Adam state) + `repeats` steps
            times[name].extend(phase.seconds.samples)
    out = {}
    for name, (model, case) in models.items():
        out[name] = {"params": cb.param_count(model), "batch": case.batch_size, "resolution": case.resolution,
                     "gflop_per_image_forward": cb.forward_gflop(model, case),
                     "images_per_s": stats_dict([case.batch_size / t for t in times[name]])}
    return out


def part_d(args) -> dict[str, Any]:
    dev = args.device
    small = BenchCase(backbone_options={"size": "small"}, batch_size=32, resolution=32, warmup=1, repeats=1,
                      device=dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        theirs = DiffusersUNet(**DIFFUSERS_SMALL).to(dev)
    res32 = _train_rounds({"ours_small": (cb.build_network(small), small),
                           "diffusers_unet2d": (theirs, small)}, args.rounds)
    res32["ratio"] = (res32["ours_small"]["images_per_s"]["median"]
                      / res32["diffusers_unet2d"]["images_per_s"]["median"])
    ours, theirs_r = res32["ours_small"], res32["diffusers_unet2d"]
    log(f"(d) training 32x32 batch 32: ours small ({ours['params'] / 1e6:.2f} M, "
        f"{ours['gflop_per_image_forward']:.3f} GFLOP/img) {ours['images_per_s']['median']:.1f} img/s, diffusers "
        f"UNet2DModel ({theirs_r['params'] / 1e6:.2f} M, {theirs_r['gflop_per_image_forward']:.3f} GFLOP/img) "
        f"{theirs_r['images_per_s']['median']:.1f} img/s, ratio {res32['ratio']:.2f}")
    base = BenchCase(backbone_options={"size": "base"}, batch_size=16, resolution=64, warmup=1, repeats=1,
                     device=dev)
    res64 = _train_rounds({"seed_report_base": (cb.build_network(base), base)}, max(2, args.rounds - 1))
    log(f"(d) training 64x64 batch 16: seed-report U-Net base ({res64['seed_report_base']['params'] / 1e6:.2f} M) "
        f"{res64['seed_report_base']['images_per_s']['median']:.2f} img/s")
    return {"res32_batch32": res32, "res64_batch16": res64}


PARTS = {"a": part_a, "b": part_b, "c": part_c, "d": part_d, "e": part_e}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="a,b,c,d,e", help="which comparisons to run (a,b,c,d,e)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per comparison")
    p.add_argument("--steps", type=int, default=20, help="sampler steps of (a)")
    p.add_argument("--batch", type=int, default=64, help="batch of (a)")
    p.add_argument("--size", default="small", help="U-Net size of (a) (default: small, the quick preset's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json-out", type=Path, default=None, help="write every number to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("CARDIOBENCH_LOAD_PLUGINS", "")
    import diffusers
    import monai

    report: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": args.device,
                    "torch": torch.__version__, "diffusers": diffusers.__version__, "monai": monai.__version__},
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    log(f"peer comparison on {args.device}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, monai {monai.__version__}")
    for key in [k.strip() for k in args.parts.split(",") if k.strip()]:
        before = load_average()
        log(f"-- part ({key}), load average {before}")
        t0 = time.perf_counter()
        report[key] = PARTS[key](args)
        synchronize(args.device)
        report[key]["load_average"] = {"before": before, "after": load_average()}
        report[key]["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"   part ({key}) took {report[key]['seconds']} s, load average after {load_average()}")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2, default=str))
        log(f"wrote {args.json_out}")
    return report


if __name__ == "__main__":
    main()
