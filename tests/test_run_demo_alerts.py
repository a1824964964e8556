"""`streamer run-demo` reports the alert of the spike it injected, not another run's."""

from __future__ import annotations

from datetime import timedelta

from alert_support import NOW, record

from streamer.cli.run_demo_cmd import _matches
from streamer.produce.demo import SpikeLabel


def spike() -> SpikeLabel:
    return SpikeLabel(scope="ticker", key="XOM", start=NOW, end=NOW + timedelta(minutes=2),
                      messages=40)


def test_an_alert_decided_after_the_spike_started_is_its_alert() -> None:
    assert _matches(record(0), spike())  # decided 62 s into the spike


def test_an_earlier_runs_alert_on_the_same_key_is_not_this_spikes() -> None:
    earlier = record(0).model_copy(update={"detected_event_time": NOW - timedelta(seconds=116)})
    assert not _matches(earlier, spike())
