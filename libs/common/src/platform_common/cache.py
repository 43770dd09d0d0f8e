"""Read-through caches in Redis shared across services, invalidated by the owner of the data.

Two are defined, each a contract between the service that owns the data (and invalidates)
and the one that reads it through the cache instead of an HTTP call:

```
USER_ORGS    user id -> that user's organizations (orgs' GET /orgs)   read by users (/me)
             invalidated by orgs: membership added, re-roled, removed; org renamed, deleted
USER_CARDS   user id -> {id, name, email} (users' POST /lookup)         read by orgs (members)
             invalidated by users: profile renamed, auth's events (email, deletion, ...)
```

Invalidation must not race with a reader that fetched the old data just before the change
and stores it just after. So each subject has a version key; the owner increments it after
its transaction commits (`on_commit` in db.py), and an entry is stored with the version that
was current *before* the reader fetched: a read returns an entry only if its version is still
the current one (entries and versions come in one `MGET`). An entry stored late with an old
version is never served. A change is therefore visible on the next read after its commit.

Failures: a cache that Redis cannot serve is a miss (the reader asks the owner over HTTP);
an invalidation that fails is logged, and the entry it should have ended lives at most
`ttl_seconds`. Payloads are JSON bytes of the owner's public answer, nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Versions outlive entries, so that an entry never outlives the version it was stored with.
VERSION_TTL_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class CacheSpec:
    name: str
    ttl_seconds: int


USER_ORGS = CacheSpec("user-orgs", ttl_seconds=300)
USER_CARDS = CacheSpec("user-cards", ttl_seconds=300)


@dataclass(frozen=True)
class Lookup:
    """What a read found: the payloads still valid, and the versions to store misses with."""

    hits: dict[str, bytes]
    versions: dict[str, bytes]


class SharedCache:
    def __init__(self, redis: Redis, spec: CacheSpec) -> None:
        self.redis = redis
        self.spec = spec
        self._prefix = f"platform:cache:{spec.name}:"

    def _entry(self, subject: str) -> str:
        return f"{self._prefix}e:{subject}"

    def _version(self, subject: str) -> str:
        return f"{self._prefix}v:{subject}"

    async def get_many(self, subjects: Sequence[str]) -> Lookup:
        if not subjects:
            return Lookup({}, {})
        keys = [self._entry(s) for s in subjects] + [self._version(s) for s in subjects]
        try:
            values = await self.redis.mget(keys)
        except RedisError as exc:
            logger.warning("cache %s unavailable: %s", self.spec.name, type(exc).__name__)
            return Lookup({}, {})
        entries, versions = values[: len(subjects)], values[len(subjects) :]
        hits: dict[str, bytes] = {}
        current: dict[str, bytes] = {}
        for subject, entry, version in zip(subjects, entries, versions, strict=True):
            version = _as_bytes(version) or b"0"
            current[subject] = version
            if entry is not None:
                stored_version, _, payload = _as_bytes(entry).partition(b"\n")
                if stored_version == version:
                    hits[subject] = payload
        return Lookup(hits, current)

    async def put_many(self, payloads: dict[str, bytes], versions: dict[str, bytes]) -> None:
        """Store what was fetched, each with the version read before fetching it."""
        if not payloads:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for subject, payload in payloads.items():
                    value = versions.get(subject, b"0") + b"\n" + payload
                    pipe.set(self._entry(subject), value, ex=self.spec.ttl_seconds)
                await pipe.execute()
        except RedisError as exc:
            logger.warning("cache %s not written: %s", self.spec.name, type(exc).__name__)

    async def invalidate(self, subjects: Iterable[str]) -> None:
        """After the owner's commit: every entry of these subjects stops being served."""
        unique = list(dict.fromkeys(subjects))
        if not unique:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for subject in unique:
                    pipe.incr(self._version(subject))
                    pipe.expire(self._version(subject), VERSION_TTL_SECONDS)
                await pipe.execute()
        except RedisError:
            logger.exception(
                "cache %s: %d entries not invalidated; they expire within %d s",
                self.spec.name,
                len(unique),
                self.spec.ttl_seconds,
            )


def _as_bytes(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else value.encode()
