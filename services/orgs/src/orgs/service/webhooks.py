"""Webhooks of an org: registering (the URL checked against private destinations, a
`whsec_` secret shown once), listing, deleting, and the attempts of their deliveries.
Each change records its event in the request's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orgs.config import OrgsSettings
from orgs.errors import WebhookNotFound, WebhookUrlRefused
from orgs.events import Target, record_org_event
from orgs.models import Webhook, WebhookDelivery
from orgs.service.organizations import OrgAccess
from orgs.webhooks.signing import new_secret
from orgs.webhooks.ssrf import DestinationRefused, Resolver, check_destination, parse_url
from platform_common.clock import utcnow
from platform_common.pagination import PageParams
from platform_common.repository import Repository


class WebhookService:
    def __init__(self, db: AsyncSession, settings: OrgsSettings, resolve: Resolver) -> None:
        self.db = db
        self.settings = settings
        self.resolve = resolve
        self.webhooks: Repository[Webhook] = Repository(db)
        self.deliveries: Repository[WebhookDelivery] = Repository(db)

    async def create(self, access: OrgAccess, url: str, events: list[str]) -> Webhook:
        try:
            if self.settings.webhooks_private_allowed:
                parse_url(url)
            else:
                await check_destination(url, allow_private=False, resolve=self.resolve)
        except DestinationRefused as exc:
            raise WebhookUrlRefused(str(exc)) from exc
        subscribed = ["*"] if "*" in events else list(dict.fromkeys(events))
        webhook = Webhook(
            id=uuid.uuid4(),
            org_id=access.org.id,
            url=url,
            events=subscribed,
            secret=new_secret(),
            created_by=access.principal.user_id if not access.principal.is_service else None,
            created_at=utcnow(),
        )
        self.db.add(webhook)
        await self.db.flush()
        record_org_event(
            self.db,
            "webhook.created",
            access.principal,
            access.org,
            _target(webhook),
            webhook_id=str(webhook.id),
            url=url,
            events=subscribed,
        )
        return webhook

    async def list_webhooks(self, access: OrgAccess, page: PageParams) -> tuple[list[Webhook], int]:
        statement = (
            select(Webhook)
            .where(Webhook.org_id == access.org.id)
            .order_by(Webhook.created_at.desc(), Webhook.id.desc())
        )
        return await self.webhooks.paginate(statement, offset=page.offset, limit=page.limit)

    async def get(self, access: OrgAccess, webhook_id: uuid.UUID) -> Webhook:
        webhook = await self.webhooks.one_or_none(
            select(Webhook).where(Webhook.org_id == access.org.id, Webhook.id == webhook_id)
        )
        if webhook is None:
            raise WebhookNotFound
        return webhook

    async def delete(self, access: OrgAccess, webhook_id: uuid.UUID) -> None:
        webhook = await self.get(access, webhook_id)
        await self.db.delete(webhook)
        record_org_event(
            self.db,
            "webhook.deleted",
            access.principal,
            access.org,
            _target(webhook),
            webhook_id=str(webhook.id),
            url=webhook.url,
        )

    async def list_deliveries(
        self, access: OrgAccess, webhook_id: uuid.UUID, page: PageParams
    ) -> tuple[list[WebhookDelivery], int]:
        await self.get(access, webhook_id)
        statement = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.attempt.desc())
        )
        return await self.deliveries.paginate(statement, offset=page.offset, limit=page.limit)


def _target(webhook: Webhook) -> Target:
    return Target(type="webhook", id=str(webhook.id))
