"""Fixtures for auth's tests: a migrated database and Redis from `platform_testing`,
one app per test session (cheap Argon2 parameters), a fake users service behind an
`httpx.MockTransport`, and helpers to register and log in."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from auth.app import create_app
from auth.config import AuthSettings
from auth.migrate import MIGRATIONS
from auth.models import Base
from platform_common import migrations
from platform_testing import Backends, backends, empty_tables, flush_redis  # noqa: F401

PASSWORD = "a perfectly fine passphrase"


@dataclass
class FakeUsers:
    """The users service's internal endpoint, as auth's outbox relay sees it."""

    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)
    fail: bool = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            raise httpx.ConnectError("users is down", request=request)
        self.headers.append(request.headers)
        self.received.append(__import__("json").loads(request.content))
        return httpx.Response(200, json={"ok": True})


@pytest.fixture(scope="session")
async def auth_database_url(backends: Backends) -> AsyncIterator[str]:
    url = await backends.create_database("auth")
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url)
    yield url
    await backends.drop_databases()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth-keys")


@pytest.fixture(scope="session")
def make_settings(
    auth_database_url: str, backends: Backends, keys_dir: Path
) -> Callable[..., AuthSettings]:
    def make(**overrides: Any) -> AuthSettings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": auth_database_url,
            "redis_url": backends.redis_url,
            "signing_keys_dir": keys_dir,
            "argon2_time_cost": 1,
            "argon2_memory_kib": 64,
            "users_url": "http://users.test",
            "outbox_poll_seconds": 0.05,
            "service_clients": {
                "orgs": {
                    # sha256("orgs-secret")
                    "secret_sha256": __import__("hashlib").sha256(b"orgs-secret").hexdigest(),
                    "scopes": ["users:read"],
                }
            },
        }
        values.update(overrides)
        return AuthSettings(**values)

    return make


@pytest.fixture(scope="session")
def fake_users() -> FakeUsers:
    return FakeUsers()


async def start_app(
    settings: AuthSettings, fake_users: FakeUsers, *, run_outbox: bool = False
) -> tuple[FastAPI, LifespanManager, httpx.AsyncClient]:
    app = create_app(
        settings,
        transports={"users": httpx.MockTransport(fake_users.handler)},
        run_outbox=run_outbox,
    )
    manager = LifespanManager(app)
    await manager.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")
    return app, manager, client


@pytest.fixture(scope="session")
async def app_and_client(
    make_settings: Callable[..., AuthSettings], fake_users: FakeUsers
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app, manager, client = await start_app(make_settings(), fake_users)
    yield app, client
    await client.aclose()
    await manager.__aexit__(None, None, None)


@pytest.fixture
def app(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return app_and_client[0]


@pytest.fixture
async def client(
    app_and_client: tuple[FastAPI, httpx.AsyncClient], backends: Backends, fake_users: FakeUsers
) -> AsyncIterator[httpx.AsyncClient]:
    app, client = app_and_client
    yield client
    await empty_tables(app.state.engine, Base.metadata)
    await flush_redis(backends.redis_url)
    app.state.revocations._cache.clear()
    fake_users.received.clear()
    fake_users.headers.clear()
    fake_users.fail = False


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@dataclass
class AuthApi:
    """Short-hands for the calls most tests start with."""

    client: httpx.AsyncClient

    async def register(
        self, email: str | None = None, password: str = PASSWORD, name: str = "Test User"
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/register",
            json={"email": email or unique_email(), "password": password, "name": name},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def login(self, email: str, password: str = PASSWORD, **headers: str) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def user_with_tokens(self) -> tuple[dict[str, Any], dict[str, Any]]:
        user = await self.register()
        return user, await self.login(user["email"])

    async def admin_tokens(self, app: FastAPI) -> dict[str, Any]:
        email = unique_email("admin")
        async with app.state.sessionmaker() as db, db.begin():
            await app.state.account_service.ensure_admin(db, email, PASSWORD)
        return await self.login(email)


@pytest.fixture
def api(client: httpx.AsyncClient) -> AuthApi:
    return AuthApi(client)


@pytest.fixture
def started(fake_users: FakeUsers, backends: Backends) -> Callable[..., Any]:
    """Run a second app with settings of the test's own (thresholds, timeouts, outbox)."""

    @contextlib.asynccontextmanager
    async def run(
        settings: AuthSettings, *, run_outbox: bool = False
    ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        app, manager, client = await start_app(settings, fake_users, run_outbox=run_outbox)
        try:
            yield app, client
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)
            await empty_tables(app.state.engine, Base.metadata)
            await flush_redis(backends.redis_url)

    return run
