"""The client services use to call each other.

One `httpx.AsyncClient` per peer per app (connection reuse). Every call:
- carries the caller's `Authorization` (JWT propagation), `X-Request-ID` and the W3C trace
  context (`traceparent`) of a client span;
- is bounded by a total deadline (`http_timeout_seconds`, 2 s by default), not only httpx's
  per-phase timeouts, so a peer that trickles bytes cannot hold a request;
- turns the peer's failure into our own problem: timeout -> 504 `dependency_timeout`,
  unreachable or 5xx -> 503 `dependency_unavailable`. 4xx answers are returned for the
  caller to interpret.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Histogram

from platform_common.errors import DependencyTimeout, DependencyUnavailable
from platform_common.observability import trace_http
from platform_common.request_context import (
    REQUEST_ID_HEADER,
    current_authorization,
    current_request_id,
)

tracer = trace.get_tracer(__name__)

_CALLER = object()  # sentinel: propagate the incoming request's Authorization


class ServiceClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_seconds: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        durations: Histogram | None = None,
        traced: bool = False,
    ) -> None:
        self.name = name
        self.durations = durations
        self.timeout_seconds = timeout_seconds
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        if traced:
            # The HTTP client span, inside this call's span (which says which peer).
            trace_http(self._client)

    async def request(
        self,
        method: str,
        path: str,
        *,
        authorization: Any = _CALLER,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        auth_header = current_authorization() if authorization is _CALLER else authorization
        if auth_header:
            headers["Authorization"] = auth_header
        request_id = current_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id

        with tracer.start_as_current_span(f"{method} {self.name}", kind=SpanKind.CLIENT) as span:
            span.set_attribute("peer.service", self.name)
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", path)
            propagate.inject(headers)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    response = await self._client.request(
                        method, path, headers=headers, json=json, params=params
                    )
            except (TimeoutError, httpx.TimeoutException) as exc:
                self._observe("timeout", started)
                span.set_status(Status(StatusCode.ERROR, "timeout"))
                raise DependencyTimeout(
                    f"The {self.name} service did not answer within {self.timeout_seconds:g} s."
                ) from exc
            except httpx.HTTPError as exc:
                self._observe("unreachable", started)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise DependencyUnavailable(f"The {self.name} service is unreachable.") from exc
            status = response.status_code
            self._observe(
                "server_error" if status >= 500 else "client_error" if status >= 400 else "ok",
                started,
            )
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR, str(response.status_code)))
                raise DependencyUnavailable(
                    f"The {self.name} service failed (HTTP {response.status_code})."
                )
            return response

    def _observe(self, outcome: str, started: float) -> None:
        if self.durations is not None:
            self.durations.labels(peer=self.name, outcome=outcome).observe(
                time.perf_counter() - started
            )

    async def aclose(self) -> None:
        await self._client.aclose()
