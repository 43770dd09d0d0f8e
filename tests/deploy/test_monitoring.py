"""Alert rules and dashboards shipped with the chart: promtool, and metric names that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from platform_common.metrics import LATENCY_BUCKETS

from .conftest import CHART_DIR, find_promtool, of_kind, render, run_helm

FILES = CHART_DIR / "files"
SLO_TESTS = "slo-alerts.test.yaml"
RUNBOOKS = CHART_DIR.parents[2] / "docs" / "runbooks.md"
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
    "auth_account_deletions_pending",
    "auth_outbox_oldest_pending_age_seconds",
    # auth's and orgs' mail sender (libs/common/src/platform_common/mail/sender.py)
    "mail_sent_total",
    "mail_failed_total",
    "mail_queued",
    "mail_queued_oldest_age_seconds",
    # every service's (libs/common/src/platform_common/metrics.py)
    "peer_request_duration_seconds_bucket",
    "peer_request_duration_seconds_count",
    "rate_limited_requests_total",
    "redis_errors_total",
    "jwks_refreshes_total",
    "db_pool_size",
    "db_pool_connections_in_use",
    "db_pool_waiting_requests",
    # orgs' live socket (services/orgs/src/orgs/live.py)
    "live_connections",
    "live_messages_sent_total",
    "live_closed_total",
    # events and webhooks (libs/common/src/platform_common/events/relay.py,
    # services/orgs/src/orgs/webhooks/worker.py)
    "events_relayed_total",
    "events_stream_lag_seconds",
    "webhook_deliveries_total",
    "webhook_delivery_duration_seconds_bucket",
    "webhook_delivery_duration_seconds_count",
    "webhook_delivery_latency_seconds_bucket",
    "webhooks_disabled_total",
    # the chart's SLO recording rules (templates/_slo.tpl)
    "identity_platform:slo_errors:ratio_rate1h",
    "identity_platform:slo_errors:ratio_rate5m",
    "identity_platform:slo_latency_misses:ratio_rate1h",
    "identity_platform:slo_latency_misses:ratio_rate5m",
    "identity_platform:slo_availability_objective:ratio",
    "identity_platform:slo_latency_objective:ratio",
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


@pytest.fixture(scope="module")
def rendered_rules(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart's PrometheusRule (default values) as a rule file, beside the SLO tests."""
    (rule,) = of_kind(
        render(helm, "--set", "metrics.prometheusRule.enabled=true"), "PrometheusRule"
    )
    directory = tmp_path_factory.mktemp("rules")
    (directory / "rendered-rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(FILES / SLO_TESTS, directory / SLO_TESTS)
    return directory


def test_rendered_rules_pass_promtool_check(rendered_rules: Path) -> None:
    result = promtool("check", "rules", "rendered-rules.yaml", cwd=rendered_rules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_slo_rules_pass_their_unit_tests(rendered_rules: Path) -> None:
    result = promtool("test", "rules", SLO_TESTS, cwd=rendered_rules)
    assert result.returncode == 0, result.stdout + result.stderr


def rendered_alerts(directory: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load((directory / "rendered-rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_cases_that_fire_and_cases_that_stay_silent(
    rendered_rules: Path,
) -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in (FILES / "alerts.test.yaml", FILES / SLO_TESTS):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else silent).add(case["alertname"])
    alerts = {rule["alert"] for rule in rendered_alerts(rendered_rules)}
    assert len(alerts) >= 10
    assert alerts - firing == set(), "alerts no test makes fire"
    assert alerts - silent == set(), "alerts no test shows silent"


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_its_runbook_section(rendered_rules: Path) -> None:
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    base = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["metrics"]["prometheusRule"][
        "runbookUrl"
    ]
    assert base.endswith("docs/runbooks.md")
    for rule in rendered_alerts(rendered_rules):
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == base, rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {RUNBOOKS.name}"


def test_slo_latency_thresholds_are_buckets_the_services_expose() -> None:
    exposed = {str(float(b)) for b in LATENCY_BUCKETS}  # prometheus_client's `le` values
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    enum = schema["definitions"]["slo"]["properties"]["latency"]["properties"]["thresholdSeconds"][
        "enum"
    ]
    assert set(enum) == exposed
    slos = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["metrics"]["slos"]
    assert set(slos) == {"auth", "users", "orgs"}
    for slo in slos.values():
        assert slo["latency"]["thresholdSeconds"] in exposed


def test_a_threshold_that_is_no_bucket_is_refused(helm: str) -> None:
    result = run_helm(
        helm,
        "template",
        "x",
        str(CHART_DIR),
        "--set",
        "metrics.slos.users.latency.thresholdSeconds=0.3",
    )
    assert result.returncode != 0
    assert "thresholdSeconds" in result.stderr


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_read_existing_metrics(rendered_rules: Path) -> None:
    groups = yaml.safe_load((rendered_rules / "rendered-rules.yaml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    recorded = {rule["record"] for rule in rules if "record" in rule}
    assert {r["alert"] for r in alert_rules()} >= {
        "IdentityPlatformTargetDown",
        "IdentityPlatformLoginRejectionSurge",
        "IdentityPlatformOutboxStalled",
    }
    for rule in rules:
        if rule["expr"].startswith("vector("):
            continue  # an objective as a constant series
        names = metric_names(rule["expr"])
        assert names and names <= KNOWN_METRICS | recorded, (rule.get("alert"), names)


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
