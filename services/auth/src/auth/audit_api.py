"""`GET /api/v1/auth/audit-log`: auth's security events, for platform admins."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from auth.models import EventRecord
from platform_common.db import SessionDep
from platform_common.events import AuditFilter, Event, EventType, audit_page
from platform_common.pagination import Page, PageParamsDep
from platform_common.security import RequireAdmin

audit_router = APIRouter(prefix="/api/v1/auth", tags=["audit log"])


@audit_router.get(
    "/audit-log",
    response_model=Page[Event],
    summary="Security events (platform admins)",
    responses={403: {"description": "`forbidden`: not a platform admin"}},
)
async def auth_audit_log(
    _: RequireAdmin,
    db: SessionDep,
    page: PageParamsDep,
    type: Annotated[EventType | None, Query(description="Only events of this type")] = None,
    user_id: Annotated[
        uuid.UUID | None, Query(description="Only events about or by this user")
    ] = None,
) -> Any:
    """Newest first: registrations, logins (`login.succeeded`, `login.failed` with the
    email tried, cut to 320 characters), ended sessions, password changes, accounts
    disabled and enabled, personal access tokens created and deleted; each with the
    client's address, user agent and request id. Kept `AUTH_EVENTS_RETENTION_DAYS` (90)."""
    where = AuditFilter(type=type, user_id=str(user_id) if user_id else None)
    items, total = await audit_page(db, EventRecord, where, page)
    return Page[Event].build(items, total, page)
