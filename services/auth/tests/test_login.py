"""POST /api/v1/auth/login, and login throttling."""

from __future__ import annotations

from typing import Any

import httpx

from platform_testing import assert_problem

URL = "/api/v1/auth/login"


async def test_login_returns_a_token_pair(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user = await api.register()
    response = await client.post(
        URL, json={"email": user["email"].upper(), "password": "a perfectly fine passphrase"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["access_token"].count(".") == 2
    assert len(body["refresh_token"]) >= 32


async def test_unknown_email_and_wrong_password_answer_alike(
    client: httpx.AsyncClient, api
) -> None:  # type: ignore[no-untyped-def]
    user = await api.register()
    wrong = await client.post(URL, json={"email": user["email"], "password": "not the password"})
    unknown = await client.post(
        URL, json={"email": "ghost@example.com", "password": "not the password"}
    )
    a = assert_problem(wrong, 401, "invalid_credentials")
    b = assert_problem(unknown, 401, "invalid_credentials")
    assert (a["title"], a["detail"]) == (b["title"], b["detail"])
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_disabled_account_gets_403(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user = await api.register()
    admin = await api.admin()
    r = await client.post(f"/api/v1/auth/users/{user['id']}/disable", headers=admin.headers)
    assert r.status_code == 204
    response = await client.post(
        URL, json={"email": user["email"], "password": "a perfectly fine passphrase"}
    )
    assert_problem(response, 403, "account_disabled")


async def test_unknown_clients_wait_after_repeated_failures(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user = await api.register()
    for _ in range(5):
        r = await client.post(URL, json={"email": user["email"], "password": "wrong guess"})
        assert r.status_code == 401
    # Even the right password is refused while this client must wait (test_lockout.py).
    locked = await client.post(
        URL, json={"email": user["email"], "password": "a perfectly fine passphrase"}
    )
    body = assert_problem(locked, 429, "rate_limited")
    retry_after = int(locked.headers["retry-after"])
    assert 0 < retry_after <= 900
    assert "account" in body["detail"]


async def test_success_resets_the_clients_counter(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user = await api.register()
    for _ in range(4):
        await client.post(URL, json={"email": user["email"], "password": "wrong guess"})
    await api.login(user["email"])
    for _ in range(4):
        r = await client.post(URL, json={"email": user["email"], "password": "wrong guess"})
        assert r.status_code == 401


async def test_client_address_is_limited(started) -> None:  # type: ignore[no-untyped-def]
    async with started(login_max_attempts_per_ip=3, login_ip_window_seconds=30) as client:
        statuses = []
        for i in range(4):
            r = await client.post(
                URL, json={"email": f"nobody{i}@example.com", "password": "whatever1"}
            )
            statuses.append(r.status_code)
        assert statuses == [401, 401, 401, 429]
        assert 0 < int(r.headers["retry-after"]) <= 30
        assert_problem(r, 429, "rate_limited")


async def test_login_outcomes_are_counted_in_metrics(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user = await api.register()
    await api.login(user["email"])
    await client.post(URL, json={"email": user["email"], "password": "wrong guess"})
    text = (await client.get("/metrics")).text
    assert 'auth_login_attempts_total{outcome="success"}' in text
    assert 'auth_login_attempts_total{outcome="invalid_credentials"}' in text
    assert 'handler="/api/v1/auth/login"' in text
    await client.get("/readyz")
    assert 'handler="/readyz"' in (await client.get("/metrics")).text


async def test_token_responses_are_not_stored_but_the_jwks_is_cacheable(
    client: httpx.AsyncClient, api: Any
) -> None:
    user = await api.register()
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": user["email"], "password": "a perfectly fine passphrase"},
    )
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    assert login.headers["pragma"] == "no-cache"
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refresh.headers["cache-control"] == "no-store"
    jwks = await client.get("/api/v1/auth/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=60"
