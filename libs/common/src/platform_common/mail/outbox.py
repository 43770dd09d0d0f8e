"""Queueing mail: render now, write the row in the caller's transaction, send later."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from platform_common.clock import utcnow
from platform_common.db import on_commit
from platform_common.mail.models import MailOutboxMixin
from platform_common.mail.templates import MailTemplates


class Mailer:
    """`await mailer.enqueue(db, to, "verify_email", link=mailer.link(path, token), ...)`:
    the message exists exactly when the change that causes it commits. Once the request's
    transaction commits, `wake` (the sender's) is called so that it goes out at once rather
    than at the next poll."""

    def __init__(
        self,
        model: type[MailOutboxMixin],
        templates: MailTemplates,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.model = model
        self.templates = templates
        self.wake = wake

    def link(self, path: str, token: str) -> str:
        return self.templates.link(path, token)

    async def enqueue(
        self, db: AsyncSession, to: str, template: str, /, **context: Any
    ) -> MailOutboxMixin:
        rendered = self.templates.render(template, **context)
        now = utcnow()
        row = self.model()
        row.template = template
        row.to_address = to
        row.subject = rendered.subject[:300]
        row.text_body = rendered.text
        row.html_body = rendered.html
        row.created_at = row.next_attempt_at = now
        row.attempts = 0
        db.add(row)
        await db.flush()
        if self.wake is not None:
            wake = self.wake

            async def woken() -> None:
                wake()

            on_commit(db, woken)
        return row

    async def discard_unsent(self, db: AsyncSession, to: str) -> int:
        """Drop the mails to `to` not yet sent (an account deleted: nothing more goes to its
        address, and the links they carry lead nowhere); in the caller's transaction."""
        model: Any = self.model
        result = await db.execute(
            delete(model).where(model.to_address == to, model.sent_at.is_(None)).returning(model.id)
        )
        return len(result.all())
