"""Per-caller rate limits on every API endpoint (platform_common.rate_limit), with the IETF
draft's RateLimit-Policy / RateLimit headers, against the real Redis."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from platform_testing import Backends, TokenFactory, assert_problem, flush_redis, running

LIMITS = {
    "rate_limit_anonymous": "2/minute",
    "rate_limit_user": "3/minute",
    "rate_limit_admin": "5/minute",
}
HEADER = re.compile(r'^"(?P<name>\w+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


@pytest.fixture
async def limited(
    make_app: Callable[..., FastAPI], tokens: TokenFactory, backends: Backends
) -> AsyncIterator[httpx.AsyncClient]:
    await flush_redis(backends.redis_url)
    app = make_app(lambda request: httpx.Response(200, json=tokens.jwks()), **LIMITS)
    async with running(app, raise_app_exceptions=False) as client:
        yield client


def remaining(response: httpx.Response) -> tuple[str, int, int]:
    match = HEADER.match(response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return match["name"], int(match["r"]), int(match["t"])


async def test_each_user_has_its_limit_and_is_told_what_is_left(
    limited: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    alice = {"Authorization": f"Bearer {tokens.mint()}"}
    seen = []
    for _ in range(3):
        r = await limited.get("/api/v1/demo/whoami", headers=alice)
        assert r.status_code == 200
        assert r.headers["ratelimit-policy"] == '"user";q=3;w=60'
        name, left, reset = remaining(r)
        assert name == "user" and 1 <= reset <= 60
        seen.append(left)
    assert seen == [2, 1, 0]

    over = await limited.get("/api/v1/demo/whoami", headers=alice)
    body = assert_problem(over, 429, "rate_limited")
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert over.headers["ratelimit-policy"] == '"user";q=3;w=60'
    assert remaining(over)[1] == 0
    assert "slow down" in body["detail"]

    # Another user, even from the same address, has a budget of its own.
    bob = {"Authorization": f"Bearer {tokens.mint()}"}
    assert (await limited.get("/api/v1/demo/whoami", headers=bob)).status_code == 200


async def test_limits_follow_the_role(limited: httpx.AsyncClient, tokens: TokenFactory) -> None:
    admin = {"Authorization": f"Bearer {tokens.mint(role='admin')}"}
    statuses = [
        (await limited.get("/api/v1/demo/admin-only", headers=admin)).status_code for _ in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    exposed = (await limited.get("/metrics")).text
    assert 'rate_limited_requests_total{policy="admin"} 1.0' in exposed
    assert 'rate_limited_requests_total{policy="user"} 0.0' in exposed


async def test_callers_without_a_valid_token_count_by_address(
    limited: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    forged = {"Authorization": "Bearer not.a.token"}
    first = await limited.get("/api/v1/demo/whoami")
    assert first.status_code == 401
    assert first.headers["ratelimit-policy"] == '"anonymous";q=2;w=60'
    # A bad token does not buy a budget of its own: same address, same count.
    assert (await limited.get("/api/v1/demo/whoami", headers=forged)).status_code == 401
    over = await limited.get("/api/v1/demo/whoami", headers=forged)
    assert_problem(over, 429, "rate_limited")
    # A valid token is counted as its user, not as the address.
    user = {"Authorization": f"Bearer {tokens.mint()}"}
    assert (await limited.get("/api/v1/demo/whoami", headers=user)).status_code == 200


async def test_health_and_metrics_are_not_limited(limited: httpx.AsyncClient) -> None:
    for _ in range(5):
        r = await limited.get("/livez")
        assert r.status_code == 200
        assert "ratelimit" not in r.headers


async def test_a_failing_redis_does_not_take_public_endpoints_down(
    make_app: Callable[..., FastAPI], tokens: TokenFactory
) -> None:
    app = make_app(
        lambda request: httpx.Response(200, json=tokens.jwks()),
        redis_url="redis://127.0.0.1:1/0",
        **LIMITS,
    )
    async with running(app, raise_app_exceptions=False) as client:
        r = await client.get("/api/v1/demo/whoami")
        assert r.status_code == 401  # let through, not 503: the limiter fails open
        assert "ratelimit" not in r.headers
        # ... and counted, for the dashboard's Redis errors panel.
        exposed = (await client.get("/metrics")).text
        assert 'redis_errors_total{error="ConnectionError"} 1.0' in exposed


def test_a_malformed_limit_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from platform_common.settings import ServiceSettings

    with pytest.raises(ValidationError, match="rate limit"):
        ServiceSettings(rate_limit_user="lots")
