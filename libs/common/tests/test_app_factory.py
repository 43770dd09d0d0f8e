"""What every service gets from the app factory: problem+json, request ids, limits, health."""

from __future__ import annotations

import asyncio
import time

import httpx
from asgi_lifespan import LifespanManager

from platform_common.state import platform_state
from platform_testing import TokenFactory, assert_problem, running


async def test_unexpected_errors_leak_nothing(demo: httpx.AsyncClient) -> None:
    r = await demo.get("/api/v1/demo/boom")
    body = assert_problem(r, 500, "internal_error")
    assert "hunter2" not in r.text
    assert "SELECT" not in r.text
    assert "Traceback" not in r.text
    assert body["detail"] == "An unexpected error occurred."


async def test_database_failures_are_503(demo: httpx.AsyncClient) -> None:
    r = await demo.get("/api/v1/demo/db-down")
    assert_problem(r, 503, "dependency_unavailable")
    assert "connection refused" not in r.text


async def test_problem_errors_carry_status_and_code(demo: httpx.AsyncClient) -> None:
    body = assert_problem(await demo.get("/api/v1/demo/conflict"), 409, "conflict")
    assert body["instance"] == "/api/v1/demo/conflict"
    assert_problem(await demo.get("/api/v1/demo/nowhere"), 404, "not_found")
    assert_problem(await demo.delete("/api/v1/demo/conflict"), 405, "method_not_allowed")


async def test_request_ids(demo: httpx.AsyncClient) -> None:
    given = await demo.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await demo.get("/livez")
    assert len(generated.headers["x-request-id"]) == 32
    hostile = await demo.get("/livez", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500


async def test_body_limit_with_and_without_content_length(demo: httpx.AsyncClient) -> None:
    big = b'{"a": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    r = await demo.post(
        "/api/v1/demo/echo", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(r, 413, "payload_too_large")

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 65536

    streamed = await demo.post(
        "/api/v1/demo/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    small = await demo.post("/api/v1/demo/echo", json={"a": 1, "b": 2})
    assert small.json() == {"keys": 2}


async def test_wrong_types_are_422_with_field_errors(demo: httpx.AsyncClient) -> None:
    r = await demo.post("/api/v1/demo/echo", json=[1, 2])
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"][0].keys() >= {"field", "message", "type"}


async def test_readiness(demo: httpx.AsyncClient) -> None:
    r = await demo.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert (await demo.get("/livez")).json() == {"status": "ok"}
    metrics = await demo.get("/metrics")
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text


async def test_readiness_fails_fast_when_redis_is_gone(make_app, tokens: TokenFactory) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        lambda request: httpx.Response(200, json=tokens.jwks()), redis_url="redis://127.0.0.1:1/0"
    )
    async with running(app, raise_app_exceptions=False) as client:
        started = time.monotonic()
        r = await client.get("/readyz")
        assert time.monotonic() - started < 2.5
        body = assert_problem(r, 503, "not_ready")
        assert body["checks"] == {"database": "ok", "redis": "unavailable"}
        assert (await client.get("/livez")).status_code == 200


async def test_readiness_turns_503_when_shutdown_starts(make_app, tokens: TokenFactory) -> None:  # type: ignore[no-untyped-def]
    app = make_app(lambda request: httpx.Response(200, json=tokens.jwks()))
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://demo"
    )
    async with LifespanManager(app):
        assert (await client.get("/readyz")).status_code == 200
    assert_problem(await client.get("/readyz"), 503, "draining")
    await client.aclose()


