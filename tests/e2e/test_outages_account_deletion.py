"""Deleting an account (`DELETE /api/v1/auth/me`) across the three services, through nginx:

- the account is gone everywhere: its session token and personal access token fail at auth,
  users and orgs within 5 s, its profile is gone from users (404, lookups), its memberships
  from orgs, an org it was the only member of is deleted, and its email registers again;
- refused with 409 `last_owner`, listing the orgs, while it is the last owner of an org
  with other members;
- with users down, and with orgs crashing while it cannot apply it (its account lock held), the deletion still
  completes once they are back: auth's outbox carries it (nothing is left half-deleted).

This file sorts after test_outages.py: it stops services too, and the `api` fixture restarts
whatever a test left stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from platform_common.account_locks import ACCOUNT_LOCK_SPACE
from platform_testing import assert_problem

pytestmark = pytest.mark.slow

REVOCATION_DEADLINE_SECONDS = 5.0
EVENT_DEADLINE_SECONDS = 5.0
# The relay backs off (2 s, 4 s, 8 s, ...) while a service is away.
OUTBOX_DELIVERY_DEADLINE_SECONDS = 25.0


def poll(check: Any, within: float, interval: float = 0.1) -> tuple[Any, float]:
    started = time.monotonic()
    while True:
        result = check()
        elapsed = time.monotonic() - started
        if result:
            return result, elapsed
        if elapsed > within:
            raise AssertionError(f"not within {within:g} s")
        time.sleep(interval)


def delete_me(api: httpx.Client, account: Any, password: str | None = None) -> httpx.Response:
    return api.request(
        "DELETE",
        "/api/v1/auth/me",
        json={"current_password": password or account.password},
        headers=account.auth,
    )


def create_org(api: httpx.Client, owner: Any, label: str) -> str:
    slug = f"{label}-{owner.id[:8]}"
    response = api.post("/api/v1/orgs", json={"name": label, "slug": slug}, headers=owner.auth)
    assert response.status_code == 201, response.text
    return slug


def add_member(api: httpx.Client, slug: str, by: Any, who: Any, role: str) -> None:
    response = api.post(
        f"/api/v1/orgs/{slug}/members",
        json={"user_id": who.id, "role": role},
        headers=by.auth,
    )
    assert response.status_code == 201, response.text


def member_ids(api: httpx.Client, slug: str, by: Any) -> set[str]:
    response = api.get(f"/api/v1/orgs/{slug}/members", headers=by.auth)
    assert response.status_code == 200, response.text
    return {item["user_id"] for item in response.json()["items"]}


def gone_from_users(api: httpx.Client, admin: Any, account: Any) -> bool:
    return api.get(f"/api/v1/users/{account.id}", headers=admin.auth).status_code == 404


def refused_everywhere(api: httpx.Client, headers: dict[str, str]) -> bool:
    return all(
        api.get(path, headers=headers).status_code == 401
        for path in ("/api/v1/auth/sessions", "/api/v1/users/me", "/api/v1/orgs")
    )


def test_a_deleted_account_is_gone_everywhere_and_its_email_registers_again(
    api: httpx.Client, accounts: Any
) -> None:
    admin = accounts.admin()
    alice, bob = accounts.create("alice"), accounts.create("bob")
    solo = create_org(api, alice, "solo")
    shared = create_org(api, bob, "shared")
    add_member(api, shared, bob, alice, "admin")
    pat = api.post(
        "/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 1}, headers=alice.auth
    )
    assert pat.status_code == 201, pat.text
    pat_auth = {"Authorization": f"Bearer {pat.json()['token']}"}
    assert api.get("/api/v1/orgs", headers=pat_auth).status_code == 200
    # A personal access token cannot delete the account.
    by_pat = api.request(
        "DELETE", "/api/v1/auth/me", json={"current_password": alice.password}, headers=pat_auth
    )
    assert_problem(by_pat, 403, "insufficient_scope")
    assert_problem(delete_me(api, alice, "not the password"), 403, "invalid_credentials")

    response = delete_me(api, alice)
    assert response.status_code == 204, response.text

    _, took = poll(lambda: refused_everywhere(api, alice.auth), REVOCATION_DEADLINE_SECONDS)
    print(f"session token refused everywhere {took:.2f} s after the deletion")
    poll(
        lambda: all(
            api.get(path, headers=pat_auth).status_code == 401
            for path in ("/api/v1/users/me", "/api/v1/orgs")
        ),
        REVOCATION_DEADLINE_SECONDS,
    )

    poll(lambda: gone_from_users(api, admin, alice), EVENT_DEADLINE_SECONDS)
    looked_up = api.post("/api/v1/users/lookup", json={"ids": [alice.id, bob.id]}, headers=bob.auth)
    assert [item["id"] for item in looked_up.json()] == [bob.id]
    poll(lambda: member_ids(api, shared, bob) == {bob.id}, EVENT_DEADLINE_SECONDS)
    # The org only alice was in is gone (a platform admin sees every org that exists).
    poll(
        lambda: api.get(f"/api/v1/orgs/{solo}", headers=admin.auth).status_code == 404,
        EVENT_DEADLINE_SECONDS,
    )

    assert_problem(
        api.post("/api/v1/auth/login", json={"email": alice.email, "password": alice.password}),
        401,
        "invalid_credentials",
    )
    again = api.post(
        "/api/v1/auth/register",
        json={"email": alice.email, "password": alice.password, "name": "Alice Again"},
    )
    assert again.status_code == 201, again.text
    assert again.json()["id"] != alice.id
    assert (
        api.post(
            "/api/v1/auth/login", json={"email": alice.email, "password": alice.password}
        ).status_code
        == 200
    )


def test_the_last_owner_is_refused_with_the_orgs_listed(api: httpx.Client, accounts: Any) -> None:
    carol, dan = accounts.create("carol"), accounts.create("dan")
    first, second = create_org(api, carol, "first"), create_org(api, carol, "second")
    for slug in (first, second):
        add_member(api, slug, carol, dan, "member")

    body = assert_problem(delete_me(api, carol), 409, "last_owner")
    assert body["orgs"] == sorted([first, second])
    assert api.get("/api/v1/orgs", headers=carol.auth).status_code == 200  # nothing changed

    # Hand one over and leave the other to dan alone: then it goes through.
    made_owner = api.patch(
        f"/api/v1/orgs/{first}/members/{dan.id}", json={"role": "owner"}, headers=carol.auth
    )
    assert made_owner.status_code == 200, made_owner.text
    removed = api.delete(f"/api/v1/orgs/{second}/members/{dan.id}", headers=carol.auth)
    assert removed.status_code == 204, removed.text
    assert delete_me(api, carol).status_code == 204
    poll(lambda: member_ids(api, first, dan) == {dan.id}, EVENT_DEADLINE_SECONDS)


def test_deletion_with_users_down_completes_when_users_is_back(
    api: httpx.Client, accounts: Any, platform: Any
) -> None:
    admin = accounts.admin()
    erin, fay = accounts.create("erin"), accounts.create("fay")
    shared = create_org(api, fay, "erins-team")
    add_member(api, shared, fay, erin, "member")

    platform.stop("users")
    response = delete_me(api, erin)  # auth and orgs do their part without users
    assert response.status_code == 204, response.text
    poll(
        lambda: all(
            api.get(path, headers=erin.auth).status_code == 401
            for path in ("/api/v1/auth/sessions", "/api/v1/orgs")
        ),
        REVOCATION_DEADLINE_SECONDS,
    )
    platform.start("users")

    _, took = poll(lambda: gone_from_users(api, admin, erin), OUTBOX_DELIVERY_DEADLINE_SECONDS)
    print(f"users caught up {took:.2f} s after it was ready again")
    assert api.get("/api/v1/users/me", headers=erin.auth).status_code == 401
    assert member_ids(api, shared, fay) == {fay.id}


def crash(service: Any) -> None:
    """SIGKILL (a graceful stop would wait for the request stuck on the lock): its database
    transactions are rolled back, as in a real crash."""
    os.killpg(service.proc.pid, signal.SIGKILL)
    service.proc.wait(timeout=30)


@contextlib.contextmanager
def account_locked_at_orgs(database_url: str, user_id: str) -> Iterator[None]:
    """Hold the account's lock in orgs' database (platform_common.account_locks), so that
    orgs cannot apply the deletion until the block ends."""
    key = int.from_bytes(uuid.UUID(user_id).bytes[:4], "big", signed=True)
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    held, release = threading.Event(), threading.Event()

    async def hold() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("SELECT pg_advisory_lock($1, $2)", ACCOUNT_LOCK_SPACE, key)
            held.set()
            await asyncio.to_thread(release.wait)
        finally:
            await connection.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    assert held.wait(10), "the lock was not taken"
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def test_deletion_that_orgs_could_not_apply_completes_after_orgs_restarts(
    api: httpx.Client, accounts: Any, platform: Any
) -> None:
    admin = accounts.admin()
    gus, hal = accounts.create("gus"), accounts.create("hal")
    solo = create_org(api, gus, "gus-solo")
    shared = create_org(api, hal, "hals-team")
    add_member(api, shared, hal, gus, "admin")

    with account_locked_at_orgs(platform["orgs"].env["ORGS_DATABASE_URL"], gus.id):
        response = delete_me(api, gus)
        assert response.status_code == 204, response.text
        # users applies it at once; orgs is stuck on the lock, and then crashes.
        poll(lambda: gone_from_users(api, admin, gus), EVENT_DEADLINE_SECONDS)
        crash(platform["orgs"])
    platform.start("orgs")

    _, took = poll(
        lambda: member_ids(api, shared, hal) == {hal.id}, OUTBOX_DELIVERY_DEADLINE_SECONDS
    )
    print(f"orgs caught up {took:.2f} s after it was ready again")
    assert api.get(f"/api/v1/orgs/{solo}", headers=admin.auth).status_code == 404
    assert api.get("/api/v1/orgs", headers=gus.auth).status_code == 401
