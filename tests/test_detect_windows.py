"""The detector's long windows: scopes with a few stories an hour (real news volumes)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.detect.core import ALL, Decision, Detector, DetectorParams, KeyState, LongStats
from streamer.detect.rings import Ring

P = DetectorParams()
W = P.bucket_s
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
KEY = ("market", "Nikkei")
HOUR, DAY = 3_600, 86_400
Counts = dict[tuple[str, str], tuple[int, int]]
PROPS = settings(derandomize=True, deadline=None, max_examples=8,
                 suppress_health_check=[HealthCheck.too_slow])


def news(seed: int, days: float, per_hour: float, share: float, *,
         shift: tuple[float, float, float] | None = None) -> list[tuple[int, Counts]]:
    """Sparse buckets of a low-volume key inside a wire of 20 stories an hour (share 0.2):
    stories arrive as a Poisson process; ``shift`` = (start hour, hours, share) raises the
    key's negative share for a while."""
    rng = random.Random(seed)
    out: dict[int, dict[tuple[str, str], list[int]]] = {}

    def arrivals(rate_h: float, span_s: float) -> list[float]:
        t, times = 0.0, list[float]()
        while True:
            t += rng.expovariate(rate_h / HOUR)
            if t >= span_s:
                return times
            times.append(t)

    def add(t: float, key: tuple[str, str], negative: bool) -> None:
        b = T0 + int(t) - int(t) % W
        c = out.setdefault(b, {}).setdefault(key, [0, 0])
        c[0] += 1
        c[1] += int(negative)

    span = days * DAY
    for t in arrivals(20.0, span):
        add(t, ALL, rng.random() < 0.2)
    for t in arrivals(per_hour, span):
        p = share
        if shift is not None and shift[0] * HOUR <= t < (shift[0] + shift[1]) * HOUR:
            p = shift[2]
        negative = rng.random() < p
        add(t, KEY, negative)
        add(t, ALL, negative)
    return [(b, {k: (c[0], c[1]) for k, c in keys.items()}) for b, keys in sorted(out.items())]


def run(buckets: list[tuple[int, Counts]], params: DetectorParams = P, *,
        every_bucket: bool = False) -> list[Decision]:
    det = Detector(params)
    out: list[Decision] = []
    if every_bucket:
        by_start = dict(buckets)
        for b in range(buckets[0][0], buckets[-1][0] + W, W):
            out += det.step(b, by_start.get(b, {}))
    else:
        for b, counts in buckets:
            out += det.step(b, counts)
    return out


def fired(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.kind == "fired"]


@PROPS
@given(seed=st.integers(0, 10_000), per_hour=st.floats(1.0, 30.0), share=st.floats(0.05, 0.4))
def test_a_stationary_low_volume_scope_stays_within_two_alerts_a_week(
    seed: int, per_hour: float, share: float
) -> None:
    decisions = run(news(seed, days=7, per_hour=per_hour, share=share))
    assert len(fired(decisions)) <= 2


@PROPS
@given(seed=st.integers(0, 10_000))
def test_a_sustained_shift_in_a_two_stories_an_hour_scope_fires(seed: int) -> None:
    # Three calm days at 15% negative, then eight hours at 90%.
    decisions = run(news(seed, days=4, per_hour=2.0, share=0.15, shift=(72, 8, 0.9)))
    hits = [d for d in fired(decisions) if T0 + 72 * HOUR <= d.bucket < T0 + 84 * HOUR]
    assert hits, "no alert during or just after the shift"
    assert hits[0].window_s > P.short_window_s  # a long window saw it, not the 60 s one


def test_a_long_episode_fires_once_and_names_its_windows() -> None:
    decisions = run(news(7, days=4, per_hour=4.0, share=0.15, shift=(72, 8, 0.9)))
    during = [d for d in fired(decisions) if T0 + 72 * HOUR <= d.bucket < T0 + 90 * HOUR]
    assert len(during) == 1
    d = during[0]
    assert d.window_s in P.long_windows_s
    shorter = (P.short_window_s, *P.long_windows_s)
    assert d.confirm_s == shorter[P.long_windows_s.index(d.window_s)]


@PROPS
@given(seed=st.integers(0, 10_000))
def test_stepping_every_bucket_or_only_buckets_with_news_gives_the_same_alerts(seed: int) -> None:
    # What a replay at another speed changes: how many empty buckets each call sees.
    buckets = news(seed, days=3, per_hour=3.0, share=0.15, shift=(50, 5, 0.8))
    sparse = [(d.alert_id, d.z) for d in run(buckets)]
    dense = [(d.alert_id, d.z) for d in run(buckets, every_bucket=True)]
    assert [a for a, _ in sparse] == [a for a, _ in dense]


def test_state_saved_and_reloaded_mid_stream_gives_the_same_alerts() -> None:
    buckets = news(3, days=4, per_hour=2.0, share=0.15, shift=(72, 6, 0.85))
    whole = [d.alert_id for d in run(buckets)]
    half = len(buckets) // 2
    det = Detector(P)
    ids = [d.alert_id for b, c in buckets[:half] for d in det.step(b, c)]
    reloaded = Detector(P, {k: KeyState.model_validate_json(s.model_dump_json())
                            for k, s in det.states.items()}, det.cursor, det.origin)
    ids += [d.alert_id for b, c in buckets[half:] for d in reloaded.step(b, c)]
    assert ids == whole


