"""Cases, the three measurements, sharing between cases, and the stored record."""

import math

import numpy as np
import pytest
import torch

from cardiobench import config
from cardiobench.bench import DIRECTIONS, BenchCase, StandInNetwork, case_from_config, run_cases
from cardiobench.bench import cases as cb
from cardiobench.bench.measure import NetworkFn, measure_sampler_overhead, measure_sampling, measure_training
from cardiobench.engine.pipeline import train_spec_from_config
from cardiobench.errors import CardiobenchError
from cardiobench.results import ResultStore


def test_case_from_the_quick_preset():
    cfg = config.resolve_config("quick")
    case = case_from_config(cfg, max_time=20.0)
    bench = cfg["bench"]
    assert (case.batch_size, case.sample_steps, case.warmup, case.repeats) == (
        bench["batch_size"], bench["sample_steps"], bench["warmup"], bench["repeats"])
    assert case.shape == (bench["batch_size"], 4, cfg["data"]["resolution"], cfg["data"]["resolution"])
    spec = train_spec_from_config(cfg)  # the same network and process as `cardiobench run` trains
    assert case.backbone_options == spec.backbone_options and case.noise_options == spec.noise_options
    assert case.max_time == 20.0 and case.spec()["bench"]["max_time"] == 20.0
    blur = case_from_config(config.resolve_config("quick", overrides={"diffusion.noise": "blurring",
                                                                       "sample.sampler": "ddim"}))
    assert blur.noise_options["image_size"] == cfg["data"]["resolution"] and blur.sampler_options == {"eta": 0.0}


def test_spec_keys_what_is_shared():
    a = BenchCase(sampler="ddpm")
    assert "device" not in str(a.spec()) and a.spec_hash() == a.replace(device="cuda").spec_hash()
    assert a.train_key() == a.replace(sampler="ddim").train_key()  # training does not depend on the sampler
    assert a.train_key() != a.replace(device="cuda").train_key()
    assert a.overhead_key() == a.replace(backbone_options={"size": "base"}).overhead_key()
    assert a.overhead_key() != a.replace(noise="blurring").overhead_key()
    assert a.spec_hash() != a.replace(dtype="bf16").spec_hash()


@pytest.mark.parametrize("bad", [dict(dtype="fp64"), dict(repeats=0), dict(warmup=-1), dict(loss="l3"),
                                 dict(max_time=0.0)])
def test_bad_case_is_a_clear_error(bad):
    with pytest.raises(CardiobenchError):
        BenchCase(**bad)


def test_stand_in_returns_its_tensor_and_counts():
    out = torch.zeros(2, 4, 8, 8)
    net = StandInNetwork(out)
    assert net(torch.ones(2, 4, 8, 8), torch.zeros(2, dtype=torch.long)) is out and net.calls == 1


def test_network_fn_autocasts_and_returns_the_input_dtype():
    seen = {}

    def net(x, t):
        seen["channels_last"] = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        y = torch.nn.functional.conv2d(x, torch.ones(4, 4, 1, 1))
        seen["dtype"] = y.dtype
        return y

    fn = NetworkFn(net, BenchCase(dtype="bf16", channels_last=True))
    out = fn(torch.randn(2, 4, 8, 8), torch.zeros(2, dtype=torch.long))
    assert seen == {"channels_last": True, "dtype": torch.bfloat16} and out.dtype == torch.float32
    assert fn.calls == 1


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_and_overhead_count_one_evaluation_per_step(tiny_case, sampler):
    case = tiny_case(sampler=sampler)
    process = cb.build_process(case)
    smp = cb.build_sampler(case, process)
    model = cb.build_network(case)
    sample = measure_sampling(model, smp, case)
    assert sample.nfe == case.sample_steps and sample.seconds.n == case.repeats and sample.images == case.batch_size
    assert sample.peak_mib is not None and sample.peak_mib > 0
    over = measure_sampler_overhead(smp, case)
    assert over.nfe == case.sample_steps and over.seconds.n == case.repeats
    # the stand-in costs nothing: the loop without the network is faster than with it
    assert over.seconds.median < sample.seconds.median


def test_training_steps_the_optimizer(tiny_case):
    case = tiny_case(warmup=0, repeats=2)
    process = cb.build_process(case)
    model = cb.build_network(case)
    before = [p.detach().clone() for p in model.parameters()]
    phase = measure_training(model, process, case)
    assert phase.seconds.n == 2 and phase.images == case.batch_size and not model.training
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # a rate is summarised over the per-repeat rates (the mean of the two middle ones for an even count)
    rates = [case.batch_size / t for t in phase.seconds.samples]
    assert phase.images_per_s.median == pytest.approx(sum(rates) / 2)


def test_run_cases_shares_measurements_and_builds_records(tiny_case, tmp_path):
    cases = [tiny_case(sampler="ddpm"), tiny_case(sampler="ddim"),
             tiny_case(sampler="ddpm", backbone_options={"base_channels": 8, "channel_mults": [1, 2]})]
    logged = []
    results = run_cases(cases, log=logged.append)
    assert len(logged) == 3
    assert results[0].reused == [] and results[1].reused == ["train"] and results[2].reused == ["overhead"]
    assert results[1].train is results[0].train and results[2].overhead is results[0].overhead
    for r in results:
        m = r.metrics()
        assert set(m) == set(DIRECTIONS)
        assert all(v is not None and math.isfinite(v) and v > 0 for v in m.values())
        assert m["ms_per_nfe"] == pytest.approx(1000 * r.sample.seconds.median / r.case.sample_steps)
        assert m["images_per_s"] == pytest.approx(np.median([r.case.batch_size / t for t in r.sample.seconds.samples]))
        assert r.gflop_per_image and r.gflop_per_image > 0 and r.params > 0
    store = ResultStore(tmp_path / "r.db")
    ids = [store.add_run(r.record({"device": {"type": "cpu", "name": "test"}})) for r in results]
    runs = store.runs(task="throughput")
    assert [r.id for r in runs] == ids
    rec = runs[1]
    assert rec.sampler == "ddim" and rec.directions["images_per_s"] == "higher"
    assert rec.spec["bench"]["batch_size"] == 4 and rec.spec["sample"]["steps"] == 3
    assert rec.environment["bench"]["params"] == results[1].params
    assert set(rec.spreads) <= set(DIRECTIONS)
