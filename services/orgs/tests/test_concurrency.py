"""Membership changes racing each other: the database keeps the invariants.

Both requests of a pair run concurrently (`asyncio.gather` over two HTTP requests); each
has its own session and database connection, so on PostgreSQL this is a real race between
two transactions. The outcomes must hold for every interleaving: one of two adds wins, and
an org never ends with zero owners.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest

from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import Caller, OrgsApi, People

ROUNDS = 5


def member_path(slug: str, caller: Caller) -> str:
    return f"/api/v1/orgs/{slug}/members/{caller.id}"


@pytest.fixture
async def org(api: OrgsApi, people: People) -> tuple[str, Caller]:
    """An org (its slug) and its owner."""
    owner = people.user()
    return (await api.create_org(owner))["slug"], owner


async def test_simultaneous_adds_of_one_user(
    client: httpx.AsyncClient, people: People, api: OrgsApi, org: tuple[str, Caller]
) -> None:
    slug, owner = org
    for _ in range(ROUNDS):
        newcomer = people.user()
        body = {"user_id": str(newcomer.id), "role": "member"}
        responses = await asyncio.gather(
            *(
                client.post(f"/api/v1/orgs/{slug}/members", json=body, headers=h)
                for h in (owner.headers, owner.headers)
            )
        )
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        assert_problem(next(r for r in responses if r.status_code == 409), 409, "already_member")
        assert (await api.roles(slug, owner))[newcomer.id] == "member"


async def two_owners(api: OrgsApi, people: People) -> tuple[str, Caller, Caller]:
    first, second = people.user("first"), people.user("second")
    org = await api.create_org(first)
    await api.add_member(org["slug"], first, second, "owner")
    return org["slug"], first, second


async def assert_an_owner_remains(api: OrgsApi, slug: str, *candidates: Caller) -> None:
    for caller in candidates:
        response = await api.client.get(f"/api/v1/orgs/{slug}/members", headers=caller.headers)
        if response.status_code == 200:
            roles = {m["role"] for m in response.json()["items"]}
            assert "owner" in roles, response.json()
            return
    raise AssertionError("nobody is left who can see the org")


# Two owners, "first" and "second", each send one request at the same moment:
# (action, by, target). "remove" with by == target is leaving the org. Every interleaving
# must leave an owner, and the request that would not is refused with 409 last_owner.
OWNER_RACES: dict[str, tuple[tuple[str, str, str], tuple[str, str, str], set[tuple[int, int]]]] = {
    # When one request commits before the other is even authorized, the other's caller is
    # already a plain member (403) or no member at all (404): refused before the owner count.
    "demote each other": (
        ("demote", "first", "second"),
        ("demote", "second", "first"),
        {(200, 409), (200, 403)},
    ),
    "remove each other": (
        ("remove", "first", "second"),
        ("remove", "second", "first"),
        {(204, 409), (204, 404)},
    ),
    "both leave": (("remove", "first", "first"), ("remove", "second", "second"), {(204, 409)}),
    # If the leave commits before the demotion is even authorized, the leaver is no longer
    # a member: 404.
    "leave while demoting the other": (
        ("remove", "first", "first"),
        ("demote", "first", "second"),
        {(200, 409), (204, 409), (204, 404)},
    ),
}


async def send(
    client: httpx.AsyncClient, slug: str, owners: dict[str, Caller], request: tuple[str, str, str]
) -> httpx.Response:
    action, by, target = request
    path, headers = member_path(slug, owners[target]), owners[by].headers
    if action == "demote":
        return await client.patch(path, json={"role": "member"}, headers=headers)
    return await client.delete(path, headers=headers)


@pytest.mark.parametrize("race", OWNER_RACES)
async def test_an_org_never_loses_its_last_owner(
    client: httpx.AsyncClient, people: People, api: OrgsApi, race: str
) -> None:
    one, other, allowed = OWNER_RACES[race]
    for _ in range(ROUNDS):
        slug, first, second = await two_owners(api, people)
        owners = {"first": first, "second": second}
        responses = await asyncio.gather(
            send(client, slug, owners, one), send(client, slug, owners, other)
        )
        statuses = tuple(sorted(r.status_code for r in responses))
        assert statuses in allowed, [r.text for r in responses]
        for response in responses:
            if response.status_code == 409:
                assert_problem(response, 409, "last_owner")
            elif response.status_code == 403:
                assert_problem(response, 403, "forbidden")
            elif response.status_code == 404:
                assert_problem(response, 404, "not_found")
        await assert_an_owner_remains(api, slug, first, second)


async def test_two_accepts_of_one_invitation(
    client: httpx.AsyncClient, people: People, api: OrgsApi, org: tuple[str, Caller]
) -> None:
    slug, owner = org
    for _ in range(ROUNDS):
        invitee = people.user("invitee")
        invitation = await api.invite(slug, owner, invitee.email)
        path = f"/api/v1/orgs/invitations/{invitation['token']}/accept"
        responses = await asyncio.gather(
            client.post(path, headers=invitee.headers), client.post(path, headers=invitee.headers)
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses in ([201, 409], [201, 410]), [r.text for r in responses]
        assert (await api.roles(slug, owner))[invitee.id] == "member"
