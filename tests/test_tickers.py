"""Ticker extraction from cashtags, bare symbols and company names."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.ingest import TickerExtractor


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
