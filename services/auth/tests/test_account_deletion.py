"""DELETE /api/v1/auth/me: the account is gone at auth at once (sessions, tokens, email), and
its deletion reaches users and orgs through the outbox, each at its own pace."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select

from auth.models import AccountToken, MailOutbox, OutboxEvent, User
from platform_common.state import platform_state
from platform_testing import assert_problem, bearer

if TYPE_CHECKING:
    from conftest import AuthApi, FakeOrgs, FakeUsers, SignedIn
    from fastapi import FastAPI

ME = "/api/v1/auth/me"
PASSWORD = "a perfectly fine passphrase"


async def delete_me(
    client: httpx.AsyncClient, caller: SignedIn, password: str = PASSWORD
) -> httpx.Response:
    return await client.request(
        "DELETE", ME, json={"current_password": password}, headers=caller.headers
    )


async def pending(app: FastAPI) -> list[OutboxEvent]:
    async with platform_state(app).sessionmaker() as db:
        rows = await db.execute(select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None)))
        return list(rows.scalars().all())


async def skip_backoff(app: FastAPI) -> None:
    async with platform_state(app).sessionmaker() as db, db.begin():
        for event in (await db.execute(select(OutboxEvent))).scalars():
            event.next_attempt_at = event.created_at


async def metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not exported"
    return float(found.group(1))


async def test_the_account_is_gone_and_its_email_can_register_again(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    user = await api.signed_in()
    assert (await delete_me(client, user)).status_code == 204

    # Its tokens fail (auth checks the same revocation keys as every service).
    assert_problem(
        await client.get("/api/v1/auth/sessions", headers=user.headers), 401, "invalid_token"
    )
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert_problem(refreshed, 401, "invalid_refresh_token")
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert_problem(login, 401, "invalid_credentials")

    # The row is a scrubbed tombstone: no email, name or password of the person is kept.
    async with platform_state(app).sessionmaker() as db:
        row = await db.get(User, user.id)
        assert row is not None and row.deleted_at is not None and not row.is_active
        assert user.email not in row.email and row.name == ""

    # Its scrubbed address is nobody's either.
    async with platform_state(app).sessionmaker() as db:
        tombstone = (await db.get(User, user.id)).email  # type: ignore[union-attr]
    by_tombstone = await client.post(
        "/api/v1/auth/login", json={"email": tombstone, "password": "!deleted"}
    )
    assert by_tombstone.status_code in (401, 422), by_tombstone.text

    again = await api.register(user.email, password="another fine passphrase")
    assert again["id"] != str(user.id)
    assert (await api.login(user.email, "another fine passphrase")).id != user.id


async def test_the_deletion_is_delivered_to_users_and_orgs(
    client: httpx.AsyncClient,
    api: AuthApi,
    app: FastAPI,
    fake_users: FakeUsers,
    fake_orgs: FakeOrgs,
) -> None:
    user = await api.signed_in()
    await app.state.outbox.run_once()  # the registration
    assert (await delete_me(client, user)).status_code == 204
    events = await pending(app)
    assert sorted(e.destination for e in events) == ["orgs", "users"]
    assert {e.event_type for e in events} == {"user.deleted"}
    # No personal data in the events: the id and when.
    assert all(set(e.payload) == {"id", "deleted_at", "version"} for e in events)
    assert await metric(client, "auth_account_deletions_pending") in (0, 1)

    assert await app.state.outbox.run_once() == 2
    assert fake_users.received[-1] == {"event": "user.deleted", "id": str(user.id)}
    assert fake_orgs.deleted == [str(user.id)]
    assert await pending(app) == []
    assert await metric(client, "auth_account_deletions_pending") == 0


async def test_orgs_being_down_holds_back_only_orgs_events(
    client: httpx.AsyncClient,
    api: AuthApi,
    app: FastAPI,
    fake_users: FakeUsers,
    fake_orgs: FakeOrgs,
) -> None:
    user = await api.signed_in()
    assert (await delete_me(client, user)).status_code == 204
    fake_orgs.mode = "down"
    newcomer = await api.register()

    await app.state.outbox.run_once()
    # users got everything, the deletion and a later registration; orgs' event waits.
    assert [e["event"] for e in fake_users.received] == [
        "user.registered",
        "user.deleted",
        "user.registered",
    ]
    assert fake_users.received[-1]["id"] == newcomer["id"]
    [waiting] = await pending(app)
    assert waiting.destination == "orgs" and waiting.attempts == 1 and waiting.last_error
    assert await metric(client, "auth_account_deletions_pending") == 1

    fake_orgs.mode = "up"
    await skip_backoff(app)
    assert await app.state.outbox.run_once() == 1
    assert fake_orgs.deleted == [str(user.id)]
    assert await metric(client, "auth_account_deletions_pending") == 0


async def test_a_wrong_password_is_403_and_nothing_changes(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    assert_problem(await delete_me(client, user, "not my password"), 403, "invalid_credentials")
    assert (await client.get("/api/v1/auth/sessions", headers=user.headers)).status_code == 200
    assert [e.event_type for e in await pending(app)] == ["user.registered"]
    assert fake_orgs.deleted == []


async def test_the_last_owner_of_orgs_with_members_is_refused_with_their_slugs(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    fake_orgs.blockers[str(user.id)] = ["zeta", "acme"]
    response = await delete_me(client, user)
    body = assert_problem(response, 409, "last_owner")
    assert body["orgs"] == ["acme", "zeta"]
    assert (await client.get("/api/v1/auth/sessions", headers=user.headers)).status_code == 200
    assert [e.event_type for e in await pending(app)] == ["user.registered"]

    # Once orgs no longer lists any (ownership handed over), the deletion goes through.
    fake_orgs.blockers.clear()
    assert (await delete_me(client, user)).status_code == 204
    [call] = [r for r in fake_orgs.requests if r.url.path.endswith("/deletion-blockers")][-1:]
    token = call.headers["authorization"].removeprefix("Bearer ")
    principal = await platform_state(app).verifier.verify(token)
    assert principal.subject == "svc:auth" and "orgs:users:delete" in principal.scopes


async def test_orgs_unreachable_is_503_and_nothing_changes(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    fake_orgs.mode = "down"
    assert_problem(await delete_me(client, user), 503, "dependency_unavailable")
    fake_orgs.mode = "up"
    assert (await client.get("/api/v1/auth/sessions", headers=user.headers)).status_code == 200


async def test_neither_an_org_token_nor_a_pat_deletes_the_account(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    fake_orgs.add(user.id, "acme", "owner")
    org_token = await client.post(
        "/api/v1/auth/org-token", json={"org": "acme"}, headers=user.headers
    )
    assert org_token.status_code == 200, org_token.text
    response = await client.request(
        "DELETE",
        ME,
        json={"current_password": PASSWORD},
        headers=bearer(org_token.json()["access_token"]),
    )
    assert_problem(response, 403, "insufficient_scope")
    # (A personal access token: test_personal_tokens.py, with the account's other security.)


async def test_its_personal_access_tokens_are_deleted(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    created = await client.post(
        "/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 30}, headers=user.headers
    )
    pat = created.json()["token"]
    assert (await delete_me(client, user)).status_code == 204
    exchange = await client.post("/internal/v1/auth/personal-tokens/exchange", headers=bearer(pat))
    assert_problem(exchange, 401, "invalid_token")


async def test_two_concurrent_deletions_give_one_204_and_one_401(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    user = await api.signed_in()
    first, second = await asyncio.gather(delete_me(client, user), delete_me(client, user))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [204, 401], (first.text, second.text)
    loser = first if first.status_code == 401 else second
    assert_problem(loser, 401, "invalid_token")
    # One deletion, delivered once to each service.
    assert sorted(e.destination for e in await pending(app) if e.event_type == "user.deleted") == [
        "orgs",
        "users",
    ]


async def test_a_deleted_account_cannot_be_enabled_again(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    admin = await api.admin()
    assert (await delete_me(client, user)).status_code == 204
    response = await client.post(f"/api/v1/auth/users/{user.id}/enable", headers=admin.headers)
    assert_problem(response, 404, "user_not_found")


async def test_the_last_platform_admin_is_refused(client: httpx.AsyncClient, api: AuthApi) -> None:
    admin = await api.admin()
    assert_problem(await delete_me(client, admin), 409, "last_admin")
    other = await api.admin()
    assert (await delete_me(client, admin)).status_code == 204
    assert (await client.get("/api/v1/auth/sessions", headers=other.headers)).status_code == 200


async def test_a_bad_body_is_422(client: httpx.AsyncClient, api: AuthApi) -> None:
    user = await api.signed_in()
    response = await client.request("DELETE", ME, json={}, headers=user.headers)
    assert response.status_code == 422
    unauthenticated = await client.request("DELETE", ME, json={"current_password": PASSWORD})
    assert unauthenticated.status_code == 401
    assert uuid.UUID(str(user.id))


async def test_queued_mail_and_mailed_tokens_go_with_the_account(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    """Nothing more goes to a deleted account's address: its unsent mails are dropped with
    it (the links they carry would lead nowhere), and its mailed tokens are deleted."""
    sender = app.state.mail_sender
    saved, sender.transport = sender.transport, None  # the SMTP server is "down"
    try:
        user = await api.signed_in()  # registration queued a verification mail
        forgot = await client.post("/api/v1/auth/password/forgot", json={"email": user.email})
        assert forgot.status_code == 202
        async with platform_state(app).sessionmaker() as db:
            queued = await db.scalars(select(MailOutbox).where(MailOutbox.to_address == user.email))
            assert {m.template for m in queued} == {"verify_email", "password_reset"}

        assert (await delete_me(client, user)).status_code == 204

        async with platform_state(app).sessionmaker() as db:
            left = await db.scalars(select(MailOutbox).where(MailOutbox.to_address == user.email))
            assert list(left) == []
            tokens = await db.scalars(select(AccountToken).where(AccountToken.user_id == user.id))
            assert list(tokens) == []
    finally:
        sender.transport = saved
