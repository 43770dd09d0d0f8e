"""The one pure-ASGI layer every request passes first (outermost in the app).

```
EdgeMiddleware
  request id        X-Request-ID echoed when sane, else generated; set on every response
  policy headers    nosniff, no referrer, a strict CSP (not on the docs pages), no-store
                    (not on the JWKS and discovery documents)
  caller context    the Authorization header, for calls to other services (http.py)
  rate-limit headers  RateLimit-Policy / RateLimit, as rate_limit.py left them in the scope
  body limit        413 up front on Content-Length, or mid-stream for chunked bodies
  last resort       anything no exception handler took: logged, answered as a bare 500
  request metrics   http_requests_total and http_request_duration_seconds by the route's
                    template (metrics.py); /metrics and /livez are not counted, paths no
                    route knows (404s) neither
  access log        one line per request, with its id, path parameters as `{name}`
```

One layer instead of five: each ASGI layer wraps `send`/`receive` and costs a little on every
request, and these all need the same facts (has the response started, its status). Pure ASGI,
not BaseHTTPMiddleware, which would break streaming and context variables.
"""

from __future__ import annotations

import logging
import time
import uuid

from prometheus_client import Counter, Histogram
from prometheus_fastapi_instrumentator.routing import get_route_name
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_common.errors import send_problem
from platform_common.metrics import PlatformMetrics
from platform_common.request_context import (
    RATE_LIMIT_HEADERS,
    REQUEST_ID_HEADER,
    bind_client,
    bind_request,
    is_safe_request_id,
    loggable_path,
    unbind_client,
    unbind_request,
)

logger = logging.getLogger("platform_common.errors")
access_logger = logging.getLogger("platform_common.access")
_NOT_LOGGED = frozenset({"/livez", "/readyz", "/metrics"})
# /readyz is measured: its 503s are what the readiness alert watches.
_NOT_MEASURED = frozenset({"/livez", "/metrics"})
_ID_HEADER = REQUEST_ID_HEADER.lower().encode()
# On every response. An API answers JSON, which no browser should sniff, frame or run.
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_STRICT_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# Tokens, invitations and profiles must not sit in a shared or browser cache (RFC 6749 5.1
# for token responses); what is public and meant to be cached (the JWKS, discovery) is not.
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
_CACHEABLE_SUFFIXES = ("/jwks.json", "/.well-known/openid-configuration")


def response_policy_headers(path: str) -> list[tuple[bytes, bytes]]:
    headers = list(_SECURITY_HEADERS)
    # The Swagger UI pages load their scripts and styles: no strict policy there.
    if "/docs" not in path:
        headers.append(_STRICT_CSP)
    if not path.endswith(_CACHEABLE_SUFFIXES):
        headers.extend(_NO_STORE)
    return headers


class BodyTooLarge(HTTPException):
    """Raised mid-stream. An HTTPException because FastAPI turns any other exception raised
    while it reads a body into a 400; this one reaches the problem+json handler as a 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body exceeds {max_bytes} bytes.")


class RequestMetrics:
    """The two request metrics, with each label set's children kept (prometheus_client's
    `labels()` validates and locks on every call)."""

    def __init__(self, metrics: PlatformMetrics) -> None:
        self._requests = metrics.http_requests
        self._durations = metrics.http_request_duration
        self._children: dict[tuple[str, int, str], tuple[Counter, Histogram]] = {}

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        handler = getattr(route, "path", None)
        if handler is None:
            # Answered before routing (a 413, a queued request's 503) or by no route: the
            # template as the instrumentator finds it, matching the routes again (rare).
            handler = get_route_name(HTTPConnection(scope), should_include_root_path=False)
            if handler is None:
                return  # no route has this path: an unbounded label, not recorded
        method: str = scope["method"]
        key = (method, status, handler)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > 10_000:
                self._children.clear()
            children = self._children[key] = (
                self._requests.labels(method, f"{str(status)[0]}xx", handler),
                self._durations.labels(handler, method),
            )
        children[0].inc()
        children[1].observe(seconds)


class EdgeMiddleware:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, metrics: PlatformMetrics | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = RequestMetrics(metrics) if metrics is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = authorization = None
        declared = 0
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                declared = int(value) if value.isdigit() else 0
        request_id = incoming if incoming and is_safe_request_id(incoming) else uuid.uuid4().hex
        tokens = bind_request(request_id, authorization)
        client_token = bind_client(scope)
        started_at = time.perf_counter()
        status = 500  # what the client gets if nothing starts a response
        response_started = False
        added = [
            (_ID_HEADER, request_id.encode("latin-1")),
            *response_policy_headers(scope["path"]),
        ]

        async def edge_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                present = {name for name, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *(header for header in added if header[0] not in present),
                    # Left in the scope by platform_common.rate_limit.
                    *scope.get(RATE_LIMIT_HEADERS, ()),
                ]
            await send(message)

        received = 0
        limit = self.max_body_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            if declared > limit:
                await self._too_large(scope, edge_send)
            else:
                await self.app(scope, counting_receive, edge_send)
        except BodyTooLarge:
            if not response_started:
                await self._too_large(scope, edge_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], loggable_path(scope))
            if response_started:
                raise
            await send_problem(
                scope,
                edge_send,
                status=500,
                code="internal_error",
                title="Internal Server Error",
                detail="An unexpected error occurred.",
            )
        finally:
            path = scope["path"]
            elapsed = time.perf_counter() - started_at
            if self.metrics is not None and path not in _NOT_MEASURED:
                self.metrics.record(scope, status, elapsed)
            if path not in _NOT_LOGGED:
                access_logger.info(
                    "%s %s %d %.1fms",
                    scope["method"],
                    loggable_path(scope),
                    status,
                    elapsed * 1000,
                )
            unbind_request(tokens)
            unbind_client(client_token)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await send_problem(
            scope,
            send,
            status=413,
            code="payload_too_large",
            title="Content Too Large",
            detail=f"The request body exceeds {self.max_body_bytes} bytes.",
            headers=[(b"connection", b"close")],
        )
