"""Ingest stage: raw Kafka bytes -> validated input -> normalized event (or a dead letter)."""

from streamer.ingest.decode import DecodeFailure, decode
from streamer.ingest.markets import MarketExtractor
from streamer.ingest.normalize import normalize
from streamer.ingest.tickers import TickerExtractor

__all__ = ["DecodeFailure", "MarketExtractor", "TickerExtractor", "decode", "normalize"]
