"""The worker's live dashboard in a real headless browser (Debian's chromium + chromedriver).

A worker bound to 0.0.0.0 with a token scores the demo stream (with its negative spike on
Energy | Oil / XOM); the page, opened as /dashboard#token=..., must render the trends, the
spike's alerts (in event time, UTC), one latency bar pair per stage from the worker's JSON
endpoints (the recent window and since start), and the throughput, lag and dead-letter
panels.
Screenshots: the test's tmp folder and test-output/dashboard.png under the repo root.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from harness import (
    REPO,
    Namespace,
    WorkerProcess,
    is_valid,
    mixed_stream,
    produce,
    read_topic,
    topic_of,
    wait_consumed,
)

from streamer.latency.histograms import STAGES

pytestmark = pytest.mark.slow

TOKEN = "dash-token-7e2c91"
SIZE = (1366, 900)
SETUP_HINT = "run scripts/setup.sh (it installs Debian's chromium and chromium-driver)"


def get(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status), dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), dict(exc.headers), exc.read()


def browser() -> Any:
    """Headless Debian chromium through Debian's chromedriver; never a browser download."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(f"chromium and chromedriver not found: {SETUP_HINT}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {SETUP_HINT} (the dev extra has it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={SIZE[0]},{SIZE[1]}", "--hide-scrollbars",
                "--no-first-run", "--disable-extensions", "--lang=en-US"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    # The viewport itself, not the window: what a 1366x900 laptop screen shows.
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": SIZE[0], "height": SIZE[1], "deviceScaleFactor": 1, "mobile": False})
    return drv


class Run:
    def __init__(self, ns: Namespace, worker: WorkerProcess, spike_topic: str,
                 sent: int, bad: int, scored: list[dict[str, Any]]) -> None:
        self.ns, self.worker, self.spike_topic = ns, worker, spike_topic
        self.sent, self.bad, self.scored = sent, bad, scored
        self.base = f"http://127.0.0.1:{worker.port}"

    def api(self, path: str) -> dict[str, Any]:
        code, _, body = get(self.base + path, TOKEN)
        assert code == 200, (path, code, body[:200])
        data: dict[str, Any] = json.loads(body)
        return data


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, redis_url: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("dashboard"),
                   extra_env={"STREAMER_WEB_HOST": "0.0.0.0", "STREAMER_WEB_TOKEN": TOKEN})
    messages = mixed_stream(ns, seed=23, minutes=10, bad_fraction=0.02, big_message=False)
    worker = WorkerProcess(ns, "dash").start()
    try:
        worker.wait_ready()
        produce(ns, messages)
        wait_consumed(ns, len(messages), workers=[worker])
        s = ns.settings()
        scored = read_topic(ns, s.topics.scored, sum(is_valid(s, m) for m in messages))
        valid = sum(is_valid(s, m) for m in messages)
        yield Run(ns, worker, topic_of(scored, "XOM"),  # the spike's topic, as scored
                  len(messages), len(messages) - valid, scored)
    finally:
        worker.stop()


def test_the_page_carries_no_data_and_the_json_needs_the_token(run: Run) -> None:
    for path in ("/", "/dashboard"):
        code, headers, body = get(run.base + path)
        assert code == 200, path
        assert headers["Content-Type"].startswith("text/html")
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
        html = body.decode()
        # self-contained: no CDN, no external script, style, font or image
        assert "<script src" not in html and 'rel="stylesheet"' not in html
        assert not re.search(r'(src|href)="(https?:)?//', html) and "https://" not in html
        assert "XOM" not in html and run.spike_topic not in html
    for path in ("/api/trends", "/api/alerts", "/api/latency", "/api/throughput",
                 "/api/model"):
        assert get(run.base + path)[0] == 401, path
        assert get(run.base + path, "wrong")[0] == 401, path
        assert get(run.base + path, TOKEN)[0] == 200, path


def test_throughput_counts_every_record_and_the_lag_is_drained(run: Run) -> None:
    data = run.api("/api/throughput")
    topics = {t["topic"]: t for t in data["topics"]}
    assert sum(t["consumed"] for t in topics.values()) == run.sent
    assert sum(t["dead_lettered"] for t in topics.values()) == run.bad > 0
    assert sum(d["count"] for d in data["dead_by_reason"]) == run.bad  # one worker: all
    assert data["lag"]["partitions"] and data["lag"]["total"] == 0  # everything processed
    time.sleep(1.0)
    again = run.api("/api/throughput")  # a second sample: a rate, zero once drained
    assert again["rate_window_s"] is not None and again["rate_window_s"] > 0
    assert all(t["consumed_per_s"] == 0 for t in again["topics"])


def test_latency_has_the_recent_window_with_queue_apart_from_the_kafka_hop(run: Run) -> None:
    data = run.api("/api/latency?window=3600")
    for view in (data, data["recent"]):
        assert [s["stage"] for s in view["stages"]] == [name for name, _, _ in STAGES]
        assert view["end_to_end"]["count"] > 0
    assert data["recent"]["view"] == "last 60 min" and data["view"].startswith("since")
    assert data["recent"]["end_to_end"]["count"] <= data["end_to_end"]["count"]
    assert "backlog" in data["stages"][0]["meaning"]


