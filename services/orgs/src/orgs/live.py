"""The live feed's fan-out: one reader of the org event stream per process, and the local
sockets it hands each event to (the WebSocket itself: `orgs.live_api`).

```
orgs (any replica) --XADD events:orgs {event: <json>}--> Redis Stream
                                                           |
   every process: LiveHub reader task, XREAD BLOCK from the stream's last id at start
   (not a consumer group: every replica must see every event)
                                                           |
   dispatch(event): org_id -> the local connections of that org
     each connection: bounded queue -> its sender -> websocket.send_text(<the event JSON>)
     queue full (a client not reading)   -> that connection is closed (1008), not buffered
     member.removed of the connected user, org.deleted -> closed 4403 after the event
```

The reader starts from the stream's newest entry when the process starts (an XREVRANGE,
so nothing published between two blocking reads is missed, as re-reading from `$` would)
and then always from the last id it saw. When Redis fails it retries with back-off
(0.1 s doubling to 5 s) and resumes where it stopped: what the stream still holds is
delivered late rather than lost. The sockets themselves are not kept open meanwhile:
their token checks need Redis (revocation), and those fail closed (1011, see live_api).

Draining: `drain()` closes every socket with 1001 and refuses new ones. The lifespan
(`live_resources`) runs it when the process is told to stop (SIGTERM/SIGINT, chained in
front of the server's own handler, which would otherwise close them with 1012 first) and
again at shutdown, then cancels the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from orgs.config import OrgsSettings
from platform_common.state import platform_state

logger = logging.getLogger(__name__)

# The stream orgs' events are published on (the event stream contract).
ORGS_STREAM = "events:orgs"
# How long one XREAD blocks; a shutdown cancels it sooner.
READ_BLOCK_MS = 5000
READ_BATCH = 500
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
# How long draining waits for the sockets' close frames before letting the server stop.
DRAIN_WAIT_SECONDS = 2.0
STOP_WAIT_SECONDS = 2.0

# Close codes (RFC 6455 and the contract's own 4xxx).
GOING_AWAY = 1001
POLICY_VIOLATION = 1008  # a client too slow to read its messages
INTERNAL_ERROR = 1011  # a dependency (Redis, the database) failed: reconnect later
UNAUTHENTICATED = 4401
MEMBERSHIP_ENDED = 4403
NOT_A_MEMBER = 4404


class LiveMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.connections = Gauge(
            "live_connections",
            "Open live sockets (WebSocket /api/v1/orgs/{slug}/live)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.messages_sent = Counter(
            "live_messages_sent",
            "Events sent on live sockets",
            registry=registry,
        )
        self.closed = Counter(
            "live_closed",
            "Live sockets closed by the server, by close code",
            ["code"],
            registry=registry,
        )
        for code in (GOING_AWAY, POLICY_VIOLATION, INTERNAL_ERROR, 4401, 4403, 4404):
            self.closed.labels(code=str(code))


@dataclass(frozen=True)
class CloseRequest:
    """Queued behind the events before it: close once they are sent."""

    code: int
    reason: str


@dataclass(eq=False)
class Connection:
    """One local socket as the hub sees it: whose, for which org, and its send queue."""

    org_id: uuid.UUID
    user_id: uuid.UUID
    queue: asyncio.Queue[str | CloseRequest]
    # Set once with the close code (and reason) when the server decides to close it.
    closing: asyncio.Future[tuple[int, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def close(self, code: int, reason: str) -> None:
        if not self.closing.done():
            self.closing.set_result((code, reason))

    def offer(self, item: str | CloseRequest) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Never buffer without bound for a client that does not read.
            self.close(POLICY_VIOLATION, "too slow: messages were not read")


class LiveHub:
    def __init__(self, redis: Redis, metrics: LiveMetrics, queue_size: int) -> None:
        self.redis = redis
        self.metrics = metrics
        self.queue_size = queue_size
        self.draining = False
        self._stopping = False
        self._by_org: dict[uuid.UUID, set[Connection]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()

    # -- connections --------------------------------------------------------------------

    def connect(self, org_id: uuid.UUID, user_id: uuid.UUID) -> Connection:
        connection = Connection(org_id, user_id, asyncio.Queue(self.queue_size))
        self._by_org.setdefault(org_id, set()).add(connection)
        self.metrics.connections.inc()
        return connection

    def disconnect(self, connection: Connection) -> None:
        local = self._by_org.get(connection.org_id)
        if local is None or connection not in local:
            return
        local.discard(connection)
        if not local:
            del self._by_org[connection.org_id]
        self.metrics.connections.dec()
        if not self._by_org:
            self._drained.set()

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_org.values())

    # -- fan-out ------------------------------------------------------------------------

    def dispatch(self, raw: str) -> None:
        """Hand one event (its JSON, as published) to the local sockets of its org."""
        try:
            event = json.loads(raw)
            org_id = uuid.UUID(str(event["org_id"])) if event.get("org_id") else None
        except (ValueError, TypeError, KeyError):
            logger.warning("live: an entry of %s is not an event; skipped", ORGS_STREAM)
            return
        if org_id is None or org_id not in self._by_org:
            return
        ends = _membership_ended_for(event)
        for connection in list(self._by_org[org_id]):
            connection.offer(raw)
            if ends is True or (ends is not None and ends == connection.user_id):
                connection.offer(CloseRequest(MEMBERSHIP_ENDED, "membership ended"))

    async def _read_forever(self) -> None:
        last_id = await self._start_id()
        backoff = BACKOFF_FIRST_SECONDS
        while True:
            try:
                if last_id is None:
                    last_id = await self._start_id()
                    if last_id is None:
                        raise RedisError("the stream's newest entry could not be read")
                replies: Any = await self.redis.xread(
                    {ORGS_STREAM: last_id}, count=READ_BATCH, block=READ_BLOCK_MS
                )
            except RedisError as exc:
                if self._stopping:
                    return
                logger.warning(
                    "live: reading the stream failed (%s); retry in %.1f s", exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            backoff = BACKOFF_FIRST_SECONDS
            # RESP2 answers [[stream, entries]], RESP3 {stream: entries}.
            streams = (
                replies.values() if isinstance(replies, dict) else (r[1] for r in replies or [])
            )
            for entries in streams:
                for entry_id, fields in entries:
                    last_id = entry_id
                    raw = fields.get("event")
                    if isinstance(raw, str):
                        self.dispatch(raw)

    async def _start_id(self) -> str | None:
        """The newest entry's id ("0-0" for an empty or missing stream); None if Redis fails
        (the loop then asks again)."""
        try:
            newest = await self.redis.xrevrange(ORGS_STREAM, count=1)
        except RedisError:
            return None
        return str(newest[0][0]) if newest else "0-0"

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="live-reader")

    # -- shutdown -----------------------------------------------------------------------

    async def drain(self, wait_seconds: float = DRAIN_WAIT_SECONDS) -> None:
        """Close every socket with 1001 and wait (a little) for them to go."""
        self.draining = True
        if not self._by_org:
            return
        self._drained.clear()
        for connections in list(self._by_org.values()):
            for connection in connections:
                connection.close(GOING_AWAY, "server shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), wait_seconds)

    async def stop(self) -> None:
        await self.drain()
        self._stopping = True
        reader = self._reader
        if reader is not None:
            # Closing the connection ends a blocking read at once (redis-py may swallow a
            # cancellation that lands in a blocking read's own timeout handling); the
            # cancellation ends a back-off sleep.
            with contextlib.suppress(RedisError, OSError):
                await self.redis.connection_pool.disconnect(inuse_connections=True)
            reader.cancel()
            await asyncio.wait([reader], timeout=STOP_WAIT_SECONDS)
            if not reader.done():
                logger.warning("live: the stream reader did not stop")
            elif not reader.cancelled() and reader.exception() is not None:
                logger.warning("live: the stream reader failed", exc_info=reader.exception())
        await self.redis.aclose()


def _membership_ended_for(event: dict[str, Any]) -> uuid.UUID | bool | None:
    """Whose membership this event ends: a user id, True for everyone (the org is gone),
    None for nobody."""
    kind = event.get("type")
    if kind == "org.deleted":
        return True
    target = event.get("target")
    if kind == "member.removed" and isinstance(target, dict) and target.get("type") == "user":
        try:
            return uuid.UUID(str(target.get("id")))
        except ValueError:
            return None
    return None


_HUB_ATTRIBUTE = "orgs_live_hub"


def live_hub(connection: HTTPConnection) -> LiveHub:
    hub: LiveHub = getattr(connection.app.state, _HUB_ATTRIBUTE)
    return hub


def _reader_redis(settings: OrgsSettings) -> Redis:
    """A client of its own for the blocking reads: the shared one's socket timeout (about a
    second, so a dead Redis is a quick 503) is shorter than a read blocks."""
    timeout = settings.redis_timeout_seconds
    client = Redis.from_url(
        settings.resolved_redis_url(),
        socket_timeout=READ_BLOCK_MS / 1000 + timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )
    assert isinstance(client, Redis)
    return client


def _chain_drain_on_signals(hub: LiveHub) -> Callable[[], None]:
    """Run `hub.drain()` before the server's own SIGTERM/SIGINT handler (which closes open
    sockets with 1012 at once); returns what undoes it. Only the main thread may do this."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: dict[int, tuple[Any, Any]] = {}

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous) or previous is signal.default_int_handler:
            continue  # no server's handler to go before (Python's own Ctrl-C stays as it is)

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            async def drain_then_stop() -> None:
                try:
                    await hub.drain()
                finally:
                    previous(sig, frame)

            loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_stop()))

        signal.signal(signum, handler)
        installed[signum] = (handler, previous)

    def undo() -> None:
        for signum, (handler, previous) in installed.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, previous)

    return undo


@asynccontextmanager
async def live_resources(app: FastAPI) -> AsyncIterator[None]:
    """The live feed's share of the lifespan: the hub, its reader, draining on stop."""
    platform = platform_state(app)
    settings = platform.settings
    assert isinstance(settings, OrgsSettings)
    hub = LiveHub(
        _reader_redis(settings), LiveMetrics(platform.metrics_registry), settings.live_send_queue
    )
    setattr(app.state, _HUB_ATTRIBUTE, hub)
    hub.start()
    undo = _chain_drain_on_signals(hub)
    try:
        yield
    finally:
        undo()
        await hub.stop()
