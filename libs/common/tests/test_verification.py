"""Token verification as users and orgs do it: JWKS over HTTP, rotation, revocation."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from platform_common.errors import DependencyUnavailable
from platform_common.revocation import RevocationStore
from platform_common.verification import InvalidToken, JWKSKeySource, TokenVerifier
from platform_testing import Backends, TokenFactory, assert_problem, flush_redis

from .conftest import AUDIENCE, ISSUER


class JWKSServer:
    """auth's JWKS endpoint, whose keys a test can rotate and which counts its fetches."""

    def __init__(self, *factories: TokenFactory) -> None:
        self.keys: list[dict[str, Any]] = [f.public_jwk for f in factories]
        self.fetches = 0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.down:
            raise httpx.ConnectError("auth is down", request=request)
        return httpx.Response(200, json={"keys": self.keys})


def verifier_for(
    server: JWKSServer, *, min_refresh: float = 1.0, revocations: Any = None
) -> TokenVerifier:
    source = JWKSKeySource(
        "http://auth.test/jwks.json",
        httpx.AsyncClient(transport=httpx.MockTransport(server.handler)),
        cache_seconds=300,
        min_refresh_interval=min_refresh,
    )
    return TokenVerifier(
        source, issuer=ISSUER, audience=AUDIENCE, algorithms=["ES256"], revocations=revocations
    )


async def test_a_new_key_is_accepted_as_soon_as_it_is_published() -> None:
    old = TokenFactory(ISSUER, AUDIENCE)
    server = JWKSServer(old)
    verifier = verifier_for(server, min_refresh=0)
    assert (await verifier.verify(old.mint())).role == "user"

    new = TokenFactory(ISSUER, AUDIENCE)
    with pytest.raises(InvalidToken):  # not published yet
        await verifier.verify(new.mint())
    server.keys.append(new.public_jwk)  # auth rotates: new key published beside the old
    assert (await verifier.verify(new.mint(role="admin"))).role == "admin"
    assert (await verifier.verify(old.mint())).role == "user"  # the old one still verifies


async def test_unknown_kids_cannot_flood_auth() -> None:
    genuine = TokenFactory(ISSUER, AUDIENCE)
    server = JWKSServer(genuine)
    verifier = verifier_for(server, min_refresh=60)
    await verifier.verify(genuine.mint())
    for _ in range(50):
        with pytest.raises(InvalidToken):
            await verifier.verify(TokenFactory(ISSUER, AUDIENCE).mint())
    assert server.fetches == 1


async def test_jwks_outage() -> None:
    key = TokenFactory(ISSUER, AUDIENCE)
    server = JWKSServer(key)
    server.down = True
    cold = verifier_for(server, min_refresh=0)
    with pytest.raises(DependencyUnavailable):  # no keys at all: 503, not 401
        await cold.verify(key.mint())

    server.down = False
    warm = verifier_for(server, min_refresh=0)
    await warm.verify(key.mint())
    server.down = True
    # Known keys keep working while auth is away.
    assert (await warm.verify(key.mint())).subject


async def test_algorithm_and_claim_checks() -> None:
    key = TokenFactory(ISSUER, AUDIENCE)
    verifier = verifier_for(JWKSServer(key))
    service = await verifier.verify(key.mint(sub="svc:orgs", scope="users:read"))
    assert service.is_service
    assert service.scopes == frozenset({"users:read"})
    for bad in (
        key.mint(iss="http://evil"),
        key.mint(aud="other"),
        key.mint(role="superuser"),
        key.mint(exp=int(time.time()) - 120),
    ):
        with pytest.raises(InvalidToken):
            await verifier.verify(bad)


async def test_revocation_reaches_another_service_within_the_cache_time(backends) -> None:  # type: ignore[no-untyped-def]
    key = TokenFactory(ISSUER, AUDIENCE)
    await flush_redis(backends.redis_url)
    redis = Redis.from_url(backends.redis_url, decode_responses=True)
    auth_side = RevocationStore(redis, cache_seconds=1.0)
    users_side = RevocationStore(redis, cache_seconds=1.0)
    verifier = verifier_for(JWKSServer(key), revocations=users_side)
    sid = str(uuid.uuid4())
    token = key.mint(sid=sid)
    await verifier.verify(token)  # cached as "not revoked" for up to a second

    await auth_side.revoke_sessions([sid], ttl_seconds=60)
    started = time.monotonic()
    while True:
        try:
            await verifier.verify(token)
        except InvalidToken:
            break
        assert time.monotonic() - started < 5, "revocation not seen within 5 s"
        await asyncio.sleep(0.05)
    # The cache holds an answer for 1 s: seen within about that, far inside the 5 s promised.
    assert time.monotonic() - started <= 2.0
    await redis.aclose()


async def test_redis_down_is_503_not_401() -> None:
    key = TokenFactory(ISSUER, AUDIENCE)
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    verifier = verifier_for(JWKSServer(key), revocations=RevocationStore(dead))
    with pytest.raises(DependencyUnavailable):
        await verifier.verify(key.mint())


