"""Market extraction: indices, exchanges and market names, under canonical keys.

A list (``markets.csv``, or ``STREAMER_MARKETS_FILE``) gives each canonical key
(``Dow Jones``, ``FTSE 100``...) rows of aliases, ``|``-separated, each row with one rule:

- ``name``: the alias names the market wherever it stands ("Dow Jones industrial average",
  "Tokyo stocks", "Footsie").
- ``headline``: only in a headline (or a chat line): exchange names ("NYSE", "London Stock
  Exchange", "Wall Street"). In the body of a news story they name where a company's shares
  trade ("closed on the New York Stock Exchange at 72-5/8", "listed on the NYSE") far more
  often than the market itself; a story about the exchange or its trading names it in
  its headline ("NYSE TUMBLES 45 POINTS", "TOKYO STOCK EXCHANGE CUTS TRADING HOURS").
- ``city``: a place, counted in a headline (or chat line) that also speaks of stocks,
  shares, equities or a bourse: Reuters' market reports ("STOCKS PLUNGE IN LATE TOKYO
  TRADE", "SHARE PRICES NEAR DAY'S LOWS AT LONDON MIDSESSION").
- ``not``: phrases that are something else ("Dow Chemical", "Hang Seng Bank", "Nikkei
  conference"): a match they overlap does not count; a ``city`` match does not count when
  one stands anywhere in its headline ("U.S. STOCKS FIRMER IN LONDON").

Aliases match case-insensitively on word boundaries: Reuters headlines are UPPER CASE,
bodies mixed case. Rules for any list, from reading the spring 1987 Reuters stream:

- A news story whose headline carries a Reuters ticker tag (``DOW CHEMICAL <DOW> ...``,
  ``INCO <N> SEES NO MAJOR IMPACT FROM DOW REMOVAL``) is about that company: it names no
  market, whatever its body says of the index it belongs to.
- A name right before a ticker tag is a company's (``JURY FINDS FOR DOW <DOW>``).
- After "on", "at", "from", "to", "through"... a name is a venue ("trading on NASDAQ",
  "quoted on the Paris Bourse", "moves from Nasdaq to NYSE"); before "analysts", "sources", "firms",
  "Journal", "listing"... it describes people, firms or a listing ("Wall Street analysts",
  "London stock market analysts", "NYSE listing"). Neither is the market itself.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

from streamer.ingest.tickers import REUTERS_TAG
from streamer.keys import is_label

Rule = Literal["name", "headline", "city", "not"]
_RULES: frozenset[str] = frozenset(get_args(Rule))

# A city names its market only in a headline that is about stocks, shares or a bourse.
_MARKET_WORDS = re.compile(
    r"(?<!\w)(?:stocks|shares|share prices|equities|bourse|stock ?market|stock exchange|"
    r"stock index|share index|stock average|share average|stock trading)(?!\w)",
    re.IGNORECASE)
# Just before a match: a venue preposition ("on the NYSE", "from NASDAQ").
_VENUE_BEFORE = re.compile(r"(?<!\w)(?:on|onto|from|to|at|through|via)\s+(?:the\s+)?$",
                           re.IGNORECASE)
# Just after a match: people, firms or a listing, not the market ("Wall Street analysts":
# 12 of the stream's 141 "Wall Street"s; firms 11, sources 6, Journal 7; "NYSE listing").
_NOT_MARKET_AFTER = re.compile(
    r"\s*(?:'s\s+)?-?(?:analysts?|sources?|firms?|houses?|brokerages?|brokers?|"
    r"executives?|journal|professionals|estimates|insiders?|speculators?|arbitrageurs?|"
    r"figures|bankers?|lawyers?|jobs?|listings?|listed|symbols?)(?!\w)",
    re.IGNORECASE)
# Just after a match: a Reuters ticker tag, so the name is a company's ("DOW <DOW>").
_TAG_AFTER = re.compile(r"\s*" + REUTERS_TAG.pattern)


def _alternation(aliases: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern for ``aliases``, longest first, whitespace-flexible,
    on word boundaries (a '$' or '<' next to the alias is not part of a word)."""
    ordered = sorted(set(aliases), key=len, reverse=True)
    if not ordered:
        return None
    parts = [r"\s+".join(map(re.escape, a.split())) for a in ordered]
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class _Market:
    key: str
    name: re.Pattern[str] | None
    headline: re.Pattern[str] | None
    city: re.Pattern[str] | None
    not_: re.Pattern[str] | None


