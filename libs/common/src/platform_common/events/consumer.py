"""Reading a service's event stream with a consumer group, at least once.

```python
consumer = StreamConsumer(redis, "events:orgs", group="webhooks", name="orgs-<host>-<pid>",
                          handler=handle, claim_idle_seconds=30)
await consumer.run_forever()
```

Each round first takes over entries another consumer of the group read but never
acknowledged for longer than `claim_idle_seconds` (XAUTOCLAIM: that consumer crashed or
hangs), then reads new entries (XREADGROUP `>`, blocking briefly). Each entry is passed to
`handler` and acknowledged (XACK) only once the handler returned: an entry whose handler
raised, or whose consumer died, stays pending and is claimed again. Handlers must therefore
be idempotent (by event id). An entry that cannot even be parsed is acknowledged and logged:
retrying would never help.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from platform_common.events.model import Event

logger = logging.getLogger(__name__)

Handler = Callable[[Event, str], Awaitable[None]]


def cancelling() -> bool:
    """Whether the current task has been asked to stop. A cancellation that arrives during a
    Redis command can surface as redis-py's TimeoutError instead of CancelledError; loops
    that catch errors check this so that they still stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class StreamConsumer:
    def __init__(
        self,
        redis: Redis,
        stream: str,
        *,
        group: str,
        name: str,
        handler: Handler,
        claim_idle_seconds: float = 30.0,
        block_ms: int = 250,
        count: int = 50,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.name = name
        self.handler = handler
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.block_ms = block_ms
        self.count = count
        self._group_ready = False
        self.stopping = False

    def stop(self) -> None:
        """Finish the round under way (its entries handled and acknowledged), then return
        from `run_forever`: a graceful shutdown leaves nothing pending for others to claim."""
        self.stopping = True

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if needed, reading from the stream's start."""
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def read(self, *, block_ms: int | None = None) -> list[tuple[str, dict[str, str]]]:
        """New entries for this consumer (XREADGROUP `>`), now pending until acknowledged."""
        await self.ensure_group()
        answer: Any = await self.redis.xreadgroup(
            self.group,
            self.name,
            {self.stream: ">"},
            count=self.count,
            block=self.block_ms if block_ms is None else block_ms,
        )
        entries: list[tuple[str, dict[str, str]]] = []
        for _stream, messages in answer or []:
            entries.extend((entry_id, fields) for entry_id, fields in messages)
        return entries

    async def claim_stale(self) -> list[tuple[str, dict[str, str]]]:
        """Entries other consumers left pending longer than `claim_idle_seconds`, now ours."""
        await self.ensure_group()
        claimed: list[tuple[str, dict[str, str]]] = []
        start = "0-0"
        while True:
            answer: Any = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.name,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.count,
            )
            start, messages = answer[0], answer[1]
            # Entries trimmed from the stream meanwhile come back as (id, None): nothing to do.
            claimed.extend((entry_id, fields) for entry_id, fields in messages if fields)
            if start in ("0-0", b"0-0") or len(claimed) >= self.count:
                return claimed

    async def process(self, entries: list[tuple[str, dict[str, str]]]) -> int:
        """Hand each entry to the handler, in order, acknowledging it after; how many were
        handled. Stops at the first failure (the rest stay pending, to keep the order)."""
        handled = 0
        for entry_id, fields in entries:
            try:
                event = Event.from_json(fields["event"])
            except (KeyError, ValueError):
                logger.error("events: unreadable entry %s on %s; dropped", entry_id, self.stream)
                await self.redis.xack(self.stream, self.group, entry_id)
                continue
            try:
                await self.handler(event, entry_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("events: handling %s (%s) failed", entry_id, event.type)
                return handled
            await self.redis.xack(self.stream, self.group, entry_id)
            handled += 1
        return handled

    async def run_once(self) -> int:
        handled = await self.process(await self.claim_stale())
        return handled + await self.process(await self.read())

    async def oldest_pending(self) -> str | None:
        """The smallest entry id read by the group but not yet acknowledged, if any."""
        await self.ensure_group()
        summary: Any = await self.redis.xpending(self.stream, self.group)
        if not summary or not summary.get("pending"):
            return None
        return str(summary["min"])

    async def run_forever(self, error_pause: float = 1.0) -> None:
        while not self.stopping:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                self._group_ready = False
                logger.warning("events: reading %s failed: %s", self.stream, exc)
                await asyncio.sleep(error_pause)
            except Exception:
                if cancelling():
                    raise asyncio.CancelledError from None
                logger.exception("events: consumer round on %s failed", self.stream)
                await asyncio.sleep(error_pause)
            if cancelling():
                raise asyncio.CancelledError
