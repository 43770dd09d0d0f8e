"""Organizations: create, list, get, rename, delete, and their validation errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import OrgsApi, OrgWorld, People

ORGS = "/api/v1/orgs"


async def test_create_makes_the_caller_owner(client: httpx.AsyncClient, people: People) -> None:
    owner = people.user()
    response = await client.post(
        ORGS, json={"name": "Acme Inc", "slug": "acme-inc"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Acme Inc"
    assert body["slug"] == "acme-inc"
    assert body["role"] == "owner"
    assert {"id", "created_at"} <= body.keys()
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")

    detail = await client.get(f"{ORGS}/acme-inc", headers=owner.headers)
    assert detail.status_code == 200
    assert detail.json()["member_count"] == 1
    assert detail.json()["role"] == "owner"


async def test_slug_taken(client: httpx.AsyncClient, people: People, api: OrgsApi) -> None:
    await api.create_org(people.user(), slug="taken")
    response = await client.post(
        ORGS, json={"name": "Other", "slug": "taken"}, headers=people.user().headers
    )
    assert_problem(response, 409, "slug_taken")


@pytest.mark.parametrize(
    "slug",
    ["a", "-abc", "abc-", "ab--cd", "Abc", "ab_c", "ab c", "é-é", "x" * 64, "", "ab.c"],
)
async def test_invalid_slugs_are_422(client: httpx.AsyncClient, people: People, slug: str) -> None:
    response = await client.post(
        ORGS, json={"name": "X", "slug": slug}, headers=people.user().headers
    )
    body = assert_problem(response, 422, "validation_error")
    assert any(error["field"] == "slug" for error in body["errors"])


@pytest.mark.parametrize("slug", ["ab", "a-b", "0rg-42", "x" * 63])
async def test_valid_slugs(client: httpx.AsyncClient, people: People, slug: str) -> None:
    response = await client.post(
        ORGS, json={"name": "X", "slug": slug}, headers=people.user().headers
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "body", [{"slug": "ok-slug"}, {"name": "", "slug": "ok-slug"}, {"name": 5, "slug": "ok-slug"}]
)
async def test_invalid_name_is_422(
    client: httpx.AsyncClient, people: People, body: dict[str, object]
) -> None:
    response = await client.post(ORGS, json=body, headers=people.user().headers)
    assert_problem(response, 422, "validation_error")


async def test_list_shows_only_the_callers_orgs_with_its_role(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi, people: People
) -> None:
    mine = await api.create_org(world.viewer, slug="viewers-own")
    await api.create_org(people.user(), slug="someone-elses")

    response = await client.get(ORGS, headers=world.viewer.headers)
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 2
    assert page["page"] == 1 and page["pages"] == 1
    roles = {item["slug"]: item["role"] for item in page["items"]}
    assert roles == {world.slug: "viewer", mine["slug"]: "owner"}
    assert all({"id", "name", "slug", "role"} <= item.keys() for item in page["items"])


async def test_list_paginates(client: httpx.AsyncClient, people: People, api: OrgsApi) -> None:
    owner = people.user()
    for i in range(5):
        await api.create_org(owner, slug=f"org-{i}")
    first = (await client.get(ORGS, params={"limit": 2}, headers=owner.headers)).json()
    last = (await client.get(ORGS, params={"limit": 2, "page": 3}, headers=owner.headers)).json()
    assert (first["total"], first["pages"], len(first["items"])) == (5, 3, 2)
    assert [item["slug"] for item in first["items"]] == ["org-0", "org-1"]
    assert [item["slug"] for item in last["items"]] == ["org-4"]
    too_many = await client.get(ORGS, params={"limit": 101}, headers=owner.headers)
    assert_problem(too_many, 422, "validation_error")


async def test_unknown_org_is_404(client: httpx.AsyncClient, people: People) -> None:
    response = await client.get(f"{ORGS}/no-such-org", headers=people.user().headers)
    assert_problem(response, 404, "not_found")


async def test_outsider_cannot_tell_an_org_exists(
    client: httpx.AsyncClient, world: OrgWorld
) -> None:
    existing = await client.get(f"{ORGS}/{world.slug}", headers=world.outsider.headers)
    missing = await client.get(f"{ORGS}/no-such-org", headers=world.outsider.headers)
    assert_problem(existing, 404, "not_found")
    assert_problem(missing, 404, "not_found")
    assert existing.json()["detail"] == missing.json()["detail"]


async def test_a_viewer_reads_the_org(client: httpx.AsyncClient, world: OrgWorld) -> None:
    # The contract: GET /orgs/{slug} is for any member, viewers included.
    response = await client.get(f"{ORGS}/{world.slug}", headers=world.viewer.headers)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "viewer"


async def test_platform_admin_sees_any_org_without_a_role(
    client: httpx.AsyncClient, world: OrgWorld
) -> None:
    response = await client.get(f"{ORGS}/{world.slug}", headers=world.platform_admin.headers)
    assert response.status_code == 200
    assert response.json()["role"] is None
    assert response.json()["member_count"] == 4


async def test_rename(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.patch(
        f"{ORGS}/{world.slug}", json={"name": "  New name  "}, headers=world.admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "New name"
    assert response.json()["role"] == "admin"
    again = await client.get(f"{ORGS}/{world.slug}", headers=world.member.headers)
    assert again.json()["name"] == "New name"


async def test_rename_by_member_is_403(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.patch(
        f"{ORGS}/{world.slug}", json={"name": "Nope"}, headers=world.member.headers
    )
    assert_problem(response, 403, "forbidden")


async def test_delete_cascades(client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi) -> None:
    assert_problem(
        await client.delete(f"{ORGS}/{world.slug}", headers=world.admin.headers), 403, "forbidden"
    )
    response = await client.delete(f"{ORGS}/{world.slug}", headers=world.owner.headers)
    assert response.status_code == 204
    assert_problem(
        await client.get(f"{ORGS}/{world.slug}", headers=world.owner.headers), 404, "not_found"
    )
    # Members lost it from their lists, the invitation died with it, and the slug is free.
    listed = await client.get(ORGS, headers=world.member.headers)
    assert listed.json()["total"] == 0
    accept = await client.post(
        f"{ORGS}/invitations/{world.invitation_token}/accept", headers=world.outsider.headers
    )
    assert_problem(accept, 404, "invitation_not_found")
    await api.create_org(world.member, slug=world.slug)


async def test_anonymous_and_bad_tokens_are_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic x"}):
        response = await client.get(ORGS, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_service_tokens_are_refused(client: httpx.AsyncClient, people: People) -> None:
    token = people.factory.mint(sub="svc:users", role="service")
    response = await client.get(ORGS, headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 403, "forbidden")


async def test_openapi_is_served_under_the_prefix(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ORGS}/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/orgs/invitations/{token}/accept" in paths
    assert "503" in paths["/api/v1/orgs/{slug}/members"]["get"]["responses"]
