"""users' tables: one profile per registered account, a tombstone per deleted one, and the
events the service records (its outbox to `events:users`).

The row's id is the account's id in auth. auth owns email, role and activation (delivered as
versioned events, see `service.apply_event`); users owns the name once the profile exists.

Search (`q`) is a substring match on lower(name) and lower(email); two trigram GIN indexes
on those expressions keep it fast at any size.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, MetaData, String, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from platform_common.events import EventRecordMixin
from platform_common.models import NAMING_CONVENTION, TYPE_ANNOTATION_MAP, Timestamps


class Base(DeclarativeBase):
    """users' own base: its metadata holds users' tables only."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = TYPE_ANNOTATION_MAP


def _lower_trigram_index(field: str, column: Mapped[str]) -> Index:
    """A trigram GIN index on lower(column): what `LIKE '%q%'` on lower(column) can use."""
    label = f"lower_{field}"
    return Index(
        f"ix_profiles_{field}_trgm",
        func.lower(column).label(label),
        postgresql_using="gin",
        postgresql_ops={label: "gin_trgm_ops"},
    )


class Profile(Timestamps, Base):
    __tablename__ = "profiles"

    # auth's user id: never generated here.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(default=True)
    # auth's: the address was proven by a mailed token (events carry it).
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # The `version` (microseconds) of the newest auth event applied; 0 before any event.
    source_version: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        # The admin list: ORDER BY created_at, id, optionally filtered by is_active.
        Index("ix_profiles_created_at_id", "created_at", "id"),
        Index("ix_profiles_is_active_created_at_id", "is_active", "created_at", "id"),
        _lower_trigram_index("name", name),
        _lower_trigram_index("email", email),
    )


class DeletedUser(Base):
    """An account deleted at auth: its profile is gone, and nothing may create it again (a
    late event, a still-valid token's first /me). See `service.delete_account`."""

    __tablename__ = "deleted_users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    deleted_at: Mapped[datetime]


class EventRecord(EventRecordMixin, Base):
    """users' events (a profile changed): relayed to `events:users` (platform_common.events)."""

    __tablename__ = "events"
