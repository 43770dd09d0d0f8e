"""GET/PATCH /api/v1/users/me: provisioning, organizations from orgs, degrading, validation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from platform_testing import assert_problem
from users.models import Profile

if TYPE_CHECKING:
    from conftest import AppFactory, FakeAuth, FakeOrgs


ME = "/api/v1/users/me"


async def profile_count(engine: AsyncEngine, user_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(func.count()).select_from(Profile).where(Profile.id == user_id)
        )
        return int(result.scalar_one())


async def test_first_me_provisions_the_profile_from_the_token(
    client: httpx.AsyncClient, auth: FakeAuth, engine: AsyncEngine
) -> None:
    caller = auth.user(email="Ada@Example.com", name="Ada Lovelace")

    response = await client.get(ME, headers=caller.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(caller.id)
    assert body["email"] == "ada@example.com"
    assert body["name"] == "Ada Lovelace"
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert body["created_at"] and body["updated_at"]
    assert body["organizations"] == []
    assert "warning" not in response.headers
    assert await profile_count(engine, caller.id) == 1


async def test_concurrent_first_requests_both_succeed_with_one_row(
    client: httpx.AsyncClient, auth: FakeAuth, engine: AsyncEngine
) -> None:
    caller = auth.user()

    responses = await asyncio.gather(
        client.get(ME, headers=caller.headers),
        client.get(ME, headers=caller.headers),
        client.patch(ME, headers=caller.headers, json={"name": "Renamed"}),
    )

    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    assert await profile_count(engine, caller.id) == 1


async def test_me_lists_the_callers_organizations(
    client: httpx.AsyncClient, auth: FakeAuth, orgs: FakeOrgs
) -> None:
    caller = auth.user()
    org_id = uuid.uuid4()

    async def two_orgs(request: httpx.Request) -> httpx.Response:
        item = {
            "id": str(org_id),
            "slug": "acme",
            "name": "Acme",
            "role": "owner",
            "created_at": "2026-01-01T00:00:00Z",
        }
        return httpx.Response(200, json={"items": [item], "total": 1, "page": 1, "limit": 100})

    orgs.handler = two_orgs
    response = await client.get(ME, headers=caller.headers)

    assert response.status_code == 200
    assert response.json()["organizations"] == [
        {"id": str(org_id), "slug": "acme", "name": "Acme", "role": "owner"}
    ]
    [call] = orgs.calls
    assert call.method == "GET"
    assert call.url.path == "/api/v1/orgs"
    assert call.url.params["limit"] == "100"


async def test_me_propagates_token_request_id_and_trace_to_orgs(
    client: httpx.AsyncClient, auth: FakeAuth, orgs: FakeOrgs
) -> None:
    caller = auth.user()
    trace_id = uuid.uuid4().hex
    incoming = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"

    response = await client.get(
        ME, headers={**caller.headers, "X-Request-ID": "req-me-42", "traceparent": incoming}
    )

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-me-42"
    [call] = orgs.calls
    assert call.headers["authorization"] == f"Bearer {caller.token}"
    assert call.headers["x-request-id"] == "req-me-42"
    # Same trace, a child span of ours.
    version, outgoing_trace, span_id, _ = call.headers["traceparent"].split("-")
    assert (version, outgoing_trace) == ("00", trace_id)
    assert span_id != incoming.split("-")[2]


def orgs_is_unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


ORGS_FAILURES = {
    "unreachable": orgs_is_unreachable,
    "fails": lambda request: httpx.Response(500, text="boom"),
    "refuses": lambda request: httpx.Response(403, json={"code": "forbidden"}),
    "answers nonsense": lambda request: httpx.Response(200, json={"items": [{"id": "x"}]}),
    "answers no json": lambda request: httpx.Response(200, text="<html>"),
}


@pytest.mark.parametrize("failure", ORGS_FAILURES.values(), ids=ORGS_FAILURES.keys())
async def test_me_degrades_when_orgs_cannot_answer(
    client: httpx.AsyncClient,
    auth: FakeAuth,
    orgs: FakeOrgs,
    failure: Callable[[httpx.Request], httpx.Response],
) -> None:
    caller = auth.user()

    async def handler(request: httpx.Request) -> httpx.Response:
        return failure(request)

    orgs.handler = handler
    response = await client.get(ME, headers=caller.headers)

    assert response.status_code == 200
    assert response.json()["organizations"] is None
    assert response.json()["id"] == str(caller.id)
    assert response.headers["warning"] == '199 - "organizations unavailable"'


async def test_me_degrades_within_the_timeout_when_orgs_hangs(
    make_client: AppFactory, auth: FakeAuth, orgs: FakeOrgs
) -> None:
    caller = auth.user()

    async def hangs(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200, json={"items": []})

    orgs.handler = hangs
    async with make_client(http_timeout_seconds=0.3) as client:
        # Warm up (JWKS fetch, first connection) so the timing measures the orgs call only.
        await client.patch(ME, headers=caller.headers, json={})
        started = time.monotonic()
        response = await client.get(ME, headers=caller.headers)
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["organizations"] is None
    assert response.headers["warning"] == '199 - "organizations unavailable"'
    assert 0.3 <= elapsed < 1.5  # the 0.3 s timeout, not the 2 s default


async def test_patch_me_changes_the_name(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    caller = auth.user(name="Old Name")
    before = (await client.get(ME, headers=caller.headers)).json()

    response = await client.patch(
        ME, headers=caller.headers, json={"name": "  New Name  ", "unknown": "ignored"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "New Name"
    assert "organizations" not in response.json()
    assert response.json()["updated_at"] >= before["updated_at"]
    assert (await client.get(ME, headers=caller.headers)).json()["name"] == "New Name"


async def test_patch_me_provisions_when_first(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    caller = auth.user(name="Claimed")

    response = await client.patch(ME, headers=caller.headers, json={"name": "Chosen"})

    assert response.status_code == 200
    assert response.json()["id"] == str(caller.id)
    assert response.json()["name"] == "Chosen"


async def test_patch_me_with_wrong_types_is_422_and_changes_nothing(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    caller = auth.user(name="Stable")
    await client.get(ME, headers=caller.headers)

    for bad in ({"name": 123}, {"name": ["x"]}, {"name": ""}, {"name": "x" * 201}):
        response = await client.patch(ME, headers=caller.headers, json=bad)
        body = assert_problem(response, 422, "validation_error")
        [error] = body["errors"]
        assert error["field"] == "name"
        assert error["message"] and error["type"]

    response = await client.patch(
        ME, headers={**caller.headers, "Content-Type": "application/json"}, content=b"{not json"
    )
    assert_problem(response, 422, "validation_error")
    assert (await client.get(ME, headers=caller.headers)).json()["name"] == "Stable"


async def test_body_over_one_mib_is_413(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    caller = auth.user(name="Stable")
    await client.get(ME, headers=caller.headers)

    response = await client.patch(
        ME, headers=caller.headers, json={"name": "x" * (1024 * 1024 + 10)}
    )

    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "payload_too_large"
    assert (await client.get(ME, headers=caller.headers)).json()["name"] == "Stable"


async def test_me_is_for_users_not_services(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    response = await client.get(ME, headers=auth.service())

    assert_problem(response, 403, "forbidden")


async def test_event_then_me_shows_the_registered_profile(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    caller = auth.user(name="From Token")
    event = auth.event(caller.id, email=caller.email, name="From Registration")
    assert (await auth.deliver(client, event)).status_code == 200

    response = await client.get(ME, headers=caller.headers)

    assert response.status_code == 200
    assert response.json()["name"] == "From Registration"
