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
from orgs.models import EventRecord
from orgs.webhooks.worker import WebhookWorker
from platform_common.app import create_service_app
from platform_common.events import EventRelay
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
"""


def create_app(
    settings: OrgsSettings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        # Events: the relay (events table -> events:orgs) and the webhook delivery worker.
        assert settings is not None
        platform = platform_state(app)
        relay = EventRelay(
            platform.sessionmaker,
            platform.redis,
            EventRecord,
            service="orgs",
            stream_maxlen=settings.events_stream_maxlen,
            poll_seconds=settings.events_poll_seconds,
            retention_days=settings.events_retention_days,
            purge_interval_seconds=settings.events_purge_interval_seconds,
            registry=platform.metrics_registry,
        )
        worker = WebhookWorker(
            platform.sessionmaker,
            platform.redis,
            settings,
            registry=platform.metrics_registry,
            transport=(transports or {}).get("webhooks"),
        )
        app.state.event_relay, app.state.webhook_worker = relay, worker
        tasks = []
        if settings.events_relay_enabled:
            tasks.append(asyncio.create_task(relay.run_forever()))
        if settings.webhooks_worker_enabled:
            tasks.append(asyncio.create_task(worker.run_forever()))
        try:
            yield
        finally:
            await worker.stop()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            await worker.aclose()

    return create_service_app(
        settings,
        title="orgs",
        description=DESCRIPTION,
        routers=[router, members_router, invitations_router, events_router],
        internal_routers=[internal_router],
        peers={"users": settings.users_url},
        resources=resources,
        transports=transports,
    )
