"""Personal access tokens at auth: creating, listing, deleting, what a PAT may not do, and
auth vouching for one to the other services (the internal exchange)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from jose import jwt
from sqlalchemy import select, update

from auth.models import PersonalAccessToken
from platform_common.clock import utcnow
from platform_common.opaque_tokens import hash_token
from platform_common.permissions import PAT_SCOPES
from platform_common.state import platform_state
from platform_testing import assert_problem, bearer, refused_within

if TYPE_CHECKING:
    from conftest import AuthApi, SignedIn
    from fastapi import FastAPI

TOKENS = "/api/v1/auth/tokens"
EXCHANGE = "/internal/v1/auth/personal-tokens/exchange"


async def create_pat(client: httpx.AsyncClient, user: SignedIn, **body: Any) -> dict[str, Any]:
    response = await client.post(
        TOKENS, json={"name": "ci", "expires_in_days": 30, **body}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def stored(app: FastAPI, token_id: str) -> PersonalAccessToken | None:
    async with platform_state(app).sessionmaker() as db:
        row: PersonalAccessToken | None = await db.scalar(
            select(PersonalAccessToken).where(PersonalAccessToken.id == uuid.UUID(token_id))
        )
        return row


async def test_a_created_token_is_shown_once_and_stored_as_a_hash(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    user = await api.signed_in()
    created = await create_pat(client, user, scopes=["profile:read", "org:read"])
    token = created["token"]
    assert token.startswith("ipt_")
    assert len(token) == len("ipt_") + 43  # 32 random bytes, URL-safe base64
    assert created["scopes"] == ["org:read", "profile:read"]
    assert created["name"] == "ci"
    lifetime = created["expires_at"], created["created_at"]
    assert lifetime[0] > lifetime[1]
    row = await stored(app, created["id"])
    assert row is not None
    assert row.token_hash == hash_token(token)
    assert row.expires_at - row.created_at == timedelta(days=30)

    listed = await client.get(TOKENS, headers=user.headers)
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item == {
        "id": created["id"],
        "name": "ci",
        "scopes": ["org:read", "profile:read"],
        "created_at": created["created_at"],
        "expires_at": created["expires_at"],
        "last_used_at": None,
    }
    assert token not in listed.text


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": 366},
        {"name": "x", "expires_in_days": 7, "scopes": ["admin:everything"]},
        {"name": "", "expires_in_days": 7},
        {"expires_in_days": 7},
    ],
    ids=["0-days", "366-days", "unknown-scope", "empty-name", "no-name"],
)
async def test_invalid_requests_are_422(
    client: httpx.AsyncClient, api: AuthApi, body: dict[str, Any]
) -> None:
    user = await api.signed_in()
    response = await client.post(TOKENS, json=body, headers=user.headers)
    assert_problem(response, 422, "validation_error")


async def test_one_users_tokens_are_not_anothers(client: httpx.AsyncClient, api: AuthApi) -> None:
    alice, bob = await api.signed_in(), await api.signed_in()
    created = await create_pat(client, alice)
    listed = await client.get(TOKENS, headers=bob.headers)
    assert listed.json()["items"] == []
    response = await client.delete(f"{TOKENS}/{created['id']}", headers=bob.headers)
    assert_problem(response, 404, "not_found")
    assert (await exchange(client, created["token"])).status_code == 200


async def exchange(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(EXCHANGE, headers=bearer(token))


async def test_auth_vouches_for_a_live_token_with_its_user_and_scopes(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    narrow = await create_pat(client, user, scopes=["profile:read"])
    full = await create_pat(client, user)
    for created, scope in ((narrow, "profile:read"), (full, " ".join(sorted(PAT_SCOPES)))):
        response = await exchange(client, created["token"])
        assert response.status_code == 200, response.text
        claims = jwt.get_unverified_claims(response.json()["access_token"])
        assert claims["sub"] == str(user.id)
        assert claims["pat_id"] == created["id"]
        assert claims["scope"] == scope
        assert "sid" not in claims
        assert claims["exp"] - claims["iat"] <= 60


async def test_the_stand_in_is_not_a_bearer_token_itself(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    admin = await api.admin()
    created = await create_pat(client, admin)
    stand_in = (await exchange(client, created["token"])).json()["access_token"]
    victim = await api.register()
    response = await client.post(
        f"/api/v1/auth/users/{victim['id']}/disable", headers=bearer(stand_in)
    )
    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize("case", ["deleted", "expired", "disabled", "unknown", "not-a-pat"])
async def test_auth_refuses_to_vouch_for_a_dead_token(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI, case: str
) -> None:
    user = await api.signed_in()
    created = await create_pat(client, user)
    token = created["token"]
    if case == "deleted":
        deleted = await client.delete(f"{TOKENS}/{created['id']}", headers=user.headers)
        assert deleted.status_code == 204
    elif case == "expired":
        async with platform_state(app).sessionmaker() as db, db.begin():
            await db.execute(
                update(PersonalAccessToken)
                .where(PersonalAccessToken.id == uuid.UUID(created["id"]))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    elif case == "disabled":
        admin = await api.admin()
        disabled = await client.post(f"/api/v1/auth/users/{user.id}/disable", headers=admin.headers)
        assert disabled.status_code == 204
    elif case == "unknown":
        token = "ipt_" + "A" * 43
    else:
        token = user.token
    assert_problem(await exchange(client, token), 401, "invalid_token")


async def test_last_used_is_recorded_at_most_once_a_minute(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    user = await api.signed_in()
    created = await create_pat(client, user)
    assert (await exchange(client, created["token"])).status_code == 200
    first = await stored(app, created["id"])
    assert first is not None and first.last_used_at is not None
    await asyncio.sleep(0.05)
    assert (await exchange(client, created["token"])).status_code == 200
    second = await stored(app, created["id"])
    assert second is not None and second.last_used_at == first.last_used_at
    # A minute on, the next use is recorded.
    async with platform_state(app).sessionmaker() as db, db.begin():
        await db.execute(
            update(PersonalAccessToken)
            .where(PersonalAccessToken.id == uuid.UUID(created["id"]))
            .values(last_used_at=utcnow() - timedelta(seconds=61))
        )
    assert (await exchange(client, created["token"])).status_code == 200
    third = await stored(app, created["id"])
    assert third is not None and third.last_used_at is not None
    assert third.last_used_at > first.last_used_at
    listed = (await client.get(TOKENS, headers=user.headers)).json()["items"]
    assert listed[0]["last_used_at"] is not None


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", TOKENS, {"name": "more", "expires_in_days": 1}),
        ("GET", TOKENS, None),
        ("DELETE", TOKENS + "/{pat_id}", None),
        ("POST", "/api/v1/auth/password", {"current_password": "x", "new_password": "y" * 12}),
        ("POST", "/api/v1/auth/logout-all", None),
        ("GET", "/api/v1/auth/sessions", None),
        ("POST", "/api/v1/auth/org-token", {"org": "acme"}),
        ("DELETE", "/api/v1/auth/me", {"current_password": "a perfectly fine passphrase"}),
        (
            "POST",
            "/api/v1/auth/email/change",
            {"new_email": "n@example.com", "current_password": "x"},
        ),
    ],
)
async def test_a_pat_cannot_touch_the_accounts_own_security(
    client: httpx.AsyncClient, api: AuthApi, method: str, path: str, body: dict[str, Any] | None
) -> None:
    user = await api.signed_in()
    created = await create_pat(client, user)
    response = await client.request(
        method, path.format(pat_id=created["id"]), json=body, headers=bearer(created["token"])
    )
    assert_problem(response, 403, "insufficient_scope")
    # Nothing happened: the token and the session are still there.
    listed = await client.get(TOKENS, headers=user.headers)
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]


async def test_a_deleted_token_fails_at_auth_itself_within_seconds(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    """auth verifies PATs in-process, with the same few seconds' cache as every service: an
    admin's PAT (which may disable users) stops working within 5 s of its deletion."""
    admin = await api.admin()
    created = await create_pat(client, admin)
    victim = await api.register()
    path = f"/api/v1/auth/users/{victim['id']}/enable"
    assert (await client.post(path, headers=bearer(created["token"]))).status_code == 204
    deleted = await client.delete(f"{TOKENS}/{created['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    pat = bearer(created["token"])
    assert await refused_within(lambda: client.post(path, headers=pat)) < 5.0


async def test_the_openapi_says_which_operations_a_pat_may_not_use(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/api/v1/auth/openapi.json")).json()["paths"]
    for path, method in (
        ("/api/v1/auth/tokens", "post"),
        ("/api/v1/auth/tokens", "get"),
        ("/api/v1/auth/tokens/{token_id}", "delete"),
        ("/api/v1/auth/password", "post"),
        ("/api/v1/auth/org-token", "post"),
    ):
        (who,) = paths[path][method]["x-accepted-tokens"]
        assert "a personal access token or an org-scoped token gets 403" in who, path
    assert paths["/api/v1/auth/register"]["post"]["x-accepted-tokens"] == ["none needed"]


async def test_an_admins_pat_needs_the_admin_scope_for_admin_operations(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    admin = await api.admin()
    victim = await api.register()
    path = f"/api/v1/auth/users/{victim['id']}/enable"
    narrow = await create_pat(client, admin, scopes=["profile:read"])
    assert_problem(
        await client.post(path, headers=bearer(narrow["token"])), 403, "insufficient_scope"
    )
    scoped = await create_pat(client, admin, scopes=["platform:admin"])
    assert (await client.post(path, headers=bearer(scoped["token"]))).status_code == 204
    # The scope gives nothing to someone who is not an admin.
    user = await api.signed_in()
    mine = await create_pat(client, user, scopes=["platform:admin"])
    assert_problem(await client.post(path, headers=bearer(mine["token"])), 403, "forbidden")
