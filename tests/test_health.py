"""The readiness monitor: probes in the background, answers from what it last learnt.

The worker-level behaviour (a hung Redis or broker, /readyz answering at once and turning
not-ready) is in tests/test_chaos.py; these pin the monitor's own rules."""

from __future__ import annotations

import asyncio

from agents.health import HealthMonitor
from streamer.settings import Settings


def monitor(probes: dict[str, object], clock: list[float]) -> HealthMonitor:
    settings = Settings(_env_file=None, health_probe_timeout_s=0.05, health_stale_s=5.0,
                        health_probe_interval_s=0.01)
    return HealthMonitor(settings.health, probes, clock=lambda: clock[0])  # type: ignore[arg-type]


async def answers() -> bool:
    return True


async def refuses() -> bool:
    return False


async def hangs() -> bool:
    await asyncio.sleep(3600)
    return True


async def raises() -> bool:
    raise ConnectionRefusedError("connection refused")


def test_nothing_is_up_before_the_first_probe() -> None:
    m = monitor({"redis": answers}, [0.0])
    assert not m.up("redis") and m.snapshot()["redis"] is False


async def test_a_probe_that_answers_is_up() -> None:
    m = monitor({"redis": answers, "kafka": answers}, [0.0])
    await m.probe_once()
    assert m.up("redis") and m.up("kafka")
    assert m.snapshot()["redis_checked_s_ago"] == 0.0


async def test_a_hung_probe_counts_as_down_after_its_timeout_with_the_reason() -> None:
    m = monitor({"redis": hangs}, [0.0])
    await asyncio.wait_for(m.probe_once(), 1.0)  # bounded by the probe timeout, not 1 h
    snap = m.snapshot()
    assert snap["redis"] is False and "no answer within 0.05s" in snap["redis_error"]


async def test_a_refusal_or_an_error_is_down_with_the_reason() -> None:
    m = monitor({"redis": refuses, "kafka": raises}, [0.0])
    await m.probe_once()
    snap = m.snapshot()
    assert snap["redis"] is False and snap["kafka"] is False
    assert "ConnectionRefusedError" in snap["kafka_error"]


async def test_an_old_answer_stops_counting_once_stale() -> None:
    clock = [0.0]
    m = monitor({"redis": answers}, clock)
    await m.probe_once()
    clock[0] = 5.0
    assert m.up("redis")
    clock[0] = 5.1  # the probe loop is stuck: no fresh answer for longer than health_stale_s
    assert not m.up("redis")


async def test_the_snapshot_never_waits_for_a_probe_in_flight() -> None:
    m = monitor({"redis": answers}, [0.0])
    await m.probe_once()
    m.probes["redis"] = hangs
    task = asyncio.create_task(m.probe_once())
    await asyncio.sleep(0)  # the hung probe has started
    assert m.snapshot()["redis"] is True  # the last known state, at once
    await task
    assert m.snapshot()["redis"] is False


async def test_it_comes_back_up_when_the_dependency_answers_again() -> None:
    m = monitor({"redis": raises}, [0.0])
    await m.probe_once()
    m.probes["redis"] = answers
    await m.probe_once()
    assert m.up("redis") and "redis_error" not in m.snapshot()
