"""The dashboard's recent-alerts list: filled by the atomic claim in Redis, newest first."""

from __future__ import annotations

from datetime import timedelta

from alert_support import NOW, alert_settings, claim, record

from streamer.aggregate import TrendStore
from streamer.alert.store import RECENT_EVIDENCE, AlertStore
from streamer.dashboard import alerts_data, trends_data
from streamer.schemas.alerts import Evidence


def with_evidence(i: int, n: int) -> Evidence:
    return Evidence(event_id=f"e{i}-{n}", event_time=NOW + timedelta(seconds=n), source="wire",
                    kind="news", snippet=f"Crude slides {n}", negative_prob=0.9)


async def test_claimed_alerts_show_newest_first_once_each_with_short_evidence(
    redis_url: str,
) -> None:
    settings = alert_settings(redis_url)
    trends = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        store = AlertStore(trends.redis, settings.redis.key_prefix,
                           claim_ttl_s=settings.alerts.claim_ttl_s)
        first = record(0).model_copy(update={"evidence": [with_evidence(0, n)
                                                          for n in range(10)]})
        await claim(store, [first], webhook=False)
        await claim(store, [record(1, key="CVX"), record(1, key="CVX", kind="resolved")],
                    webhook=False)
        # a repeat of an already claimed alert is refused, so it is not listed twice
        cursor = await store.cursor()
        again = await store.commit(expected_cursor=cursor, cursor=(cursor or 0) + 10, origin=0,
                                   changed={}, removed=[], alerts=[first], webhook=False,
                                   webhook_max_pending=10)
        assert again.committed and not again.claimed

        recent = await store.recent()
        assert [(r.key, r.kind) for r in recent] == [("CVX", "resolved"), ("CVX", "fired"),
                                                      ("XOM", "fired")]
        assert len(recent[-1].evidence) == RECENT_EVIDENCE
        rows = (await alerts_data(store, limit=2))["alerts"]
        assert len(rows) == 2 and rows[0]["kind"] == "resolved"
        assert rows[1]["message"].startswith("negative spike: 12 of 20 messages negative")
        assert "baseline 10%" in rows[1]["message"]
        empty = await trends_data(trends, bucket_seconds=settings.aggregate.bucket_seconds)
        assert empty["topics"] == [] and empty["end"] is None  # nothing aggregated yet
    finally:
        await trends.close()
