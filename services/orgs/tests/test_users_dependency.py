"""When users cannot answer: the members list fails fast and clearly (503 / 504)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx

from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import ClientFactory, FakeUsers, OrgWorld, People


async def test_users_down_is_503(
    client: httpx.AsyncClient, world: OrgWorld, users: FakeUsers
) -> None:
    users.mode = "down"
    started = time.monotonic()
    response = await client.get(f"/api/v1/orgs/{world.slug}/members", headers=world.owner.headers)
    assert time.monotonic() - started < 2.0
    body = assert_problem(response, 503, "dependency_unavailable")
    assert "users" in body["detail"]


async def test_users_failing_is_503(
    client: httpx.AsyncClient, world: OrgWorld, users: FakeUsers
) -> None:
    users.mode = "error"
    response = await client.get(f"/api/v1/orgs/{world.slug}/members", headers=world.owner.headers)
    assert_problem(response, 503, "dependency_unavailable")


async def test_users_slow_is_504_within_a_second(
    make_client: ClientFactory, users: FakeUsers, people: People
) -> None:
    async with make_client(http_timeout_seconds=0.3) as client:
        owner = people.user()
        created = await client.post(
            "/api/v1/orgs", json={"name": "A", "slug": "slow-users"}, headers=owner.headers
        )
        assert created.status_code == 201
        users.mode, users.delay = "slow", 5.0
        started = time.monotonic()
        response = await client.get("/api/v1/orgs/slow-users/members", headers=owner.headers)
        elapsed = time.monotonic() - started
    assert_problem(response, 504, "dependency_timeout")
    assert elapsed < 1.5  # the 0.3 s timeout, not the 2 s default


async def test_adding_a_member_while_users_is_down_changes_nothing(
    client: httpx.AsyncClient, world: OrgWorld, users: FakeUsers
) -> None:
    users.mode = "down"
    response = await client.post(
        f"/api/v1/orgs/{world.slug}/members",
        json={"user_id": str(world.newcomer.id), "role": "member"},
        headers=world.owner.headers,
    )
    assert_problem(response, 503, "dependency_unavailable")
    users.mode = "up"
    listed = await client.get(f"/api/v1/orgs/{world.slug}/members", headers=world.owner.headers)
    assert str(world.newcomer.id) not in {item["user_id"] for item in listed.json()["items"]}


async def test_org_endpoints_that_need_no_names_work_without_users(
    client: httpx.AsyncClient, world: OrgWorld, users: FakeUsers
) -> None:
    users.mode = "down"
    assert (
        await client.get(f"/api/v1/orgs/{world.slug}", headers=world.owner.headers)
    ).status_code == 200
    assert (await client.get("/api/v1/orgs", headers=world.owner.headers)).status_code == 200
    assert users.calls == []
