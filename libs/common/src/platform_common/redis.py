"""The service's Redis client: short timeouts, so a dead Redis is a quick 503, not a hang.

A pooled connection can be dead without anyone knowing yet (Redis restarted, a proxy or
firewall dropped it): the first command on it then fails. redis-py retries a command once,
on a fresh connection, when the failure was the connection's (its `Retry` with the
connection and timeout errors), so a Redis that came back is used at once instead of each
stale pooled connection costing one request a 503. Every command the platform sends is
idempotent (GET, SET with a value, INCR is the login counter's, where one extra count on a
retried attempt errs on the safe side). Idle connections are also checked before use
(`health_check_interval`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from platform_common.settings import ServiceSettings


class CountingRedis(Redis):
    """Counts the commands that fail (after redis-py's own retry) in `redis_errors_total`,
    whoever sent them and whatever they then did about it (the limiter lets the request
    through, a cache falls back to the database, a request answers 503)."""

    errors: Counter | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except RedisError as exc:
            if self.errors is not None:
                self.errors.labels(error=type(exc).__name__).inc()
            raise


def create_redis(
    settings: ServiceSettings, url: str | None = None, *, errors: Counter | None = None
) -> Redis:
    timeout = settings.redis_timeout_seconds
    client = CountingRedis.from_url(
        url or settings.resolved_redis_url(),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=5,
        retry=Retry(NoBackoff(), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        decode_responses=True,
    )
    assert isinstance(client, CountingRedis)  # from_url is a classmethod: cls(...)
    client.errors = errors
    return client
