"""Login throttling in Redis that slows guessing without letting anyone lock the owner out.

OWASP's "device cookies" scheme: failures are counted per account *and per kind of client*,
so failures from elsewhere never block a client the account has logged in from before.

- Per client address: every attempt counts; over `login_max_attempts_per_ip` in the window,
  the address gets 429 until the window ends (an address guessing across many accounts).
- Per account, in three separate pools:
  - a trusted device: the client presents a device token (returned by every successful
    login as `device_token`, sent back in the login body or the `/token` form) issued for
    this account; each device has a pool of its own;
  - a known address: an address this account logged in from within `login_known_address_days`;
    each address has a pool of its own;
  - everyone else: one shared pool of untrusted clients.
  In each pool the first `login_max_failures_per_account` attempts are free; after that each
  further attempt must wait a progressive delay since the previous one (1 s, 2 s, 4 s, ...
  capped at `login_max_delay_seconds`), else 429 with `Retry-After`. There is no hard lock: an
  attacker hammering the untrusted pool slows only that pool to one guess per maximum delay,
  while the owner's known device or address logs in at once.
  A successful login empties the pool it came through.

The check and the claim of the attempt are one Lua call (atomic across every process): an
attempt is counted when admitted, so parallel requests at the moment a delay ends get one
guess, not one each. Device tokens are opaque, random and stored only as SHA-256 hashes.
Keys hold hashes of the account's email, never the address itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis

from platform_common.errors import RateLimited
from platform_common.opaque_tokens import hash_token, new_token

_INCR_WITH_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""

# KEYS: device record, known-address record, device pool, address pool, untrusted pool.
# ARGV: account hash, free attempts, maximum delay (s), pool lifetime (s).
# Returns {admitted (1/0), seconds to wait, the pool's key}.
_ADMIT = """
local pool = KEYS[5]
if KEYS[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  pool = KEYS[3]
elseif KEYS[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  pool = KEYS[4]
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', pool, 'n', 'last')
local n = tonumber(state[1]) or 0
local last = tonumber(state[2]) or 0
local free = tonumber(ARGV[2])
if n >= free then
  local delay = math.min(2 ^ (n - free), tonumber(ARGV[3]))
  local wait = last + delay - now
  if wait > 0 then return {0, math.ceil(wait), pool} end
end
redis.call('HSET', pool, 'n', n + 1, 'last', tostring(now))
redis.call('EXPIRE', pool, ARGV[4])
return {1, 0, pool}
"""


class LoginRateLimited(RateLimited):
    code = "rate_limited"


def account_hash(email: str) -> str:
    # Hashed so that Redis holds no email addresses.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """An admitted login attempt: which pool it counts in, and the device token it showed."""

    account: str
    pool: str
    device_token: str | None
    address: str | None


class LoginThrottle:
    def __init__(
        self,
        redis: Redis,
        *,
        max_failures_per_account: int,
        account_window_seconds: int,
        max_delay_seconds: int,
        max_attempts_per_ip: int,
        ip_window_seconds: int,
        device_token_days: int,
        known_address_days: int,
    ) -> None:
        self.redis = redis
        self.free_attempts = max_failures_per_account
        self.account_window = account_window_seconds
        self.max_delay = max_delay_seconds
        self.max_attempts_per_ip = max_attempts_per_ip
        self.ip_window = ip_window_seconds
        self.device_ttl = device_token_days * 86_400
        self.known_address_ttl = known_address_days * 86_400
        self._incr = redis.register_script(_INCR_WITH_WINDOW)
        self._admit = redis.register_script(_ADMIT)

    async def before_attempt(
        self, email: str, client_address: str | None, device_token: str | None = None
    ) -> Attempt:
        """Count the attempt; 429 if its address or its pool of the account must wait."""
        if client_address:
            count, ttl = await self._incr(
                keys=["auth:login:ip:" + client_address], args=[self.ip_window]
            )
            if int(count) > self.max_attempts_per_ip:
                raise LoginRateLimited(
                    int(ttl), "Too many login attempts from this address; try again later."
                )
        account = account_hash(email)
        device = hash_token(device_token) if device_token else None
        prefix = f"auth:login:acct:{account}:"
        admitted, wait, pool = await self._admit(
            keys=[
                f"auth:login:device:{device}" if device else "",
                f"{prefix}known:{client_address}" if client_address else "",
                f"{prefix}d:{device}",
                f"{prefix}a:{client_address}",
                f"{prefix}u",
            ],
            args=[account, self.free_attempts, self.max_delay, self.account_window],
        )
        if not int(admitted):
            raise LoginRateLimited(
                int(wait), "Too many failed logins for this account; try again later."
            )
        pool = pool.decode() if isinstance(pool, bytes) else str(pool)
        trusted_device = pool == f"{prefix}d:{device}"
        return Attempt(account, pool, device_token if trusted_device else None, client_address)

    async def record_success(self, attempt: Attempt) -> str:
        """Empty the attempt's pool, remember its address and device; the device token the
        client keeps (the one it showed, or a new one)."""
        device_token = attempt.device_token or new_token().value
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(attempt.pool)
            pipe.set(
                f"auth:login:device:{hash_token(device_token)}", attempt.account, ex=self.device_ttl
            )
            if attempt.address:
                pipe.set(
                    f"auth:login:acct:{attempt.account}:known:{attempt.address}",
                    "1",
                    ex=self.known_address_ttl,
                )
            await pipe.execute()
        return device_token
