"""Members: listing with names from users, adding, changing roles, removing."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from platform_testing import Backends, assert_problem, flush_redis

if TYPE_CHECKING:
    from conftest import Caller, FakeUsers, OrgsApi, OrgWorld, People


def members(slug: str, user_id: uuid.UUID | None = None) -> str:
    path = f"/api/v1/orgs/{slug}/members"
    return f"{path}/{user_id}" if user_id else path


async def change_role(
    client: httpx.AsyncClient, world: OrgWorld, who: Caller, role: str, *, by: Caller
) -> httpx.Response:
    return await client.patch(members(world.slug, who.id), json={"role": role}, headers=by.headers)


# Listing ----------------------------------------------------------------------------


async def test_list_has_names_from_one_batched_lookup_with_the_callers_context(
    client: httpx.AsyncClient, world: OrgWorld, users: FakeUsers, backends: Backends
) -> None:
    # Adding the members cached their cards (platform_common.cache): start without them.
    await flush_redis(backends.redis_url)
    users.calls.clear()
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = await client.get(
        members(world.slug),
        headers={
            **world.viewer.headers,
            "X-Request-ID": "req-members-1",
            "traceparent": traceparent,
        },
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 4
    by_id = {item["user_id"]: item for item in page["items"]}
    for caller, role in (
        (world.owner, "owner"),
        (world.admin, "admin"),
        (world.member, "member"),
        (world.viewer, "viewer"),
    ):
        item = by_id[str(caller.id)]
        assert (item["name"], item["email"], item["role"]) == (caller.name, caller.email, role)
        assert item["joined_at"]

    assert len(users.calls) == 1
    call = users.calls[0]
    assert call.method == "POST" and call.url.path == "/api/v1/users/lookup"
    assert sorted(users.lookups()[0]) == sorted(by_id)
    assert call.headers["authorization"] == f"Bearer {world.viewer.token}"

    # The cards are now cached: the next page view asks users nothing.
    again = await client.get(members(world.slug), headers=world.viewer.headers)
    assert again.json()["items"] == page["items"]
    assert len(users.calls) == 1
    assert call.headers["x-request-id"] == "req-members-1"
    # Same trace, new (client) span.
    assert call.headers["traceparent"].split("-")[1] == traceparent.split("-")[1]


async def test_one_lookup_per_page(
    client: httpx.AsyncClient, people: People, api: OrgsApi, users: FakeUsers, backends: Backends
) -> None:
    owner = people.user()
    org = await api.create_org(owner)
    for _ in range(4):
        await api.add_member(org["slug"], owner, people.user(), "viewer")
    await flush_redis(backends.redis_url)  # no cards cached by the adds
    users.calls.clear()

    first = await client.get(members(org["slug"]), params={"limit": 2}, headers=owner.headers)
    second = await client.get(
        members(org["slug"]), params={"limit": 2, "page": 3}, headers=owner.headers
    )
    assert (first.json()["total"], first.json()["pages"]) == (5, 3)
    assert len(first.json()["items"]) == 2 and len(second.json()["items"]) == 1
    assert [len(ids) for ids in users.lookups()] == [2, 1]


async def test_a_member_unknown_to_users_is_listed_without_name(
    client: httpx.AsyncClient, world: OrgWorld, users: FakeUsers, backends: Backends
) -> None:
    del users.known[world.member.id]
    await flush_redis(backends.redis_url)  # (users invalidates a deleted user's card)
    response = await client.get(members(world.slug), headers=world.owner.headers)
    item = next(i for i in response.json()["items"] if i["user_id"] == str(world.member.id))
    assert (item["name"], item["email"], item["role"]) == (None, None, "member")


async def test_outsider_gets_404(client: httpx.AsyncClient, world: OrgWorld) -> None:
    assert_problem(
        await client.get(members(world.slug), headers=world.outsider.headers), 404, "not_found"
    )


# Adding ------------------------------------------------------------------------------


async def test_add_member(client: httpx.AsyncClient, world: OrgWorld, users: FakeUsers) -> None:
    response = await client.post(
        members(world.slug),
        json={"user_id": str(world.newcomer.id), "role": "member"},
        headers=world.admin.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "user_id": str(world.newcomer.id),
        "name": world.newcomer.name,
        "email": world.newcomer.email,
        "role": "member",
        "joined_at": response.json()["joined_at"],
    }
    assert users.lookups() == [[str(world.newcomer.id)]]
    assert users.calls[0].headers["authorization"] == f"Bearer {world.admin.token}"
    orgs = await client.get("/api/v1/orgs", headers=world.newcomer.headers)
    assert [(o["slug"], o["role"]) for o in orgs.json()["items"]] == [(world.slug, "member")]


async def test_add_unknown_user_is_404(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.post(
        members(world.slug),
        json={"user_id": str(uuid.uuid4()), "role": "member"},
        headers=world.owner.headers,
    )
    assert_problem(response, 404, "user_not_found")


async def test_add_existing_member_is_409(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.post(
        members(world.slug),
        json={"user_id": str(world.viewer.id), "role": "admin"},
        headers=world.owner.headers,
    )
    assert_problem(response, 409, "already_member")
    roles = await client.get(members(world.slug), headers=world.owner.headers)
    viewer = next(i for i in roles.json()["items"] if i["user_id"] == str(world.viewer.id))
    assert viewer["role"] == "viewer"


@pytest.mark.parametrize("endpoint", ["members", "invitations"])
@pytest.mark.parametrize(
    ("by", "role", "status"),
    [
        ("admin", "owner", 403),
        ("admin", "admin", 201),
        ("owner", "owner", 201),
        ("platform_admin", "owner", 201),
    ],
)
async def test_nobody_grants_above_their_own_role(
    client: httpx.AsyncClient, world: OrgWorld, endpoint: str, by: str, role: str, status: int
) -> None:
    """Adding a member and inviting one follow the same rule."""
    caller = world.caller(by)
    assert caller is not None
    body = (
        {"user_id": str(world.newcomer.id), "role": role}
        if endpoint == "members"
        else {"email": world.newcomer.email, "role": role}
    )
    response = await client.post(
        f"/api/v1/orgs/{world.slug}/{endpoint}", json=body, headers=caller.headers
    )
    if status == 403:
        assert_problem(response, 403, "forbidden")
    else:
        assert response.status_code == status, response.text
        assert response.json()["role"] == role


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("members", {"role": "member"}),
        ("members", {"user_id": "not-a-uuid", "role": "member"}),
        ("members", {"user_id": str(uuid.uuid4()), "role": "superuser"}),
        ("invitations", {"email": "not-an-email"}),
        ("invitations", {"email": "a@b.co", "role": "god"}),
    ],
)
async def test_add_and_invite_validation(
    client: httpx.AsyncClient, world: OrgWorld, endpoint: str, body: dict[str, str]
) -> None:
    response = await client.post(
        f"/api/v1/orgs/{world.slug}/{endpoint}", json=body, headers=world.owner.headers
    )
    assert_problem(response, 422, "validation_error")


# Changing roles ---------------------------------------------------------------------


async def test_admin_changes_roles_up_to_its_own(
    client: httpx.AsyncClient, world: OrgWorld
) -> None:
    promote = await change_role(client, world, world.viewer, "admin", by=world.admin)
    assert promote.status_code == 200, promote.text
    assert promote.json()["role"] == "admin"
    assert promote.json()["email"] == world.viewer.email
    to_owner = await change_role(client, world, world.member, "owner", by=world.admin)
    assert_problem(to_owner, 403, "forbidden")


async def test_only_an_owner_changes_an_owner(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi
) -> None:
    await api.add_member(world.slug, world.owner, world.newcomer, "owner")
    by_admin = await change_role(client, world, world.newcomer, "member", by=world.admin)
    assert_problem(by_admin, 403, "forbidden")
    by_owner = await change_role(client, world, world.newcomer, "member", by=world.owner)
    assert by_owner.status_code == 200
    assert by_owner.json()["role"] == "member"


async def test_admin_cannot_demote_the_sole_owner(
    client: httpx.AsyncClient, world: OrgWorld
) -> None:
    response = await change_role(client, world, world.owner, "admin", by=world.admin)
    assert_problem(response, 403, "forbidden")


async def test_last_owner_cannot_step_down(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi
) -> None:
    response = await change_role(client, world, world.owner, "admin", by=world.owner)
    assert_problem(response, 409, "last_owner")
    by_platform_admin = await change_role(
        client, world, world.owner, "member", by=world.platform_admin
    )
    assert_problem(by_platform_admin, 409, "last_owner")

    await api.add_member(world.slug, world.owner, world.newcomer, "owner")
    now_possible = await change_role(client, world, world.owner, "admin", by=world.owner)
    assert now_possible.status_code == 200
    assert (await api.roles(world.slug, world.newcomer))[world.owner.id] == "admin"


async def test_change_unknown_member_is_404(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await change_role(client, world, world.outsider, "member", by=world.owner)
    assert_problem(response, 404, "member_not_found")


# Removing ----------------------------------------------------------------------------


async def test_admin_removes_a_member(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi
) -> None:
    response = await client.delete(
        members(world.slug, world.member.id), headers=world.admin.headers
    )
    assert response.status_code == 204
    assert world.member.id not in await api.roles(world.slug, world.owner)
    gone = await client.get(members(world.slug), headers=world.member.headers)
    assert_problem(gone, 404, "not_found")


async def test_admin_cannot_remove_an_owner(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.delete(members(world.slug, world.owner.id), headers=world.admin.headers)
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("who", ["member", "viewer", "admin"])
async def test_anyone_may_leave(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi, who: str
) -> None:
    caller = world.caller(who)
    assert caller is not None
    response = await client.delete(members(world.slug, caller.id), headers=caller.headers)
    assert response.status_code == 204
    assert caller.id not in await api.roles(world.slug, world.owner)


async def test_members_cannot_remove_others(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.delete(
        members(world.slug, world.viewer.id), headers=world.member.headers
    )
    assert_problem(response, 403, "forbidden")


async def test_sole_owner_cannot_leave(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi
) -> None:
    response = await client.delete(members(world.slug, world.owner.id), headers=world.owner.headers)
    assert_problem(response, 409, "last_owner")
    by_platform_admin = await client.delete(
        members(world.slug, world.owner.id), headers=world.platform_admin.headers
    )
    assert_problem(by_platform_admin, 409, "last_owner")
    assert (await api.roles(world.slug, world.owner))[world.owner.id] == "owner"


async def test_remove_unknown_member_is_404(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.delete(
        members(world.slug, world.outsider.id), headers=world.owner.headers
    )
    assert_problem(response, 404, "member_not_found")
