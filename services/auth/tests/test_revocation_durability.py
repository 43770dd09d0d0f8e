"""Revocation survives Redis losing its memory (a flush, a restart without persistence): a
revoked token is never accepted again; tokens fail closed (503) until auth has rebuilt the
keys from its database, which it does by itself within seconds. Against a redis-server of
the test's own, which it flushes, kills and starts again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from jose import jwt
from redis.asyncio import Redis

from platform_common.revocation import EPOCH_KEY, KEY_PREFIX
from platform_testing import RedisServer, free_port

if TYPE_CHECKING:
    from conftest import AuthApi, SignedIn

Started = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
AuthOn = Callable[[RedisServer], "contextlib.AbstractAsyncContextManager[AuthApi]"]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def auth_on(
    started: Started, api_for: Callable[[httpx.AsyncClient], AuthApi]
) -> Callable[[RedisServer], contextlib.AbstractAsyncContextManager[AuthApi]]:
    @contextlib.asynccontextmanager
    async def run(server: RedisServer) -> AsyncIterator[AuthApi]:
        # No local cache: every request asks Redis, so what Redis holds is what is seen.
        async with started(redis_url=server.url, revocation_cache_seconds=0) as client:
            await until_epoch(server)
            yield api_for(client)

    return run


async def until_epoch(server: RedisServer, within: float = 5.0) -> float:
    """Seconds until auth has (re)written the epoch."""
    started = time.monotonic()
    redis = Redis.from_url(server.url)
    try:
        while not await redis.exists(EPOCH_KEY):
            assert time.monotonic() - started < within, "auth did not rebuild the revocation keys"
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    return time.monotonic() - started


async def statuses_until_settled(
    client: httpx.AsyncClient, caller: SignedIn, settled: int, within: float = 5.0
) -> list[int]:
    """Statuses `GET /sessions` answers to `caller` until it answers `settled`."""
    seen: list[int] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        response = await client.get("/api/v1/auth/sessions", headers=caller.headers)
        seen.append(response.status_code)
        if response.status_code == settled:
            return seen
        if response.status_code == 503:
            assert response.headers["content-type"].startswith("application/problem+json")
        await asyncio.sleep(0.05)
    raise AssertionError(f"never answered {settled}: {seen}")


def sid_of(caller: SignedIn) -> str:
    return str(jwt.get_unverified_claims(caller.token)["sid"])


async def test_a_flush_does_not_bring_an_ended_session_back(
    auth_on: AuthOn, redis_server: RedisServer
) -> None:
    async with auth_on(redis_server) as api:
        user = await api.register()
        ended, kept = await api.login(user["email"]), await api.login(user["email"])
        r = await api.client.delete(f"/api/v1/auth/sessions/{sid_of(ended)}", headers=kept.headers)
        assert r.status_code == 204
        assert (
            await api.client.get("/api/v1/auth/sessions", headers=ended.headers)
        ).status_code == 401

        redis = Redis.from_url(redis_server.url)
        await redis.flushall()
        assert not await redis.exists(KEY_PREFIX + sid_of(ended))
        await redis.aclose()

        seen = await statuses_until_settled(api.client, ended, settled=401)
        assert 200 not in seen, seen
        # Rebuilt by auth on its own, within seconds; the live session works again.
        assert await until_epoch(redis_server) < 3
        assert (
            await api.client.get("/api/v1/auth/sessions", headers=kept.headers)
        ).status_code == 200
        assert (
            await api.client.get("/api/v1/auth/sessions", headers=ended.headers)
        ).status_code == 401


async def test_a_restart_does_not_bring_a_disabled_users_tokens_back(
    auth_on: AuthOn, redis_server: RedisServer
) -> None:
    async with auth_on(redis_server) as api:
        admin = await api.admin()
        victim = await api.login((await api.register())["email"])
        bystander = await api.login((await api.register())["email"])
        r = await api.client.post(f"/api/v1/auth/users/{victim.id}/disable", headers=admin.headers)
        assert r.status_code == 204

        redis_server.restart()  # SIGKILL, no persistence: an empty Redis on the same port

        started_at = time.monotonic()
        seen = await statuses_until_settled(api.client, victim, settled=401)
        assert 200 not in seen, seen
        await statuses_until_settled(api.client, bystander, settled=200)
        assert time.monotonic() - started_at < 5
        for _ in range(5):
            r = await api.client.get("/api/v1/auth/sessions", headers=victim.headers)
            assert r.status_code == 401
