"""Adaptive micro-batching: the controller (streamer/batch/adaptive.py) against a small
discrete-event simulation of the scoring agent, its rules one by one, a property test of
its bounds, and a real worker in adaptive mode that must stay exact."""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.batch.adaptive import AdaptiveBatcher
from streamer.settings import Settings

TARGET_MS = 100.0


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


# --- a discrete-event model of the agent ------------------------------------------------

@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    limits: list[tuple[int, float]] = field(default_factory=list)
    last_arrival_ms: float = 0.0
    end_ms: float = 0.0

    @property
    def kept_up(self) -> bool:
        """Done with the last arrival within the target: no queue left behind."""
        return self.end_ms - self.last_arrival_ms <= TARGET_MS

    def tail_p99(self, share: float = 0.5) -> float:
        return p99(self.latencies[int(len(self.latencies) * (1 - share)):])

    def mean_size(self, share: float = 0.5) -> float:
        tail = self.sizes[int(len(self.sizes) * (1 - share)):]
        return sum(tail) / len(tail)


class FixedLimits:
    """Today's behaviour as a policy: the same limits for every batch."""

    def __init__(self, size: int, wait_s: float) -> None:
        self._limits = (size, wait_s)

    def limits(self) -> tuple[int, float]:
        return self._limits

    def observe(self, *_: object) -> None:
        pass


def simulate(policy: AdaptiveBatcher | FixedLimits, *, rate_per_s: float, seconds: float,
             overhead_ms: float, per_event_ms: float, seed: int = 1, transit_ms: float = 1.0,
             jitter: float = 0.1, backlog_at_start: int = 0) -> Run:
    """Poisson arrivals into one agent that batches as agents.batching.VariableBatches
    does (the wait runs from the first event; what is already queued joins the batch up to
    the size limit) and serves a batch in ``overhead + per_event * size`` ms."""
    rng = random.Random(seed)
    arrivals: list[float] = [0.0] * backlog_at_start
    t = 0.0
    while t < seconds * 1000:
        t += rng.expovariate(rate_per_s / 1000.0)
        arrivals.append(t)
    run = Run()
    i, now = 0, 0.0
    while i < len(arrivals):
        size, wait_s = policy.limits()
        run.limits.append((size, wait_s))
        first_at = max(now, arrivals[i])
        if i + size - 1 < len(arrivals) and arrivals[i + size - 1] <= first_at:
            close = first_at
        else:
            close = first_at + wait_s * 1000
            if i + size - 1 < len(arrivals):
                close = min(close, arrivals[i + size - 1])
        j = i
        while j < len(arrivals) and j - i < size and arrivals[j] <= close:
            j += 1
        n = j - i
        service = (overhead_ms + per_event_ms * n) * (1 + jitter * rng.uniform(-1, 1))
        done = close + service
        lats = [done - a + transit_ms for a in arrivals[i:j]]
        policy.observe(n, lats, service, bisect.bisect_right(arrivals, done, lo=j) - j)
        run.latencies += lats
        run.sizes.append(n)
        i, now = j, done
    run.end_ms = now
    run.last_arrival_ms = arrivals[-1]
    return run


def controller(**kw: object) -> AdaptiveBatcher:
    args: dict[str, object] = {"target_p99_ms": TARGET_MS, "min_size": 1, "max_size": 512,
                               "min_wait_s": 0.002, "max_wait_s": 0.05}
    args.update(kw)
    return AdaptiveBatcher(**args)  # type: ignore[arg-type]


# --- convergence in the model -----------------------------------------------------------

def test_low_load_converges_to_short_waits_well_under_the_target() -> None:
    ctl = controller()
    run = simulate(ctl, rate_per_s=20, seconds=120, overhead_ms=3, per_event_ms=0.3)
    wait_s = ctl.limits()[1]
    assert wait_s <= 0.004  # a lone message is not held back
    assert run.tail_p99() < 0.2 * TARGET_MS
    assert run.mean_size() < 2


def test_high_load_grows_batches_and_keeps_up_under_the_target() -> None:
    ctl = controller(initial_size=1)
    run = simulate(ctl, rate_per_s=3_000, seconds=30, overhead_ms=5, per_event_ms=0.2)
    size, _ = ctl.limits()
    assert size >= 64
    # Capacity needs batches of about 40 (5 ms + 0.2 ms per event at 3000/s).
    assert run.mean_size() >= 30
    assert run.tail_p99() <= TARGET_MS
    assert run.kept_up


