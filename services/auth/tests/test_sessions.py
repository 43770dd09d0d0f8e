"""Refresh rotation and reuse detection, logout, logout-all, sessions, password change."""

from __future__ import annotations

import uuid

import httpx

from platform_testing import assert_problem


def bearer(tokens: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def sessions_of(client: httpx.AsyncClient, tokens: dict) -> httpx.Response:  # type: ignore[type-arg]
    return await client.get("/api/v1/auth/sessions", headers=bearer(tokens))


async def test_refresh_rotates_and_keeps_the_session(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    _, first = await api.user_with_tokens()
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    listed = (await sessions_of(client, second)).json()
    assert listed["total"] == 1 and listed["items"][0]["current"] is True


async def test_refresh_reuse_ends_the_whole_session(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    _, first = await api.user_with_tokens()
    rotated = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    # An attacker replays the stolen, already rotated token...
    reuse = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_problem(reuse, 401, "invalid_refresh_token")
    # ...which ends the session: the legitimate holder's newer tokens are dead too.
    newer = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert_problem(newer, 401, "invalid_refresh_token")
    assert_problem(await sessions_of(client, rotated), 401, "invalid_token")


async def test_unknown_refresh_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})
    assert_problem(response, 401, "invalid_refresh_token")
    missing = await client.post("/api/v1/auth/refresh", json={})
    assert_problem(missing, 422, "validation_error")


async def test_logout_ends_that_session_only(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user, a = await api.user_with_tokens()
    b = await api.login(user["email"])
    response = await client.post("/api/v1/auth/logout", json={"refresh_token": a["refresh_token"]})
    assert response.status_code == 204
    assert_problem(await sessions_of(client, a), 401, "invalid_token")
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": a["refresh_token"]}
    )
    assert_problem(refreshed, 401, "invalid_refresh_token")
    still = await sessions_of(client, b)
    assert still.status_code == 200 and still.json()["total"] == 1
    # Logging out twice, or with a token we never issued, is not an error.
    again = await client.post("/api/v1/auth/logout", json={"refresh_token": a["refresh_token"]})
    assert again.status_code == 204
    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": "nope"})
    ).status_code == 204


async def test_logout_all(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user, a = await api.user_with_tokens()
    b = await api.login(user["email"])
    other_user, other = await api.user_with_tokens()
    assert (await client.post("/api/v1/auth/logout-all", headers=bearer(a))).status_code == 204
    for tokens in (a, b):
        assert_problem(await sessions_of(client, tokens), 401, "invalid_token")
        r = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert r.status_code == 401
    assert (await sessions_of(client, other)).status_code == 200
    anonymous = await client.post("/api/v1/auth/logout-all")
    assert_problem(anonymous, 401, "not_authenticated")
    assert anonymous.headers["www-authenticate"] == "Bearer"


async def test_sessions_list_and_delete(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user, a = await api.user_with_tokens()
    b = await api.login(user["email"], **{"User-Agent": "phone/1.0"})
    listed = (await sessions_of(client, a)).json()
    assert listed["total"] == 2 and listed["page"] == 1 and listed["pages"] == 1
    agents = {s["user_agent"] for s in listed["items"]}
    assert "phone/1.0" in agents
    assert all(
        {"id", "created_at", "last_used_at", "user_agent"} <= s.keys() for s in listed["items"]
    )
    phone = next(s for s in listed["items"] if s["user_agent"] == "phone/1.0")
    r = await client.delete(f"/api/v1/auth/sessions/{phone['id']}", headers=bearer(a))
    assert r.status_code == 204
    assert_problem(await sessions_of(client, b), 401, "invalid_token")
    assert (await sessions_of(client, a)).json()["total"] == 1


async def test_deleting_another_users_session_is_404(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    _, mine = await api.user_with_tokens()
    _, theirs = await api.user_with_tokens()
    their_session = (await sessions_of(client, theirs)).json()["items"][0]["id"]
    r = await client.delete(f"/api/v1/auth/sessions/{their_session}", headers=bearer(mine))
    assert_problem(r, 404, "not_found")
    assert (await sessions_of(client, theirs)).status_code == 200
    r = await client.delete(f"/api/v1/auth/sessions/{uuid.uuid4()}", headers=bearer(mine))
    assert_problem(r, 404, "not_found")
    r = await client.delete("/api/v1/auth/sessions/not-a-uuid", headers=bearer(mine))
    assert_problem(r, 422, "validation_error")


async def test_sessions_pagination(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user, tokens = await api.user_with_tokens()
    for _ in range(2):
        await api.login(user["email"])
    page = (await client.get("/api/v1/auth/sessions?limit=2&page=2", headers=bearer(tokens))).json()
    assert (page["total"], page["pages"], len(page["items"])) == (3, 2, 1)
    bad = await client.get("/api/v1/auth/sessions?limit=101", headers=bearer(tokens))
    assert_problem(bad, 422, "validation_error")


async def test_password_change(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user, current = await api.user_with_tokens()
    other = await api.login(user["email"])
    new = "an entirely new passphrase"
    r = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "a perfectly fine passphrase", "new_password": new},
        headers=bearer(current),
    )
    assert r.status_code == 204
    assert (await sessions_of(client, current)).status_code == 200
    assert_problem(await sessions_of(client, other), 401, "invalid_token")
    old = await client.post(
        "/api/v1/auth/login",
        json={"email": user["email"], "password": "a perfectly fine passphrase"},
    )
    assert old.status_code == 401
    await api.login(user["email"], new)


async def test_password_change_refusals(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user, tokens = await api.user_with_tokens()
    wrong = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": "another fine passphrase"},
        headers=bearer(tokens),
    )
    assert_problem(wrong, 403, "invalid_credentials")
    weak = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "a perfectly fine passphrase", "new_password": "password1"},
        headers=bearer(tokens),
    )
    assert_problem(weak, 422, "weak_password")
    await api.login(user["email"])  # unchanged
