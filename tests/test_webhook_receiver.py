"""docs/ALERTS.md's webhook receiver snippet, run as written, against the sink's own signer.

The block is found by its first line (``# streamer-webhook-receiver``) and exec'd in a
fresh namespace, so the docs cannot drift from ``streamer.alert.webhook``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.alert.webhook import SIGNATURE_HEADER, WebhookSink, sign, verify_signature

DOC = Path(__file__).resolve().parents[1] / "docs" / "ALERTS.md"
MARKER = "# streamer-webhook-receiver"
SECRET = b"s3cret"
BODY = b'{"alert_id":"ticker:XOM:1767344400:fired","key":"XOM"}'
T0 = 1_767_344_400

Verify = Callable[..., bool]


def receiver_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)
    found = [b for b in blocks if b.startswith(MARKER + "\n")]
    assert len(found) == 1, f"docs/ALERTS.md needs exactly one python block starting {MARKER!r}"
    return found[0]


def receiver() -> tuple[Verify, dict[str, Any]]:
    """A fresh copy of the snippet (its own memory of accepted requests)."""
    namespace: dict[str, Any] = {"__name__": "readme_receiver"}
    exec(compile(receiver_block(), "docs/ALERTS.md:webhook-receiver", "exec"), namespace)
    return namespace["verify"], namespace


def test_snippet_uses_only_the_standard_library() -> None:
    imports = re.findall(r"^(?:import|from)\s+(\w+)", receiver_block(), flags=re.M)
    assert set(imports) <= {"hashlib", "hmac", "time"}, imports


def test_fresh_request_accepted_once_then_refused_as_a_replay() -> None:
    verify, _ = receiver()
    header = sign(SECRET, BODY, T0)
    assert verify(SECRET, BODY, header, now=T0 + 1)
    assert not verify(SECRET, BODY, header, now=T0 + 2)  # the same request again
    assert not verify(SECRET, BODY, header, now=T0 + 299)  # still inside the window


def test_a_retry_signed_afresh_is_accepted() -> None:
    verify, _ = receiver()
    assert verify(SECRET, BODY, sign(SECRET, BODY, T0), now=T0)
    assert verify(SECRET, BODY, sign(SECRET, BODY, T0 + 3), now=T0 + 3)


def test_old_and_future_timestamps_are_refused() -> None:
    verify, ns = receiver()
    tol = ns["TOLERANCE_S"]
    assert not verify(SECRET, BODY, sign(SECRET, BODY, T0), now=T0 + tol + 1)
    assert not verify(SECRET, BODY, sign(SECRET, BODY, T0 + tol + 1), now=T0)
    assert verify(SECRET, BODY, sign(SECRET, BODY, T0), now=T0 + tol)  # the edge is inside


def test_tampered_body_wrong_secret_and_forged_time_are_refused() -> None:
    verify, _ = receiver()
    header = sign(SECRET, BODY, T0)
    assert not verify(SECRET, BODY.replace(b"XOM", b"CVX"), header, now=T0)
    assert not verify(SECRET, BODY + b" ", header, now=T0)
    assert not verify(b"other", BODY, header, now=T0)
    mac = header.split("v1=", 1)[1]
    assert not verify(SECRET, BODY, f"t={T0 + 60},v1={mac}", now=T0 + 60)  # time moved
    # None of the refusals was remembered: the genuine request still goes through once.
    assert verify(SECRET, BODY, header, now=T0)
    assert not verify(SECRET, BODY, header, now=T0)


def test_accepted_signatures_are_forgotten_once_outside_the_window() -> None:
    verify, ns = receiver()
    tol = ns["TOLERANCE_S"]
    for i in range(50):
        assert verify(SECRET, BODY, sign(SECRET, BODY, T0 + i), now=T0 + i)
    assert len(ns["_accepted"]) == 50
    assert verify(SECRET, BODY, sign(SECRET, BODY, T0 + 10 * tol), now=T0 + 10 * tol)
    assert len(ns["_accepted"]) == 1  # memory stays bounded by the window


def test_the_sinks_own_header_verifies_with_the_snippet_and_the_library() -> None:
    verify, _ = receiver()
    hook = WebhookSink("http://127.0.0.1:9/hook", SECRET.decode(), timeout_s=1.0, retries=0,
                       backoff_s=0.0)
    header = hook.headers("ticker:XOM:1767344400:fired", BODY)[SIGNATURE_HEADER]
    now = time.time()
    assert verify_signature(SECRET, BODY, header, now=now)
    assert verify(SECRET, BODY, header)  # default clock: the real time
    assert not verify(SECRET, BODY, header)


def test_snippet_and_library_agree_on_the_window() -> None:
    _, ns = receiver()
    tol = ns["TOLERANCE_S"]
    for dt in (-tol - 1, -tol, 0, tol, tol + 1):
        verify, _ = receiver()
        header = sign(SECRET, BODY, T0)
        assert verify(SECRET, BODY, header, now=T0 + dt) == verify_signature(
            SECRET, BODY, header, tolerance_s=tol, now=T0 + dt)


MALFORMED = ["", "t=", "v1=", "t=x,v1=00", f"t={T0}", f"t={T0},v1=\u00e9", f"t={T0},v1=\ud800",
             f"t={T0},v1", f"t={'9' * 5000},v1=00", f"t={T0},,v1=00", "t=1e9,v1=00"]


@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_headers_are_refused(header: str) -> None:
    verify, _ = receiver()
    assert not verify(SECRET, BODY, header, now=T0)
    assert not verify_signature(SECRET, BODY, header, now=T0)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300)
       | st.builds(lambda mac: f"t={T0},v1={mac}", st.text(max_size=70)),
       st.binary(max_size=64))
def test_malformed_headers_never_raise(header: str, body: bytes) -> None:
    verify, _ = receiver()
    assert verify(SECRET, body, header, now=T0) in (True, False)
    assert verify_signature(SECRET, body, header, now=T0) in (True, False)
