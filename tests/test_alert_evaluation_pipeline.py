"""``streamer eval-alerts`` end to end through Kafka, a worker and Redis, on a labelled
slice of real news (twelve hours of the spring 1987 Reuters stream around the labelled
Wall Street sell-off of 7 April).

What is checked is the evaluation through the real pipeline: the replay, the alerts read
back from the alerts topic, the episode judged, the same alerts as the offline detector,
and an exit code that follows the verdict. Whether the detector catches the episode is
a benchmark (docs/BENCHMARKS.md), not this test's business: the worker scores with the
Naive Bayes baseline here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from servers import unavailable

from streamer.cli.main import cli
from streamer.settings import get_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    # The CLI reads settings once per process (get_settings is cached): another test's
    # run in this process must not hand this one its Kafka and Redis, nor this one its.
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()

REPO = Path(__file__).resolve().parents[1]
REUTERS = REPO.parent / "shared" / "data" / "reuters-stream" / "1987-02-26_04-07.jsonl"
EPISODES = REPO / "tests" / "data" / "reuters-1987" / "episodes.json"
EPISODE = "wall-street-selloff-7apr"
SLICE = ('"published_at": "1987-04-07T12:', '"published_at": "1987-04-08T00:')


def _slice(out: Path) -> Path:
    """The stream's lines from 7 Apr 12:00 to 8 Apr 00:00 UTC, in order."""
    keep, inside = [], False
    with REUTERS.open("rb") as fh:
        for raw in fh:
            line = raw.decode()
            if SLICE[0] in line:
                inside = True
            if SLICE[1] in line:
                break
            if inside:
                keep.append(line)
    out.write_text("".join(keep))
    return out


def _episode(out: Path) -> Path:
    doc = orjson.loads(EPISODES.read_bytes())
    doc["episodes"] = [e for e in doc["episodes"] if e["name"] == EPISODE]
    out.write_bytes(orjson.dumps(doc))
    return out


@pytest.mark.slow
def test_eval_alerts_judges_a_labelled_real_slice_through_kafka_a_worker_and_redis(
        kafka_bootstrap: str, redis_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if not REUTERS.is_file():
        unavailable(f"the Reuters stream is not at {REUTERS}")
    for name, value in {
        "KAFKA_BOOTSTRAP": kafka_bootstrap, "REDIS_URL": redis_url,
        "STREAMER_DATA_DIR": str(tmp_path / "data"), "STREAMER_SCORER": "baseline",
    }.items():
        monkeypatch.setenv(name, value)
    stream, labels = _slice(tmp_path / "slice.jsonl"), _episode(tmp_path / "episodes.json")
    out = CliRunner().invoke(cli, [
        "eval-alerts", str(stream), "--labels", str(labels), "--speed", "0",
        "--timeout", "240", "--out", str(tmp_path / "result.json"),
    ])
    assert (tmp_path / "result.json").is_file(), out.output
    result = orjson.loads((tmp_path / "result.json").read_bytes())
    assert result["mode"] == "pipeline" and result["targets"] == "real"
    assert [e["name"] for e in result["real"]["episodes"]] == [EPISODE]
    assert result["offline_match"] is True, out.output  # the pipeline's alerts, no others
    assert "Labelled episodes" in out.output
    assert ("targets NOT met" if result["failed"] else "targets met") in out.output
    assert out.exit_code == (1 if result["failed"] else 0), out.output
