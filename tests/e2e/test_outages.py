"""The platform with one service stopped: what still works, what degrades, what recovers.

- users down: registration still makes a whole account at auth (login works), orgs' member
  list is a 503 `dependency_unavailable`, and auth's outbox delivers the profile once users
  is back, without the user having to call `/me`.
- disabling a user reaches users (`is_active=false`) and ends its tokens everywhere.
- orgs down: users' `/me` degrades to `organizations: null`.
Nothing is ever a 500 and nothing hangs.

Restarting a service costs ~10 s on a busy two-core machine, so each outage is used for
everything it can show, and the orgs outage comes last in the file (and this file last in
the folder): nothing after it needs orgs back. Any test that follows would get it restarted
by the `api` fixture.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from platform_testing import assert_problem

pytestmark = pytest.mark.slow

# The relay retries with exponential backoff (2 s, 4 s, 8 s, ...) while users restarts, so
# the next attempt after users is back can be up to one backoff interval later.
OUTBOX_DELIVERY_DEADLINE_SECONDS = 20.0
EVENT_DEADLINE_SECONDS = 5.0
REVOCATION_DEADLINE_SECONDS = 5.0
DEGRADED_DEADLINE_SECONDS = 2.5


def poll(check: Callable[[], Any], within: float, interval: float = 0.1) -> tuple[Any, float]:
    """Call `check` until it returns something truthy; that and the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        elapsed = time.monotonic() - started
        if result:
            return result, elapsed
        if elapsed > within:
            raise AssertionError(f"not within {within:g} s")
        time.sleep(interval)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def admin_search(api: httpx.Client, admin: Any, email: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/users", params={"q": email, **params}, headers=admin.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return [item for item in items if item["email"] == email]


def test_users_down(api: httpx.Client, accounts: Any, platform: Any) -> None:
    admin = accounts.admin()
    frank = accounts.create("frank")
    slug = f"frank-{frank.id[:8]}"
    created = api.post("/api/v1/orgs", json={"name": "Frank's", "slug": slug}, headers=frank.auth)
    assert created.status_code == 201, created.text

    platform.stop("users")

    # orgs cannot name the members without users: a quick 503 of its own, not a 500.
    members, took = timed(lambda: api.get(f"/api/v1/orgs/{slug}/members", headers=frank.auth))
    body = assert_problem(members, 503, "dependency_unavailable")
    assert "users" in body["detail"]
    assert took < DEGRADED_DEADLINE_SECONDS, f"members took {took:.2f} s with users down"
    # What orgs answers alone still works.
    assert api.get(f"/api/v1/orgs/{slug}", headers=frank.auth).status_code == 200

    carol = accounts.register("carol")
    # Not half-made: auth has the whole account, the users outage notwithstanding.
    accounts.login(carol)
    assert api.get("/api/v1/auth/sessions", headers=carol.auth).status_code == 200
    # users is really down behind the ingress (nginx's own 502, as problem+json).
    assert_problem(api.get("/api/v1/users/me", headers=carol.auth), 502, "dependency_unavailable")

    platform.start("users")
    # carol never calls /me before this: only auth's outbox can have made the profile.
    found, took = poll(
        lambda: admin_search(api, admin, carol.email), within=OUTBOX_DELIVERY_DEADLINE_SECONDS
    )
    assert found[0]["id"] == carol.id
    assert found[0]["name"] == carol.name
    assert found[0]["is_active"] is True
    print(f"outbox delivered {took:.2f} s after users was ready again")

    me = api.get("/api/v1/users/me", headers=carol.auth)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == carol.id
    assert me.json()["organizations"] == []
    assert api.get(f"/api/v1/orgs/{slug}/members", headers=frank.auth).status_code == 200


def test_disabling_a_user_reaches_users_and_ends_its_tokens_everywhere(
    api: httpx.Client, accounts: Any
) -> None:
    admin = accounts.admin()
    dave = accounts.create("dave")
    assert api.get("/api/v1/users/me", headers=dave.auth).status_code == 200

    disabled = api.post(f"/api/v1/auth/users/{dave.id}/disable", headers=admin.auth)
    assert disabled.status_code == 204, disabled.text

    def fails_everywhere() -> bool:
        return all(
            api.get(path, headers=dave.auth).status_code == 401
            for path in ("/api/v1/auth/sessions", "/api/v1/users/me", "/api/v1/orgs")
        )

    _, took = poll(fails_everywhere, within=REVOCATION_DEADLINE_SECONDS)
    assert took < REVOCATION_DEADLINE_SECONDS
    assert_problem(api.get("/api/v1/orgs", headers=dave.auth), 401, "invalid_token")

    found, _ = poll(
        lambda: admin_search(api, admin, dave.email, is_active="false"),
        within=EVENT_DEADLINE_SECONDS,
    )
    assert found[0]["id"] == dave.id
    assert found[0]["is_active"] is False
    assert admin_search(api, admin, dave.email, is_active="true") == []
    assert_problem(
        api.post("/api/v1/auth/login", json={"email": dave.email, "password": dave.password}),
        403,
        "account_disabled",
    )


def test_orgs_down_degrades_users_me(api: httpx.Client, accounts: Any, platform: Any) -> None:
    erin = accounts.create("erin")
    platform.stop("orgs")

    me, took = timed(lambda: api.get("/api/v1/users/me", headers=erin.auth))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == erin.id
    assert me.json()["organizations"] is None
    assert me.headers["warning"] == '199 - "organizations unavailable"'
    assert took < DEGRADED_DEADLINE_SECONDS, f"/me took {took:.2f} s with orgs down"
    # orgs' own prefix is nginx's 502 now, as problem+json.
    assert_problem(api.get("/api/v1/orgs", headers=erin.auth), 502, "dependency_unavailable")
