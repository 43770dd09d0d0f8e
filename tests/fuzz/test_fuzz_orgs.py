"""Fuzz every operation of orgs' OpenAPI, as a regular user and as a platform admin.

Generated slugs almost never name an org, so operations under `/{slug}` are sent twice:
as generated, and with the slug of an org of the operation's own where the caller is the
owner (created on first use; a fuzzed DELETE of it only ends that operation's org). The
users service is a `MockTransport` that knows every id it is asked about.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import httpx
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.python import asgi as schemathesis_asgi

from orgs.app import create_app
from orgs.config import OrgsSettings
from orgs.migrate import MIGRATIONS
from platform_testing import Backends, TokenFactory
from tests.fuzz import conftest as fuzz

pytestmark = pytest.mark.slow

OPENAPI = "/api/v1/orgs/openapi.json"


def settings(database_url: str, redis_url: str) -> OrgsSettings:
    return fuzz.verifying_app_settings(
        OrgsSettings, database_url, redis_url, users_url="http://users.test"
    )


proxy, schema = fuzz.collect(create_app(settings(*fuzz.COLLECTION_URLS)))


async def users_service(request: httpx.Request) -> httpx.Response:
    """users' `POST /api/v1/users/lookup`: every id is someone."""
    if request.method != "POST" or request.url.path != "/api/v1/users/lookup":
        return httpx.Response(404, json={"code": "not_found"})
    ids = json.loads(request.content)["ids"]
    return httpx.Response(
        200,
        json=[{"id": i, "name": f"User {i[:4]}", "email": f"u-{i[:8]}@example.com"} for i in ids],
    )


@dataclass
class Callers:
    user: str
    admin: str
    slugs: dict[str, str] = field(default_factory=dict)

    def own_org(self, operation: str) -> str:
        """The slug of an org of this operation's own, owned by `user`."""
        if operation not in self.slugs:
            slug = f"fuzz-{uuid.uuid4().hex[:10]}"
            with schemathesis_asgi.get_client(proxy) as client:
                response = client.post(
                    "/api/v1/orgs",
                    json={"name": "Fuzz", "slug": slug},
                    headers=fuzz.bearer(self.user),
                )
            assert response.status_code == 201, response.text
            self.slugs[operation] = slug
        return self.slugs[operation]


@pytest.fixture(scope="module")
async def callers(
    backends: Backends,
    token_factory: TokenFactory,
    jwks_transport: httpx.MockTransport,
    fuzz_database: fuzz.DatabaseMaker,
) -> Callers:
    database_url = await fuzz_database("orgs", MIGRATIONS)

    def build() -> FastAPI:
        return create_app(
            settings(database_url, backends.redis_url),
            transports={
                "jwks": jwks_transport,
                "users": httpx.MockTransport(users_service),
            },
        )

    fuzz.serve_through(proxy, build, OPENAPI)
    user_id = uuid.uuid4()
    return Callers(
        user=token_factory.mint(
            sub=str(user_id), email=f"fuzz-{user_id.hex[:8]}@example.com", name="Fuzz User"
        ),
        admin=token_factory.mint(role="admin", email="root@example.com", name="Root"),
    )


@schema.parametrize()
@hypothesis.settings(hypothesis.settings.get_profile("fuzz"))
def test_orgs_api(case: schemathesis.Case, callers: Callers) -> None:
    fuzz.fuzz_call(case, callers.user)
    if "slug" in (case.path_parameters or {}):
        case.path_parameters["slug"] = callers.own_org(case.operation.label)
        fuzz.fuzz_call(case, callers.user)
    # Platform admins may do anything: the same request through their wider checks.
    fuzz.fuzz_call(case, callers.admin)
