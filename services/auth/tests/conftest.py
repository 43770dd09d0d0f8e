"""Fixtures for auth's tests: a migrated database and Redis from `platform_testing`,
one app per test session (cheap Argon2 parameters) and more on demand (`started`), both
from `platform_testing.client_factory`, a fake users service behind an
`httpx.MockTransport`, and helpers to register and log in (`api`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jose import jwt

from auth.app import create_app
from auth.config import AuthSettings
from auth.migrate import MIGRATIONS
from auth.models import Base
from platform_common.opaque_tokens import hash_token
from platform_common.state import platform_state
from platform_testing import (  # noqa: F401
    Backends,
    Caller,
    backends,
    client_factory,
    empty_tables,
    flush_redis,
    migrated_database,
)
from platform_testing.smtp import MailSink

PASSWORD = "a perfectly fine passphrase"
ORGS_CLIENT_SECRET = "orgs-secret"


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
        if request.method == "DELETE":  # user.deleted: no body
            user_id = request.url.path.rsplit("/", 1)[-1]
            self.received.append({"event": "user.deleted", "id": user_id})
            return httpx.Response(204)
        self.received.append(json.loads(request.content))
        return httpx.Response(200, json={"ok": True})


@dataclass
class FakeOrgs:
    """orgs' internal membership lookup, as auth's org-token endpoint sees it.

    `members` maps (user id, org slug) to a role; an org is known by its slug and by its id
    (`org_ids`). `mode`: "up", "down" (connection refused), "slow" (sleeps `delay` s first)
    or "error" (500)."""

    members: dict[tuple[str, str], str] = field(default_factory=dict)
    org_ids: dict[str, str] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    # Account deletion: the slugs orgs answers as blocking, by user id; the ids deleted.
    blockers: dict[str, list[str]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    mode: str = "up"
    delay: float = 0.0

    def add(self, user_id: uuid.UUID, slug: str, role: str) -> str:
        org_id = self.org_ids.setdefault(slug, str(uuid.uuid4()))
        self.members[(str(user_id), slug)] = role
        return org_id

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.mode == "down":
            raise httpx.ConnectError("orgs is down", request=request)
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "error":
            return httpx.Response(500, json={"detail": "boom"})
        if request.url.path.endswith("/deletion-blockers"):
            user_id = request.url.path.split("/")[-2]
            return httpx.Response(200, json={"orgs": self.blockers.get(user_id, [])})
        if request.method == "DELETE":
            self.deleted.append(request.url.path.rsplit("/", 1)[-1])
            return httpx.Response(204)
        user_id = request.url.path.rsplit("/", 1)[-1]
        org = request.url.params["org"]
        slug = next((s for s, i in self.org_ids.items() if org in (s, i)), None)
        role = self.members.get((user_id, slug or ""))
        if slug is None or role is None:
            return httpx.Response(404, json={"code": "not_found"})
        return httpx.Response(
            200, json={"org_id": self.org_ids[slug], "org_slug": slug, "role": role}
        )

    def reset(self) -> None:
        self.members.clear()
        self.org_ids.clear()
        self.requests.clear()
        self.blockers.clear()
        self.deleted.clear()
        self.mode, self.delay = "up", 0.0


@pytest.fixture(scope="session")
async def auth_database_url(backends: Backends) -> AsyncIterator[str]:
    yield await migrated_database(backends, "auth", MIGRATIONS)
    await backends.drop_databases()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth-keys")


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) every auth app of the session sends its mail to."""
    with MailSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def base_settings(
    auth_database_url: str, backends: Backends, keys_dir: Path, mail_sink: MailSink
) -> dict[str, Any]:
    return {
        "environment": "test",
        "database_url": auth_database_url,
        "redis_url": backends.redis_url,
        "signing_keys_dir": keys_dir,
        "argon2_time_cost": 1,
        # Reuse is detected at once unless a test asks for the grace (test_sessions.py).
        "refresh_reuse_interval_seconds": 0,
        "argon2_memory_kib": 64,
        "users_url": "http://users.test",
        "orgs_url": "http://orgs.test",
        "outbox_poll_seconds": 0.05,
        "smtp_url": mail_sink.url,
        "mail_poll_seconds": 0.2,
        "mail_link_base_url": "https://id.example.test/app",
        "service_clients": {
            "orgs": {
                "secret_sha256": hash_token(ORGS_CLIENT_SECRET),
                "scopes": ["users:read"],
            }
        },
    }


