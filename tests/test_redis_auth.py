"""Redis with a password (requirepass): the right one works, a wrong or missing one is a
clear error that names the setting, and the password never appears in it or in logs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import REPO, Namespace
from pydantic import SecretStr
from servers import free_ports, running

from streamer.aggregate import AggregateUnavailable, TrendStore
from streamer.devstack import LocalRedis
from streamer.settings import Settings

PASSWORD = "pw-7c1e0b9d-redis"


@pytest.fixture(scope="module")
def protected_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A second, private redis-server that requires PASSWORD."""
    (port,) = free_ports(1)
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("authredis"),
                        redis_port=port, redis_password=PASSWORD,
                        REDIS_URL=f"redis://127.0.0.1:{port}/0")
    with running(LocalRedis(settings), "redis-server with a password"):
        yield settings


async def _check(settings: Settings) -> None:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        await store.check()
        await store.redis.set(f"{settings.redis.key_prefix}:probe", "1")
    finally:
        await store.close()


def test_the_right_password_is_accepted(protected_redis: Settings) -> None:
    asyncio.run(_check(protected_redis))


def test_a_wrong_password_is_a_clear_error_without_the_password(
    protected_redis: Settings,
) -> None:
    wrong = protected_redis.replace(**{"redis_password": SecretStr("not-it")})
    with pytest.raises(AggregateUnavailable, match="refused the credentials") as err:
        asyncio.run(_check(wrong))
    assert "STREAMER_REDIS_PASSWORD" in str(err.value) and "not-it" not in str(err.value)


def test_no_password_says_one_is_needed(protected_redis: Settings) -> None:
    none = protected_redis.replace(**{"redis_password": None})
    with pytest.raises(AggregateUnavailable, match="needs a password"):
        asyncio.run(_check(none))


def test_the_password_stays_off_the_command_line(protected_redis: Settings) -> None:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert PASSWORD.encode() not in cmdline


def test_a_worker_with_a_wrong_password_stops_with_the_reason(
    protected_redis: Settings, kafka_bootstrap: str, tmp_path: Path,
) -> None:
    ns = Namespace(kafka_bootstrap, protected_redis.redis.url, tmp_path,
                   extra_env={"STREAMER_REDIS_PASSWORD": "not-it"})
    out = subprocess.run([sys.executable, "-m", "streamer.cli.main", "worker"],
                         env={**os.environ, **ns.env()}, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    assert "refused the credentials" in out.stdout + out.stderr
    assert "not-it" not in out.stdout + out.stderr
