"""What a SaaS team's own service gets from libs/common for org-scoped tokens: the
`CurrentOrgMember` and `require_permission` dependencies, and revocation markers checked
like session revocation (one MGET, a second's local cache, fail closed without the epoch)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from redis.asyncio import Redis

from platform_common.app import create_service_app
from platform_common.permissions import PERMISSIONS, ROLE_PERMISSIONS, permissions_for
from platform_common.revocation import (
    EPOCH_KEY,
    OrgMarker,
    RevocationStateLost,
    RevocationStore,
    new_epoch,
)
from platform_common.security import CurrentOrgMember, CurrentPrincipal, require_permission
from platform_common.state import platform_state
from platform_testing import Backends, TokenFactory, assert_problem, bearer, flush_redis, running

from .conftest import AUDIENCE, ISSUER, DemoSettings

router = APIRouter(prefix="/api/v1/demo")


@router.get("/orgs/{org}/projects")
async def list_projects(member: CurrentOrgMember) -> dict[str, Any]:
    assert member.org is not None
    return {"org": member.org.slug, "role": member.org.role}


@router.get("/me")
async def me(principal: CurrentPrincipal) -> dict[str, str]:
    return {"sub": principal.subject}


@router.post("/orgs/{org}/projects", dependencies=[Depends(require_permission("members:write"))])
async def create_project() -> dict[str, bool]:
    return {"created": True}


def test_the_table_is_the_contracts() -> None:
    assert set(PERMISSIONS) == {
        "org:read",
        "org:update",
        "org:delete",
        "members:read",
        "members:write",
        "invitations:write",
        "webhooks:write",
        "audit:read",
    }
    assert permissions_for("owner") == frozenset(PERMISSIONS)
    assert permissions_for("admin") == frozenset(PERMISSIONS) - {"org:delete"}
    assert permissions_for("member") == permissions_for("viewer") == {"org:read", "members:read"}
    assert permissions_for("superuser") == frozenset()
    # Each role's permissions include those of every role below it.
    ranked = ("viewer", "member", "admin", "owner")
    for lower, higher in itertools.pairwise(ranked):
        assert ROLE_PERMISSIONS[lower] <= ROLE_PERMISSIONS[higher]


def test_an_unknown_permission_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        require_permission("members:wrte")


@pytest.fixture
async def service(
    demo_database_url: str, backends: Backends, tokens: TokenFactory
) -> AsyncIterator[httpx.AsyncClient]:
    await flush_redis(backends.redis_url)
    settings = DemoSettings(
        environment="test",
        database_url=demo_database_url,
        redis_url=backends.redis_url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_url="http://auth.test/api/v1/auth/jwks.json",
        revocation_cache_seconds=1.0,
    )
    jwks = httpx.MockTransport(lambda request: httpx.Response(200, json=tokens.jwks()))
    app = create_service_app(
        settings, title="demo", description="demo", routers=[router], transports={"jwks": jwks}
    )
    async with running(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    await flush_redis(backends.redis_url)


ORG_ID = str(uuid.uuid4())


def org_token(tokens: TokenFactory, role: str, user_id: str, checked_at_ms: int) -> str:
    return tokens.mint(
        sub=user_id,
        org_id=ORG_ID,
        org_slug="acme",
        org_role=role,
        permissions=sorted(permissions_for(role)),
        org_checked_at=checked_at_ms,
    )


async def now_ms(client: httpx.AsyncClient) -> int:
    return await platform_state(client.app).revocations.server_time_ms()  # type: ignore[attr-defined]


async def test_an_org_member_reaches_its_org_by_slug_or_id(
    service: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    token = org_token(tokens, "viewer", str(uuid.uuid4()), await now_ms(service))
    for org in ("acme", ORG_ID):
        response = await service.get(f"/api/v1/demo/orgs/{org}/projects", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == {"org": "acme", "role": "viewer"}


async def test_other_orgs_and_plain_tokens_are_403(
    service: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    token = org_token(tokens, "owner", str(uuid.uuid4()), await now_ms(service))
    response = await service.get("/api/v1/demo/orgs/globex/projects", headers=bearer(token))
    assert_problem(response, 403, "org_mismatch")
    plain = tokens.mint()
    response = await service.get("/api/v1/demo/orgs/acme/projects", headers=bearer(plain))
    assert_problem(response, 403, "org_token_required")
    response = await service.get("/api/v1/demo/orgs/acme/projects")
    assert_problem(response, 401, "not_authenticated")


@pytest.mark.parametrize(
    ("role", "status"), [("owner", 200), ("admin", 200), ("member", 403), ("viewer", 403)]
)
async def test_require_permission_follows_the_table(
    service: httpx.AsyncClient, tokens: TokenFactory, role: str, status: int
) -> None:
    token = org_token(tokens, role, str(uuid.uuid4()), await now_ms(service))
    response = await service.post("/api/v1/demo/orgs/acme/projects", headers=bearer(token))
    assert response.status_code == status, response.text
    if status == 403:
        assert_problem(response, 403, "forbidden")


async def test_a_marker_revokes_the_members_tokens_within_the_cache_second(
    service: httpx.AsyncClient, tokens: TokenFactory, backends: Backends
) -> None:
    """orgs marks (its own process, another Redis client); this service sees it within the
    revocation cache's second, without being told."""
    user, other = str(uuid.uuid4()), str(uuid.uuid4())
    checked = await now_ms(service)
    token, others = (
        org_token(tokens, "admin", user, checked),
        org_token(tokens, "admin", other, checked),
    )
    path = "/api/v1/demo/orgs/acme/projects"
    assert (await service.get(path, headers=bearer(token))).status_code == 200  # now cached

    redis = Redis.from_url(backends.redis_url)
    try:
        await asyncio.sleep(0.005)
        await RevocationStore(redis).revoke_org_tokens(ORG_ID, [user])
        marked = time.monotonic()
        while (await service.get(path, headers=bearer(token))).status_code == 200:
            assert time.monotonic() - marked < 1.5, "the marker was not seen"
            await asyncio.sleep(0.05)
        assert_problem(await service.get(path, headers=bearer(token)), 401, "invalid_token")
        assert (await service.get(path, headers=bearer(others))).status_code == 200
        # A membership read after the mark makes a token that works.
        await asyncio.sleep(0.005)
        fresh = org_token(tokens, "viewer", user, await RevocationStore(redis).server_time_ms())
        assert (await service.get(path, headers=bearer(fresh))).status_code == 200
    finally:
        await redis.aclose()


