"""A deadline on every request: a hung dependency becomes a prompt 503, not a long wait.

When PostgreSQL (or anything else) accepts a connection and then says nothing, the work of a
request waits on it until some driver timeout fires, long after the client and the ingress
have given up. This layer answers first:

```
DeadlineMiddleware (innermost layer: the edge, CORS, metrics and traces see its 503)
  the app runs as a task
  started its response in time   the task is awaited, however long the body takes
  nothing started by the deadline
      503 problem+json `request_timeout`, Retry-After: 1, sent at once
      the task is cancelled and left to unwind in the background: its clean-up may hang as
      well (SQLAlchemy gives the cancelled query's connection 2 s to close, then drops it;
      asyncpg's timeouts in db.py bound any other wait on the database)
      whatever it sends afterwards is dropped; its outcome is logged, never raised
```

The probes and /metrics are not bound (a slow /readyz has its own timeouts), nor are
websockets. With `request_timeout_seconds = 0` the app factory does not add this layer.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_common.errors import send_problem
from platform_common.request_context import loggable_path

logger = logging.getLogger("platform_common.deadline")
_NOT_BOUND = frozenset({"/livez", "/readyz", "/metrics"})
_RETRY_AFTER = (b"retry-after", b"1")


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds
        # The event loop holds tasks only weakly: an abandoned one is kept here until done.
        self._abandoned: set[asyncio.Future[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.timeout_seconds <= 0 or scope["path"] in _NOT_BOUND:
            await self.app(scope, receive, send)
            return
        started = abandoned = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if abandoned:
                return  # the client already has its 503
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # A task, a future and a timer: about half of what `asyncio.wait(timeout=)` costs.
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        woken: asyncio.Future[None] = loop.create_future()
        task.add_done_callback(partial(_wake, woken))
        timer = loop.call_later(self.timeout_seconds, _wake, woken)
        try:
            await woken
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        finally:
            timer.cancel()
        if task.done():
            task.result()
            return
        if started:
            await task
            return
        abandoned = True
        self._abandon(task)
        logger.warning(
            "%s %s: no response within %g s, answered 503 request_timeout",
            scope["method"],
            loggable_path(scope),
            self.timeout_seconds,
        )
        await send_problem(
            scope,
            send,
            status=503,
            code="request_timeout",
            title="The request took too long",
            detail="The request could not be completed in time; try again shortly.",
            headers=[_RETRY_AFTER],
        )

    def _abandon(self, task: asyncio.Future[None]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned_done)

    def _abandoned_done(self, task: asyncio.Future[None]) -> None:
        self._abandoned.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.info("abandoned request ended with %r", exc)


def _wake(future: asyncio.Future[None], _: object = None) -> None:
    if not future.done():
        future.set_result(None)
