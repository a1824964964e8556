"""A synthetic market stream: news and chat across topics and tickers, calm periods,
and an injected burst of negative news on one topic and ticker.

Written by the project itself (templates + a seeded RNG), so it is reproducible and
needs no external data. The spike's timing is returned as labels, for evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import orjson
from pydantic import AfterValidator, BaseModel, Field

from streamer.ingest.normalize import news_text

Sentiment = Literal["negative", "neutral", "positive"]

# Topics by the names the topic head speaks (the 20 Twitter Financial News topics; R8
# stories map onto them as streamer/taxonomy.py says: trade and grain news are
# Macro, shipping events General News | Opinion).
COMPANIES: dict[str, list[tuple[str, str]]] = {
    "Earnings": [("Apple", "AAPL"), ("Microsoft", "MSFT"), ("Nvidia", "NVDA"), ("Intel", "INTC"),
                 ("Walmart", "WMT"), ("Netflix", "NFLX"), ("Pfizer", "PFE")],
    "M&A | Investments": [("Microsoft", "MSFT"), ("Pfizer", "PFE"), ("Disney", "DIS"),
                          ("Oracle", "ORCL"), ("Merck", "MRK"), ("Broadcom", "AVGO")],
    "Energy | Oil": [("Exxon Mobil", "XOM"), ("Chevron", "CVX"), ("BP", "BP"),
                     ("Shell", "SHEL")],
    "Currencies": [("JPMorgan", "JPM"), ("Citigroup", "C"), ("Goldman Sachs", "GS")],
    "Fed | Central Banks": [("Bank of America", "BAC"), ("Wells Fargo", "WFC"),
                            ("JPMorgan", "JPM")],
    "Macro": [("Boeing", "BA"), ("Caterpillar", "CAT"), ("General Motors", "GM"), ("Ford", "F"),
              ("Archer Daniels Midland", "ADM"), ("Bunge", "BG")],
    "General News | Opinion": [("Maersk", "MAERSK.B"), ("ZIM Integrated Shipping", "ZIM"),
                               ("FedEx", "FDX")],
}

NEWS: dict[str, dict[Sentiment, list[str]]] = {
    "Earnings": {
        "positive": ["{co} quarterly profit rises {pct}% and beats analyst estimates",
                     "{co} raises full-year earnings forecast after record quarterly revenue",
                     "{co} net income up {pct}% as sales climb; dividend increased"],
        "negative": ["{co} swings to a quarterly loss as revenue falls {pct}%",
                     "{co} cuts profit forecast, shares slump {pct}% after weak results",
                     "{co} misses earnings estimates as margins shrink"],
        "neutral": ["{co} to report fourth-quarter results on {day}",
                    "{co} quarterly net income in line with year-earlier period",
                    "{co} reports first-quarter earnings per share of {small} dlrs"],
    },
    "M&A | Investments": {
        "positive": ["{co} agrees to acquire {co2} in {bn} billion dlr deal; shares jump {pct}%",
                     "{co} wins shareholder approval for takeover of {co2}"],
        "negative": ["{co} bid for {co2} collapses, shares slide {pct}%",
                     "Regulators block {co} merger with {co2}; deal terminated"],
        "neutral": ["{co} says it is in preliminary talks to buy a stake in {co2}",
                    "{co} completes acquisition of {co2} unit for undisclosed sum"],
    },
    "Energy | Oil": {
        "positive": ["Oil prices rise {pct}% as OPEC output cuts tighten supply; {co} gains",
                     "{co} raises crude production target after strong refining margins"],
        "negative": ["Crude oil prices plunge {pct}% on supply glut; {co} shares tumble",
                     "{co} shuts refinery after explosion, crude output slashed",
                     "Oil slumps to multi-year low as OPEC talks collapse; {co} drops {pct}%",
                     "{co} writes down oil reserves, warns of sharply lower production"],
        "neutral": ["OPEC ministers meet in Vienna to review crude oil output quotas",
                    "{co} says crude oil production averaged {bn} million barrels a day"],
    },
    "Currencies": {
        "positive": ["Dollar firms against the yen as central bank support steadies markets"],
        "negative": ["Dollar slumps to record low against the yen, central banks alarmed"],
        "neutral": ["Dollar steady in quiet trading ahead of G7 finance ministers meeting"],
    },
    "Fed | Central Banks": {
        "positive": ["Fed cuts discount rate by half a point, bond prices rally"],
        "negative": ["Banks raise prime rate to {small} pct as money market rates jump"],
        "neutral": ["Fed leaves interest rates unchanged, says it will watch inflation"],
    },
    "Macro": {  # trade, and grain
        "positive": ["U.S. trade deficit narrows sharply as exports rise {pct}%",
                     "Wheat exports rise as USDA raises grain sales forecast; {co} up"],
        "negative": ["Trade war fears grow as tariffs on imports are raised; {co} hit",
                     "Grain prices slump as drought damages wheat and corn crops"],
        "neutral": ["Trade officials resume talks on tariffs and market access in Geneva",
                    "USDA estimates corn and soybean plantings unchanged from last year"],
    },
    "General News | Opinion": {  # shipping events
        "positive": ["Freight rates climb as port congestion eases; {co} gains"],
        "negative": ["Port strike halts shipping traffic, vessels stranded; {co} shares fall"],
        "neutral": ["{co} orders {small} new container vessels for delivery next year"],
    },
}
# How often each topic's news comes (relative).
TOPIC_WEIGHTS: dict[str, int] = {
    "Earnings": 5, "M&A | Investments": 3, "Energy | Oil": 2, "Currencies": 2,
    "Fed | Central Banks": 2, "Macro": 3, "General News | Opinion": 1,
}


def demo_topic(name: str) -> str:
    """``name`` when the demo writes news on it, else ValueError naming those topics."""
    if name not in NEWS:
        raise ValueError(f"no demo news on topic {name!r}; the demo's topics: "
                         + ", ".join(repr(t) for t in NEWS))
    return name


DemoTopic = Annotated[str, AfterValidator(demo_topic)]

CHAT: dict[Sentiment, list[str]] = {
    "positive": ["${t} breaking out, adding to my long", "${t} looking strong into earnings",
                 "loving this rally in ${t}, bullish", "${t} calls printing today"],
    "negative": ["${t} getting crushed, dumping my shares", "${t} looks terrible, bearish here",
                 "ugh ${t} down again, this is ugly", "selling ${t}, guidance was a disaster"],
    "neutral": ["anyone watching ${t} today?", "what's the volume on ${t}",
                "${t} flat so far, waiting for the open", "${t} reports next week"],
}

BAD_KINDS = (
    "malformed_json", "wrong_type", "missing_field", "empty_text", "invalid_utf8",
    "unknown_field", "too_long", "too_large",
)


class DemoConfig(BaseModel):
    seed: int = 7
    minutes: float = Field(10.0, gt=0, description="Event-time span of the stream.")
    news_per_min: float = Field(40.0, ge=0)
    chat_per_min: float = Field(120.0, ge=0)
    base_negative: float = Field(0.15, ge=0, le=1, description="Calm negative share.")
    spike_topic: DemoTopic = "Energy | Oil"
    spike_ticker: str = "XOM"
    spike_at_min: float | None = Field(6.0, description="Spike onset; None for no spike.")
    spike_minutes: float = Field(1.5, gt=0)
    spike_per_min: float = Field(60.0, ge=0, description="Extra negative news per minute.")
    bad_fraction: float = Field(0.02, ge=0, le=0.5, description="Share of malformed messages.")
    start: datetime | None = Field(None, description="Event time of the first message.")
    max_text_chars: int = 20_000
    max_message_bytes: int = 262_144
    run_tag: str = Field(
        "", pattern=r"^[A-Za-z0-9]{0,16}$",
        description="Part of every message id, so that a second run on the same stack sends "
        "new messages rather than replays of the first (the worker drops repeated ids); "
        "empty: ids depend on the seed alone.",
    )


class SpikeLabel(BaseModel):
    scope: Literal["topic", "ticker"]
    key: str
    start: datetime
    end: datetime
    messages: int


@dataclass(frozen=True)
class DemoMessage:
    kind: Literal["news", "chat"]
    value: bytes
    event_time: datetime
    sentiment: Sentiment | None  # None for a malformed message
    topic: str | None
    tickers: tuple[str, ...]
    bad: str | None = None


class DemoGenerator:
    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self._n = 0
        self._bad = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        run = f"{self.cfg.run_tag}-" if self.cfg.run_tag else ""
        return f"{prefix}-{run}{self.cfg.seed}-{self._n:07d}"

    def _sentiment(self) -> Sentiment:
        r = self.rng.random()
        if r < self.cfg.base_negative:
            return "negative"
        return "positive" if r < self.cfg.base_negative + 0.3 else "neutral"

    def _fill(self, template: str, topic: str, ticker: str | None = None) -> tuple[str, str]:
        pairs = COMPANIES[topic]
        # A given ticker names its own company in the text (a spike "on XOM" says Exxon).
        own = [p for p in pairs if p[1] == ticker]
        co, found = self.rng.choice(own or pairs)
        others = [c for c, _ in COMPANIES[topic] if c != co] or [co]
        text = template.format(
            co=co, co2=self.rng.choice(others), pct=self.rng.randint(2, 18),
            bn=self.rng.randint(2, 60), small=round(self.rng.uniform(0.2, 9.9), 2),
            day=self.rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday"]),
        )
        return text, ticker or found

    def news(self, when: datetime, topic: str, sentiment: Sentiment,
             ticker: str | None = None) -> DemoMessage:
        text, ticker = self._fill(self.rng.choice(NEWS[topic][sentiment]), topic, ticker)
        payload = {
            "id": self._id("n"), "source": self.rng.choice(["wire-a", "wire-b", "newsdesk"]),
            "headline": text, "tickers": [ticker], "published_at": when.isoformat(),
        }
        if self.rng.random() < 0.5:
            payload["body"] = f"{text}. Analysts said the move was closely watched by investors."
        return DemoMessage("news", orjson.dumps(payload), when, sentiment, topic, (ticker,))

    def chat(self, when: datetime, sentiment: Sentiment) -> DemoMessage:
        topic = self.rng.choice(list(COMPANIES))
        _, ticker = self.rng.choice(COMPANIES[topic])
        text = self.rng.choice(CHAT[sentiment]).replace("{t}", ticker)
        payload = {
            "id": self._id("c"), "channel": self.rng.choice(["desk-eq", "desk-macro", "retail"]),
            "author": f"user{self.rng.randint(1, 400)}", "text": text,
            "sent_at": when.isoformat(),
        }
        return DemoMessage("chat", orjson.dumps(payload), when, sentiment, None, (ticker,))

    def bad(self, when: datetime) -> DemoMessage:
        kind = BAD_KINDS[self._bad % len(BAD_KINDS)]
        self._bad += 1
        base = {"id": self._id("bad"), "channel": "retail", "author": "x",
                "text": "hello", "sent_at": when.isoformat()}
        raw: bytes
        if kind == "malformed_json":
            raw = b'{"id": "x", "text": "unterminated'
        elif kind == "wrong_type":
            raw = orjson.dumps({**base, "text": 12345})
        elif kind == "missing_field":
            raw = orjson.dumps({k: v for k, v in base.items() if k != "sent_at"})
        elif kind == "empty_text":
            raw = orjson.dumps({**base, "text": "   \u200b  "})
        elif kind == "invalid_utf8":
            raw = orjson.dumps(base).replace(b"hello", b"hel\xff\xfelo")
        elif kind == "unknown_field":
            raw = orjson.dumps({**base, "price": 1.0})
        elif kind == "too_long":
            raw = orjson.dumps({**base, "text": "sell " * (self.cfg.max_text_chars // 5 + 10)})
        else:
            raw = orjson.dumps({**base, "text": "x" * (self.cfg.max_message_bytes + 10)})
        return DemoMessage("chat", raw, when, None, None, (), bad=kind)

    def generate(self) -> tuple[list[DemoMessage], list[SpikeLabel]]:
        cfg = self.cfg
        start = cfg.start or datetime.now(UTC) - timedelta(minutes=cfg.minutes)
        span = cfg.minutes * 60.0
        out: list[DemoMessage] = []

        def arrivals(per_min: float, t0: float, t1: float) -> list[float]:
            # A Poisson process: exponential gaps at the given rate.
            times, t = [], t0
            rate = per_min / 60.0
            while rate > 0:
                t += self.rng.expovariate(rate)
                if t >= t1:
                    break
                times.append(t)
            return times

        topics = list(TOPIC_WEIGHTS)
        weights = list(TOPIC_WEIGHTS.values())
        for t in arrivals(cfg.news_per_min, 0, span):
            topic = self.rng.choices(topics, weights)[0]
            out.append(self.news(start + timedelta(seconds=t), topic, self._sentiment()))
        for t in arrivals(cfg.chat_per_min, 0, span):
            out.append(self.chat(start + timedelta(seconds=t), self._sentiment()))
        labels: list[SpikeLabel] = []
        if cfg.spike_at_min is not None:
            s0 = cfg.spike_at_min * 60.0
            s1 = min(span, s0 + cfg.spike_minutes * 60.0)
            spike = [
                self.news(start + timedelta(seconds=t), cfg.spike_topic, "negative",
                          ticker=cfg.spike_ticker)
                for t in arrivals(cfg.spike_per_min, s0, s1)
            ]
            out += spike
            for scope, key in (("topic", cfg.spike_topic), ("ticker", cfg.spike_ticker)):
                labels.append(SpikeLabel(
                    scope=scope,
                    key=key, start=start + timedelta(seconds=s0),
                    end=start + timedelta(seconds=s1), messages=len(spike),
                ))
        out.sort(key=lambda m: m.event_time)
        if cfg.bad_fraction > 0:
            n_bad = round(len(out) * cfg.bad_fraction / (1 - cfg.bad_fraction))
            for _ in range(n_bad):
                at = self.rng.randrange(len(out) + 1)
                when = out[min(at, len(out) - 1)].event_time if out else start
                out.insert(at, self.bad(when))
        return out, labels


def labelled_rows(messages: Iterable[DemoMessage]) -> dict[str, list[tuple[str, str]]]:
    """``text,label`` rows per head from generated messages (what each was written to
    be), for ``streamer models eval`` on texts no model build has seen: sentiment from
    news and chat, topic from news (chat carries no topic)."""
    rows: dict[str, list[tuple[str, str]]] = {"sentiment": [], "topic": []}
    for m in messages:
        if m.bad is not None or m.sentiment is None:
            continue
        obj = orjson.loads(m.value)
        news = m.kind == "news"
        text = news_text(obj["headline"], obj.get("body")) if news else obj["text"]
        rows["sentiment"].append((text, m.sentiment))
        if m.topic is not None:
            rows["topic"].append((text, m.topic))
    return rows
