"""The orgs service's app factory (`uvicorn --factory orgs.app:create_app`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from orgs.api import internal_router, invitations_router, members_router, router
from orgs.config import OrgsSettings, get_settings
from orgs.events_api import events_router
from orgs.live import live_resources
from orgs.live_api import router as live_router
from orgs.models import EventRecord, MailOutbox
from orgs.webhooks.worker import WebhookWorker
from platform_common.app import create_service_app
from platform_common.events import EventRelay
from platform_common.mail import Mailer, MailSender, MailTemplates
from platform_common.state import platform_state

DESCRIPTION = """
Organizations, their members and invitations.

Roles, highest first: `owner`, `admin`, `member`, `viewer`. A platform admin may do anything
(acting as an owner, even in orgs it is not a member of). A caller who is not a member of an
org gets 404 for it, never 403; a member whose role is too low gets 403 `forbidden`. An org
never ends up without an owner (409 `last_owner`), whatever the interleaving of requests.

Every endpoint takes a user's access token, an org-scoped token (`POST /api/v1/auth/org-token`;
one for another org gets 403 `org_mismatch`) or a personal access token. What a caller may do
in an org is a permission of its role (one table, `platform_common.permissions`), narrowed
by an org-scoped token's permissions or a personal access token's scopes; each operation's
description ends with what it takes (also `x-accepted-tokens`).

Members' names and emails come from the users service over HTTP with the caller's token;
when users cannot answer, the endpoints that need it answer 503 `dependency_unavailable`
or 504 `dependency_timeout`. Errors are `application/problem+json` (RFC 9457).

`WebSocket /api/v1/orgs/{slug}/live` (not listed below: OpenAPI describes HTTP only) sends
each event of the org as a JSON text message to members (viewer and up), authenticated by
the `Authorization` header or a first message `{"token": "..."}` within 5 s; it closes
4401 (no valid token, expired, revoked), 4403 (membership ended, token not allowed),
4404 (not a member, unknown org), 1008 (client too slow), 1011 (a dependency failed),
1001 (the server is stopping).
"""


def create_app(
    settings: OrgsSettings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    run_mail_sender: bool = True,
) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        # Invitation mails: queued with the invitation, sent by this process' sender.
        assert settings is not None
        platform = platform_state(app)
        sender = MailSender(
            platform.sessionmaker, MailOutbox, settings, registry=platform.metrics_registry
        )
        app.state.mail_sender = sender
        app.state.mailer = Mailer(
            MailOutbox, MailTemplates(settings.mail_link_base_url), sender.wake
        )
        # Events: the relay (events table -> events:orgs) and the webhook delivery worker.
        relay = EventRelay.for_service(platform, EventRecord)
        worker = WebhookWorker(
            platform.sessionmaker,
            platform.redis,
            settings,
            registry=platform.metrics_registry,
            transport=(transports or {}).get("webhooks"),
        )
        app.state.event_relay, app.state.webhook_worker = relay, worker
        tasks = []
        if run_mail_sender:
            tasks.append(asyncio.create_task(sender.run_forever()))
        if settings.events_relay_enabled:
            tasks.append(asyncio.create_task(relay.run_forever()))
        if settings.webhooks_worker_enabled:
            tasks.append(asyncio.create_task(worker.run_forever()))
        try:
            async with live_resources(app):
                yield
        finally:
            await worker.stop()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            await worker.aclose()
            await sender.aclose()

    app = create_service_app(
        settings,
        title="orgs",
        description=DESCRIPTION,
        routers=[router, members_router, invitations_router, events_router],
        internal_routers=[internal_router],
        peers={"users": settings.users_url},
        resources=resources,
        transports=transports,
    )
    # Not among `routers`: the per-request rate limit and OpenAPI are HTTP's; the socket
    # authenticates itself (orgs.live_api).
    app.include_router(live_router)
    return app