def test_a_burst_queues_for_the_busy_worker_and_each_wait_is_split_once(run: Run) -> None:
    # Produced at once, faster than the worker scores: later records waited for it.
    stamps = [ev["stamps"] for ev in run.scored]
    assert all(s["produced"] <= s["requested"] <= s["consumed"] for s in stamps)
    queued = [s["requested"] - s["produced"] for s in stamps]
    assert sum(q > 50.0 for q in queued) > len(stamps) // 10, sorted(queued)[-5:]


def _state(drv: Any) -> dict[str, Any]:
    return drv.execute_script("""
        const q = (s) => document.querySelector(s);
        return {
          topics: q('#topics').innerText, tickers: q('#tickers').innerText,
          alerts: q('#alerts').innerText,
          alertRows: q('#alerts').querySelectorAll('tbody tr').length,
          stages: [...document.querySelectorAll('#latency g.stage')].map(g => ({
            stage: g.dataset.stage, p50: g.querySelectorAll('rect.bar.p50').length,
            p99: g.querySelectorAll('rect.bar.p99').length})),
          alertHead: q('#alerts thead') ? q('#alerts thead').innerText : '',
          alertTimes: [...document.querySelectorAll('#alerts td.time')].map(td => td.innerText),
          alertIds: [...document.querySelectorAll('#alerts tbody tr')].map(tr => tr.dataset.alert),
          throughput: q('#throughput').innerText, throughputRows: +q('#throughput').dataset.rows,
          lag: q('#lag').innerText, lagPartitions: +q('#lag').dataset.partitions,
          dead: q('#deadletters').innerText, latencyView: q('#latency').dataset.view,
          e2e: q('#e2e').innerText, status: q('#status').innerText,
          notice: q('#notice').innerText, model: q('#model').innerText,
          sparks: document.querySelectorAll('#topics svg.spark rect').length,
        };""")


def _rendered(s: dict[str, Any], topic: str) -> bool:
    return (topic in s["topics"] and "XOM" in s["tickers"] and s["sparks"] > 0
            and ("XOM" in s["alerts"] or topic in s["alerts"])
            and len(s["stages"]) == len(STAGES) and "p99" in s["e2e"]
            and s["throughputRows"] > 0 and s["lagPartitions"] > 0 and ".dlq" in s["dead"])


def test_the_dashboard_renders_trends_alerts_and_latency_in_chromium(
    run: Run, tmp_path: Path,
) -> None:
    drv = browser()
    try:
        drv.get(f"{run.base}/dashboard#token={TOKEN}")
        deadline = time.monotonic() + 240  # the spike's alerts follow the watermark
        state = _state(drv)
        while not _rendered(state, run.spike_topic) and time.monotonic() < deadline:
            time.sleep(2)
            state = _state(drv)
        assert _rendered(state, run.spike_topic), \
            f"dashboard did not render all sections: {state}\n{run.worker.tail()}"
        time.sleep(0.5)  # let the last poll's layout settle
        shot = drv.get_screenshot_as_png()
        (tmp_path / "dashboard.png").write_bytes(shot)
        out = REPO / "test-output"
        out.mkdir(exist_ok=True)
        (out / "dashboard.png").write_bytes(shot)

        assert [s["stage"] for s in state["stages"]] == [name for name, _, _ in STAGES]
        assert all(s["p50"] == 1 and s["p99"] == 1 for s in state["stages"])
        assert state["alertRows"] >= 1 and "live" in state["status"]
        # Alert times: event time, UTC, as `streamer alerts` prints them.
        assert "event time UTC" in state["alertHead"]
        by_id = {a["alert_id"]: a for a in run.api("/api/alerts?limit=200")["alerts"]}
        for alert_id, shown in zip(state["alertIds"], state["alertTimes"], strict=True):
            event_time = datetime.fromisoformat(by_id[alert_id]["detected_event_time"])
            assert shown == f"{event_time:%H:%M:%S}", (alert_id, shown)
        assert state["latencyView"] == "recent" and "UTC" in state["status"]
        assert "records behind" in state["lag"] and "/s" in state["throughput"]
        assert state["model"].startswith("model baseline-nb / naive-bayes")  # the live model
        scroll_w, view_w = drv.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll_w <= view_w, "no horizontal scrolling at 1366 px"
        errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors  # no CSP violation, no failed fetch, no script error

        # Without the token in the fragment the page says what to do, and shows no data.
        drv.get(f"{run.base}/dashboard")
        deadline = time.monotonic() + 20
        state = _state(drv)
        while "token" not in state["notice"] and time.monotonic() < deadline:
            time.sleep(0.5)
            state = _state(drv)
        assert "#token=" in state["notice"], state
        assert "XOM" not in state["tickers"] and "XOM" not in state["alerts"]
    finally:
        drv.quit()