def test_high_load_from_a_backlog_drains_it_instead_of_collapsing() -> None:
    """A restart with 20 000 records of lag: shrinking batches because latency is over
    the target would lower throughput and grow the queue without end."""
    ctl = controller(initial_size=1)
    run = simulate(ctl, rate_per_s=2_000, seconds=40, overhead_ms=5, per_event_ms=0.2,
                   backlog_at_start=20_000)
    assert ctl.limits()[0] >= 64
    assert run.kept_up
    assert run.tail_p99(0.25) <= TARGET_MS


def test_latency_over_the_target_drains_the_queue_then_backs_off_size_and_wait() -> None:
    """Slow scoring (2 ms per event) and a backlog: batches of 128 take a quarter second,
    far over the target. The shrinking queue is drained at full size (cutting would only
    slow the drain); then the controller cuts until a batch fits the budget."""
    ctl = controller(initial_size=128)
    ctl._wait_s = ctl.max_wait_s  # start at the longest wait too
    run = simulate(ctl, rate_per_s=150, seconds=60, overhead_ms=5, per_event_ms=2.0,
                   backlog_at_start=1_500)
    _, wait_s = ctl.limits()
    assert min(s for s, _ in run.limits[:10]) >= 128  # 1 500 queued: drain, do not cut
    assert run.mean_size() <= 22  # 5 + 2 * size <= 50 ms, half the target
    assert wait_s < ctl.max_wait_s
    assert run.tail_p99() <= TARGET_MS


@pytest.mark.parametrize(("rate", "overhead_ms", "per_event_ms"), [
    (20, 3.0, 0.3),  # low load
    (400, 4.0, 0.5),  # moderate
    (1_500, 4.0, 0.5),  # near capacity (0.75 of the per-event ceiling)
    (3_000, 5.0, 0.2),  # high load
    # The 2-core worker of the pipeline benchmark: the per-batch cost dominates (Kafka
    # transaction, Redis script, executor hops), ~29 ms + 1.45 ms per event.
    (23, 29.0, 1.45),
    (165, 29.0, 1.45),
])
def test_matches_or_beats_the_best_fixed_setting(rate: float, overhead_ms: float,
                                                 per_event_ms: float) -> None:
    """Among fixed (size, wait) settings that keep up at this load, the best p99; the
    controller, knowing nothing of the load, stays within 10 % (+1 ms) of it, under the
    target. (The benchmark, streamer bench pipeline, makes the same comparison for real.)"""
    def run(policy: AdaptiveBatcher | FixedLimits) -> Run:
        return simulate(policy, rate_per_s=rate, seconds=30, overhead_ms=overhead_ms,
                        per_event_ms=per_event_ms, seed=7)

    fixed = {}
    for size in (8, 32, 64, 128, 256):
        for wait_s in (0.002, 0.01, 0.05):
            r = run(FixedLimits(size, wait_s))
            if r.kept_up:
                fixed[(size, wait_s)] = r.tail_p99()
    best = min(fixed.values())
    adaptive = run(controller()).tail_p99()
    assert adaptive <= TARGET_MS
    assert adaptive <= 1.10 * best + 1.0, (adaptive, best, min(fixed, key=fixed.__getitem__))


# --- the rules one by one ---------------------------------------------------------------

def warm(ctl: AdaptiveBatcher, latency_ms: float, *, n: int, service_ms: float = 5.0,
         backlog: int = 0) -> None:
    ctl.observe(n, [latency_ms] * ctl.min_samples, service_ms, backlog)


def test_over_the_target_without_a_queue_cuts_size_and_wait_multiplicatively() -> None:
    ctl = controller(initial_size=64)
    ctl._wait_s = 0.02
    warm(ctl, 150.0, n=64)
    assert ctl.limits() == (32, 0.01)
    assert ctl.last is not None and "cut" in ctl.last.reason
    # The window restarted: one bad spell counts once.
    ctl.observe(32, [150.0], 5.0, 0)
    assert ctl.limits()[0] == 32


def test_over_the_target_a_batch_that_did_not_fill_cuts_only_the_wait() -> None:
    """The size limit did not bind: cutting it would only split the same events into
    more batches, each paying the per-batch cost."""
    ctl = controller(initial_size=64)
    ctl._wait_s = 0.02
    warm(ctl, 150.0, n=10)
    assert ctl.limits() == (64, 0.01)


