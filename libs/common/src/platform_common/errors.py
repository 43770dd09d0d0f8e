"""Errors as RFC 9457 problem details.

```
ProblemError                       status, code, title; rendered as application/problem+json
├── BadRequest (400)
├── Unauthorized (401)             adds WWW-Authenticate: Bearer
├── Forbidden (403)
├── NotFound (404)
├── Conflict (409)
├── Gone (410)
├── RateLimited (429)              adds Retry-After
├── DependencyUnavailable (503)    a database, Redis or peer service failed
└── DependencyTimeout (504)        a peer service did not answer in time
```

Services raise these (or subclasses with a specific `code`); `install_error_handlers` turns
them, request validation errors and anything unexpected into problem+json. Unexpected
exceptions are logged with their traceback and answered with a bare 500: no stack trace,
SQL or exception text ever reaches the client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_common.request_context import current_request_id

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str | None] = None
    # Most errors undo the request's writes. A few are the outcome of a write that must
    # stand (a refresh-token reuse ends the session, then answers 401): they set this.
    commit_changes: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail()
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)

    @classmethod
    def default_detail(cls) -> str:
        return cls.title or HTTPStatus(cls.status).phrase


class BadRequest(ProblemError):
    status = 400
    code = "bad_request"


class Unauthorized(ProblemError):
    status = 401
    code = "unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')


class Forbidden(ProblemError):
    status = 403
    code = "forbidden"


class NotFound(ProblemError):
    status = 404
    code = "not_found"


class Conflict(ProblemError):
    status = 409
    code = "conflict"


class Gone(ProblemError):
    status = 410
    code = "gone"


class RateLimited(ProblemError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = max(1, int(retry_after))


class DependencyUnavailable(ProblemError):
    status = 503
    code = "dependency_unavailable"
    title = "A dependency is unavailable"


class DependencyTimeout(ProblemError):
    status = 504
    code = "dependency_timeout"
    title = "A dependency did not answer in time"


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class Problem(BaseModel):
    """The body of every error response (documented in each service's OpenAPI)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    code: str
    request_id: str | None = None
    errors: list[FieldError] | None = None


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
        "request_id": current_request_id(),
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


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


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
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

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
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

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            request,
            status=exc.status_code,
            code=_HTTP_CODES.get(exc.status_code, "http_error"),
            detail=str(exc.detail) if exc.detail else HTTPStatus(exc.status_code).phrase,
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def on_dependency(request: Request, exc: Exception) -> JSONResponse:
        # A database or Redis failure that escaped the service layer: 503, never a 500 with
        # the driver's message.
        logger.warning("dependency failure on %s: %r", request.url.path, exc)
        return problem_response(
            request,
            status=503,
            code="dependency_unavailable",
            title=DependencyUnavailable.title,
            detail="A backing service is unavailable; try again shortly.",
            headers={"Retry-After": "1"},
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for exc_type in (OperationalError, PoolTimeoutError, RedisError, ConnectionError, TimeoutError):
        app.add_exception_handler(exc_type, on_dependency)
    app.add_exception_handler(DBAPIError, on_dependency_or_bug(on_dependency))


def on_dependency_or_bug(dependency: Any) -> Any:
    """DBAPIError covers both lost connections (503) and genuine bugs such as a bad query,
    which are re-raised to become a 500 in `UnhandledErrorMiddleware`."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError)
        if exc.connection_invalidated or isinstance(exc, OperationalError):
            response: JSONResponse = await dependency(request, exc)
            return response
        raise exc

    return handler


class UnhandledErrorMiddleware:
    """Turns anything no handler took into a bare 500 problem, logged with its traceback.

    Starlette's own last-resort handler sits outside every middleware, so its 500s would
    carry no `X-Request-ID`; this one runs inside the request context.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = JSONResponse(
                {
                    "type": "about:blank",
                    "title": "Internal Server Error",
                    "status": 500,
                    "detail": "An unexpected error occurred.",
                    "instance": scope.get("path", ""),
                    "code": "internal_error",
                    "request_id": current_request_id(),
                },
                status_code=500,
                media_type=PROBLEM_CONTENT_TYPE,
            )
            await response(scope, receive, send)
