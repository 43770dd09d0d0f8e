"""The request deadline: a database that hangs instead of refusing costs a prompt 503.

The service is the real users app on the real PostgreSQL, reached through a TCP proxy the
test pauses (connections stay open, nothing answers: a hung server, not a dead one). The
middleware's own rules (later sends dropped, a started answer never cut, the cancelled
work not awaited) are checked on plain ASGI apps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Message

from platform_common.db import create_engine
from platform_common.deadline import DeadlineMiddleware
from platform_common.revocation import EPOCH_KEY
from platform_testing import (
    TEST_AUDIENCE,
    TEST_ISSUER,
    Backends,
    TokenFactory,
    asgi_get,
    assert_problem,
    client_factory,
    jwks_transport,
    migrated_database,
    verifying_settings,
    wait_for,
)
from platform_testing.tcp_proxy import TcpProxy
from users.app import create_app
from users.config import UsersSettings
from users.migrate import MIGRATIONS

DEADLINE = 1.0
ME = "/api/v1/users/me"


# --- the middleware on plain ASGI apps ------------------------------------------------------


async def call(app: ASGIApp, path: str = "/api/v1/demo/slow") -> tuple[list[Message], float]:
    """One GET through a DeadlineMiddleware; what reached the server, and how long it took."""
    started = time.monotonic()
    sent = await asgi_get(DeadlineMiddleware(app, timeout_seconds=DEADLINE), path)
    return sent, time.monotonic() - started


def start_of(sent: list[Message]) -> tuple[int, dict[bytes, bytes]]:
    assert sent and sent[0]["type"] == "http.response.start"
    return sent[0]["status"], dict(sent[0]["headers"])


async def answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_no_answer_by_the_deadline_is_a_503_at_once_and_later_sends_are_dropped() -> None:
    release = asyncio.Event()
    tried_to_answer = asyncio.Event()

    async def hung(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            # Clean-up that hangs too (a rollback on a socket nobody answers), then an answer.
            await asyncio.shield(release.wait())
            tried_to_answer.set()
            await answer(send, 500, b"too late")

    sent, elapsed = await call(hung)

    assert DEADLINE <= elapsed < DEADLINE + 0.5
    status, headers = start_of(sent)
    assert status == 503
    assert headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"application/problem+json"
    body = json.loads(sent[1]["body"])
    assert body["code"] == "request_timeout"
    assert body["status"] == 503
    assert body["instance"] == "/api/v1/demo/slow"

    release.set()
    await asyncio.wait_for(tried_to_answer.wait(), 1)
    await asyncio.sleep(0.05)
    assert len(sent) == 2, "the abandoned request's own answer must not reach the client"


async def test_an_answer_already_started_is_not_cut() -> None:
    async def slow_body(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(DEADLINE * 1.5)
        await send({"type": "http.response.body", "body": b"complete"})

    sent, elapsed = await call(slow_body)

    assert elapsed >= DEADLINE * 1.5
    assert start_of(sent)[0] == 200
    assert [m.get("body") for m in sent[1:]] == [b"complete"]


async def test_a_quick_answer_and_an_error_pass_through() -> None:
    async def quick(scope: Any, receive: Any, send: Any) -> None:
        await answer(send, 201, b"made")

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("bug")

    sent, elapsed = await call(quick)
    assert start_of(sent)[0] == 201
    assert elapsed < 0.5
    # Raised to the edge, which logs it and answers 500.
    with pytest.raises(RuntimeError, match="bug"):
        await call(broken)


async def test_probes_are_not_bound() -> None:
    async def slow_probe(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(DEADLINE * 1.5)
        await answer(send, 200, b"ok")

    sent, _ = await call(slow_probe, "/livez")
    assert start_of(sent)[0] == 200


async def test_what_the_abandoned_request_raises_is_logged_not_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done = asyncio.Event()

    async def fails_on_cancel(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            done.set()
            raise RuntimeError("rollback failed") from None

    with caplog.at_level(logging.INFO, logger="platform_common.deadline"):
        sent, _ = await call(fails_on_cancel)
        await asyncio.wait_for(done.wait(), 1)
        await asyncio.sleep(0.05)

    assert start_of(sent)[0] == 503
    messages = [record.getMessage() for record in caplog.records]
    assert any("answered 503 request_timeout" in m for m in messages)
    assert any("rollback failed" in m for m in messages)


# --- the users service on a PostgreSQL that stops answering ---------------------------------


@pytest.fixture(scope="module")
async def users_database(backends: Backends) -> AsyncIterator[str]:
    url = await migrated_database(backends, "deadline", MIGRATIONS)
    yield url
    await backends.drop_databases([str(make_url(url).database)])


@pytest.fixture
async def database_proxy(users_database: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of the test PostgreSQL, and the database URL that goes through it."""
    url = make_url(users_database)
    socket_dir = url.query.get("host")
    if socket_dir:  # the embedded server, on a Unix socket
        upstream = TcpProxy(f"{socket_dir}/.s.PGSQL.{url.port or 5432}")
        url = url.difference_update_query(["host"])
    else:
        upstream = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    async with upstream as proxy:
        proxied = url.set(host=proxy.host, port=proxy.port)
        yield proxy, proxied.render_as_string(hide_password=False)


