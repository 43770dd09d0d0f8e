"""Keeps Redis' revocation keys complete: rebuilds them from auth's database when Redis has
lost them (`platform_common.revocation` explains the epoch).

Every auth process runs `RevocationKeeper.run_forever`: once a second it asks Redis whether
the epoch key exists. When it does not (a restart without persistence, a flush, a new empty
Redis), one process (a Redis lock) reads the sessions ended within an access token's lifetime
and writes their keys, with the time each has left, and a new epoch in one MULTI; verifiers
everywhere fail closed until then. A session ended by a transaction that was still in flight
during the rebuild may have written its key into the old Redis and committed after the read:
a second pass, a few seconds later, writes the keys of every session ended since shortly
before the rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.repository import UserSessionRepository
from platform_common.clock import utcnow
from platform_common.revocation import RevocationStore, new_epoch

logger = logging.getLogger(__name__)

LOCK_KEY = "platform:revoked:rebuild-lock"
LOCK_SECONDS = 30
# Longer than any transaction can stay open (requests are bounded by their deadline).
SETTLE_SECONDS = 6.0


class RevocationKeeper:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        store: RevocationStore,
        *,
        token_lifetime: timedelta,
        check_seconds: float = 1.0,
        settle_seconds: float = SETTLE_SECONDS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.store = store
        self.token_lifetime = token_lifetime
        self.check_seconds = check_seconds
        self.settle_seconds = settle_seconds
        self._second_passes: set[asyncio.Task[None]] = set()
        self.rebuilds = Counter(
            "auth_revocation_rebuilds",
            "Times the revocation keys were rebuilt in Redis from the database.",
            registry=registry,
        )

    async def ensure(self) -> bool:
        """Rebuild when Redis has no epoch and no other process is rebuilding; True if this
        call rebuilt."""
        if await self.store.has_epoch():
            return False
        token = secrets.token_hex(8)
        if not await self.redis.set(LOCK_KEY, token, nx=True, ex=LOCK_SECONDS):
            return False
        try:
            started = utcnow()
            # The epoch starts with Redis' time: org-scoped tokens checked before it are
            # refused, their revocation markers having been lost (platform_common.revocation).
            epoch = new_epoch(await self.store.server_time_ms())
            await self._write_ended_since(started - self.token_lifetime, epoch=epoch)
        finally:
            # Only our own lock: it may have expired and been taken by another process.
            if await self.redis.get(LOCK_KEY) == token.encode():
                await self.redis.delete(LOCK_KEY)
        self.rebuilds.inc()
        logger.warning("revocation keys rebuilt in Redis from the database")
        task = asyncio.create_task(self._second_pass(started - timedelta(seconds=2)))
        self._second_passes.add(task)
        task.add_done_callback(self._second_passes.discard)
        return True

    async def _second_pass(self, since: datetime) -> None:
        await asyncio.sleep(self.settle_seconds)
        try:
            await self._write_ended_since(since, epoch=None)
        except (RedisError, SQLAlchemyError):
            logger.exception("second pass of the revocation rebuild failed")

    async def _write_ended_since(self, since: datetime, *, epoch: str | None) -> None:
        async with self.sessionmaker() as db:
            ended = await UserSessionRepository(db).ended_since(since)
        now = utcnow()
        await self.store.restore(
            {str(sid): self._seconds_left(ended_at, now) for sid, ended_at in ended},
            epoch=epoch,
        )

    def _seconds_left(self, ended_at: datetime, now: datetime) -> int:
        # The same lifetime end_sessions gives a key: an access token's life plus a margin.
        return int((ended_at + self.token_lifetime - now).total_seconds())

    async def run_forever(self) -> None:
        while True:
            try:
                await self.ensure()
            except (RedisError, SQLAlchemyError, OSError) as exc:
                # Redis or the database is down: verifiers fail closed meanwhile; try again.
                logger.warning("revocation state check failed: %s", type(exc).__name__)
            await asyncio.sleep(self.check_seconds)

    async def aclose(self) -> None:
        for task in list(self._second_passes):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
