"""The peer pipeline's shared parts: what the harness and the app both need, no Quix Streams.

The peer is the same job as this project's worker written the way Quix Streams' own
documentation recommends (``streamer.bench.peer_quix``, the app itself). This module
holds what needs no ``quixstreams`` import, so the harness can start, read and clean up a
peer, and say how to install it, on a machine without the ``peer`` extra:

* its Redis keys: ``<prefix>:peer:topic`` and ``<prefix>:peer:ticker``, hashes of counts
  with fields ``topic|<topic>|n|<sentiment>`` and ``ticker|<ticker>|n|<sentiment>``
  (``streamer.keys.field``); every message adds one to exactly one topic field, so the
  topic hash's sum is the messages done (a message that is neither news nor chat counts
  under ``error``); ``<prefix>:peer:ready`` once it is consuming every input partition;
* the per-message step (``prepare``): the JSON value's text and tickers, through the
  project's own text rule and ticker extractor, so the peer extracts what the worker does;
* whether Quix Streams is installed (in the venv, or in the peer's own folder beside it,
  :func:`peer_site`), and which version.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Literal, TypedDict

from streamer.ingest.tickers import TickerExtractor
from streamer.keys import Keyspace
from streamer.settings import Settings, get_settings

# The version the `peer` extra pins (pyproject.toml); the report names the installed one.
QUIX_PIN = "3.28.1"
INSTALL_HINT = ("install it beside the venv: scripts/setup.sh does (.venv/bin/pip install "
                f"--target .venv-peer quixstreams=={QUIX_PIN}; STREAMER_BENCH_PEER_SITE "
                "names another folder), or the peer extra into the venv: .venv/bin/pip "
                "install -e '.[peer]' (it moves confluent-kafka to 2.12 and pydantic to 2.13)")
ERROR_FIELD = "error"


class PeerUnavailable(RuntimeError):
    """Quix Streams is not installed: the message says how to install it."""


def peer_site() -> Path:
    """The folder setup.sh installs Quix Streams into apart from the venv (it may not exist)."""
    return get_settings().stack.bench_peer_site or Path(f"{sys.prefix}-peer")


def peer_pythonpath(current: str | None) -> str | None:
    """The peer process's PYTHONPATH: :func:`peer_site` first when it exists."""
    site = peer_site()
    if not site.is_dir():
        return current
    return f"{site}:{current}" if current else str(site)


def quix_version() -> str | None:
    """The installed Quix Streams version (the peer's own folder first, then the venv);
    None when it is not installed."""
    site = peer_site()
    if site.is_dir():
        for dist in metadata.distributions(name="quixstreams", path=[str(site)]):
            return str(dist.version)
    try:
        return metadata.version("quixstreams")
    except metadata.PackageNotFoundError:
        return None


def require_quixstreams() -> str:
    """The installed version, or PeerUnavailable saying how to install it."""
    import importlib.util

    version = quix_version()
    try:
        found = (importlib.util.find_spec("quixstreams") is not None
                 or (peer_site() / "quixstreams").is_dir())
    except (ImportError, ValueError):  # a module set to None in sys.modules, or broken
        found = False
    if version is None or not found:
        raise PeerUnavailable(f"the Quix Streams peer needs the quixstreams package: "
                              f"{INSTALL_HINT}")
    return version


def counts_key(settings: Settings, scope: Literal["topic", "ticker"]) -> str:
    return Keyspace(settings.redis.key_prefix).peer(scope)


def ready_key(settings: Settings) -> str:
    return Keyspace(settings.redis.key_prefix).peer("ready")


class Prepared(TypedDict):
    """One message after the per-message step: what the batched sink scores and counts."""

    text: str
    source: Literal["news", "chat"]
    tickers: list[str]
    error: str


def prepare(value: object, tickers: TickerExtractor) -> Prepared:
    """Text, source and tickers of a news item or chat message (a JSON object); for
    anything else, ``error`` says why and the rest is empty."""
    from streamer.ingest.normalize import news_text

    if not isinstance(value, Mapping):
        return Prepared(text="", source="chat", tickers=[], error="not a JSON object")
    headline, chat = value.get("headline"), value.get("text")
    if isinstance(headline, str) and headline:
        body = value.get("body")
        text = news_text(headline, body if isinstance(body, str) else None)
        given = value.get("tickers")
        given = [t for t in given if isinstance(t, str)] if isinstance(given, list) else []
        return Prepared(text=text, source="news", error="",
                        tickers=tickers.extract(text, given=given, reuters_tags=True))
    if isinstance(chat, str) and chat:
        return Prepared(text=chat, source="chat", error="",
                        tickers=tickers.extract(chat, reuters_tags=False))
    return Prepared(text="", source="chat", tickers=[], error="neither news nor chat")
