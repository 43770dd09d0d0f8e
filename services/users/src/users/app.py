"""The users service's app factory (`uvicorn --factory users.app:create_app`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from platform_common.app import create_service_app
from platform_common.events import EventRelay
from platform_common.state import platform_state
from users.api import internal_router, router
from users.config import UsersSettings, get_settings
from users.models import EventRecord

DESCRIPTION = """
User profiles: the caller's own (`/me`, with the organizations it belongs to), lookups of
names and emails by id for other services, and the platform admins' search.

A profile exists for every account registered with auth: auth delivers its user events
here (registration, disabling, enabling), and a user whose event is still on its way gets
the profile created from the access token's claims on the first `/me`. auth owns email,
role and activation; this service owns the name.

`GET /me` degrades when orgs is unavailable: 200 with `"organizations": null` and a
`Warning` header, rather than an error. Errors are `application/problem+json` (RFC 9457).
"""


def create_app(
    settings: UsersSettings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        # Profile events: users' events table -> events:users (platform_common.events).
        assert settings is not None
        platform = platform_state(app)
        relay = EventRelay.for_service(platform, EventRecord)
        app.state.event_relay = relay
        task = asyncio.create_task(relay.run_forever()) if settings.events_relay_enabled else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                await asyncio.wait([task], timeout=5)

    return create_service_app(
        settings,
        title="users",
        description=DESCRIPTION,
        routers=[router],
        internal_routers=[internal_router],
        peers={"orgs": settings.orgs_url},
        transports=transports,
        resources=resources,
    )