def test_over_the_target_with_a_queue_grows_while_the_batch_fits() -> None:
    ctl = controller(initial_size=64)
    warm(ctl, 150.0, n=64, service_ms=10.0, backlog=500)
    assert ctl.limits()[0] == 68


def test_over_the_target_with_a_growing_queue_grows_past_the_budget() -> None:
    """Offered load above what batches within budget can serve: only throughput helps."""
    ctl = controller(initial_size=64)
    for backlog in range(500, 1300, 100):  # 80 ms > half the target
        warm(ctl, 150.0, n=64, service_ms=80.0, backlog=backlog)
    assert ctl.limits()[0] == 68
    warm(ctl, 150.0, n=68, service_ms=85.0, backlog=1300)
    assert ctl.limits()[0] == 72


def test_over_the_target_with_a_shrinking_queue_holds_a_batch_over_budget() -> None:
    ctl = controller(initial_size=64)
    for backlog in (900, 700, 500, 300, 150):  # draining at this size
        warm(ctl, 150.0, n=ctl.limits()[0], service_ms=85.0, backlog=backlog)
    assert ctl.last is not None and "draining" in ctl.last.reason
    held = ctl.limits()[0]
    warm(ctl, 150.0, n=held, service_ms=85.0, backlog=100)
    assert ctl.limits()[0] == held


def test_a_backlog_that_empties_between_fetches_does_not_grow_a_batch_past_its_budget(
) -> None:
    """A Kafka fetch lands at once: the lag jumps and falls back to nothing, batch after
    batch. That is no standing queue, and growing past the budget would only add latency."""
    ctl = controller(initial_size=64)
    for backlog in (300, 0) * 10:
        warm(ctl, 150.0, n=64, service_ms=80.0, backlog=backlog)
    assert ctl.limits()[0] <= 64


def test_over_the_target_a_standing_queue_that_does_not_shrink_grows_past_the_budget(
) -> None:
    """The lag jumps with each fetch but never empties: the queue stands, and every event
    waits behind it, over the target, until throughput grows."""
    ctl = controller(initial_size=64)
    for backlog in (300, 100) * 4:
        warm(ctl, 150.0, n=64, service_ms=80.0, backlog=backlog)
    assert ctl.limits()[0] == 68
    assert ctl.last is not None and "draining too slowly" in ctl.last.reason


def test_over_the_target_a_queue_that_drains_too_slowly_grows_past_the_budget() -> None:
    """Shrinking by 5 events a batch, 600 queued take 120 batches of 80 ms to drain:
    ten seconds over the target."""
    ctl = controller(initial_size=64)
    for backlog in range(640, 600, -5):
        warm(ctl, 150.0, n=ctl.limits()[0], service_ms=80.0, backlog=backlog)
    assert ctl.limits()[0] == 68


def test_a_stall_near_capacity_is_drained_in_seconds_not_minutes() -> None:
    """The 2-core worker's costs (29 ms + 1.45 ms per event): batches within the budget
    serve little more than 200 msg/s, so 2 500 events left by a stall drained at a few
    events a second, each over the target (27 s in this model before the rule for slow
    queues; 9 s with it)."""
    ctl = controller()
    run = simulate(ctl, rate_per_s=200, seconds=60, overhead_ms=29.0, per_event_ms=1.45,
                   backlog_at_start=2_500, seed=3)
    lat = run.latencies
    # the first arrival from which 500 in a row stay (all but 1%) under the target
    settled = next(i for i in range(2_500, len(lat) - 500, 50)
                   if sum(v > TARGET_MS for v in lat[i:i + 500]) <= 5)
    assert (settled - 2_500) / 200 <= 15.0  # seconds of new arrivals
    assert run.kept_up


def test_over_the_target_a_growing_queue_stops_growth_at_the_max_size() -> None:
    ctl = controller(initial_size=500, max_size=512)
    for backlog in range(5_000, 20_000, 1_000):
        warm(ctl, 500.0, n=ctl.limits()[0], service_ms=900.0, backlog=backlog)
    assert ctl.limits()[0] == 512


def test_comfortable_full_batches_grow_additively() -> None:
    ctl = controller(initial_size=16, size_step=4)
    for expected in (20, 24, 28):
        warm(ctl, 10.0, n=ctl.limits()[0], backlog=100)
        assert ctl.limits()[0] == expected


