"""Delivers user events from the outbox to the services they are for.

Registration, disabling and enabling write an `OutboxEvent` in the same transaction as the
change, so an event exists exactly when the change was committed. This relay, a background
task in every auth process, hands pending events to their `destination` (users, through
`auth.clients.users`; orgs, through `auth.clients.orgs`, for account deletions, which write
one event per destination) and marks them delivered. Each destination backs off on its own:
orgs being down does not hold registrations back from users. It is woken right after such
a commit and polls as a fallback. A failed delivery is retried with exponential backoff
(capped at a minute); users and orgs apply events idempotently (newer `version` wins,
deletions leave tombstones), so at-least-once delivery is enough. Rows are claimed
with `FOR UPDATE SKIP LOCKED`, so several workers never send the same event at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.clients.orgs import OrgsClient, OrgsRefused
from auth.clients.users import UsersClient, UsersRefused
from auth.repository import OutboxRepository
from platform_common.clock import utcnow
from platform_common.errors import ProblemError

logger = logging.getLogger(__name__)

BATCH_SIZE = 50
MAX_BACKOFF_SECONDS = 60

# Hands one event (user id, type, payload) to a service; raises when it was not applied.
Deliver = Callable[[uuid.UUID, str, dict[str, Any]], Awaitable[None]]


class UnknownDestination(Exception):
    """An event for a service this relay does not deliver to."""


class OutboxRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        users: UsersClient,
        *,
        orgs: OrgsClient | None = None,
        poll_seconds: float,
        registry: CollectorRegistry | None = None,
    ) -> None:
        # Measured by the relay after each round (one query), not per request. Every worker
        # sees the same table: the pod's figure is the largest of its live workers (`livemax`).
        self.pending = Gauge(
            "auth_outbox_pending_events",
            "Outbox events not yet delivered (to users or orgs)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.oldest_age = Gauge(
            "auth_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox event (0 when none waits)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.deletions_pending = Gauge(
            "auth_account_deletions_pending",
            "Deleted accounts whose deletion has not yet reached every service",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.sessionmaker = sessionmaker
        self.users = users
        self.destinations: dict[str, Deliver] = {"users": users.apply_user_event}
        if orgs is not None:
            self.destinations["orgs"] = orgs.apply_user_event
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Deliver now rather than at the next poll (called once a change has committed)."""
        self._wake.set()

    async def run_once(self) -> int:
        """Deliver what is due; the number of events delivered."""
        delivered = 0
        async with self.sessionmaker() as db, db.begin():
            now = utcnow()
            failing: set[str] = set()
            for event in await OutboxRepository(db).claim_due(now, BATCH_SIZE):
                if event.destination in failing:
                    # Keep per-user order: later events for a failing service wait for the
                    # next round; the other services' events go on.
                    continue
                try:
                    deliver = self.destinations.get(event.destination)
                    if deliver is None:
                        raise UnknownDestination(f"no delivery to {event.destination!r}")
                    await deliver(event.aggregate_id, event.event_type, event.payload)
                except (ProblemError, UsersRefused, OrgsRefused, UnknownDestination) as exc:
                    event.attempts += 1
                    event.last_error = str(exc)[:1000]
                    backoff = min(2 ** min(event.attempts, 10), MAX_BACKOFF_SECONDS)
                    event.next_attempt_at = now + timedelta(seconds=backoff)
                    logger.warning(
                        "outbox: %s for user %s not delivered to %s (attempt %d): %s",
                        event.event_type,
                        event.aggregate_id,
                        event.destination,
                        event.attempts,
                        exc,
                    )
                    failing.add(event.destination)
                    continue
                event.delivered_at = now
                delivered += 1
        await self.measure_backlog()
        return delivered

    async def measure_backlog(self) -> None:
        async with self.sessionmaker() as db:
            pending, oldest = await OutboxRepository(db).backlog()
            deletions = await OutboxRepository(db).pending_deletions()
        self.pending.set(pending)
        self.deletions_pending.set(deletions)
        self.oldest_age.set((utcnow() - oldest).total_seconds() if oldest else 0)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox relay round failed; retrying")
            # Sleep until the next poll, or until a request has committed a new event.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()
