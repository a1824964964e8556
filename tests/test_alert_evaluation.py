"""Scoring alerts against labelled spikes (streamer.evaluation.judge), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streamer.detect.core import Buckets
from streamer.evaluation.judge import Detected, evaluate
from streamer.produce.demo import SpikeLabel

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SPAN = (T0.timestamp(), T0.timestamp() + 6 * 3600)


def label(at_min: float, *, key: str = "XOM", minutes: float = 1.5, messages: int = 45
          ) -> SpikeLabel:
    start = T0 + timedelta(minutes=at_min)
    return SpikeLabel(scope="ticker", key=key, start=start,
                      end=start + timedelta(minutes=minutes), messages=messages)


def fired(at_s: float, key: str = "XOM", kind: str = "fired") -> Detected:
    return Detected(f"a-{key}-{at_s}", kind, "ticker", key, T0.timestamp() + at_s, "warning")


def test_a_spike_is_caught_by_the_first_alert_on_its_key_with_the_delay_from_onset() -> None:
    lb = label(60)
    onset = 3600.0
    report = evaluate([lb], [fired(onset + 30), fired(onset + 12), fired(onset + 5, key="CVX")],
                      span=SPAN, warmup_s=300)
    (s,) = report.spikes
    assert s.caught and s.delay_s == 12.0 and s.per_min == 30.0


def test_an_alert_after_the_matching_grace_misses_the_spike() -> None:
    lb = label(60)
    report = evaluate([lb], [fired(3600 + 90 + 200)], span=SPAN, warmup_s=300,
                      match_after_s=90)
    assert not report.spikes[0].caught


def test_fired_alerts_far_from_every_spike_are_false_and_calm_hours_exclude_spikes() -> None:
    lb = label(60)
    report = evaluate([lb], [fired(3 * 3600), fired(3600 + 400, key="BP")], span=SPAN,
                      warmup_s=300, match_after_s=90, calm_gap_s=900)
    assert [f.detected_s - T0.timestamp() for f in report.false_alerts] == [3 * 3600]
    busy = 300 + 90 + 90 + 900  # warm-up, then [onset - 90, end + 900]
    assert abs(report.calm_hours - (6 * 3600 - busy) / 3600) < 1e-9


def _buckets(key: str, before: tuple[int, int], during: tuple[int, int], onset: int
             ) -> Buckets:
    """One bucket per minute before the onset with ``before`` counts, ``during`` after."""
    out: Buckets = {}
    for b in range(onset - 1800, onset, 60):
        out[b] = {("ticker", key): before}
    for b in range(onset, onset + 90, 10):
        out[b] = {("ticker", key): during}
    return out


def test_a_spike_below_three_times_the_baseline_share_is_not_covered_by_the_target() -> None:
    onset = int(T0.timestamp()) + 3600
    strong, weak = label(60), label(60, key="AAPL")
    buckets = _buckets("XOM", (10, 1), (10, 6), onset)  # 10% -> 60%: 6x
    for b, keys in _buckets("AAPL", (10, 3), (10, 6), onset).items():  # 30% -> 60%: 2x
        buckets.setdefault(b, {}).update(keys)
    report = evaluate([strong, weak], [], span=SPAN, warmup_s=300, buckets=buckets)
    xom, aapl = report.spikes
    assert xom.baseline_share == 0.1 and xom.spike_share == 0.6
    assert abs((aapl.ratio or 0) - 2.0) < 1e-9
    assert [s.key for s in report.qualifying()] == ["XOM"]


def test_without_counts_only_the_rate_decides_coverage() -> None:
    report = evaluate([label(60, messages=20), label(120, messages=45)], [], span=SPAN,
                      warmup_s=300)
    assert [s.per_min for s in report.qualifying()] == [30.0]


def test_an_earlier_spike_on_the_same_key_does_not_count_as_baseline() -> None:
    onset = int(T0.timestamp()) + 3600
    first, second = label(40), label(60)  # the first spike lies in the second's baseline
    buckets = _buckets("XOM", (10, 1), (10, 6), onset)
    for b in range(onset - 1200, onset - 1200 + 90, 10):
        buckets[b] = {("ticker", "XOM"): (10, 10)}
    report = evaluate([first, second], [], span=SPAN, warmup_s=300, buckets=buckets)
    assert report.spikes[1].baseline_share == 0.1
