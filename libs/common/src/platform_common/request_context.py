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
# The request's ASGI scope, for what is worked out only when needed (an event's client
# address and user agent: platform_common.events).
_scope: ContextVar[Scope | None] = ContextVar("scope", default=None)
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


def bind_client(scope: Scope) -> Token[Scope | None]:
    return _scope.set(scope)


def unbind_client(token: Token[Scope | None]) -> None:
    _scope.reset(token)


def current_client() -> tuple[str | None, str | None]:
    """The current request's client address (platform_common.client_address, with the
    app's trusted proxies) and User-Agent; (None, None) outside a request."""
    scope = _scope.get()
    if scope is None:
        return None, None
    from platform_common.client_address import client_address
    from platform_common.state import platform_state

    user_agent: str | None = None
    forwarded: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            forwarded.append(value.decode("latin-1"))
    peer = scope.get("client")
    try:
        proxies = platform_state(scope["app"]).settings.trusted_proxies
    except (KeyError, AttributeError):
        proxies = []
    return client_address(peer[0] if peer else None, forwarded, proxies), user_agent
