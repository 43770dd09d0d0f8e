"""Security events at auth: each recorded in auth's transaction, served to platform admins
by `GET /api/v1/auth/audit-log`, and relayed to `events:auth`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
from redis.asyncio import Redis

from platform_testing import Backends, assert_problem, wait_for

if TYPE_CHECKING:
    from conftest import AuthApi, SignedIn

AUDIT = "/api/v1/auth/audit-log"
PASSWORD = "a perfectly fine passphrase"


async def events(client: httpx.AsyncClient, admin: SignedIn, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, params={"limit": 100, **params}, headers=admin.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_logins_sessions_and_password_are_recorded(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    admin = await api.admin()
    user = await api.register()
    signed = await api.login(user["email"], **{"User-Agent": "audit-agent/2"})
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": "wrong password!"}
    )
    assert response.status_code == 401
    response = await client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another fine passphrase"},
        headers=signed.headers,
    )
    assert response.status_code == 204
    other = await api.login(user["email"], "another fine passphrase")
    response = await client.post("/api/v1/auth/logout", json={"refresh_token": other.refresh_token})
    assert response.status_code == 204

    mine = await events(client, admin, user_id=user["id"])
    assert [e["type"] for e in mine] == [
        "session.ended",
        "login.succeeded",
        "password.changed",
        "login.failed",
        "login.succeeded",
        "user.registered",
    ]
    ended, _, _, failed, succeeded, registered = mine
    assert registered["target"] == {"type": "user", "id": user["id"]}
    assert registered["data"]["email"] == user["email"]
    assert succeeded["user_agent"] == "audit-agent/2"
    assert succeeded["ip"] == "127.0.0.1"
    assert succeeded["actor"] == {"id": user["id"], "kind": "user"}
    assert failed["data"]["reason"] == "invalid_credentials"
    assert failed["target"] == {"type": "user", "id": user["id"]}
    assert ended["target"]["type"] == "session"
    assert ended["data"]["reason"] == "logout"
    assert all(e["org_id"] is None for e in mine)


async def test_failed_logins_for_unknown_emails_are_recorded_bounded(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    admin = await api.admin()
    email = "x" * 300 + "@nowhere.example"  # within the login's 320 characters
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": "whatever it is"}
    )
    assert response.status_code == 401
    [failed] = await events(client, admin, type="login.failed")
    assert failed["data"]["email"] == email.lower()
    assert failed["actor"] == {"id": None, "kind": "user"}
    assert failed["target"]["type"] == "user"
    assert len(failed["target"]["id"]) <= 320


async def test_disable_enable_and_tokens_are_recorded(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    admin = await api.admin()
    user = await api.signed_in()
    response = await client.post(
        "/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 30}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    token = response.json()
    response = await client.delete(f"/api/v1/auth/tokens/{token['id']}", headers=user.headers)
    assert response.status_code == 204
    for action in ("disable", "enable"):
        response = await client.post(
            f"/api/v1/auth/users/{user.id}/{action}", headers=admin.headers
        )
        assert response.status_code == 204

    mine = await events(client, admin, user_id=str(user.id))
    types = [e["type"] for e in mine]
    assert types[:5] == [
        "user.enabled",
        "session.ended",
        "user.disabled",
        "token.deleted",
        "token.created",
    ]
    enabled, ended, disabled, deleted, created = mine[:5]
    assert disabled["actor"] == {"id": str(admin.id), "kind": "user"}
    assert enabled["actor"] == {"id": str(admin.id), "kind": "user"}
    assert ended["data"]["reason"] == "disabled"
    assert created["target"] == {"type": "token", "id": token["id"]}
    assert created["data"]["name"] == "ci"
    assert deleted["target"] == {"type": "token", "id": token["id"]}

    only = await events(client, admin, type="user.disabled")
    assert [e["target"]["id"] for e in only] == [str(user.id)]


async def test_audit_log_is_for_platform_admins_only(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    assert_problem(await client.get(AUDIT, headers=user.headers), 403, "forbidden")
    assert (await client.get(AUDIT)).status_code == 401
    admin = await api.admin()
    response = await client.get(AUDIT, params={"limit": 2}, headers=admin.headers)
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"items", "total", "page", "limit", "pages"}
    assert page["total"] >= 4  # two registrations, two logins
    assert len(page["items"]) == 2
    response = await client.get(AUDIT, params={"type": "nope"}, headers=admin.headers)
    assert response.status_code == 422


async def test_security_events_are_relayed_to_the_stream(
    started: Any, api_for: Any, backends: Backends
) -> None:
    async with started(run_outbox=True, events_poll_seconds=0.05) as client:
        user = await api_for(client).register()
        redis = Redis.from_url(backends.redis_url, decode_responses=True)
        try:

            async def relayed() -> list[dict[str, Any]]:
                entries = await redis.xrange("events:auth")
                found = [json.loads(fields["event"]) for _, fields in entries]
                return [e for e in found if e["target"]["id"] == user["id"]]

            [event] = await wait_for(relayed, within=5)
            assert event["type"] == "user.registered"
            assert event["actor"] == {"id": user["id"], "kind": "user"}
        finally:
            await redis.aclose()
