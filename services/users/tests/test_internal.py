"""PUT /internal/v1/users/{id}: auth's outbox relay delivering user events."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx

from platform_testing import assert_problem
from users.dependencies import PROVISION_SCOPE

if TYPE_CHECKING:
    from conftest import FakeAuth


def path(user_id: uuid.UUID) -> str:
    return f"/internal/v1/users/{user_id}"


async def test_registration_event_creates_the_profile(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    user_id = uuid.uuid4()
    event = auth.event(user_id, email="New@Example.com", name="New User", role="admin")

    response = await auth.deliver(client, event)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(user_id)
    assert body["email"] == "new@example.com"
    assert (body["name"], body["role"], body["is_active"]) == ("New User", "admin", True)
    assert body["created_at"] == event["created_at"].replace("+00:00", "Z")

    admin_view = await client.get(f"/api/v1/users/{user_id}", headers=auth.admin().headers)
    assert admin_view.json()["email"] == "new@example.com"


async def test_replaying_an_event_changes_nothing(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    user_id = uuid.uuid4()
    event = auth.event(user_id)

    first = await auth.deliver(client, event)
    again = await auth.deliver(client, event)

    assert again.status_code == 200
    assert again.json() == first.json()


async def test_older_events_are_ignored(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    user_id = uuid.uuid4()
    await auth.register(client, user_id, version=100)
    disabled = auth.event(user_id, event="user.disabled", is_active=False, version=300)
    await auth.deliver(client, disabled)

    late = auth.event(user_id, event="user.enabled", is_active=True, version=200)
    response = await auth.deliver(client, late)

    assert response.status_code == 200
    assert response.json()["is_active"] is False


async def test_events_never_overwrite_the_name(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    caller = auth.user(name="Token Name")
    await auth.register(client, caller.id, email=caller.email, name="Registered", version=100)
    await client.patch("/api/v1/users/me", headers=caller.headers, json={"name": "Chosen"})

    updated = auth.event(
        caller.id, event="user.updated", email="moved@example.com", name="Auth Name", version=200
    )
    response = await auth.deliver(client, updated)

    assert response.status_code == 200
    assert response.json()["name"] == "Chosen"
    assert response.json()["email"] == "moved@example.com"


async def test_event_after_just_in_time_provisioning_applies(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    caller = auth.user(name="Early Bird")
    assert (await client.get("/api/v1/users/me", headers=caller.headers)).status_code == 200

    late_registration = auth.event(caller.id, email=caller.email, name="Ignored", role="admin")
    response = await auth.deliver(client, late_registration)

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert response.json()["name"] == "Early Bird"


async def test_disabling_shows_in_the_admin_list(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    user_id = uuid.uuid4()
    await auth.register(client, user_id, version=100)

    disabled = auth.event(user_id, event="user.disabled", is_active=False, version=200)
    response = await auth.deliver(client, disabled)

    assert response.json()["is_active"] is False
    listed = await client.get(
        "/api/v1/users", headers=auth.admin().headers, params={"is_active": "false"}
    )
    assert [item["id"] for item in listed.json()["items"]] == [str(user_id)]
    assert listed.json()["items"][0]["is_active"] is False


async def test_a_token_without_the_scope_is_403(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    user_id = uuid.uuid4()
    event = auth.event(user_id)

    wrong_scope = await client.put(
        path(user_id), headers=auth.service(scopes="users:read"), json=event
    )
    user_token = await client.put(path(user_id), headers=auth.user().headers, json=event)
    admin_token = await client.put(path(user_id), headers=auth.admin().headers, json=event)

    for response in (wrong_scope, user_token, admin_token):
        assert_problem(response, 403, "insufficient_scope")
    missing = await client.get(f"/api/v1/users/{user_id}", headers=auth.admin().headers)
    assert missing.status_code == 404


async def test_the_scope_constant_is_the_one_auth_sends() -> None:
    assert PROVISION_SCOPE == "users:provision"


async def test_mismatched_id_is_422(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    response = await client.put(
        path(uuid.uuid4()), headers=auth.service(), json=auth.event(uuid.uuid4())
    )

    assert_problem(response, 422, "id_mismatch")


async def test_malformed_event_is_422(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    user_id = uuid.uuid4()
    event = {**auth.event(user_id), "event": "user.exploded", "version": "soon"}

    response = await auth.deliver(client, event)

    body = assert_problem(response, 422, "validation_error")
    assert {e["field"] for e in body["errors"]} == {"event", "version"}


async def test_the_internal_route_is_not_under_the_public_prefix(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    user_id = uuid.uuid4()

    response = await client.put(
        f"/api/v1/users/{user_id}", headers=auth.service(), json=auth.event(user_id)
    )

    assert response.status_code == 405


async def test_a_verified_or_moved_address_reaches_the_profile_and_lookups(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    caller = auth.user(name="Mover")
    await auth.register(client, caller.id, email=caller.email, name="Mover", version=100)
    me = await client.get("/api/v1/users/me", headers=caller.headers)
    assert me.json()["email_verified"] is False

    verified = auth.event(
        caller.id,
        event="user.updated",
        email="moved@example.com",
        name="Mover",
        version=200,
    )
    verified["email_verified"] = True
    assert (await auth.deliver(client, verified)).status_code == 200

    me = await client.get("/api/v1/users/me", headers=caller.headers)
    assert (me.json()["email"], me.json()["email_verified"]) == ("moved@example.com", True)
    admin = auth.admin()
    found = await client.get("/api/v1/users", params={"q": "moved@"}, headers=admin.headers)
    assert [p["id"] for p in found.json()["items"]] == [str(caller.id)]
    assert found.json()["items"][0]["email_verified"] is True
