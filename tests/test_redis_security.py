"""Redis with an ACL user (AUTH username password) and Redis over TLS (rediss://) with the
local stack's own CA: the right settings work, wrong ones are clear errors without secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from servers import free_ports, running

from streamer.aggregate import AggregateUnavailable, TrendStore
from streamer.devstack import LocalRedis
from streamer.settings import Settings

PASSWORD = "pw-4d2a91-acl"


def _start(settings: Settings, what: str) -> Iterator[Settings]:
    with running(LocalRedis(settings), f"redis-server with {what}"):
        yield settings


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """redis-server with `user default off` and `user alice on >PASSWORD ~* &* +@all`."""
    (port,) = free_ports(1)
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("aclredis"),
                        redis_port=port, redis_username="alice", redis_password=PASSWORD,
                        REDIS_URL=f"redis://127.0.0.1:{port}/0")
    yield from _start(settings, "an ACL user")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """redis-server serving TLS only, its certificate signed by the stack's generated CA;
    with an ACL user too, the way a production Redis would be set up."""
    (port,) = free_ports(1)
    data = tmp_path_factory.mktemp("tlsredis")
    settings = Settings(_env_file=None, data_dir=data, redis_port=port,
                        redis_username="alice", redis_password=PASSWORD,
                        redis_tls_ca_file=data / "tls" / "ca.pem",
                        REDIS_URL=f"rediss://127.0.0.1:{port}/0")
    yield from _start(settings, "TLS")


async def _check(settings: Settings) -> str:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        await store.check()
        key = f"{settings.redis.key_prefix}:probe"
        await store.redis.set(key, "ok")
        return str(await store.redis.get(key))
    finally:
        await store.close()


def test_the_acl_user_is_accepted(acl_redis: Settings) -> None:
    assert asyncio.run(_check(acl_redis)) == "ok"


def test_the_acl_password_can_come_from_a_file(acl_redis: Settings, tmp_path: Path) -> None:
    secret = tmp_path / "redis.pw"
    secret.write_text(PASSWORD + "\n")
    from_file = acl_redis.replace(**{"redis_password": None,
                                             "redis_password_file": secret})
    assert asyncio.run(_check(from_file)) == "ok"


def test_a_wrong_acl_password_is_a_clear_error(acl_redis: Settings) -> None:
    wrong = acl_redis.replace(**{"redis_password": SecretStr("not-it")})
    with pytest.raises(AggregateUnavailable, match="refused the credentials") as err:
        asyncio.run(_check(wrong))
    assert "STREAMER_REDIS_USERNAME" in str(err.value) and "not-it" not in str(err.value)


def test_the_default_user_is_switched_off(acl_redis: Settings) -> None:
    """Without the user name, the same password is the disabled default user's: refused."""
    anonymous = acl_redis.replace(**{"redis_username": None})
    with pytest.raises(AggregateUnavailable, match="refused the credentials") as err:
        asyncio.run(_check(anonymous))
    assert PASSWORD not in str(err.value)


def test_redis_over_tls_with_the_generated_ca(tls_redis: Settings) -> None:
    assert LocalRedis(tls_redis).url.startswith("rediss://")
    assert asyncio.run(_check(tls_redis)) == "ok"


def test_an_untrusted_redis_certificate_is_a_clear_error(tls_redis: Settings) -> None:
    untrusted = tls_redis.replace(**{"redis_tls_ca_file": None})
    with pytest.raises(AggregateUnavailable, match="STREAMER_REDIS_TLS_CA_FILE"):
        asyncio.run(_check(untrusted))


def test_plain_redis_to_a_tls_port_does_not_work(tls_redis: Settings) -> None:
    plain = tls_redis.replace(**{
        "redis_url": tls_redis.redis.url.replace("rediss://", "redis://"),
        "redis_timeout_s": 2.0,
    })
    with pytest.raises(AggregateUnavailable):
        asyncio.run(_check(plain))
