"""Per-request context: the request id and the caller's credentials.

`X-Request-ID` is echoed when the caller sends a sane one, else generated. Both it and the
caller's `Authorization` header live in context variables so that error bodies, logs and
outgoing calls to other services (`platform_common.http`) carry them without threading them
through every function.

The same middleware logs one line per request (`platform_common.access`: method, path,
status, duration) inside the request's context, so the line carries the request
id and a request can be followed from service to service in the logs. Path parameters are
logged as `{name}`, not their values: paths can hold secrets (invitation tokens). Probes
and metric scrapes are not logged.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_authorization: ContextVar[str | None] = ContextVar("authorization", default=None)
# Only ids that are safe to log and echo: bounded length, no control characters.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
access_logger = logging.getLogger("platform_common.access")
_NOT_LOGGED = frozenset({"/livez", "/readyz", "/metrics"})


def current_request_id() -> str | None:
    return _request_id.get()


def current_authorization() -> str | None:
    """The incoming request's Authorization header, to propagate to other services."""
    return _authorization.get()


def _loggable_path(scope: Scope) -> str:
    """The path with each path parameter's segment as `{name}`, control characters escaped."""
    params = {str(value): name for name, value in scope.get("path_params", {}).items()}
    segments = [
        "{" + params[segment] + "}" if segment in params else segment
        for segment in scope["path"].split("/")
    ]
    return repr("/".join(segments))[1:-1]


class RequestContextMiddleware:
    """Pure ASGI middleware (BaseHTTPMiddleware would break streaming and contextvars)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = authorization = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        request_id = incoming if incoming and _SAFE_ID.match(incoming) else uuid.uuid4().hex
        id_token = _request_id.set(request_id)
        auth_token = _authorization.set(authorization)
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["path"] not in _NOT_LOGGED:
                access_logger.info(
                    "%s %s %d %.1fms",
                    scope["method"],
                    _loggable_path(scope),
                    status,
                    (time.perf_counter() - started) * 1000,
                )
            _request_id.reset(id_token)
            _authorization.reset(auth_token)
