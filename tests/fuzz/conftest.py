"""Property-based fuzzing of the three services' public contracts with schemathesis.

```
import time (collection)                          per module (fixture)
  create_app(placeholder settings).openapi()        backends.create_database + migrations
  -> schemathesis.openapi.from_dict, .app=AppProxy  AppProxy.factory = build the real app;
  -> flatmap_case hook: hostile_strings             the openapi.json it serves must equal
  -> @schema.parametrize(): one test per operation  the collected one
per generated request
  fuzz_call: case.call_and_validate(bearer token, CHECKS + problem_json_errors)
  each module picks the callers: a regular user, an admin where the operation is theirs
```

Why a proxy: `schemathesis.pytest.from_fixture` (the lazy loader) reads `Node._nodeid`,
which pytest 9.2 no longer has, so the schema is built at collection from an app that never
starts (building one opens no connection), and requests go through a proxy to the real app
that the module's fixture builds.

schemathesis drives an in-process ASGI app from an event loop of its own (one shared
"portal" thread, where it also runs the app's lifespan). Everything the app owns (engine,
Redis, peer clients) therefore lives on that loop; set-up through the API uses its
`ASGIClient` (requests-style, same loop), never the test session's loop. Its pytest plugin
ends those lifespans after every test; the module's fixture drops its databases at the end.

Test modules import the helpers below as `tests.fuzz.conftest` (pytest's importlib mode
registers conftests under that name). Runs are bounded and derandomized ("fuzz" profile)
so CI sees the same requests each time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.strategies as st
import pytest
import schemathesis
from schemathesis.python import asgi as schemathesis_asgi

from platform_common import migrations
from platform_common.errors import PROBLEM_CONTENT_TYPE
from platform_testing import (  # noqa: F401
    TEST_AUDIENCE,
    TEST_ISSUER,
    Backends,
    TokenFactory,
    backends,
    bearer,
    verifying_settings,
)

# Settings every fuzzed app shares: a log line per fuzzed request would cost more than the
# request itself.
QUIET: dict[str, Any] = {
    "environment": "test",
    "log_level": "WARNING",
    "otel_sdk_disabled": True,
    # The limiter runs, but thousands of generated requests from one address stay under it
    # (its 429s are tested in libs/common/tests/test_rate_limit.py).
    **{f"rate_limit_{role}": "1000000/minute" for role in ("anonymous", "user", "admin")},
}
# Building an app opens no connection: at collection these URLs only have to parse.
COLLECTION_URLS = ("postgresql+asyncpg://collect@localhost/none", "redis://localhost/0")

# Small enough for the whole directory to finish in about a minute on two busy cores;
# derandomized (and no example database) so every run sends the same requests. Test modules
# apply it with `@hypothesis.settings(hypothesis.settings.get_profile("fuzz"))`.
hypothesis.settings.register_profile(
    "fuzz",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(hypothesis.HealthCheck),
)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


class AppProxy:
    """An ASGI app that forwards to an app built by `factory`, a new one for every lifespan.

    schemathesis' pytest plugin ends the lifespans it started after each test (one per
    operation) and starts them again on the next request; a service's lifespan is written
    to run once per app (auth registers its metrics on the app's registry), so each run
    gets an app of its own. Their state (database, Redis, signing keys) carries over.
    """

    def __init__(self) -> None:
        self.factory: Callable[[], Any] | None = None
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.factory is not None, "the module's app fixture has not run"
        if scope["type"] == "lifespan" or self.app is None:
            self.app = self.factory()
        await self.app(scope, receive, send)


def verifying_app_settings(
    settings_type: Any, database_url: str, redis_url: str, **extra: Any
) -> Any:
    """Settings of users or orgs under fuzzing: quiet, trusting `token_factory`'s tokens."""
    return settings_type(**{**verifying_settings(database_url, redis_url, **extra), **QUIET})


def collect(app: Any) -> tuple[AppProxy, Any]:
    """The proxy a module's requests go through, and the schema collected from `app`."""
    proxy = AppProxy()
    return proxy, collected_schema(app, proxy)


def collected_schema(app: Any, proxy: AppProxy) -> Any:
    """The app's OpenAPI as a schemathesis schema whose requests go to `proxy`, with
    `hostile_strings` mixed into the generated cases."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = proxy
    schema.hook("flatmap_case")(hostile_strings)
    return schema


# Values a schema-driven generator almost never produces within a few dozen examples, but
# that break what sits behind a `str`: PostgreSQL's text refuses NUL, and a 5000-character
# value overflows any varchar or index entry that trusted an undeclared limit.
HOSTILE_STRINGS = ["\x00", "a\x00b", "x" * 5000, "\U0010ffff\ud7ff"]


def hostile_strings(context: Any, case: schemathesis.Case) -> st.SearchStrategy[Any]:
    """The case as generated, or (as often) with one of its string values (a JSON body or
    form field, a query or path parameter) replaced by one of `HOSTILE_STRINGS`."""
    slots = [
        (part, key)
        for part in ("body", "query", "path_parameters")
        if isinstance(getattr(case, part, None), dict)
        for key, value in getattr(case, part).items()
        if isinstance(value, str)
    ]
    if not slots:
        return st.just(case)

    def replaced(choice: tuple[tuple[str, str], str]) -> schemathesis.Case:
        (part, key), value = choice
        getattr(case, part)[key] = value
        return case

    hostile = st.tuples(st.sampled_from(slots), st.sampled_from(HOSTILE_STRINGS)).map(replaced)
    return st.one_of(st.just(case), hostile)


def serve_through(proxy: AppProxy, factory: Callable[[], Any], openapi_path: str) -> None:
    """Point `proxy` at the module's real apps, and check that the OpenAPI they serve is the
    one the tests were generated from."""
    proxy.factory = factory
    with schemathesis_asgi.get_client(proxy) as client:
        served = client.get(openapi_path)
    assert served.status_code == 200, served.text
    assert served.json() == proxy.app.openapi()


def problem_json_errors(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """API.md: every error is RFC 9457 `application/problem+json` with a stable `code`, and
    validation errors (422) list `errors[]`."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith(PROBLEM_CONTENT_TYPE), (
        f"{response.status_code} answered {content_type!r}, not {PROBLEM_CONTENT_TYPE}"
    )
    body = response.json()
    assert isinstance(body, dict), f"problem body is not an object: {body!r}"
    assert isinstance(body.get("code"), str) and body["code"], f"problem without code: {body}"
    assert body.get("status") == response.status_code, f"status field disagrees: {body}"
    if response.status_code == 422 and body["code"] == "validation_error":
        assert isinstance(body.get("errors"), list) and body["errors"], f"no errors[]: {body}"


