"""A user's journey across auth, users and orgs, through the nginx ingress.

Two people register; one creates an org and adds the other; both see it from users' `/me`
(which asks orgs with their token) and orgs' member list (which asks users for names).
Then logout-all: the old access tokens must stop working at users and orgs within the
5 seconds the API contract promises, although both verify tokens locally.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import httpx
import pytest

from platform_testing import assert_problem

pytestmark = pytest.mark.slow

REVOCATION_DEADLINE_SECONDS = 5.0


def test_journey(api: httpx.Client, accounts: Any) -> None:
    alice = accounts.create("alice")
    bob = accounts.create("bob")

    # A fresh account has a profile and no organizations; the request id goes through nginx.
    request_id = f"e2e-journey-{secrets.token_hex(6)}"
    me = api.get("/api/v1/users/me", headers={**alice.auth, "X-Request-ID": request_id})
    assert me.status_code == 200, me.text
    assert me.headers["x-request-id"] == request_id
    assert me.json()["id"] == alice.id
    assert me.json()["email"] == alice.email
    assert me.json()["organizations"] == []
    bob_me = api.get("/api/v1/users/me", headers=bob.auth)
    assert bob_me.status_code == 200, bob_me.text
    assert bob_me.json()["organizations"] == []

    # alice creates an org (POST on the prefix itself, no trailing slash).
    slug = f"acme-{secrets.token_hex(4)}"
    created = api.post("/api/v1/orgs", json={"name": "Acme", "slug": slug}, headers=alice.auth)
    assert created.status_code == 201, created.text
    org = created.json()
    assert org["slug"] == slug
    assert org["role"] == "owner"

    # Errors are problem+json with the request id the caller sent.
    not_member = api.get(
        f"/api/v1/orgs/{slug}", headers={**bob.auth, "X-Request-ID": f"{request_id}-404"}
    )
    body = assert_problem(not_member, 404, "not_found")
    assert body["request_id"] == f"{request_id}-404"
    assert_problem(
        api.post("/api/v1/orgs", json={"name": "Other", "slug": slug}, headers=bob.auth),
        409,
        "slug_taken",
    )
    # orgs asks users whether the id exists.
    assert_problem(
        api.post(
            f"/api/v1/orgs/{slug}/members",
            json={"user_id": str(uuid.uuid4()), "role": "member"},
            headers=alice.auth,
        ),
        404,
        "user_not_found",
    )

    added = api.post(
        f"/api/v1/orgs/{slug}/members",
        json={"user_id": bob.id, "role": "member"},
        headers=alice.auth,
    )
    assert added.status_code == 201, added.text
    assert added.json()["user_id"] == bob.id
    assert added.json()["role"] == "member"
    assert_problem(
        api.post(
            f"/api/v1/orgs/{slug}/members",
            json={"user_id": bob.id, "role": "member"},
            headers=alice.auth,
        ),
        409,
        "already_member",
    )

    # Names and emails come from users.
    members = api.get(f"/api/v1/orgs/{slug}/members", headers=bob.auth)
    assert members.status_code == 200, members.text
    assert members.json()["total"] == 2
    by_id = {m["user_id"]: m for m in members.json()["items"]}
    assert by_id[alice.id]["name"] == alice.name
    assert by_id[alice.id]["email"] == alice.email
    assert by_id[alice.id]["role"] == "owner"
    assert by_id[bob.id]["name"] == bob.name
    assert by_id[bob.id]["email"] == bob.email
    assert by_id[bob.id]["role"] == "member"

    detail = api.get(f"/api/v1/orgs/{slug}", headers=bob.auth)
    assert detail.status_code == 200, detail.text
    assert detail.json()["member_count"] == 2

    # users' /me shows the org, as orgs told it with each caller's token.
    alice_orgs = api.get("/api/v1/users/me", headers=alice.auth).json()["organizations"]
    assert alice_orgs == [{"id": org["id"], "slug": slug, "name": "Acme", "role": "owner"}]
    bob_orgs = api.get("/api/v1/users/me", headers=bob.auth).json()["organizations"]
    assert [(o["slug"], o["role"]) for o in bob_orgs] == [(slug, "member")]

    # Refresh gives a working pair.
    first_access = alice.access_token
    refreshed = api.post("/api/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    second_access = refreshed.json()["access_token"]
    assert second_access != first_access
    assert refreshed.json()["refresh_token"] != alice.refresh_token
    assert (
        api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {second_access}"})
    ).status_code == 200

    # logout-all: every access token of alice fails at users and orgs within 5 s.
    out = api.post("/api/v1/auth/logout-all", headers={"Authorization": f"Bearer {second_access}"})
    assert out.status_code == 204, out.text
    ended_at = time.monotonic()
    probes = [
        (path, token)
        for path in ("/api/v1/users/me", "/api/v1/orgs")
        for token in (first_access, second_access)
    ]
    pending = set(probes)
    last: dict[tuple[str, str], httpx.Response] = {}
    while pending and time.monotonic() - ended_at < REVOCATION_DEADLINE_SECONDS + 1:
        for path, token in list(pending):
            response = api.get(path, headers={"Authorization": f"Bearer {token}"})
            last[(path, token)] = response
            if response.status_code == 401:
                pending.discard((path, token))
        if pending:
            time.sleep(0.1)
    elapsed = time.monotonic() - ended_at
    assert not pending, {p: last[(p, t)].status_code for p, t in pending}
    assert elapsed < REVOCATION_DEADLINE_SECONDS, f"revocation took {elapsed:.2f} s"
    for (path, _), response in last.items():
        assert_problem(response, 401, response.json()["code"])
        assert response.headers["www-authenticate"].startswith("Bearer"), path

    # logout-all is alice's alone: bob's token still works everywhere.
    assert api.get("/api/v1/users/me", headers=bob.auth).status_code == 200
    assert api.get("/api/v1/orgs", headers=bob.auth).status_code == 200
    # And alice's old refresh token is dead too.
    assert (
        api.post("/api/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]})
    ).status_code == 401
