"""Fuzz every operation of users' OpenAPI, as a regular user and (admin-only) as an admin.

orgs is a `MockTransport` answering a plausible one-org page; the JWKS is the
`TokenFactory`'s. auth's internal event endpoint is called with a provisioning token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.python import asgi as schemathesis_asgi

from platform_testing import Backends, TokenFactory
from tests.fuzz import conftest as fuzz
from users.app import create_app
from users.config import UsersSettings
from users.migrate import MIGRATIONS

pytestmark = pytest.mark.slow

OPENAPI = "/api/v1/users/openapi.json"
ADMIN_ONLY = {"GET /api/v1/users"}


def settings(database_url: str, redis_url: str) -> UsersSettings:
    return fuzz.verifying_app_settings(
        UsersSettings, database_url, redis_url, orgs_url="http://orgs.test"
    )


proxy, schema = fuzz.collect(create_app(settings(*fuzz.COLLECTION_URLS)))


async def orgs_page(request: httpx.Request) -> httpx.Response:
    """orgs' `GET /api/v1/orgs`, as users asks it for `/me`."""
    org = {"id": str(uuid.uuid4()), "slug": "acme", "name": "Acme", "role": "owner"}
    return httpx.Response(
        200, json={"items": [org], "total": 1, "page": 1, "limit": 100, "pages": 1}
    )


@dataclass
class Callers:
    user: str
    admin: str
    provisioner: str


@pytest.fixture(scope="module")
async def callers(
    backends: Backends,
    token_factory: TokenFactory,
    jwks_transport: httpx.MockTransport,
    fuzz_database: fuzz.DatabaseMaker,
) -> Callers:
    database_url = await fuzz_database("users", MIGRATIONS)

    def build() -> FastAPI:
        return create_app(
            settings(database_url, backends.redis_url),
            transports={"jwks": jwks_transport, "orgs": httpx.MockTransport(orgs_page)},
        )

    fuzz.serve_through(proxy, build, OPENAPI)
    user_id = uuid.uuid4()
    callers = Callers(
        user=token_factory.mint(
            sub=str(user_id), email=f"fuzz-{user_id.hex[:8]}@example.com", name="Fuzz User"
        ),
        admin=token_factory.mint(role="admin", email="root@example.com", name="Root"),
        provisioner=token_factory.mint(sub="svc:auth", role="service", scope="users:provision"),
    )
    # The callers' profiles exist (created from their tokens on the first /me).
    with schemathesis_asgi.get_client(proxy) as client:
        for token in (callers.user, callers.admin):
            response = client.get("/api/v1/users/me", headers=fuzz.bearer(token))
            assert response.status_code == 200, response.text
    return callers


@schema.parametrize()
@hypothesis.settings(hypothesis.settings.get_profile("fuzz"))
def test_users_api(case: schemathesis.Case, callers: Callers) -> None:
    if case.operation.path.startswith("/internal/"):
        tokens = [callers.provisioner]
    elif case.operation.label in ADMIN_ONLY:
        tokens = [callers.user, callers.admin]
    else:
        tokens = [callers.user]
    for token in tokens:
        fuzz.fuzz_call(case, token)