async def test_org_tokens_fail_closed_while_the_revocation_state_is_lost(
    backends: Backends,
) -> None:
    redis = Redis.from_url(backends.redis_url)
    store = RevocationStore(redis, cache_seconds=0)
    try:
        await flush_redis(backends.redis_url)
        marker = OrgMarker(ORG_ID, str(uuid.uuid4()), await store.server_time_ms())
        assert not await store.is_revoked(str(uuid.uuid4()), marker)
        await redis.delete(EPOCH_KEY)
        with pytest.raises(RevocationStateLost):
            await store.is_revoked(str(uuid.uuid4()), marker)
    finally:
        await redis.set(EPOCH_KEY, "test")
        await redis.aclose()


async def test_the_store_compares_with_the_time_the_membership_was_read(
    backends: Backends,
) -> None:
    redis = Redis.from_url(backends.redis_url)
    store = RevocationStore(redis, cache_seconds=0)
    try:
        await flush_redis(backends.redis_url)
        org, user, sid = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        before = await store.server_time_ms()
        assert not await store.is_revoked(sid, OrgMarker(org, user, before))
        await asyncio.sleep(0.005)
        await store.revoke_org_tokens(org, [user])
        assert await store.is_revoked(sid, OrgMarker(org, user, before))
        assert not await store.is_revoked(sid)  # the session itself lives on
        assert not await store.is_revoked(sid, OrgMarker(str(uuid.uuid4()), user, before))
        await asyncio.sleep(0.005)
        after = await store.server_time_ms()
        assert not await store.is_revoked(sid, OrgMarker(org, user, after))
        ttl = await redis.ttl(f"platform:revoked:org:{org}:{user}")
        assert 3600 < ttl <= 3660
    finally:
        await redis.aclose()


async def test_org_tokens_checked_before_redis_lost_its_markers_are_refused(
    service: httpx.AsyncClient, tokens: TokenFactory, backends: Backends
) -> None:
    """Redis came back empty and auth rebuilt it (a new epoch): markers written before are
    gone, so every org-scoped token checked before the rebuild is refused; plain tokens and
    org tokens checked since are not."""
    user = str(uuid.uuid4())
    before = org_token(tokens, "owner", user, await now_ms(service))
    plain = tokens.mint(sub=user)
    path = "/api/v1/demo/orgs/acme/projects"
    assert (await service.get(path, headers=bearer(before))).status_code == 200
    redis = Redis.from_url(backends.redis_url)
    store = RevocationStore(redis)
    try:
        await asyncio.sleep(0.005)
        await redis.set(EPOCH_KEY, new_epoch(await store.server_time_ms()))
        await asyncio.sleep(1.1)  # past the verifier's cache
        assert_problem(await service.get(path, headers=bearer(before)), 401, "invalid_token")
        assert (await service.get("/api/v1/demo/me", headers=bearer(plain))).status_code == 200
        await asyncio.sleep(0.005)
        after = org_token(tokens, "owner", user, await store.server_time_ms())
        assert (await service.get(path, headers=bearer(after))).status_code == 200
    finally:
        await redis.set(EPOCH_KEY, "test")
        await redis.aclose()
