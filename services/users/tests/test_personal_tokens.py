"""Personal access tokens at users: `/me` with a PAT, its scopes, and its deletion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from platform_testing import Caller, FakePatExchange, assert_problem, bearer, refused_within

if TYPE_CHECKING:
    from conftest import FakeAuth

ME = "/api/v1/users/me"


async def test_me_with_a_pat_and_its_deletion(
    client: httpx.AsyncClient, auth: FakeAuth, pats: FakePatExchange
) -> None:
    user: Caller = auth.user()
    token = pats.issue(user, ["profile:read", "org:read"])
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(user.id)

    pats.delete(token)
    assert await refused_within(lambda: client.get(ME, headers=bearer(token))) < 5.0


async def test_scopes_narrow_what_a_pat_may_do(
    client: httpx.AsyncClient, auth: FakeAuth, pats: FakePatExchange
) -> None:
    user: Caller = auth.user()
    reader = bearer(pats.issue(user, ["profile:read"]))
    writer = bearer(pats.issue(user, ["profile:write"]))
    assert (await client.get(ME, headers=reader)).status_code == 200
    assert_problem(await client.get(ME, headers=writer), 403, "insufficient_scope")
    assert_problem(
        await client.patch(ME, json={"name": "Nope"}, headers=reader), 403, "insufficient_scope"
    )
    renamed = await client.patch(ME, json={"name": "Via PAT"}, headers=writer)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Via PAT"
    lookup = await client.post("/api/v1/users/lookup", json={"ids": [str(user.id)]}, headers=writer)
    assert_problem(lookup, 403, "insufficient_scope")


async def test_the_openapi_names_the_scope_each_operation_takes(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/api/v1/users/openapi.json")).json()["paths"]
    for path, method, scope in (
        ("/api/v1/users/me", "get", "profile:read"),
        ("/api/v1/users/me", "patch", "profile:write"),
        ("/api/v1/users/lookup", "post", "profile:read"),
    ):
        rules = paths[path][method]["x-accepted-tokens"]
        assert f"a personal access token needs the scope `{scope}`" in rules, path
