"""POST /api/v1/auth/register."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from auth.models import OutboxEvent, User
from platform_common.state import platform_state
from platform_testing import assert_problem

URL = "/api/v1/auth/register"


async def count_users(app) -> int:  # type: ignore[no-untyped-def]
    async with platform_state(app).sessionmaker() as db:
        return int((await db.execute(select(func.count()).select_from(User))).scalar_one())


async def test_register_creates_user(client: httpx.AsyncClient, app) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        URL, json={"email": "Ada@Example.COM", "password": "analytical engine 1843", "name": "Ada"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert body["name"] == "Ada"
    assert body["role"] == "user"
    assert body["created_at"].endswith("Z")
    assert "password" not in str(body) and "hash" not in str(body)
    async with platform_state(app).sessionmaker() as db:
        stored = (await db.execute(select(User))).scalar_one()
        assert stored.password_hash.startswith("$argon2id$")
        events = (await db.execute(select(OutboxEvent))).scalars().all()
        assert [e.event_type for e in events] == ["user.registered"]


async def test_email_taken_is_case_insensitive(client: httpx.AsyncClient, app) -> None:  # type: ignore[no-untyped-def]
    await client.post(
        URL, json={"email": "bob@example.com", "password": "pass phrase 123!", "name": "B"}
    )
    response = await client.post(
        URL, json={"email": "BOB@example.com", "password": "pass phrase 123!", "name": "B2"}
    )
    assert_problem(response, 409, "email_taken")
    assert await count_users(app) == 1


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 8"),
        ("x" * 129, "at most 128"),
        ("password123", "common"),
        ("iloveyou", "common"),
        ("carol@example.com", "email"),
    ],
)
async def test_weak_passwords_are_refused(
    client: httpx.AsyncClient,
    app,
    password: str,
    reason: str,  # type: ignore[no-untyped-def]
) -> None:
    response = await client.post(
        URL, json={"email": "carol@example.com", "password": password, "name": "Carol"}
    )
    body = assert_problem(response, 422, "weak_password")
    assert reason in body["detail"]
    assert body["errors"][0]["field"] == "password"
    assert await count_users(app) == 0


async def test_validation_errors_are_problem_json(client: httpx.AsyncClient, app) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(URL, json={"email": "not-an-email", "password": 12, "name": ""})
    body = assert_problem(response, 422, "validation_error")
    fields = {e["field"] for e in body["errors"]}
    assert {"email", "password", "name"} <= fields
    assert all({"field", "message", "type"} <= e.keys() for e in body["errors"])
    assert await count_users(app) == 0


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "validation_error")


async def test_unknown_fields_are_ignored(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL,
        json={
            "email": "dan@example.com",
            "password": "pass phrase 123!",
            "name": "D",
            "role": "admin",
        },
    )
    assert response.status_code == 201
    assert response.json()["role"] == "user"


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient, app) -> None:  # type: ignore[no-untyped-def]
    big = {"email": "eve@example.com", "password": "pass phrase 123!", "name": "x" * (1024 * 1024)}
    response = await client.post(URL, json=big)
    assert_problem(response, 413, "payload_too_large")
    assert await count_users(app) == 0


async def test_concurrent_registrations_of_one_email(client: httpx.AsyncClient, app) -> None:  # type: ignore[no-untyped-def]
    payload = {"email": "race@example.com", "password": "pass phrase 123!", "name": "R"}
    responses = await asyncio.gather(*(client.post(URL, json=payload) for _ in range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    assert await count_users(app) == 1


async def test_one_form_of_the_address_for_register_and_login(client: httpx.AsyncClient) -> None:
    password = "a perfectly fine passphrase"
    tag = uuid.uuid4().hex[:8]
    decomposed = f"jose\u0301-{tag}@example.com"  # "josé" as e + combining accent
    created = await client.post(
        "/api/v1/auth/register", json={"email": decomposed, "password": password, "name": "J"}
    )
    assert created.status_code == 201, created.text
    for spelling in (decomposed, f"jos\u00e9-{tag}@EXAMPLE.com"):
        login = await client.post(
            "/api/v1/auth/login", json={"email": spelling, "password": password}
        )
        assert login.status_code == 200, (spelling, login.text)

    full_width = f"jos\u00e9-{tag}@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"
    duplicate = await client.post(
        "/api/v1/auth/register", json={"email": full_width, "password": password, "name": "J"}
    )
    assert_problem(duplicate, 409, "email_taken")
    login = await client.post(
        "/api/v1/auth/login", json={"email": full_width, "password": password}
    )
    assert login.status_code == 200, login.text
