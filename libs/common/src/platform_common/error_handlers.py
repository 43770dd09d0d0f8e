"""The exception handlers every service installs: each error becomes problem+json.

They are module functions, so that a service can specialise one (auth answers its OAuth2
endpoint's errors in RFC 6749 form) and fall back on the common one, through
`create_service_app(exception_handlers=...)`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from platform_common.errors import DependencyUnavailable, ProblemError, problem_response
from platform_common.request_context import loggable_path

logger = logging.getLogger("platform_common.errors")


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def problem_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    if exc.status >= 500:
        logger.warning("%s: %s", exc.code, exc.detail)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        detail=exc.detail,
        title=exc.title,
        headers=exc.headers,
        extra=exc.extra,
    )


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": _field_name(err.get("loc", ())),
            "message": str(err.get("msg", "invalid value")),
            "type": str(err.get("type", "value_error")),
        }
        for err in exc.errors()
    ]
    return problem_response(
        request,
        status=422,
        code="validation_error",
        title="Request validation failed",
        detail="The request is not valid; see `errors` for each field.",
        extra={"errors": errors},
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(
        request,
        status=exc.status_code,
        code=_HTTP_CODES.get(exc.status_code, "http_error"),
        detail=str(exc.detail) if exc.detail else HTTPStatus(exc.status_code).phrase,
        headers=headers or None,
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's 405 names only the methods of
    the first route that matched the path, and FastAPI makes one route per method."""
    allowed: set[str] = set()
    scope = {**request.scope, "method": "GET"}
    routes = list(request.app.router.routes)
    while routes:
        route = routes.pop()
        # FastAPI keeps an included router whole; its routes carry their full paths.
        included = getattr(route, "original_router", None)
        if included is not None:
            routes.extend(included.routes)
        elif route.matches(scope)[0] != Match.NONE:
            allowed |= getattr(route, "methods", None) or set()
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed)


async def dependency_error_handler(request: Request, exc: Exception) -> Response:
    """A database or Redis failure that escaped the service layer: 503, never a 500 with the
    driver's message."""
    # The path with its parameters as `{name}`: a path can hold a secret (an invitation token).
    logger.warning("dependency failure on %s: %r", loggable_path(request.scope), exc)
    return problem_response(
        request,
        status=503,
        code="dependency_unavailable",
        title=DependencyUnavailable.title,
        detail="A backing service is unavailable; try again shortly.",
        headers={"Retry-After": "1"},
    )


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """DBAPIError covers both lost connections (503) and genuine bugs such as a bad query,
    which are re-raised to become a 500 at the edge."""
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return await dependency_error_handler(request, exc)
    raise exc


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def install_error_handlers(
    app: FastAPI, overrides: Mapping[type[Exception], ExceptionHandler] | None = None
) -> None:
    """The common handlers, then the service's `overrides` (which may call the common ones)."""
    handlers: dict[type[Exception], ExceptionHandler] = {
        ProblemError: problem_error_handler,
        RequestValidationError: validation_error_handler,
        StarletteHTTPException: http_exception_handler,
        DBAPIError: database_error_handler,
    }
    dependency_failures: tuple[type[Exception], ...] = (
        OperationalError,
        PoolTimeoutError,
        RedisError,
        ConnectionError,
        TimeoutError,
    )
    handlers.update(dict.fromkeys(dependency_failures, dependency_error_handler))
    handlers.update(overrides or {})
    for exc_type, handler in handlers.items():
        app.add_exception_handler(exc_type, handler)
