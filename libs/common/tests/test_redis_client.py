"""The Redis client survives its pooled connections dying under it (a Redis restart)."""

from __future__ import annotations

from redis.asyncio import Redis

from platform_common.redis import create_redis
from platform_common.settings import ServiceSettings
from platform_testing import Backends


async def test_a_killed_connection_costs_no_request(backends: Backends) -> None:
    settings = ServiceSettings(redis_url=backends.redis_url)
    client = create_redis(settings)
    admin = Redis.from_url(backends.redis_url)
    try:
        await client.set("probe", "1")
        # What a Redis restart does to every pooled connection: the server drops it.
        own_connection = await client.client_id()
        assert await admin.client_kill_filter(_id=own_connection) == 1
        assert await client.get("probe") == "1"  # retried once on a new connection
    finally:
        await client.aclose()
        await admin.aclose()
