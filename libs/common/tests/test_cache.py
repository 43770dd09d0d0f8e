"""The shared read-through cache (platform_common.cache) against the real Redis: hits,
invalidation, the race between a late writer and an invalidation, and Redis failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from platform_common.cache import CacheSpec, SharedCache
from platform_testing import Backends, flush_redis

SPEC = CacheSpec("test-cards", ttl_seconds=60)


@pytest.fixture
async def cache(backends: Backends) -> AsyncIterator[SharedCache]:
    await flush_redis(backends.redis_url)
    redis = Redis.from_url(backends.redis_url)
    yield SharedCache(redis, SPEC)
    await redis.aclose()


async def test_a_stored_entry_is_served_until_invalidated(cache: SharedCache) -> None:
    first = await cache.get_many(["a", "b"])
    assert first.hits == {}
    await cache.put_many({"a": b'{"name": "A"}'}, first.versions)
    assert (await cache.get_many(["a", "b"])).hits == {"a": b'{"name": "A"}'}

    await cache.invalidate(["a"])
    assert (await cache.get_many(["a"])).hits == {}


async def test_a_late_writer_never_brings_back_what_an_invalidation_ended(
    cache: SharedCache,
) -> None:
    # A reader misses and asks the owner (old data)...
    before = await cache.get_many(["a"])
    # ...the owner commits a change and invalidates...
    await cache.invalidate(["a"])
    # ...and only then the reader stores what it was told: never served.
    await cache.put_many({"a": b"old"}, before.versions)
    after = await cache.get_many(["a"])
    assert after.hits == {}
    # The next reader stores the new data with the new version: served.
    await cache.put_many({"a": b"new"}, after.versions)
    assert (await cache.get_many(["a"])).hits == {"a": b"new"}


async def test_entries_expire(backends: Backends, cache: SharedCache) -> None:
    await cache.put_many({"a": b"x"}, (await cache.get_many(["a"])).versions)
    redis = Redis.from_url(backends.redis_url)
    ttl = await redis.ttl("platform:cache:test-cards:e:a")
    await redis.aclose()
    assert 0 < ttl <= SPEC.ttl_seconds


async def test_a_failing_redis_is_a_miss_not_an_error() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    cache = SharedCache(dead, SPEC)
    assert (await cache.get_many(["a"])).hits == {}
    await cache.put_many({"a": b"x"}, {})
    await cache.invalidate(["a"])  # logged, not raised
    await dead.aclose()
