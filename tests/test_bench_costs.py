"""`streamer bench costs`: a short real run whose accounting must add up, and its parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamer.bench.costs import (
    CostPlan,
    Costs,
    RedisReading,
    key_family,
    measure_costs,
    topic_of,
    topic_role,
    write,
)
from streamer.settings import Settings


def test_keys_fall_into_the_families_of_the_key_layout() -> None:
    assert key_family("p", "p:{news:3}:b:1700000000") == "bucket"
    assert key_family("p", "p:{chat:0}:ids") == "ids"
    assert key_family("p", "p:{news:1}:wm") == "wm"
    assert key_family("p", "p:{alerts}:outbox:kafka") == "alerts:outbox"
    assert key_family("p", "p:ev:{ticker|XOM}") == "ev"
    assert key_family("p", "p:latency:w1") == "latency"
    assert key_family("p", "p:partitions") == "partitions"


def test_topics_are_sorted_into_their_roles_and_others_left_out() -> None:
    s = Settings(_env_file=None).with_env({
        "STREAMER_TOPIC_NEWS": "n1", "STREAMER_TOPIC_CHAT": "c1",
        "STREAMER_TOPIC_SCORED": "s1", "STREAMER_TOPIC_ALERTS": "a1",
        "STREAMER_APP_ID": "app-x"})
    assert topic_of("n1-3@1") == "n1" and topic_of("app-x-__assignor-__leader-0@2") == (
        "app-x-__assignor-__leader")
    assert [topic_role(s, t) for t in ("n1", "c1.dlq", "s1", "a1", "app-x-__assignor-__leader",
                                       "__consumer_offsets", "someone-else")] == [
        "input", "dead letters", "scored", "alerts", "worker internal (Faust)",
        "offsets + transactions (shared)", None]


def test_the_tool_s_own_reads_are_never_charged_to_events() -> None:
    before = RedisReading(t=0, commands={"hset": (10, 50), "info": (3, 9)}, net_in=0,
                          net_out=0, cpu_s=0, used_memory=0, keys=0)
    after = before.model_copy(update={"commands": {"hset": (30, 150), "info": (9, 27),
                                                   "dbsize": (4, 4), "evalsha": (5, 500)}})
    assert after.minus(before) == {"hset": (20, 100), "evalsha": (5, 500)}


@pytest.mark.slow
async def test_a_short_real_run_accounts_for_redis_kafka_and_the_worker_s_cpu(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMER_BUNDLE_DIR", str(tiny_bundle))
    monkeypatch.setenv("STREAMER_SCORER", "onnx")
    base = Settings(_env_file=None, KAFKA_BOOTSTRAP=kafka_bootstrap, REDIS_URL=redis_url,
                    data_dir=str(tmp_path / "data"))
    plan = CostPlan(messages=300, rate=100.0, idle_s=2.0, settle_s=1.0, warmup=50,
                    partitions=2, timeout_s=120.0)
    c = await measure_costs(base, plan, tmp_path / "logs", command="pytest")

    assert c.sent == 300 and c.consumed == 300, c.notes
    assert c.retained_events == 350  # the warm-up's events stay in Redis too
    # Redis: every event lands in buckets (hash increments inside the apply script)
    calls = {r.command: r for r in c.redis_commands}
    assert c.redis_calls_per_event > 1 and c.redis_script_calls_per_event > 0
    assert calls["evalsha"].calls > 0 and {"hincrby", "hincrbyfloat"} & set(calls)
    assert c.redis_net_in_per_event > 0 and c.redis_net_out_per_event > 0
    assert c.redis_cpu_us_per_event > 0
    # memory: one seen-id per event, buckets with fields, every family sized
    fams = {f.family: f for f in c.key_families}
    assert fams["ids"].fields == c.retained_events
    assert fams["bucket"].keys > 0 and (fams["bucket"].fields or 0) > fams["bucket"].keys
    assert all(f.bytes > 0 for f in c.key_families)
    # Kafka: the input topics hold at least the messages themselves, and scoring wrote more
    roles: dict[str, float] = {}
    for t in c.kafka_topics:
        roles[t.role] = roles.get(t.role, 0.0) + t.per_event
    assert roles["input"] >= c.message_bytes_mean > 50
    assert roles["scored"] > 0
    assert c.kafka_bytes_written_per_event >= roles["input"] + roles["scored"]
    # the worker's CPU: a real figure, and the msg/s per core it gives
    assert 0 < c.worker_cpu_us_per_event < 1e6
    assert c.msgs_per_core_s == pytest.approx(1e6 / c.worker_cpu_us_per_event, rel=0.01)

    path = write(c, tmp_path / "out")
    assert Costs.model_validate(json.loads(path.read_text())) == c
