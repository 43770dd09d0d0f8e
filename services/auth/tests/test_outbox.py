"""User events reach the users service through the outbox, even when users was down."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from auth.models import OutboxEvent
from platform_common.state import platform_state
from platform_testing import wait_for


async def pending(app) -> list[OutboxEvent]:  # type: ignore[no-untyped-def]
    async with platform_state(app).sessionmaker() as db:
        rows = await db.execute(select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None)))
        return list(rows.scalars().all())


async def test_events_are_delivered_with_a_service_token(client, api, app, fake_users) -> None:  # type: ignore[no-untyped-def]
    user = await api.register()
    assert await app.state.outbox.run_once() == 1
    assert fake_users.received[0]["event"] == "user.registered"
    assert fake_users.received[0]["id"] == user["id"]
    assert fake_users.received[0]["email"] == user["email"]
    token = fake_users.headers[0]["authorization"].removeprefix("Bearer ")
    principal = await platform_state(app).verifier.verify(token)
    assert principal.subject == "svc:auth" and "users:provision" in principal.scopes
    assert await pending(app) == []


async def test_registration_survives_users_being_down(client, api, app, fake_users) -> None:  # type: ignore[no-untyped-def]
    fake_users.fail = True
    user = await api.register()  # 201 although users is unreachable
    assert await app.state.outbox.run_once() == 0
    [event] = await pending(app)
    assert event.attempts == 1 and event.last_error
    assert event.next_attempt_at > event.created_at  # backed off

    fake_users.fail = False
    async with platform_state(app).sessionmaker() as db, db.begin():
        stored = await db.get(OutboxEvent, event.id)
        assert stored is not None
        stored.next_attempt_at = stored.created_at  # skip the back-off wait
    assert await app.state.outbox.run_once() == 1
    assert [e["id"] for e in fake_users.received] == [user["id"]]
    assert await pending(app) == []


async def test_disable_and_enable_are_published_in_order(client, api, app, fake_users) -> None:  # type: ignore[no-untyped-def]
    user = await api.register()
    admin = await api.admin()
    await client.post(f"/api/v1/auth/users/{user['id']}/disable", headers=admin.headers)
    await client.post(f"/api/v1/auth/users/{user['id']}/enable", headers=admin.headers)
    await app.state.outbox.run_once()
    mine = [e for e in fake_users.received if e["id"] == user["id"]]
    assert [e["event"] for e in mine] == ["user.registered", "user.disabled", "user.enabled"]
    assert [e["is_active"] for e in mine] == [True, False, True]
    versions = [e["version"] for e in mine]
    assert versions == sorted(versions)


async def register_and_see_it_delivered(client, fake_users, email: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": "pass phrase 123!", "name": "Relayed"},
    )
    assert response.status_code == 201

    async def delivered() -> bool:
        return any(e["email"] == email for e in fake_users.received)

    await wait_for(delivered, within=5)


async def test_background_relay_runs_by_itself(started, fake_users) -> None:  # type: ignore[no-untyped-def]
    async with started(run_outbox=True) as client:
        await register_and_see_it_delivered(client, fake_users, "bg@example.com")


async def test_a_commit_wakes_the_relay_at_once(started, fake_users) -> None:  # type: ignore[no-untyped-def]
    # A poll interval far longer than the test: only the wake-up can deliver in time.
    async with started(run_outbox=True, outbox_poll_seconds=30) as client:
        await asyncio.sleep(0.2)  # the relay's first round has run and it now sleeps
        await register_and_see_it_delivered(client, fake_users, "quick@example.com")
