"""The shared caches across services (platform_common.cache), through the ingress: users
serves `/me`'s organizations and orgs the member cards from Redis, and every change that
affects them shows on the next read, well within the second the performance issue allows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

VISIBLE_WITHIN_SECONDS = 1.0


def within_a_second(read: Callable[[], Any], expected: Any) -> None:
    started = time.monotonic()
    while (seen := read()) != expected:
        assert time.monotonic() - started < VISIBLE_WITHIN_SECONDS, f"still {seen!r}"
        time.sleep(0.02)


def org_names(api: httpx.Client, who: Any) -> list[tuple[str, str, str]]:
    me = api.get("/api/v1/users/me", headers=who.auth)
    assert me.status_code == 200, me.text
    return [(o["slug"], o["name"], o["role"]) for o in me.json()["organizations"]]


def member_names(api: httpx.Client, who: Any, slug: str) -> dict[str, str]:
    page = api.get(f"/api/v1/orgs/{slug}/members", headers=who.auth)
    assert page.status_code == 200, page.text
    return {item["user_id"]: item["name"] for item in page.json()["items"]}


def test_org_lists_follow_every_change(api: httpx.Client, accounts: Any) -> None:
    owner, bob = accounts.create("cache-owner"), accounts.create("cache-bob")
    assert org_names(api, owner) == [] and org_names(api, bob) == []  # both cached empty

    slug = f"cache-{owner.id[:8]}"
    assert (
        api.post(
            "/api/v1/orgs", json={"name": "Before", "slug": slug}, headers=owner.auth
        ).status_code
        == 201
    )
    within_a_second(lambda: org_names(api, owner), [(slug, "Before", "owner")])

    assert (
        api.patch(f"/api/v1/orgs/{slug}", json={"name": "After"}, headers=owner.auth).status_code
        == 200
    )
    within_a_second(lambda: org_names(api, owner), [(slug, "After", "owner")])

    added = api.post(
        f"/api/v1/orgs/{slug}/members",
        json={"user_id": bob.id, "role": "viewer"},
        headers=owner.auth,
    )
    assert added.status_code == 201, added.text
    within_a_second(lambda: org_names(api, bob), [(slug, "After", "viewer")])

    assert (
        api.patch(
            f"/api/v1/orgs/{slug}/members/{bob.id}", json={"role": "admin"}, headers=owner.auth
        ).status_code
        == 200
    )
    within_a_second(lambda: org_names(api, bob), [(slug, "After", "admin")])

    assert (
        api.delete(f"/api/v1/orgs/{slug}/members/{bob.id}", headers=owner.auth).status_code == 204
    )
    within_a_second(lambda: org_names(api, bob), [])

    assert api.delete(f"/api/v1/orgs/{slug}", headers=owner.auth).status_code == 204
    within_a_second(lambda: org_names(api, owner), [])


def test_member_cards_follow_a_rename(api: httpx.Client, accounts: Any) -> None:
    owner, carol = accounts.create("cards-owner"), accounts.create("cards-carol")
    slug = f"cards-{owner.id[:8]}"
    assert (
        api.post(
            "/api/v1/orgs", json={"name": "Cards", "slug": slug}, headers=owner.auth
        ).status_code
        == 201
    )
    assert (
        api.post(
            f"/api/v1/orgs/{slug}/members",
            json={"user_id": carol.id, "role": "member"},
            headers=owner.auth,
        ).status_code
        == 201
    )
    assert member_names(api, owner, slug)[carol.id] == carol.name  # cached now

    renamed = api.patch("/api/v1/users/me", json={"name": "Carol Renamed"}, headers=carol.auth)
    assert renamed.status_code == 200, renamed.text
    within_a_second(lambda: member_names(api, owner, slug)[carol.id], "Carol Renamed")