def _vetoed(span: tuple[int, int], vetoes: list[tuple[int, int]]) -> bool:
    return any(a < span[1] and span[0] < b for a, b in vetoes)


def _found(pattern: re.Pattern[str] | None, text: str,
           vetoes: list[tuple[int, int]]) -> int | None:
    """Where ``pattern`` first names the market in ``text``, after the rules above."""
    if pattern is None:
        return None
    for m in pattern.finditer(text):
        if (_vetoed(m.span(), vetoes)
                or _VENUE_BEFORE.search(text, max(0, m.start() - 16), m.start())
                or _NOT_MARKET_AFTER.match(text, m.end()) or _TAG_AFTER.match(text, m.end())):
            continue
        return m.start()
    return None


class MarketExtractor:
    """Finds markets in text. Thread-safe and immutable after construction."""

    def __init__(self, rows: Iterable[tuple[str, Rule, Iterable[str]]]) -> None:
        grouped: dict[str, dict[str, list[str]]] = {}
        for key, rule, aliases in rows:
            if not is_label(key):
                raise ValueError(f"invalid market key {key!r} (a label: letters, digits, "
                                 "space and . _ - | & / ( ) ' +, at most 64)")
            if rule not in _RULES:
                raise ValueError(f"market {key!r}: unknown rule {rule!r} "
                                 f"(one of {', '.join(sorted(_RULES))})")
            names = [a.strip() for a in aliases if a.strip()]
            grouped.setdefault(key, {}).setdefault(rule, []).extend(names)
        self._markets = tuple(
            _Market(key, *(_alternation(by_rule.get(rule, []))
                           for rule in ("name", "headline", "city", "not")))
            for key, by_rule in grouped.items())

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self._markets)

    @classmethod
    def from_csv(cls, path: Path | None = None) -> MarketExtractor:
        """Read 'key,match,aliases' (aliases separated by '|'; lines starting with '#' are
        comments); default: the built-in list."""
        if path is None:
            text = resources.files("streamer.ingest").joinpath("markets.csv").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        rows: list[tuple[str, Rule, list[str]]] = []
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        for row in csv.DictReader(lines):
            key = (row.get("key") or "").strip()
            rule = (row.get("match") or "").strip().lower()
            if not is_label(key) or rule not in _RULES:
                raise ValueError(f"{path or 'markets.csv'}: invalid row {row!r} (key: a label; "
                                 f"match: one of {', '.join(sorted(_RULES))})")
            rows.append((key, rule, (row.get("aliases") or "").split("|")))  # type: ignore[arg-type]
        return cls(rows)

    def extract(self, headline: str, body: str = "") -> list[str]:
        """Market keys in order of first appearance, headline first; none for a story
        whose headline carries a company's ticker tag. A chat line is a headline."""
        if REUTERS_TAG.search(headline):
            return []
        hits: list[tuple[int, int, str]] = []
        for market in self._markets:
            at = self._in_headline(market, headline)
            if at is not None:
                hits.append((0, at, market.key))
                continue
            vetoes = self._vetoes(market, body)
            at = _found(market.name, body, vetoes)
            if at is not None:
                hits.append((1, at, market.key))
        return [key for _, _, key in sorted(hits)]

    def _in_headline(self, market: _Market, headline: str) -> int | None:
        vetoes = self._vetoes(market, headline)
        found = [at for at in (_found(market.name, headline, vetoes),
                               _found(market.headline, headline, vetoes)) if at is not None]
        # A city is a market report's place only beside market words, and not in a headline
        # that is about something else (a 'not' phrase anywhere in it).
        if market.city is not None and not vetoes and _MARKET_WORDS.search(headline):
            m = market.city.search(headline)
            if m is not None:
                found.append(m.start())
        return min(found, default=None)

    @staticmethod
    def _vetoes(market: _Market, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in market.not_.finditer(text)] if market.not_ else []
