"""users' events: a profile change is recorded in users' `events` table in its transaction
(with the caller's address, user agent and request id) and relayed to `events:users`."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from platform_testing import Backends, wait_for
from users.models import EventRecord

if TYPE_CHECKING:
    from conftest import FakeAuth

ME = "/api/v1/users/me"


async def recorded(engine: AsyncEngine, user_id: uuid.UUID) -> list[EventRecord]:
    async with async_sessionmaker(engine)() as db:
        rows = await db.scalars(
            select(EventRecord)
            .where(EventRecord.target_id == str(user_id))
            .order_by(EventRecord.occurred_at)
        )
        return list(rows)


async def relayed(backends: Backends, engine: AsyncEngine) -> list[dict[str, Any]]:
    async def all_relayed() -> bool:
        async with async_sessionmaker(engine)() as db:
            waiting = await db.scalar(select(func.count()).where(EventRecord.relayed_at.is_(None)))
        return waiting == 0

    await wait_for(all_relayed, within=5)
    redis = Redis.from_url(backends.redis_url, decode_responses=True)
    try:
        entries = await redis.xrange("events:users")
    finally:
        await redis.aclose()
    assert all(set(fields) == {"event"} for _, fields in entries)
    return [json.loads(fields["event"]) for _, fields in entries]


async def test_a_name_change_is_recorded_and_relayed(
    client: httpx.AsyncClient, auth: FakeAuth, engine: AsyncEngine, backends: Backends
) -> None:
    caller = auth.user(name="Before")
    response = await client.patch(
        ME,
        json={"name": "After"},
        headers={**caller.headers, "User-Agent": "profile-editor/3", "X-Request-ID": "rename-1"},
    )
    assert response.status_code == 200, response.text

    (event,) = await recorded(engine, caller.id)
    assert event.type == "user.updated"
    assert (event.actor_kind, event.actor_id) == ("user", str(caller.id))
    assert event.data == {"user_id": str(caller.id), "fields": ["name"]}
    assert (event.user_agent, event.request_id) == ("profile-editor/3", "rename-1")
    assert event.ip is not None

    ours = [e for e in await relayed(backends, engine) if e["target"]["id"] == str(caller.id)]
    assert [e["type"] for e in ours] == ["user.updated"]
    assert ours[0]["data"]["fields"] == ["name"]


async def test_nothing_is_recorded_for_a_refused_or_empty_change(
    client: httpx.AsyncClient, auth: FakeAuth, engine: AsyncEngine
) -> None:
    caller = auth.user(name="Same")
    refused = await client.patch(ME, json={"name": 42}, headers=caller.headers)
    assert refused.status_code == 422
    unchanged = await client.patch(ME, json={"name": "Same"}, headers=caller.headers)
    assert unchanged.status_code == 200
    assert await recorded(engine, caller.id) == []


async def test_a_deletion_applied_from_auth_is_recorded_by_the_system(
    client: httpx.AsyncClient, auth: FakeAuth, engine: AsyncEngine
) -> None:
    caller = auth.user()
    assert (await client.get(ME, headers=caller.headers)).status_code == 200
    url = f"/internal/v1/users/{caller.id}"
    assert (await client.delete(url, headers=auth.service())).status_code == 204
    assert (await client.delete(url, headers=auth.service())).status_code == 204  # a replay

    events = await recorded(engine, caller.id)
    assert [(e.type, e.actor_kind) for e in events] == [("user.deleted", "system")]