async def test_openapi_is_served_under_the_prefix(demo: httpx.AsyncClient) -> None:
    spec = await demo.get("/api/v1/demo/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/demo/whoami" in spec.json()["paths"]
    assert (await demo.get("/openapi.json")).status_code == 404


async def test_a_failed_commit_is_never_answered_2xx(make_app, tokens: TokenFactory) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    class FailingCommit(AsyncSession):
        async def commit(self) -> None:
            raise OperationalError("COMMIT", {}, Exception("the database went away"))

    app = make_app(lambda request: httpx.Response(200, json=tokens.jwks()))
    async with running(app, raise_app_exceptions=False) as client:
        platform_state(app).sessionmaker = async_sessionmaker(
            platform_state(app).engine, class_=FailingCommit
        )
        r = await client.post("/api/v1/demo/write")
        # The commit runs before the response is sent: its failure is the answer.
        assert_problem(r, 503, "dependency_unavailable")


async def test_unparseable_bodies_are_declared_400_and_413(demo: httpx.AsyncClient) -> None:
    # Found by tests/fuzz: a body that is not UTF-8 answered an undocumented 400.
    r = await demo.post(
        "/api/v1/demo/echo", content=b"\xff", headers={"content-type": "application/json"}
    )
    assert_problem(r, 400, "bad_request")

    paths = (await demo.get("/api/v1/demo/openapi.json")).json()["paths"]
    post_echo = paths["/api/v1/demo/echo"]["post"]["responses"]
    for status in ("400", "413"):
        content = post_echo[status]["content"]["application/problem+json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
    # Operations without a body cannot answer them, and do not say they might.
    assert "400" not in paths["/api/v1/demo/conflict"]["get"]["responses"]


async def test_no_connection_to_be_had_is_a_quick_503_not_a_hang(
    make_app, tokens: TokenFactory
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        lambda request: httpx.Response(200, json=tokens.jwks()),
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout_seconds=0.3,
    )
    async with running(app, raise_app_exceptions=False) as client:
        holder = asyncio.create_task(client.get("/api/v1/demo/hold"))
        await asyncio.sleep(0.2)  # the one connection is taken
        started = time.monotonic()
        waiting = await client.get("/api/v1/demo/hold")
        assert time.monotonic() - started < 1.0
        assert_problem(waiting, 503, "dependency_unavailable")
        assert waiting.headers["retry-after"] == "1"
        assert (await holder).status_code == 200


async def test_405_lists_every_method_served_at_the_path(demo: httpx.AsyncClient) -> None:
    # /hold is GET and /echo POST: one method each. A path with several routes (one per method,
    # as FastAPI makes them) lists them all, not only the first route's.
    response = await demo.put("/api/v1/demo/multi")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"


async def test_policy_headers_on_every_response(demo: httpx.AsyncClient) -> None:
    for response in (
        await demo.post("/api/v1/demo/echo", json={"a": 1}),
        await demo.get("/api/v1/demo/conflict"),
        await demo.get("/api/v1/demo/boom"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        assert response.headers["cache-control"] == "no-store"
    docs = await demo.get("/api/v1/demo/docs")
    assert docs.status_code == 200
    assert "content-security-policy" not in docs.headers


async def test_cors_preflight_and_actual_request(make_app, tokens: TokenFactory) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        lambda request: httpx.Response(200, json=tokens.jwks()),
        cors_origins="https://app.example, https://admin.example",
    )
    preflight_headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with running(app, raise_app_exceptions=False) as client:
        allowed = await client.options(
            "/api/v1/demo/echo", headers={"Origin": "https://app.example", **preflight_headers}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers

        refused = await client.options(
            "/api/v1/demo/echo", headers={"Origin": "https://evil.example", **preflight_headers}
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        actual = await client.post(
            "/api/v1/demo/echo", json={"a": 1}, headers={"Origin": "https://admin.example"}
        )
        assert actual.headers["access-control-allow-origin"] == "https://admin.example"
        exposed = actual.headers["access-control-expose-headers"].lower()
        assert {"x-request-id", "retry-after", "ratelimit"} <= {
            h.strip() for h in exposed.split(",")
        }


async def test_no_cross_origin_access_by_default(demo: httpx.AsyncClient) -> None:
    response = await demo.post(
        "/api/v1/demo/echo", json={"a": 1}, headers={"Origin": "https://app.example"}
    )
    assert "access-control-allow-origin" not in response.headers
