"""The admission queue: under overload a worker works on a bounded set of requests and the
rest wait their turn in arrival order; nobody is overtaken, nobody waits past the deadline.

Plain ASGI apps behind the real DeadlineMiddleware; the bench (bench/README.md) shows what it
does for the real services at 128 and 512 connections.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import Receive, Scope, Send

from platform_common.deadline import AdmissionQueue, DeadlineMiddleware
from platform_testing import asgi_get


class Recorder:
    """An app that answers 200 after `hold` seconds (/readyz at once), noting who started when and how many
    ran at once."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.running = 0
        self.most_at_once = 0
        self.started: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.started.append(scope["path"])
        try:
            await asyncio.sleep(0 if scope["path"] == "/readyz" else self.hold)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.running -= 1


async def test_beyond_the_limit_requests_wait_and_start_in_arrival_order() -> None:
    app = Recorder(hold=0.02)
    gate = DeadlineMiddleware(app, timeout_seconds=5, max_in_flight=3)
    calls = []
    for i in range(20):
        calls.append(asyncio.create_task(asgi_get(gate, f"/r/{i}")))
        await asyncio.sleep(0)  # each reaches the queue before the next arrives
    answers = await asyncio.gather(*calls)

    assert [sent[0]["status"] for sent in answers] == [200] * 20
    assert app.most_at_once == 3
    assert app.started == [f"/r/{i}" for i in range(20)]
    assert gate.admission is not None
    assert (gate.admission.free, gate.admission.waiting) == (3, 0)


async def test_a_newcomer_never_takes_the_place_a_waiter_was_given() -> None:
    queue = AdmissionQueue(1)
    await queue.enter()  # the holder
    order: list[str] = []

    async def visitor(name: str) -> None:
        await queue.enter()
        order.append(name)
        queue.leave()

    waiter = asyncio.create_task(visitor("waiter"))
    await asyncio.sleep(0)
    assert queue.waiting == 1
    queue.leave()  # the holder leaves; before the waiter runs, a newcomer arrives
    newcomer = asyncio.create_task(visitor("newcomer"))
    await asyncio.gather(waiter, newcomer)

    assert order == ["waiter", "newcomer"]
    assert (queue.free, queue.waiting) == (1, 0)


async def test_a_waiter_cancelled_as_it_was_given_a_place_passes_the_place_on() -> None:
    queue = AdmissionQueue(1)
    await queue.enter()
    cancelled = asyncio.create_task(queue.enter())
    behind = asyncio.create_task(queue.enter())
    await asyncio.sleep(0)
    queue.leave()  # the place goes to `cancelled`, which is cancelled before it runs
    cancelled.cancel()
    await asyncio.wait_for(behind, 1)  # ... and so reaches the next in line

    assert cancelled.cancelled()
    queue.leave()
    assert (queue.free, queue.waiting) == (1, 0)


async def test_a_request_queued_past_the_deadline_gets_503_and_leaves_the_queue() -> None:
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        # Answers at once, then takes its time over the body: inside the deadline, and
        # holding its place all along.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/stream":
            await asyncio.sleep(0.6)
        await send({"type": "http.response.body", "body": b"ok"})

    gate = DeadlineMiddleware(streaming, timeout_seconds=0.3, max_in_flight=1)
    first = asyncio.create_task(asgi_get(gate, "/stream"))
    await asyncio.sleep(0.05)
    queued = await asgi_get(gate, "/queued")  # never admitted: the stream holds the place

    assert queued[0]["status"] == 503
    assert (b"retry-after", b"1") in queued[0]["headers"]
    assert json.loads(queued[1]["body"])["code"] == "request_timeout"
    await asyncio.sleep(0)  # the abandoned request's cancellation runs
    assert gate.admission is not None
    assert gate.admission.waiting == 0
    streamed = await first
    assert [m.get("body") for m in streamed[1:]] == [b"ok"]
    assert (gate.admission.free, gate.admission.waiting) == (1, 0)


async def test_the_probes_are_answered_while_the_queue_is_full() -> None:
    app = Recorder(hold=0.5)
    gate = DeadlineMiddleware(app, timeout_seconds=5, max_in_flight=1)
    busy = [asyncio.create_task(asgi_get(gate, f"/busy/{i}")) for i in range(3)]
    await asyncio.sleep(0.05)

    readyz = await asyncio.wait_for(asgi_get(gate, "/readyz"), 0.2)

    assert readyz[0]["status"] == 200
    await asyncio.gather(*busy)


async def test_without_a_deadline_the_queue_still_bounds_the_work() -> None:
    app = Recorder(hold=0.01)
    gate = DeadlineMiddleware(app, timeout_seconds=0, max_in_flight=2)
    answers = await asyncio.gather(*(asgi_get(gate, f"/r/{i}") for i in range(10)))

    assert [sent[0]["status"] for sent in answers] == [200] * 10
    assert app.most_at_once == 2
