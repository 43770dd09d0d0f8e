"""Per-caller rate limits on every API endpoint, in Redis through the `limits` library.

The caller is the verified token's subject (a user id, or `svc:<name>`), else the client
address (`client_address`). Each role has its own limit from settings (`*_RATE_LIMIT_*`,
in `limits`' notation: "1200/minute"). The windows are fixed and aligned to the clock (the
window's number is part of the key), so one Redis round trip per request does it all: the
library's atomic increment-with-expiry (`limits.aio.storage.RedisStorage.incr`) gives the
count, and the reset time is known without asking.

Every response of a limited endpoint carries the IETF httpapi draft's headers,
`RateLimit-Policy: "user";q=1200;w=60` and `RateLimit: "user";r=1187;t=42`; over the limit
the answer is 429 `rate_limited` with `Retry-After`. The headers travel in the request scope
and `EdgeMiddleware` writes them, so that error responses carry them too.

When Redis fails, requests are let through (logged): the limiter protects the services, it
must not be what takes them down; what needs Redis to be correct (revocation, login
throttling) answers 503 on its own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from redis.asyncio import Redis
from redis.exceptions import RedisError

from platform_common.client_address import get_client_address
from platform_common.errors import RateLimited
from platform_common.metrics import PlatformMetrics
from platform_common.request_context import RATE_LIMIT_HEADERS
from platform_common.security import verified_bearer
from platform_common.state import platform_state
from platform_common.verification import Principal

logger = logging.getLogger(__name__)

ROLES = ("anonymous", "user", "admin", "service")


@dataclass(frozen=True)
class Policy:
    name: str
    item: RateLimitItem

    @property
    def window(self) -> int:
        return int(self.item.get_expiry())

    @property
    def header(self) -> bytes:
        return f'"{self.name}";q={self.item.amount};w={self.window}'.encode()


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        limits: dict[str, str],
        *,
        service: str,
        metrics: PlatformMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        # The services' own Redis pool: no second set of connections.
        self.storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # passed through
            key_prefix=f"platform:ratelimit:{service}",
        )
        self.policies = {role: Policy(role, parse(limit)) for role, limit in limits.items()}
        if metrics is not None:
            metrics.declare_policies(list(self.policies))

    def policy_for(self, principal: Principal | None) -> Policy:
        if principal is None:
            return self.policies["anonymous"]
        return self.policies[principal.role if principal.role in self.policies else "user"]

    async def hit(self, policy: Policy, caller: str) -> tuple[int, int]:
        """Count one request; (requests left in the window, seconds until it resets)."""
        now = time.time()
        window = policy.window
        number = int(now // window)
        key = policy.item.key_for(caller, str(number))
        count = await self.storage.incr(key, window)
        reset = max(1, int((number + 1) * window - now + 0.999))
        return policy.item.amount - count, reset


class RateLimitExceeded(RateLimited):
    code = "rate_limited"


async def enforce_rate_limit(request: Request) -> None:
    """Router-level dependency; the caller's principal comes from `verified_bearer`, which
    `get_principal` shares, so the token is verified once. The client's address is worked
    out only for anonymous callers (a dependency of its own would cost every request)."""
    limiter = platform_state(request.app).rate_limiter
    if limiter is None:
        return
    principal = await verified_bearer(request)
    policy = limiter.policy_for(principal)
    if principal is not None:
        caller = principal.subject
    else:
        caller = f"ip:{await get_client_address(request) or 'unknown'}"
    try:
        remaining, reset = await limiter.hit(policy, caller)
    except RedisError as exc:
        # The limiter's storage shares the pool, not the client: count its failures here.
        if limiter.metrics is not None:
            limiter.metrics.redis_errors.labels(error=type(exc).__name__).inc()
        logger.warning("rate limit not enforced, Redis failed: %s", type(exc).__name__)
        return
    headers = [
        (b"ratelimit-policy", policy.header),
        (b"ratelimit", f'"{policy.name}";r={max(0, remaining)};t={reset}'.encode()),
    ]
    request.scope[RATE_LIMIT_HEADERS] = headers
    if remaining < 0:
        if limiter.metrics is not None:
            limiter.metrics.rate_limited.labels(policy=policy.name).inc()
        raise RateLimitExceeded(reset, "Too many requests; slow down.")


RateLimitDep = Annotated[None, Depends(enforce_rate_limit)]
