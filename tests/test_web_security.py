"""The worker's web server: loopback by default; anywhere else only with a bearer token."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from harness import REPO, Namespace, WorkerProcess

from streamer.settings import Settings

TOKEN = "s3cret-token-4f1d9a"


def status(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize(("host", "public"), [
    ("127.0.0.1", False), ("localhost", False), ("::1", False),
    ("0.0.0.0", True), ("10.1.2.3", True), ("worker-1.internal", True),
])
def test_only_loopback_counts_as_private(host: str, public: bool) -> None:
    assert Settings(_env_file=None, web_host=host).web.public is public


def test_a_public_bind_without_a_token_refuses_to_start(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path,
) -> None:
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path,
                   extra_env={"STREAMER_WEB_HOST": "0.0.0.0"})
    out = subprocess.run([sys.executable, "-m", "streamer.cli.main", "worker"],
                         env={**os.environ, **ns.env()}, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    assert "STREAMER_WEB_TOKEN" in out.stdout + out.stderr


def test_metrics_on_a_public_bind_need_the_token_and_the_log_never_shows_it(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path,
) -> None:
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path,
                   extra_env={"STREAMER_WEB_HOST": "0.0.0.0", "STREAMER_WEB_TOKEN": TOKEN})
    worker = WorkerProcess(ns, "sec").start()
    try:
        worker.wait_ready()
        base = f"http://127.0.0.1:{worker.port}"
        assert status(f"{base}/metrics") == 401
        assert status(f"{base}/metrics", "wrong") == 401
        assert status(f"{base}/metrics", TOKEN) == 200
        assert status(f"{base}/healthz") == 200  # probes stay open: no data there
    finally:
        worker.stop()
    assert TOKEN not in worker.log.read_text(errors="replace")


def test_a_blank_token_counts_as_none() -> None:
    assert Settings(_env_file=None, web_token="  ").web.token is None
