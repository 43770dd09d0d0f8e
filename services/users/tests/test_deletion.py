"""DELETE /internal/v1/users/{id}: auth's outbox relay delivering an account's deletion.

The profile is gone everywhere users answers (404, lookups, the admin list), the deletion is
idempotent, and nothing brings the profile back: not a late event, not a token that is still
valid for a moment, not a race between them."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import httpx

from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import AppFactory, FakeAuth

USERS = "/api/v1/users"


async def delete(client: httpx.AsyncClient, auth: FakeAuth, user_id: uuid.UUID) -> httpx.Response:
    return await client.delete(f"/internal/v1/users/{user_id}", headers=auth.service())


async def test_a_deleted_profile_is_gone_from_reads_lookups_and_lists(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    user_id = uuid.uuid4()
    profile = await auth.register(client, user_id, name="Doomed Person")
    kept = await auth.register(client, name="Kept Person")
    admin = auth.admin().headers

    assert (await delete(client, auth, user_id)).status_code == 204

    assert_problem(await client.get(f"{USERS}/{user_id}", headers=admin), 404, "not_found")
    looked_up = await client.post(
        f"{USERS}/lookup", headers=admin, json={"ids": [str(user_id), kept["id"]]}
    )
    assert [item["id"] for item in looked_up.json()] == [kept["id"]]
    listed = await client.get(USERS, headers=admin, params={"q": profile["email"]})
    assert listed.json()["items"] == []
    everyone = await client.get(USERS, headers=admin, params={"limit": 100})
    assert profile["id"] not in {item["id"] for item in everyone.json()["items"]}


async def test_deleting_twice_or_an_unknown_profile_is_204(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    user_id = uuid.uuid4()
    await auth.register(client, user_id)
    assert (await delete(client, auth, user_id)).status_code == 204
    assert (await delete(client, auth, user_id)).status_code == 204
    assert (await delete(client, auth, uuid.uuid4())).status_code == 204


async def test_a_late_event_does_not_bring_it_back(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    user_id = uuid.uuid4()
    await auth.register(client, user_id, version=100)
    assert (await delete(client, auth, user_id)).status_code == 204
    late = await auth.deliver(client, auth.event(user_id, event="user.updated", version=10**18))
    assert_problem(late, 410, "user_deleted")
    admin = auth.admin().headers
    assert (await client.get(f"{USERS}/{user_id}", headers=admin)).status_code == 404


async def test_a_still_valid_token_cannot_provision_it_again(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    caller = auth.user()
    assert (await client.get(f"{USERS}/me", headers=caller.headers)).status_code == 200
    assert (await delete(client, auth, caller.id)).status_code == 204
    # The token still verifies for up to 5 s (until auth's revocation is seen): no profile.
    assert_problem(await client.get(f"{USERS}/me", headers=caller.headers), 404, "not_found")
    patched = await client.patch(f"{USERS}/me", headers=caller.headers, json={"name": "Back"})
    assert_problem(patched, 404, "not_found")
    admin = auth.admin().headers
    assert (await client.get(f"{USERS}/{caller.id}", headers=admin)).status_code == 404


async def test_the_deletion_wins_a_race_with_provisioning(
    make_client: AppFactory, auth: FakeAuth
) -> None:
    """A first /me (just-in-time provisioning) and the deletion at once, many times over:
    whichever order they run in, the profile ends deleted."""
    async with make_client() as client:
        callers = [auth.user() for _ in range(10)]

        async def first_me(headers: dict[str, str]) -> int:
            return (await client.get(f"{USERS}/me", headers=headers)).status_code

        results = await asyncio.gather(
            *(first_me(c.headers) for c in callers),
            *(delete(client, auth, c.id) for c in callers),
        )
        me_statuses = results[: len(callers)]
        assert set(me_statuses) <= {200, 404}
        admin = auth.admin().headers
        for caller in callers:
            response = await client.get(f"{USERS}/{caller.id}", headers=admin)
            assert response.status_code == 404, response.text


async def test_only_auths_service_token_deletes(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    user_id = uuid.uuid4()
    await auth.register(client, user_id)
    url = f"/internal/v1/users/{user_id}"
    assert (await client.delete(url)).status_code == 401
    assert_problem(await client.delete(url, headers=auth.user().headers), 403, "insufficient_scope")
    other = auth.service("orgs", scopes="users:read")
    assert_problem(await client.delete(url, headers=other), 403, "insufficient_scope")
    admin = auth.admin().headers
    assert (await client.get(f"{USERS}/{user_id}", headers=admin)).status_code == 200
