"""A TCP proxy a test can pause: a dependency that hangs instead of refusing.

```
client ──► 127.0.0.1:<port> ──► TcpProxy ──► upstream (host:port, or a Unix socket path)
                                   │
                  pause()   connections stay open, new ones are accepted, and no byte (nor
                            a close) is passed either way: a server that stopped answering
                  resume()  everything held back flows again
```

A refused connection fails fast and every client handles it; a peer that accepts and then
says nothing is what makes requests hang, and that is what `pause()` stages:

```python
async with TcpProxy("127.0.0.1", 5432) as proxy:
    url = make_url(database_url).set(host=proxy.host, port=proxy.port)
    ...
    proxy.pause()
```
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

_CHUNK = 64 * 1024


class TcpProxy:
    """Forwards every connection to `127.0.0.1:<port>` to the upstream. `upstream_host` may
    be a Unix socket path (then `upstream_port` is ignored)."""

    def __init__(self, upstream_host: str, upstream_port: int | None = None) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0  # connections accepted so far

    @property
    def paused(self) -> bool:
        return not self._flowing.is_set()

    def pause(self) -> None:
        """Stop passing bytes both ways; connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Stop listening and cut every connection (without waiting for a paused peer)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        self._writers.add(client_writer)
        try:
            if self.upstream_host.startswith("/"):
                upstream_reader, upstream_writer = await asyncio.open_unix_connection(
                    self.upstream_host
                )
            else:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
        except OSError:
            client_writer.transport.abort()
            self._writers.discard(client_writer)
            return
        self._writers.add(upstream_writer)
        pumps = [
            asyncio.create_task(self._pump(client_reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, client_writer)),
        ]
        self._pumps.update(pumps)
        try:
            # When one side closes, the other is closed too: nothing here needs half-closes.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (client_writer, upstream_writer):
                writer.transport.abort()
                self._writers.discard(writer)
            self._pumps.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                data = await reader.read(_CHUNK)
                # Held here while paused: neither the bytes nor the end of the stream pass.
                await self._flowing.wait()
                if not data:
                    return
                writer.write(data)
                await writer.drain()
