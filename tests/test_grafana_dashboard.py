"""deploy/grafana: a provisioned dashboard whose panels query metrics the worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from streamer.alert.metrics import AlertMetrics
from streamer.kafka.lag_exporter import LagMetrics
from streamer.metrics import Metrics

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "streamer.json"
PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "text"}
# PromQL words that look like metric names: functions, aggregations, keywords.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate",
    "histogram_quantile", "deriv", "and", "or", "unless", "on", "ignoring", "topk",
    "bottomk", "abs", "clamp_min", "clamp_max", "absent", "le", "time",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def exported_series() -> set[str]:
    """Every series name the worker's registry can expose (families with no sample yet
    included), as the worker builds it: its metrics and the alerting ones beside them;
    and the lag exporter's (`streamer lag --serve`)."""
    registry = CollectorRegistry()
    Metrics(registry)
    AlertMetrics(registry)
    LagMetrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                    "gauge": ("",), "info": ("_info",)}.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
    names.add("up")  # Prometheus' own, per scrape target
    return names


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_strings = re.sub(r'"[^"]*"', "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    without_grouping = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                              "", without_ranges)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_grouping))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("__")}


def test_the_dashboard_has_grafanas_top_level_shape() -> None:
    d = dashboard()
    assert isinstance(d["uid"], str) and re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", d["uid"])
    assert d["title"] and isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    assert isinstance(d["panels"], list) and d["panels"]
    assert d["timezone"] == "utc"  # the alerts' event times are UTC too


def test_every_panel_has_a_unique_id_a_known_type_and_a_place_on_the_grid() -> None:
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard()["panels"]:
        assert p["type"] in PANEL_TYPES, p["title"]
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, p["title"]
        assert pos["h"] > 0 and pos["y"] >= 0, p["title"]


def test_every_query_panel_reads_the_provisioned_datasource() -> None:
    variable = next(v for v in dashboard()["templating"]["list"] if v["type"] == "datasource")
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = provisioned["datasources"]
    assert source["type"] == variable["query"] == "prometheus"
    assert variable["current"]["value"] == source["uid"]
    for p in panels():
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${" + variable["name"] + "}", p["title"]
            assert t["expr"].strip() and t["refId"], p["title"]


def test_every_expression_names_only_metrics_the_worker_exports() -> None:
    exported = exported_series()
    for p in panels():
        for t in p["targets"]:
            unknown = metric_names(t["expr"]) - exported
            assert not unknown, f"{p['title']!r} queries {unknown}, not exported"


def test_the_dashboard_covers_what_an_operator_asked_for() -> None:
    exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for needed in ("streamer_stage_seconds_bucket", "histogram_quantile(0.5",
                   "histogram_quantile(0.99", "streamer_consumed_total",
                   "streamer_consumer_lag", "streamer_group_lag",
                   "streamer_dead_lettered_total",
                   "streamer_model_info", "streamer_sentiment_total",
                   "streamer_alerts_claimed_total"):
        assert needed in exprs, needed


def test_the_provisioning_file_points_grafana_at_a_dashboard_folder() -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "streamer.yml").read_text())
    (entry,) = provider["providers"]
    assert provider["apiVersion"] == 1 and entry["type"] == "file"
    assert entry["options"]["path"].startswith("/")


def _dropped(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Keys of ``ours`` that ``theirs`` (the same JSON read back) no longer has."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [p for k, v in ours.items()
                for p in ([f"{path}.{k}"] if k not in theirs else _dropped(v, theirs[k],
                                                                           f"{path}.{k}"))]
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [p for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
                for p in _dropped(a, b, f"{path}[{i}]")]
    return []


def test_grafanas_own_dashboard_types_read_every_key_of_the_dashboard() -> None:
    # Grafana's schema-generated types keep what the schema knows and drop the rest: a
    # misspelt key ("gridpos", "fieldconfig") would not survive the round trip.
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    ours = json.loads(DASHBOARD.read_text("utf-8"))
    theirs = json.loads(JSONEncoder().encode(Dashboard.from_json(ours)))
    assert _dropped(ours, theirs) == []
    assert len(theirs["panels"]) == len(ours["panels"])
