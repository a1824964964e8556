"""What the aggregates say: per-topic accounting and trends, for reports and the CLI."""

from __future__ import annotations

from pydantic import BaseModel

from streamer.aggregate.store import TrendStore, WindowCounts


class TopicAccount(BaseModel):
    topic: str
    partitions: int
    consumed: int
    scored: int
    dead_lettered: int

    @property
    def balanced(self) -> bool:
        return self.consumed == self.scored + self.dead_lettered


class TrendRow(BaseModel):
    scope: str
    key: str
    messages: int
    counts: dict[str, int]
    negative_share: float
    mean_negative_prob: float


async def accounts(store: TrendStore) -> list[TopicAccount]:
    by_topic: dict[str, TopicAccount] = {}
    for pc in await store.partition_counts():
        topic = pc.tag.rsplit(":", 1)[0]
        acc = by_topic.setdefault(topic, TopicAccount(
            topic=topic, partitions=0, consumed=0, scored=0, dead_lettered=0
        ))
        acc.partitions += 1
        acc.consumed += pc.consumed
        acc.scored += pc.scored
        acc.dead_lettered += pc.dead
    return sorted(by_topic.values(), key=lambda a: a.topic)


Window = dict[tuple[str, str], WindowCounts]


async def window(store: TrendStore, start_s: float | None = None,
                 end_s: float | None = None) -> Window:
    """Every scope key's counts over [start_s, end_s] (default: all still in Redis)."""
    if start_s is None or end_s is None:
        span = await store.time_range()
        if span is None:
            return {}
        start_s = span[0] if start_s is None else start_s
        end_s = span[1] if end_s is None else end_s
    return await store.window_all(start_s, end_s)


def trend_rows(current: Window, minus: Window | None = None) -> list[TrendRow]:
    """Rows per scope key; ``minus`` subtracts an earlier snapshot (aggregates only add)."""
    rows = []
    for (scope, key), wc in current.items():
        counts = dict(wc.counts)
        neg_prob = wc.prob_sums.get("negative", 0.0)
        if minus and (scope, key) in minus:
            old = minus[(scope, key)]
            counts = {lb: n - old.counts.get(lb, 0) for lb, n in counts.items()}
            neg_prob -= old.prob_sums.get("negative", 0.0)
        counts = {lb: n for lb, n in counts.items() if n}
        total = sum(counts.values())
        if not total:
            continue
        rows.append(TrendRow(
            scope=scope, key=key, messages=total, counts=counts,
            negative_share=counts.get("negative", 0) / total,
            mean_negative_prob=neg_prob / total,
        ))
    return sorted(rows, key=lambda r: (r.scope, -r.messages, r.key))


async def trends(
    store: TrendStore, start_s: float | None = None, end_s: float | None = None
) -> list[TrendRow]:
    """Per scope key (topic, ticker, market, stream), over [start_s, end_s] (default:
    everything still in Redis)."""
    return trend_rows(await window(store, start_s, end_s))
