"""Latency percentiles per stage, merged from every worker's histograms in Redis."""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import BaseModel

from streamer.latency.histograms import END_TO_END, STAGES, LatencyRecorder

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class StageLatency(BaseModel):
    stage: str
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


async def read_latency(
    client: aioredis.Redis, prefix: str, worker: str = "*"
) -> list[StageLatency]:
    """Merged over every worker (``worker='*'``) or one worker's histograms."""
    payloads = []
    async for key in client.scan_iter(match=f"{prefix}:latency:{worker}", count=100):
        payloads.append(await client.hgetall(key))  # type: ignore[misc]
    merged = LatencyRecorder.decode_merge(payloads)
    rows = []
    for name in [s[0] for s in STAGES] + [END_TO_END[0]]:
        h = merged.get(name)
        if h is None or h.get_total_count() == 0:
            continue
        p = [h.get_value_at_percentile(q) / 1000.0 for q in PERCENTILES]
        rows.append(StageLatency(
            stage=name, count=h.get_total_count(), p50_ms=p[0], p90_ms=p[1], p99_ms=p[2],
            p999_ms=p[3], max_ms=h.get_max_value() / 1000.0,
        ))
    return rows
