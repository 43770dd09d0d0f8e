"""Tokens: every public route needs a valid one, answered 401 + WWW-Authenticate otherwise."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

from platform_testing import TokenFactory, assert_problem

if TYPE_CHECKING:
    from conftest import FakeAuth


ROUTES = [
    ("GET", "/api/v1/users/me"),
    ("PATCH", "/api/v1/users/me"),
    ("GET", "/api/v1/users/00000000-0000-0000-0000-000000000001"),
    ("POST", "/api/v1/users/lookup"),
    ("GET", "/api/v1/users"),
    ("PUT", "/internal/v1/users/00000000-0000-0000-0000-000000000001"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_no_token_is_401(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={})

    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_malformed_token_is_401(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(
        method, path, json={}, headers={"Authorization": "Bearer not-a-jwt"}
    )

    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_from_another_issuer_key_is_401(client: httpx.AsyncClient) -> None:
    stranger = TokenFactory("http://auth.test/api/v1/auth", "identity-platform")

    response = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {stranger.mint()}"}
    )

    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_expired_token_is_401(client: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    token = token_factory.mint(email="a@example.com", name="A", ttl=timedelta(minutes=-5))

    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})

    assert_problem(response, 401, "invalid_token")


async def test_health_endpoints_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/livez")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_openapi_documents_the_degraded_me(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/users/openapi.json")).json()

    me = spec["paths"]["/api/v1/users/me"]["get"]
    assert '"organizations": null' in me["description"]
    assert "Warning" in me["responses"]["200"]["headers"]
    # The internal route is served but never under the public prefix.
    assert "/internal/v1/users/{user_id}" in spec["paths"]
    assert not any(p.startswith("/api/v1/users/internal") for p in spec["paths"])


async def test_valid_token_is_accepted(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    caller = auth.user()

    assert (await client.get("/api/v1/users/me", headers=caller.headers)).status_code == 200
