"""The load's messages: valid demo messages whose event time is about their send time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streamer.produce.sender import Outgoing
from streamer.settings import Settings


class Messages:
    """Valid demo messages (news and chat, no malformed ones), event time ~ send time."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def make(self, settings: Settings, n: int, rate: float) -> list[Outgoing]:
        from streamer.produce.demo import DemoConfig, DemoGenerator

        topics = {"news": settings.topics.news, "chat": settings.topics.chat}
        out: list[Outgoing] = []
        while len(out) < n:
            self.seed += 1
            per_min = max(rate, 1.0) * 60.0
            minutes = max(0.05, (n - len(out)) / per_min * 1.2)
            cfg = DemoConfig(seed=self.seed, minutes=minutes, news_per_min=per_min / 4,
                             chat_per_min=per_min * 3 / 4, bad_fraction=0.0, spike_at_min=None,
                             start=datetime.now(UTC) + timedelta(seconds=1),
                             max_text_chars=settings.input.max_text_chars,
                             max_message_bytes=settings.input.max_message_bytes)
            msgs = DemoGenerator(cfg).generate()[0]
            out += [Outgoing(topics[m.kind], None, m.value) for m in msgs]
        return out[:n]
