"""The optional webhook sink: signed JSON POSTs with a timeout and retries with backoff.

Each request carries::

    X-Streamer-Alert-Id: <alert id>          (receivers drop repeats by it)
    X-Streamer-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The timestamp is inside the signed bytes, so a captured request cannot be replayed
later with a fresh time; receivers check it with :func:`verify_signature`. That check
is stateless: to refuse a replay *inside* the window too, a receiver remembers the
signatures it accepted until they age out, as the README's receiver snippet does
(tests/test_webhook_receiver.py runs that snippet against :func:`sign`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time

import aiohttp

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Streamer-Signature"
ID_HEADER = "X-Streamer-Alert-Id"
# Client errors other than these will not get better by retrying.
_RETRYABLE_4XX = {408, 409, 425, 429}


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: bytes, body: bytes, header: str, *, tolerance_s: float = 300.0,
                     now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its time is recent.

    Never raises for a malformed header. Stateless: see the module doc for replays.
    """
    try:
        parts = dict(p.strip().split("=", 1) for p in header.split(","))
        ts, mac = int(parts["t"]), parts["v1"].encode("ascii")
    except (ValueError, KeyError):  # malformed; a non-ASCII MAC is a UnicodeError (ValueError)
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected.encode("ascii"), mac)


class WebhookSink:
    def __init__(self, url: str, secret: str | None, *, timeout_s: float, retries: int,
                 backoff_s: float) -> None:
        self.url = url
        self._secret = secret.encode() if secret else None
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    def headers(self, alert_id: str, body: bytes) -> dict[str, str]:
        h = {"Content-Type": "application/json", ID_HEADER: alert_id}
        if self._secret is not None:
            h[SIGNATURE_HEADER] = sign(self._secret, body, int(time.time()))
        return h

    async def post(self, alert_id: str, body: bytes) -> tuple[bool, int]:
        """Deliver ``body``; returns (delivered, failed attempts). Never raises."""
        failures = 0
        for attempt in range(self.retries + 1):
            try:
                # Signed per attempt: the timestamp stays fresh across retries.
                async with self._client().post(
                    self.url, data=body, headers=self.headers(alert_id, body)
                ) as resp:
                    if 200 <= resp.status < 300:
                        return True, failures
                    failures += 1
                    log.warning("webhook %s answered %d for %s", self.url, resp.status, alert_id)
                    if 400 <= resp.status < 500 and resp.status not in _RETRYABLE_4XX:
                        return False, failures
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                failures += 1
                log.warning("webhook %s failed for %s: %s", self.url, alert_id,
                            exc.__class__.__name__)
            if attempt < self.retries:
                await asyncio.sleep(self.backoff_s * 2**attempt)
        return False, failures

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
