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
them and request validation errors into problem+json, every body built by `problem_body`.
Anything no handler takes is logged with its traceback by the edge middleware and answered
with a bare 500: no stack trace, SQL or exception text ever reaches the client.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Scope, Send

from platform_common.request_context import current_request_id

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Subclasses declare what they are in their class line:
    `class SlugTaken(Conflict, code="slug_taken", title="Slug already taken"): ...`"""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str | None] = None
    declared_detail: ClassVar[str | None] = None
    # Most errors undo the request's writes. A few are the outcome of a write that must
    # stand (a refresh-token reuse ends the session, then answers 401): they set this.
    commit_changes: ClassVar[bool] = False

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code
        if title is not None:
            cls.title = title
        if detail is not None:
            cls.declared_detail = detail

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
        return cls.declared_detail or cls.title or HTTPStatus(cls.status).phrase


class BadRequest(ProblemError, status=400, code="bad_request"): ...


class Unauthorized(ProblemError, status=401, code="unauthorized"):
    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')


class Forbidden(ProblemError, status=403, code="forbidden"): ...


class NotFound(ProblemError, status=404, code="not_found"): ...


class Conflict(ProblemError, status=409, code="conflict"): ...


class Gone(ProblemError, status=410, code="gone"): ...


class RateLimited(ProblemError, status=429, code="rate_limited", title="Too many requests"):
    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = max(1, int(retry_after))


class DependencyUnavailable(
    ProblemError, status=503, code="dependency_unavailable", title="A dependency is unavailable"
): ...


class DependencyTimeout(
    ProblemError, status=504, code="dependency_timeout", title="A dependency did not answer in time"
): ...


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


def problem_body(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one builder of every problem+json body, from handlers and middleware alike."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "request_id": current_request_id(),
    }
    if extra:
        body.update(extra)
    return body


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
    body = problem_body(
        status=status,
        code=code,
        detail=detail,
        instance=request.url.path,
        title=title,
        extra=extra,
    )
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


async def send_problem(
    scope: Scope,
    send: Send,
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer with a problem from pure-ASGI code, where there is no Request or Response."""
    body = json.dumps(
        problem_body(status=status, code=code, detail=detail, instance=scope["path"], title=title)
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
