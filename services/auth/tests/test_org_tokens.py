"""POST /api/v1/auth/org-token: auth asks orgs (its own service credentials, a timeout, the
caller's request id and trace context) and issues a short-lived org-scoped token."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx
from jose import jwt

from platform_common.permissions import permissions_for
from platform_common.revocation import EPOCH_KEY, epoch_started_ms
from platform_common.state import platform_state
from platform_testing import assert_problem, bearer, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from conftest import AuthApi, FakeOrgs

ORG_TOKEN = "/api/v1/auth/org-token"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_a_member_gets_a_token_with_its_org_role_and_permissions(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    org_id = fake_orgs.add(user.id, "acme", "admin")
    before = int(time.time() * 1000)
    response = await client.post(ORG_TOKEN, json={"org": "acme"}, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    admin_permissions = sorted(permissions_for("admin"))
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["org"] == {
        "id": org_id,
        "slug": "acme",
        "role": "admin",
        "permissions": admin_permissions,
    }
    claims = jwt.get_unverified_claims(body["access_token"])
    user_claims = jwt.get_unverified_claims(user.token)
    assert claims["sub"] == str(user.id)
    assert claims["sid"] == user_claims["sid"]
    assert (claims["org_id"], claims["org_slug"], claims["org_role"]) == (org_id, "acme", "admin")
    assert claims["permissions"] == admin_permissions
    assert before - 1000 <= claims["org_checked_at"] <= int(time.time() * 1000) + 1000
    assert claims["exp"] - claims["iat"] == 300
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "ES256"
    assert await active(client, body["access_token"])


async def active(client: httpx.AsyncClient, token: str) -> bool:
    """Whether auth's verification (as every service's) accepts the token (RFC 7662)."""
    response = await client.post(
        "/api/v1/auth/introspect",
        data={"token": token, "client_id": "orgs", "client_secret": "orgs-secret"},
    )
    assert response.status_code == 200, response.text
    answer: bool = response.json()["active"]
    return answer


async def test_an_org_token_reaches_no_further_than_its_org(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    """Not another org's token, a PAT, or the account's security: each would escape it."""
    user = await api.signed_in()
    fake_orgs.add(user.id, "acme", "owner")
    fake_orgs.add(user.id, "globex", "owner")
    token = bearer(await _org_token(client, user.headers))
    for method, path, body in (
        ("POST", ORG_TOKEN, {"org": "globex"}),
        ("POST", "/api/v1/auth/tokens", {"name": "x", "expires_in_days": 1}),
        ("GET", "/api/v1/auth/sessions", None),
        ("POST", "/api/v1/auth/logout-all", None),
    ):
        response = await client.request(method, path, json=body, headers=token)
        assert_problem(response, 403, "insufficient_scope")


async def test_the_org_is_named_by_slug_or_id(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    org_id = fake_orgs.add(user.id, "acme", "viewer")
    response = await client.post(ORG_TOKEN, json={"org": org_id}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["org"]["slug"] == "acme"
    assert response.json()["org"]["permissions"] == ["members:read", "org:read"]


async def test_orgs_is_asked_with_auths_service_credentials_and_the_callers_context(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    fake_orgs.add(user.id, "acme", "member")
    response = await client.post(
        ORG_TOKEN,
        json={"org": "acme"},
        headers={**user.headers, "X-Request-ID": "req-org-token", "traceparent": TRACEPARENT},
    )
    assert response.status_code == 200, response.text
    (call,) = fake_orgs.requests
    assert call.url.path == f"/internal/v1/orgs/memberships/{user.id}"
    assert call.url.params["org"] == "acme"
    scheme, _, token = call.headers["authorization"].partition(" ")
    service_claims = jwt.get_unverified_claims(token)
    assert scheme == "Bearer"
    assert service_claims["sub"] == "svc:auth"
    assert service_claims["scope"] == "orgs:memberships:read"
    assert call.headers["x-request-id"] == "req-org-token"
    assert call.headers["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]


async def test_a_non_member_gets_404_org_not_found(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user, other = await api.signed_in(), await api.signed_in()
    fake_orgs.add(other.id, "acme", "owner")
    for org in ("acme", "nowhere"):
        response = await client.post(ORG_TOKEN, json={"org": org}, headers=user.headers)
        assert_problem(response, 404, "org_not_found")


async def test_only_users_get_org_tokens(client: httpx.AsyncClient, fake_orgs: FakeOrgs) -> None:
    assert_problem(await client.post(ORG_TOKEN, json={"org": "acme"}), 401, "not_authenticated")
    service = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "orgs",
            "client_secret": "orgs-secret",
        },
    )
    token = service.json()["access_token"]
    response = await client.post(ORG_TOKEN, json={"org": "acme"}, headers=bearer(token))
    assert_problem(response, 403, "forbidden")
    assert fake_orgs.requests == []


async def test_orgs_failing_or_unreachable_is_503(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    fake_orgs.add(user.id, "acme", "owner")
    for mode in ("down", "error"):
        fake_orgs.mode = mode
        response = await client.post(ORG_TOKEN, json={"org": "acme"}, headers=user.headers)
        assert_problem(response, 503, "dependency_unavailable")


async def test_orgs_too_slow_is_504_within_the_timeout(
    started: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    api_for: Callable[[httpx.AsyncClient], AuthApi],
    fake_orgs: FakeOrgs,
) -> None:
    async with started(http_timeout_seconds=0.3) as client:
        user = await api_for(client).signed_in()
        fake_orgs.add(user.id, "acme", "owner")
        fake_orgs.mode, fake_orgs.delay = "slow", 3.0
        began = time.monotonic()
        response = await client.post(ORG_TOKEN, json={"org": "acme"}, headers=user.headers)
        assert_problem(response, 504, "dependency_timeout")
        assert time.monotonic() - began < 2.0


async def _org_token(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post(ORG_TOKEN, json={"org": "acme"}, headers=headers)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_an_org_token_ends_with_its_session(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    fake_orgs.add(user.id, "acme", "owner")
    token = await _org_token(client, user.headers)
    logout = await client.post("/api/v1/auth/logout", json={"refresh_token": user.refresh_token})
    assert logout.status_code == 204
    assert not await active(client, token)


async def test_an_org_token_fails_once_orgs_marks_the_membership_changed(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    user = await api.signed_in()
    org_id = fake_orgs.add(user.id, "acme", "owner")
    token = await _org_token(client, user.headers)
    assert await active(client, token)
    store = platform_state(client.app).revocations  # type: ignore[attr-defined]
    await store.revoke_org_tokens(org_id, [str(user.id)])
    assert not await active(client, token)
    # The user's own token is not org-scoped: untouched. A new org token (its membership
    # read after the mark, on Redis' millisecond clock) works.
    await asyncio.sleep(0.01)
    assert (await client.get("/api/v1/auth/sessions", headers=user.headers)).status_code == 200
    assert await active(client, await _org_token(client, user.headers))


async def test_org_tokens_from_before_redis_lost_its_memory_fail_after_the_rebuild(
    client: httpx.AsyncClient, api: AuthApi, fake_orgs: FakeOrgs
) -> None:
    """The revocation keeper's new epoch starts with Redis' time: org-scoped tokens checked
    before it (whose markers may be gone) are refused, while the user's own token is not."""
    user = await api.signed_in()
    fake_orgs.add(user.id, "acme", "owner")
    before = await _org_token(client, user.headers)
    redis = platform_state(client.app).redis  # type: ignore[attr-defined]
    await asyncio.sleep(0.005)
    await redis.delete(EPOCH_KEY)
    await wait_for(lambda: redis.exists(EPOCH_KEY), within=5)
    assert epoch_started_ms(await redis.get(EPOCH_KEY)) > 0
    await asyncio.sleep(1.1)  # past the revocation cache
    assert not await active(client, before)
    assert await active(client, user.token)
    await asyncio.sleep(0.005)
    assert await active(client, await _org_token(client, user.headers))
