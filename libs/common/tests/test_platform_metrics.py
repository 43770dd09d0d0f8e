"""The platform's own metrics count what happens: calls to peers by outcome, Redis failures,
the database pool's connections in use and the requests waiting for one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text

from platform_common.db import create_engine
from platform_common.errors import DependencyTimeout, DependencyUnavailable
from platform_common.http import ServiceClient
from platform_common.metrics import PlatformMetrics
from platform_common.redis import create_redis
from platform_common.settings import ServiceSettings
from platform_common.state import platform_state
from platform_testing import Backends, TokenFactory, free_port, running, wait_for


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_calls_to_peers_are_counted_by_outcome() -> None:
    registry = CollectorRegistry()
    metrics = PlatformMetrics(registry)
    metrics.declare_peers(["orgs"])

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            await asyncio.sleep(1)  # past the client's 0.2 s deadline
            return httpx.Response(200)
        if request.url.path == "/down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(int(request.url.path.removeprefix("/status/")))

    client = ServiceClient(
        "orgs",
        "http://orgs",
        timeout_seconds=0.2,
        transport=httpx.MockTransport(answer),
        durations=metrics.peer_requests,
    )
    count = "peer_request_duration_seconds_count"
    assert sample(registry, count, peer="orgs", outcome="timeout") == 0  # declared at zero
    try:
        await client.request("GET", "/status/200")
        await client.request("GET", "/status/404")
        with pytest.raises(DependencyUnavailable):
            await client.request("GET", "/status/503")
        with pytest.raises(DependencyUnavailable):
            await client.request("GET", "/down")
        with pytest.raises(DependencyTimeout):
            await client.request("GET", "/slow")
    finally:
        await client.aclose()
    for outcome in ("ok", "client_error", "server_error", "unreachable", "timeout"):
        assert sample(registry, count, peer="orgs", outcome=outcome) == 1, outcome
    # The timeout's duration is the deadline's (0.2 s), in the buckets from 0.25 s up.
    buckets = {
        le: sample(registry, f"{count[:-6]}_bucket", peer="orgs", outcome="timeout", le=le)
        for le in ("0.1", "0.25")
    }
    assert buckets == {"0.1": 0, "0.25": 1}


async def test_redis_failures_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = PlatformMetrics(registry)
    # Nothing listens there: every command fails to connect.
    settings = ServiceSettings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=0.5
    )
    client = create_redis(settings, errors=metrics.redis_errors)
    try:
        for _ in range(3):
            with pytest.raises(RedisConnectionError):
                await client.get("anything")
    finally:
        await client.aclose()
    assert sample(registry, "redis_errors_total", error="ConnectionError") == 3


async def test_the_pool_reports_connections_in_use_and_requests_waiting(
    demo_database_url: str, backends: Backends
) -> None:
    registry = CollectorRegistry()
    metrics = PlatformMetrics(registry)
    settings = ServiceSettings(
        database_url=demo_database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=5
    )
    engine = create_engine(settings, metrics=metrics)
    assert sample(registry, "db_pool_size") == 1
    try:
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            assert sample(registry, "db_pool_connections_in_use") == 1
            assert sample(registry, "db_pool_waiting_requests") == 0

            async def second() -> None:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))

            waiter = asyncio.create_task(second())

            async def waiting() -> bool:
                return sample(registry, "db_pool_waiting_requests") == 1

            await wait_for(waiting, within=3)
        await waiter
        assert sample(registry, "db_pool_waiting_requests") == 0
        assert sample(registry, "db_pool_connections_in_use") == 0
    finally:
        await engine.dispose()


async def test_requests_are_counted_by_route_template_status_class_and_method(
    make_app: Any, tokens: TokenFactory
) -> None:
    app = make_app(
        lambda request: httpx.Response(200, json=tokens.jwks()),
        request_timeout_seconds=0.3,
        max_requests_in_flight=1,
    )
    async with running(app, raise_app_exceptions=False) as client:
        registry = platform_state(app).metrics_registry
        assert (await client.get("/api/v1/demo/multi")).status_code == 200
        assert (await client.delete("/api/v1/demo/conflict")).status_code == 405
        assert (await client.get("/api/v1/demo/nowhere")).status_code == 404
        assert (await client.get("/livez")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        # One answer streams for a second in the only place; the next request waits in the
        # queue past the deadline and is answered 503 before any route ran: still counted
        # under its route's template.
        held = asyncio.create_task(client.get("/api/v1/demo/stream"))
        await asyncio.sleep(0.1)
        queued = await client.get("/api/v1/demo/multi")
        assert queued.status_code == 503
        await held

    def count(handler: str, status: str, method: str = "GET") -> float:
        return sample(
            registry, "http_requests_total", handler=handler, status=status, method=method
        )

    assert count("/api/v1/demo/multi", "2xx") == 1
    assert count("/api/v1/demo/multi", "5xx") == 1
    assert count("/api/v1/demo/conflict", "4xx", "DELETE") == 1
    assert count("/readyz", "2xx") == 1
    assert count("/livez", "2xx") == 0  # probes of liveness and scrapes are not counted
    seen = {
        s.labels["handler"] for m in registry.collect() for s in m.samples if "handler" in s.labels
    }
    assert "/api/v1/demo/nowhere" not in seen  # a path no route knows: no unbounded label
    assert (
        sample(
            registry,
            "http_request_duration_seconds_count",
            handler="/api/v1/demo/multi",
            method="GET",
        )
        == 2
    )
    assert (
        sample(
            registry,
            "http_request_duration_seconds_bucket",
            handler="/api/v1/demo/stream",
            method="GET",
            le="0.5",
        )
        == 0  # the duration runs until the answer is complete
    )
