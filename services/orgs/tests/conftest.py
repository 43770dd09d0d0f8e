"""Fixtures for orgs' tests: a migrated database, a token issuer and a fake users service.

The app runs in-process (`platform_testing.client_factory`) against the real backends from
`platform_testing` (PostgreSQL and Redis in CI); callers are `platform_testing.Caller`s. Outgoing HTTP goes through
`httpx.MockTransport`s: "jwks" serves the `TokenFactory`'s keys, "users" is `FakeUsers`,
which knows a set of users, answers `POST /api/v1/users/lookup` and records every request.

`OrgWorld` is one org with a caller in every position (owner, admin, member, viewer, an
outsider, a platform admin) plus a pending invitation for the outsider.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from orgs.app import create_app
from orgs.config import OrgsSettings
from orgs.migrate import MIGRATIONS
from orgs.models import Base
from platform_testing import (
    TEST_AUDIENCE,
    TEST_ISSUER,
    Backends,
    Caller,
    FakePatExchange,
    TokenFactory,
    backends,  # noqa: F401
    client_factory,
    jwks_transport,
    migrated_database,
    reset_backends,
    verifying_settings,
)

LOOKUP_PATH = "/api/v1/users/lookup"


@dataclass
class FakeUsers:
    """The users service as orgs sees it.

    `mode`: "up" answers lookups from `known`; "down" refuses connections; "slow" sleeps
    `delay` seconds first; "error" answers 500.
    """

    known: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)
    calls: list[httpx.Request] = field(default_factory=list)
    mode: str = "up"
    delay: float = 0.0

    def add(self, user_id: uuid.UUID, name: str, email: str) -> None:
        self.known[user_id] = {"id": str(user_id), "name": name, "email": email}

    def lookups(self) -> list[list[str]]:
        """The ids of each lookup call, in order."""
        return [json.loads(c.content)["ids"] for c in self.calls if c.url.path == LOOKUP_PATH]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "error":
            return httpx.Response(500, json={"detail": "boom"})
        if request.method != "POST" or request.url.path != LOOKUP_PATH:
            return httpx.Response(404)
        ids = json.loads(request.content)["ids"]
        if len(ids) > 100:
            return httpx.Response(422)
        answer = [self.known[uuid.UUID(i)] for i in ids if uuid.UUID(i) in self.known]
        return httpx.Response(200, json=answer)


class People:
    """Mints callers (with the email and name claims auth puts in their tokens).

    Every user is also known to the fake users service unless `known=False`.
    """

    def __init__(self, factory: TokenFactory, users: FakeUsers) -> None:
        self.factory = factory
        self.users = users

    def user(
        self,
        label: str = "user",
        *,
        role: str = "user",
        email: str | None = None,
        known: bool = True,
    ) -> Caller:
        user_id = uuid.uuid4()
        email = email or f"{label}-{user_id.hex[:8]}@example.com"
        name = f"{label.title()} {user_id.hex[:4]}"
        token = self.factory.mint(sub=str(user_id), role=role, email=email, name=name)
        if known:
            self.users.add(user_id, name, email)
        return Caller(user_id, token, email, name)

    def admin(self) -> Caller:
        return self.user("root", role="admin")


@pytest.fixture(scope="session")
def token_factory() -> TokenFactory:
    return TokenFactory(TEST_ISSUER, TEST_AUDIENCE)


@pytest.fixture(scope="session")
async def engine(backends: Backends) -> AsyncIterator[AsyncEngine]:
    """orgs' migrated database, for the app and for tests that look underneath the API."""
    url = await migrated_database(backends, "orgs", MIGRATIONS)
    engine = create_async_engine(url, poolclass=NullPool)
    yield engine
    await engine.dispose()
    await backends.drop_databases()


@pytest.fixture
def pats(token_factory: TokenFactory) -> FakePatExchange:
    """auth vouching for personal access tokens (`pats.issue(caller, scopes)`)."""
    return FakePatExchange(token_factory)


@pytest.fixture
def users() -> FakeUsers:
    return FakeUsers()


@pytest.fixture
def people(token_factory: TokenFactory, users: FakeUsers) -> People:
    return People(token_factory, users)


