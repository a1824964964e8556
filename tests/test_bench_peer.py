"""The Quix Streams peer of `streamer bench pipeline` (issue 32).

End to end on a tiny load, through the bench's own harness (``Session``, ``hold``) against
the test Kafka and Redis: the peer app (``streamer.bench.peer_quix``) scores the tiny
bundle's INT8 student and counts every message it consumed in Redis exactly once, under
one topic, with the tickers the project's extractor finds; one latency per message.
Skipped only where Quix Streams is not installed (the ``peer`` extra, which ``dev``
brings). Without it, the bench says how to install it.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from servers import unavailable

from streamer.bench import peer
from streamer.bench.pipeline.errors import BenchError
from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.results import Plan
from streamer.bench.pipeline.variants import default_variants, variant
from streamer.ingest.tickers import TickerExtractor
from streamer.keys import parse_field
from streamer.settings import Settings


def test_the_quix_variants_parse_into_the_peer_s_checkpoint_options() -> None:
    q = variant("quix")
    assert (q.kind, q.args) == ("peer", ("--commit-every", "64", "--commit-interval-s", "0.05"))
    assert variant("quix-16x20ms").args == ("--commit-every", "16",
                                            "--commit-interval-s", "0.02")
    with pytest.raises(BenchError, match="quix"):
        variant("quix-16")


def test_without_quixstreams_the_bench_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from streamer.bench.pipeline.preflight import peer_model

    # As if not installed: neither in the venv nor in the peer's own folder.
    monkeypatch.setitem(sys.modules, "quixstreams", None)
    monkeypatch.setattr(peer, "peer_site", lambda: tmp_path / "no-peer-site")
    settings = Settings(_env_file=None)
    with pytest.raises(BenchError) as err:
        peer_model(settings)
    assert "pip install -e '.[peer]'" in str(err.value)
    monkeypatch.setattr(peer, "quix_version", lambda: None)
    names, left_out = default_variants(quick=True)
    assert "quix" not in names and left_out is not None
    assert "pip install -e '.[peer]'" in left_out


def test_with_quixstreams_the_defaults_include_the_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peer, "quix_version", lambda: peer.QUIX_PIN)
    assert default_variants(quick=True) == (["naive", "adaptive", "quix", "fixed-32x20ms"], None)


def test_the_per_message_step_reads_news_and_chat_like_the_worker() -> None:
    tickers = TickerExtractor.from_csv()
    news = peer.prepare({"headline": "Oil slumps", "body": "Exxon cuts output.",
                         "tickers": ["XOM", "NULL"]}, tickers)
    assert (news["text"], news["source"], news["tickers"], news["error"]) == (
        "Oil slumps. Exxon cuts output.", "news", ["XOM"], "")
    chat = peer.prepare({"text": "loving $AAPL <TCOR.O>"}, tickers)
    assert (chat["source"], chat["tickers"]) == ("chat", ["AAPL"])  # no Reuters tags in chat
    assert peer.prepare([1, 2], tickers)["error"] == "not a JSON object"
    assert peer.prepare({"text": ""}, tickers)["error"] == "neither news nor chat"


@pytest.mark.slow
async def test_the_quix_peer_counts_every_message_it_consumed_once(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path,
) -> None:
    if peer.quix_version() is None:  # asked of the metadata: nothing imported here
        unavailable(f"Quix Streams is not installed: {peer.INSTALL_HINT}")
    from streamer.bench.pipeline.hold import hold
    from streamer.bench.pipeline.processes import Session

    base = Settings(_env_file=None, KAFKA_BOOTSTRAP=kafka_bootstrap, REDIS_URL=redis_url,
                    data_dir=str(tmp_path / "data"), bundle_dir=str(tiny_bundle),
                    scorer="onnx")
    n, rate, seed = 120, 40.0, 11
    session = Session(base, variant("quix-16x20ms"), Plan(variants=["quix-16x20ms"]),
                      tmp_path / "logs", None, lambda _m: None)
    await session.start()
    try:
        # the same seed makes the same texts: what the step will send, to check against
        sent = Messages(seed).make(session.settings, n, rate)
        run = await hold(session, Messages(seed), rate=rate, n=n, phase="latency", load="low")
        assert run.sent == n and run.completed == n, session.tail()
        assert run.verdict is not None and run.verdict.sustainable, run.verdict
        # one latency per message, end to end from the intended send time
        assert run.e2e is not None and run.e2e.count == n
        assert 0 < run.e2e.p50_ms <= run.e2e.p99_ms <= run.e2e.max_ms < 60_000
        assert run.stages == []  # the peer has no stage stamps, only end to end

        r = session._redis()
        topics = await r.hgetall(peer.counts_key(session.settings, "topic"))  # type: ignore[misc]
        tickers = await r.hgetall(peer.counts_key(session.settings, "ticker"))  # type: ignore[misc]
        # nothing lost, nothing counted twice: one topic count per message consumed
        assert sum(int(v) for v in topics.values()) == n
        assert peer.ERROR_FIELD not in topics
        manifest = orjson.loads((tiny_bundle / "manifest.json").read_bytes())
        heads = {h["name"]: h["labels"] for h in manifest["heads"]}
        for name in topics:
            scope, label, metric, sentiment = parse_field(name)
            assert (scope, metric) == ("topic", "n")
            assert label in heads["topic"] and sentiment in heads["sentiment"]
        # every ticker mention the project's extractor finds, counted once
        extractor = TickerExtractor.from_csv()
        want: Counter[str] = Counter()
        for m in sent:
            want.update(peer.prepare(orjson.loads(m.value), extractor)["tickers"])
        got: Counter[str] = Counter()
        for name, count in tickers.items():
            scope, ticker, _, sentiment = parse_field(name)
            assert scope == "ticker" and sentiment in heads["sentiment"]
            got[ticker] += int(count)
        assert sum(want.values()) > 0 and got == want
    finally:
        await session.stop()
    assert session.proc is not None and session.proc.returncode is not None
