"""Adaptive micro-batching: batch size and wait chosen per batch against a p99 target.

The controller keeps a sliding window of recent end-to-end latencies (Kafka record
timestamp -> Redis ack) and, after every batch, revises two limits, AIMD style. The
batcher in front of it (``agents.batching``) is greedy: whatever is already queued
joins the batch, up to the size limit, so a backlog fills batches by itself.

* **Size, additive increase**: while the p99 is comfortably under the target
  (``< headroom * target``) and the batch came out full with at least another full
  batch queued behind it (falling behind at this size), the size grows by
  ``size_step``: bigger batches amortize the per-batch costs (executor hop, Redis
  script, Kafka sends), i.e. more throughput.
* **Multiplicative decrease**: when the p99 exceeds the target after a full batch,
  size and wait are cut (``* decrease``) and the window restarts, so one bad spell counts
  once. Except when events queue behind full batches: then the queue, not the batch, is
  the problem, and cutting the size would lower throughput and grow the queue further
  (congestion collapse), so the size keeps growing instead. After a batch that did not
  fill, only the wait is cut: the size limit did not bind, and a smaller one would only
  split the same events into more batches, each paying the per-batch cost (Kafka
  transaction, Redis script, executor hops).
* **Budget**: a batch may only grow while the service time predicted for the larger size
  fits ``service_share`` of the target. The prediction is a line ``a + b * size`` fitted
  to recent batches (exponentially forgotten); while their sizes barely differ, the mean
  cost per event times the size (an over-estimate) stands in. One exception: over the
  target with a standing queue (it never emptied below half a batch over the last eight
  batches) that will not be gone within the target at the pace it shrank over them, or
  that grows (offered load above what this size can serve), the size grows past the
  budget, up to ``max_size``: only throughput can bring the latency back, and it is the
  backlog (the caller passes the consumer lag, Kafka included), not the batch, that makes
  the latency. Near capacity a size within budget may serve barely more than the offered
  load, so a backlog left by a stall (a rebalance, a pause) would drain for minutes, every
  event in it over the target. A queue that shrinks fast enough, or that empties between
  fetches (a fetch lands at once, so the lag jumps and falls back), is drained at the size
  reached; once it is gone, a batch over budget is cut as above.
* **Wait**: the longest the first event of a batch waits for more, kept within
  ``[min_wait_s, cap]``, cap = ``wait_share`` of the target (at most ``max_wait_s``).
  It starts at ``min_wait_s``; a batch that did not fill cuts it (``* decrease``), and so
  does a p99 over the target without a queue. No latency grows it, on purpose: with a
  greedy batcher a longer wait never adds throughput (a backlog fills batches anyway),
  and growing it on full batches feeds itself (a longer wait fills the batch, which then
  looks full). The simulation in tests/test_adaptive_batching.py shows the shortest wait
  winning at every load: at low load a lone message is not held back.

* **Fill wait**: the one floor under the wait, from the arrival rate. When
  ``fill_events`` events arrive within the wait cap (the caller reports the time between
  batches, so the controller knows the rate), the first event of a batch waits for them:
  ``min(size, fill_events) / rate``. On a worker whose cores are busy, every batch costs
  the event loop Python time (executor hop, Redis script, Kafka sends, acks) that the
  Kafka consumer's thread then waits for under the GIL: at 740 msg/s on 2 cores, batches
  of 5-8 events spent 12% more of the GIL in the loop than batches of 16, and the events
  waited longer in Kafka's stage (docs/BENCHMARKS.md, 2026-11-24). The simulation has no
  GIL and leaves it off. Below that rate a lone event is never held back: low load keeps
  the shortest wait.

Limits stay within ``[min_size, max_size]`` and ``[min_wait_s, wait cap]`` whatever is
observed. Pure and synchronous: no clock, no I/O; the caller measures and reports.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamer.settings import AdaptiveSettings, BatchSettings

log = logging.getLogger(__name__)
_FORGET = 0.95  # per batch: the service-time fit remembers roughly the last 20 batches
# Falling behind: the mean backlog of the last _HALF batches exceeds that of the _HALF
# before by more than _BEHIND of a batch. Halves, not neighbours: a Kafka fetch lands at
# once, so the lag jumps and falls back from batch to batch without any growth. The same
# halves give the pace at which a standing queue shrinks.
_HALF = 4
_BEHIND = 0.25


@dataclass(frozen=True)
class Decision:
    """What one ``observe`` changed, for logging and tests."""

    size: int
    wait_s: float
    p99_ms: float | None
    reason: str


class AdaptiveBatcher:
    def __init__(
        self,
        target_p99_ms: float,
        min_size: int,
        max_size: int,
        min_wait_s: float,
        max_wait_s: float,
        *,
        initial_size: int | None = None,
        window: int = 512,
        min_samples: int = 32,
        headroom: float = 0.8,
        decrease: float = 0.5,
        size_step: int = 4,
        wait_share: float = 0.25,
        service_share: float = 0.5,
        fill_events: int = 0,
    ) -> None:
        if target_p99_ms <= 0:
            raise ValueError("target_p99_ms must be > 0")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be in (0, 1)")
        if not 0 < headroom <= 1:
            raise ValueError("headroom must be in (0, 1]")
        self.target_ms = float(target_p99_ms)
        self.max_size = max(1, int(max_size))
        self.min_size = max(1, min(int(min_size), self.max_size))
        self.min_wait_s = max(1e-4, float(min_wait_s))
        cap = min(float(max_wait_s), wait_share * self.target_ms / 1000.0)
        self.max_wait_s = max(self.min_wait_s, cap)
        self.min_samples = max(1, min_samples)
        self.headroom = headroom
        self.decrease = decrease
        self.size_step = max(1, size_step)
        self.service_budget_ms = service_share * self.target_ms
        self.fill_events = max(0, int(fill_events))
        start = initial_size if initial_size is not None else 8
        self._size = self._clamp_size(start)
        self._wait_s = self.min_wait_s
        self._window: deque[float] = deque(maxlen=max(self.min_samples, window))
        self._since_cut = 0  # latencies observed since the window last restarted
        # Exponentially weighted sums for the service-time line: w, n, n^2, s, n*s.
        self._fit = [0.0, 0.0, 0.0, 0.0, 0.0]
        self._backlogs: deque[int] = deque(maxlen=2 * _HALF)
        self._arrivals = [0.0, 0.0]  # events, seconds: exponentially forgotten like _fit
        self.last: Decision | None = None

    @classmethod
    def from_settings(cls, batching: BatchSettings, adaptive: AdaptiveSettings
                      ) -> AdaptiveBatcher:
        # The adaptive section's fields are this constructor's keywords, one for one.
        return cls(batching.latency_target_ms, batching.min_size, batching.max_size,
                   batching.min_wait_s, batching.max_wait_s, **dict(adaptive))

    # --- state ---------------------------------------------------------------------------

    def limits(self) -> tuple[int, float]:
        """The next batch's (max events, max seconds its first event waits)."""
        return self._size, max(self._wait_s, self.fill_wait_s())

    def arrival_rate(self) -> float | None:
        """Events per second over the recent batches; None until the caller reports time."""
        events, seconds = self._arrivals
        rate = events / seconds if 0 < seconds < math.inf and events > 0 else 0.0
        return rate if rate > 0 else None  # 0: no event, or too few to tell in that time

    def fill_wait_s(self) -> float:
        """How long ``min(size, fill_events)`` events take to arrive at the recent rate, when
        that fits the wait cap; 0 otherwise (a slower stream is not held back)."""
        rate = self.arrival_rate()
        if not self.fill_events or rate is None:
            return 0.0
        wait = min(self._size, self.fill_events) / rate
        return wait if wait <= self.max_wait_s else 0.0

    def p99_ms(self) -> float | None:
        """The window's p99, or None while fewer than ``min_samples`` since a restart."""
        if self._since_cut < self.min_samples or not self._window:
            return None
        ordered = sorted(self._window)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]

    # --- the rule ------------------------------------------------------------------------

    def observe(self, batch_size: int, e2e_latencies_ms: Iterable[float], service_ms: float,
                backlog: int, elapsed_s: float | None = None) -> Decision:
        """Feed one finished batch: its size, its events' end-to-end latencies, how long
        it took from hand-over to ack, how many events were already waiting then, and the
        seconds since the previous batch was fed (for the arrival rate; None: unknown)."""
        n = max(0, int(batch_size))
        if elapsed_s is not None and math.isfinite(elapsed_s) and elapsed_s >= 0:
            a = self._arrivals
            a[0], a[1] = _FORGET * a[0] + n, _FORGET * a[1] + elapsed_s
        service = max(0.0, float(service_ms)) if math.isfinite(service_ms) else 0.0
        backlog = max(0, int(backlog))
        for lat in e2e_latencies_ms:
            if math.isfinite(lat):
                self._window.append(max(0.0, lat))
                self._since_cut += 1
        if n > 0:
            f = self._fit
            for i, v in enumerate((1.0, n, n * n, service, n * service)):
                f[i] = _FORGET * f[i] + v

        size, wait = self._size, self._wait_s
        full = n >= size
        self._backlogs.append(backlog)
        p99 = self.p99_ms()
        reason = "hold"
        if p99 is not None and p99 > self.target_ms:
            if full and backlog * 2 >= size:
                if self._fits(size + self.size_step):
                    size, reason = size + self.size_step, "over target, queueing: grow"
                elif self._falling_behind(size) and size < self.max_size:
                    size, reason = size + self.size_step, "over target, falling behind: grow"
                elif self._stuck(size, backlog) and size < self.max_size:
                    size, reason = (size + self.size_step,
                                    "over target, queue draining too slowly: grow")
                else:
                    reason = "over target, draining the queue: hold"
            elif full:
                size, wait = self._cut(size), wait * self.decrease
                reason = "over target: cut size and wait"
                self._restart()
            # Not full: the size limit did not bind (the batch took what had arrived), so
            # cutting it would only split the same events into more batches, each paying
            # the per-batch cost. Only the wait is cut (below).
        elif (p99 is not None and p99 < self.headroom * self.target_ms
              and full and backlog >= size and self._fits(size + self.size_step)):
            size, reason = size + self.size_step, "under target, falling behind: grow"
        if not full and "cut size and wait" not in reason and wait > self.min_wait_s:
            wait = wait * self.decrease
            if reason == "hold":
                reason = "batch did not fill: shorter wait"

        self._size = self._clamp_size(size)
        self._wait_s = min(self.max_wait_s, max(self.min_wait_s, wait))
        self.last = Decision(*self.limits(), p99, reason)
        return self.last

    def predict_service_ms(self, size: int) -> float | None:
        """Service time expected for a batch of ``size``; None before any batch."""
        w, sn, snn, ss, sns = self._fit
        if w <= 0 or sn <= 0:
            return None
        mean_n, mean_s = sn / w, ss / w
        var_n = snn / w - mean_n * mean_n
        if var_n > 0.25 * mean_n:  # sizes spread enough to tell overhead from per-event cost
            slope = (sns / w - mean_n * mean_s) / var_n
            intercept = mean_s - slope * mean_n
            if slope >= 0 and intercept >= 0:
                return intercept + slope * size
        return mean_s / mean_n * size

    def _growth(self) -> float | None:
        """Mean backlog of the last ``_HALF`` batches minus that of the ``_HALF`` before;
        None until there are that many."""
        b = list(self._backlogs)
        if len(b) < 2 * _HALF:
            return None
        return (sum(b[_HALF:]) - sum(b[:_HALF])) / _HALF

    def _falling_behind(self, size: int) -> bool:
        growth = self._growth()
        return growth is not None and growth > _BEHIND * size

    def _stuck(self, size: int, backlog: int) -> bool:
        """A standing queue (never below half a batch over the last ``2 * _HALF`` batches)
        that, at the pace it shrank over them, takes longer than the target to empty."""
        growth = self._growth()
        if growth is None or min(self._backlogs) * 2 < size:
            return False
        shrink = -growth / _HALF  # events per batch: the halves' centres are _HALF apart
        if shrink <= 0:
            return True
        per_batch_ms = self.predict_service_ms(size) or 0.0
        return backlog / shrink * per_batch_ms > self.target_ms

    def _fits(self, size: int) -> bool:
        predicted = self.predict_service_ms(size)
        return predicted is None or predicted <= self.service_budget_ms

    def _cut(self, size: int) -> int:
        return int(size * self.decrease)

    def _restart(self) -> None:
        self._window.clear()
        self._since_cut = 0

    def _clamp_size(self, size: int) -> int:
        return max(self.min_size, min(self.max_size, int(size)))


class AdaptiveFeedback:
    """Feeds each finished batch to an :class:`AdaptiveBatcher` and reports its limits
    (``show``: e.g. the worker's gauges) whenever they change, and once at the start."""

    def __init__(self, batcher: AdaptiveBatcher, show: Callable[[int, float], None],
                 name: str = "") -> None:
        self.batcher = batcher
        self.show = show
        self.name = name
        self._observed_at: float | None = None  # ms: when the batcher last heard of a batch
        show(*batcher.limits())

    def after_batch(self, size: int, e2e_latencies_ms: Iterable[float], service_ms: float,
                    backlog: int, now_ms: float) -> Decision:
        before = self.batcher.limits()
        elapsed_s = None if self._observed_at is None else (now_ms - self._observed_at) / 1000.0
        decision = self.batcher.observe(size, e2e_latencies_ms, service_ms, backlog, elapsed_s)
        self._observed_at = now_ms
        if self.batcher.limits() != before:
            self.show(*self.batcher.limits())
            log.debug("batch limits %s: size %d, wait %.1f ms (p99 %s ms, %s)",
                      self.name, decision.size, decision.wait_s * 1000,
                      "-" if decision.p99_ms is None else f"{decision.p99_ms:.1f}",
                      decision.reason)
        return decision
