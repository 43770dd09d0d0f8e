"""orgs' tables: organizations, their memberships and pending invitations, and a tombstone
per deleted account.

The database enforces what must hold under concurrency: one membership per (org, user)
(a unique constraint, so two simultaneous adds cannot both succeed), valid role names (a
CHECK constraint), and single-use invitation tokens (stored as unique SHA-256 hashes).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orgs.roles import ROLE_VALUES
from platform_common.clock import utcnow
from platform_common.events import EventRecordMixin
from platform_common.mail import MailOutboxMixin
from platform_common.models import (
    NAMING_CONVENTION,
    TYPE_ANNOTATION_MAP,
    Timestamps,
    UUIDPrimaryKey,
)

_ROLE_CHECK = "role IN ({})".format(", ".join(f"'{role}'" for role in ROLE_VALUES))


class Base(DeclarativeBase):
    """orgs' own base: its metadata holds orgs' tables only."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = TYPE_ANNOTATION_MAP


class Organization(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)


class Membership(UUIDPrimaryKey, Base):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("org_id", "user_id"),
        CheckConstraint(_ROLE_CHECK, name="role_valid"),
        # "Which orgs is this user in" (GET /orgs, and every slug -> role resolution).
        Index("ix_memberships_user_id_org_id", "user_id", "org_id"),
    )

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID]
    role: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invitation(UUIDPrimaryKey, Base):
    __tablename__ = "invitations"
    __table_args__ = (
        CheckConstraint(_ROLE_CHECK, name="role_valid"),
        Index("ix_invitations_org_id_created_at", "org_id", "created_at"),
    )

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # Stored lower-cased; matched case-insensitively against the accepting caller's email.
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[uuid.UUID | None]
    revoked_at: Mapped[datetime | None]


class DeletedUser(Base):
    """An account deleted at auth: its memberships are gone and none may be created again
    (see `service.account_deletion`)."""

    __tablename__ = "deleted_users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    deleted_at: Mapped[datetime]


class MailOutbox(MailOutboxMixin, Base):
    """Mails waiting to be sent (platform_common.mail): invitations."""

    __tablename__ = "mail_outbox"


class EventRecord(EventRecordMixin, Base):
    """orgs' events: the outbox relayed to `events:orgs` and the orgs' audit log."""

    __tablename__ = "events"


class Webhook(UUIDPrimaryKey, Base):
    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_org_id_created_at", "org_id", "created_at"),)

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    # Event types, or ["*"] for every type.
    events: Mapped[list[str]] = mapped_column(JSONB)
    # `whsec_` + base64: the signing key, needed in the clear to sign each delivery.
    secret: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))


class WebhookMessage(UUIDPrimaryKey, Base):
    """One event for one endpoint: the delivery queue. Sent in the stream's order per
    endpoint (`stream_ms`, `stream_seq`: the entry's id on `events:orgs`)."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index(
            "ix_webhook_messages_pending",
            "webhook_id",
            "stream_ms",
            "stream_seq",
            postgresql_where=text("state = 'pending'"),
        ),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    org_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(64))
    # The exact body sent (and signed) on every attempt.
    payload: Mapped[str] = mapped_column(Text)
    stream_ms: Mapped[int] = mapped_column(BigInteger)
    stream_seq: Mapped[int] = mapped_column(BigInteger)
    # pending | succeeded | failed (given up, or the endpoint was disabled or deleted)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class WebhookDelivery(UUIDPrimaryKey, Base):
    """One attempt to deliver a message (what `GET .../deliveries` lists)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the next attempt is due; null when this one succeeded or was the last.
    next_attempt_at: Mapped[datetime | None]
