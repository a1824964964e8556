"""The negative-spike detector, pure: per-bucket counts in event time in, decisions out.

No I/O and no clocks. Every input is a closed event-time bucket (its start in epoch
seconds and, per scope key, how many messages and how many of them negative); every
output depends only on the sequence of buckets. That is what makes alerts identical
for a live stream and for a replay at any speed, and what the property tests check.

Per scope key (``("topic", "Energy | Oil")``, ``("ticker", "XOM")``):

* the **short window** is the last ``ceil(short_window_s / bucket_s)`` buckets;
* the **baseline** is an exponentially weighted average of the buckets that have left
  the short window (time constant ``baseline_s``), so a spike does not raise its own
  baseline while it is being judged; during an episode its buckets are left out of the
  baseline altogether (for at most ``baseline_freeze_s``, after which a lasting shift is learned);
* **fire** when the window's negative share is significantly above the baseline
  share (two-proportion z over a threshold, a minimum volume, a minimum number of
  negatives and a minimum absolute lift), or, on a quiet scope whose baseline volume
  is below the minimum, when the window holds a burst of negatives that a Poisson
  model of the baseline negative rate makes very unlikely;
* **escalate** when the severity (from z) rises during an episode;
* **resolve** once the share has stayed below a lower line (z or lift) for
  ``resolve_s`` (hysteresis), after which the key cools down for ``cooldown_s``.

Keys that are quiet (empty window, no episode) are not stepped bucket by bucket; when
they next receive messages they are fast-forwarded in closed form. When every key is
quiet, empty buckets are not evaluated at all: the cursor jumps over them, so an empty
stretch of event time (a gap in a backfill, years after a stray old event) costs one
step, not one per bucket. Which keys get stepped depends only on the data, so the
result is still a function of the buckets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamer.detect.rings import LongBaseline, Ring, slot_width
from streamer.detect.stats import poisson_sf, proportion_z, z_from_p
from streamer.keys import AlertScope
from streamer.keys import episode_id as make_episode_id
from streamer.schemas.alerts import SEVERITIES, AlertKind, Severity

ScopeKey = tuple[str, str]
# Per bucket start, per scope key: (messages, negatives).
Buckets = dict[int, dict[ScopeKey, tuple[int, int]]]
ALL: ScopeKey = ("all", "all")
# Weight (in messages) of the global share used as a prior for a key's baseline share:
# a key seen for the first time starts at the stream's overall negative share.
PRIOR_MESSAGES = 5.0
DEFAULT_PRIOR_SHARE = 0.2
# A key whose baseline has decayed below this many messages per bucket, with nothing
# in its window and no episode, is forgotten (bounded state); it restarts from zero.
FORGET_BELOW = 1e-3
FORGET_EVERY = 60
LONG_FORGET_PER_DAY = 0.5
WEEK_S = 7 * 86_400


def severity_rank(severity: Severity | None) -> int:
    return -1 if severity is None else SEVERITIES.index(severity)


class DetectorTunables(BaseModel):
    """The detector's tunables, defined once: ``AlertSettings`` reads each from
    ``STREAMER_ALERT_<NAME>`` (streamer/settings.py)."""

    short_window_s: int = Field(
        60, ge=1, description="Short window compared with the baseline (event-time seconds)."
    )
    baseline_s: float = Field(
        1_800.0, gt=0, description="Time constant of the exponentially weighted baseline (s)."
    )
    warmup_s: int = Field(
        240, ge=0, description="Event-time history a scope needs before it may fire."
    )
    z_threshold: float = Field(
        4.0, gt=0, description="Fire: z of the window's negative share against the baseline "
        "(exact binomial tail, widened for the baseline's own uncertainty).",
    )
    min_volume: int = Field(8, ge=1, description="Fire: least messages in the (sub-)window tested.")
    min_negatives: int = Field(
        5, ge=1, description="Fire: least negative messages in the short window."
    )
    min_lift: float = Field(
        0.10, ge=0, le=1, description="Fire: least absolute rise of the negative share."
    )
    min_baseline_share: float = Field(
        0.02, gt=0, lt=1, description="Floor of the baseline share in the z-score."
    )
    burst_min_negatives: int = Field(
        6, ge=1, description="Quiet-scope burst: least negative messages in the window."
    )
    burst_p_value: float = Field(
        1e-6, gt=0, lt=1, description="Quiet-scope burst: Poisson tail probability to fire."
    )
    burst_min_rate: float = Field(
        0.5, gt=0, description="Quiet-scope burst: floor of expected negatives per window."
    )
    z_major: float = Field(7.0, gt=0, description="z at which severity becomes 'major'.")
    z_critical: float = Field(11.0, gt=0, description="z at which severity becomes 'critical'.")
    resolve_z: float = Field(
        2.0, ge=0, description="Resolve: z below this (or lift below resolve_lift)..."
    )
    resolve_lift: float = Field(
        0.05, ge=0, le=1, description="Resolve: ...or absolute lift below this..."
    )
    resolve_s: int = Field(
        120, ge=0, description="...for this long (event-time seconds) without interruption."
    )
    cooldown_s: int = Field(
        600, ge=0, description="After a resolve, the same scope key cannot fire for this long."
    )
    baseline_freeze_s: int = Field(
        900, ge=0, description="An open episode's buckets stay out of the baseline this long "
        "at most (then a lasting shift is learned).",
    )
    scan_subwindows: bool = Field(
        True, description="Also test the trailing sub-windows (10 s, 20 s, ...): faster onsets."
    )
    long_windows_s: tuple[int, ...] = Field(
        (900, 3_600, 21_600), description="Longer windows (event-time s, shortest first; "
        "JSON list, [] for none), judged against the long baseline: they let a scope with a "
        "few stories an hour alert.",
    )
    long_slots: int = Field(
        15, ge=2, le=120, description="Slots per long window (its resolution: window / slots).")
    long_baseline_s: float = Field(
        86_400.0, gt=0, description="Time constant of the long baseline, fed by what leaves "
        "the longest window (s).",
    )
    long_prior_messages: float = Field(
        20.0, gt=0, description="Weight, in messages, of the stream's negative share as the "
        "prior of a scope key's long baseline (a key with little history is judged against "
        "the stream).",
    )
    long_z_by_scope: dict[AlertScope, float] = Field(
        {"topic": 3.5},
        description="The long_z_threshold of a scope kind (JSON object, e.g. '{\"topic\": 3.5}'): "
        "a topic gathers clustered routine news (a batch of results, a day's data releases), "
        "so its share moves more than a binomial test allows (docs/ALERTS.md).",
    )
    long_z_threshold: float = Field(
        3.0, gt=0, description="Fire on a long window: z of its negative share against the "
        "long baseline...",
    )
    long_false_alarms_per_week: float = Field(
        0.3, gt=0, le=1, description="...raised for a busy scope key so that a stationary "
        "stream of its volume would fire a long window about this often per week (the "
        "z-test's tail probability times the key's tests a week)...",
    )
    long_min_negatives: int = Field(
        4, ge=1, description="...at least this many negative messages in it...")
    long_min_lift: float = Field(
        0.30, ge=0, le=1, description="...a share at least this far above the long baseline...")
    confirm_lift: float = Field(
        0.20, ge=0, le=1, description="...and the next shorter window agrees: a negative "
        "message and a share at least this far above the baseline (the multi-window rule: "
        "the shift is still happening).",
    )
    long_major_share: float = Field(
        0.5, gt=0, le=1, description="A long-window alert is at least 'major' when the "
        "window's negative share reaches this...",
    )
    long_major_negatives: int = Field(
        8, ge=1, description="...with at least this many negative messages.")

    @field_validator("long_windows_s")
    @classmethod
    def _ascending(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(w <= 0 for w in v) or list(v) != sorted(set(v)):
            raise ValueError("long windows must be positive and strictly ascending")
        return v


class DetectorParams(DetectorTunables):
    """Everything the detector needs: its tunables and the width of a bucket."""

    model_config = ConfigDict(frozen=True)

    bucket_s: int = Field(10, ge=1, description="Width of an event-time bucket (s).")

    @cached_property
    def buckets(self) -> int:
        """Buckets in the short window."""
        return max(1, math.ceil(self.short_window_s / self.bucket_s))

    @cached_property
    def decay(self) -> float:
        """Weight an EWMA keeps per bucket: exp(-bucket / time constant)."""
        return math.exp(-self.bucket_s / self.baseline_s)

    @cached_property
    def long_widths(self) -> tuple[int, ...]:
        """Slot width (s) of each long window."""
        return tuple(slot_width(w, self.long_slots, self.bucket_s) for w in self.long_windows_s)

    @cached_property
    def long_decay(self) -> float:
        """Weight the long baseline keeps per slot of the longest window."""
        return math.exp(-self.long_widths[-1] / self.long_baseline_s) if self.long_widths else 1.0

    @cached_property
    def longest_s(self) -> int:
        """Event time the longest window spans."""
        if not self.long_windows_s:
            return self.buckets * self.bucket_s
        return self.long_widths[-1] * self.long_slots

    def window_of(self, tier: int) -> int:
        """Length (s) of a tier: 0 is the short window, j + 1 the long window j."""
        return self.short_window_s if tier == 0 else self.long_windows_s[tier - 1]

    def severity(self, z: float) -> Severity:
        if z >= self.z_critical:
            return "critical"
        return "major" if z >= self.z_major else "warning"


class KeyState(BaseModel):
    """One scope key's detector state; serialized to Redis between evaluations."""

    last: int = Field(description="Start (epoch s) of the last bucket stepped.")
    n: list[int] = Field(description="Messages per bucket in the short window, oldest first.")
    neg: list[int] = Field(description="Negative messages per bucket in the window.")
    bn: float = 0.0  # EWMA sums, not bias-corrected: rate = bn / bw
    bneg: float = 0.0
    bw: float = 0.0
    active: bool = False
    severity: Severity | None = None
    episode: int | None = Field(None, description="Bucket start at which the episode fired.")
    onset: int | None = Field(None, description="Estimated onset bucket of the episode.")
    first_event_ms: float | None = Field(
        None, description="Event time of the episode's first message (set from evidence)."
    )
    below_since: int | None = None
    cool_until: int | None = None
    # Long windows (empty until the key is first stepped with them configured).
    rings: list[Ring] = Field(default_factory=list)
    long: LongBaseline = Field(default_factory=LongBaseline)
    tier: int = Field(0, description="Window of the open episode: 0 short, j + 1 long window j.")
    touched: int | None = Field(None, description="Last bucket that held messages for the key.")
    ep_from: int | None = Field(None, description="Onset of the last episode (kept out of the "
                                "long baseline).")
    ep_to: int | None = Field(None, description="End of the last episode (None: still open).")

    @property
    def live(self) -> bool:
        """Needs stepping every bucket: something in the window, or an episode open."""
        return self.active or any(self.n)


