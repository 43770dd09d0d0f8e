"""The mail sender: a background task in every process of a service that sends mail.

Each round claims one due row at a time with `FOR UPDATE SKIP LOCKED` (so two workers, of
this pod or another, never hold the same row), hands it to the SMTP server and marks it sent
in the same transaction, once the server has accepted it. A row is thus sent once in normal
operation; only a crash between the server's acceptance and the commit can send it again
(the Message-ID, derived from the row's id, is then the same). Nothing is lost while the
server is down: the row stays queued and is retried with exponential back-off and jitter
(capped at `mail_max_backoff_seconds`). A message the server refuses for good (a 5xx for its
recipient or its content, not for the login or the sender) is given up after
`mail_max_rejections` attempts.

Metrics (multiprocess-safe):

```
mail_sent_total                           messages the SMTP server accepted
mail_failed_total{reason}                 failed attempts: unreachable | temporary |
                                          rejected | error
mail_queued_oldest_age_seconds            age of the oldest unsent message (0 when none)
mail_queued                               messages waiting to be sent
```
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from platform_common.clock import utcnow
from platform_common.mail.models import MailOutboxMixin
from platform_common.mail.settings import MailSettings, SmtpTarget

logger = logging.getLogger(__name__)

FAILURE_REASONS = ("unreachable", "temporary", "rejected", "error")


class SmtpFailure(Exception):
    def __init__(self, reason: str, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.permanent = permanent


def build_message(row: MailOutboxMixin, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = formatdate(row.created_at.timestamp(), usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    # From the row's id: a resend after a crash is recognisably the same message.
    message["Message-ID"] = f"<{row.id.hex}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(row.text_body or "")
    message.add_alternative(row.html_body or "", subtype="html")
    return message


class SmtpTransport:
    """One SMTP connection per round of sending (aiosmtplib)."""

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self._client: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        t = self.target
        client = aiosmtplib.SMTP(
            hostname=t.host,
            port=t.port,
            timeout=t.timeout,
            use_tls=t.tls == "tls",
            # None: STARTTLS when the server offers it; True: required; False: never.
            start_tls={"auto": None, "starttls": True, "tls": False, "none": False}[t.tls],
            tls_context=(
                ssl.create_default_context(cafile=str(t.ca_file) if t.ca_file else None)
                if t.tls != "none"
                else None
            ),
            username=t.username,
            password=t.password,
        )
        await client.connect()
        return client

    async def send(self, message: EmailMessage) -> None:
        try:
            if self._client is None or not self._client.is_connected:
                self._client = await self._connect()
            await self._client.send_message(message)
        except aiosmtplib.SMTPResponseException as exc:
            # Given up only when the server refuses this message (its content, 5xx after
            # DATA); a refused login or sender is the configuration's fault: retried until
            # it is fixed, so that no mail is lost to it.
            permanent = isinstance(exc, aiosmtplib.SMTPDataError) and 500 <= exc.code < 600
            await self.close()
            raise SmtpFailure(
                "rejected" if 500 <= exc.code < 600 else "temporary",
                f"{exc.code} {exc.message}",
                permanent=permanent,
            ) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # One recipient a message: refused for good (5xx) or for now (4xx).
            permanent = all(500 <= r.code < 600 for r in exc.recipients)
            await self.close()
            raise SmtpFailure(
                "rejected" if permanent else "temporary",
                "; ".join(f"{r.code} {r.message}" for r in exc.recipients),
                permanent=permanent,
            ) from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            await self.close()
            raise SmtpFailure("unreachable", str(exc) or type(exc).__name__) from exc
        except (aiosmtplib.SMTPException, TimeoutError) as exc:
            await self.close()
            raise SmtpFailure("unreachable", str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            with contextlib.suppress(Exception):
                await client.quit()
            if client.is_connected:
                client.close()


class MailSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        model: type[MailOutboxMixin],
        settings: MailSettings,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.sent = Counter("mail_sent", "Mails the SMTP server accepted", registry=registry)
        self.failed = Counter(
            "mail_failed",
            "Failed attempts to send a mail, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in FAILURE_REASONS:
            self.failed.labels(reason=reason)
        self.oldest_age = Gauge(
            "mail_queued_oldest_age_seconds",
            "Age of the oldest mail not yet sent (0 when none waits)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.queued = Gauge(
            "mail_queued",
            "Mails waiting in the outbox to be sent",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.sessionmaker = sessionmaker
        self.model = model
        self.settings = settings
        target = settings.smtp_target()
        self.transport: SmtpTransport | None = SmtpTransport(target) if target else None
        self.poll_seconds = settings.mail_poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """Exponential (2 s, 4 s, 8 s, ...) with full jitter in its upper half, capped."""
        ceiling = min(2.0 ** min(attempts, 20), self.settings.mail_max_backoff_seconds)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not a secret

    async def run_once(self) -> int:
        """Send what is due; the number of mails sent."""
        if self.transport is None:
            await self.measure_backlog()
            return 0
        sent = 0
        try:
            while await self._send_next():
                sent += 1
        finally:
            await self.transport.close()
            await self.measure_backlog()
        return sent

    async def _send_next(self) -> bool:
        """Claim and send one due mail; False when none is due or the server is failing."""
        assert self.transport is not None
        model = self.model
        async with self.sessionmaker() as db, db.begin():
            now = utcnow()
            row = await db.scalar(
                select(model)
                .where(
                    model.sent_at.is_(None),
                    model.failed_at.is_(None),
                    model.next_attempt_at <= now,
                )
                .order_by(model.next_attempt_at, model.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return False
            try:
                await self.transport.send(build_message(row, self.settings.mail_from))
            except SmtpFailure as exc:
                self.failed.labels(reason=exc.reason).inc()
                row.attempts += 1
                row.last_error = str(exc)[:1000]
                if exc.permanent and row.attempts >= self.settings.mail_max_rejections:
                    row.failed_at = now
                    logger.error(
                        "mail %s (%s) given up after %d attempts: %s",
                        row.id,
                        row.template,
                        row.attempts,
                        exc,
                    )
                    return True
                row.next_attempt_at = now + timedelta(seconds=self.backoff(row.attempts))
                logger.warning(
                    "mail %s (%s) not sent (attempt %d, %s): %s",
                    row.id,
                    row.template,
                    row.attempts,
                    exc.reason,
                    exc,
                )
                # Unless the server refused this message only, the next due row would fail
                # the same way: wait for the next round.
                return exc.permanent
            except Exception as exc:
                self.failed.labels(reason="error").inc()
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                row.next_attempt_at = now + timedelta(seconds=self.backoff(row.attempts))
                logger.exception("mail %s (%s) could not be sent", row.id, row.template)
                return False
            row.sent_at = utcnow()
            row.last_error = None
            # The parts may hold a token: kept only as long as the mail waits.
            row.text_body = None
            row.html_body = None
            self.sent.inc()
            return True

    async def measure_backlog(self) -> None:
        model = self.model
        async with self.sessionmaker() as db:
            count, oldest = (
                await db.execute(
                    select(func.count(), func.min(model.created_at)).where(
                        model.sent_at.is_(None), model.failed_at.is_(None)
                    )
                )
            ).one()
        self.queued.set(int(count))
        self.oldest_age.set((utcnow() - oldest).total_seconds() if oldest else 0)

    async def run_forever(self) -> None:
        if self.transport is None:
            logger.warning("no SMTP server configured (*_SMTP_URL): mail stays queued")
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("mail sender round failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()

    async def aclose(self) -> None:
        if self.transport is not None:
            await self.transport.close()
