"""Latency percentiles per stage, merged from every worker's histograms in Redis."""

from __future__ import annotations

import asyncio
import time

from hdrh.histogram import HdrHistogram
from pydantic import BaseModel, Field

from streamer.keys import Keyspace
from streamer.latency.histograms import (
    ALERT,
    END_TO_END,
    MEANING,
    SLICE_WIDTH_FIELD,
    STAGES,
    LatencyRecorder,
    parse_slice_field,
)
from streamer.redis_client import RedisClient

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class StageLatency(BaseModel):
    stage: str
    meaning: str = Field("", description="What the stage's span is, in words.")
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    share_mean: float | None = Field(
        None, description="Mean of this stage / mean end to end. The stages chain, so their "
        "means add up to the end-to-end mean (up to histogram rounding).")
    share_p50: float | None = Field(None, description="p50 of this stage / end-to-end p50.")
    share_p99: float | None = Field(None, description="p99 of this stage / end-to-end p99.")


def stages_sum(rows: list[StageLatency]) -> float | None:
    """Sum of the stages' mean shares: 1.0 when the stages account for all of end to end."""
    shares = [r.share_mean for r in rows if r.stage != END_TO_END[0]]
    if not shares or any(x is None for x in shares):
        return None
    return sum(x for x in shares if x is not None)


def window_label(window_s: float | None) -> str:
    """How a view names its span: since start, or the recent window."""
    if window_s is None:
        return "since each worker started"
    if window_s % 60 == 0:
        return f"last {window_s / 60:g} min"
    return f"last {window_s:g} s"


def recent_slices(payload: dict[str, str], since_s: float) -> dict[str, str]:
    """A worker's slices hash (fields ``<slice start s>|<stage>``) narrowed to the slices
    that end after ``since_s``."""
    width = float(payload.get(SLICE_WIDTH_FIELD, "0") or 0)
    out: dict[str, str] = {}
    for field, blob in payload.items():
        parsed = parse_slice_field(field)
        if parsed is not None and parsed[0] + width > since_s:
            out[field] = blob
    return out


def _merge_slices(payloads: list[dict[str, str]]) -> dict[str, HdrHistogram]:
    merged: dict[str, HdrHistogram] = {}
    for payload in payloads:
        for field, blob in payload.items():
            parsed = parse_slice_field(field)
            if parsed is None:
                continue
            h = HdrHistogram.decode(blob.encode("ascii"))
            if parsed[1] in merged:
                merged[parsed[1]].add(h)
            else:
                merged[parsed[1]] = h
    return merged


async def read_histograms(
    client: RedisClient, prefix: str, worker: str | None = None,
    window_s: float | None = None, now_s: float | None = None,
) -> dict[str, HdrHistogram]:
    """Merged over every worker (``worker=None``) or one worker's histograms: since each
    worker started (``window_s=None``), or over the slices of wall clock that end in the
    last ``window_s`` seconds (to ``now_s``, default now; a slice is ``STREAMER_LATENCY_
    SLICE_S`` wide, so the view spans up to one slice more). Decoding runs in a thread:
    a worker's dashboard reads this on its event loop."""
    keys = Keyspace(prefix)
    payloads: list[dict[str, str]] = []
    if window_s is None:
        async for key in client.scan_iter(match=keys.latency_match(worker), count=100):
            payloads.append(await client.hgetall(key))  # type: ignore[misc]
        return await asyncio.to_thread(LatencyRecorder.decode_merge, payloads)
    since = (time.time() if now_s is None else now_s) - window_s
    async for key in client.scan_iter(match=keys.latency_slices_match(worker), count=100):
        payloads.append(recent_slices(await client.hgetall(key), since))  # type: ignore[misc]
    return await asyncio.to_thread(_merge_slices, payloads)


async def read_latency(
    client: RedisClient, prefix: str, worker: str | None = None,
    window_s: float | None = None,
) -> list[StageLatency]:
    """The stage rows (see ``stage_rows``) of ``read_histograms``."""
    return stage_rows(await read_histograms(client, prefix, worker, window_s))


def histogram_row(name: str, h: HdrHistogram | None) -> StageLatency | None:
    """Percentiles of one histogram of microseconds, in ms; None when it is empty."""
    if h is None or h.get_total_count() == 0:
        return None
    p = [h.get_value_at_percentile(q) / 1000.0 for q in PERCENTILES]
    return StageLatency(
        stage=name, meaning=MEANING.get(name, ""), count=h.get_total_count(),
        mean_ms=h.get_mean_value() / 1000.0,
        p50_ms=p[0], p90_ms=p[1], p99_ms=p[2], p999_ms=p[3], max_ms=h.get_max_value() / 1000.0,
    )


def alert_row(merged: dict[str, HdrHistogram]) -> StageLatency | None:
    """Alert latency: first event of the spike -> alert appended, per fired alert."""
    return histogram_row(ALERT[0], merged.get(ALERT[0]))


def stage_rows(merged: dict[str, HdrHistogram]) -> list[StageLatency]:
    """One row per stage (then end to end) with data, with shares of end to end."""
    rows = []
    for name in [s[0] for s in STAGES] + [END_TO_END[0]]:
        row = histogram_row(name, merged.get(name))
        if row is not None:
            rows.append(row)
    e2e = next((r for r in rows if r.stage == END_TO_END[0]), None)
    if e2e is not None:
        for r in rows:
            r.share_mean = r.mean_ms / e2e.mean_ms if e2e.mean_ms else None
            r.share_p50 = r.p50_ms / e2e.p50_ms if e2e.p50_ms else None
            r.share_p99 = r.p99_ms / e2e.p99_ms if e2e.p99_ms else None
    return rows
