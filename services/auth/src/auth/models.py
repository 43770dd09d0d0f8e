"""auth's tables: accounts, sessions, refresh tokens, personal access tokens and the outbox
of user events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from platform_common.clock import utcnow
from platform_common.events import EventRecordMixin
from platform_common.mail import MailOutboxMixin
from platform_common.models import (
    NAMING_CONVENTION,
    TYPE_ANNOTATION_MAP,
    Timestamps,
    UUIDPrimaryKey,
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = TYPE_ANNOTATION_MAP


class User(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "users"

    # Stored lower-cased, so the plain unique index makes uniqueness case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(default=True)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when the account is deleted (DELETE /me): the row stays as a tombstone, its email,
    # name and password scrubbed, so its ended sessions remain revocation's durable record.
    deleted_at: Mapped[datetime | None]
    # Proven by a mailed token (verification, reset or email change); existing rows: false.
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=text("false"))

    sessions: Mapped[list[UserSession]] = relationship(back_populates="user", lazy="raise")


class UserSession(UUIDPrimaryKey, Base):
    """A login: what a refresh token belongs to and what an access token's `sid` names."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id_ended_at", "user_id", "ended_at"),
        # Rebuilding the revocation keys reads the sessions ended in the last minutes.
        Index("ix_sessions_ended_at", "ended_at", postgresql_where=text("ended_at IS NOT NULL")),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    client_address: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(back_populates="sessions", lazy="raise")


class RefreshToken(UUIDPrimaryKey, Base):
    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the opaque token: the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]


class PersonalAccessToken(UUIDPrimaryKey, Base):
    """A long-lived bearer secret (`ipt_...`) of a user, narrowed to its scopes."""

    __tablename__ = "personal_access_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The scopes it is narrowed to (platform_common.permissions.PAT_SCOPES); null: all.
    scopes: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class OutboxEvent(UUIDPrimaryKey, Base):
    """User events written in the same transaction as the change, delivered later to their
    destination service (users, or orgs for deletions).

    See docs/architecture.md: registration never depends on users being up, and no
    committed event is lost; delivery is at-least-once and users applies events idempotently.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_pending", "delivered_at", "next_attempt_at"),)

    event_type: Mapped[str] = mapped_column(String(64))
    # The service the event is for ("users", "orgs"): each destination is delivered and
    # backs off on its own, so one service being down does not hold the others' events.
    destination: Mapped[str] = mapped_column(String(32), default="users", server_default="users")
    aggregate_id: Mapped[uuid.UUID]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)


class AccountToken(UUIDPrimaryKey, Base):
    """A mailed single-use token (auth.service.account_mail): `kind` says what it may do, so
    a verification token never resets a password. Only its SHA-256 is stored."""

    __tablename__ = "account_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))  # verify_email | reset_password | change_email
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The address an email change moves to (change_email only).
    new_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class MailOutbox(MailOutboxMixin, Base):
    """Mails waiting to be sent (platform_common.mail)."""

    __tablename__ = "mail_outbox"


class EventRecord(EventRecordMixin, Base):
    """auth's security events: relayed to `events:auth`, served as the auth audit log."""

    __tablename__ = "events"
