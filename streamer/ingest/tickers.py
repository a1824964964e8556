"""Ticker extraction: $CASHTAGS, Reuters ticker tags, known symbols written bare, and
company names."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Literal

from streamer.schemas.types import TICKER_PATTERN

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:\.[A-Za-z]{1,2})?)\b")
# Reuters' own ticker tags in news: "GORDON JEWELRY CORP <GOR>", "TANDON COMPUTER <TCOR.O>"
# (the suffix names the exchange: .O Nasdaq, .L London, .HK Hong Kong; it stays in the key).
# The brackets also wrap company names without a code ("<Jardine Matheson Holdings Ltd>",
# "<POCLAIN>"): only a code of the ticker pattern is a tag.
REUTERS_TAG = re.compile(r"<([A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?)>")
# Checked with fullmatch: the pattern's '$' alone would let a trailing newline through.
_VALID = re.compile(TICKER_PATTERN)
# Short bare symbols (F, C, GS, T...) collide with ordinary words; only longer ones
# count when written without a '$'.
_MIN_BARE_SYMBOL = 3

# Why a publisher-given ticker was left out (the label of streamer_tickers_dropped_total).
DropReason = Literal["unknown_symbol"]
OnDrop = Callable[[DropReason], None]


class TickerExtractor:
    """Finds tickers in text. Thread-safe and immutable after construction."""

    def __init__(
        self, names: dict[str, str], symbols: Iterable[str] = (), *, max_tickers: int = 16
    ) -> None:
        self._max = max_tickers
        self._by_name = dict(names)
        symbols = set(symbols) | set(names.values())
        self._known = frozenset(s.upper() for s in symbols)
        bare = sorted((s for s in symbols if len(s) >= _MIN_BARE_SYMBOL), key=len, reverse=True)
        self._bare = (
            re.compile(r"(?<![\w$.])(" + "|".join(map(re.escape, bare)) + r")(?![\w])")
            if bare
            else None
        )
        # Company names match case-sensitively ("Apple", not "apple pie") on word
        # boundaries, longest first so "Bank of America" wins over a shorter alias.
        ordered = sorted(names, key=len, reverse=True)
        self._names = (
            re.compile(r"(?<!\w)(" + "|".join(map(re.escape, ordered)) + r")(?!\w)")
            if ordered
            else None
        )

    @classmethod
    def from_csv(cls, path: Path | None = None, *, max_tickers: int = 16) -> TickerExtractor:
        """Read 'symbol,name,aliases' (aliases separated by '|'); default: the built-in list."""
        if path is None:
            text = resources.files("streamer.ingest").joinpath("symbols.csv").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        names: dict[str, str] = {}
        symbols: set[str] = set()
        for row in csv.DictReader(text.splitlines()):
            symbol = (row.get("symbol") or "").strip().upper()
            if not _VALID.fullmatch(symbol):
                raise ValueError(f"{path or 'symbols.csv'}: invalid symbol {symbol!r}")
            for alias in [row.get("name") or "", *(row.get("aliases") or "").split("|")]:
                alias = alias.strip()
                if alias:
                    names[alias] = symbol
            symbols.add(symbol)
        return cls(names, symbols, max_tickers=max_tickers)

    def extract(
        self, text: str, given: Iterable[str] = (), *, on_drop: OnDrop | None = None,
        reuters_tags: bool = True,
    ) -> list[str]:
        """Tickers in order of first appearance: publisher-given first, then found in text.

        A publisher-given ticker counts only when it is in the symbol list: the pattern
        alone lets NULL, NAN, TRUE, CON or COM1 through to Redis and alert keys. Each
        one left out is reported to ``on_drop``. $cashtags in the text are not held to
        the list (traders tag symbols it does not know), nor are Reuters ticker tags
        (``<TCOR.O>``: the publisher names the company so; ``reuters_tags=False`` skips
        them, for text that is not a news story).
        """
        found: dict[str, None] = {}

        def add(symbol: str) -> None:
            symbol = symbol.upper()
            if _VALID.fullmatch(symbol) and len(found) < self._max:
                found.setdefault(symbol, None)

        for symbol in given:
            if symbol.upper() in self._known:
                add(symbol)
            elif on_drop is not None:
                on_drop("unknown_symbol")
        hits: list[tuple[int, str]] = [(m.start(), m.group(1)) for m in _CASHTAG.finditer(text)]
        if reuters_tags:
            hits += [(m.start(), m.group(1)) for m in REUTERS_TAG.finditer(text)]
        if self._bare is not None:
            hits += [(m.start(), m.group(1)) for m in self._bare.finditer(text)]
        if self._names is not None:
            hits += [
                (m.start(), self._by_name[m.group(1)])
                for m in self._names.finditer(text)
            ]
        for _, symbol in sorted(hits):
            add(symbol)
        return list(found)
