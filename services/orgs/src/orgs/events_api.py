"""The org audit log and the org's webhooks (under /api/v1/orgs/{slug}), admin+.

```
GET    /{slug}/audit-log?page&limit&type         the org's events, newest first (audit:read)
POST   /{slug}/webhooks {url, events}            201, with the secret shown once
GET    /{slug}/webhooks                          a page of webhooks (no secrets)
DELETE /{slug}/webhooks/{webhook_id}             204
GET    /{slug}/webhooks/{webhook_id}/deliveries  every delivery attempt, newest first
```
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from orgs.dependencies import OrgsSettingsDep, require_permission
from orgs.events import EventRecord
from orgs.service.organizations import OrgAccess
from orgs.service.webhooks import WebhookService
from orgs.webhook_schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead
from orgs.webhooks.ssrf import system_resolve
from platform_common.db import SessionDep
from platform_common.events import AuditFilter, Event, EventType, audit_page
from platform_common.pagination import Page, PageParamsDep

events_router = APIRouter(prefix="/api/v1/orgs", tags=["orgs", "audit log", "webhooks"])

CanReadAudit = Annotated[OrgAccess, Depends(require_permission("audit:read"))]
CanWriteWebhooks = Annotated[OrgAccess, Depends(require_permission("webhooks:write"))]


async def get_webhook_service(db: SessionDep, settings: OrgsSettingsDep) -> WebhookService:
    return WebhookService(db, settings, system_resolve)


WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "`webhook_not_found`: no such webhook in this org"}
}


@events_router.get(
    "/{slug}/audit-log",
    response_model=Page[Event],
    summary="The org's audit log (admin+)",
)
async def org_audit_log(
    access: CanReadAudit,
    db: SessionDep,
    page: PageParamsDep,
    type: Annotated[EventType | None, Query(description="Only events of this type")] = None,
) -> Any:
    """Every recorded change of the org (org, member, invitation and webhook events), newest
    first: `{id, type, occurred_at, actor, org_id, target, ip, user_agent, request_id,
    data}`. Events are kept for `ORGS_EVENTS_RETENTION_DAYS` (90 by default)."""
    items, total = await audit_page(
        db, EventRecord, AuditFilter(org_id=access.org.id, type=type), page
    )
    return Page[Event].build(items, total, page)


@events_router.post(
    "/{slug}/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    summary="Register a webhook (admin+)",
    responses={
        422: {
            "description": "`webhook_url_refused`: not http(s), unresolvable, or resolving "
            "to a private, loopback, link-local or reserved address; `validation_failed`: "
            "an unknown event type"
        }
    },
)
async def create_webhook(
    data: WebhookCreate, access: CanWriteWebhooks, webhooks: WebhookServiceDep
) -> Any:
    """Events of the org matching `events` (types, or `["*"]`) are POSTed to `url`, signed
    per the Standard Webhooks specification (`webhook-id`, `webhook-timestamp`,
    `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` keyed with
    `secret`), at least once, in order, retried with exponential back-off for
    `ORGS_WEBHOOKS_RETRY_PERIOD_SECONDS` (24 h); an endpoint failing that long is disabled.
    The `secret` is shown only in this answer."""
    webhook = await webhooks.create(access, data.url, list(data.events))
    return WebhookCreated(
        id=webhook.id,
        url=webhook.url,
        events=webhook.events,
        created_at=webhook.created_at,
        secret=webhook.secret,
    )


@events_router.get(
    "/{slug}/webhooks", response_model=Page[WebhookRead], summary="List webhooks (admin+)"
)
async def list_webhooks(
    access: CanWriteWebhooks, webhooks: WebhookServiceDep, page: PageParamsDep
) -> Any:
    """Newest first, without their secrets; a disabled one has `disabled_at` and why."""
    items, total = await webhooks.list_webhooks(access, page)
    return Page[WebhookRead].build([WebhookRead.model_validate(i) for i in items], total, page)


@events_router.delete(
    "/{slug}/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook (admin+)",
    responses=_NOT_FOUND,
)
async def delete_webhook(
    webhook_id: uuid.UUID, access: CanWriteWebhooks, webhooks: WebhookServiceDep
) -> None:
    """Its pending deliveries are dropped with it."""
    await webhooks.delete(access, webhook_id)


@events_router.get(
    "/{slug}/webhooks/{webhook_id}/deliveries",
    response_model=Page[DeliveryRead],
    summary="A webhook's delivery attempts (admin+)",
    responses=_NOT_FOUND,
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    access: CanWriteWebhooks,
    webhooks: WebhookServiceDep,
    page: PageParamsDep,
) -> Any:
    """Every attempt, newest first: `status_code` (null when no answer came), `error`
    (`HTTP 500`, `timeout after 10.0 s`, `refused: ...`) and `next_attempt_at` (null once it
    succeeded or was the last)."""
    items, total = await webhooks.list_deliveries(access, webhook_id, page)
    return Page[DeliveryRead].build([DeliveryRead.model_validate(i) for i in items], total, page)
