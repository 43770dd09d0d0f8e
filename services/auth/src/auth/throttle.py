"""Login throttling in Redis, per account and per client address.

- Per client address: every attempt counts; over `login_max_attempts_per_ip` in the window,
  the address gets 429 until the window ends.
- Per account: failed attempts count; after `login_max_failures_per_account` the account
  refuses logins (429) until the window ends, even with the right password, so guessing is
  bounded whatever the number of addresses. A success resets the account's count.

Counters are fixed windows (INCR + EXPIRE in one Lua call, atomic across every process).
`Retry-After` is the window's remaining time.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from platform_common.errors import RateLimited

_INCR_WITH_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


class LoginRateLimited(RateLimited):
    code = "rate_limited"


def _account_key(email: str) -> str:
    # Hashed so that Redis holds no email addresses.
    return "auth:login:acct:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


class LoginThrottle:
    def __init__(
        self,
        redis: Redis,
        *,
        max_failures_per_account: int,
        account_window_seconds: int,
        max_attempts_per_ip: int,
        ip_window_seconds: int,
    ) -> None:
        self.redis = redis
        self.max_failures_per_account = max_failures_per_account
        self.account_window = account_window_seconds
        self.max_attempts_per_ip = max_attempts_per_ip
        self.ip_window = ip_window_seconds
        self._incr = redis.register_script(_INCR_WITH_WINDOW)

    async def before_attempt(self, email: str, client_address: str | None) -> None:
        """Count the attempt against the address; refuse if the address or account is locked."""
        if client_address:
            count, ttl = await self._incr(
                keys=["auth:login:ip:" + client_address], args=[self.ip_window]
            )
            if int(count) > self.max_attempts_per_ip:
                raise LoginRateLimited(
                    int(ttl), "Too many login attempts from this address; try again later."
                )
        key = _account_key(email)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            failures, ttl = await pipe.execute()
        if failures is not None and int(failures) >= self.max_failures_per_account:
            raise LoginRateLimited(
                int(ttl) if ttl and int(ttl) > 0 else self.account_window,
                "Too many failed logins for this account; try again later.",
            )

    async def record_failure(self, email: str) -> None:
        await self._incr(keys=[_account_key(email)], args=[self.account_window])

    async def record_success(self, email: str) -> None:
        await self.redis.delete(_account_key(email))
