"""The nginx ingress in front of the platform, and the request id across services.

- routing by prefix without rewriting; /livez, /readyz, /metrics and /internal are not
  routed (404 from nginx, as problem+json);
- the request id: echoed when the client sends a sane one, made at the edge otherwise, and
  carried from users to orgs, whose own log shows it;
- bodies over 1 MiB are refused at the edge with 413.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx
import pytest

from platform_testing import assert_problem

pytestmark = pytest.mark.slow

ONE_MIB = 1024 * 1024


def test_routes_each_prefix_to_its_service(api: httpx.Client) -> None:
    for service in ("auth", "users", "orgs"):
        response = api.get(f"/api/v1/{service}/openapi.json")
        assert response.status_code == 200, response.text
        assert response.json()["info"]["title"] == service
    # The bare prefixes reach their service (no redirect to a trailing slash): without a
    # token both answer the service's own 401, not nginx's 301 or 404.
    for path in ("/api/v1/users", "/api/v1/orgs"):
        response = api.get(path)
        assert_problem(response, 401, "not_authenticated")
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "path", ["/livez", "/readyz", "/metrics", "/internal/v1/users/x", "/api/v1/other/"]
)
def test_does_not_route_what_is_not_public(api: httpx.Client, path: str) -> None:
    response = api.get(path, headers={"X-Request-ID": "e2e-not-routed"})
    body = assert_problem(response, 404, "not_found")
    assert body["request_id"] == "e2e-not-routed"


def test_request_id_is_echoed_or_made_at_the_edge(api: httpx.Client) -> None:
    given = api.get("/api/v1/auth/jwks.json", headers={"X-Request-ID": "e2e-given-id"})
    assert given.headers["x-request-id"] == "e2e-given-id"
    made = api.get("/api/v1/auth/jwks.json")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    # An id that could break a log line or a JSON body is replaced, not echoed.
    unsafe = api.get("/api/v1/auth/jwks.json", headers={"X-Request-ID": 'a"b c'})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])


def test_request_id_reaches_orgs_through_users(
    api: httpx.Client, accounts: Any, platform: Any
) -> None:
    grace = accounts.create("grace")
    request_id = f"e2e-trace-{secrets.token_hex(8)}"
    me = api.get("/api/v1/users/me", headers={**grace.auth, "X-Request-ID": request_id})
    assert me.status_code == 200, me.text
    assert me.json()["organizations"] == []  # orgs answered this very request
    assert me.headers["x-request-id"] == request_id

    # orgs was called by users, not by the test: seeing the id in orgs' log proves users
    # passed it on. Each service writes its access line once its response is complete, which
    # can be a moment after the client has the answer: wait for both lines.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        request_id in platform[name].log_text() for name in ("orgs", "users")
    ):
        time.sleep(0.1)
    lines = [line for line in platform["orgs"].log_text().splitlines() if request_id in line]
    assert lines, f"orgs logged nothing with request id {request_id}"
    assert any("/api/v1/orgs" in line for line in lines), lines
    assert any(request_id in line for line in platform["users"].log_text().splitlines())


def test_body_over_one_mib_is_refused_at_the_edge(api: httpx.Client, accounts: Any) -> None:
    henry = accounts.create("henry")
    too_big = b'{"name": "' + b"x" * ONE_MIB + b'"}'
    response = api.patch(
        "/api/v1/users/me",
        content=too_big,
        headers={**henry.auth, "Content-Type": "application/json", "X-Request-ID": "e2e-413"},
    )
    body = assert_problem(response, 413, "payload_too_large")
    assert body["request_id"] == "e2e-413"
    # Just under the limit passes nginx and reaches users (a name that long is a 422 there).
    under = b'{"name": "' + b"x" * (ONE_MIB - 100) + b'"}'
    response = api.patch(
        "/api/v1/users/me",
        content=under,
        headers={**henry.auth, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "validation_error")


def _recorded_address(platform: Any, access_token: str) -> str | None:
    """The client address auth stored for the token's session, read from auth's database."""
    import asyncio
    import uuid

    from jose import jwt
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    sid = uuid.UUID(jwt.get_unverified_claims(access_token)["sid"])

    async def read() -> str | None:
        engine = create_async_engine(platform["auth"].env["AUTH_DATABASE_URL"])
        try:
            async with engine.connect() as conn:
                query = text("SELECT client_address FROM sessions WHERE id = :sid")
                return (await conn.execute(query, {"sid": sid})).scalar_one()
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.mark.parametrize("forwarded_for", ["203.0.113.9", "x" * 70])
def test_a_client_cannot_choose_its_address_through_the_ingress(
    api: httpx.Client, platform: Any, forwarded_for: str
) -> None:
    # nginx sets X-Forwarded-For to the address it saw; the services trust nginx and no
    # further. Before, the client's own entry became "the address" (and a 70-character one
    # answered 500): the per-address login limit could be dodged and pinned on a victim.
    email = f"xff-{secrets.token_hex(5)}@example.com"
    body = {"email": email, "password": "wonderland rabbit hole"}
    assert api.post("/api/v1/auth/register", json={**body, "name": "X"}).status_code == 201
    response = api.post("/api/v1/auth/login", json=body, headers={"X-Forwarded-For": forwarded_for})
    assert response.status_code == 200, response.text
    assert _recorded_address(platform, response.json()["access_token"]) == "127.0.0.1"


def test_a_browser_preflight_passes_the_ingress(api: httpx.Client) -> None:
    origin = "https://app.e2e.example"  # tests/conftest.py: *_CORS_ORIGINS
    preflight = api.options(
        "/api/v1/orgs",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin
    refused = api.options(
        "/api/v1/orgs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in refused.headers
    actual = api.get("/api/v1/auth/jwks.json", headers={"Origin": origin})
    assert actual.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in actual.headers["access-control-expose-headers"].lower()


def test_rate_limit_headers_reach_the_client_through_the_ingress(
    api: httpx.Client, platform: Any
) -> None:
    """Behind nginx, the caller without a token is counted by the address nginx saw, and
    the draft's headers reach the client (and a browser may read them: CORS exposes them)."""
    response = api.get("/api/v1/auth/jwks.json", headers={"Origin": "https://app.e2e.example"})
    assert response.headers["ratelimit-policy"] == '"anonymous";q=100000;w=60'
    assert response.headers["ratelimit"].startswith('"anonymous";r=')
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "ratelimit-policy" in exposed and "ratelimit" in exposed
    signed_in = api.post(
        "/api/v1/auth/login",
        json={"email": platform.admin_email, "password": platform.admin_password},
    )
    token = signed_in.json()["access_token"]
    me = api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.headers["ratelimit-policy"].startswith('"admin";q=')
