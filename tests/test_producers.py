"""Replay files and the demo generator, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from streamer.produce.demo import BAD_KINDS, DemoConfig, DemoGenerator, labelled_rows
from streamer.produce.replay import count_lines, to_messages


def test_jsonl_lines_become_messages_and_malformed_lines_pass_through_raw(
    tmp_path: Path,
) -> None:
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"id": "a1", "text": "x"}\n{not json\n\n[1]\n')
    msgs = list(to_messages(f, "chat", rebase=False))
    assert [m.key for m in msgs] == [b"a1", None, None]
    assert msgs[1].value == b"{not json" and msgs[2].value == b"[1]"
    assert count_lines(f) == 3


def test_csv_rows_become_json_with_ticker_lists(tmp_path: Path) -> None:
    f = tmp_path / "in.csv"
    f.write_text("id,source,headline,tickers,published_at\n"
                 "n1,wire,Oil falls,XOM;CVX,2026-01-01T00:00:00Z\n")
    (msg,) = to_messages(f, "news", rebase=False)
    assert orjson.loads(msg.value)["tickers"] == ["XOM", "CVX"]
    assert count_lines(f) == 1


def test_rebase_shifts_every_event_time_by_the_same_amount(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"id": "a", "sent_at": "2020-01-01T00:00:00+00:00"}\n'
                  b'{"id": "b", "sent_at": "2020-01-01T00:00:30+00:00"}\n')
    a, b = (orjson.loads(m.value) for m in to_messages(f, "chat", rebase=True))
    ta, tb = (datetime.fromisoformat(x["sent_at"]) for x in (a, b))
    assert abs((ta - datetime.now(UTC)).total_seconds()) < 5
    assert tb - ta == timedelta(seconds=30)


def test_demo_is_reproducible_from_its_seed() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    one = DemoGenerator(DemoConfig(seed=3, start=start)).generate()[0]
    two = DemoGenerator(DemoConfig(seed=3, start=start)).generate()[0]
    assert [m.value for m in one] == [m.value for m in two]


def test_demo_spike_is_labelled_and_made_of_negative_news_on_its_topic() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    msgs, labels = DemoGenerator(DemoConfig(start=start, spike_at_min=5, spike_minutes=2,
                                            spike_per_min=50)).generate()
    topic_label = next(lb for lb in labels if lb.scope == "topic")
    assert topic_label.start == start + timedelta(minutes=5)
    inside = [m for m in msgs if topic_label.start <= m.event_time < topic_label.end
              and m.topic == "Energy | Oil" and "XOM" in m.tickers]
    assert len(inside) >= topic_label.messages
    assert sum(m.sentiment == "negative" for m in inside) >= topic_label.messages


def test_demo_bad_fraction_covers_every_kind_of_bad_input() -> None:
    msgs, _ = DemoGenerator(DemoConfig(bad_fraction=0.05)).generate()
    bad = [m for m in msgs if m.bad]
    assert abs(len(bad) / len(msgs) - 0.05) < 0.01
    assert {m.bad for m in bad} == set(BAD_KINDS)


def test_spike_news_on_a_ticker_names_that_tickers_company() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    msgs, labels = DemoGenerator(DemoConfig(start=start, spike_at_min=5, spike_minutes=2,
                                            spike_per_min=50)).generate()
    lb = next(lb for lb in labels if lb.scope == "ticker")
    spike = [orjson.loads(m.value)["headline"] for m in msgs
             if lb.start <= m.event_time < lb.end and m.tickers == ("XOM",)
             and m.sentiment == "negative" and m.kind == "news"]
    # Every negative Energy | Oil template names its company.
    assert spike and all("Exxon Mobil" in h for h in spike)


def test_labelled_rows_carry_what_each_message_was_generated_to_be() -> None:
    msgs, _ = DemoGenerator(DemoConfig(bad_fraction=0.05, minutes=3)).generate()
    rows = labelled_rows(msgs)
    good = [m for m in msgs if not m.bad]
    assert len(rows["sentiment"]) == len(good)
    assert len(rows["topic"]) == sum(m.kind == "news" for m in good)
    assert {label for _, label in rows["sentiment"]} == {"negative", "neutral", "positive"}
    assert all(text.strip() for text, _ in rows["sentiment"])


def _ids(cfg: DemoConfig) -> set[str]:
    out = set()
    for m in DemoGenerator(cfg).generate()[0]:
        if m.bad is None:  # the malformed ones may have no id
            out.add(orjson.loads(m.value)["id"])
    return out


def test_two_demo_runs_on_one_stack_send_new_ids_not_replays() -> None:
    from streamer.cli.produce_cmd import demo_config
    from streamer.settings import Settings

    settings = Settings(_env_file=None)
    first, second = (demo_config(settings, minutes=1.0) for _ in range(2))
    assert first.run_tag != second.run_tag
    assert _ids(first) and not _ids(first) & _ids(second)
    # Without a tag the ids depend on the seed alone (the alert evaluation's streams).
    assert _ids(DemoConfig(minutes=1.0)) == _ids(DemoConfig(minutes=1.0))
