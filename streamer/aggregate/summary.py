"""What the aggregates say: per-topic accounting and trends, for reports and the CLI."""

from __future__ import annotations

from pydantic import BaseModel

from streamer.aggregate.store import TrendStore


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


async def trends(
    store: TrendStore, start_s: float | None = None, end_s: float | None = None
) -> list[TrendRow]:
    """Per topic and ticker, over [start_s, end_s] (default: everything still in Redis)."""
    if start_s is None or end_s is None:
        span = await store.time_range()
        if span is None:
            return []
        start_s = span[0] if start_s is None else start_s
        end_s = span[1] if end_s is None else end_s
    rows = []
    for (scope, key), wc in (await store.window_all(start_s, end_s)).items():
        total = wc.total
        rows.append(TrendRow(
            scope=scope, key=key, messages=total, counts=wc.counts,
            negative_share=wc.share("negative"),
            mean_negative_prob=wc.prob_sums.get("negative", 0.0) / total if total else 0.0,
        ))
    return sorted(rows, key=lambda r: (r.scope, -r.messages, r.key))
