"""Prometheus metrics of the alerting side of a worker (in the worker's registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0)


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.claimed = Counter("streamer_alerts_claimed", "Alerts this worker claimed",
                               ["kind", "severity"], registry=r)
        self.delivered = Counter("streamer_alerts_delivered", "Alerts a sink acknowledged",
                                 ["sink"], registry=r)
        self.delivery_errors = Counter(
            "streamer_alert_delivery_errors", "Failed delivery attempts (retried)", ["sink"],
            registry=r,
        )
        self.webhook_failed = Counter(
            "streamer_alert_webhook_failed", "Webhook deliveries given up after every retry",
            registry=r,
        )
        self.conflicts = Counter(
            "streamer_alert_commit_conflicts",
            "Evaluations discarded because another worker committed those buckets first",
            registry=r,
        )
        self.errors = Counter("streamer_alert_errors", "Alerting errors (stream unaffected)",
                              ["stage"], registry=r)
        self.buckets = Counter("streamer_alert_buckets_evaluated", "Closed buckets evaluated",
                               registry=r)
        self.latency = Histogram(
            "streamer_alert_latency_seconds",
            "Fired alert appended to the alerts topic (Kafka ack) minus the record "
            "timestamp of the spike's first negative message",
            buckets=_LATENCY_BUCKETS_S, registry=r,
        )
        self.watermark_lag = Gauge(
            "streamer_alert_watermark_lag_seconds", "Wall clock minus the event-time watermark",
            registry=r,
        )
