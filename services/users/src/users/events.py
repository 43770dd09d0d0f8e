"""users' events: `record_user_event(db, type, user_id, ...)` into users' `events` table, in
the request's transaction, relayed to the Redis Stream `events:users`.

users records what it owns: a profile's name changed (`user.updated`) and a profile deleted
when auth's deletion arrives (`user.deleted`, by the system). Registration, disabling and the
rest are auth's events, recorded there.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from platform_common.events import Actor, Target, record_event
from users.models import EventRecord

__all__ = ["Actor", "EventRecord", "record_user_event"]


def record_user_event(
    session: AsyncSession,
    type: str,
    user_id: uuid.UUID,
    *,
    actor: Actor | None = None,
    **data: Any,
) -> EventRecord:
    """An event about a user's profile, by that user unless `actor` says otherwise."""
    return record_event(
        session,
        EventRecord,
        type=type,
        actor=actor or Actor.user(user_id),
        target=Target(type="user", id=str(user_id)),
        data={"user_id": str(user_id), **data},
    )