@dataclass(frozen=True)
class WindowStats:
    """What the detector saw for one key at one bucket (also shown by ``streamer trends``)."""

    messages: int
    negatives: int
    share: float
    baseline_share: float
    baseline_messages: float  # expected messages per short window
    z: float
    quiet: bool
    burst_p: float
    peak_z: float = 0.0  # best trailing sub-window that passes the volume and lift rules
    peak_buckets: int = 0  # its length in buckets (0: none passes)

    @property
    def lift(self) -> float:
        return self.share - self.baseline_share


@dataclass(frozen=True)
class LongStats:
    """One long window of one key against the long baseline."""

    window_s: int
    start: int  # start (epoch s) of its oldest slot
    messages: int
    negatives: int
    share: float
    baseline_share: float
    baseline_messages: float  # expected messages per window at the baseline's rate
    z: float

    @property
    def lift(self) -> float:
        return self.share - self.baseline_share


@dataclass(frozen=True)
class Decision:
    kind: AlertKind
    scope: str
    key: str
    bucket: int  # start of the bucket whose close decided it
    window_start: int
    window_end: int  # exclusive, epoch s
    stats: WindowStats
    z: float
    severity: Severity
    episode: int
    onset: int
    reason: Literal["share", "burst"] | None = None
    window_s: int = 0  # length of the window whose test fired (or graded) this
    confirm_s: int | None = None  # the shorter window that agreed (long windows only)

    @property
    def episode_id(self) -> str:
        """``<scope>:<encoded key>:<fired bucket>``: the key percent-encoded, so the id
        stays a safe identifier for any label ('topic:Energy%20%7C%20Oil:...')."""
        return make_episode_id(self.scope, self.key, self.episode)

    @property
    def alert_id(self) -> str:
        """Deterministic: the same decision from any worker or replay has the same id."""
        tail = f"escalated-{self.severity}" if self.kind == "escalated" else self.kind
        return f"{self.episode_id}:{tail}"


