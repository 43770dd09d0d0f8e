"""An account deleted at auth, carried out by orgs (its internal endpoints for auth):

- `GET /internal/v1/orgs/users/{id}/deletion-blockers`: the orgs it is the last owner of
  while they have other members;
- `DELETE /internal/v1/orgs/users/{id}`: its memberships go, an org it was the only member of
  goes with it, an org left without an owner gets one, and the account can never be added
  again; idempotent."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from platform_testing import TokenFactory, assert_problem

if TYPE_CHECKING:
    from conftest import Caller, OrgsApi, OrgWorld, People

SCOPE = "orgs:users:delete"


@pytest.fixture
def auth_service(token_factory: TokenFactory) -> dict[str, str]:
    token = token_factory.mint(sub="svc:auth", role="service", scope=SCOPE)
    return {"Authorization": f"Bearer {token}"}


async def blockers(client: httpx.AsyncClient, headers: dict[str, str], who: Caller) -> list[str]:
    response = await client.get(
        f"/internal/v1/orgs/users/{who.id}/deletion-blockers", headers=headers
    )
    assert response.status_code == 200, response.text
    slugs: list[str] = response.json()["orgs"]
    return slugs


async def delete_account(
    client: httpx.AsyncClient, headers: dict[str, str], who: Caller
) -> httpx.Response:
    return await client.delete(f"/internal/v1/orgs/users/{who.id}", headers=headers)


async def test_the_last_owner_of_orgs_with_members_is_blocked(
    client: httpx.AsyncClient, api: OrgsApi, people: People, auth_service: dict[str, str]
) -> None:
    owner, other = people.user("owner"), people.user("other")
    shared_b = await api.create_org(owner, slug=f"b-{uuid.uuid4().hex[:8]}")
    shared_a = await api.create_org(owner, slug=f"a-{uuid.uuid4().hex[:8]}")
    await api.create_org(owner)  # alone in it: not blocking, it goes with the account
    co_owned = await api.create_org(owner)
    joined = await api.create_org(other)  # a member only: not blocking
    for org in (shared_a, shared_b):
        await api.add_member(org["slug"], owner, other, "admin")
    await api.add_member(co_owned["slug"], owner, other, "owner")
    await api.add_member(joined["slug"], other, owner, "member")

    assert await blockers(client, auth_service, owner) == sorted(
        [shared_a["slug"], shared_b["slug"]]
    )
    assert await blockers(client, auth_service, people.user("nobody")) == []


async def test_memberships_go_and_a_sole_member_org_is_deleted(
    client: httpx.AsyncClient, api: OrgsApi, people: People, auth_service: dict[str, str]
) -> None:
    leaver, other = people.user("leaver"), people.user("other")
    alone = await api.create_org(leaver)
    theirs = await api.create_org(other)
    await api.add_member(theirs["slug"], other, leaver, "admin")
    invitation = await api.invite(theirs["slug"], leaver, "friend@example.com")

    assert (await delete_account(client, auth_service, leaver)).status_code == 204

    # The sole-member org is gone (its owner would see 404 like anyone).
    lookup = await client.get(f"/api/v1/orgs/{alone['slug']}", headers=other.headers)
    assert_problem(lookup, 404, "not_found")
    # ... its slug is free again.
    await api.create_org(other, slug=alone["slug"])
    # The other org lost the member; the invitation it created stays (documented choice).
    assert await api.roles(theirs["slug"], other) == {other.id: "owner"}
    pending = await client.get(f"/api/v1/orgs/{theirs['slug']}/invitations", headers=other.headers)
    assert [item["id"] for item in pending.json()["items"]] == [invitation["id"]]


async def test_it_is_idempotent(
    client: httpx.AsyncClient, api: OrgsApi, people: People, auth_service: dict[str, str]
) -> None:
    leaver = people.user("leaver")
    await api.create_org(leaver)
    assert (await delete_account(client, auth_service, leaver)).status_code == 204
    assert (await delete_account(client, auth_service, leaver)).status_code == 204
    unknown = people.user("unknown", known=False)
    assert (await delete_account(client, auth_service, unknown)).status_code == 204


async def test_a_deleted_account_cannot_be_added_invited_in_or_create_an_org(
    client: httpx.AsyncClient, api: OrgsApi, people: People, auth_service: dict[str, str]
) -> None:
    owner, leaver = people.user("owner"), people.user("leaver")
    org = await api.create_org(owner)
    invitation = await api.invite(org["slug"], owner, leaver.email)
    assert (await delete_account(client, auth_service, leaver)).status_code == 204

    # users may not have heard of the deletion yet: orgs' own tombstone refuses it.
    added = await client.post(
        f"/api/v1/orgs/{org['slug']}/members",
        json={"user_id": str(leaver.id), "role": "member"},
        headers=owner.headers,
    )
    assert_problem(added, 404, "user_not_found")
    # Its token may verify for a few more seconds: still nothing is created for it.
    accepted = await client.post(
        f"/api/v1/orgs/invitations/{invitation['token']}/accept", headers=leaver.headers
    )
    assert_problem(accepted, 404, "user_not_found")
    created = await client.post(
        "/api/v1/orgs", json={"name": "Back", "slug": "back-again"}, headers=leaver.headers
    )
    assert_problem(created, 404, "user_not_found")
    assert await api.roles(org["slug"], owner) == {owner.id: "owner"}


async def test_an_org_left_without_an_owner_gets_one(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi, auth_service: dict[str, str]
) -> None:
    """Members joined after auth's check: the highest-ranked, longest-standing one becomes
    owner; the org is never left without an owner."""
    assert (await delete_account(client, auth_service, world.owner)).status_code == 204
    roles = await api.roles(world.slug, world.admin)
    assert roles == {world.admin.id: "owner", world.member.id: "member", world.viewer.id: "viewer"}

    # Both changes are in the org's audit log, by the system (auth's deletion carried out).
    log = await client.get(
        f"/api/v1/orgs/{world.slug}/audit-log", params={"limit": 5}, headers=world.admin.headers
    )
    assert log.status_code == 200, log.text
    latest = {e["type"]: e for e in log.json()["items"][:2]}
    removed, promoted = latest["member.removed"], latest["member.role_changed"]
    assert removed["target"] == {"type": "user", "id": str(world.owner.id)}
    assert removed["actor"]["kind"] == "system" and removed["data"]["reason"] == "account_deleted"
    assert promoted["target"] == {"type": "user", "id": str(world.admin.id)}
    assert promoted["data"]["role"] == "owner" and promoted["data"]["old_role"] == "admin"


async def test_deletion_racing_with_adds_leaves_no_membership(
    client: httpx.AsyncClient, api: OrgsApi, people: People, auth_service: dict[str, str]
) -> None:
    """The account added to orgs while its deletion runs: whichever commits first, no
    membership of it is left, and every add answers 201 or 404, never a 500."""
    owners = [people.user("owner") for _ in range(6)]
    orgs = [await api.create_org(owner) for owner in owners]
    leaver = people.user("leaver")

    async def add(owner: Caller, slug: str) -> int:
        response = await client.post(
            f"/api/v1/orgs/{slug}/members",
            json={"user_id": str(leaver.id), "role": "member"},
            headers=owner.headers,
        )
        return response.status_code

    async def deletion() -> int:
        return (await delete_account(client, auth_service, leaver)).status_code

    pairs = list(zip(owners, orgs, strict=True))
    statuses = await asyncio.gather(
        *(add(owner, org["slug"]) for owner, org in pairs[:3]),
        deletion(),
        *(add(owner, org["slug"]) for owner, org in pairs[3:]),
    )
    assert statuses[3] == 204
    assert set(statuses) <= {201, 204, 404}, statuses
    for owner, org in pairs:
        assert await api.roles(org["slug"], owner) == {owner.id: "owner"}
    listed = await client.get("/api/v1/orgs", headers=leaver.headers)
    assert listed.json()["items"] == []


async def test_only_auths_service_token_with_the_scope(
    client: httpx.AsyncClient, api: OrgsApi, people: People, token_factory: TokenFactory
) -> None:
    leaver = people.user("leaver")
    org = await api.create_org(leaver)
    memberships_only = {
        "Authorization": "Bearer "
        + token_factory.mint(sub="svc:auth", role="service", scope="orgs:memberships:read")
    }
    for headers in ({}, leaver.headers, memberships_only):
        response = await delete_account(client, headers, leaver)
        assert response.status_code in (401, 403), response.text
        check = await client.get(
            f"/internal/v1/orgs/users/{leaver.id}/deletion-blockers", headers=headers
        )
        assert check.status_code in (401, 403), check.text
    assert (
        await client.get(f"/api/v1/orgs/{org['slug']}", headers=leaver.headers)
    ).status_code == 200