ClientFactory = Callable[..., Any]


@pytest.fixture
async def make_client(
    backends: Backends,
    engine: AsyncEngine,
    token_factory: TokenFactory,
    users: FakeUsers,
    pats: FakePatExchange,
) -> AsyncIterator[ClientFactory]:
    """`async with make_client(**settings) as client:` an app with adjusted settings."""
    settings = verifying_settings(
        engine.url.render_as_string(hide_password=False),
        backends.redis_url,
        users_url="http://users.test",
        # Test receivers listen on 127.0.0.1; the SSRF tests turn this off.
        webhooks_allow_private=True,
    )
    transports = {
        "jwks": jwks_transport(token_factory),
        "users": httpx.MockTransport(users),
        "auth": pats.transport(),
    }
    try:
        yield client_factory(create_app, OrgsSettings, settings, transports)
    finally:
        await reset_backends(engine, Base.metadata, backends.redis_url)


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as client:
        yield client


class OrgsApi:
    """Set-up steps through the public API, asserting each one succeeds."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create_org(
        self, owner: Caller, slug: str | None = None, name: str = "Acme"
    ) -> dict[str, Any]:
        slug = slug or f"org-{uuid.uuid4().hex[:10]}"
        return await self._create("/api/v1/orgs", {"name": name, "slug": slug}, owner)

    async def add_member(self, slug: str, by: Caller, who: Caller, role: str) -> dict[str, Any]:
        body = {"user_id": str(who.id), "role": role}
        return await self._create(f"/api/v1/orgs/{slug}/members", body, by)

    async def invite(
        self, slug: str, by: Caller, email: str, role: str = "member"
    ) -> dict[str, Any]:
        body = {"email": email, "role": role}
        return await self._create(f"/api/v1/orgs/{slug}/invitations", body, by)

    async def _create(self, path: str, body: dict[str, Any], by: Caller) -> dict[str, Any]:
        response = await self.client.post(path, json=body, headers=by.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def roles(self, slug: str, by: Caller) -> dict[uuid.UUID, str]:
        """Every member's role, read through the API."""
        response = await self.client.get(
            f"/api/v1/orgs/{slug}/members", params={"limit": 100}, headers=by.headers
        )
        assert response.status_code == 200, response.text
        return {uuid.UUID(m["user_id"]): m["role"] for m in response.json()["items"]}


@pytest.fixture
def api(client: httpx.AsyncClient) -> OrgsApi:
    return OrgsApi(client)


@dataclass
class OrgWorld:
    slug: str
    owner: Caller
    admin: Caller
    member: Caller
    viewer: Caller
    outsider: Caller
    platform_admin: Caller
    newcomer: Caller  # known to users, in no org: someone to add
    invitation_id: str
    invitation_token: str  # addressed to the outsider's email
    webhook_id: str  # a webhook of the org (to a closed local port, for a rare event)

    def caller(self, name: str) -> Caller | None:
        """A caller by position; None for "anonymous"."""
        if name == "anonymous":
            return None
        caller: Caller = getattr(self, name)
        return caller


@pytest.fixture
async def world(api: OrgsApi, people: People) -> OrgWorld:
    owner, admin, member, viewer = (people.user(r) for r in ("owner", "admin", "member", "viewer"))
    outsider, newcomer = people.user("outsider"), people.user("newcomer")
    org = await api.create_org(owner)
    for who, role in ((admin, "admin"), (member, "member"), (viewer, "viewer")):
        await api.add_member(org["slug"], owner, who, role)
    invitation = await api.invite(org["slug"], owner, outsider.email)
    webhook = await api._create(
        f"/api/v1/orgs/{org['slug']}/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["webhook.disabled"]},
        owner,
    )
    people.users.calls.clear()
    return OrgWorld(
        slug=org["slug"],
        owner=owner,
        admin=admin,
        member=member,
        viewer=viewer,
        outsider=outsider,
        platform_admin=people.admin(),
        newcomer=newcomer,
        invitation_id=invitation["id"],
        invitation_token=invitation["token"],
        webhook_id=webhook["id"],
    )