def test_growth_stops_where_the_predicted_service_time_leaves_the_budget() -> None:
    ctl = controller(initial_size=1, max_size=512)
    for _ in range(400):
        size = ctl.limits()[0]
        warm(ctl, 20.0, n=size, service_ms=2.0 + 0.5 * size, backlog=1_000)
    # 2 + 0.5 * size <= 50 ms (half the target): size <= 96.
    assert 80 <= ctl.limits()[0] <= 100


def test_batches_that_do_not_fill_shrink_the_wait_and_nothing_grows_it() -> None:
    ctl = controller(initial_size=64)
    assert ctl.limits()[1] == pytest.approx(0.002)  # starts at the shortest wait
    ctl._wait_s = 0.02
    for _ in range(20):
        warm(ctl, 10.0, n=ctl.limits()[0], backlog=500)  # full, queue behind: size grows
    assert ctl.limits() == (64 + 20 * 4, 0.02)
    warm(ctl, 10.0, n=3, backlog=0)
    warm(ctl, 10.0, n=3, backlog=10)
    assert ctl.limits()[1] == pytest.approx(0.005)
    for _ in range(5):
        warm(ctl, 10.0, n=1, backlog=0)
    assert ctl.limits()[1] == pytest.approx(0.002)


def test_the_wait_stays_below_its_share_of_the_target() -> None:
    ctl = controller(initial_size=64, max_wait_s=1.0, wait_share=0.25)
    assert ctl.max_wait_s == pytest.approx(0.025)
    ctl._wait_s = 0.5
    warm(ctl, 10.0, n=64, backlog=0)
    assert ctl.limits()[1] == pytest.approx(0.025)
    assert controller(max_wait_s=0.01).max_wait_s == pytest.approx(0.01)


def feed(ctl: AdaptiveBatcher, rate_per_s: float, n: int, batches: int = 40) -> None:
    """Batches of ``n`` events, each ``n / rate`` seconds after the one before."""
    for _ in range(batches):
        ctl.observe(n, [10.0] * n, 5.0, 0, n / rate_per_s)


def test_a_fast_stream_waits_for_fill_events_to_arrive() -> None:
    ctl = controller(initial_size=64, fill_events=8)
    feed(ctl, 740.0, n=6)
    assert ctl.arrival_rate() == pytest.approx(740.0)
    assert ctl.limits()[1] == pytest.approx(8 / 740.0)  # 10.8 ms, under the 25 ms cap


def test_a_slow_stream_is_not_held_back() -> None:
    ctl = controller(initial_size=64, fill_events=8)
    feed(ctl, 34.6, n=1)  # 8 events would take 231 ms: more than the cap
    assert ctl.limits()[1] == pytest.approx(0.002)


def test_the_fill_wait_counts_no_more_events_than_the_size_limit() -> None:
    ctl = controller(initial_size=4, max_size=4, fill_events=8)
    feed(ctl, 1000.0, n=4)
    assert ctl.limits() == (4, pytest.approx(0.004))


def test_the_fill_wait_follows_the_rate_down() -> None:
    ctl = controller(initial_size=64, fill_events=8)
    feed(ctl, 1000.0, n=8)
    assert ctl.limits()[1] == pytest.approx(0.008)
    feed(ctl, 20.0, n=1, batches=200)
    assert ctl.limits()[1] == pytest.approx(0.002)


def test_without_times_or_with_fill_events_0_there_is_no_fill_wait() -> None:
    untimed = controller(initial_size=64, fill_events=8)
    warm(untimed, 10.0, n=6, backlog=0)
    assert untimed.arrival_rate() is None and untimed.limits()[1] == pytest.approx(0.002)
    off = controller(initial_size=64, fill_events=0)
    feed(off, 740.0, n=6)
    assert off.limits()[1] == pytest.approx(0.002)


def test_times_too_long_to_sum_give_no_rate_and_no_error() -> None:
    ctl = controller(initial_size=64, fill_events=1)
    for n in (0, 0, 1):  # the elapsed times' sum overflows to inf
        ctl.observe(n, [], 0.0, 0, 9.2e307)
    assert ctl.arrival_rate() is None and ctl.limits()[1] == pytest.approx(0.002)


