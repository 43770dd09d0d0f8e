"""Events: one for every change, in the change's transaction; the org audit log; the relay
to `events:orgs` (the stream contract); retention."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from orgs.models import EventRecord
from platform_common.clock import utcnow
from platform_common.events import Actor, EventRelay, Target, record_event
from platform_testing import Backends, assert_problem, wait_for

if TYPE_CHECKING:
    from conftest import ClientFactory, OrgsApi, OrgWorld, People


def audit(slug: str) -> str:
    return f"/api/v1/orgs/{slug}/audit-log"


async def audit_items(
    client: httpx.AsyncClient, slug: str, by: Any, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(audit(slug), params={"limit": 100, **params}, headers=by.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_every_change_records_its_event_newest_first(
    client: httpx.AsyncClient, api: OrgsApi, people: People
) -> None:
    owner, bob, carol = people.user("owner"), people.user("bob"), people.user("carol")
    headers = {**owner.headers, "X-Request-ID": "req-audit-1", "User-Agent": "audit-test/1"}
    org = await api.create_org(owner)
    slug = org["slug"]
    path = f"/api/v1/orgs/{slug}"
    assert (await client.patch(path, json={"name": "Renamed"}, headers=headers)).status_code == 200
    await api.add_member(slug, owner, bob, "member")
    bob_path = f"{path}/members/{bob.id}"
    response = await client.patch(bob_path, json={"role": "admin"}, headers=owner.headers)
    assert response.status_code == 200
    assert (await client.delete(bob_path, headers=owner.headers)).status_code == 204
    revoked = await api.invite(slug, owner, "someone@example.com")
    response = await client.delete(f"{path}/invitations/{revoked['id']}", headers=owner.headers)
    assert response.status_code == 204
    invitation = await api.invite(slug, owner, carol.email, role="viewer")
    accept = f"/api/v1/orgs/invitations/{invitation['token']}/accept"
    assert (await client.post(accept, headers=carol.headers)).status_code == 201
    hook = await api._create(
        f"{path}/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["*"]}, owner
    )
    response = await client.delete(f"{path}/webhooks/{hook['id']}", headers=owner.headers)
    assert response.status_code == 204

    items = await audit_items(client, slug, owner)
    assert [item["type"] for item in items] == [
        "webhook.deleted",
        "webhook.created",
        "member.added",
        "invitation.accepted",
        "invitation.created",
        "invitation.revoked",
        "invitation.created",
        "member.removed",
        "member.role_changed",
        "member.added",
        "org.updated",
        "org.created",
    ]
    by_type = {item["type"]: item for item in reversed(items)}  # the latest of each type
    for item in items:
        assert item["org_id"] == org["id"]
        assert item["data"]["slug"] == slug
        uuid.UUID(item["id"])
        assert item["occurred_at"].endswith("Z")
    assert by_type["org.created"]["actor"] == {"id": str(owner.id), "kind": "user"}
    assert by_type["org.created"]["target"] == {"type": "org", "id": org["id"]}
    updated = by_type["org.updated"]
    assert updated["data"]["name"] == "Renamed" and updated["data"]["old_name"] == "Acme"
    assert updated["request_id"] == "req-audit-1"
    assert updated["user_agent"] == "audit-test/1"
    assert updated["ip"] == "127.0.0.1"
    changed = by_type["member.role_changed"]
    assert changed["target"] == {"type": "user", "id": str(bob.id)}
    assert (changed["data"]["role"], changed["data"]["old_role"]) == ("admin", "member")
    assert by_type["member.removed"]["data"]["role"] == "admin"
    joined = by_type["member.added"]
    assert joined["actor"]["id"] == str(carol.id)
    assert joined["target"] == {"type": "user", "id": str(carol.id)}
    assert joined["data"]["role"] == "viewer"
    assert by_type["invitation.revoked"]["target"] == {"type": "invitation", "id": revoked["id"]}
    assert by_type["invitation.accepted"]["data"]["user_id"] == str(carol.id)
    assert by_type["webhook.created"]["target"] == {"type": "webhook", "id": hook["id"]}
    assert by_type["webhook.created"]["data"]["events"] == ["*"]


async def test_org_deletion_is_recorded_and_outlives_the_org(
    client: httpx.AsyncClient, world: OrgWorld, engine: AsyncEngine
) -> None:
    org = (await client.get(f"/api/v1/orgs/{world.slug}", headers=world.owner.headers)).json()
    response = await client.delete(f"/api/v1/orgs/{world.slug}", headers=world.owner.headers)
    assert response.status_code == 204
    async with async_sessionmaker(engine)() as db:
        types = (
            await db.scalars(
                select(EventRecord.type).where(EventRecord.org_id == uuid.UUID(org["id"]))
            )
        ).all()
    assert "org.deleted" in types


async def test_a_refused_change_records_nothing(client: httpx.AsyncClient, world: OrgWorld) -> None:
    before = await audit_items(client, world.slug, world.owner)
    body = {"user_id": str(world.member.id), "role": "member"}
    response = await client.post(
        f"/api/v1/orgs/{world.slug}/members", json=body, headers=world.owner.headers
    )
    assert_problem(response, 409, "already_member")
    response = await client.patch(
        f"/api/v1/orgs/{world.slug}/members/{world.owner.id}",
        json={"role": "member"},
        headers=world.owner.headers,
    )
    assert_problem(response, 409, "last_owner")
    assert await audit_items(client, world.slug, world.owner) == before


async def test_audit_log_pages_and_filters_by_type(
    client: httpx.AsyncClient, world: OrgWorld
) -> None:
    response = await client.get(
        audit(world.slug), params={"limit": 2, "page": 2}, headers=world.admin.headers
    )
    assert response.status_code == 200
    page = response.json()
    # The world: org.created, three member.added, invitation.created, webhook.created.
    assert (page["total"], page["page"], page["limit"], page["pages"]) == (6, 2, 2, 3)
    assert [item["type"] for item in page["items"]] == ["member.added", "member.added"]
    added = await audit_items(client, world.slug, world.admin, type="member.added")
    assert [item["data"]["role"] for item in added] == ["viewer", "member", "admin"]
    response = await client.get(
        audit(world.slug), params={"type": "no.such"}, headers=world.admin.headers
    )
    assert response.status_code == 422


async def test_audit_log_is_for_admins_only(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi
) -> None:
    for caller, status in (
        (world.member, 403),
        (world.viewer, 403),
        (world.outsider, 404),
        (world.admin, 200),
        (world.owner, 200),
        (world.platform_admin, 200),
    ):
        response = await client.get(audit(world.slug), headers=caller.headers)
        assert response.status_code == status, (caller, response.text)
    other = await api.create_org(world.outsider)
    # An admin of one org reads nothing of another (404, as for every org endpoint).
    response = await client.get(audit(other["slug"]), headers=world.admin.headers)
    assert_problem(response, 404, "not_found")


async def test_events_are_relayed_to_the_stream_in_the_contract_format(
    client: httpx.AsyncClient, world: OrgWorld, backends: Backends, engine: AsyncEngine
) -> None:
    redis = Redis.from_url(backends.redis_url, decode_responses=True)
    try:

        async def all_relayed() -> bool:
            async with async_sessionmaker(engine)() as db:
                waiting = await db.scalar(
                    select(func.count()).where(EventRecord.relayed_at.is_(None))
                )
            return waiting == 0

        await wait_for(all_relayed, within=5)
        entries = await redis.xrange("events:orgs")
        events = [json.loads(fields["event"]) for _, fields in entries]
        assert all(set(fields) == {"event"} for _, fields in entries)
        ours = [e for e in events if e["data"].get("slug") == world.slug]
        assert [e["type"] for e in ours] == [
            "org.created",
            "member.added",
            "member.added",
            "member.added",
            "invitation.created",
            "webhook.created",
        ]
        first = ours[0]
        assert set(first) == {
            "id",
            "type",
            "occurred_at",
            "actor",
            "org_id",
            "target",
            "ip",
            "user_agent",
            "request_id",
            "data",
        }
        assert first["actor"] == {"id": str(world.owner.id), "kind": "user"}
        assert first["target"]["type"] == "org"
        assert first["occurred_at"].endswith("Z")
    finally:
        await redis.aclose()


async def test_a_commit_wakes_the_relay_at_once(
    make_client: ClientFactory, api: OrgsApi, people: People, backends: Backends
) -> None:
    # The polling fallback is an hour away: only the after-commit wake can be this quick.
    async with make_client(events_poll_seconds=3600) as client:
        redis = Redis.from_url(backends.redis_url, decode_responses=True)
        try:
            before = await redis.xlen("events:orgs")
            await type(api)(client).create_org(people.user())

            async def published() -> bool:
                return bool(await redis.xlen("events:orgs") > before)

            await wait_for(published, within=1.0)
        finally:
            await redis.aclose()


async def test_stream_is_capped_and_old_relayed_events_are_purged(
    engine: AsyncEngine, backends: Backends, make_client: ClientFactory
) -> None:
    # No app runs here (make_client only empties the backends afterwards): this relay alone.
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    redis = Redis.from_url(backends.redis_url, decode_responses=True)
    relay = EventRelay(
        sessions, redis, EventRecord, service="cap-test", stream_maxlen=100, retention_days=30
    )
    try:
        async with sessions() as db, db.begin():
            for n in range(450):
                record_event(
                    db,
                    EventRecord,
                    type="org.updated",
                    actor=Actor.system(),
                    target=Target(type="org", id=str(n)),
                )
        assert await relay.run_once() >= 450
        # MAXLEN ~ 100: trimmed in whole macro nodes, never far above the cap.
        assert await redis.xlen("events:cap-test") < 450 / 2

        old = utcnow() - timedelta(days=31)
        async with sessions() as db, db.begin():
            ids = (await db.scalars(select(EventRecord.id).limit(3))).all()
            await db.execute(
                update(EventRecord).where(EventRecord.id.in_(ids[:2])).values(occurred_at=old)
            )
            # An old event not yet relayed is kept until it is.
            await db.execute(
                update(EventRecord)
                .where(EventRecord.id == ids[2])
                .values(occurred_at=old, relayed_at=None)
            )
        assert await relay.purge() == 2
        async with sessions() as db:
            left = (await db.scalars(select(EventRecord.id).where(EventRecord.id.in_(ids)))).all()
        assert left == [ids[2]]
    finally:
        await redis.aclose()
