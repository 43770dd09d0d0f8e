"""Apps under test, in-process: one way to build a client, and what tests assert on answers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from platform_testing.backends import ensure_revocation_epoch


async def wait_for(predicate: Any, within: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


async def asgi_get(app: Any, path: str) -> list[Any]:
    """One bare GET straight through an ASGI app (no server, no client); the messages it sent."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    await app(scope, receive, send)
    return sent


async def refused_within(
    send: Callable[[], Awaitable[httpx.Response]], within: float = 5.0, interval: float = 0.1
) -> float:
    """Repeat a request that still succeeds until it answers 401 `invalid_token` (a revoked
    token); the seconds that took. Fails if it is still accepted after `within`."""
    started = time.monotonic()
    while True:
        response = await send()
        if response.status_code == 401:
            assert_problem(response, 401, "invalid_token")
            return time.monotonic() - started
        assert response.status_code < 300, response.text
        assert time.monotonic() - started < within, f"still accepted after {within} s"
        await asyncio.sleep(interval)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem response with the given status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert {"type", "title", "detail", "instance", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@contextlib.asynccontextmanager
async def running(
    app: Any, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client that talks to it in-process.

    `raise_app_exceptions=False` lets a test see the 500 the app answers instead of the
    exception behind it."""
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(manager.app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def client_factory(
    create_app: Any,
    settings_type: Any,
    base_settings: dict[str, Any],
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    **app_kwargs: Any,
) -> Any:
    """The one way a service's tests get an app and a client talking to it in-process.

    `async with factory(**setting_overrides) as client:` builds the settings from
    `base_settings` plus the overrides, the app with `transports` standing in for its peers,
    runs its lifespan and yields an `httpx.AsyncClient`; `client.app` is the app.
    """

    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = settings_type(**{**base_settings, **overrides})
        if settings.redis_url:
            await ensure_revocation_epoch(settings.redis_url)
        app = create_app(settings, transports=transports, **app_kwargs)
        async with running(app) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client

    return factory
