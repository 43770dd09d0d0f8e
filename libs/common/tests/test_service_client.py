"""The service client: propagation of the caller's context, and failures mapped to ours."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from platform_common.errors import DependencyTimeout, DependencyUnavailable
from platform_common.http import ServiceClient
from platform_common.request_context import _authorization, _request_id


def client_for(handler, timeout: float = 2.0) -> ServiceClient:  # type: ignore[no-untyped-def]
    return ServiceClient(
        "peer", "http://peer.test", timeout_seconds=timeout, transport=httpx.MockTransport(handler)
    )


async def test_propagates_token_request_id_and_trace_context() -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={})

    trace.set_tracer_provider(TracerProvider())
    client = client_for(handler)
    auth_token = _authorization.set("Bearer caller-token")
    rid_token = _request_id.set("req-42")
    try:
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("incoming") as span:
            await client.request("GET", "/x")
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        _authorization.reset(auth_token)
        _request_id.reset(rid_token)
    headers = seen[0]
    assert headers["authorization"] == "Bearer caller-token"
    assert headers["x-request-id"] == "req-42"
    assert headers["traceparent"].split("-")[1] == trace_id
    # An explicit credential (a service token) replaces the caller's.
    await client.request("GET", "/x", authorization="Bearer service")
    assert seen[1]["authorization"] == "Bearer service"
    await client.aclose()


async def test_slow_peer_is_504_within_the_deadline() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    client = client_for(slow, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(DependencyTimeout) as info:
        await client.request("GET", "/slow")
    assert time.monotonic() - started < 1.5  # the 0.3 s deadline, not the peer's 5 s
    assert info.value.status == 504
    await client.aclose()


@pytest.mark.parametrize("failure", ["connect", "500", "503"])
async def test_failing_peer_is_503(failure: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(int(failure), text="Traceback: internal")

    client = client_for(handler)
    with pytest.raises(DependencyUnavailable) as info:
        await client.request("GET", "/x")
    assert "Traceback" not in info.value.detail
    await client.aclose()


async def test_client_errors_are_returned_to_the_caller() -> None:
    client = client_for(lambda request: httpx.Response(404, json={"code": "not_found"}))
    response = await client.request("GET", "/x")
    assert response.status_code == 404
    await client.aclose()
