"""Session revocation shared through Redis.

auth writes one key per ended session (`platform:revoked:sid:<sid>`), kept for as long as an
access token of that session can live. Every service's verifier checks the token's `sid`
against it, caching each answer locally for `revocation_cache_seconds` (1 s by default) so a
busy service asks Redis at most once a second per session, and a revocation is seen
everywhere well within the 5 seconds the API promises.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from redis.asyncio import Redis

KEY_PREFIX = "platform:revoked:sid:"


class RevocationStore:
    def __init__(self, redis: Redis, cache_seconds: float = 1.0, max_cached: int = 100_000) -> None:
        self.redis = redis
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        self._cache: dict[str, tuple[float, bool]] = {}

    async def revoke_sessions(self, session_ids: Iterable[str], ttl_seconds: int) -> None:
        ids = list(session_ids)
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.set(KEY_PREFIX + sid, "1", ex=max(1, ttl_seconds))
            await pipe.execute()
        for sid in ids:
            self._cache[sid] = (time.monotonic() + self.cache_seconds, True)

    async def is_revoked(self, session_id: str) -> bool:
        now = time.monotonic()
        cached = self._cache.get(session_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        revoked = bool(await self.redis.exists(KEY_PREFIX + session_id))
        if len(self._cache) >= self.max_cached:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
        self._cache[session_id] = (now + self.cache_seconds, revoked)
        return revoked
