"""The chart's dashboards against a real Prometheus scraping the running platform.

A Prometheus scrapes auth, users and orgs every second with the scrape configs the
Prometheus Operator makes of the chart's ServiceMonitors (their relabelling verbatim, so
the `platform`, `app` and `namespace` labels are the chart's), and evaluates the chart's
rendered PrometheusRule (the SLO panels read its recording rules, which so meet the real
metrics: a latency threshold that is no exposed bucket would leave them empty). Traffic
then runs through the ingress: registrations, logins good and bad, a refresh token used
twice, `/me`, orgs and members, rate-limited logins, a peer down (users stopped: orgs'
member list answers 503). Finally every panel's every query, with the dashboard's variables substituted as
Grafana does ("All" of each variable, `$__rate_interval` from the scrape interval), runs
as a range query over the test's span: each must return at least one number.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from platform_testing import require_tool
from platform_testing.prometheus import PrometheusServer, scrape_configs_from_service_monitors

from .conftest import Accounts

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "identity-platform"
DASHBOARDS = sorted((CHART_DIR / "files" / "dashboards").glob("*.json"))
NAMESPACE = "identity"
# Grafana's $__rate_interval is max(4 x scrape interval, $__interval + scrape interval);
# a few seconds more keeps a window with two samples in every step.
RATE_INTERVAL = "10s"
STEP_SECONDS = 2.0


@pytest.fixture(scope="module")
def prometheus(
    platform: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    helm = require_tool(
        "helm", "run `bash scripts/install-helm.sh`", "HELM", REPO_ROOT / ".tools" / "bin" / "helm"
    )
    binary = require_tool(
        "prometheus", "install it with `apt-get install prometheus`", "PROMETHEUS"
    )
    rendered = subprocess.run(
        [helm, "template", "identity-platform", str(CHART_DIR), "--namespace", NAMESPACE,
         "--set", "metrics.serviceMonitor.enabled=true",
         "--set", "metrics.prometheusRule.enabled=true"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    monitors = [doc for doc in docs if doc["kind"] == "ServiceMonitor"]
    assert len(monitors) == 3
    (rule,) = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    targets = {name: f"127.0.0.1:{platform[name].port}" for name in ("auth", "users", "orgs")}
    server = PrometheusServer(
        binary,
        tmp_path_factory.mktemp("prometheus"),
        scrape_configs_from_service_monitors(monitors, targets),
        # The chart's rules too: the SLO panels read its recording rules.
        rule["spec"]["groups"],
    )
    server.start()
    try:
        server.wait_ready()
        server.wait_for("count(up == 1) == 3")
        yield server
    finally:
        server.stop()


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    assert "$" not in expr, f"a variable is left in {expr}"
    return expr


def variable_values(dashboard: dict[str, Any], prom: PrometheusServer) -> dict[str, str]:
    """Each query variable at "All", as Grafana sends a multi-value one: `(a|b|c)`."""
    values: dict[str, str] = {"__rate_interval": RATE_INTERVAL, "__interval": "2s"}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        definition = substitute(variable["definition"], values)
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\s*\)", definition)
        assert match, f"{variable['name']}: not a label_values() query: {definition}"
        found = prom.label_values(match.group(2), match.group(1))
        assert found, f"variable {variable['name']} has no values ({definition})"
        values[variable["name"]] = "(" + "|".join(re.escape(v) for v in found) + ")"
    return values


def has_numbers(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(value)) for series in result for _, value in series["values"])


def drive_traffic(api: httpx.Client, accounts: Accounts, platform: Any) -> None:
    people = [accounts.create(f"dash{i}") for i in range(3)]
    for person in people:
        assert api.get("/api/v1/users/me", headers=person.auth).status_code == 200
    owner = people[0]
    slug = f"dash-{owner.id[:8]}"
    created = api.post("/api/v1/orgs", json={"name": "Dash", "slug": slug}, headers=owner.auth)
    assert created.status_code == 201, created.text
    # A webhook to a closed local port: every change of the org is an attempt that fails
    # (the webhook panels' deliveries and durations); private destinations are allowed in
    # development, which the stack runs as.
    hook = api.post(
        f"/api/v1/orgs/{slug}/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["*"]},
        headers=owner.auth,
    )
    assert hook.status_code == 201, hook.text
    for other in people[1:]:
        added = api.post(
            f"/api/v1/orgs/{slug}/members",
            json={"user_id": other.id, "role": "member"},
            headers=owner.auth,
        )
        assert added.status_code == 201, added.text

    # Wrong passwords until the throttle answers 429.
    victim = people[2]
    statuses = {
        api.post(
            "/api/v1/auth/login", json={"email": victim.email, "password": "not-the-password"}
        ).status_code
        for _ in range(8)
    }
    assert statuses >= {401, 429}, statuses

    # A refresh token rotated now and presented again after the reuse interval (users'
    # restart below takes longer than it): reuse detected, the session ended.
    rotated = api.post("/api/v1/auth/refresh", json={"refresh_token": people[1].refresh_token})
    assert rotated.status_code == 200, rotated.text

    # A peer down: orgs cannot name the members without users (nor has it cached them: the
    # list has not been asked for yet).
    platform.stop("users")
    try:
        # Registration still works; its user event waits in auth's outbox for users.
        accounts.register("outage")
        for _ in range(5):
            members = api.get(f"/api/v1/orgs/{slug}/members", headers=owner.auth)
            assert members.status_code == 503, members.text
            api.get(f"/api/v1/orgs/{slug}", headers=owner.auth)
            time.sleep(0.5)
    finally:
        platform.start("users")
    reused = api.post("/api/v1/auth/refresh", json={"refresh_token": people[1].refresh_token})
    assert reused.status_code == 401, reused.text
    for _ in range(10):
        for name in ("auth", "users", "orgs"):
            # What the kubelet's readiness probes do.
            httpx.get(f"{platform.url(name)}/readyz", timeout=5.0)
        for person in people:
            api.get("/api/v1/users/me", headers=person.auth)
        api.get(f"/api/v1/orgs/{slug}/members", headers=owner.auth)
        # A steady trickle of logins, good and bad: a rate over a window without any is
        # 0/0, which a panel shows as nothing.
        accounts.login(owner)
        api.post(
            "/api/v1/auth/login",
            json={"email": f"nobody-{secrets.token_hex(4)}@example.com", "password": "x" * 12},
        )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def traffic(prometheus: PrometheusServer, platform: Any, ingress: Any) -> tuple[float, float]:
    """Drive the traffic once for every dashboard; the span it took (Unix seconds)."""
    platform.ensure_running()
    started = time.time()
    with httpx.Client(base_url=ingress.url, timeout=10.0) as api:
        drive_traffic(api, Accounts(api, platform), platform)
    time.sleep(3)  # the last scrapes
    return started, time.time()


# What the traffic did, as the platform's own metrics must have counted it (a panel of zeros
# would pass the test above).
P = 'platform="identity-platform"'
COUNTED = {
    "bad passwords": f'auth_login_attempts_total{{{P}, outcome="invalid_credentials"}}',
    "throttled logins": f'auth_login_attempts_total{{{P}, outcome="rate_limited"}}',
    "refresh-token reuse": f"auth_refresh_token_reuse_total{{{P}}}",
    "its session revoked": f'auth_sessions_revoked_total{{{P}, reason="refresh_reuse"}}',
    "orgs finding users unreachable": (
        f'peer_request_duration_seconds_count{{{P}, app="orgs", peer="users", outcome="unreachable"}}'
    ),
    "users asking orgs": (
        f'peer_request_duration_seconds_count{{{P}, app="users", peer="orgs", outcome="ok"}}'
    ),
    "JWKS fetched": f'jwks_refreshes_total{{{P}, outcome="ok"}}',
    "orgs' 503s": f'http_requests_total{{{P}, app="orgs", status="5xx"}}',
    "an event waiting in the outbox": f"auth_outbox_pending_events{{{P}}}",
    "its age": f"auth_outbox_oldest_pending_age_seconds{{{P}}}",
}


def test_the_traffic_is_counted(prometheus: PrometheusServer, traffic: tuple[float, float]) -> None:
    uncounted = []
    for what, selector in COUNTED.items():
        result = prometheus.query(f"sum(max_over_time({selector}[5m]))")
        if not result or float(result[0]["value"][1]) <= 0:
            uncounted.append(f"{what}: {selector}")
    assert not uncounted, uncounted


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_panel_returns_data(
    path: Path, prometheus: PrometheusServer, traffic: tuple[float, float]
) -> None:
    started, ended = traffic

    dashboard = json.loads(path.read_text())
    variables = variable_values(dashboard, prometheus)
    assert "identity" in variables["namespace"]
    for app in ("auth", "users", "orgs"):
        assert app in variables["app"]

    empty = []
    queried = 0
    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], variables)
            result = prometheus.query_range(expr, started - 5, ended, STEP_SECONDS)
            queried += 1
            if not has_numbers(result):
                empty.append(f"{panel['title']!r}: {expr}")
    assert queried >= 10
    if empty:
        pytest.fail("panels without data:\n" + "\n".join(empty), pytrace=False)
