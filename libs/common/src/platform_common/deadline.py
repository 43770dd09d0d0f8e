"""A deadline and an admission queue on every request: a hung dependency becomes a prompt
503, not a long wait, and overload becomes a queue, not a scramble.

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

Under overload the worker admits at most `max_in_flight` requests at once; the others wait
their turn in arrival order (their wait counts toward the deadline). Without it every open
connection's request ran at once and they all scrambled for the database pool, whose queue
lets a newcomer take a returned connection before the waiter it was meant for
(asyncio.Queue): some requests starved past the pool timeout and answered 503 while the
median was fast (bench/README.md). The queue hands a finishing request's place straight to
the oldest waiter, so no request is overtaken, and the loop only ever juggles a bounded set.

The probes and /metrics are not bound (a slow /readyz has its own timeouts), nor are
websockets. With `request_timeout_seconds = 0` the app factory does not add this layer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from functools import partial

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_common.errors import send_problem
from platform_common.request_context import loggable_path

logger = logging.getLogger("platform_common.deadline")
_NOT_BOUND = frozenset({"/livez", "/readyz", "/metrics"})
_RETRY_AFTER = (b"retry-after", b"1")


class AdmissionQueue:
    """At most `limit` holders at once; the rest wait in arrival order. A leaving holder hands
    its place to the oldest waiter directly, so a newcomer never takes it first."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self) -> None:
        if self.free and not self._waiters:
            self.free -= 1
            return
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(place)
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.leave()  # handed a place just as it was cancelled: pass it on
            else:
                self._waiters.remove(place)
            raise

    def leave(self) -> None:
        while self._waiters:
            place = self._waiters.popleft()
            if not place.done():
                place.set_result(None)
                return
        self.free += 1


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, timeout_seconds: float, max_in_flight: int = 0) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds
        self.admission = AdmissionQueue(max_in_flight) if max_in_flight else None
        # The event loop holds tasks only weakly: an abandoned one is kept here until done.
        self._abandoned: set[asyncio.Future[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _NOT_BOUND:
            await self.app(scope, receive, send)
            return
        if self.timeout_seconds <= 0:
            await self._admitted(scope, receive, send)
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
        task = asyncio.ensure_future(self._admitted(scope, receive, guarded_send))
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
            "%s %s: no response within %g s, answered 503 request_timeout (%d queued)",
            scope["method"],
            loggable_path(scope),
            self.timeout_seconds,
            self.admission.waiting if self.admission else 0,
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

    async def _admitted(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.admission is None:
            await self.app(scope, receive, send)
            return
        await self.admission.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()

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