@dataclass
class Detector:
    """All scope keys together, stepped one closed bucket at a time."""

    params: DetectorParams
    states: dict[ScopeKey, KeyState] = field(default_factory=dict)
    cursor: int | None = None  # start of the last bucket evaluated
    origin: int | None = None  # start of the first bucket ever evaluated
    changed: set[ScopeKey] = field(default_factory=set)
    removed: set[ScopeKey] = field(default_factory=set)
    # Keys that need stepping every bucket, kept as they change: scanning every state per
    # bucket cost more than the stepping once thousands of tickers are remembered.
    _live: set[ScopeKey] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self._live = {k for k, st in self.states.items() if st.live}

    # --- stepping ---------------------------------------------------------------------
    def step(self, bucket: int, counts: Mapping[ScopeKey, tuple[int, int]]) -> list[Decision]:
        """Evaluate the closed bucket starting at ``bucket``; counts: key -> (n, neg).

        Buckets must come in order; a gap is filled with empty buckets so live keys
        see the time pass.
        """
        w = self.params.bucket_s
        if bucket % w:
            raise ValueError(f"bucket {bucket} is not aligned to {w}s")
        if self.cursor is not None and bucket <= self.cursor:
            raise ValueError(f"bucket {bucket} is not after the cursor {self.cursor}")
        out: list[Decision] = []
        if self.cursor is not None:
            for gap in range(self.cursor + w, bucket, w):
                if self.idle:
                    self._jump(bucket - w)
                    break
                out += self._step_one(gap, {})
            if self.idle and not any(n > 0 for n, _ in counts.values()):
                self._jump(bucket)
                return out
        out += self._step_one(bucket, counts)
        return out

    @property
    def idle(self) -> bool:
        """No key needs stepping: every window is empty and no episode is open."""
        return not self._live

    def _jump(self, upto: int) -> None:
        """Move the cursor over idle buckets to ``upto``: what stepping them would do, in
        closed form. Quiet keys (``ALL`` too) are fast-forwarded when next stepped; the
        forget check runs once, as of the last checkpoint passed (a quiet key's rate only
        falls, so it forgets the keys every checkpoint on the way would have)."""
        assert self.cursor is not None
        checkpoint = upto - upto % (FORGET_EVERY * self.params.bucket_s)
        if checkpoint > self.cursor:
            self.cursor = checkpoint
            self._forget()
        self.cursor = upto

    def _step_one(self, bucket: int, counts: Mapping[ScopeKey, tuple[int, int]]) -> list[Decision]:
        if self.origin is None:
            self.origin = bucket
        all_state = self.states.get(ALL)
        prior = _share(all_state) if all_state is not None else None
        long_prior = _long_share(all_state, self.params) if all_state is not None else None
        keys = {k for k, c in counts.items() if c[0] > 0} | self._live
        keys.add(ALL)
        out = []
        for key in sorted(keys):
            st = self.states.get(key) or self._new_state(bucket)
            self._fast_forward(st, bucket - self.params.bucket_s)
            n, neg = counts.get(key, (0, 0))
            decision = self._step_key(key, st, bucket, n, min(neg, n), prior,
                                      long_prior if long_prior is not None else prior)
            self.states[key] = st
            if st.live:
                self._live.add(key)
            else:
                self._live.discard(key)
            self.changed.add(key)
            self.removed.discard(key)
            if decision is not None:
                out.append(decision)
        self.cursor = bucket
        self._forget()
        return out

    def _new_state(self, bucket: int) -> KeyState:
        k = self.params.buckets
        # As if it had been stepped with empty buckets since the origin.
        st = KeyState(last=self.origin if self.origin is not None else bucket, n=[0] * k,
                      neg=[0] * k)
        st.last -= self.params.bucket_s
        return st

    def _evicted_updates(self, after: int, upto: int) -> int:
        """Baseline updates for steps in (after, upto]: a step at t feeds bucket t - K*w
        to the baseline, once that bucket lies at or after the origin."""
        w, k = self.params.bucket_s, self.params.buckets
        assert self.origin is not None
        first = max(after + w, self.origin + k * w)
        return max(0, (upto - first) // w + 1) if upto >= first else 0

    def _fast_forward(self, st: KeyState, upto: int) -> None:
        if st.last >= upto:
            return
        if st.live:
            raise AssertionError("a live key must be stepped every bucket")
        m = self._evicted_updates(st.last, upto)
        if m:
            f = self.params.decay**m
            st.bn *= f
            st.bneg *= f
            st.bw = st.bw * f + (1.0 - f)
        st.last = upto

    def _step_key(self, key: ScopeKey, st: KeyState, bucket: int, n: int, neg: int,
                  prior: float | None, long_prior: float | None) -> Decision | None:
        p = self.params
        w = p.bucket_s
        # Slide the window; the bucket leaving it feeds the baseline.
        old_n, old_neg = st.n.pop(0), st.neg.pop(0)
        st.n.append(n)
        st.neg.append(neg)
        # An open episode's own buckets do not teach the baseline (else a spike raises
        # the bar for the next one), for at most baseline_freeze_s: a lasting shift is learned.
        frozen = (st.active and st.tier == 0 and st.onset is not None
                  and st.episode is not None and bucket - p.buckets * w >= st.onset
                  and bucket - st.episode < p.baseline_freeze_s)
        if self._evicted_updates(bucket - w, bucket) and not frozen:
            a = 1.0 - p.decay
            st.bn = p.decay * st.bn + a * old_n
            st.bneg = p.decay * st.bneg + a * old_neg
            st.bw = p.decay * st.bw + a
        st.last = bucket
        self._roll(st, bucket)
        for ring in st.rings:
            ring.add(n, neg)
        if n:
            st.touched = bucket
        if key == ALL:
            return None
        stats = self.window_stats(st, prior)
        assert self.origin is not None
        warm = bucket - self.origin - (p.buckets - 1) * w >= p.warmup_s
        # Long windows are tested on buckets that bring the key news (a function of the
        # data, so replays agree: a window that only loses messages does not newly fire),
        # once the stream has run for the longest window (before, no key's long baseline
        # has seen anything: it learns from what leaves that window); an open long
        # episode reads them every bucket to resolve.
        long_warm = bucket - self.origin >= p.longest_s
        longs = (self.long_stats(st, long_prior)
                 if (n and long_warm) or (st.active and st.tier > 0) else [])
        window_start, window_end = bucket - (p.buckets - 1) * w, bucket + w
        scope, name = key

        def decide(kind: AlertKind, z: float, sev: Severity,
                   reason: Literal["share", "burst"] | None = None) -> Decision:
            assert st.episode is not None and st.onset is not None
            window_s = (stats.peak_buckets * w if reason == "share" and stats.peak_buckets
                        else p.short_window_s)
            return Decision(kind, scope, name, bucket, window_start, window_end, stats, z, sev,
                            st.episode, st.onset, reason, window_s)

        def decide_long(kind: AlertKind, j: int, sev: Severity) -> Decision:
            assert st.episode is not None and st.onset is not None
            t = longs[j]
            as_window = WindowStats(
                messages=t.messages, negatives=t.negatives, share=t.share,
                baseline_share=t.baseline_share, baseline_messages=t.baseline_messages,
                z=t.z, quiet=False, burst_p=1.0, peak_z=t.z)
            return Decision(kind, scope, name, bucket, t.start, window_end, as_window, t.z, sev,
                            st.episode, st.onset, "share", t.window_s, p.window_of(j))

        # The full window decides resolving; the best sub-window may also fire and grade.
        z_window = max(stats.z, z_from_p(stats.burst_p) if stats.quiet else 0.0)
        z_eff = max(z_window, stats.peak_z)
        passing = self._long_passing(scope, stats, longs) if n and long_warm else []
        long_fire = passing[0] if passing else None
        if not st.active:
            if not warm or (st.cool_until is not None and bucket < st.cool_until):
                return None
            reason = self._fire_reason(stats)
            if reason is not None:
                st.active, st.episode, st.below_since, st.tier = True, bucket, None, 0
                st.onset = (bucket - (stats.peak_buckets - 1) * w if reason == "share"
                            else self._onset(st, stats.baseline_share, bucket))
                st.severity = p.severity(z_eff)
                st.first_event_ms = None
                st.ep_from, st.ep_to = st.onset, None
                return decide("fired", z_eff, st.severity, reason)
            if long_fire is None:
                return None
            j = long_fire
            st.active, st.episode, st.below_since, st.tier = True, bucket, None, j + 1
            st.onset = st.rings[j].first_negative() or longs[j].start
            st.severity = self._long_severity(longs[j])
            st.first_event_ms = None
            st.ep_from, st.ep_to = st.onset, None
            return decide_long("fired", j, st.severity)
        if st.tier == 0:
            below = stats.messages == 0 or z_window < p.resolve_z or stats.lift < p.resolve_lift
            hold = p.resolve_s
        else:
            # Open while its window or a longer one is still raised: a few stories an hour
            # leave the shorter windows empty or noisy between stories.
            still = [t for t in longs[st.tier - 1:] if t.messages and t.z >= p.resolve_z
                     and t.lift >= p.resolve_lift]
            below = not still
            hold = max(p.resolve_s, p.long_widths[min(st.tier, len(longs)) - 1]
                       if longs else 0)
        if below:
            if st.below_since is None:
                st.below_since = bucket
            if bucket + w - st.below_since >= hold:
                sev = st.severity or "warning"
                if st.tier == 0 or st.tier > len(longs):
                    d = decide("resolved", z_eff, sev)
                else:
                    d = decide_long("resolved", st.tier - 1, sev)
                st.active, st.severity, st.below_since = False, None, None
                st.cool_until = bucket + w + p.cooldown_s
                st.ep_to = bucket + w
                return d
            return None
        st.below_since = None
        if st.tier == 0:
            sev = p.severity(z_eff)
            if severity_rank(sev) > severity_rank(st.severity):
                st.severity = sev
                return decide("escalated", z_eff, sev)
            return None
        # A long episode grades on what fires now: the short window's test or a long one's.
        if self._fire_reason(stats) is not None:
            sev = p.severity(z_eff)
            if severity_rank(sev) > severity_rank(st.severity):
                st.severity = sev
                return decide("escalated", z_eff, sev, "share")
        if passing:
            j, sev = self._long_graded(longs, passing)
            if severity_rank(sev) > severity_rank(st.severity):
                st.severity = sev
                return decide_long("escalated", j, sev)
        return None

    # --- long windows -----------------------------------------------------------------
    def _roll(self, st: KeyState, bucket: int) -> None:
        """Move the key's long windows to ``bucket``; what leaves the longest one feeds
        the long baseline, except the last episode's own slots (as with the short one)."""
        p = self.params
        widths = p.long_widths
        if [r.width for r in st.rings] != list(widths) or any(
                len(r.n) != p.long_slots for r in st.rings):
            # First use, or the windows were reconfigured: start them empty.
            st.rings = [Ring.empty(bucket, wd, p.long_slots) for wd in widths]
            st.long = LongBaseline()
            return
        if not st.rings:
            return
        for ring in st.rings[:-1]:
            ring.advance(bucket)
        st.rings[-1].advance(bucket, self._feeder(st, st.long),
                             lambda count: st.long.feed_empty(count, p.long_decay))

    def _feeder(self, st: KeyState, base: LongBaseline) -> Callable[[int, int, int], None]:
        """Feeds ``base`` a slot leaving the longest window, unless it is kept out."""

        def feed(start: int, n: int, neg: int) -> None:
            if not self._kept_out(st, start):
                base.feed(n, neg, self.params.long_decay)

        return feed

    def _kept_out(self, st: KeyState, start: int) -> bool:
        """The longest window's slot at ``start`` lies in the key's last episode (for at
        most a long time constant): it does not teach the long baseline."""
        p = self.params
        return (st.ep_from is not None and start + p.long_widths[-1] > st.ep_from
                and (st.ep_to is None or start < st.ep_to)
                and start < st.ep_from + p.long_baseline_s)

    def long_stats(self, st: KeyState, prior: float | None) -> list[LongStats]:
        """Each long window of ``st`` (as last rolled) against its long baseline, the
        stream's share (``prior``) standing in for history the key does not have."""
        p = self.params
        if not st.rings:
            return []
        d = p.long_decay
        n0, x0 = st.long.messages(d), st.long.negatives(d)
        weight = p.long_prior_messages
        p0 = (x0 + (DEFAULT_PRIOR_SHARE if prior is None else prior) * weight) / (n0 + weight)
        floor = max(p0, p.min_baseline_share)
        per_slot = st.long.rate()
        longest = p.long_widths[-1]
        # After an episode has resolved, its slots are left out of the long windows: a
        # spike that was alerted and has passed must not fire again from what it left.
        after = st.ep_to if st.ep_to is not None and not st.active else None
        out = []
        for ring, window_s in zip(st.rings, p.long_windows_s, strict=True):
            n, x = ring.counts_from(after)
            out.append(LongStats(
                window_s=window_s, start=ring.oldest_start, messages=n, negatives=x,
                share=x / n if n else 0.0, baseline_share=p0,
                baseline_messages=per_slot * ring.width * len(ring.n) / longest,
                z=proportion_z(x, n, floor, n0 + weight),
            ))
        return out

    def long_z_min(self, scope: str, longs: list[LongStats]) -> float:
        """The z a long window of this key must reach: the scope kind's floor, raised for a
        busy key so that a stationary stream raises about ``long_false_alarms_per_week``.

        A key is tested on every bucket that brings it news, so a busy key is tested far
        more often than a quiet one; tests within one window overlap, so a window length
        counts at most once per window of a week. The key's rate is its long baseline's,
        not its window's: a surge of news must not raise its own bar.
        """
        p = self.params
        floor = p.long_z_by_scope.get(cast(AlertScope, scope), p.long_z_threshold)
        if not longs:
            return floor
        last = longs[-1]
        per_week = last.baseline_messages * WEEK_S / last.window_s
        tests = sum(min(per_week, WEEK_S / t.window_s) for t in longs)
        return max(floor, z_from_p(p.long_false_alarms_per_week / max(tests, 1.0)))

    def _long_passing(self, scope: str, stats: WindowStats, longs: list[LongStats]
                      ) -> list[int]:
        """The long windows whose test passes while the next shorter window agrees (the
        multi-window rule), shortest first."""
        p = self.params
        z_min = self.long_z_min(scope, longs)
        out = []
        for j, t in enumerate(longs):
            if (t.negatives < p.long_min_negatives or t.lift < p.long_min_lift
                    or t.z < z_min):
                continue
            cn, cx = ((stats.messages, stats.negatives) if j == 0
                      else (longs[j - 1].messages, longs[j - 1].negatives))
            if cx >= 1 and cx / cn - t.baseline_share >= p.confirm_lift:
                out.append(j)
        return out

    def _long_graded(self, longs: list[LongStats], passing: list[int]) -> tuple[int, Severity]:
        """Of the passing windows, the one that grades highest (the shortest among equals):
        a slow market's 6 h window can hold the eight negatives that make an alert major
        while its 1 h window, which fired first, never will."""
        best, sev = passing[0], self._long_severity(longs[passing[0]])
        for j in passing[1:]:
            s = self._long_severity(longs[j])
            if severity_rank(s) > severity_rank(sev):
                best, sev = j, s
        return best, sev

    def _long_severity(self, t: LongStats) -> Severity:
        p = self.params
        sev = p.severity(t.z)
        if (t.share >= p.long_major_share and t.negatives >= p.long_major_negatives
                and severity_rank(sev) < severity_rank("major")):
            return "major"
        return sev

    def _fire_reason(self, s: WindowStats) -> Literal["share", "burst"] | None:
        p = self.params
        if s.peak_buckets and s.peak_z >= p.z_threshold:
            return "share"
        if (s.quiet and s.lift >= p.min_lift and s.negatives >= p.burst_min_negatives
                and s.burst_p <= p.burst_p_value):
            return "burst"
        return None

    def _onset(self, st: KeyState, p0: float, bucket: int) -> int:
        """Start of the trailing sub-window with the highest z: where the spike began."""
        p0 = max(p0, self.params.min_baseline_share)
        best, best_j = -math.inf, 1
        n = x = 0
        for j in range(1, len(st.n) + 1):
            n += st.n[-j]
            x += st.neg[-j]
            if n:
                z = (x - n * p0) / math.sqrt(n * p0 * (1 - p0))
                if z > best:
                    best, best_j = z, j
        return bucket - (best_j - 1) * self.params.bucket_s

    def window_stats(self, st: KeyState, prior: float | None) -> WindowStats:
        p = self.params
        n, x = sum(st.n), sum(st.neg)
        # Baseline as effective message counts: the EWMA sums over (1 - decay).
        a = 1.0 - p.decay
        n0, x0 = st.bn / a, st.bneg / a
        prior_share = DEFAULT_PRIOR_SHARE if prior is None else prior
        p0 = (x0 + prior_share * PRIOR_MESSAGES) / (n0 + PRIOR_MESSAGES)
        rate_n = st.bn / st.bw if st.bw > 0 else 0.0
        rate_neg = st.bneg / st.bw if st.bw > 0 else 0.0
        expected = rate_n * p.buckets
        floor = max(p0, p.min_baseline_share)
        n_base = n0 + PRIOR_MESSAGES
        z = proportion_z(x, n, floor, n_base)
        # Trailing sub-windows (last 1..K buckets) that pass the volume and lift rules:
        # the best one catches an onset before it fills the whole window.
        peak_z, peak_j = -math.inf, 0
        if p.scan_subwindows:
            nj = xj = 0
            for j in range(1, len(st.n) + 1):
                nj += st.n[-j]
                xj += st.neg[-j]
                if (nj >= p.min_volume and xj >= p.min_negatives
                        and xj / nj - p0 >= p.min_lift):
                    zj = proportion_z(xj, nj, floor, n_base)
                    if zj > peak_z:
                        peak_z, peak_j = zj, j
        elif n >= p.min_volume and x >= p.min_negatives and (x / n) - p0 >= p.min_lift:
            peak_z, peak_j = z, len(st.n)
        lam = max(rate_neg * p.buckets, p.burst_min_rate)
        return WindowStats(
            messages=n, negatives=x, share=x / n if n else 0.0, baseline_share=p0,
            baseline_messages=expected, z=z, quiet=expected < p.min_volume,
            burst_p=poisson_sf(x, lam), peak_z=max(peak_z, 0.0), peak_buckets=peak_j,
        )

    def _forget(self) -> None:
        # Checked every FORGET_EVERY buckets (on aligned buckets, so deterministic).
        now = self.cursor if self.cursor is not None else 0
        if (now // self.params.bucket_s) % FORGET_EVERY:
            return
        for key in [k for k, st in self.states.items()
                    if k != ALL and not st.live and self._rate_at(st, now) < FORGET_BELOW
                    and (st.cool_until is None or st.cool_until <= now)
                    and self._long_forgotten(st, now)]:
            del self.states[key]
            self.changed.discard(key)
            self.removed.add(key)

    def _long_forgotten(self, st: KeyState, now: int) -> bool:
        """True when the key's long windows are empty and its long baseline has decayed
        below LONG_FORGET_PER_DAY messages a day (a key with a story every day or two
        keeps the history its long windows are judged against)."""
        p = self.params
        if not p.long_windows_s or st.touched is None:
            return True
        if st.touched >= now - p.longest_s:
            return False
        # Without rolling the key: when its rings roll must not depend on which
        # checkpoints a run visits (a jump passes fewer), or float rounding would tell
        # runs apart. (Empty slots are folded in after the fed ones here: close enough
        # for a threshold of half a message a day, and the same for every run.)
        rate = st.long.rate_after(st.rings[-1], now, p.long_decay,
                                  lambda start: self._kept_out(st, start))
        per_day = rate * 86_400 / p.long_widths[-1]
        return per_day < LONG_FORGET_PER_DAY

    def _rate_at(self, st: KeyState, bucket: int) -> float:
        """Baseline messages per bucket of a quiet key as of ``bucket`` (closed form)."""
        f = self.params.decay ** self._evicted_updates(st.last, bucket)
        weight = st.bw * f + (1.0 - f)
        return st.bn * f / weight if weight > 0 else 0.0

    # --- reading ----------------------------------------------------------------------
    def stats_for(self, key: ScopeKey) -> WindowStats | None:
        st = self.states.get(key)
        if st is None:
            return None
        all_state = self.states.get(ALL)
        return self.window_stats(st, _share(all_state) if all_state else None)

    def long_stats_for(self, key: ScopeKey) -> list[LongStats]:
        """The long windows of ``key`` as last rolled, against its long baseline."""
        st = self.states.get(key)
        if st is None:
            return []
        all_state = self.states.get(ALL)
        return self.long_stats(st, _long_share(all_state, self.params) if all_state else None)

    def take_changes(self) -> tuple[dict[ScopeKey, KeyState], set[ScopeKey]]:
        changed = {k: self.states[k] for k in self.changed if k in self.states}
        removed = set(self.removed)
        self.changed.clear()
        self.removed.clear()
        return changed, removed


def _share(st: KeyState) -> float | None:
    return st.bneg / st.bn if st.bn > 0 else None


def _long_share(st: KeyState, params: DetectorParams) -> float | None:
    """The stream's share over the long baseline, once it has seen a few messages."""
    if not st.rings or st.long.messages(params.long_decay) < params.long_prior_messages:
        return None
    return st.long.bneg / st.long.bn


def run(params: DetectorParams,
        buckets: Iterable[tuple[int, Mapping[ScopeKey, tuple[int, int]]]]) -> list[Decision]:
    """Step a fresh detector through ``(bucket start, counts)`` in order (tests, offline)."""
    det = Detector(params)
    out: list[Decision] = []
    for bucket, counts in buckets:
        out += det.step(bucket, counts)
    return out
