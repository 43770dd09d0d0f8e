"""Throttling `password/forgot` like login (auth.throttle): per client address and per email
address (hashed), in a window; over either, 429 with `Retry-After`. Applied before the account
is looked up, so that it answers the same for known and unknown addresses."""

from __future__ import annotations

from redis.asyncio import Redis

from auth.throttle import _INCR_WITH_WINDOW, LoginRateLimited, account_hash


class ForgotThrottle:
    def __init__(
        self, redis: Redis, *, max_per_email: int, max_per_ip: int, window_seconds: int
    ) -> None:
        self.max_per_email = max_per_email
        self.max_per_ip = max_per_ip
        self.window = window_seconds
        self._incr = redis.register_script(_INCR_WITH_WINDOW)

    async def before_request(self, email: str, client_address: str | None) -> None:
        if client_address:
            count, ttl = await self._incr(
                keys=["auth:forgot:ip:" + client_address], args=[self.window]
            )
            if int(count) > self.max_per_ip:
                raise LoginRateLimited(
                    int(ttl), "Too many password resets from this address; try again later."
                )
        count, ttl = await self._incr(
            keys=["auth:forgot:acct:" + account_hash(email)], args=[self.window]
        )
        if int(count) > self.max_per_email:
            raise LoginRateLimited(
                int(ttl), "Too many password resets for this address; try again later."
            )
