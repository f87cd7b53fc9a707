"""Timing utilities: statistics, warm-up/repeat accounting, CPU timer, and the CUDA-event path (faked)."""

import time

import numpy as np
import pytest
import torch

from cardiobench.bench import timing
from cardiobench.bench.timing import Stats, summarize, time_repeats


def test_stats_median_and_iqr_match_numpy():
    xs = [0.5, 0.1, 0.4, 0.3, 0.2, 0.9]
    s = summarize(xs)
    assert s.median == pytest.approx(np.median(xs))
    assert s.q1 == pytest.approx(np.percentile(xs, 25)) and s.q3 == pytest.approx(np.percentile(xs, 75))
    # linear interpolation by hand: sorted 0.1..0.9, q1 at index 1.25 -> 0.2 + 0.25*0.1, q3 at 3.75 -> 0.4 + 0.75*0.1
    assert s.iqr == pytest.approx(0.475 - 0.225)
    assert s.min == 0.1 and s.n == 6


def test_single_repeat_has_zero_spread_and_empty_is_an_error():
    assert summarize([2.0]).iqr == 0.0
    with pytest.raises(ValueError):
        Stats(())


def test_map_summarises_the_transformed_repeats():
    s = summarize([0.1, 0.2, 0.4]).map(lambda t: 8 / t)  # images/s of a batch of 8
    assert s.samples == (80.0, 40.0, 20.0)
    assert s.median == 40.0 and s.iqr == pytest.approx(60.0 - 30.0)


def test_time_repeats_counts_warmup_and_setup_and_times_the_call():
    calls, setups = [], []
    stats = time_repeats(lambda: (calls.append(1), time.sleep(0.01)), warmup=2, repeats=3,
                         setup=lambda: setups.append(1))
    assert len(calls) == 5 and len(setups) == 5 and stats.n == 3
    assert all(t >= 0.0095 for t in stats.samples)  # sleep never returns early
    assert stats.median < 1.0


def test_setup_is_not_timed():
    stats = time_repeats(lambda: None, warmup=0, repeats=3, setup=lambda: time.sleep(0.02))
    assert stats.median < 0.015


def test_max_time_stops_slow_measurements_after_two_repeats():
    calls = []
    stats = time_repeats(lambda: (calls.append(1), time.sleep(0.02)), warmup=1, repeats=10, max_time=0.01)
    assert stats.n == 2 and len(calls) == 3  # 1 warm-up + the 2 repeats a spread needs
    assert time_repeats(lambda: time.sleep(0.02), warmup=0, repeats=1, max_time=0.01).n == 1
    assert time_repeats(lambda: None, warmup=0, repeats=7, max_time=5.0).n == 7  # fast: every repeat


def test_time_repeats_rejects_zero_repeats():
    with pytest.raises(ValueError):
        time_repeats(lambda: None, warmup=0, repeats=0)


def test_cpu_timer_measures_elapsed_seconds():
    t = timing.CpuTimer()
    t.start()
    time.sleep(0.01)
    t.stop()
    assert 0.0095 <= t.elapsed() < 1.0
    assert isinstance(timing.make_timer("cpu"), timing.CpuTimer)


class _FakeEvent:
    log: list = []

    def __init__(self, enable_timing=False):
        assert enable_timing, "CUDA timing events need enable_timing=True"
        self.t = None

    def record(self, stream=None):
        self.log.append(("record", stream))
        self.t = time.perf_counter()

    def synchronize(self):
        self.log.append(("event_sync",))

    def elapsed_time(self, end):  # milliseconds, like torch.cuda.Event
        return (end.t - self.t) * 1000.0


@pytest.fixture
def fake_cuda(monkeypatch):
    """Enough of torch.cuda to drive the CUDA timing path on a machine without a GPU."""
    import contextlib

    _FakeEvent.log = []
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: "stream")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: _FakeEvent.log.append(("device_sync",)))
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    return _FakeEvent.log


def test_cuda_path_uses_events_and_synchronises(fake_cuda):
    stats = time_repeats(lambda: time.sleep(0.01), warmup=1, repeats=2, device="cuda")
    assert stats.n == 2 and all(t >= 0.0095 for t in stats.samples)  # ms converted to seconds
    kinds = [e[0] for e in fake_cuda]
    # after warm-up: device sync; then per repeat: device sync, start record, end record, wait on the end event
    assert kinds == ["device_sync"] + ["device_sync", "record", "record", "event_sync"] * 2
    assert all(e[1] == "stream" for e in fake_cuda if e[0] == "record")


def test_load_average_is_three_numbers_on_linux():
    load = timing.load_average()
    assert load is None or (len(load) == 3 and all(x >= 0 for x in load))
