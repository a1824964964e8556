"""Long windows for low-volume scopes: counts in coarse slots and a day-long baseline, pure.

A real news wire carries one or two stories a minute at its busiest, so a 60 s window
rarely holds enough messages on any one scope to judge its negative share. Each scope key
therefore also keeps, per long window (15 min, 60 min, 6 h by default), its counts in
``long_slots`` coarse slots: a ring whose newest slot holds the current event time. What
leaves the longest ring feeds an exponentially weighted **long baseline** (time constant
``long_baseline_s``, a day): the long windows are judged against history they do not
contain.

Everything here is a function of slot boundaries in event time, so advancing a ring
bucket by bucket or in one jump gives the same slots (a replay at any speed gives the same
alerts); only the baseline's floating point may differ in the last bits between the two,
and which path a key takes depends on the data alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pydantic import BaseModel, Field


def slot_width(window_s: int, slots: int, bucket_s: int) -> int:
    """A long window's slot width: ``window / slots`` rounded up to whole buckets."""
    return max(1, math.ceil(window_s / slots / bucket_s)) * bucket_s


class Ring(BaseModel):
    """One long window of one scope key: counts per slot, oldest first."""

    width: int = Field(ge=1, description="Slot width (s).")
    start: int = Field(description="Start (epoch s) of the newest slot.")
    n: list[int]
    neg: list[int]

    @classmethod
    def empty(cls, at: int, width: int, slots: int) -> Ring:
        return cls(width=width, start=at - at % width, n=[0] * slots, neg=[0] * slots)

    @property
    def messages(self) -> int:
        return sum(self.n)

    @property
    def negatives(self) -> int:
        return sum(self.neg)

    @property
    def oldest_start(self) -> int:
        return self.start - (len(self.n) - 1) * self.width

    def counts_from(self, start: int | None) -> tuple[int, int]:
        """(messages, negatives) in the slots that begin at or after ``start`` (None: all)."""
        if start is None or start <= self.oldest_start:
            return self.messages, self.negatives
        first = -(-(start - self.oldest_start) // self.width)  # slots wholly after start
        return sum(self.n[first:]), sum(self.neg[first:])

    def first_negative(self) -> int | None:
        """Start of the oldest slot holding a negative message."""
        i = next((i for i, x in enumerate(self.neg) if x), None)
        return None if i is None else self.oldest_start + i * self.width

    def advance(self, bucket: int,
                evict: Callable[[int, int, int], None] | None = None,
                evict_empty: Callable[[int], None] | None = None) -> None:
        """Move the newest slot to the one holding ``bucket``. Each slot pushed out is
        passed to ``evict(slot start, messages, negatives)`` when it held messages; runs of
        empty ones to ``evict_empty(count)`` (closed form: years of silence cost one call).
        """
        width = self.width
        target = bucket - bucket % width
        shift = (target - self.start) // width
        if shift <= 0:
            return
        size = len(self.n)
        pending_empty = 0
        for i in range(min(shift, size)):
            n, neg = self.n[i], self.neg[i]
            if n and evict is not None:
                if pending_empty and evict_empty is not None:
                    evict_empty(pending_empty)
                pending_empty = 0
                evict(self.start - (size - 1 - i) * width, n, neg)
            else:
                pending_empty += 1
        pending_empty += max(0, shift - size)
        if pending_empty and evict_empty is not None:
            evict_empty(pending_empty)
        keep = max(0, size - shift)
        self.n = self.n[size - keep:] + [0] * (size - keep)
        self.neg = self.neg[size - keep:] + [0] * (size - keep)
        self.start = target

    def add(self, n: int, neg: int) -> None:
        self.n[-1] += n
        self.neg[-1] += neg


class LongBaseline(BaseModel):
    """Exponentially weighted sums over the slots that left the longest window."""

    bn: float = 0.0  # EWMA sums, not bias-corrected: rate per slot = bn / bw
    bneg: float = 0.0
    bw: float = 0.0

    def feed(self, n: int, neg: int, decay: float) -> None:
        a = 1.0 - decay
        self.bn = decay * self.bn + a * n
        self.bneg = decay * self.bneg + a * neg
        self.bw = decay * self.bw + a

    def feed_empty(self, count: int, decay: float) -> None:
        f = decay**count
        self.bn *= f
        self.bneg *= f
        self.bw = self.bw * f + (1.0 - f)

    def messages(self, decay: float) -> float:
        """Effective messages the baseline has seen (about one time constant's worth)."""
        return self.bn / (1.0 - decay)

    def negatives(self, decay: float) -> float:
        return self.bneg / (1.0 - decay)

    def rate(self) -> float:
        """Messages per slot of the longest window."""
        return self.bn / self.bw if self.bw > 0 else 0.0

    def rate_after(self, ring: Ring, bucket: int, decay: float,
                   kept_out: Callable[[int], bool]) -> float:
        """:meth:`rate` once ``ring`` (the longest window) were advanced to ``bucket``,
        without changing either: slots ``kept_out`` (by start) are not fed, as in
        the key's own roll. Plain floats: it runs for every remembered key at every
        forget checkpoint."""
        bn, bw, a = self.bn, self.bw, 1.0 - decay
        shift = (bucket - bucket % ring.width - ring.start) // ring.width
        size = len(ring.n)
        empty = max(0, shift - size)
        for i in range(min(shift, size)):
            n = ring.n[i]
            if not n:
                empty += 1
            elif not kept_out(ring.oldest_start + i * ring.width):
                bn, bw = decay * bn + a * n, decay * bw + a
        f = decay**empty
        bn, bw = bn * f, bw * f + (1.0 - f)
        return bn / bw if bw > 0 else 0.0
