"""Personal access tokens at orgs: accepted as bearers, vouched for by auth at most once per
few seconds, narrowed to their scopes, and refused within 5 s of their deletion."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from platform_common.permissions import PAT_SCOPES
from platform_testing import FakePatExchange, assert_problem, bearer, refused_within

if TYPE_CHECKING:
    from conftest import OrgWorld

ORGS = "/api/v1/orgs"


async def test_a_pat_with_every_scope_acts_as_its_owner(
    client: httpx.AsyncClient, world: OrgWorld, pats: FakePatExchange
) -> None:
    pat = bearer(pats.issue(world.admin, list(PAT_SCOPES)))
    assert (await client.get(f"{ORGS}/{world.slug}/members", headers=pat)).status_code == 200
    renamed = await client.patch(f"{ORGS}/{world.slug}", json={"name": "Via PAT"}, headers=pat)
    assert renamed.status_code == 200, renamed.text
    # ...but never beyond the owner's role: an admin cannot delete the org.
    assert_problem(await client.delete(f"{ORGS}/{world.slug}", headers=pat), 403, "forbidden")


async def test_auth_is_asked_once_per_pat_per_few_seconds(
    client: httpx.AsyncClient, world: OrgWorld, pats: FakePatExchange
) -> None:
    pat = bearer(pats.issue(world.viewer, list(PAT_SCOPES)))
    for _ in range(5):
        assert (await client.get(f"{ORGS}/{world.slug}", headers=pat)).status_code == 200
    assert pats.exchanges == 1


@pytest.mark.parametrize(
    ("scopes", "method", "path", "status", "code"),
    [
        (["org:read"], "PATCH", "/{slug}", 403, "forbidden"),
        (["org:read"], "GET", "/{slug}/members", 403, "forbidden"),
        (["org:read", "members:read"], "GET", "/{slug}/members", 200, None),
        (["members:read"], "GET", "/{slug}", 403, "forbidden"),
        (["org:read", "org:update"], "PATCH", "/{slug}", 200, None),
        (["profile:read"], "GET", "", 403, "insufficient_scope"),
        (["org:read"], "GET", "", 200, None),
        (["org:read"], "POST", "", 403, "insufficient_scope"),
        (["orgs:create"], "POST", "", 201, None),
        (["org:read", "members:read"], "POST", "/{slug}/invitations", 403, "forbidden"),
    ],
)
async def test_a_pat_is_narrowed_to_its_scopes(
    client: httpx.AsyncClient,
    world: OrgWorld,
    pats: FakePatExchange,
    scopes: list[str],
    method: str,
    path: str,
    status: int,
    code: str | None,
) -> None:
    pat = bearer(pats.issue(world.owner, scopes))
    bodies = {
        ("PATCH", "/{slug}"): {"name": "Renamed"},
        ("POST", ""): {"name": "New", "slug": f"pat-{time.monotonic_ns()}"},
        ("POST", "/{slug}/invitations"): {"email": "x@example.com", "role": "viewer"},
    }
    response = await client.request(
        method,
        ORGS + path.format(slug=world.slug),
        json=bodies.get((method, path)),
        headers=pat,
    )
    assert response.status_code == status, response.text
    if code is not None:
        assert_problem(response, status, code)


async def test_accepting_an_invitation_takes_orgs_join(
    client: httpx.AsyncClient, world: OrgWorld, pats: FakePatExchange
) -> None:
    path = f"{ORGS}/invitations/{world.invitation_token}/accept"
    without = bearer(pats.issue(world.outsider, ["org:read"]))
    assert_problem(await client.post(path, headers=without), 403, "insufficient_scope")
    with_join = bearer(pats.issue(world.outsider, ["orgs:join"]))
    assert (await client.post(path, headers=with_join)).status_code == 201


async def test_an_unknown_pat_is_401(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.get(f"{ORGS}/{world.slug}", headers=bearer("ipt_" + "x" * 43))
    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_deleted_pat_fails_within_five_seconds(
    client: httpx.AsyncClient, world: OrgWorld, pats: FakePatExchange
) -> None:
    token = pats.issue(world.member, list(PAT_SCOPES))
    path = f"{ORGS}/{world.slug}"
    assert (await client.get(path, headers=bearer(token))).status_code == 200
    pats.delete(token)
    assert await refused_within(lambda: client.get(path, headers=bearer(token))) < 5.0


async def test_auth_unreachable_is_503_not_401(
    client: httpx.AsyncClient, world: OrgWorld, pats: FakePatExchange
) -> None:
    """Whether a PAT is valid cannot be known without auth: 503, the client retries."""
    pats.down = True
    response = await client.get(f"{ORGS}/{world.slug}", headers=bearer("ipt_" + "y" * 43))
    assert_problem(response, 503, "dependency_unavailable")


async def test_a_burst_with_a_new_pat_asks_auth_once(
    client: httpx.AsyncClient, world: OrgWorld, pats: FakePatExchange
) -> None:
    pat = bearer(pats.issue(world.viewer, list(PAT_SCOPES)))
    pats.delay = 0.2
    answers = await asyncio.gather(
        *(client.get(f"{ORGS}/{world.slug}", headers=pat) for _ in range(8))
    )
    assert [a.status_code for a in answers] == [200] * 8
    assert pats.exchanges == 1