async def test_http_layer(demo: httpx.AsyncClient, tokens: TokenFactory) -> None:
    ok = await demo.get("/api/v1/demo/whoami", headers={"Authorization": f"Bearer {tokens.mint()}"})
    assert ok.status_code == 200
    missing = await demo.get("/api/v1/demo/whoami")
    assert_problem(missing, 401, "not_authenticated")
    assert missing.headers["www-authenticate"] == "Bearer"
    user = await demo.get(
        "/api/v1/demo/admin-only", headers={"Authorization": f"Bearer {tokens.mint()}"}
    )
    assert_problem(user, 403, "forbidden")
    admin = await demo.get(
        "/api/v1/demo/admin-only", headers={"Authorization": f"Bearer {tokens.mint(role='admin')}"}
    )
    assert admin.status_code == 200
    service = await demo.get(
        "/api/v1/demo/admin-only",
        headers={"Authorization": f"Bearer {tokens.mint(sub='svc:x', role='admin')}"},
    )
    assert_problem(service, 403, "forbidden")


async def test_jwks_outage_over_http_is_503(make_app, tokens: TokenFactory) -> None:  # type: ignore[no-untyped-def]
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    app = make_app(down)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://demo"
        ) as client,
    ):
        r = await client.get(
            "/api/v1/demo/whoami", headers={"Authorization": f"Bearer {tokens.mint()}"}
        )
        assert_problem(r, 503, "dependency_unavailable")


async def test_a_token_issued_in_the_future_is_refused_beyond_the_leeway() -> None:
    factory = TokenFactory(ISSUER, AUDIENCE)
    verifier = verifier_for(JWKSServer(factory))
    now = int(time.time())
    assert await verifier.verify(factory.mint(iat=now + 3))  # within the 5 s leeway
    with pytest.raises(InvalidToken, match="issued in the future"):
        await verifier.verify(factory.mint(iat=now + 60))


@pytest.mark.parametrize("claim", ["exp", "iat"])
async def test_a_numeric_string_date_is_refused(claim: str) -> None:
    factory = TokenFactory(ISSUER, AUDIENCE)
    verifier = verifier_for(JWKSServer(factory))
    value = int(time.time()) + (600 if claim == "exp" else 0)
    with pytest.raises(InvalidToken, match="must be numbers"):
        await verifier.verify(factory.mint(**{claim: str(value)}))


async def test_a_verified_token_is_not_verified_again_but_revocation_still_counts(
    backends: Backends,
) -> None:
    factory = TokenFactory(ISSUER, AUDIENCE)
    server = JWKSServer(factory)
    await flush_redis(backends.redis_url)
    redis = Redis.from_url(backends.redis_url, decode_responses=True)
    store = RevocationStore(redis, cache_seconds=0)
    verifier = verifier_for(server, revocations=store)
    sid = str(uuid.uuid4())
    token = factory.mint(sid=sid)
    calls = 0
    real = verifier._verify_signed

    async def counting(token: str) -> Any:
        nonlocal calls
        calls += 1
        return await real(token)

    verifier._verify_signed = counting  # type: ignore[method-assign]
    for _ in range(3):
        await verifier.verify(token)
    assert calls == 1
    await store.revoke_sessions([sid], ttl_seconds=60)
    with pytest.raises(InvalidToken, match="ended"):
        await verifier.verify(token)
    await redis.aclose()


async def test_an_expired_token_is_not_served_from_the_cache() -> None:
    factory = TokenFactory(ISSUER, AUDIENCE)
    verifier = TokenVerifier(
        JWKSKeySource(
            "http://auth.test/jwks.json",
            httpx.AsyncClient(transport=httpx.MockTransport(JWKSServer(factory).handler)),
            cache_seconds=300,
            min_refresh_interval=1,
        ),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["ES256"],
        revocations=None,
        leeway_seconds=0,
    )
    from datetime import timedelta

    token = factory.mint(ttl=timedelta(seconds=1))
    await verifier.verify(token)
    # python-jose compares whole seconds: an exp is over a second after it passes.
    await asyncio.sleep(2.2)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)


async def test_a_redis_that_lost_the_revocation_state_fails_closed(backends: Backends) -> None:
    """No epoch key (a flush or a restart without persistence): every check of a token with a
    session is 503 with Retry-After, never a 200 for a token that may have been revoked."""
    factory = TokenFactory(ISSUER, AUDIENCE)
    await flush_redis(backends.redis_url)
    redis = Redis.from_url(backends.redis_url, decode_responses=True)
    store = RevocationStore(redis, cache_seconds=0)
    verifier = verifier_for(JWKSServer(factory), revocations=store)
    revoked, live = str(uuid.uuid4()), str(uuid.uuid4())
    await store.revoke_sessions([revoked], ttl_seconds=60)

    await redis.flushdb()
    for sid in (revoked, live):
        with pytest.raises(DependencyUnavailable) as caught:
            await verifier.verify(factory.mint(sid=sid))
        assert caught.value.headers["Retry-After"] == "1"
    # A service token has no session to revoke: unaffected.
    await verifier.verify(factory.mint(sub="svc:orgs", sid=None))

    # Rebuilt (what auth's RevocationKeeper writes): the revoked one stays revoked.
    await store.restore({revoked: 60}, epoch="rebuilt")
    with pytest.raises(InvalidToken, match="ended"):
        await verifier.verify(factory.mint(sid=revoked))
    await verifier.verify(factory.mint(sid=live))
    await redis.aclose()
