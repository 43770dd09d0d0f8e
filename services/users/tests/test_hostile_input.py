"""Input PostgreSQL cannot store is a 422, never a 500 (regressions found by tests/fuzz)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import FakeAuth


async def test_a_name_with_nul_is_422(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    user = auth.user()
    response = await client.patch("/api/v1/users/me", headers=user.headers, json={"name": "a\x00b"})
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["name"]


async def test_a_search_with_nul_is_422(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    response = await client.get(
        "/api/v1/users", headers=auth.admin().headers, params={"q": "a\x00"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["q"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": 2**63}, "version"),  # one past PostgreSQL's bigint
        ({"email": "a\x00@example.com"}, "email"),
        ({"name": "a\x00"}, "name"),
        ({"created_at": "0001-01-01T00:00:00+14:00"}, "created_at"),  # before year 1 in UTC
        ({"created_at": "9999-12-31T23:59:59-14:00"}, "created_at"),  # after year 9999 in UTC
        ({"created_at": "2024-01-01T00:00:00"}, "created_at"),  # no time zone
    ],
)
async def test_user_events_out_of_range_are_422(
    client: httpx.AsyncClient, auth: FakeAuth, change: dict[str, Any], field: str
) -> None:
    user_id = uuid.uuid4()
    event = {**auth.event(user_id), **change}
    response = await auth.deliver(client, event, user_id)
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == [field]


async def test_get_of_the_post_only_lookup_is_405_not_422(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    caller = auth.user()
    response = await client.get("/api/v1/users/lookup", headers=caller.headers)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    # A malformed id is still a 422 about the id.
    malformed = await client.get("/api/v1/users/not-an-id", headers=caller.headers)
    assert_problem(malformed, 422, "validation_error")
