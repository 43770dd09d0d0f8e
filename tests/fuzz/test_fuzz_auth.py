"""Fuzz every operation of auth's OpenAPI with tokens auth itself issued.

Each operation gets a fresh login of its own (a fuzzed `logout-all` or `password` may end
the caller's sessions; that must not blind the operations after it), and admin-only
operations run a second time as the platform admin, seeded the way `auth-migrate` does.
Login throttling is raised out of the way: every request comes from one client address.
`POST /token` answers RFC 6749 errors, checked by `oauth_errors` instead of problem+json.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.python import asgi as schemathesis_asgi

from auth.app import create_app
from auth.config import AuthSettings
from auth.migrate import MIGRATIONS, seed_admin
from platform_testing import Backends
from tests.fuzz import conftest as fuzz

pytestmark = pytest.mark.slow

OPENAPI = "/api/v1/auth/openapi.json"
TOKEN_ENDPOINT = "POST /api/v1/auth/token"
ADMIN_ONLY = {
    "POST /api/v1/auth/users/{user_id}/disable",
    "POST /api/v1/auth/users/{user_id}/enable",
}
PASSWORD = "a perfectly fine passphrase"


def settings(database_url: str, redis_url: str, keys_dir: Path) -> AuthSettings:
    return AuthSettings(
        **fuzz.QUIET,
        database_url=database_url,
        redis_url=redis_url,
        signing_keys_dir=keys_dir,
        argon2_time_cost=1,
        argon2_memory_kib=64,
        users_url="http://users.test",
        orgs_url="http://orgs.test",
        login_max_failures_per_account=10_000,
        login_max_attempts_per_ip=100_000,
        service_clients={
            "orgs": {
                "secret_sha256": hashlib.sha256(b"orgs-secret").hexdigest(),
                "scopes": ["users:read"],
            }
        },
    )


def _collection_app() -> FastAPI:
    """An app to read the OpenAPI from; its signing keys go to a throw-away folder."""
    with tempfile.TemporaryDirectory() as keys:
        return create_app(settings(*fuzz.COLLECTION_URLS, Path(keys)), run_outbox=False)


proxy = fuzz.AppProxy()
schema = fuzz.collected_schema(_collection_app(), proxy)


def users_service(request: httpx.Request) -> httpx.Response:
    """users' internal event endpoint, as auth's outbox relay calls it."""
    return httpx.Response(200, json={"ok": True})


def orgs_service(request: httpx.Request) -> httpx.Response:
    """orgs' internal membership lookup, as the org-token endpoint calls it: the fuzzed
    users are members of nothing."""
    return httpx.Response(404, json={"code": "not_found"})


def oauth_errors(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """RFC 6749 section 5.2: an error from the token endpoint is JSON with `error`."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), content_type
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body


@dataclass
class Accounts:
    admin_email: str
    tokens: dict[str, str] = field(default_factory=dict)

    def login(self, email: str) -> str:
        with schemathesis_asgi.get_client(proxy) as client:
            response = client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def user_for(self, operation: str) -> str:
        """A user of the operation's own, logged in once."""
        key = f"user {operation}"
        if key not in self.tokens:
            email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
            with schemathesis_asgi.get_client(proxy) as client:
                response = client.post(
                    "/api/v1/auth/register",
                    json={"email": email, "password": PASSWORD, "name": "Fuzz User"},
                )
            assert response.status_code == 201, response.text
            self.tokens[key] = self.login(email)
        return self.tokens[key]

    def admin_for(self, operation: str) -> str:
        key = f"admin {operation}"
        if key not in self.tokens:
            self.tokens[key] = self.login(self.admin_email)
        return self.tokens[key]


@pytest.fixture(scope="module")
async def accounts(
    backends: Backends, fuzz_database: fuzz.DatabaseMaker, tmp_path_factory: pytest.TempPathFactory
) -> Accounts:
    database_url = await fuzz_database("auth", MIGRATIONS)
    config = settings(database_url, backends.redis_url, tmp_path_factory.mktemp("fuzz-keys"))
    admin_email = "fuzz-admin@example.com"
    await seed_admin(config, admin_email, PASSWORD)

    def build() -> FastAPI:
        return create_app(
            config,
            transports={
                "users": httpx.MockTransport(users_service),
                "orgs": httpx.MockTransport(orgs_service),
            },
            run_outbox=False,
        )

    fuzz.serve_through(proxy, build, OPENAPI)
    return Accounts(admin_email=admin_email)


@schema.parametrize()
@hypothesis.settings(hypothesis.settings.get_profile("fuzz"))
def test_auth_api(case: schemathesis.Case, accounts: Accounts) -> None:
    label = case.operation.label
    # Only what the OAuth2 endpoint answers itself is RFC 6749; a wrong method never reaches
    # it and gets the router's 405 problem+json like any other path.
    if label == TOKEN_ENDPOINT and case.method.upper() == "POST":
        case.call_and_validate(
            headers=fuzz.bearer(accounts.user_for(label)),
            checks=fuzz.CHECKS,
            additional_checks=[oauth_errors],
        )
        return
    fuzz.fuzz_call(case, accounts.user_for(label))
    if label in ADMIN_ONLY:
        fuzz.fuzz_call(case, accounts.admin_for(label))
