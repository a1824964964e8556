"""The scope keys one event counts under: the one definition that the worker's buckets
(``delta.py``), its evidence (``streamer/alert/windows.py``) and the offline evaluation
(``streamer/evaluation/offline.py``) all use, so they bucket alike."""

from __future__ import annotations

from collections.abc import Iterable

from streamer.keys import Scope
from streamer.schemas import ScoredEvent

ScopeKeyOf = tuple[Scope, str]


def scope_keys(kind: str, topic: str, tickers: Iterable[str],
               markets: Iterable[str]) -> list[ScopeKeyOf]:
    """``("all", "all")`` (the detector's prior), the topic, each ticker, each market, and
    the input kind's stream (every news item, or every chat line)."""
    return [("all", "all"), ("topic", topic), *(("ticker", t) for t in tickers),
            *(("market", m) for m in markets), ("stream", kind)]


def event_scope_keys(event: ScoredEvent) -> list[ScopeKeyOf]:
    """:func:`scope_keys` of a scored event (its topic: the topic head's top label)."""
    return scope_keys(event.kind, event.topic.label, event.tickers, event.markets)
