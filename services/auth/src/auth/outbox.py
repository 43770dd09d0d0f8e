"""Delivers user events from the outbox to the users service.

Registration, disabling and enabling write an `OutboxEvent` in the same transaction as the
change, so an event exists exactly when the change was committed. This relay, a background
task in every auth process, sends pending events to users (`PUT /internal/v1/users/{id}`,
with a service token auth mints for itself) and marks them delivered. It is woken right
after such a commit and polls as a fallback. A failed delivery is retried with exponential
backoff (capped at a minute); users applies events idempotently (newer `version` wins), so
at-least-once delivery is enough. On PostgreSQL, rows are claimed with
`FOR UPDATE SKIP LOCKED`, so several workers never send the same event at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.models import OutboxEvent
from auth.repository import OutboxRepository
from auth.tokens import TokenIssuer
from platform_common.errors import ProblemError
from platform_common.http import ServiceClient

logger = logging.getLogger(__name__)

PROVISION_SCOPE = "users:provision"
BATCH_SIZE = 50
MAX_BACKOFF_SECONDS = 60


class OutboxRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        users: ServiceClient,
        issuer: TokenIssuer,
        *,
        poll_seconds: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.users = users
        self.issuer = issuer
        self.poll_seconds = poll_seconds
        self._token: tuple[str, datetime] | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Deliver now rather than at the next poll (called once a change has committed)."""
        self._wake.set()

    def _service_authorization(self) -> str:
        now = datetime.now(UTC)
        if self._token is None or self._token[1] - now < timedelta(minutes=2):
            ttl = timedelta(minutes=15)
            token = self.issuer.service_token(
                name="auth", scopes=[PROVISION_SCOPE], now=now, ttl=ttl
            )
            self._token = (token, now + ttl)
        return f"Bearer {self._token[0]}"

    async def _deliver(self, event: OutboxEvent) -> None:
        response = await self.users.request(
            "PUT",
            f"/internal/v1/users/{event.aggregate_id}",
            json={"event": event.event_type, **event.payload},
            authorization=self._service_authorization(),
        )
        if response.status_code >= 300:
            raise RuntimeError(f"users answered {response.status_code}: {response.text[:200]}")

    async def run_once(self) -> int:
        """Deliver what is due; the number of events delivered."""
        delivered = 0
        async with self.sessionmaker() as db, db.begin():
            now = datetime.now(UTC)
            for event in await OutboxRepository(db).claim_due(now, BATCH_SIZE):
                try:
                    await self._deliver(event)
                except (ProblemError, RuntimeError) as exc:
                    event.attempts += 1
                    event.last_error = str(exc)[:1000]
                    backoff = min(2 ** min(event.attempts, 10), MAX_BACKOFF_SECONDS)
                    event.next_attempt_at = now + timedelta(seconds=backoff)
                    logger.warning(
                        "outbox: %s for user %s not delivered (attempt %d): %s",
                        event.event_type,
                        event.aggregate_id,
                        event.attempts,
                        exc,
                    )
                    # Keep per-user order: later events of this batch wait for the next round.
                    break
                event.delivered_at = now
                delivered += 1
        return delivered

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
