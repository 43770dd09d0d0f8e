"""The relay: committed events from the service's `events` table to its Redis Stream.

One background task per process. Each round, in one transaction, it claims the oldest
unrelayed rows (`FOR UPDATE SKIP LOCKED`, so two processes never publish one row at the
same time), XADDs them in order to `events:<service>` (`MAXLEN ~ <cap>`, one field `event`
holding the event's JSON) and marks them relayed. It is woken right after a request commits
an event (record.py) and polls as a fallback. An event may be published twice (Redis took
it, the commit that marks it failed): consumers are idempotent by event id.

Only one process relays at a time (a transaction-level advisory lock per table), so the
stream's order is the order in which the rows were claimed, oldest first, and consumers see
each org's events in order.

Every `purge_interval_seconds` it also deletes relayed events older than the retention
period (`*_EVENTS_RETENTION_DAYS`), in batches.

Metrics: `events_relayed_total`, `events_stream_lag_seconds` (age of the oldest unrelayed
event; 0 when none waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from platform_common.clock import utcnow
from platform_common.events.consumer import cancelling
from platform_common.events.record import register_waker, unregister_waker
from platform_common.events.table import EventRecordMixin

if TYPE_CHECKING:
    from platform_common.state import PlatformState

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
PURGE_BATCH = 5000


async def wait_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` have passed. (Not `asyncio.wait_for`: on Python
    3.11 it can swallow a cancellation that arrives as the event is set, and a task that
    ignores its cancellation hangs the shutdown.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    # A cancellation that coincided with the timeout's expiry may have been absorbed into
    # the TimeoutError (Python 3.11): honour it here.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def stream_key(service: str) -> str:
    return f"events:{service}"


class EventMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.relayed = Counter(
            "events_relayed",
            "Events published from the service's events table to its Redis Stream",
            registry=registry,
        )
        self.lag = Gauge(
            "events_stream_lag_seconds",
            "Age of the oldest committed event not yet on the Redis Stream (0 when none)",
            registry=registry,
            multiprocess_mode="livemax",
        )


class EventRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        model: type[EventRecordMixin],
        *,
        service: str,
        stream_maxlen: int,
        poll_seconds: float = 1.0,
        retention_days: float = 90,
        purge_interval_seconds: float = 3600,
        registry: CollectorRegistry | None = None,
        metrics: EventMetrics | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.model: Any = model
        self.stream = stream_key(service)
        self.stream_maxlen = stream_maxlen
        self.poll_seconds = poll_seconds
        self.retention = timedelta(days=retention_days)
        self.purge_interval_seconds = purge_interval_seconds
        self.metrics = metrics or EventMetrics(registry)
        self._lock_key = zlib.crc32(f"events-relay:{model.__tablename__}".encode())  # type: ignore[attr-defined]
        self._wake = asyncio.Event()
        self._last_purge = 0.0

    @classmethod
    def for_service(cls, platform: PlatformState, model: type[EventRecordMixin]) -> EventRelay:
        """The relay of a service's `events` table to `events:<service_name>`, configured by
        the service's `*_EVENTS_*` settings, with its metrics in the service's registry."""
        settings = platform.settings
        return cls(
            platform.sessionmaker,
            platform.redis,
            model,
            service=settings.service_name,
            stream_maxlen=settings.events_stream_maxlen,
            poll_seconds=settings.events_poll_seconds,
            retention_days=settings.events_retention_days,
            purge_interval_seconds=settings.events_purge_interval_seconds,
            registry=platform.metrics_registry,
        )

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Publish what is waiting; the number of events published."""
        published = 0
        while True:
            count = await self._relay_batch()
            published += count
            if count < BATCH_SIZE:
                break
        await self.measure_lag()
        return published

    async def _relay_batch(self) -> int:
        model = self.model
        async with self.sessionmaker() as db, db.begin():
            locked = await db.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": self._lock_key}
            )
            if not locked:
                return 0  # another process is relaying right now
            rows = (
                await db.scalars(
                    select(model)
                    .where(model.relayed_at.is_(None))
                    .order_by(model.occurred_at, model.id)
                    .limit(BATCH_SIZE)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            async with self.redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.xadd(
                        self.stream,
                        {"event": row.to_event().to_json()},
                        maxlen=self.stream_maxlen,
                        approximate=True,
                    )
                await pipe.execute()
            now = utcnow()
            await db.execute(
                update(model).where(model.id.in_([row.id for row in rows])).values(relayed_at=now)
            )
        self.metrics.relayed.inc(len(rows))
        return len(rows)

    async def measure_lag(self) -> None:
        model = self.model
        async with self.sessionmaker() as db:
            oldest = await db.scalar(
                select(func.min(model.occurred_at)).where(model.relayed_at.is_(None))
            )
        self.metrics.lag.set((utcnow() - oldest).total_seconds() if oldest else 0)

    async def purge(self) -> int:
        """Delete relayed events older than the retention period; how many."""
        model = self.model
        cutoff = utcnow() - self.retention
        removed = 0
        while True:
            async with self.sessionmaker() as db, db.begin():
                batch = (
                    select(model.id)
                    .where(model.occurred_at < cutoff, model.relayed_at.is_not(None))
                    .limit(PURGE_BATCH)
                    .scalar_subquery()
                )
                result = await db.execute(delete(model).where(model.id.in_(batch)))
            count = int(getattr(result, "rowcount", 0) or 0)
            removed += count
            if count < PURGE_BATCH:
                return removed

    async def run_forever(self) -> None:
        register_waker(self.model, self.wake)
        try:
            while True:
                self._wake.clear()  # a wake during the round runs the next one at once
                try:
                    await self.run_once()
                    if time.monotonic() - self._last_purge >= self.purge_interval_seconds:
                        self._last_purge = time.monotonic()
                        removed = await self.purge()
                        if removed:
                            logger.info("events: purged %d events past retention", removed)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    if cancelling():
                        raise asyncio.CancelledError from None
                    logger.exception("event relay round failed; retrying")
                await wait_or_timeout(self._wake, self.poll_seconds)
        finally:
            unregister_waker(self.model, self.wake)
