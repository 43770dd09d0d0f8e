"""auth's events: `record_event(db, type=..., ...)` into auth's `events` table, in the
request's transaction (relayed to `events:auth`, served by `GET /api/v1/auth/audit-log`).

```python
record_event(db, type="user.deleted", actor=Actor.user(admin_id),
             target=Target(type="user", id=str(user_id)), data={"email": email})
```
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import EventRecord
from platform_common.events import Actor, Target
from platform_common.events import record_event as _record_event
from platform_common.events.model import MAX_ID

__all__ = ["Actor", "EventRecord", "Target", "record_event", "record_user_event"]


def record_event(
    session: AsyncSession,
    *,
    type: str,
    actor: Actor,
    target: Target,
    org_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> EventRecord:
    return _record_event(
        session, EventRecord, type=type, actor=actor, target=target, org_id=org_id, data=data
    )


def record_user_event(
    session: AsyncSession,
    type: str,
    user_id: uuid.UUID,
    *,
    actor: Actor | None = None,
    **data: Any,
) -> EventRecord:
    """An event about a user, by that user unless `actor` says otherwise."""
    return record_event(
        session,
        type=type,
        actor=actor or Actor.user(user_id),
        target=Target(type="user", id=str(user_id)),
        data={"user_id": str(user_id), **data},
    )


def bounded(value: str) -> str:
    """Client-supplied text (an email that failed to log in), cut to the stored bound."""
    return value[:MAX_ID]
