"""Web views on the worker: health, readiness, Prometheus metrics, the live dashboard.

The dashboard page (``/`` and ``/dashboard``) is static and carries no data, so it is
served like the probes; its JSON (``/api/trends``, ``/api/alerts``, ``/api/latency``,
``/api/throughput``, ``/api/model``) follows the ``/metrics`` rule: with a token
configured, only with ``Authorization: Bearer <token>`` (the page reads the token from
its URL fragment, ``#token=...``).
"""

from __future__ import annotations

import hmac
import time
from importlib import resources
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from agents.runtime import Runtime
from streamer.aggregate.summary import accounts
from streamer.alert.store import AlertStore
from streamer.dashboard import (
    DEFAULT_TOP,
    DEFAULT_WINDOW_S,
    RateTracker,
    alerts_data,
    latency_data,
    model_data,
    throughput_data,
    trends_data,
)

# The page may talk to its own worker only: no CDN, no other origin, no framing.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_DATA_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _assigned(app: faust.App, topics: tuple[str, ...]) -> int:
    """Input partitions this worker owns (Faust's own internal topics not counted)."""
    try:
        return sum(1 for tp in app.consumer.assignment() if tp.topic in topics)
    except Exception:  # no consumer yet (starting) or mid-rebalance
        return 0


def readiness(app: faust.App, runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    """Ready: the model is warm, input partitions are assigned, and Kafka and Redis
    answered the health monitor's last probes; also sets the ``streamer_ready`` gauge."""
    checks: dict[str, Any] = {
        "model_warm": runtime.warm,
        "partitions_assigned": _assigned(app, runtime.settings.topics.inputs),
        **runtime.health.snapshot(),
    }
    ok = bool(checks["model_warm"] and checks["partitions_assigned"]
              and all(runtime.health.up(name) for name in runtime.health.probes))
    runtime.metrics.ready.set(1 if ok else 0)
    return ok, checks


def authorized(request: Request, token: SecretStr | None) -> bool:
    """No token configured (loopback only), or the request carries it as a bearer token."""
    if token is None:
        return True
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(given.encode(), expected.encode())


def dashboard_html() -> str:
    return (resources.files("agents") / "static" / "dashboard.html").read_text("utf-8")


def _int_arg(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(request.query.get(name, default))))
    except ValueError:
        return default


def register_views(app: faust.App, runtime: Runtime) -> None:
    token = runtime.settings.web.token
    settings = runtime.settings
    page = dashboard_html()
    alert_store = AlertStore(runtime.store.redis, runtime.store.keys.prefix,
                             claim_ttl_s=settings.alerts.claim_ttl_s)
    rates = RateTracker(settings.web.dashboard_rate_window_s)

    def denied(view: View) -> Response:
        return view.json({"error": "send 'Authorization: Bearer <STREAMER_WEB_TOKEN>'"},
                         status=401, headers={"WWW-Authenticate": "Bearer"})

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok", "worker": runtime.worker_id})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            # From the last known state only: it answers at once whatever Kafka and
            # Redis are doing (agents/health.py probes them in the background).
            ok, checks = readiness(app, runtime)
            return self.json({"ready": ok, **checks}, status=200 if ok else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            if not authorized(request, token):
                return denied(self)
            body = generate_latest(runtime.metrics.registry)
            # aiohttp refuses a charset inside content_type; a header carries it whole.
            return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/")
    class Root(View):
        async def get(self, request: Request) -> Response:
            return self.html(page, headers=dict(_PAGE_HEADERS))

    @app.page("/dashboard")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            return self.html(page, headers=dict(_PAGE_HEADERS))

    @app.page("/api/trends")
    class Trends(View):
        async def get(self, request: Request) -> Response:
            if not authorized(request, token):
                return denied(self)
            data = await trends_data(
                runtime.store, bucket_seconds=settings.aggregate.bucket_seconds,
                window_s=_int_arg(request, "window", DEFAULT_WINDOW_S, 60, 86_400),
                top=_int_arg(request, "top", DEFAULT_TOP, 1, 50))
            return self.json(data, headers=dict(_DATA_HEADERS))

    @app.page("/api/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            if not authorized(request, token):
                return denied(self)
            data = await alerts_data(alert_store, limit=_int_arg(request, "limit", 30, 1, 200))
            return self.json(data, headers=dict(_DATA_HEADERS))

    @app.page("/api/model")
    class Model(View):
        async def get(self, request: Request) -> Response:
            if not authorized(request, token):
                return denied(self)
            live = runtime.scorer
            return self.json(model_data(live.name, live.model), headers=dict(_DATA_HEADERS))

    @app.page("/api/latency")
    class Latency(View):
        async def get(self, request: Request) -> Response:
            if not authorized(request, token):
                return denied(self)
            window = _int_arg(request, "window", settings.worker.latency_window_s, 1,
                              settings.worker.latency_slice_retention_s)
            data = await latency_data(runtime.store.redis, settings.redis.key_prefix, window)
            data["worker"] = runtime.worker_id
            return self.json(data, headers=dict(_DATA_HEADERS))

    @app.page("/api/throughput")
    class Throughput(View):
        async def get(self, request: Request) -> Response:
            if not authorized(request, token):
                return denied(self)
            m = runtime.metrics
            data = throughput_data(await accounts(runtime.store), rates, time.time(),
                                   m.dead, m.consumer_lag)
            data["worker"] = runtime.worker_id
            return self.json(data, headers=dict(_DATA_HEADERS))