@pytest.fixture
async def users(
    database_proxy: tuple[TcpProxy, str], backends: Backends
) -> AsyncIterator[httpx.AsyncClient]:
    """The users app, its database behind the proxy; the client carries a user's token."""
    proxy, database_url = database_proxy
    # Verifiers fail closed without the revocation epoch auth writes (platform_common.revocation).
    async with Redis.from_url(backends.redis_url) as redis:
        await redis.set(EPOCH_KEY, "test", nx=True)
    tokens = TokenFactory(TEST_ISSUER, TEST_AUDIENCE)
    orgs = httpx.MockTransport(
        lambda request: httpx.Response(
            200, json={"items": [], "total": 0, "page": 1, "limit": 100, "pages": 0}
        )
    )
    settings = verifying_settings(database_url, backends.redis_url, orgs_url="http://orgs.test")
    make_client = client_factory(
        create_app, UsersSettings, settings, {"jwks": jwks_transport(tokens), "orgs": orgs}
    )
    # No event relay: its polls would hold pool connections the tests count.
    async with make_client(
        request_timeout_seconds=DEADLINE, db_statement_timeout_ms=1000, events_relay_enabled=False
    ) as client:
        token = tokens.mint(email="hung@example.com", name="Hung Database")
        client.headers["Authorization"] = f"Bearer {token}"
        try:
            yield client
        finally:
            # Whatever the test did, the app's shutdown must not wait on a paused proxy.
            proxy.resume()


async def test_a_hung_database_costs_a_prompt_503_and_the_service_recovers(
    users: httpx.AsyncClient, database_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, _ = database_proxy
    assert (await users.get(ME)).status_code == 200

    proxy.pause()
    started = time.monotonic()
    response = await users.get(ME)
    elapsed = time.monotonic() - started

    assert_problem(response, 503, "request_timeout")
    assert response.headers["retry-after"] == "1"
    assert DEADLINE <= elapsed < DEADLINE + 1

    started = time.monotonic()
    assert (await users.get("/livez")).status_code == 200
    assert time.monotonic() - started < 0.5

    # Still hung, and new connections hang as well: each request keeps its bound (the connect
    # timeout, here equal to the deadline, may answer first: 503 dependency_unavailable).
    started = time.monotonic()
    responses = await asyncio.gather(*(users.get(ME) for _ in range(3)))
    assert time.monotonic() - started < DEADLINE + 1
    for response in responses:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["code"] in {"request_timeout", "dependency_unavailable"}

    proxy.resume()

    async def answers() -> bool:
        return (await users.get(ME)).status_code == 200

    await wait_for(answers, within=5, interval=0.1)
    assert [(await users.get(ME)).status_code for _ in range(5)] == [200] * 5


async def test_a_hung_connection_goes_back_to_the_pool_while_the_database_still_hangs(
    users: httpx.AsyncClient, database_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, _ = database_proxy
    pool = users.app.state.platform.engine.pool  # type: ignore[attr-defined]
    assert (await users.get(ME)).status_code == 200
    assert pool.checkedout() == 0

    proxy.pause()
    responses = await asyncio.gather(users.get(ME), users.get(ME))
    assert [r.status_code for r in responses] == [503, 503]
    assert pool.checkedout() >= 1, "the abandoned requests are still waiting on the database"

    # The cancelled requests' connections are closed (SQLAlchemy gives a graceful close 2 s,
    # then terminates): the pool is not drained by requests whose clients left long ago.
    async def all_returned() -> bool:
        return bool(pool.checkedout() == 0)

    await wait_for(all_returned, within=3)
    assert proxy.paused


async def test_work_no_deadline_covers_is_still_bounded_by_the_driver(
    database_proxy: tuple[TcpProxy, str], backends: Backends
) -> None:
    """A background job or a probe on a hung database: asyncpg's timeouts (db.py) end it."""
    proxy, database_url = database_proxy
    settings = UsersSettings(
        **verifying_settings(database_url, backends.redis_url),
        request_timeout_seconds=0.5,
        db_statement_timeout_ms=500,
    )
    # connect timeout min(pool timeout, deadline) = 0.5 s; command timeout
    # max(statement timeout, deadline) + 1 = 1.5 s, which asyncpg spends once waiting for the
    # answer and once more on its cancel request before it drops the connection.
    engine = create_engine(settings)
    try:
        async with asyncio.timeout(10), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            proxy.pause()
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await conn.execute(text("SELECT 1"))
            assert 1.5 <= time.monotonic() - started < 3 + 0.5

        started = time.monotonic()
        async with asyncio.timeout(10):
            with pytest.raises(TimeoutError):
                async with engine.connect():
                    pass
        assert time.monotonic() - started < 0.5 + 0.5
    finally:
        proxy.resume()
        await engine.dispose()
