"""orgs' events: `record_event(db, type=..., ...)` into orgs' `events` table (the outbox the
relay publishes to `events:orgs`, and the org audit log). One line for any service module:

```python
record_event(self.db, type="member.added", actor=Actor.user(caller_id), org_id=org.id,
             target=Target(type="user", id=str(user_id)), data={"role": "admin"})
```
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orgs.models import EventRecord, Organization
from platform_common.events import Actor, Target
from platform_common.events import record_event as _record_event
from platform_common.security import Principal

__all__ = ["Actor", "EventRecord", "Target", "actor_of", "record_event", "record_org_event"]


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


def actor_of(principal: Principal) -> Actor:
    if principal.is_service:
        return Actor.service(principal.subject)
    return Actor.user(principal.user_id)


def record_org_event(
    session: AsyncSession,
    type: str,
    principal: Principal,
    org: Organization,
    target: Target,
    **data: Any,
) -> EventRecord:
    """An event about `org`, by `principal`; `data` always carries the org's slug."""
    return record_event(
        session,
        type=type,
        actor=actor_of(principal),
        org_id=org.id,
        target=target,
        data={"slug": org.slug, **data},
    )
