"""Negative-spike alerts in the worker: one hook on the batch path, two background tasks.

Wiring: ``create_app`` calls ``register_alerting`` once and hands the hook to the scoring
agents, which call ``await hook.after_batch(out)`` once a batch is in Redis and Kafka.

``after_batch`` costs one Redis round trip and never raises. The evaluator task steps
the event-time detector over closed buckets and claims alerts; the delivery task sends
them from the Redis outbox to ``settings.topics.alerts`` (and the optional webhook).
Alerts are at least once: consumers drop repeats by ``alert_id``.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from agents.runtime import Runtime
from streamer.alert.service import AlertService
from streamer.batch import BatchOutput

log = logging.getLogger(__name__)
HOOK_ATTR = "_streamer_alert_hook"


class AlertHook:
    """What the scoring agent calls after each batch; a no-op when alerts are disabled."""

    def __init__(self, service: AlertService | None) -> None:
        self.service = service

    async def after_batch(self, out: BatchOutput) -> None:
        if self.service is not None:
            await self.service.after_batch(out.scored)


def register_alerting(app: faust.App, runtime: Runtime) -> AlertHook:
    """Attach alerting to ``app`` (idempotent: a second call returns the same hook)."""
    existing = getattr(app, HOOK_ATTR, None)
    if isinstance(existing, AlertHook):
        return existing
    hook = _register(app, runtime)
    setattr(app, HOOK_ATTR, hook)
    return hook


def _register(app: faust.App, runtime: Runtime) -> AlertHook:
    s = runtime.settings
    if not s.alerts.enabled:
        return AlertHook(None)
    service = AlertService(s, runtime.store, clock_ms=runtime.clock.now_ms,
                           worker_id=runtime.worker_id, registry=runtime.metrics.registry,
                           latency=runtime.latency)

    @app.task
    async def alert_evaluator() -> None:
        await service.run_evaluator()

    @app.task
    async def alert_delivery() -> None:
        await service.run_dispatcher()

    async def close_alerting(sender: Any, **kwargs: Any) -> None:
        await service.close()

    # mode's stubs type receivers as a union mypy cannot match an async def against.
    app.on_before_shutdown.connect(close_alerting)  # type: ignore[arg-type]
    return AlertHook(service)
