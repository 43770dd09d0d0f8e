"""Alert rules and dashboards shipped with the chart: promtool, and metric names that exist."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART_DIR, find_promtool

FILES = CHART_DIR / "files"
DASHBOARDS = sorted((FILES / "dashboards").glob("*.json"))

# What the services expose (prometheus-fastapi-instrumentator's defaults) and Prometheus adds.
KNOWN_METRICS = {
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_count",
    "http_request_duration_seconds_sum",
    "up",
    # auth's own (services/auth/src/auth/service/sessions.py, outbox.py)
    "auth_login_attempts_total",
    "auth_refresh_token_reuse_total",
    "auth_sessions_revoked_total",
    "auth_outbox_pending_events",
    "auth_outbox_oldest_pending_age_seconds",
    # every service's (libs/common/src/platform_common/metrics.py)
    "peer_request_duration_seconds_bucket",
    "peer_request_duration_seconds_count",
    "rate_limited_requests_total",
    "redis_errors_total",
    "jwks_refreshes_total",
    "db_pool_size",
    "db_pool_connections_in_use",
    "db_pool_waiting_requests",
}
PROMQL_WORDS = {
    # aggregations, keywords and the functions the rules and dashboards use or may use
    "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev",
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset",
    "rate", "irate", "increase", "delta", "histogram_quantile", "absent", "absent_over_time",
    "clamp_min", "clamp_max", "vector", "scalar", "time", "label_replace",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (labels, strings, ranges and grouping removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)
    expr = re.sub(r"label_values\((.*),\s*\w+\s*\)", r"\1", expr)  # Grafana: (series, label)
    names = set(re.findall(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return names - PROMQL_WORDS


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (app, le) (rate(foo_bucket{a="x{y}", b=~"$v"}'
        "[$__rate_interval]))) / on (app) bar_total > 0.5e3"
    )
    assert metric_names(expr) == {"foo_bucket", "bar_total"}
    assert metric_names('label_values(up{job="x"}, namespace)') == {"up"}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "alerts.yaml", cwd=FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", "alerts.test.yaml", cwd=FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        case["alertname"]
        for test in yaml.safe_load((FILES / "alerts.test.yaml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert len(tested) >= 2


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_read_existing_metrics() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "IdentityPlatformHighErrorRatio",
        "IdentityPlatformHighLatencyP95",
        "IdentityPlatformTargetDown",
        "IdentityPlatformLoginRejectionSurge",
    }
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names and names <= KNOWN_METRICS, (rule["alert"], names)


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_queries_read_existing_metrics(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    exprs = [t["expr"] for p in panels(dashboard["panels"]) for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert exprs
    for expr in exprs:
        names = metric_names(expr)
        assert names and names <= KNOWN_METRICS, (expr, names)
    titles = " ".join(p["title"] for p in panels(dashboard["panels"])).lower()
    for topic in ("request rate", "error", "p50", "p95", "p99", "handler", "readiness"):
        assert topic in titles, topic
    rows = {p["title"] for p in panels(dashboard["panels"]) if p["type"] == "row"}
    assert rows >= {"Traffic", "Latency", "Errors", "Security", "Dependencies", "Saturation"}
    ids = [p["id"] for p in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_there_is_a_dashboard() -> None:
    assert DASHBOARDS
