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
from streamer.latency import LatencyRecorder
from streamer.latency.report import alert_row, read_latency, stage_rows, stages_sum
from streamer.schemas import Stamps
from streamer.settings import get_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """The CLI caches its settings per process: each test here names its own prefix."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def stamps(i: int) -> Stamps:
    """Stages of known lengths: kafka 3, wait 1+i%5, tokenize 2, infer 10+i%7, aggregate 4."""
    t = 1_700_000_000_000.0 + i * 100
    consumed = t + 3
    batched = consumed + 1 + i % 5
    tokenized = batched + 2
    inferred = tokenized + 10 + i % 7
    return Stamps(produced=t, consumed=consumed, batched=batched, tokenized=tokenized,
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
    assert abs(rows["kafka"].p50_ms - 3.0) < 0.01
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
    assert [s["stage"] for s in stages] == ["kafka", "batch_wait", "tokenize", "infer",
                                            "aggregate", "end_to_end"]
    assert all(s["count"] == 100 for s in stages)


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
