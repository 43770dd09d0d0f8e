"""Input PostgreSQL cannot store or compare is a 4xx, never a 500 (regressions found by
tests/fuzz)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import OrgsApi, People


async def test_an_org_name_with_nul_is_422(
    client: httpx.AsyncClient, api: OrgsApi, people: People
) -> None:
    owner = people.user("owner")
    created = await client.post(
        "/api/v1/orgs", headers=owner.headers, json={"name": "a\x00", "slug": "nul-org"}
    )
    assert_problem(created, 422, "validation_error")

    org = await api.create_org(owner)
    renamed = await client.patch(
        f"/api/v1/orgs/{org['slug']}", headers=owner.headers, json={"name": "a\x00"}
    )
    assert_problem(renamed, 422, "validation_error")


async def test_a_slug_no_org_can_have_is_404(client: httpx.AsyncClient, people: People) -> None:
    for caller in (people.user(), people.admin()):
        for slug in ("a%00b", "Not-A-Slug", "x" * 64):
            response = await client.get(f"/api/v1/orgs/{slug}", headers=caller.headers)
            assert_problem(response, 404, "not_found")
