"""``streamer eval-alerts --offline``: the report and its exit code, no servers needed.

A small news stream (two hours, one topic, a burst of negative headlines at 90 min) is
scored by a keyword scorer (these tests judge the evaluation, not a model) and run
through the real bucketing and detector in-process.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner, Result
from servers import unavailable

from streamer.cli.main import cli
from streamer.evaluation import offline_run
from streamer.schemas import ModelRef
from streamer.score.base import BatchScores, Scorer, Source
from streamer.settings import get_settings

T0 = datetime(1987, 3, 2, 9, 0, tzinfo=UTC)
BURST_AT_MIN = 90
TOPIC = "Markets"


class KeywordScorer:
    """Negative when the text says stocks fell; every text about stocks is 'Markets'."""

    name = "keywords"
    model = ModelRef(bundle_id="0" * 16, bundle="test", variant="keywords")
    sentiment_labels = ("negative", "neutral", "positive")
    topic_labels = (TOPIC, "General News | Opinion")

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        sent = np.array([[0.9, 0.05, 0.05] if "FALL" in t.upper() else [0.05, 0.9, 0.05]
                         for t in texts], np.float32).reshape(-1, 3)
        topic = np.array([[0.9, 0.1] if "STOCK" in t.upper() else [0.1, 0.9] for t in texts],
                         np.float32).reshape(-1, 2)
        return BatchScores(self.sentiment_labels, self.topic_labels, sent, topic)

    def warmup(self) -> None:
        pass


def _news(i: int, at: datetime, headline: str) -> bytes:
    return orjson.dumps({"schema_version": 1, "id": f"t-{i}", "source": "wire",
                         "headline": headline,
                         "published_at": at.isoformat().replace("+00:00", "Z")})


def write_stream(path: Path) -> Path:
    """Six stock stories a minute (one in ten negative) for two hours, and 25 negative ones
    a minute for four minutes from BURST_AT_MIN."""
    lines: list[tuple[datetime, bytes]] = []
    for i in range(120 * 6):
        at = T0 + timedelta(seconds=10 * i + 3)
        text = "STOCKS FALL IN EARLY TRADE" if i % 10 == 0 else f"STOCK INDEX STEADY, ISSUE {i}"
        lines.append((at, _news(i, at, text)))
    for j in range(4 * 25):
        at = T0 + timedelta(minutes=BURST_AT_MIN, seconds=j * 2.4 + 1)
        lines.append((at, _news(10_000 + j, at, f"STOCKS FALL SHARPLY AS SELLING SPREADS {j}")))
    lines.sort()
    path.write_bytes(b"".join(v + b"\n" for _, v in lines))
    return path


def write_episodes(path: Path, start: datetime, minutes: float, key: str = TOPIC) -> Path:
    end = start + timedelta(minutes=minutes)
    stamp = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    path.write_bytes(orjson.dumps({
        "stream": "test", "labelled_by": "test",
        "episodes": [{"name": "stocks sell-off", "scope": "topic", "key": key,
                      "start": stamp(start), "end": stamp(end), "description": "",
                      "stories_in_scope": 100, "negative_stories": 100,
                      "evidence": [{"id": "t-10000", "published_at": stamp(start),
                                    "headline": "STOCKS FALL SHARPLY AS SELLING SPREADS 0"}]}],
        "rejected": []}))
    return path


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    # The CLI reads settings once per process (get_settings is cached): a run here must
    # not leave its settings to the next test in this process.
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scorer: Scorer = KeywordScorer()
    monkeypatch.setattr(offline_run, "load_default_scorer", lambda settings: scorer)
    return write_stream(tmp_path / "stream.jsonl")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["eval-alerts", *args, "--offline"])


def test_without_labels_the_report_says_recall_was_not_measured_never_targets_met(
        stream: Path) -> None:
    out = run(str(stream))
    assert out.exit_code == 0, out.output
    assert "recall not measured" in out.output and "recall NOT MEASURED" in out.output
    assert "targets met" not in out.output
    assert "Every alert, with its evidence" in out.output  # false alerts still judged


def test_a_labelled_episode_that_is_missed_makes_the_command_exit_1(
        stream: Path, tmp_path: Path) -> None:
    calm = write_episodes(tmp_path / "episodes.json", T0 + timedelta(minutes=20), 10)
    out = run(str(stream), "--labels", str(calm))
    assert out.exit_code == 1, out.output
    assert "MISSED" in out.output and "targets NOT met" in out.output


def test_a_labelled_episode_that_is_caught_is_reported_with_its_delay(
        stream: Path, tmp_path: Path) -> None:
    burst = write_episodes(tmp_path / "episodes.json", T0 + timedelta(minutes=BURST_AT_MIN), 4)
    out = run(str(stream), "--labels", str(burst), "--out", str(tmp_path / "result.json"))
    result = orjson.loads((tmp_path / "result.json").read_bytes())
    (ep,) = result["real"]["episodes"]
    assert ep["caught"] and 0 <= ep["delay_s"] <= 60, out.output
    assert result["targets"] == "real" and result["mode"] == "offline"


def test_synthetic_targets_without_spikes_judge_false_alerts_but_not_recall(
        stream: Path) -> None:
    out = run(str(stream), "--targets", "synthetic")
    assert "no labelled spikes" in out.output
    assert "targets met" not in out.output
    assert "false alerts (topic)" in out.output


def test_png_writes_a_timeline_for_the_labelled_key(stream: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        # Setup installs the charts extra for the tests: CI must not go green without it.
        unavailable("matplotlib is not installed (pip install -e '.[charts]')")
    burst = write_episodes(tmp_path / "episodes.json", T0 + timedelta(minutes=BURST_AT_MIN), 4)
    out = run(str(stream), "--labels", str(burst), "--png", str(tmp_path / "png"))
    png = tmp_path / "png" / f"timeline-topic-{TOPIC}.png"
    assert png.is_file(), out.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_matplotlib_names_the_charts_extra_before_any_scoring(
        stream: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(offline_run, "load_default_scorer", _no_scoring)
    out = run(str(stream), "--png", str(tmp_path / "png"))
    assert out.exit_code == 1
    assert "pip install -e '.[charts]'" in out.output
    assert "Traceback" not in out.output


def _no_scoring(settings: object) -> Scorer:
    raise AssertionError("scored before checking that the charts can be drawn")


def test_an_unreadable_label_file_is_an_error_that_says_what_to_do(
        stream: Path, tmp_path: Path) -> None:
    bad = tmp_path / "labels.json"
    bad.write_text('{"spikes": []}')
    out = run(str(stream), "--labels", str(bad))
    assert out.exit_code == 65  # input data malformed (README.md, "Exit codes")
    assert "neither a spikes file" in out.output and "Traceback" not in out.output
