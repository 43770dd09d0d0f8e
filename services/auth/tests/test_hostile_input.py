"""Input that used to reach PostgreSQL or FastAPI's defaults unchecked (regressions found by
tests/fuzz): a 4xx in the endpoint's own error form, never a 500."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import AuthApi

TOKEN_URL = "/api/v1/auth/token"


async def test_a_name_with_nul_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": "nul@example.com",
            "password": "a perfectly fine passphrase",
            "name": "a\x00",
        },
    )
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["name"]


async def test_an_email_with_nul_is_just_unknown(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.register()
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": user["email"] + "\x00", "password": "a perfectly fine passphrase"},
    )
    assert_problem(login, 401, "invalid_credentials")

    token = await client.post(
        TOKEN_URL,
        data={"grant_type": "password", "username": "a\x00", "password": "whatever"},
    )
    assert token.status_code == 400, token.text
    assert token.json()["error"] == "invalid_grant"


async def test_an_unparseable_token_request_is_an_oauth_error(client: httpx.AsyncClient) -> None:
    # A multipart body without its boundary fails before the endpoint runs.
    response = await client.post(
        TOKEN_URL,
        content=b"grant_type=password",
        headers={"content-type": "multipart/form-data"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "invalid_request"
    assert response.headers["cache-control"] == "no-store"

    # Anywhere else the same failure stays problem+json.
    elsewhere = await client.post(
        "/api/v1/auth/login", content=b"\xff", headers={"content-type": "application/json"}
    )
    assert_problem(elsewhere, 400, "bad_request")


async def test_the_token_endpoint_declares_its_throttling(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/v1/auth/openapi.json")).json()
    assert "429" in schema["paths"][TOKEN_URL]["post"]["responses"]
