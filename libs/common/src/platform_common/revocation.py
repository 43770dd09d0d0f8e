"""Session revocation shared through Redis, failing closed when Redis forgets it.

auth keeps the durable record (the `ended_at` of its sessions) and writes one key per ended
session (`platform:revoked:sid:<sid>`) for as long as an access token of that session can
live. Every service's verifier checks the token's `sid` against it, caching each answer
locally for `revocation_cache_seconds` (1 s by default) so a busy service asks Redis at most
once a second per session, and a revocation is seen everywhere well within the 5 seconds the
API promises.

Redis may lose those keys (a restart without persistence, `FLUSHALL`, a failover to an empty
replica). So the keys are written together with an epoch key, `platform:revoked:epoch`, and
read together with it in one `MGET`: a Redis without the epoch has lost (or never had) the
revocation state, and every check fails closed (`RevocationStateLost`, answered as 503) until
auth has rebuilt the keys from its database and written a new epoch (`auth.revocation_sync`,
within about a second). A revoked token is never accepted in between.

Org-scoped tokens are revoked per organization and member the same way: orgs writes
`platform:revoked:org:<org id>:<user id>` holding the time of the change in milliseconds,
on Redis' own clock (so no service's clock skew matters), when the member's role changes,
the member leaves or the org is deleted; a token whose membership was checked at or before
that time is refused. The marker is read in the same `MGET` as the session's key and the
epoch. Redis losing its memory loses markers too, and they are not rebuilt: instead the
epoch auth writes when it rebuilds starts with Redis' time (`new_epoch`), and every org-scoped
token checked before it is refused (its holder asks auth for a new one).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import NamedTuple

from redis.asyncio import Redis
from redis.exceptions import RedisError

KEY_PREFIX = "platform:revoked:sid:"
EPOCH_KEY = "platform:revoked:epoch"
ORG_KEY_PREFIX = "platform:revoked:org:"
# The longest an org-scoped token may live (auth's AUTH_ORG_TOKEN_TTL_SECONDS is bounded by
# it): a marker is kept that long, plus the verifiers' leeway.
ORG_TOKEN_MAX_LIFETIME_SECONDS = 3600
ORG_MARKER_TTL_SECONDS = ORG_TOKEN_MAX_LIFETIME_SECONDS + 60

# Sets every key (KEYS) to Redis' time in milliseconds, for ARGV[1] seconds; returns it.
_MARK_WITH_SERVER_TIME = """
local t = redis.call('TIME')
local ms = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
for _, key in ipairs(KEYS) do
    redis.call('SET', key, ms, 'EX', ARGV[1])
end
return ms
"""


class OrgMarker(NamedTuple):
    """What an org-scoped token is checked against: its org and user, and when auth read
    the membership it carries (milliseconds, Redis' clock)."""

    org_id: str
    user_id: str
    checked_at_ms: int


def org_marker_key(org_id: str, user_id: str) -> str:
    return f"{ORG_KEY_PREFIX}{org_id}:{user_id}"


def new_epoch(server_time_ms: int) -> str:
    """An epoch value: when (Redis' clock) the revocation state was (re)built, and a nonce."""
    return f"{server_time_ms} {uuid.uuid4().hex}"


def epoch_started_ms(epoch: bytes | str) -> int:
    """When the state was (re)built; 0 for an epoch that does not say (a test's marker)."""
    text = epoch.decode() if isinstance(epoch, bytes) else epoch
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


class RevocationStateLost(RedisError):
    """Redis answers but holds no revocation epoch: its state is gone until auth rebuilds it."""


class RevocationStore:
    def __init__(self, redis: Redis, cache_seconds: float = 1.0, max_cached: int = 100_000) -> None:
        self.redis = redis
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        # Redis key -> (monotonic deadline, its value then).
        self._cache: dict[str, tuple[float, bytes | str | None]] = {}

    async def revoke_sessions(self, session_ids: Iterable[str], ttl_seconds: int) -> None:
        await self.restore(dict.fromkeys(session_ids, ttl_seconds))

    async def restore(self, ttl_by_session: dict[str, int], *, epoch: str | None = None) -> None:
        """Write revocation keys (session id -> seconds its tokens can still live); with
        `epoch`, also mark the state complete, in the same MULTI so a reader sees both or
        neither."""
        if not ttl_by_session and epoch is None:
            return
        async with self.redis.pipeline(transaction=epoch is not None) as pipe:
            for sid, ttl in ttl_by_session.items():
                pipe.set(KEY_PREFIX + sid, "1", ex=max(1, ttl))
            if epoch is not None:
                pipe.set(EPOCH_KEY, epoch)
            await pipe.execute()
        deadline = time.monotonic() + self.cache_seconds
        for sid in ttl_by_session:
            self._cache[KEY_PREFIX + sid] = (deadline, b"1")

    async def has_epoch(self) -> bool:
        return bool(await self.redis.exists(EPOCH_KEY))

    async def server_time_ms(self) -> int:
        """Redis' clock, in milliseconds: the one clock org markers and tokens are compared on."""
        seconds, microseconds = await self.redis.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    async def revoke_org_tokens(self, org_id: str, user_ids: Iterable[str]) -> None:
        """Every org-scoped token of these members of the org, checked until now, stops
        working. orgs calls it before its commit (a failure then fails the change) and again
        after it, so that a token auth minted from a read that still saw the old membership
        is caught too."""
        keys = [org_marker_key(org_id, user_id) for user_id in user_ids]
        if keys:
            await self.redis.eval(_MARK_WITH_SERVER_TIME, len(keys), *keys, ORG_MARKER_TTL_SECONDS)
            for key in keys:
                self._cache.pop(key, None)

    async def is_revoked(self, session_id: str, org: OrgMarker | None = None) -> bool:
        """Whether the session has ended or, for an org-scoped token, the membership it
        carries has changed since it was checked."""
        keys = [KEY_PREFIX + session_id]
        if org is not None:
            keys.append(org_marker_key(org.org_id, org.user_id))
        *values, epoch = await self._values([*keys, EPOCH_KEY])
        if values[0] is not None:
            return True
        if org is None:
            return False
        if epoch is not None and org.checked_at_ms < epoch_started_ms(epoch):
            return True  # checked before Redis lost (and auth rebuilt) the markers
        return values[1] is not None and int(values[1]) >= org.checked_at_ms

    async def _values(self, keys: list[str]) -> list[bytes | str | None]:
        """The keys' values (the epoch last), from the local cache while it is fresh."""
        now = time.monotonic()
        cached = [self._cache.get(key) for key in keys]
        if all(entry is not None and entry[0] > now for entry in cached):
            return [entry[1] for entry in cached if entry is not None]
        values = await self.redis.mget(*keys)
        if values[-1] is None:
            raise RevocationStateLost("The revocation state is being rebuilt.")
        if len(self._cache) >= self.max_cached:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
        for key, value in zip(keys, values, strict=True):
            self._cache[key] = (now + self.cache_seconds, value)
        return list(values)
