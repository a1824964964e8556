"""Latency per stage: HDR histograms of several workers merged through the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner

from streamer.cli.main import cli
from streamer.latency import LatencyRecorder, requested_at
from streamer.latency.histograms import difference
from streamer.latency.report import (
    alert_row,
    read_histograms,
    read_latency,
    stage_rows,
    stages_sum,
)
from streamer.schemas import Stamps
from streamer.settings import get_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """The CLI caches its settings per process: each test here names its own prefix."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def stamps(i: int) -> Stamps:
    """Stages of known lengths: queue 1, kafka 2, wait 1+i%5, tokenize 2, infer 10+i%7,
    aggregate 4."""
    t = 1_700_000_000_000.0 + i * 100
    consumed = t + 3
    batched = consumed + 1 + i % 5
    tokenized = batched + 2
    inferred = tokenized + 10 + i % 7
    return Stamps(produced=t, requested=t + 1, consumed=consumed, batched=batched,
                  tokenized=tokenized,
                  inferred=inferred, aggregated=inferred + 4)


async def _write(client: aioredis.Redis, prefix: str, worker: str, rows: range) -> None:
    rec = LatencyRecorder()
    rec.record(stamps(i) for i in rows)
    await client.hset(f"{prefix}:latency:{worker}", mapping=rec.encode())  # type: ignore[misc]


async def test_two_workers_histograms_merge_and_the_stages_add_up(redis_url: str) -> None:
    prefix = f"lat{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await _write(client, prefix, "w1", range(0, 600))
        await _write(client, prefix, "w2", range(600, 1000))
        rows = {r.stage: r for r in await read_latency(client, prefix)}
        one = {r.stage: r for r in await read_latency(client, prefix, "w2")}
    finally:
        await client.aclose()
    assert rows["end_to_end"].count == 1000 and one["end_to_end"].count == 400
    assert abs(rows["queue"].p50_ms - 1.0) < 0.01 and abs(rows["kafka"].p50_ms - 2.0) < 0.01
    assert abs(rows["tokenize"].mean_ms - 2.0) < 0.01
    # HDR histograms keep 3 significant digits.
    assert abs(rows["infer"].max_ms - 16.0) < 0.02 and rows["infer"].p50_ms >= 10.0
    total = stages_sum(list(rows.values()))
    assert total is not None and abs(total - 1.0) < 0.01  # the chain covers end to end
    assert rows["end_to_end"].share_mean == 1.0


def test_streamer_latency_prints_json_per_stage(redis_url: str) -> None:
    import asyncio

    prefix = f"lat{uuid.uuid4().hex[:8]}"

    async def setup() -> None:
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            await _write(client, prefix, "w1", range(100))
        finally:
            await client.aclose()

    asyncio.run(setup())
    out = CliRunner().invoke(cli, ["latency", "--json"],
                             env={"REDIS_URL": redis_url, "STREAMER_REDIS_KEY_PREFIX": prefix})
    assert out.exit_code == 0, out.output
    stages = [orjson.loads(line) for line in out.output.splitlines()]
    # Only the totals since start hold data here (no slices were written): one view.
    assert [s["stage"] for s in stages] == ["queue", "kafka", "batch_wait", "tokenize",
                                            "infer", "aggregate", "end_to_end"]
    assert all(s["count"] == 100 and s["view"] == "since each worker started"
               for s in stages)
    assert all(s["meaning"] for s in stages)  # every row says what it measures


