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
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

KEY_PREFIX = "platform:revoked:sid:"
EPOCH_KEY = "platform:revoked:epoch"


class RevocationStateLost(RedisError):
    """Redis answers but holds no revocation epoch: its state is gone until auth rebuilds it."""


class RevocationStore:
    def __init__(self, redis: Redis, cache_seconds: float = 1.0, max_cached: int = 100_000) -> None:
        self.redis = redis
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        self._cache: dict[str, tuple[float, bool]] = {}

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
            self._cache[sid] = (deadline, True)

    async def has_epoch(self) -> bool:
        return bool(await self.redis.exists(EPOCH_KEY))

    async def is_revoked(self, session_id: str) -> bool:
        now = time.monotonic()
        cached = self._cache.get(session_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        revoked, epoch = await self.redis.mget(KEY_PREFIX + session_id, EPOCH_KEY)
        if epoch is None:
            raise RevocationStateLost("The revocation state is being rebuilt.")
        if len(self._cache) >= self.max_cached:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
        self._cache[session_id] = (now + self.cache_seconds, revoked is not None)
        return revoked is not None
