"""POST /api/v1/auth/token: the OAuth2 endpoint, answering errors in RFC 6749 form."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import httpx
from jose import jwt

if TYPE_CHECKING:
    from conftest import AuthApi

URL = "/api/v1/auth/token"
PASSWORD = "a perfectly fine passphrase"
ORGS_SECRET = "orgs-secret"  # the conftest's client `orgs`


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert response.headers["cache-control"] == "no-store"


async def token_request(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **form: str
) -> httpx.Response:
    return await client.post(URL, data=form, headers=headers)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_password_grant(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.register()
    response = await token_request(
        client, grant_type="password", username=user["email"], password=PASSWORD
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["refresh_token"] and body["access_token"]


async def test_password_grant_with_bad_credentials(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.register()
    response = await token_request(
        client, grant_type="password", username=user["email"], password="wrong one"
    )
    assert_oauth_error(response, 400, "invalid_grant")


async def test_refresh_token_grant_rotates(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.signed_in()
    response = await token_request(
        client, grant_type="refresh_token", refresh_token=user.refresh_token
    )
    assert response.status_code == 200
    assert response.json()["refresh_token"] != user.refresh_token
    again = await token_request(
        client, grant_type="refresh_token", refresh_token=user.refresh_token
    )
    assert_oauth_error(again, 400, "invalid_grant")


async def test_client_credentials_post_and_basic(client: httpx.AsyncClient) -> None:
    posted = await token_request(
        client, grant_type="client_credentials", client_id="orgs", client_secret=ORGS_SECRET
    )
    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert body["scope"] == "users:read"
    assert "refresh_token" not in body
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["sub"] == "svc:orgs"
    assert claims["scope"] == "users:read"
    assert "sid" not in claims

    response = await token_request(
        client, basic("orgs", ORGS_SECRET), grant_type="client_credentials"
    )
    assert response.status_code == 200


async def test_a_malformed_basic_header_counts_as_none(client: httpx.AsyncClient) -> None:
    # The form's credentials still apply...
    for header in ("Basic !!!", "Basic b3Jncw==", "Basic"):  # not base64; no colon; empty
        response = await token_request(
            client,
            {"Authorization": header},
            grant_type="client_credentials",
            client_id="orgs",
            client_secret=ORGS_SECRET,
        )
        assert response.status_code == 200, (header, response.text)
    # ...and without them the answer is RFC 6749's, not problem+json.
    alone = await token_request(
        client, {"Authorization": "Basic !!!"}, grant_type="client_credentials"
    )
    assert_oauth_error(alone, 401, "invalid_client")
    assert alone.headers["www-authenticate"] == 'Basic realm="auth"'


async def test_client_credentials_refusals(client: httpx.AsyncClient) -> None:
    wrong = await token_request(
        client, grant_type="client_credentials", client_id="orgs", client_secret="nope"
    )
    assert_oauth_error(wrong, 401, "invalid_client")
    unknown = await token_request(
        client, grant_type="client_credentials", client_id="who", client_secret="x"
    )
    assert_oauth_error(unknown, 401, "invalid_client")
    wrong_basic = await token_request(
        client, basic("orgs", "nope"), grant_type="client_credentials"
    )
    assert_oauth_error(wrong_basic, 401, "invalid_client")
    too_much = await token_request(
        client,
        grant_type="client_credentials",
        client_id="orgs",
        client_secret=ORGS_SECRET,
        scope="users:read users:provision",
    )
    assert_oauth_error(too_much, 401, "invalid_client")
    anonymous = await token_request(client, grant_type="client_credentials")
    assert_oauth_error(anonymous, 401, "invalid_client")


async def test_malformed_requests(client: httpx.AsyncClient) -> None:
    assert_oauth_error(await client.post(URL, data={}), 400, "invalid_request")
    assert_oauth_error(
        await token_request(client, grant_type="implicit"), 400, "unsupported_grant_type"
    )
    assert_oauth_error(
        await token_request(client, grant_type="password", username="a@b.c"),
        400,
        "invalid_request",
    )


async def test_password_grant_is_throttled_too(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.register()
    for _ in range(5):
        await token_request(
            client, grant_type="password", username=user["email"], password="bad guess"
        )
    response = await token_request(
        client, grant_type="password", username=user["email"], password="bad guess"
    )
    assert_oauth_error(response, 429, "slow_down")
    assert int(response.headers["retry-after"]) > 0


async def test_openapi_offers_the_authorize_button(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/auth/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    flows = next(iter(schemes.values()))["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/token"
    docs = await client.get("/api/v1/auth/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_over_the_rate_limit_the_token_endpoint_answers_in_oauth_form(started: Any) -> None:
    async with started(rate_limit_anonymous="2/minute") as client:
        form = {"grant_type": "client_credentials", "client_id": "orgs", "client_secret": "x"}
        statuses = [
            (await client.post("/api/v1/auth/token", data=form)).status_code for _ in range(2)
        ]
        assert statuses == [401, 401]
        over = await client.post("/api/v1/auth/token", data=form)
        assert over.status_code == 429
        assert over.json()["error"] == "slow_down"
        assert int(over.headers["retry-after"]) >= 1
        assert over.headers["ratelimit-policy"] == '"anonymous";q=2;w=60'
        # Elsewhere the same limit answers problem+json.
        login = await client.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x"})
        assert login.status_code == 429
        assert login.headers["content-type"].startswith("application/problem+json")
