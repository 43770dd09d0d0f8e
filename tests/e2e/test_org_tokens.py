"""Org-scoped tokens and personal access tokens across the three real services, through nginx:
auth asks orgs for the membership over HTTP, orgs and users verify the tokens on their own,
and revocations (a lowered role, a deleted PAT) reach every service within 5 seconds."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from platform_testing import assert_problem

pytestmark = pytest.mark.slow

REVOCATION_PROMISE = 5.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused_everywhere(api: httpx.Client, token: str, paths: list[str]) -> float:
    """Seconds until `token` gets 401 `invalid_token` at every path (polling all of them)."""
    started = time.monotonic()
    pending = list(paths)
    while pending:
        for path in list(pending):
            response = api.get(path, headers=bearer(token))
            if response.status_code == 401:
                assert_problem(response, 401, "invalid_token")
                pending.remove(path)
            else:
                assert response.status_code == 200, response.text
        assert time.monotonic() - started < REVOCATION_PROMISE, f"still accepted at {pending}"
        if pending:
            time.sleep(0.1)
    return time.monotonic() - started


def org_token(api: httpx.Client, who: Any, org: str) -> dict[str, Any]:
    response = api.post("/api/v1/auth/org-token", json={"org": org}, headers=who.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_org_tokens_through_the_ingress(api: httpx.Client, accounts: Any) -> None:
    alice, bob = accounts.create("alice"), accounts.create("bob")
    slug = f"e2e-{secrets.token_hex(4)}"
    created = api.post("/api/v1/orgs", json={"name": "E2E", "slug": slug}, headers=alice.auth)
    assert created.status_code == 201, created.text
    added = api.post(
        f"/api/v1/orgs/{slug}/members",
        json={"user_id": bob.id, "role": "admin"},
        headers=alice.auth,
    )
    assert added.status_code == 201, added.text

    # auth read Bob's membership from orgs: the token says admin, with admin's permissions.
    issued = org_token(api, bob, slug)
    assert issued["org"]["slug"] == slug and issued["org"]["role"] == "admin"
    assert "members:write" in issued["org"]["permissions"]
    token = issued["access_token"]
    renamed = api.patch(f"/api/v1/orgs/{slug}", json={"name": "Renamed"}, headers=bearer(token))
    assert renamed.status_code == 200, renamed.text
    assert api.get("/api/v1/users/me", headers=bearer(token)).status_code == 200

    # Another org's endpoints: 403, whatever Bob's rights there.
    other = f"e2e-{secrets.token_hex(4)}"
    assert (
        api.post("/api/v1/orgs", json={"name": "B", "slug": other}, headers=bob.auth).status_code
        == 201
    )
    assert_problem(api.get(f"/api/v1/orgs/{other}", headers=bearer(token)), 403, "org_mismatch")

    # Not a member: no token.
    assert_problem(
        api.post("/api/v1/auth/org-token", json={"org": other}, headers=alice.auth),
        404,
        "org_not_found",
    )

    # Alice lowers Bob to viewer: his admin token fails at orgs and users within 5 s; a new
    # token carries the new role.
    lowered = api.patch(
        f"/api/v1/orgs/{slug}/members/{bob.id}", json={"role": "viewer"}, headers=alice.auth
    )
    assert lowered.status_code == 200, lowered.text
    refused_everywhere(api, token, [f"/api/v1/orgs/{slug}", "/api/v1/users/me"])
    time.sleep(0.01)
    viewer = org_token(api, bob, slug)
    assert viewer["org"]["role"] == "viewer"
    assert_problem(
        api.patch(
            f"/api/v1/orgs/{slug}", json={"name": "X"}, headers=bearer(viewer["access_token"])
        ),
        403,
        "forbidden",
    )

    # Removed from the org: that token fails too.
    removed = api.delete(f"/api/v1/orgs/{slug}/members/{bob.id}", headers=alice.auth)
    assert removed.status_code == 204, removed.text
    refused_everywhere(api, viewer["access_token"], [f"/api/v1/orgs/{slug}"])


def test_a_personal_access_token_through_the_ingress(api: httpx.Client, accounts: Any) -> None:
    carol = accounts.create("carol")
    slug = f"e2e-{secrets.token_hex(4)}"
    assert (
        api.post("/api/v1/orgs", json={"name": "C", "slug": slug}, headers=carol.auth).status_code
        == 201
    )
    created = api.post(
        "/api/v1/auth/tokens",
        json={"name": "laptop", "expires_in_days": 30, "scopes": ["profile:read", "org:read"]},
        headers=carol.auth,
    )
    assert created.status_code == 201, created.text
    pat = created.json()
    assert pat["token"].startswith("ipt_")

    me = api.get("/api/v1/users/me", headers=bearer(pat["token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == carol.id
    # users asked orgs with the PAT, which orgs had auth vouch for in turn.
    assert [org["slug"] for org in me.json()["organizations"]] == [slug]
    assert api.get(f"/api/v1/orgs/{slug}", headers=bearer(pat["token"])).status_code == 200
    # Its scopes hold: no renaming, no profile change; never the account's own security.
    assert_problem(
        api.patch(f"/api/v1/orgs/{slug}", json={"name": "X"}, headers=bearer(pat["token"])),
        403,
        "forbidden",
    )
    assert_problem(
        api.patch("/api/v1/users/me", json={"name": "X"}, headers=bearer(pat["token"])),
        403,
        "insufficient_scope",
    )
    assert_problem(
        api.post(
            "/api/v1/auth/tokens",
            json={"name": "more", "expires_in_days": 1},
            headers=bearer(pat["token"]),
        ),
        403,
        "insufficient_scope",
    )

    listed = api.get("/api/v1/auth/tokens", headers=carol.auth).json()["items"]
    assert [item["id"] for item in listed] == [pat["id"]]
    assert listed[0]["last_used_at"] is not None

    deleted = api.delete(f"/api/v1/auth/tokens/{pat['id']}", headers=carol.auth)
    assert deleted.status_code == 204
    refused_everywhere(api, pat["token"], ["/api/v1/users/me", f"/api/v1/orgs/{slug}"])
