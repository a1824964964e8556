"""Readiness from the worker's last known state, probed in the background.

``/readyz`` must answer at once whatever state Kafka and Redis are in: a probe that asked
them on each request waited out the client's timeouts during a Redis hang, and
said nothing of Kafka at all. A background task asks both every
``STREAMER_HEALTH_PROBE_INTERVAL_S``, each bounded by ``STREAMER_HEALTH_PROBE_TIMEOUT_S``,
and keeps what it learnt; the view only reads that. A dependency counts as up while its last probe
succeeded and is recent: a probe that hangs is as good as a failed one once its answer is
``STREAMER_HEALTH_STALE_S`` old.

Kafka is asked for cluster metadata on a connection of the probe's own (any broker that
answers will do), so a hung broker shows even while the consumer sits idle between fetches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from streamer.settings import HealthSettings, KafkaSettings

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]


@dataclass
class DependencyState:
    """What the last probe of one dependency found."""

    ok: bool = False
    checked_at: float | None = None  # monotonic: when the last probe ended
    error: str | None = None


class HealthMonitor:
    """Probes each named dependency in the background; ``snapshot`` never waits."""

    def __init__(self, health: HealthSettings, probes: dict[str, Probe],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.health = health
        self.probes = probes
        self.clock = clock
        self.state = {name: DependencyState() for name in probes}

    def up(self, name: str) -> bool:
        st = self.state[name]
        return (st.ok and st.checked_at is not None
                and self.clock() - st.checked_at <= self.health.stale_s)

    def snapshot(self) -> dict[str, Any]:
        """Per dependency: up or not, seconds since the last probe ended, the last error."""
        now = self.clock()
        out: dict[str, Any] = {}
        for name, st in self.state.items():
            out[name] = self.up(name)
            out[f"{name}_checked_s_ago"] = (None if st.checked_at is None
                                            else round(now - st.checked_at, 3))
            if st.error is not None and not out[name]:
                out[f"{name}_error"] = st.error
        return out

    async def probe_once(self) -> None:
        await asyncio.gather(*(self._probe(name, probe) for name, probe in self.probes.items()))

    async def _probe(self, name: str, probe: Probe) -> None:
        st = self.state[name]
        error: str | None = None
        try:
            if await asyncio.wait_for(probe(), self.health.probe_timeout_s) is False:
                error = "did not answer"
        except TimeoutError:
            error = f"no answer within {self.health.probe_timeout_s:g}s"
        except Exception as exc:  # a probe reports; it never stops the monitor
            error = f"{type(exc).__name__}: {exc}"[:300]
        ok = error is None
        if ok != st.ok and st.checked_at is not None:
            log.warning("%s %s", name, "answers again" if ok else f"is not answering: {error}")
        st.ok, st.error, st.checked_at = ok, error, self.clock()

    async def run(self, after_each: Callable[[], object] | None = None) -> None:
        """Probe forever (until cancelled), every ``STREAMER_HEALTH_PROBE_INTERVAL_S``."""
        while True:
            started = self.clock()
            await self.probe_once()
            if after_each is not None:
                after_each()
            await asyncio.sleep(max(0.0, self.health.probe_interval_s
                                    - (self.clock() - started)))


class KafkaProbe:
    """Asks the cluster for its metadata on a client of its own (connected lazily)."""

    def __init__(self, kafka: KafkaSettings, timeout_s: float) -> None:
        self.kafka = kafka
        self.timeout_s = timeout_s
        self._client: Any = None

    async def __call__(self) -> bool:
        from aiokafka.client import AIOKafkaClient

        from streamer.kafka.security import client_options

        if self._client is None:
            client = AIOKafkaClient(
                bootstrap_servers=self.kafka.bootstrap,
                request_timeout_ms=int(self.timeout_s * 1000),
                **client_options(self.kafka),
            )
            try:
                await client.bootstrap()
            except BaseException:
                await client.close()
                raise
            self._client = client
        await self._client.fetch_all_metadata()
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