def fuzz_call(case: schemathesis.Case, token: str, *, problem_json: bool = True) -> None:
    """Send the case with the bearer token and run the contract checks on the answer."""
    case.call_and_validate(
        headers=bearer(token),
        checks=CHECKS,
        additional_checks=[problem_json_errors] if problem_json else [],
    )


DatabaseMaker = Callable[[str, Path], Awaitable[str]]


@pytest.fixture(scope="module")
async def fuzz_database(backends: Backends) -> AsyncIterator[DatabaseMaker]:
    """`await fuzz_database(name, migrations_dir)`: a fresh migrated database's URL.

    On teardown, the apps schemathesis started are shut down first (their pools hold
    connections), then this module's databases, and only these, are dropped: `backends`
    is shared with whatever else runs in the session.
    """
    created: list[str] = []

    async def make(name: str, migrations_dir: Path) -> str:
        url = await backends.create_database(f"fuzz_{name}")
        created.append(backends.created.pop())
        # alembic runs its own event loop (asyncio.run): keep it off the session's loop.
        await asyncio.to_thread(migrations.upgrade, migrations_dir, url)
        return url

    yield make
    schemathesis_asgi.shutdown_lifespans()
    await backends.drop_databases(created)


@pytest.fixture(scope="session")
def token_factory() -> TokenFactory:
    return TokenFactory(TEST_ISSUER, TEST_AUDIENCE)


@pytest.fixture(scope="session")
def jwks_transport(token_factory: TokenFactory) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json=token_factory.jwks()))
