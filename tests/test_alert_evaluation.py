"""Judging alerts, pure: synthetic spikes (streamer.evaluation.judge), real news episodes
(streamer.evaluation.real), and the label and review files (streamer.evaluation.labels)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from streamer.detect.core import Buckets
from streamer.evaluation.judge import Detected, evaluate
from streamer.evaluation.labels import LabelsError, Review, SpanLabel, read_labels, read_reviews
from streamer.evaluation.real import judge_real
from streamer.evaluation.rows import AlertRow, EvidenceRow
from streamer.evaluation.synthetic import write_labels
from streamer.produce.demo import SpikeLabel

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SPAN = (T0.timestamp(), T0.timestamp() + 6 * 3600)


def label(at_min: float, *, key: str = "XOM", minutes: float = 1.5, messages: int = 45
          ) -> SpikeLabel:
    start = T0 + timedelta(minutes=at_min)
    return SpikeLabel(scope="ticker", key=key, start=start,
                      end=start + timedelta(minutes=minutes), messages=messages)


def fired(at_s: float, key: str = "XOM", kind: str = "fired") -> Detected:
    return Detected(f"a-{key}-{at_s}", kind, "ticker", key, T0.timestamp() + at_s, "warning")


def test_a_spike_is_caught_by_the_first_alert_on_its_key_with_the_delay_from_onset() -> None:
    lb = label(60)
    onset = 3600.0
    report = evaluate([lb], [fired(onset + 30), fired(onset + 12), fired(onset + 5, key="CVX")],
                      span=SPAN, warmup_s=300)
    (s,) = report.spikes
    assert s.caught and s.delay_s == 12.0 and s.per_min == 30.0


def test_an_alert_after_the_matching_grace_misses_the_spike() -> None:
    lb = label(60)
    report = evaluate([lb], [fired(3600 + 90 + 200)], span=SPAN, warmup_s=300,
                      match_after_s=90)
    assert not report.spikes[0].caught


def test_fired_alerts_far_from_every_spike_are_false_and_calm_hours_exclude_spikes() -> None:
    lb = label(60)
    report = evaluate([lb], [fired(3 * 3600), fired(3600 + 400, key="BP")], span=SPAN,
                      warmup_s=300, match_after_s=90, calm_gap_s=900)
    assert [f.detected_s - T0.timestamp() for f in report.false_alerts] == [3 * 3600]
    busy = 300 + 90 + 90 + 900  # warm-up, then [onset - 90, end + 900]
    assert abs(report.calm_hours - (6 * 3600 - busy) / 3600) < 1e-9


def _buckets(key: str, before: tuple[int, int], during: tuple[int, int], onset: int
             ) -> Buckets:
    """One bucket per minute before the onset with ``before`` counts, ``during`` after."""
    out: Buckets = {}
    for b in range(onset - 1800, onset, 60):
        out[b] = {("ticker", key): before}
    for b in range(onset, onset + 90, 10):
        out[b] = {("ticker", key): during}
    return out


def test_a_spike_below_three_times_the_baseline_share_is_not_covered_by_the_target() -> None:
    onset = int(T0.timestamp()) + 3600
    strong, weak = label(60), label(60, key="AAPL")
    buckets = _buckets("XOM", (10, 1), (10, 6), onset)  # 10% -> 60%: 6x
    for b, keys in _buckets("AAPL", (10, 3), (10, 6), onset).items():  # 30% -> 60%: 2x
        buckets.setdefault(b, {}).update(keys)
    report = evaluate([strong, weak], [], span=SPAN, warmup_s=300, buckets=buckets)
    xom, aapl = report.spikes
    assert xom.baseline_share == 0.1 and xom.spike_share == 0.6
    assert abs((aapl.ratio or 0) - 2.0) < 1e-9
    assert [s.key for s in report.qualifying()] == ["XOM"]


def test_without_counts_only_the_rate_decides_coverage() -> None:
    report = evaluate([label(60, messages=20), label(120, messages=45)], [], span=SPAN,
                      warmup_s=300)
    assert [s.per_min for s in report.qualifying()] == [30.0]


def test_an_earlier_spike_on_the_same_key_does_not_count_as_baseline() -> None:
    onset = int(T0.timestamp()) + 3600
    first, second = label(40), label(60)  # the first spike lies in the second's baseline
    buckets = _buckets("XOM", (10, 1), (10, 6), onset)
    for b in range(onset - 1200, onset - 1200 + 90, 10):
        buckets[b] = {("ticker", "XOM"): (10, 10)}
    report = evaluate([first, second], [], span=SPAN, warmup_s=300, buckets=buckets)
    assert report.spikes[1].baseline_share == 0.1


# --- labels: one reader, two shapes ------------------------------------------------------------
def _episodes_doc() -> dict[str, object]:
    return {
        "stream": "reuters-stream/1987-02-26_04-07.jsonl",
        "labelled_by": "a reader of the headlines",
        "episodes": [{
            "name": "US-Japan chip tariffs", "scope": "topic", "key": "Markets",
            "start": "1987-03-27T14:00:00Z", "end": "1987-03-28T02:00:00Z",
            "description": "tariffs on Japanese electronics announced",
            "stories_in_scope": 40, "negative_stories": 25,
            "evidence": [
                {"id": "reuters-9001", "published_at": "1987-03-27T15:10:00Z",
                 "headline": "U.S. TO IMPOSE TARIFFS ON JAPANESE ELECTRONICS"},
                {"id": "reuters-9000", "published_at": "1987-03-27T14:40:00Z",
                 "headline": "TOKYO STOCKS FALL ON TRADE FEARS"},
            ],
        }],
        "rejected": [{"name": "a quiet Friday", "why": "no negative news"}],
    }


def test_the_label_reader_takes_an_episodes_file_as_real_news(tmp_path: Path) -> None:
    path = tmp_path / "episodes.json"
    path.write_bytes(orjson.dumps(_episodes_doc()))
    labels = read_labels(path)
    (ep,) = labels.spans
    assert labels.kind == "real" and labels.rejected == 1
    assert (ep.scope, ep.key, ep.name) == ("topic", "Markets", "US-Japan chip tariffs")
    assert ep.first_story == datetime(1987, 3, 27, 14, 40, tzinfo=UTC)  # earliest evidence
    assert ep.story_ids == {"reuters-9000", "reuters-9001"}


def test_the_label_reader_takes_a_spikes_file_as_synthetic(tmp_path: Path) -> None:
    path = tmp_path / "spikes.json"
    write_labels(path, [label(60), label(120, key="CVX")])
    labels = read_labels(path)
    assert labels.kind == "synthetic"
    assert [(s.scope, s.key, s.messages) for s in labels.spans] == [("ticker", "XOM", 45),
                                                                   ("ticker", "CVX", 45)]


def test_an_episodes_file_without_episodes_is_real_news_with_nothing_labelled(
        tmp_path: Path) -> None:
    path = tmp_path / "episodes.json"
    path.write_bytes(orjson.dumps({"stream": "x", "episodes": []}))
    labels = read_labels(path)
    assert labels.kind == "real" and labels.empty


def test_a_label_file_of_neither_shape_is_refused_with_both_shapes_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_bytes(orjson.dumps({"spikes": []}))
    with pytest.raises(LabelsError, match=r"spikes file.*episodes file"):
        read_labels(path)


def test_an_episode_ending_before_it_starts_is_refused_with_its_name(tmp_path: Path) -> None:
    doc = _episodes_doc()
    doc["episodes"][0]["end"] = "1987-03-27T13:00:00Z"  # type: ignore[index]
    path = tmp_path / "episodes.json"
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(LabelsError, match="US-Japan chip tariffs"):
        read_labels(path)


# --- real news: episodes, the budget and reviews ---------------------------------------------
R0 = datetime(1987, 3, 1, tzinfo=UTC)
WEEK = (R0.timestamp(), R0.timestamp() + 7 * 86_400)


def row(at_h: float, *, scope: str = "topic", key: str = "Markets", kind: str = "fired",
        severity: str = "warning", story: str = "reuters-1") -> AlertRow:
    t = R0 + timedelta(hours=at_h)
    episode = f"{scope}:{key}:{int(t.timestamp())}"
    return AlertRow(
        alert_id=f"{episode}:{kind}", episode_id=episode, kind=kind, scope=scope, key=key,
        severity=severity, detected=t, window_start=t - timedelta(minutes=15), window_end=t,
        messages=10, negatives=7, negative_share=0.7, baseline_share=0.2, z=5.0,
        evidence=[EvidenceRow(event_id=story, event_time=t, headline="STOCKS FALL",
                              negative_prob=0.9)])


def episode(start_h: float, end_h: float, *, key: str = "Markets", first_h: float | None = None,
            stories: frozenset[str] = frozenset()) -> SpanLabel:
    return SpanLabel(scope="topic", key=key, start=R0 + timedelta(hours=start_h),
                     end=R0 + timedelta(hours=end_h), name=f"{key} {start_h:g}h",
                     first_story=None if first_h is None else R0 + timedelta(hours=first_h),
                     story_ids=stories)


def test_an_episode_is_caught_by_an_alert_on_its_key_with_the_delay_from_its_first_story(
        ) -> None:
    report = judge_real([episode(10, 20, first_h=11)], [row(12)], span=WEEK)
    (e,) = report.episodes
    assert e.caught and e.delay_s == 3600.0
    assert report.alerts[0].standing == "episode"


def test_an_alert_on_another_key_outside_the_episode_counts_until_reviewed() -> None:
    report = judge_real([episode(10, 20)], [row(12), row(50, key="Energy")], span=WEEK,
                        scope_kinds=("topic",))
    (topic,) = report.kinds
    assert (topic.outside, topic.unreviewed, topic.counted) == (1, 1, 1)
    assert report.unreviewed == 1


def test_a_reviewed_file_takes_alerts_read_as_negative_news_off_the_count() -> None:
    alerts = [row(30), row(50), row(70)]
    before = judge_real([], alerts, span=WEEK, scope_kinds=("topic",))
    reviews = {alerts[0].episode_id: Review(verdict="negative news", note="oil slump"),
               alerts[1].episode_id: Review(verdict="not negative", note="routine results")}
    after = judge_real([], alerts, span=WEEK, scope_kinds=("topic",), reviews=reviews)
    assert (before.kinds[0].counted, before.kinds[0].unreviewed) == (3, 3)
    assert (after.kinds[0].counted, after.kinds[0].unreviewed) == (2, 1)
    assert after.kinds[0].negative_news == 1 and after.kinds[0].not_negative == 1


def test_more_unconfirmed_alerts_than_two_a_week_break_the_budget_of_their_scope_kind() -> None:
    report = judge_real([], [row(h) for h in (10, 40, 70)], span=WEEK,
                        scope_kinds=("topic", "ticker"))
    assert {k.scope: k.within for k in report.kinds} == {"ticker": True, "topic": False}
    assert not report.budget_met


def test_an_alert_citing_a_story_of_an_episode_belongs_to_it_whatever_its_key() -> None:
    report = judge_real([episode(10, 20, stories=frozenset({"reuters-77"}))],
                        [row(15, scope="market", key="NYSE", story="reuters-77")], span=WEEK)
    (a,) = report.alerts
    assert a.standing == "shared story" and a.episode == "Markets 10h"
    (e,) = report.episodes  # seen on another key, but not caught where it was labelled
    assert not e.caught and e.cited_by == ["market NYSE 03-01 15:00"]


def test_scope_kinds_come_from_the_alerts_and_labels_not_a_fixed_list() -> None:
    report = judge_real([episode(10, 20)], [row(30, scope="stream", key="news")], span=WEEK,
                        scope_kinds=("market",))
    assert [k.scope for k in report.kinds] == ["market", "stream", "topic"]


def test_an_escalation_is_part_of_its_alert_episode_not_another_alert() -> None:
    fired, escalated = row(30), row(30.1, kind="escalated", severity="major")
    escalated = escalated.model_copy(update={"episode_id": fired.episode_id})
    report = judge_real([], [fired, escalated], span=WEEK, scope_kinds=("topic",))
    (a,) = report.alerts
    assert a.peak_severity == "major" and report.kinds[0].alerts == 1


def test_a_reviews_file_with_an_unknown_verdict_is_refused_with_the_expected_shape(
        tmp_path: Path) -> None:
    path = tmp_path / "reviews.json"
    path.write_bytes(orjson.dumps({"topic:Markets:1": {"verdict": "meh"}}))
    with pytest.raises(LabelsError, match="negative news"):
        read_reviews(path)
    path.write_bytes(orjson.dumps({"topic:Markets:1": {"verdict": "not negative",
                                                       "note": "routine results"}}))
    assert read_reviews(path)["topic:Markets:1"].verdict == "not negative"


def test_the_committed_reviews_of_the_1987_stream_read_and_name_alert_episodes() -> None:
    path = Path(__file__).parent / "data" / "reuters-1987" / "reviews.json"
    reviews = read_reviews(path)
    assert reviews
    for episode_id, review in reviews.items():
        scope, fired = episode_id.split(":", 1)[0], episode_id.rsplit(":", 1)[1]
        assert scope in {"topic", "ticker", "market", "stream"} and fired.isdigit()
        assert review.note, f"{episode_id}: a verdict says why"
