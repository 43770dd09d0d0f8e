"""Fixtures for users' tests: a migrated database, a token issuer and a fake orgs.

The app runs in-process (`platform_testing.client_factory`) against the real backends from
`platform_testing` (PostgreSQL and Redis in CI). Outgoing HTTP goes through
`httpx.MockTransport`s: "jwks" serves the `TokenFactory`'s keys, "orgs" is `FakeOrgs`,
which records each request and answers whatever the test programs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from platform_testing import (
    TEST_AUDIENCE,
    TEST_ISSUER,
    Backends,
    Caller,
    FakePatExchange,
    TokenFactory,
    backends,  # noqa: F401
    bearer,
    client_factory,
    jwks_transport,
    migrated_database,
    reset_backends,
    verifying_settings,
)
from users.app import create_app
from users.config import UsersSettings
from users.migrate import MIGRATIONS
from users.models import Base

# What auth's outbox relay asks for, stated here rather than imported from the app under test.
PROVISION_SCOPE = "users:provision"

OrgsHandler = Callable[[httpx.Request], Awaitable[httpx.Response]]


async def empty_orgs_page(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"items": [], "total": 0, "page": 1, "limit": 100, "pages": 0})


@dataclass
class FakeOrgs:
    """The orgs service as users sees it; `handler` is replaceable per test."""

    handler: OrgsHandler = empty_orgs_page
    calls: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        return await self.handler(request)


class FakeAuth:
    """What auth hands out: access tokens (users with their email/name claims, services) and
    the user events its outbox relay delivers."""

    def __init__(self, factory: TokenFactory) -> None:
        self.factory = factory

    def user(
        self,
        *,
        role: str = "user",
        user_id: uuid.UUID | None = None,
        email: str | None = None,
        name: str = "Ada Lovelace",
    ) -> Caller:
        user_id = user_id or uuid.uuid4()
        email = email or f"user-{user_id.hex[:8]}@example.com"
        token = self.factory.mint(sub=str(user_id), role=role, email=email, name=name)
        return Caller(user_id, token, email, name)

    def admin(self) -> Caller:
        return self.user(role="admin", name="Root Admin")

    def service(self, name: str = "auth", scopes: str = PROVISION_SCOPE) -> dict[str, str]:
        token = self.factory.mint(sub=f"svc:{name}", role="service", scope=scopes)
        return bearer(token)

    def event(
        self,
        user_id: uuid.UUID,
        *,
        event: str = "user.registered",
        version: int = 1_000_000,
        email: str | None = None,
        name: str = "Grace Hopper",
        role: str = "user",
        is_active: bool = True,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A body as auth's outbox relay sends it."""
        return {
            "event": event,
            "id": str(user_id),
            "email": email or f"user-{user_id.hex[:8]}@example.com",
            "name": name,
            "role": role,
            "is_active": is_active,
            "created_at": (created_at or datetime.now(UTC)).isoformat(),
            "version": version,
        }

    async def deliver(
        self, client: httpx.AsyncClient, event: dict[str, Any], user_id: uuid.UUID | None = None
    ) -> httpx.Response:
        """PUT `event` as auth's outbox relay does (to the event's own id unless told)."""
        return await client.put(
            f"/internal/v1/users/{user_id or event['id']}", headers=self.service(), json=event
        )

    async def register(
        self, client: httpx.AsyncClient, user_id: uuid.UUID | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A profile, created as auth creates them: by delivering its registration event."""
        response = await self.deliver(client, self.event(user_id or uuid.uuid4(), **fields))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="session")
def token_factory() -> TokenFactory:
    return TokenFactory(TEST_ISSUER, TEST_AUDIENCE)


@pytest.fixture(scope="session")
def auth(token_factory: TokenFactory) -> FakeAuth:
    return FakeAuth(token_factory)


@pytest.fixture(scope="session")
async def database_url(backends: Backends) -> AsyncIterator[str]:
    yield await migrated_database(backends, "users", MIGRATIONS)
    await backends.drop_databases()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture
def pats(token_factory: TokenFactory) -> FakePatExchange:
    """auth vouching for personal access tokens (`pats.issue(caller, scopes)`)."""
    return FakePatExchange(token_factory)


@pytest.fixture
def orgs() -> FakeOrgs:
    return FakeOrgs()


AppFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def make_client(
    backends: Backends,
    database_url: str,
    engine: AsyncEngine,
    token_factory: TokenFactory,
    orgs: FakeOrgs,
    pats: FakePatExchange,
) -> AsyncIterator[AppFactory]:
    """`async with make_client(**settings) as client:` an app with adjusted settings."""
    settings = verifying_settings(database_url, backends.redis_url, orgs_url="http://orgs.test")
    transports = {
        "jwks": jwks_transport(token_factory),
        "orgs": httpx.MockTransport(orgs),
        "auth": pats.transport(),
    }
    try:
        yield client_factory(create_app, UsersSettings, settings, transports)
    finally:
        await reset_backends(engine, Base.metadata, backends.redis_url)


@pytest.fixture
async def client(make_client: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as client:
        yield client
