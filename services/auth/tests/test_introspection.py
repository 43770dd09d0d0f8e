"""RFC 7662 introspection and RFC 7009 revocation: every kind of token, active and not, and
who may ask."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from jose import jwt

from platform_testing import TokenFactory, assert_problem, bearer

if TYPE_CHECKING:
    from conftest import AuthApi, FakeOrgs, SignedIn

INTROSPECT = "/api/v1/auth/introspect"
REVOKE = "/api/v1/auth/revoke"
CLIENT = {"client_id": "orgs", "client_secret": "orgs-secret"}  # conftest's service client


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def introspect(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.post(INTROSPECT, data={"token": token}, headers=basic(**_pair()))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer: dict[str, Any] = response.json()
    return answer


def _pair() -> dict[str, str]:
    return {"client_id": CLIENT["client_id"], "secret": CLIENT["client_secret"]}


async def create_pat(client: httpx.AsyncClient, user: SignedIn, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/tokens",
        json={"name": "ci", "expires_in_days": 7, **body},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_an_active_access_token_answers_its_claims(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    answer = await introspect(client, user.token)
    claims = jwt.get_unverified_claims(user.token)
    assert answer["active"] is True
    assert answer["token_kind"] == "access_token"
    for name in ("sub", "sid", "exp", "iat", "iss", "aud", "jti", "role", "email"):
        assert answer[name] == claims[name]


async def test_an_org_token_answers_its_org_claims(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    org_id = fake_orgs.add(user.id, "acme", "member")
    issued = await client.post("/api/v1/auth/org-token", json={"org": "acme"}, headers=user.headers)
    answer = await introspect(client, issued.json()["access_token"])
    assert answer["active"] is True
    assert answer["token_kind"] == "org_access_token"
    assert (answer["org_id"], answer["org_slug"], answer["org_role"]) == (org_id, "acme", "member")
    assert answer["permissions"] == ["members:read", "org:read"]


async def test_a_service_token_is_active(client: httpx.AsyncClient) -> None:
    issued = await client.post(
        "/api/v1/auth/token", data={"grant_type": "client_credentials", **CLIENT}
    )
    answer = await introspect(client, issued.json()["access_token"])
    assert (answer["active"], answer["sub"], answer["scope"]) == (True, "svc:orgs", "users:read")


async def test_a_pat_answers_its_owner_and_scopes_until_deleted(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    created = await create_pat(client, user, scopes=["profile:read"])
    answer = await introspect(client, created["token"])
    assert answer["active"] is True
    assert answer["token_kind"] == "personal_access_token"
    assert (answer["sub"], answer["scope"], answer["pat_id"]) == (
        str(user.id),
        "profile:read",
        created["id"],
    )
    deleted = await client.delete(f"/api/v1/auth/tokens/{created['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert await introspect(client, created["token"]) == {"active": False}


async def test_a_refresh_token_is_active_until_rotated(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    answer = await introspect(client, user.refresh_token)
    assert (answer["active"], answer["token_kind"], answer["sub"]) == (
        True,
        "refresh_token",
        str(user.id),
    )
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert rotated.status_code == 200
    assert await introspect(client, user.refresh_token) == {"active": False}
    assert (await introspect(client, rotated.json()["refresh_token"]))["active"] is True


async def test_dead_and_forged_tokens_are_inactive(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.signed_in()
    forger = TokenFactory("http://127.0.0.1:8001/api/v1/auth", "identity-platform")
    forged = forger.mint(sub=str(user.id))
    logout = await client.post("/api/v1/auth/logout", json={"refresh_token": user.refresh_token})
    assert logout.status_code == 204
    for token in (
        user.token,  # its session ended
        user.refresh_token,
        forged,
        "ipt_" + "A" * 43,
        "garbage",
        forger.mint(ttl=timedelta(seconds=-60)),
    ):
        assert await introspect(client, token) == {"active": False}


async def test_form_credentials_and_service_tokens_may_introspect_too(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    with_form = await client.post(INTROSPECT, data={"token": user.token, **CLIENT})
    assert with_form.json()["active"] is True
    service = await client.post(
        "/api/v1/auth/token", data={"grant_type": "client_credentials", **CLIENT}
    )
    with_token = await client.post(
        INTROSPECT, data={"token": user.token}, headers=bearer(service.json()["access_token"])
    )
    assert with_token.json()["active"] is True


async def test_only_service_clients_may_introspect(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.signed_in()
    body = {"token": user.token}
    assert_problem(await client.post(INTROSPECT, data=body), 401, "not_authenticated")
    wrong = await client.post(INTROSPECT, data=body, headers=basic("orgs", "wrong"))
    assert_problem(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    assert_problem(await client.post(INTROSPECT, data=body, headers=user.headers), 403, "forbidden")


# Revocation ---------------------------------------------------------------------------


async def test_the_owner_revokes_its_refresh_token_and_the_session_ends(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    other = await api.login(user.email)
    response = await client.post(REVOKE, data={"token": user.refresh_token}, headers=other.headers)
    assert response.status_code == 200, response.text
    assert_problem(
        await client.get("/api/v1/auth/sessions", headers=user.headers), 401, "invalid_token"
    )
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert refreshed.status_code == 401
    # The session that asked lives on.
    assert (await client.get("/api/v1/auth/sessions", headers=other.headers)).status_code == 200


async def test_someone_elses_token_is_left_alone_with_the_same_200(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    victim, attacker = await api.signed_in(), await api.signed_in()
    pat = await create_pat(client, victim)
    for token in (victim.refresh_token, victim.token, pat["token"], "ipt_unknown", "nothing"):
        response = await client.post(REVOKE, data={"token": token}, headers=attacker.headers)
        assert response.status_code == 200, response.text
    assert (await client.get("/api/v1/auth/sessions", headers=victim.headers)).status_code == 200
    assert (await introspect(client, pat["token"]))["active"] is True
    assert (await introspect(client, victim.refresh_token))["active"] is True


async def test_the_owner_revokes_its_pat(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.signed_in()
    pat = await create_pat(client, user)
    response = await client.post(REVOKE, data={"token": pat["token"]}, headers=user.headers)
    assert response.status_code == 200
    assert await introspect(client, pat["token"]) == {"active": False}
    listed = await client.get("/api/v1/auth/tokens", headers=user.headers)
    assert listed.json()["items"] == []


async def test_a_service_client_revokes_any_users_access_token(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    response = await client.post(REVOKE, data={"token": user.token, **CLIENT})
    assert response.status_code == 200, response.text
    assert_problem(
        await client.get("/api/v1/auth/sessions", headers=user.headers), 401, "invalid_token"
    )


@pytest.mark.parametrize("caller", ["anonymous", "pat", "wrong-client"])
async def test_who_may_not_revoke(client: httpx.AsyncClient, api: AuthApi, caller: str) -> None:
    user = await api.signed_in()
    pat = await create_pat(client, user)
    headers = {
        "anonymous": {},
        "pat": bearer(pat["token"]),
        "wrong-client": basic("orgs", "nope"),
    }[caller]
    response = await client.post(REVOKE, data={"token": user.refresh_token}, headers=headers)
    status, code = {
        "anonymous": (401, "not_authenticated"),
        "pat": (403, "insufficient_scope"),
        "wrong-client": (401, "invalid_client"),
    }[caller]
    assert_problem(response, status, code)
    assert (await introspect(client, user.refresh_token))["active"] is True


async def test_discovery_names_both_endpoints(client: httpx.AsyncClient) -> None:
    config = (await client.get("/api/v1/auth/.well-known/openid-configuration")).json()
    assert config["introspection_endpoint"].endswith("/introspect")
    assert config["revocation_endpoint"].endswith("/revoke")