def test_a_quiet_key_keeps_its_long_baseline_over_a_weekend() -> None:
    # A scope with a few stories a day: silence longer than the longest window must not
    # forget the history it is judged against.
    det = Detector(P)
    b = T0
    for day in range(3):
        for i in range(6):
            b = T0 + day * DAY + i * HOUR
            det.step(b, {KEY: (1, 0), ALL: (1, 0)})
    det.step(b + 2 * DAY, {ALL: (1, 0)})
    assert KEY in det.states
    assert det.states[KEY].long.bn > 0


def test_a_key_silent_for_weeks_is_forgotten() -> None:
    det = Detector(P)
    det.step(T0, {KEY: (1, 0), ALL: (1, 0)})
    det.step(T0 + 30 * DAY, {ALL: (1, 0)})
    assert KEY not in det.states


def test_no_long_windows_configured_keeps_the_short_detector_alone() -> None:
    params = DetectorParams(long_windows_s=())
    decisions = run(news(5, days=4, per_hour=2.0, share=0.15, shift=(72, 6, 0.85)), params)
    assert all(d.window_s <= params.short_window_s for d in decisions)


@given(start=st.integers(0, 10_000), steps=st.lists(st.integers(0, 5_000), max_size=20),
       width=st.sampled_from([60, 240, 1_440]))
@settings(derandomize=True, deadline=None, max_examples=60)
def test_a_ring_advanced_in_one_jump_equals_one_advanced_step_by_step(
    start: int, steps: list[int], width: int
) -> None:
    t = T0 + start * W
    a, b = Ring.empty(t, width, 15), Ring.empty(t, width, 15)
    evicted_a: list[tuple[int, int, int]] = []
    evicted_b: list[tuple[int, int, int]] = []
    for k, gap in enumerate(steps):
        target = t + gap * W
        a.advance(target, lambda s, n, x: evicted_a.append((s, n, x)))
        for mid in range(t + W, target + W, W):
            b.advance(mid, lambda s, n, x: evicted_b.append((s, n, x)))
        a.add(k + 1, k % 2)
        b.add(k + 1, k % 2)
        t = target
    assert a == b
    assert evicted_a == evicted_b


def test_a_spike_that_was_alerted_and_resolved_does_not_fire_again_from_the_long_windows(
) -> None:
    # A busy minute of negatives on a thin scope: the short window fires and resolves;
    # the long windows still hold the spike after the cooldown, and must not re-fire on it.
    rng = random.Random(11)
    buckets: list[tuple[int, Counts]] = []
    for i in range(int(2 * DAY / W)):
        b = T0 + i * W
        spike = 36 * HOUR <= i * W < 36 * HOUR + 90
        n = 3 if spike else int(rng.random() < 0.02)
        x = n if spike else int(n and rng.random() < 0.2)
        if n:
            buckets.append((b, {KEY: (n, x), ALL: (n, x)}))
    decisions = run(buckets)
    after = [d for d in fired(decisions) if d.bucket >= T0 + 36 * HOUR]
    # One alert, raised by the spike itself (by whichever window saw it first).
    assert len(after) == 1 and after[0].bucket < T0 + 36 * HOUR + 90


def _calm_longs(per_6h: float) -> list[LongStats]:
    """Long windows of a key whose baseline brings ``per_6h`` messages every 6 h."""
    return [LongStats(window_s=w, start=T0, messages=0, negatives=0, share=0.0,
                      baseline_share=0.2, baseline_messages=per_6h * w / 21_600, z=0.0)
            for w in P.long_windows_s]


def test_a_busy_key_must_reach_a_higher_long_z_than_a_quiet_one() -> None:
    # A busy key is tested far more often a week: the same z would fire on it more often.
    det = Detector(P)
    quiet = det.long_z_min("market", _calm_longs(2.0))
    busy = det.long_z_min("market", _calm_longs(300.0))
    assert quiet == P.long_z_threshold
    assert busy >= quiet + 0.3


def test_a_scope_kind_can_have_its_own_long_z_floor() -> None:
    det = Detector(P.model_copy(update={"long_z_by_scope": {"topic": 3.7}}))
    assert det.long_z_min("topic", _calm_longs(2.0)) == 3.7
    assert det.long_z_min("ticker", _calm_longs(2.0)) == P.long_z_threshold


def test_a_slow_scope_turns_major_when_its_longest_window_holds_the_evidence() -> None:
    # Three calm days, then a negative story every 12 min: the 1 h window fires first and
    # keeps passing, yet never holds the eight negatives a major alert needs; the 6 h
    # window soon does, and the episode is graded on it.
    buckets: list[tuple[int, Counts]] = []
    for k in range(3 * 24 * 5):  # one story every 12 min, every 7th negative
        x = int(k % 7 == 0)
        buckets.append((T0 + k * 720, {KEY: (1, x), ALL: (1, x)}))
    shift = T0 + 3 * DAY
    for k in range(5 * 8):
        buckets.append((shift + k * 720, {KEY: (1, 1), ALL: (1, 1)}))
    during = [d for d in run(buckets) if d.bucket >= shift]
    assert during[0].kind == "fired" and during[0].severity == "warning"
    assert during[0].window_s == 3_600
    major = [d for d in during if d.kind == "escalated" and d.severity == "major"]
    assert major and major[0].window_s == P.long_windows_s[-1]
    assert major[0].stats.negatives >= P.long_major_negatives
