"""Audit-log pages: a service's events, filtered, newest first, in the standard page shape.

The order is `occurred_at DESC, id DESC`, which the table's indexes serve directly for an
org (`(org_id, occurred_at DESC, id DESC)`), a type or a user.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from platform_common.events.model import Event
from platform_common.events.table import EventRecordMixin
from platform_common.pagination import PageParams
from platform_common.repository import Repository

EventRead = Event


@dataclass(frozen=True)
class AuditFilter:
    org_id: uuid.UUID | None = None
    type: str | None = None
    # Events about this user or by this user (target, actor, or `data.user_id`).
    user_id: str | None = None


async def audit_page(
    session: AsyncSession,
    model: type[EventRecordMixin],
    where: AuditFilter,
    page: PageParams,
) -> tuple[list[Event], int]:
    m: Any = model
    statement = select(m)
    if where.org_id is not None:
        statement = statement.where(m.org_id == where.org_id)
    if where.type is not None:
        statement = statement.where(m.type == where.type)
    if where.user_id is not None:
        # The key as a literal, so that the planner matches the expression index.
        about = m.data.op("->>")(literal_column("'user_id'"))
        statement = statement.where(
            or_(m.target_id == where.user_id, m.actor_id == where.user_id, about == where.user_id)
        )
    statement = statement.order_by(m.occurred_at.desc(), m.id.desc())
    repository: Repository[Any] = Repository(session)
    rows, total = await repository.paginate(statement, offset=page.offset, limit=page.limit)
    return [row.to_event() for row in rows], total
