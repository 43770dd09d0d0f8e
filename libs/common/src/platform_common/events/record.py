"""`record_event`: one call, in the service's transaction, next to the change it describes.

```python
from orgs.events import record_event            # the service's own, bound to its table
record_event(db, type="member.added", actor=Actor.user(caller), org_id=org.id,
             target=Target(type="user", id=str(user_id)), data={"role": "admin"})
```

The client address, user agent and request id come from the current request
(platform_common.request_context); outside a request they are null. Once the transaction
commits (through the request's session: platform_common.db.on_commit) the relays of this
process are woken so the event reaches the stream at once; otherwise they find it at their
next poll.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from platform_common.clock import utcnow
from platform_common.db import on_commit
from platform_common.events.model import (
    EVENT_TYPES,
    MAX_ID,
    MAX_IP,
    MAX_REQUEST_ID,
    MAX_USER_AGENT,
    Actor,
    Target,
    truncate,
)
from platform_common.events.table import EventRecordMixin
from platform_common.request_context import current_client, current_request_id

RecordT = TypeVar("RecordT", bound=EventRecordMixin)

# The relays of this process, by event table: woken after a commit that recorded events.
_WAKERS: dict[type[Any], list[Callable[[], None]]] = {}
_WOKEN = "platform.events_woken"


def register_waker(model: type[Any], wake: Callable[[], None]) -> None:
    _WAKERS.setdefault(model, []).append(wake)


def unregister_waker(model: type[Any], wake: Callable[[], None]) -> None:
    wakers = _WAKERS.get(model, [])
    if wake in wakers:
        wakers.remove(wake)


def wake_relays(model: type[Any]) -> None:
    """Wake this process's relays of `model`'s table (after a commit made outside a
    request's session, which wakes them by itself)."""
    for waker in list(_WAKERS.get(model, [])):
        waker()


def record_event(
    session: AsyncSession,
    model: type[RecordT],
    *,
    type: str,
    actor: Actor,
    target: Target,
    org_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> RecordT:
    """Add an event row to `session` (flushed with the change, committed with it)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    ip, user_agent = current_client()
    factory: Any = model  # a mapped subclass of the mixin: its constructor takes the columns
    record: RecordT = factory(
        id=uuid.uuid4(),
        type=type,
        occurred_at=utcnow(),
        actor_id=truncate(actor.id, MAX_ID),
        actor_kind=actor.kind,
        org_id=org_id,
        target_type=target.type,
        target_id=truncate(target.id, MAX_ID),
        ip=truncate(ip, MAX_IP),
        user_agent=truncate(user_agent, MAX_USER_AGENT),
        request_id=truncate(current_request_id(), MAX_REQUEST_ID),
        data=data or {},
        relayed_at=None,
    )
    session.add(record)
    if not session.info.get(_WOKEN):
        session.info[_WOKEN] = True

        async def wake() -> None:
            session.info.pop(_WOKEN, None)
            for waker in list(_WAKERS.get(model, [])):
                waker()

        on_commit(session, wake)
    return record
