"""The service's Redis client: short timeouts, so a dead Redis is a quick 503, not a hang."""

from __future__ import annotations

from redis.asyncio import Redis

from platform_common.settings import ServiceSettings


def create_redis(settings: ServiceSettings, url: str | None = None) -> Redis:
    timeout = settings.redis_timeout_seconds
    return Redis.from_url(
        url or settings.resolved_redis_url(),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        decode_responses=True,
    )
