"""Market extraction: indices, exchanges and market names under canonical keys, with the
cases Reuters makes tricky (Dow Chemical is not the Dow, a venue is not the market)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.ingest import MarketExtractor, TickerExtractor, decode, normalize
from streamer.ingest.markets import _alternation
from streamer.keys import is_label
from streamer.schemas import Event, Origin

BUILTIN = MarketExtractor.from_csv()
KEYS = {"Dow Jones", "S&P 500", "Nasdaq", "NYSE", "FTSE 100", "Nikkei", "Hang Seng", "DAX",
        "CAC 40"}


def markets(headline: str, body: str = "") -> list[str]:
    return BUILTIN.extract(headline, body)


def test_the_builtin_list_has_the_major_indices_and_exchanges() -> None:
    assert set(BUILTIN.keys) >= KEYS


@pytest.mark.parametrize("headline", [
    "DOW FALLS 404 POINTS", "DOW JONES INDUSTRIALS SURPASSES 2300 LEVEL FOR FIRST TIME",
    "ANALYSTS SAY NEW DOW COMPONENTS AID AVERAGE",
])
def test_the_dow_in_a_headline_is_the_index(headline: str) -> None:
    assert markets(headline) == ["Dow Jones"]


@pytest.mark.parametrize("body", [
    "Stocks slid and the Dow fell 20 points by midday.",
    "The Dow Jones industrial average skidded 44.60 points to 2360.94.",
    "The Dow Industrials fell 39 points to 2367.",
    "It was the biggest drop in the DJIA since January.",
])
def test_the_dow_in_a_body_is_the_index(body: str) -> None:
    assert markets("MARKET REPORT", body) == ["Dow Jones"]


@pytest.mark.parametrize(("headline", "body"), [
    ("DOW CHEMICAL LAUNCHES 200 MLN SWISS FRANC BOND", ""),
    ("CHEMICALS MAKER PLANS NOTES", "Dow Chemical Co said it will offer 130 mln dlrs of notes."),
    ("SILICONE VENTURE EXPANDS", "Dow Corning said it will build a plant."),
    ("PUBLISHER EARNINGS RISE", "Dow Jones and Co said its first quarter profit rose."),
    ("DOW CORNING PLANS NEW PLANT", ""),
])
def test_dow_chemical_dow_corning_and_the_publisher_are_not_the_index(
    headline: str, body: str
) -> None:
    assert markets(headline, body) == []


def test_a_headline_with_a_ticker_tag_is_a_company_story() -> None:
    body = "Inco said its removal from the Dow Jones industrial average has no impact."
    assert markets("INCO <N> SEES NO MAJOR IMPACT FROM DOW REMOVAL", body) == []
    assert markets("DOW CHEMICAL <DOW> TO SELL SOUTH AFRICAN UNIT") == []


def test_a_name_right_before_a_ticker_tag_is_a_company() -> None:
    assert markets("JURY VERDICT", "A jury found for Dow <DOW> in the case.") == []


@pytest.mark.parametrize("headline", [
    "NYSE TUMBLES 45 POINTS ON PROFIT TAKING", "NEW YORK STOCK EXCHANGE REVIEWS PROGRAM TRADING",
    "BIG BOARD HALTS TRADING",
])
def test_exchange_names_in_a_headline_are_the_exchange(headline: str) -> None:
    assert markets(headline) == ["NYSE"]


@pytest.mark.parametrize(("headline", "body"), [
    ("STAR TECHNOLOGIES TO TRADE ON NASDAQ", ""),
    ("NV PHILIPS SHARES MOVE FROM NASDAQ TO NYSE", ""),
    ("COMPANY SEEKS NYSE LISTING", ""),
    ("REVLON BID", "Revlon closed yesterday on the New York Stock Exchange at 14-3/4."),
    ("AIRGAS DECLINES COMMENT", "The New York Stock Exchange said Airgas declined to comment."),
    ("MOET SHARES UP", "Moet-Hennessy shares closed on the Paris Bourse today at 2,678 francs."),
])
def test_a_venue_or_a_listing_is_not_the_market(headline: str, body: str) -> None:
    assert markets(headline, body) == []


@pytest.mark.parametrize(("headline", "body", "expected"), [
    ("WALL STREET STOCKS LOWER IN LATE TRADING", "", ["NYSE"]),
    ("WALL STREET CLOSE SHARPLY LOWER", "", ["NYSE"]),
    ("MARKET REPORT", "Wall Street stocks were lower at the opening bell.", ["NYSE"]),
    ("GE PROFIT OUTLOOK AIDED", "Wall Street analysts said the contract is worth more.", []),
    ("TWA SOLD FOUR MLN SHARES OF USAIR, WALL STREET SOURCES", "", []),
    ("SEC WIDENS PROBE", "the insider trading scandal on Wall Street widened", []),
    ("WALL STREET STOCKS/AMERICAN EXPRESS <AXP>", "Wall Street stocks rose.", []),
])
def test_wall_street_is_the_market_only_in_a_headline_or_a_stock_market_phrase(
    headline: str, body: str, expected: list[str]
) -> None:
    assert markets(headline, body) == expected


@pytest.mark.parametrize(("headline", "expected"), [
    ("STOCKS PLUNGE IN LATE TOKYO TRADE", ["Nikkei"]),
    ("SHARE PRICES NEAR DAY'S LOWS AT LONDON MIDSESSION", ["FTSE 100"]),
    ("STOCKS CLOSE WEAKER IN HONG KONG", ["Hang Seng"]),
    ("FRANKFURT BOURSE CLOSES QUIETLY EASIER", ["DAX"]),
    ("DOLLAR CLOSES LOWER IN TOKYO", []),
    ("U.S. STOCKS FIRMER IN LONDON", []),
    ("LONDON METAL EXCHANGE STOCKS FALL", []),
])
def test_a_city_names_its_market_only_in_a_market_report_headline(
    headline: str, expected: list[str]
) -> None:
    assert markets(headline) == expected


@pytest.mark.parametrize(("headline", "body", "key"), [
    ("TOKYO STOCKS CLOSE LOWER", "", "Nikkei"),
    ("JAPAN REPORT", "The Nikkei average lost 502.98 points.", "Nikkei"),
    ("LONDON'S FTSE 100 FALLS BY LARGEST EVER MARGIN", "", "FTSE 100"),
    ("UK REPORT", "At 1141 GMT the FT-SE 100 index was 10.6 down.", "FTSE 100"),
    ("UK REPORT", "The Footsie slid in thin trade.", "FTSE 100"),
    ("LONDON STOCK EXCHANGE TO CLOSE TRADING FLOOR", "", "FTSE 100"),
    ("HK REPORT", "The Hang Seng index fell 61.07 to 2,713.81.", "Hang Seng"),
    ("H.K. STOCK EXCHANGE BARS NEW 'B' SHARE ISSUES", "", "Hang Seng"),
    ("GERMAN REPORT", "Frankfurt stocks ended lower.", "DAX"),
    ("FRENCH REPORT", "The Paris bourse fell 3 pct.", "CAC 40"),
    ("FRENCH REPORT", "The CAC 40 index shed 2 pct.", "CAC 40"),
    ("CME DROPS S AND P 500 FUTURES PRICE LIMIT PLAN", "", "S&P 500"),
    ("FUTURES", "the Standard and Poor's 500 stock index future", "S&P 500"),
    ("NASDAQ COMP 15:02 COMP 435.21 OFF 2.57", "", "Nasdaq"),
])
def test_each_market_is_found_by_its_names(headline: str, body: str, key: str) -> None:
    assert markets(headline, body) == [key]


@pytest.mark.parametrize(("headline", "body"), [
    ("JAPAN READY TO DISCUSS BANK REGULATION", "He told a Nikkei conference on Tokyo markets."),
    ("HK BANK PROFIT SEEN UP", "Hang Seng Bank Ltd is to report its 1986 results."),
    ("AUSTRALIAN CLERK ARRESTED", "The Corporate Affairs Commission (CAC) said so."),
    ("TRUCK PRICES RISE", "Mitsubishi raised prices on the four-wheel-drive SPX."),
])
def test_namesakes_of_markets_are_not_markets(headline: str, body: str) -> None:
    assert markets(headline, body) == []


def test_markets_come_in_order_of_first_appearance_headline_first() -> None:
    body = "The Paris bourse and Frankfurt stocks followed the Dow Jones industrial average."
    assert markets("TOKYO STOCKS PLUNGE", body) == ["Nikkei", "CAC 40", "DAX", "Dow Jones"]


def test_matching_ignores_case_and_spacing() -> None:
    assert markets("market", "the  dow   jones\nindustrial average") == ["Dow Jones"]


# --- every key is a label ---------------------------------------------------------------
def _alias_texts() -> st.SearchStrategy[str]:
    words = st.sampled_from(["DOW", "the Dow", "Tokyo stocks", "FTSE 100", "S&P 500",
                             "NYSE", "Wall Street", "Hang Seng index", "CAC 40", "Paris",
                             "London", "stocks", "shares", "Nikkei", "DAX", "<DOW>",
                             "Dow Chemical", "on the", "analysts", "fell", "20 points"])
    return st.lists(st.one_of(words, st.text(max_size=12)), max_size=12).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(_alias_texts(), _alias_texts())
def test_every_extracted_market_key_is_a_label(headline: str, body: str) -> None:
    found = BUILTIN.extract(headline, body)
    assert all(is_label(k) for k in found)
    assert len(found) == len(set(found))


def test_a_market_file_with_a_key_that_is_no_label_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("key,match,aliases\nbad:key,name,Acme index\n")
    with pytest.raises(ValueError, match="invalid row"):
        MarketExtractor.from_csv(f)


def test_a_market_file_with_an_unknown_rule_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("key,match,aliases\nACME 50,somewhere,Acme index\n")
    with pytest.raises(ValueError, match="invalid row"):
        MarketExtractor.from_csv(f)


def test_a_market_file_replaces_the_builtin_list(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("# comment lines are skipped\nkey,match,aliases\n"
                 "ASX 200,name,ASX 200|Australian stocks\nASX 200,city,Sydney\n")
    m = MarketExtractor.from_csv(f)
    assert m.keys == ("ASX 200",)
    assert m.extract("SYDNEY SHARES CLOSE LOWER", "The Dow fell.") == ["ASX 200"]


def test_alternation_of_no_aliases_matches_nothing() -> None:
    assert _alternation([]) is None


# --- the event carries them ---------------------------------------------------------------
ORIGIN = Origin(topic="news", partition=0, offset=1)


def event(kind: str, payload: dict[str, object]) -> Event:
    msg = decode(orjson.dumps(payload), kind, max_bytes=1 << 20)  # type: ignore[arg-type]
    ev = normalize(msg, ORIGIN, TickerExtractor.from_csv(), max_chars=10_000)  # type: ignore[arg-type]
    assert isinstance(ev, Event), ev
    return ev


def test_a_news_event_carries_the_markets_of_its_headline_and_body() -> None:
    ev = event("news", {"id": "n1", "source": "reuters", "headline": "TOKYO STOCKS PLUNGE",
                        "body": "The Dow Jones industrial average followed.",
                        "published_at": "1987-03-30T06:00:00Z"})
    assert ev.markets == ["Nikkei", "Dow Jones"]


def test_a_chat_line_is_read_as_a_headline() -> None:
    ev = event("chat", {"id": "c1", "channel": "desk", "author": "u1",
                        "text": "NYSE halts trading in all stocks",
                        "sent_at": "1987-03-30T06:00:00Z"})
    assert ev.markets == ["NYSE"]


def test_a_custom_market_list_reaches_the_event(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("key,match,aliases\nASX 200,name,Australian stocks\n")
    msg = decode(orjson.dumps({"id": "n1", "source": "wire", "headline": "AUSTRALIAN STOCKS UP",
                               "published_at": "1987-03-30T06:00:00Z"}), "news", max_bytes=4096)
    ev = normalize(msg, ORIGIN, TickerExtractor.from_csv(), max_chars=1000,  # type: ignore[arg-type]
                   markets=MarketExtractor.from_csv(f))
    assert isinstance(ev, Event) and ev.markets == ["ASX 200"]
