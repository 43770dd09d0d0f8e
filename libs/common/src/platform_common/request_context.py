"""Per-request context: the request id and the caller's credentials.

The edge middleware (`platform_common.edge`) binds both for the duration of a request; they
live in context variables so that error bodies, logs and outgoing calls to other services
(`platform_common.http`) carry them without threading them through every function.

Logged paths show each path parameter as `{name}`, not its value: paths can hold secrets
(invitation tokens).
"""

from __future__ import annotations

import re
from contextvars import ContextVar, Token

from opentelemetry import trace
from starlette.types import Scope

# The scope key where platform_common.rate_limit leaves the RateLimit headers for
# EdgeMiddleware to send (error responses included).
RATE_LIMIT_HEADERS = "platform.rate_limit_headers"
REQUEST_ID_HEADER = "X-Request-ID"
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_authorization: ContextVar[str | None] = ContextVar("authorization", default=None)
# Only ids that are safe to log and echo: bounded length, no control characters.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def current_request_id() -> str | None:
    return _request_id.get()


def current_authorization() -> str | None:
    """The incoming request's Authorization header, to propagate to other services."""
    return _authorization.get()


def is_safe_request_id(value: str) -> bool:
    return _SAFE_ID.match(value) is not None


def bind_request(request_id: str, authorization: str | None) -> tuple[Token[str | None], ...]:
    # The edge binds inside the request's server span: the id makes the trace findable.
    trace.get_current_span().set_attribute("request.id", request_id)
    return _request_id.set(request_id), _authorization.set(authorization)


def unbind_request(tokens: tuple[Token[str | None], ...]) -> None:
    request_token, authorization_token = tokens
    _request_id.reset(request_token)
    _authorization.reset(authorization_token)


def loggable_path(scope: Scope) -> str:
    """The path with each path parameter's segment as `{name}`, control characters escaped."""
    params = {str(value): name for name, value in scope.get("path_params", {}).items()}
    segments = [
        "{" + params[segment] + "}" if segment in params else segment
        for segment in scope["path"].split("/")
    ]
    return repr("/".join(segments))[1:-1]
