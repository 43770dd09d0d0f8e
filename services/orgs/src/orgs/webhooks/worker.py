"""The webhook delivery worker: one per orgs process.

```
events:orgs --XREADGROUP (group "webhooks")--> enqueue(event): one WebhookMessage per enabled
            endpoint of the event's org that subscribed to its type (idempotent: unique
            (webhook, event)), committed, then XACK. Entries a dead worker left pending are
            taken over after ORGS_WEBHOOKS_CLAIM_IDLE_SECONDS (XAUTOCLAIM).
sender      per endpoint, only the oldest pending message (stream order) is ever in flight:
            event N+1 waits until N succeeded or was given up. A message is not sent while an
            earlier stream entry is still unacknowledged (it may yet add an earlier message).
            Each attempt: the destination checked again (ssrf.py), a POST to the checked
            address with the Standard Webhooks headers, ORGS_WEBHOOKS_TIMEOUT_SECONDS; a
            WebhookDelivery row records it. A non-2xx answer, a timeout or a network error
            is retried after base * 2^(n-1) seconds (capped, jittered to 50-100 %); past
            ORGS_WEBHOOKS_RETRY_PERIOD_SECONDS from the event the message is given up, the
            endpoint disabled and a `webhook.disabled` event recorded.
```

Several processes may run workers: the consumer group shares the stream's entries among
them, and a message is claimed with a lease (`next_attempt_at` pushed past the attempt's
timeout under `FOR UPDATE SKIP LOCKED`) so only one process sends it at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orgs.config import OrgsSettings
from orgs.events import Actor, Target, record_event
from orgs.models import Organization, Webhook, WebhookDelivery, WebhookMessage
from orgs.webhooks.signing import signature_headers
from orgs.webhooks.ssrf import DestinationRefused, Resolver, check_destination, system_resolve
from platform_common.clock import utcnow
from platform_common.events import Event, StreamConsumer, stream_key
from platform_common.events.consumer import cancelling
from platform_common.events.relay import wait_or_timeout

logger = logging.getLogger(__name__)

GROUP = "webhooks"
OUTCOMES = ("success", "http_error", "timeout", "network_error", "refused")
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
LEASE_MARGIN_SECONDS = 30


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.deliveries = Counter(
            "webhook_deliveries",
            "Webhook delivery attempts, by outcome (success, http_error, timeout, "
            "network_error, refused: the destination is not allowed)",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.deliveries.labels(outcome=outcome)
        self.duration = Histogram(
            "webhook_delivery_duration_seconds",
            "Duration of one webhook delivery attempt (the HTTP request)",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "webhook_delivery_latency_seconds",
            "From the event to its successful delivery, retries included",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.disabled = Counter(
            "webhooks_disabled",
            "Webhook endpoints disabled after failing for the whole retry period",
            registry=registry,
        )


@dataclass(frozen=True)
class AttemptResult:
    outcome: str
    status_code: int | None
    error: str | None
    duration: float


def stream_position(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def webhook_body(event: Event, slug: str | None) -> str:
    body = {
        "id": str(event.id),
        "type": event.type,
        "occurred_at": event.model_dump(mode="json")["occurred_at"],
        "org": {"id": str(event.org_id), "slug": slug},
        "data": event.data,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class WebhookWorker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        settings: OrgsSettings,
        *,
        registry: CollectorRegistry | None = None,
        metrics: WebhookMetrics | None = None,
        resolve: Resolver = system_resolve,
        consumer_name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.metrics = metrics or WebhookMetrics(registry)
        self.resolve = resolve
        self.consumer = StreamConsumer(
            redis,
            stream_key("orgs"),
            group=GROUP,
            name=consumer_name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            handler=self.enqueue,
            claim_idle_seconds=settings.webhooks_claim_idle_seconds,
        )
        self.http = httpx.AsyncClient(
            timeout=settings.webhooks_timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        )
        self._wake = asyncio.Event()
        self._inflight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._consumer_task: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        for task in list(self._inflight.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.http.aclose()

    def wake(self) -> None:
        self._wake.set()

    # The consumer's side -------------------------------------------------------------

    async def enqueue(self, event: Event, entry_id: str) -> None:
        """One message per enabled endpoint of the org subscribed to the event's type."""
        if event.org_id is None:
            return
        ms, seq = stream_position(entry_id)
        async with self.sessionmaker() as db, db.begin():
            hooks = (
                await db.scalars(
                    select(Webhook).where(
                        Webhook.org_id == event.org_id, Webhook.disabled_at.is_(None)
                    )
                )
            ).all()
            matching = [h for h in hooks if "*" in h.events or event.type in h.events]
            if not matching:
                return
            slug = event.data.get("slug")
            if not isinstance(slug, str):
                slug = await db.scalar(
                    select(Organization.slug).where(Organization.id == event.org_id)
                )
            body = webhook_body(event, slug)
            now = utcnow()
            await db.execute(
                insert(WebhookMessage)
                .values(
                    [
                        {
                            "id": uuid.uuid4(),
                            "webhook_id": hook.id,
                            "org_id": event.org_id,
                            "event_id": event.id,
                            "event_type": event.type,
                            "payload": body,
                            "stream_ms": ms,
                            "stream_seq": seq,
                            "state": "pending",
                            "attempts": 0,
                            "created_at": now,
                            "next_attempt_at": now,
                        }
                        for hook in matching
                    ]
                )
                .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
            )
        self.wake()

    # The sender's side ---------------------------------------------------------------

    async def due_heads(self) -> list[WebhookMessage]:
        """The oldest pending message of each enabled endpoint, if it may be sent now."""
        oldest_unacked = await self.consumer.oldest_pending()
        barrier = stream_position(oldest_unacked) if oldest_unacked else None
        now = utcnow()
        async with self.sessionmaker() as db:
            heads = (
                await db.scalars(
                    select(WebhookMessage)
                    .join(Webhook, Webhook.id == WebhookMessage.webhook_id)
                    .where(WebhookMessage.state == "pending", Webhook.disabled_at.is_(None))
                    .order_by(
                        WebhookMessage.webhook_id,
                        WebhookMessage.stream_ms,
                        WebhookMessage.stream_seq,
                    )
                    .ext(distinct_on(WebhookMessage.webhook_id))
                )
            ).all()
        return [
            head
            for head in heads
            if head.next_attempt_at <= now
            and (barrier is None or (head.stream_ms, head.stream_seq) < barrier)
        ]

    async def send_due(self) -> int:
        """Start an attempt for every due head whose endpoint has none in flight."""
        started = 0
        for head in await self.due_heads():
            if head.webhook_id in self._inflight:
                continue
            if len(self._inflight) >= self.settings.webhooks_concurrency:
                break
            task = asyncio.create_task(self.attempt(head.id))
            self._inflight[head.webhook_id] = task
            task.add_done_callback(self._on_done(head.webhook_id))
            started += 1
        return started

    def _on_done(self, webhook_id: uuid.UUID) -> Callable[[asyncio.Task[None]], None]:
        def done(_: asyncio.Task[None]) -> None:
            self._inflight.pop(webhook_id, None)
            self.wake()

        return done

    async def drain(self) -> None:
        """Wait for the attempts in flight (tests)."""
        while self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def attempt(self, message_id: uuid.UUID) -> None:
        try:
            await self._attempt(message_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("webhooks: attempt for message %s failed", message_id)

    async def _attempt(self, message_id: uuid.UUID) -> None:
        settings = self.settings
        now = utcnow()
        async with self.sessionmaker() as db, db.begin():
            message = await db.scalar(
                select(WebhookMessage)
                .where(
                    WebhookMessage.id == message_id,
                    WebhookMessage.state == "pending",
                    WebhookMessage.next_attempt_at <= now,
                )
                .with_for_update(skip_locked=True)
            )
            if message is None:
                return  # another worker has it, or it is done
            webhook = await db.get(Webhook, message.webhook_id)
            if webhook is None or webhook.disabled_at is not None:
                return
            lease = settings.webhooks_timeout_seconds + LEASE_MARGIN_SECONDS
            message.next_attempt_at = now + timedelta(seconds=lease)
            message.attempts += 1
            attempt = message.attempts
            url, secret, payload = webhook.url, webhook.secret, message.payload
            event_id, event_type = message.event_id, message.event_type
            created_at, webhook_id = message.created_at, webhook.id

        result = await self.post(url, secret, str(event_id), payload)
        self.metrics.deliveries.labels(outcome=result.outcome).inc()
        if result.outcome != "refused":
            self.metrics.duration.observe(result.duration)

        finished = utcnow()
        async with self.sessionmaker() as db, db.begin():
            message = await db.get(WebhookMessage, message_id, with_for_update=True)
            if message is None:
                return  # the webhook was deleted meanwhile
            next_attempt_at = None
            if result.outcome == "success":
                message.state = "succeeded"
                message.finished_at = finished
                self.metrics.latency.observe(
                    max((finished - self._occurred_at(payload, created_at)).total_seconds(), 0)
                )
            else:
                delay = self.backoff(attempt)
                retry_at = finished + timedelta(seconds=delay)
                deadline = created_at + timedelta(seconds=settings.webhooks_retry_period_seconds)
                if retry_at > deadline:
                    message.state = "failed"
                    message.finished_at = finished
                    await self.disable(db, webhook_id, result.error or "failing")
                else:
                    message.next_attempt_at = retry_at
                    next_attempt_at = retry_at
            db.add(
                WebhookDelivery(
                    id=uuid.uuid4(),
                    webhook_id=webhook_id,
                    message_id=message_id,
                    event_id=event_id,
                    event_type=event_type,
                    attempt=attempt,
                    status_code=result.status_code,
                    error=(result.error or None) and (result.error or "")[:500],
                    duration_ms=round(result.duration * 1000, 3),
                    created_at=finished,
                    next_attempt_at=next_attempt_at,
                )
            )

    @staticmethod
    def _occurred_at(payload: str, fallback: datetime) -> datetime:
        try:
            raw = str(json.loads(payload)["occurred_at"]).replace("Z", "+00:00")
            return datetime.fromisoformat(raw)
        except (ValueError, KeyError, TypeError):
            return fallback

    def backoff(self, attempt: int) -> float:
        base = self.settings.webhooks_backoff_base_seconds
        exponential = base * float(2 ** min(attempt - 1, 30))
        delay = min(exponential, self.settings.webhooks_backoff_max_seconds)
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret

    async def disable(self, db: AsyncSession, webhook_id: uuid.UUID, reason: str) -> None:
        """Disable an endpoint that kept failing: its pending messages fail with it, and a
        `webhook.disabled` event says so (in this transaction)."""
        webhook = await db.get(Webhook, webhook_id, with_for_update=True)
        if webhook is None or webhook.disabled_at is not None:
            return
        now = utcnow()
        webhook.disabled_at = now
        webhook.disabled_reason = (
            f"Failing for {self.settings.webhooks_retry_period_seconds:g} s: {reason}"[:500]
        )
        await db.execute(
            update(WebhookMessage)
            .where(WebhookMessage.webhook_id == webhook_id, WebhookMessage.state == "pending")
            .values(state="failed", finished_at=now)
        )
        slug = await db.scalar(select(Organization.slug).where(Organization.id == webhook.org_id))
        record_event(
            db,
            type="webhook.disabled",
            actor=Actor.system(),
            org_id=webhook.org_id,
            target=Target(type="webhook", id=str(webhook.id)),
            data={
                "slug": slug,
                "webhook_id": str(webhook.id),
                "url": webhook.url,
                "reason": webhook.disabled_reason,
            },
        )
        self.metrics.disabled.inc()
        logger.warning("webhooks: endpoint %s disabled: %s", webhook.id, reason)

    async def post(self, url: str, secret: str, message_id: str, payload: str) -> AttemptResult:
        """One signed POST, to the address checked just now."""
        started = time.perf_counter()
        try:
            destination = await check_destination(
                url, allow_private=self.settings.webhooks_private_allowed, resolve=self.resolve
            )
        except DestinationRefused as exc:
            return AttemptResult("refused", None, f"refused: {exc}", 0.0)
        headers = {
            **signature_headers(secret, message_id, payload, utcnow()),
            "content-type": "application/json",
            "user-agent": "identity-platform-webhooks/1",
            "host": destination.host_header,
        }
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        try:
            response = await self.http.post(
                destination.pinned_url(),
                content=payload.encode(),
                headers=headers,
                extensions=extensions,
            )
        except httpx.TimeoutException:
            elapsed = time.perf_counter() - started
            return AttemptResult("timeout", None, f"timeout after {elapsed:.1f} s", elapsed)
        except httpx.HTTPError as exc:
            elapsed = time.perf_counter() - started
            return AttemptResult("network_error", None, f"{type(exc).__name__}: {exc}", elapsed)
        elapsed = time.perf_counter() - started
        if 200 <= response.status_code < 300:
            return AttemptResult("success", response.status_code, None, elapsed)
        return AttemptResult(
            "http_error", response.status_code, f"HTTP {response.status_code}", elapsed
        )

    # Running -------------------------------------------------------------------------

    async def run_once(self) -> None:
        """One consumer round and one sender round (tests drive the worker with this)."""
        await self.consumer.run_once()
        await self.send_due()

    async def run_sender(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancelling():
                    raise asyncio.CancelledError from None
                logger.exception("webhooks: sender round failed; retrying")
            await wait_or_timeout(self._wake, self.settings.webhooks_poll_seconds)

    async def stop(self, grace_seconds: float = 3.0) -> None:
        """Let the consumer finish its round (so that no entry it read stays pending until
        another replica claims it), within `grace_seconds`."""
        self.consumer.stop()
        if self._consumer_task is not None:
            await asyncio.wait([self._consumer_task], timeout=grace_seconds)

    async def run_forever(self) -> None:
        consumer = asyncio.create_task(self.consumer.run_forever())
        self._consumer_task = consumer
        try:
            await self.run_sender()
        finally:
            consumer.cancel()
            await asyncio.wait([consumer], timeout=5)