@pytest.fixture(scope="session")
def make_settings(base_settings: dict[str, Any]) -> Callable[..., AuthSettings]:
    def make(**overrides: Any) -> AuthSettings:
        return AuthSettings(**{**base_settings, **overrides})

    return make


@pytest.fixture(scope="session")
def fake_users() -> FakeUsers:
    return FakeUsers()


FAKE_ORGS = FakeOrgs()


@pytest.fixture
def fake_orgs() -> Iterator[FakeOrgs]:
    yield FAKE_ORGS
    FAKE_ORGS.reset()


def auth_client_factory(
    base_settings: dict[str, Any], fake_users: FakeUsers, *, run_outbox: bool
) -> Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    factory: Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
    factory = client_factory(
        create_app,
        AuthSettings,
        base_settings,
        transports={
            "users": httpx.MockTransport(fake_users.handler),
            "orgs": httpx.MockTransport(FAKE_ORGS.handler),
        },
        run_outbox=run_outbox,
    )
    return factory


@pytest.fixture(scope="session")
async def session_client(
    base_settings: dict[str, Any], fake_users: FakeUsers
) -> AsyncIterator[httpx.AsyncClient]:
    async with auth_client_factory(base_settings, fake_users, run_outbox=False)() as client:
        yield client


@pytest.fixture
def app(session_client: httpx.AsyncClient) -> FastAPI:
    app: FastAPI = session_client.app  # type: ignore[attr-defined]
    return app


async def reset(app: FastAPI, backends: Backends, fake_users: FakeUsers) -> None:
    await empty_tables(platform_state(app).engine, Base.metadata)
    await flush_redis(backends.redis_url)
    platform_state(app).revocations._cache.clear()
    fake_users.received.clear()
    fake_users.headers.clear()
    fake_users.fail = False


@pytest.fixture
async def client(
    session_client: httpx.AsyncClient, app: FastAPI, backends: Backends, fake_users: FakeUsers
) -> AsyncIterator[httpx.AsyncClient]:
    yield session_client
    await reset(app, backends, fake_users)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


@dataclass
class SignedIn(Caller):
    """A user who has logged in: `headers` carry the access token; `refresh_token` is the
    session's."""

    refresh_token: str = ""


@dataclass
class AuthApi:
    """Short-hands for the calls most tests start with."""

    client: httpx.AsyncClient
    app: FastAPI

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

    async def login(self, email: str, password: str = PASSWORD, **headers: str) -> SignedIn:
        response = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
        )
        assert response.status_code == 200, response.text
        tokens = response.json()
        claims = jwt.get_unverified_claims(tokens["access_token"])
        return SignedIn(
            id=uuid.UUID(claims["sub"]),
            token=tokens["access_token"],
            email=claims["email"],
            name=claims["name"],
            refresh_token=tokens["refresh_token"],
        )

    async def signed_in(self) -> SignedIn:
        """A new user, logged in once."""
        user = await self.register()
        return await self.login(user["email"])

    async def admin(self) -> SignedIn:
        email = unique_email("admin")
        async with platform_state(self.app).sessionmaker() as db, db.begin():
            await self.app.state.account_service.ensure_admin(db, email, PASSWORD)
        return await self.login(email)


@pytest.fixture
def api(client: httpx.AsyncClient, app: FastAPI) -> AuthApi:
    return AuthApi(client, app)


@pytest.fixture
def api_for() -> Callable[[httpx.AsyncClient], AuthApi]:
    """The short-hands on a client of a `started` app."""
    return lambda client: AuthApi(client, client.app)  # type: ignore[attr-defined]


@pytest.fixture
def started(
    base_settings: dict[str, Any], fake_users: FakeUsers, backends: Backends
) -> Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """Run a second app with settings of the test's own (thresholds, timeouts, outbox);
    `client.app` is that app."""

    @contextlib.asynccontextmanager
    async def run(
        *, run_outbox: bool = False, **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        factory = auth_client_factory(base_settings, fake_users, run_outbox=run_outbox)
        async with factory(**overrides) as client:
            try:
                yield client
            finally:
                await reset(client.app, backends, fake_users)  # type: ignore[attr-defined]

    return run
