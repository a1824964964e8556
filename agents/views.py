"""Web views on the worker: health, readiness, Prometheus metrics, counters."""

from __future__ import annotations

import hmac
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from agents.runtime import Runtime


def _assigned(app: faust.App, topics: tuple[str, ...]) -> int:
    """Input partitions this worker owns (Faust's own internal topics not counted)."""
    try:
        return sum(1 for tp in app.consumer.assignment() if tp.topic in topics)
    except Exception:  # no consumer yet (starting) or mid-rebalance
        return 0


def authorized(request: Request, token: SecretStr | None) -> bool:
    """No token configured (loopback only), or the request carries it as a bearer token."""
    if token is None:
        return True
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(given.encode(), expected.encode())


def register_views(app: faust.App, runtime: Runtime) -> None:
    token = runtime.settings.web_token

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
            checks: dict[str, Any] = {
                "model_warm": runtime.warm,
                "partitions_assigned": _assigned(app, runtime.settings.input_topics),
                "redis": await runtime.store.ping(),
            }
            ok = bool(checks["model_warm"] and checks["partitions_assigned"] and checks["redis"])
            runtime.metrics.ready.set(1 if ok else 0)
            return self.json({"ready": ok, **checks}, status=200 if ok else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            if not authorized(request, token):
                return denied(self)
            body = generate_latest(runtime.metrics.registry)
            # aiohttp refuses a charset inside content_type; a header carries it whole.
            return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})
