"""Refresh rotation and reuse detection, logout, logout-all, sessions, password change."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from platform_testing import Caller, assert_problem

if TYPE_CHECKING:
    from conftest import AuthApi


async def sessions_of(client: httpx.AsyncClient, caller: Caller) -> httpx.Response:
    return await client.get("/api/v1/auth/sessions", headers=caller.headers)


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def test_refresh_rotates_and_keeps_the_session(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    first = await api.signed_in()
    response = await refresh(client, first.refresh_token)
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first.refresh_token
    rotated = Caller(first.id, second["access_token"])
    listed = (await sessions_of(client, rotated)).json()
    assert listed["total"] == 1 and listed["items"][0]["current"] is True


async def test_refresh_reuse_ends_the_whole_session(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    first = await api.signed_in()
    rotated = (await refresh(client, first.refresh_token)).json()
    # An attacker replays the stolen, already rotated token...
    reuse = await refresh(client, first.refresh_token)
    assert_problem(reuse, 401, "invalid_refresh_token")
    # ...which ends the session: the legitimate holder's newer tokens are dead too.
    newer = await refresh(client, rotated["refresh_token"])
    assert_problem(newer, 401, "invalid_refresh_token")
    holder = Caller(first.id, rotated["access_token"])
    assert_problem(await sessions_of(client, holder), 401, "invalid_token")


async def test_unknown_refresh_token(client: httpx.AsyncClient) -> None:
    response = await refresh(client, "made-up")
    assert_problem(response, 401, "invalid_refresh_token")
    missing = await client.post("/api/v1/auth/refresh", json={})
    assert_problem(missing, 422, "validation_error")


async def test_logout_ends_that_session_only(client: httpx.AsyncClient, api: AuthApi) -> None:
    a = await api.signed_in()
    b = await api.login(a.email)
    response = await client.post("/api/v1/auth/logout", json={"refresh_token": a.refresh_token})
    assert response.status_code == 204
    assert_problem(await sessions_of(client, a), 401, "invalid_token")
    assert_problem(await refresh(client, a.refresh_token), 401, "invalid_refresh_token")
    still = await sessions_of(client, b)
    assert still.status_code == 200 and still.json()["total"] == 1
    # Logging out twice, or with a token we never issued, is not an error.
    again = await client.post("/api/v1/auth/logout", json={"refresh_token": a.refresh_token})
    assert again.status_code == 204
    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": "nope"})
    ).status_code == 204


async def test_logout_all(client: httpx.AsyncClient, api: AuthApi) -> None:
    a = await api.signed_in()
    b = await api.login(a.email)
    other = await api.signed_in()
    assert (await client.post("/api/v1/auth/logout-all", headers=a.headers)).status_code == 204
    for session in (a, b):
        assert_problem(await sessions_of(client, session), 401, "invalid_token")
        assert (await refresh(client, session.refresh_token)).status_code == 401
    assert (await sessions_of(client, other)).status_code == 200
    anonymous = await client.post("/api/v1/auth/logout-all")
    assert_problem(anonymous, 401, "not_authenticated")
    assert anonymous.headers["www-authenticate"] == "Bearer"


async def test_sessions_list_and_delete(client: httpx.AsyncClient, api: AuthApi) -> None:
    a = await api.signed_in()
    b = await api.login(a.email, **{"User-Agent": "phone/1.0"})
    listed = (await sessions_of(client, a)).json()
    assert listed["total"] == 2 and listed["page"] == 1 and listed["pages"] == 1
    agents = {s["user_agent"] for s in listed["items"]}
    assert "phone/1.0" in agents
    assert all(
        {"id", "created_at", "last_used_at", "user_agent"} <= s.keys() for s in listed["items"]
    )
    phone = next(s for s in listed["items"] if s["user_agent"] == "phone/1.0")
    r = await client.delete(f"/api/v1/auth/sessions/{phone['id']}", headers=a.headers)
    assert r.status_code == 204
    assert_problem(await sessions_of(client, b), 401, "invalid_token")
    assert (await sessions_of(client, a)).json()["total"] == 1


async def test_deleting_another_users_session_is_404(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    mine = await api.signed_in()
    theirs = await api.signed_in()
    their_session = (await sessions_of(client, theirs)).json()["items"][0]["id"]
    r = await client.delete(f"/api/v1/auth/sessions/{their_session}", headers=mine.headers)
    assert_problem(r, 404, "not_found")
    assert (await sessions_of(client, theirs)).status_code == 200
    r = await client.delete(f"/api/v1/auth/sessions/{uuid.uuid4()}", headers=mine.headers)
    assert_problem(r, 404, "not_found")
    r = await client.delete("/api/v1/auth/sessions/not-a-uuid", headers=mine.headers)
    assert_problem(r, 422, "validation_error")


async def test_sessions_pagination(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.signed_in()
    for _ in range(2):
        await api.login(user.email)
    page = (await client.get("/api/v1/auth/sessions?limit=2&page=2", headers=user.headers)).json()
    assert (page["total"], page["pages"], len(page["items"])) == (3, 2, 1)
    bad = await client.get("/api/v1/auth/sessions?limit=101", headers=user.headers)
    assert_problem(bad, 422, "validation_error")


async def test_password_change(client: httpx.AsyncClient, api: AuthApi) -> None:
    current = await api.signed_in()
    other = await api.login(current.email)
    new = "an entirely new passphrase"
    r = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "a perfectly fine passphrase", "new_password": new},
        headers=current.headers,
    )
    assert r.status_code == 204
    assert (await sessions_of(client, current)).status_code == 200
    assert_problem(await sessions_of(client, other), 401, "invalid_token")
    old = await client.post(
        "/api/v1/auth/login",
        json={"email": current.email, "password": "a perfectly fine passphrase"},
    )
    assert old.status_code == 401
    await api.login(current.email, new)


async def test_password_change_refusals(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.signed_in()
    wrong = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": "another fine passphrase"},
        headers=user.headers,
    )
    assert_problem(wrong, 403, "invalid_credentials")
    weak = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "a perfectly fine passphrase", "new_password": "password1"},
        headers=user.headers,
    )
    assert_problem(weak, 422, "weak_password")
    await api.login(user.email)  # unchanged


async def test_two_tabs_refreshing_at_once_keep_the_session(api: AuthApi, started: Any) -> None:
    async with started(refresh_reuse_interval_seconds=5) as client:
        api = type(api)(client, client.app)
        first = await api.signed_in()
        both = await asyncio.gather(
            refresh(client, first.refresh_token), refresh(client, first.refresh_token)
        )
        assert [r.status_code for r in both] == [200, 200], [r.text for r in both]
        # Both tabs go on: each new refresh token works, and the session is alive.
        for answer in both:
            again = await refresh(client, answer.json()["refresh_token"])
            assert again.status_code == 200, again.text
            tab = Caller(first.id, again.json()["access_token"])
            assert (await sessions_of(client, tab)).status_code == 200


async def test_reuse_after_the_grace_still_ends_the_session(api: AuthApi, started: Any) -> None:
    async with started(refresh_reuse_interval_seconds=0.5) as client:
        api = type(api)(client, client.app)
        first = await api.signed_in()
        rotated = (await refresh(client, first.refresh_token)).json()
        await asyncio.sleep(0.8)
        assert_problem(await refresh(client, first.refresh_token), 401, "invalid_refresh_token")
        holder = Caller(first.id, rotated["access_token"])
        assert_problem(await sessions_of(client, holder), 401, "invalid_token")
