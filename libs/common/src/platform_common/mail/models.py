"""The mail outbox: one row a message, written in the transaction of the change that causes
it. The rendered parts are kept only until the message is sent (they may hold a token), then
cleared; the row stays as the record of what was sent to whom and when."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from platform_common.clock import utcnow


class MailOutboxMixin:
    """Mapped by each service into its own metadata:
    `class MailOutbox(MailOutboxMixin, Base): __tablename__ = "mail_outbox"`."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    # Given up: the server refused the message for good `mail_max_rejections` times.
    failed_at: Mapped[datetime | None]

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[object, ...]:
        from sqlalchemy import Index, text

        return (
            Index(
                f"ix_{cls.__tablename__}_due",  # type: ignore[attr-defined]
                "next_attempt_at",
                postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
            ),
        )
