"""The two paired tasks of a run: ``synthesis`` (mask-to-image) and ``utility`` (do generated pairs help?).

``cardiobench.engine.pipeline.execute`` trains (or reuses) the run's model, then calls one of these with its
checkpoint; each returns ``(evaluation, artefacts, timings)`` like the pipeline's own generation and segmentation
steps. See docs/synthesis.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from cardiobench.data.pairs_npz import write_pairs
from cardiobench.engine.pipeline import RunPlan, data_options, draw_samples, eval_cases
from cardiobench.engine.synthesize import IMAGES_NAME, synthesize, write_images
from cardiobench.engine.train import train
from cardiobench.factories import build_conditioning, resolve_spec
from cardiobench.metrics.paired import evaluate_synthesis, evaluate_utility
from cardiobench.progress import Progress
from cardiobench.specs import TrainSpec
from cardiobench.viz import save_synthesis_grid

__all__ = ["synthesis", "utility"]


def synthesis(plan: RunPlan, checkpoint: Path, out_dir: Path, *, progress: Progress
              ) -> tuple[dict[str, Any], dict[str, str], dict[str, float]]:
    """Draw one MRI slice for each test mask, write the artefacts and score image fidelity and faithfulness."""
    source, cases = eval_cases(plan)
    t1 = time.perf_counter()
    result = synthesize(checkpoint, cases.masks, sampler=plan.sampler, steps=plan.sample_steps,
                        sampler_options=plan.sampler_options, seed=plan.sample_seed, batch_size=plan.sample_batch,
                        guidance_scale=plan.guidance_scale if plan.guidance_scale is not None else 1.0,
                        device=plan.device, progress=progress)
    t_sample = time.perf_counter() - t1
    images_path = write_images(result, out_dir / IMAGES_NAME)
    show = np.unique(np.linspace(0, len(cases) - 1, min(8, len(cases))).round().astype(int))
    grid = save_synthesis_grid(out_dir / "grid.png", cases.masks[show], result.images[show], cases.images[show],
                               n=len(show))
    progress.log(f"[bold]evaluate[/] {len(cases)} generated images against the real slices of the same "
                 f"{plan.train.dataset} {plan.eval_split} masks")
    t2 = time.perf_counter()
    evaluation = evaluate_synthesis(result.float_images, cases.masks, cases.images, plan.train.dataset,
                                    data_options=data_options(plan) or None, metrics=plan.metrics or None,
                                    device=result.device, seed=plan.sample_seed,
                                    distance_unit=getattr(source, "spacing_unit", "mm"), log=progress)
    evaluation["meta"].update(n_images=int(len(cases)), split=plan.eval_split)
    timings = {"sample_s": round(t_sample, 3),
               "sample_images_per_s": round(len(cases) / t_sample, 3) if t_sample else None,
               "eval_s": round(time.perf_counter() - t2, 3)}
    return evaluation, {"images": str(images_path), "synthesis_grid": str(grid)}, timings


def utility(plan: RunPlan, checkpoint: Path, out_dir: Path, *, progress: Progress
            ) -> tuple[dict[str, Any], dict[str, str], dict[str, float]]:
    """Draw the generator's masks, an image for each (the synthesis model, trained first if needed), write the
    pairs as a ``pairs`` data set, and score their downstream utility (``cardiobench.metrics.utility``)."""
    util = plan.utility
    t1 = time.perf_counter()
    _, samples = draw_samples(plan, checkpoint, progress=progress)
    t_sample = time.perf_counter() - t1
    synthesis = resolve_spec(TrainSpec.from_dict(util["synthesis"]))
    progress.log(f"[bold]synthesis[/] model {synthesis.short_hash()} ({synthesis.conditioning}) draws an image for "
                 f"each of the {len(samples.masks)} masks")
    t2 = time.perf_counter()
    base = build_conditioning(synthesis).base_spec(synthesis)  # a ControlNet's frozen image model first
    if base is not None:
        train(resolve_spec(base), None, device=plan.device, data_root=plan.data_root, progress=progress)
    model = train(synthesis, None, device=plan.device, data_root=plan.data_root, progress=progress)
    t_synthesis_train = time.perf_counter() - t2
    t3 = time.perf_counter()
    result = synthesize(model.checkpoint, samples.masks, sampler=util["synthesis_sampler"],
                        steps=util["synthesis_steps"], seed=plan.sample_seed, batch_size=plan.sample_batch,
                        device=plan.device, progress=progress)
    t_synthesize = time.perf_counter() - t3
    pairs = write_pairs(out_dir / "pairs", result.images, samples.masks, samples.labels, generator_run=plan.spec_hash,
                        generator_train_hash=plan.train_hash, synthesis_train_hash=synthesis.hash(),
                        dataset=plan.train.dataset, seed=plan.sample_seed)
    grid = save_synthesis_grid(out_dir / "grid.png", samples.masks[:8], result.images[:8], n=8)
    t4 = time.perf_counter()
    evaluation = evaluate_utility(result.float_images, samples.masks, plan.train.dataset,
                                  data_options=data_options(plan) or None, eval_dataset=util["eval_dataset"],
                                  eval_options=util["eval_options"] or None, few_patients=util["few_patients"],
                                  segmenter=util.get("segmenter"), metrics=plan.metrics or None,
                                  device=str(samples.device), seed=plan.sample_seed, log=progress)
    timings = {"sample_s": round(t_sample, 3),
               "sample_images_per_s": round(len(samples.masks) / t_sample, 3) if t_sample else None,
               "synthesis_train_s": round(t_synthesis_train, 3), "synthesize_s": round(t_synthesize, 3),
               "eval_s": round(time.perf_counter() - t4, 3)}
    return evaluation, {"pairs": str(pairs), "pairs_grid": str(grid)}, timings
