"""What an alert shows a person: its evidence and the sentence that says why it fired."""

from __future__ import annotations

from streamer.alert.engine import explain, span
from streamer.alert.windows import EvidenceItem, top_evidence
from streamer.detect.core import Decision, WindowStats


def item(i: int, snippet: str, p: float) -> EvidenceItem:
    return EvidenceItem(f"id-{i}", 1_000.0 * i, "reuters", "news", snippet, p)


def test_a_story_re_sent_on_the_wire_counts_once_in_the_evidence() -> None:
    items = [item(1, "TOKYO STOCKS PLUNGE ON TRADE FEARS", 0.90),
             item(2, "Tokyo stocks plunge on trade fears.", 0.95),  # the same story re-sent
             item(3, "DOLLAR FALLS TO RECORD LOW AGAINST YEN", 0.80)]
    got = top_evidence(items, 5)
    assert [e.event_id for e in got] == ["id-1", "id-3"]  # the earliest copy stands for it


def test_evidence_keeps_the_most_negative_stories_in_time_order() -> None:
    items = [item(i, f"story {i}", p) for i, p in enumerate([0.5, 0.9, 0.7, 0.95])]
    assert [e.event_id for e in top_evidence(items, 2)] == ["id-1", "id-3"]


def _decision(window_s: int, confirm_s: int | None) -> Decision:
    stats = WindowStats(messages=12, negatives=9, share=0.75, baseline_share=0.18,
                        baseline_messages=3.0, z=5.2, quiet=False, burst_p=1.0)
    return Decision("fired", "market", "Nikkei", 3_600, 0, 3_610, stats, 5.2, "major",
                    3_600, 1_800, "share", window_s, confirm_s)


def test_why_names_the_window_the_baseline_the_test_and_the_confirming_window() -> None:
    text = explain(_decision(21_600, 3_600))
    assert text == ("9 of 12 messages negative (75%) over the last 6 h against a baseline "
                    "of 18%: share test z 5.2; confirmed by the last 1 h.")


def test_window_lengths_read_as_people_write_them() -> None:
    assert [span(s) for s in (10, 60, 900, 3_600, 21_600)] == [
        "10 s", "60 s", "15 min", "1 h", "6 h"]