def test_limits_come_from_the_settings() -> None:
    s = Settings(_env_file=None, latency_target_ms=40, batch_min_size=2, batch_max_size=300,
                 batch_min_wait_s=0.001, batch_max_wait_s=0.2)
    ctl = AdaptiveBatcher.from_settings(s.batching, s.adaptive)
    assert ctl.target_ms == 40 and ctl.min_size == 2 and ctl.max_size == 300
    assert ctl.min_wait_s == 0.001 and ctl.max_wait_s == pytest.approx(0.01)
    assert ctl.fill_events == Settings(_env_file=None).adaptive.fill_events
    assert Settings(_env_file=None).batching.mode == "adaptive"


# --- bounds, whatever is observed -------------------------------------------------------

observation = st.tuples(
    st.integers(min_value=0, max_value=10_000),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, min_value=None, max_value=None),
             max_size=40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-5, max_value=1_000_000),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)


@settings(max_examples=200, deadline=None)
@given(
    min_size=st.integers(1, 64), max_size=st.integers(1, 1024),
    min_wait=st.floats(1e-4, 0.1), max_wait=st.floats(1e-4, 1.0),
    target=st.floats(1.0, 10_000.0), decrease=st.floats(0.05, 0.95),
    initial=st.integers(-10, 5_000), fill=st.integers(0, 2_000),
    observations=st.lists(observation, max_size=60),
)
def test_limits_always_stay_in_bounds(min_size: int, max_size: int, min_wait: float,
                                      max_wait: float, target: float, decrease: float,
                                      initial: int, fill: int, observations: list) -> None:
    ctl = AdaptiveBatcher(target, min_size, max_size, min_wait, max_wait,
                          initial_size=initial, decrease=decrease, min_samples=4,
                          fill_events=fill)
    lo, hi = min(min_size, max_size), max_size
    wait_hi = max(ctl.min_wait_s, min(max_wait, 0.25 * target / 1000))

    def check() -> None:
        size, wait_s = ctl.limits()
        assert lo <= size <= hi
        assert ctl.min_wait_s <= wait_s <= wait_hi + 1e-12
        assert math.isfinite(wait_s)

    check()
    for n, lats, service, backlog, elapsed in observations:
        ctl.observe(n, lats, service, backlog, elapsed)
        check()


# --- a real worker in adaptive mode -----------------------------------------------------

@pytest.mark.slow
def test_a_worker_in_adaptive_mode_processes_a_mixed_stream_exactly(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    from harness import (
        Namespace,
        WorkerProcess,
        measure,
        mixed_stream,
        produce,
        wait_committed,
        wait_consumed,
    )

    ns = Namespace(kafka_bootstrap, redis_url, tmp_path,
                   extra_env={"STREAMER_BATCH_MODE": "adaptive",
                              "STREAMER_BATCH_MAX_SIZE": "256"})
    messages = mixed_stream(ns, seed=53, minutes=4, bad_fraction=0.05, big_message=False)
    worker = WorkerProcess(ns, "adaptive").start()
    try:
        worker.wait_ready()
        half = len(messages) // 2
        produce(ns, messages[:half], rate=100)  # paced: small batches, short waits
        produce(ns, messages[half:])  # as fast as possible: batches must grow
        wait_consumed(ns, len(messages), workers=[worker])
        wait_committed(ns, workers=[worker])
        size_limit = metric_max(worker, "streamer_batch_size_limit")
        wait_limit = metric_max(worker, "streamer_batch_wait_seconds")
        lags = metric_samples(worker, "streamer_consumer_lag")
    finally:
        worker.stop()
    outcome = measure(ns, messages)
    assert outcome.lost == 0, outcome
    assert outcome.duplicates == 0, outcome
    assert outcome.redis_extra == 0 and outcome.redis_exact, outcome
    assert outcome.scored + outcome.dead_lettered == outcome.sent, outcome
    assert size_limit is not None and 1 <= size_limit <= 256
    assert wait_limit is not None and 0 < wait_limit <= 0.025
    # The backlog the controller sees, per input partition: nothing left once all is done.
    assert len(lags) == 2 * ns.partitions and set(lags.values()) == {0.0}, lags


def metric_samples(worker: object, name: str) -> dict[str, float]:
    """The samples of a labelled gauge on the worker's /metrics, by their label text."""
    import urllib.request

    port = worker.port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return {line.split("{", 1)[1].rsplit("}", 1)[0]: float(line.split()[-1])
                for line in r.read().decode().splitlines() if line.startswith(name + "{")}


def metric_max(worker: object, name: str) -> float | None:
    """Largest sample of a labelled gauge on the worker's /metrics."""
    values = metric_samples(worker, name).values()
    return max(values) if values else None
