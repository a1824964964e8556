"""Ticker extraction from cashtags, bare symbols and company names."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from constant_scorer import score_phase

from streamer.batch.processor import RawRecord
from streamer.ingest import TickerExtractor, decode, normalize
from streamer.metrics import Metrics
from streamer.schemas import Event, NewsItem, Origin
from streamer.settings import Settings


@pytest.fixture(scope="module")
def tickers() -> TickerExtractor:
    return TickerExtractor.from_csv()


def test_cashtags_are_found_in_order(tickers: TickerExtractor) -> None:
    assert tickers.extract("$tsla and $AAPL, then $BRK.B") == ["TSLA", "AAPL", "BRK.B"]


def test_company_names_map_to_symbols(tickers: TickerExtractor) -> None:
    assert tickers.extract("Bank of America and Microsoft slide") == ["BAC", "MSFT"]


def test_short_bare_symbols_and_lowercase_names_are_not_matched(tickers: TickerExtractor) -> None:
    assert tickers.extract("it is a GS day for an apple pie in the US") == []


def test_dollar_amounts_are_not_tickers(tickers: TickerExtractor) -> None:
    assert tickers.extract("paid $5 and $10.50") == []


def test_cap_bounds_the_number_of_tickers() -> None:
    t = TickerExtractor.from_csv(max_tickers=2)
    assert t.extract("$A1 $B2 $C3 $D4") == ["A1", "B2"]


def test_custom_symbol_file(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("symbol,name,aliases\nACME,Acme Corp,Acme|Roadrunner Inc\n")
    t = TickerExtractor.from_csv(f)
    assert t.extract("Roadrunner Inc sues ACME") == ["ACME"]


def test_invalid_symbol_in_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("symbol,name,aliases\nnot a symbol,X,\n")
    with pytest.raises(ValueError, match="invalid symbol"):
        TickerExtractor.from_csv(f)


# --- publisher-given tickers must be in the symbol list --------------------------------
JUNK = ["NULL", "NAN", "TRUE", "NONE", "INF", "CON", "NUL", "COM1"]


def news(tickers: list[str], headline: str = "Markets are quiet today") -> bytes:
    return orjson.dumps({"id": "n1", "source": "wire", "headline": headline,
                         "tickers": tickers, "published_at": "2026-01-02T03:04:05Z"})


def event_of(raw: bytes, tickers: TickerExtractor) -> Event:
    msg = decode(raw, "news", max_bytes=1 << 20)
    assert isinstance(msg, NewsItem), msg
    ev = normalize(msg, Origin(topic="news", partition=0, offset=1), tickers, max_chars=1000)
    assert isinstance(ev, Event), ev
    return ev


def test_junk_publisher_tickers_never_reach_the_event(tickers: TickerExtractor) -> None:
    ev = event_of(news([*JUNK, "xom", "BRK.B", "ZZZZ"]), tickers)
    assert ev.tickers == ["XOM", "BRK.B"]


def test_real_publisher_tickers_are_kept_in_order(tickers: TickerExtractor) -> None:
    assert event_of(news(["msft", "AAPL", "MAERSK.B"]), tickers).tickers == [
        "MSFT", "AAPL", "MAERSK.B"]


def test_each_dropped_ticker_is_reported_with_its_reason(tickers: TickerExtractor) -> None:
    dropped: list[str] = []
    assert tickers.extract("quiet", given=[*JUNK, "XOM"], on_drop=dropped.append) == ["XOM"]
    assert dropped == ["unknown_symbol"] * len(JUNK)


def test_a_custom_symbol_file_decides_which_given_tickers_count(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("symbol,name,aliases\nACME,Acme Corp,\n")
    assert TickerExtractor.from_csv(f).extract("quiet", given=["ACME", "XOM"]) == ["ACME"]


def test_the_worker_counts_dropped_tickers_by_topic_and_reason() -> None:
    settings = Settings()
    metrics = Metrics()
    records = [RawRecord(settings.topics.news, 0, 1, news([*JUNK, "XOM"])),
               RawRecord(settings.topics.news, 0, 2, news(["NULL"])),
               RawRecord(settings.topics.news, 0, 3, news(["NULL"], headline=" "))]
    out = score_phase(settings, records, metrics)
    assert [ev.tickers for ev in out.scored] == [["XOM"], []]
    assert len(out.dead) == 1  # a dead-lettered message drops no tickers
    count = metrics.registry.get_sample_value(
        "streamer_tickers_dropped_total",
        {"topic": settings.topics.news, "reason": "unknown_symbol"})
    assert count == len(JUNK) + 1


# --- Reuters' own ticker tags -------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("GORDON JEWELRY CORP <GOR> 4TH QTR NET", ["GOR"]),
    ("TANDON COMPUTER <TCOR.O> SEES LOSS", ["TCOR.O"]),
    ("Hang Seng Bank Ltd <HSGH.HK> reports on Friday", ["HSGH.HK"]),
])
def test_reuters_tags_are_tickers_with_their_exchange_suffix(
    tickers: TickerExtractor, text: str, expected: list[str]
) -> None:
    assert tickers.extract(text) == expected


def test_reuters_tags_count_without_being_in_the_symbol_list(tickers: TickerExtractor) -> None:
    assert "GOR" not in tickers._known
    assert tickers.extract("GORDON JEWELRY CORP <GOR>") == ["GOR"]


@pytest.mark.parametrize("text", [
    "<Jardine Matheson Holdings Ltd> plans a bonus issue",
    "<POCLAIN> OFFERS PAR RIGHTS ISSUE",
    "<Guinness PLC> has joined investors",
])
def test_angle_brackets_around_a_company_name_are_no_tag(
    tickers: TickerExtractor, text: str
) -> None:
    assert tickers.extract(text) == []


def test_the_dow_tag_is_dow_chemicals_ticker(tickers: TickerExtractor) -> None:
    ev = event_of(news([], headline="DOW CHEMICAL <DOW> TO SELL SOUTH AFRICAN UNIT"), tickers)
    assert (ev.tickers, ev.markets) == (["DOW"], [])


def test_a_chat_line_is_not_read_for_reuters_tags(tickers: TickerExtractor) -> None:
    raw = orjson.dumps({"id": "c1", "channel": "desk", "author": "u1",
                        "text": "<B>bold</B> call on <GOR> today",
                        "sent_at": "2026-01-02T03:04:05Z"})
    msg = decode(raw, "chat", max_bytes=1 << 20)
    ev = normalize(msg, Origin(topic="chat", partition=0, offset=1), tickers,  # type: ignore[arg-type]
                   max_chars=1000)
    assert isinstance(ev, Event) and ev.tickers == []
