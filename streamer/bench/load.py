"""The benchmark's open-loop load generator: librdkafka where it can run, aiokafka otherwise.

Both send at a fixed offered rate and stamp each record with its intended send time
(no coordinated omission); they differ only in how much of the shared CPU they take
(``streamer.produce.rdkafka_sender``).
"""

from __future__ import annotations

from collections.abc import Iterable

from streamer.produce import rdkafka_sender
from streamer.produce.sender import Outgoing, SendReport, send_all
from streamer.settings import Settings


def _rdkafka(settings: Settings) -> bool:
    return settings.stack.bench_generator == "auto" and rdkafka_sender.available(settings)


def generator(settings: Settings) -> str:
    """Which producer sends the load, for the report."""
    if _rdkafka(settings):
        return rdkafka_sender.version()
    if settings.stack.bench_generator == "aiokafka":
        return "aiokafka (STREAMER_BENCH_GENERATOR=aiokafka)"
    return ("aiokafka (install confluent-kafka for a lighter generator)"
            if settings.kafka.security_protocol == "PLAINTEXT"
            else f"aiokafka ({settings.kafka.security_protocol} broker)")


async def send_load(settings: Settings, messages: Iterable[Outgoing], *,
                    rate: float | None) -> SendReport:
    if _rdkafka(settings):
        return await rdkafka_sender.send_paced(settings, messages, rate=rate)
    return await send_all(settings, messages, rate=rate, progress=False)
