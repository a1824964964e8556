"""The Prometheus kit in deploy/prometheus: promtool accepts it, its alert rules fire when
they should, and a real Prometheus scraping a real worker answers a latency quantile."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import REPO, BackgroundProducer, Namespace, WorkerProcess, mixed_stream
from servers import free_ports, unavailable

from streamer.metrics import STAGE_NAMES

KIT = REPO / "deploy" / "prometheus"


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                  else None)
    if path is None:
        unavailable(f"{name} not found: apt-get install prometheus (scripts/setup.sh does)")
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], cwd=KIT, capture_output=True, text=True,
                          timeout=120)


def test_promtool_accepts_the_scrape_config_and_its_rule_file() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 rule files found" in out.stdout + out.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    out = promtool("check", "rules", "rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout + out.stderr


def test_each_alert_rule_fires_on_its_condition_and_not_on_a_healthy_worker() -> None:
    out = promtool("test", "rules", "rules_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> dict[str, object]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def scalar(self, expr: str) -> float | None:
        """The one value of an instant query, or None when it has no (finite) value."""
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        result = body["data"]["result"]  # type: ignore[index]
        if len(result) != 1:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None


@pytest.fixture(scope="module")
def worker_scraped(kafka_bootstrap: str, redis_url: str,
                   tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[Prometheus, Namespace]]:
    """A real worker under a stream, scraped every second by a real Prometheus that also
    loads deploy/prometheus/rules.yml."""
    binary = tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    ns = Namespace(kafka_bootstrap, redis_url, tmp / "worker")
    worker = WorkerProcess(ns, "prom").start()
    (port,) = free_ports(1)
    config = tmp / "prometheus.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(KIT / "rules.yml")],
        "scrape_configs": [{"job_name": "streamer",
                            "static_configs": [{"targets": [f"127.0.0.1:{worker.port}"]}]}],
    }))
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "Prometheus not ready in 60 s"
                time.sleep(0.5)
        yield prom, ns
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        worker.stop()


def test_prometheus_answers_per_stage_latency_quantiles_of_a_live_worker(
        worker_scraped: tuple[Prometheus, Namespace]) -> None:
    prom, ns = worker_scraped
    stream = mixed_stream(ns, seed=30, minutes=1.0, bad_fraction=0.05, big_message=False)
    producer = BackgroundProducer(ns, stream, rate=40.0).start()
    p99 = "histogram_quantile(0.99, sum by (le) " \
          "(rate(streamer_stage_seconds_bucket{stage=\"end_to_end\"}[15s])))"
    found: float | None = None
    deadline = time.monotonic() + 180
    while found is None and time.monotonic() < deadline:
        time.sleep(2)
        found = prom.scalar(p99)
    producer.join()
    assert found is not None, "no end-to-end p99 from Prometheus in 180 s"
    assert 0.0 < found < 60.0
    stages = prom.get("/api/v1/query", query=(
        "histogram_quantile(0.5, sum by (le, stage) "
        "(increase(streamer_stage_seconds_bucket[5m])))"))
    medians = {r["metric"]["stage"]: float(r["value"][1])
               for r in stages["data"]["result"]}  # type: ignore[index]
    assert set(medians) == set(STAGE_NAMES)  # queue, kafka, ..., end_to_end
    print(f"\nPrometheus: end_to_end p99 {found * 1000:.1f} ms; p50 per stage (ms): "
          + ", ".join(f"{k} {v * 1000:.2f}" for k, v in sorted(medians.items())))


def test_prometheus_loads_every_alert_rule_healthy(
        worker_scraped: tuple[Prometheus, Namespace]) -> None:
    prom, _ = worker_scraped
    deadline = time.monotonic() + 30
    while True:
        groups = prom.get("/api/v1/rules")["data"]["groups"]  # type: ignore[index]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("health") == "ok" for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(1)
    assert {r["name"] for r in rules} == {
        "StreamerWorkerDown", "StreamerLagGrowing", "StreamerCommittedLagGrowing",
        "StreamerDeadLetterRate",
        "StreamerP99OverTarget", "StreamerRedisRetries"}
    # A live worker is up: the worker-down rule is not firing.
    down = next(r for r in rules if r["name"] == "StreamerWorkerDown")
    assert down["state"] == "inactive"


def test_prometheus_accepts_every_expression_of_the_grafana_dashboard(
        worker_scraped: tuple[Prometheus, Namespace]) -> None:
    prom, _ = worker_scraped
    board = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "streamer.json")
                       .read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs
    for expr in exprs:
        # Grafana fills $__rate_interval in before it sends a query.
        query = expr.replace("$__rate_interval", "1m")
        try:
            body = prom.get("/api/v1/query", query=query)
        except urllib.error.HTTPError as exc:  # 400: Prometheus could not parse it
            raise AssertionError(f"{expr}: {exc.read().decode()}") from exc
        assert body["status"] == "success", (expr, body)