def test_streamer_latency_png_writes_both_charts(redis_url: str, tmp_path: Path) -> None:
    import asyncio

    prefix = f"lat{uuid.uuid4().hex[:8]}"

    async def setup() -> None:
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            await _write(client, prefix, "w1", range(0, 600))
            await _write(client, prefix, "w2", range(600, 1000))
        finally:
            await client.aclose()

    asyncio.run(setup())
    out_dir = tmp_path / "charts"
    out = CliRunner().invoke(cli, ["latency", "--png", str(out_dir)],
                             env={"REDIS_URL": redis_url, "STREAMER_REDIS_KEY_PREFIX": prefix})
    assert out.exit_code == 0, out.output
    assert "p99.9" in out.output  # the table still prints
    for name in ("latency_percentiles.png", "latency_shares.png"):
        data = (out_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 10_000, (name, len(data))  # a drawn chart, not an empty canvas
    out_copy = Path(__file__).resolve().parents[1] / "test-output"
    out_copy.mkdir(exist_ok=True)
    for name in ("latency_percentiles.png", "latency_shares.png"):
        (out_copy / name).write_bytes((out_dir / name).read_bytes())


def test_streamer_latency_png_without_data_fails_clearly(redis_url: str,
                                                          tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["latency", "--png", str(tmp_path / "charts")],
                             env={"REDIS_URL": redis_url,
                                  "STREAMER_REDIS_KEY_PREFIX": f"lat{uuid.uuid4().hex[:8]}"})
    assert out.exit_code != 0
    assert "no latency recorded yet" in out.output
    assert not (tmp_path / "charts").exists()


def test_alert_latency_is_kept_apart_from_the_stages_and_replays_are_left_out() -> None:
    rec = LatencyRecorder()
    for ms in (1_500.0, 2_500.0, 4_000.0):
        rec.record_alert(ms)
    rec.record_alert(-5.0)  # clocks apart: not a latency
    rec.record_alert(3 * 3_600_000.0)  # a replay of old data: not live
    merged = LatencyRecorder.decode_merge([rec.encode()])
    row = alert_row(merged)
    assert row is not None and row.count == 3
    assert row.max_ms == pytest.approx(4_000.0, rel=1e-3)
    assert stage_rows(merged) == []  # no stage, no end to end: nothing else recorded


def finished_at(at_s: float, n: int) -> list[Stamps]:
    """n events whose end to end finished at ``at_s`` (epoch s), 10 ms each."""
    t = at_s * 1000.0 - 10.0
    return [Stamps(produced=t, requested=t + 2, consumed=t + 3, batched=t + 4,
                   tokenized=t + 5, inferred=t + 8, aggregated=t + 10) for _ in range(n)]


async def test_the_recent_window_holds_only_the_slices_that_end_inside_it(
    redis_url: str,
) -> None:
    prefix = f"lat{uuid.uuid4().hex[:8]}"
    t0 = 1_800_000_000.0  # a slice boundary for 10 s slices
    rec = LatencyRecorder(slice_s=10)
    rec.record(finished_at(t0 + 1, 5))       # slice t0
    rec.record(finished_at(t0 + 100, 7))     # slice t0+100
    fields = rec.take_slices()
    assert fields["slice_s"] == "10"
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await client.hset(f"{prefix}:latency-slices:w1", mapping=fields)
        await client.hset(f"{prefix}:latency:w1", mapping=rec.encode())
        recent = await read_histograms(client, prefix, window_s=60, now_s=t0 + 105)
        longer = await read_histograms(client, prefix, window_s=200, now_s=t0 + 105)
        since_start = await read_histograms(client, prefix)
    finally:
        await client.aclose()
    assert recent["end_to_end"].get_total_count() == 7  # the slice of t0 ended 95 s before
    assert recent["queue"].get_total_count() == 7
    assert longer["end_to_end"].get_total_count() == 12
    assert since_start["end_to_end"].get_total_count() == 12


def test_slices_are_handed_over_once_each_change_and_expire_after_the_retention() -> None:
    rec = LatencyRecorder(slice_s=10)
    rec.record(finished_at(1_000.0, 1))
    assert {f.split("|")[0] for f in rec.take_slices() if "|" in f} == {"1000"}
    assert rec.take_slices() == {}  # nothing changed since
    rec.record(finished_at(1_011.0, 2))
    again = rec.take_slices()
    assert {f.split("|")[0] for f in again if "|" in f} == {"1010"}
    assert rec.expired_fields(now_s=1_030.0, retention_s=60) == []
    gone = rec.expired_fields(now_s=1_075.0, retention_s=60)  # slice 1000 ended at 1010
    assert gone and all(f.startswith("1000|") for f in gone)


def test_the_difference_of_two_snapshots_is_what_was_recorded_between() -> None:
    rec = LatencyRecorder()
    rec.record(finished_at(1_000.0, 4))
    before = LatencyRecorder.decode_merge([rec.encode()])
    late = [s.model_copy(update={"produced": s.produced - 490.0}) for s in finished_at(1_001.0, 3)
            if s.produced is not None]
    rec.record(late)  # 3 events with a 500 ms queue
    after = LatencyRecorder.decode_merge([rec.encode()])
    rows = {r.stage: r for r in stage_rows(difference(after, before))}
    assert rows["end_to_end"].count == 3
    assert rows["queue"].p50_ms == pytest.approx(492.0, rel=0.01)


@pytest.mark.parametrize(("produced", "ready", "consumed", "queue", "hop"), [
    (100.0, 400.0, 405.0, 300.0, 5.0),   # the worker was busy until 400: 300 ms of backlog
    (100.0, 50.0, 108.0, 0.0, 8.0),      # the worker waited for it: all of it is the hop
    (100.0, None, 108.0, 0.0, 8.0),      # readiness unknown: counted as the hop, as before
    (100.0, 500.0, 450.0, 350.0, 0.0),   # never past the moment it was taken
])
def test_requested_splits_the_wait_into_queue_and_kafka_hop(
    produced: float, ready: float | None, consumed: float, queue: float, hop: float,
) -> None:
    at = requested_at(produced, ready, consumed)
    assert at is not None
    assert at - produced == pytest.approx(queue) and consumed - at == pytest.approx(hop)


def test_streamer_latency_shows_the_recent_window_and_since_start(redis_url: str) -> None:
    import asyncio
    import time

    prefix = f"lat{uuid.uuid4().hex[:8]}"

    async def setup() -> None:
        rec = LatencyRecorder(slice_s=10)
        rec.record(finished_at(time.time() - 400, 4))  # outside a 5 min window
        rec.record(finished_at(time.time(), 6))
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            await client.hset(f"{prefix}:latency:w1", mapping=rec.encode())
            await client.hset(f"{prefix}:latency-slices:w1",
                              mapping=rec.take_slices())
        finally:
            await client.aclose()

    asyncio.run(setup())
    env = {"REDIS_URL": redis_url, "STREAMER_REDIS_KEY_PREFIX": prefix,
           "STREAMER_LATENCY_WINDOW_S": "300", "COLUMNS": "200"}
    out = CliRunner().invoke(cli, ["latency"], env=env)
    assert out.exit_code == 0, out.output
    assert "Latency per stage, last 5 min" in out.output
    assert "Latency per stage, since each worker started" in out.output
    assert "backlog" in out.output  # the queue row says what it is
    lines = CliRunner().invoke(cli, ["latency", "--window", "2m", "--json"], env=env)
    assert lines.exit_code == 0, lines.output
    rows = {r["stage"]: r for r in map(orjson.loads, lines.output.splitlines())}
    assert rows["end_to_end"]["count"] == 6 and rows["end_to_end"]["window_s"] == 120
    bad = CliRunner().invoke(cli, ["latency", "--window", "soon"], env=env)
    assert bad.exit_code == 2 and "--window" in bad.output


def test_slices_that_did_not_reach_redis_are_handed_over_again() -> None:
    rec = LatencyRecorder(slice_s=10)
    rec.record(finished_at(1_000.0, 3))
    first = rec.take_slices()
    rec.retake()  # the push failed
    again = rec.take_slices()
    assert again == first and again  # the same slice, whole, once more
