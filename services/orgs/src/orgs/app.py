"""The orgs service's app factory (`uvicorn --factory orgs.app:create_app`)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from orgs.api import internal_router, invitations_router, members_router, router
from orgs.config import OrgsSettings, get_settings
from platform_common.app import create_service_app

DESCRIPTION = """
Organizations, their members and invitations.

Roles, highest first: `owner`, `admin`, `member`, `viewer`. A platform admin may do anything
(acting as an owner, even in orgs it is not a member of). A caller who is not a member of an
org gets 404 for it, never 403; a member whose role is too low gets 403 `forbidden`. An org
never ends up without an owner (409 `last_owner`), whatever the interleaving of requests.

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
    return create_service_app(
        settings,
        title="orgs",
        description=DESCRIPTION,
        routers=[router, members_router, invitations_router],
        internal_routers=[internal_router],
        peers={"users": settings.users_url},
        transports=transports,
    )
