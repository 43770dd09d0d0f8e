"""Async SQLAlchemy engine, the request-scoped session, and direct reads.

The session dependency commits when the handler returns and rolls back when it raises, so
services and repositories never commit (a service that needs a row lock or a savepoint uses
the session it was given). PostgreSQL runs through asyncpg with a sized pool and a
statement timeout.

`Reader` serves the hottest reads (a profile by id, an org by slug, a page of members):
one SQL statement sent with asyncpg itself on a connection of the same pool, in autocommit,
with asyncpg's per-connection prepared statements. The ORM's `Session.get` costs about
0.39 ms of CPU for such a read and this 0.15 ms (bench/README.md); everything that writes,
or needs a transaction, stays on the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from fastapi import Depends
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from starlette.requests import HTTPConnection

from platform_common.errors import DependencyUnavailable, ProblemError
from platform_common.metrics import PlatformMetrics
from platform_common.settings import ServiceSettings
from platform_common.state import platform_state

logger = logging.getLogger(__name__)


class MeasuredPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, counting the checkouts that wait (`_do_get` is the
    method a pool class implements to hand out a connection). A checkout that finds a
    connection free never yields to the event loop in between, so a scrape only ever sees
    the ones that really wait."""

    metrics: PlatformMetrics | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        if self.metrics is None:
            return super()._do_get()
        self.metrics.db_pool_waiting.inc()
        try:
            return super()._do_get()
        finally:
            self.metrics.db_pool_waiting.dec()


def _measure_pool(engine: AsyncEngine, metrics: PlatformMetrics, size: int) -> None:
    pool = engine.sync_engine.pool
    if isinstance(pool, MeasuredPool):
        pool.metrics = metrics
    metrics.db_pool_size.set(size)
    in_use = metrics.db_pool_in_use

    def checked_out(*_: ConnectionPoolEntry | PoolProxiedConnection | object) -> None:
        in_use.inc()

    def checked_in(*_: ConnectionPoolEntry | PoolProxiedConnection | object) -> None:
        in_use.dec()

    event.listen(engine.sync_engine, "checkout", checked_out)
    event.listen(engine.sync_engine, "checkin", checked_in)


def create_engine(
    settings: ServiceSettings, url: str | None = None, *, metrics: PlatformMetrics | None = None
) -> AsyncEngine:
    url = url or settings.resolved_database_url()
    server_settings = {"application_name": settings.service_name}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    engine = create_async_engine(
        url,
        poolclass=MeasuredPool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        # No pre-ping: on asyncpg it is BEGIN, a query and ROLLBACK, three round trips on
        # every checkout. A connection that died in the pool fails its request with a 503
        # (error_handlers: the connection is invalidated) and the next request gets a new one.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            "server_settings": server_settings,
            **_driver_timeouts(settings),
        },
    )
    if metrics is not None:
        _measure_pool(engine, metrics, settings.db_pool_size + settings.db_max_overflow)
    return engine


def _driver_timeouts(settings: ServiceSettings) -> dict[str, float]:
    """asyncpg's own bounds, for a server that accepts and then stops answering: past the
    request deadline (deadline.py) the client has its 503, and the abandoned request must
    not hold a pooled connection much longer. The command timeout stays above the statement
    timeout so that a slow query ends with PostgreSQL's error, not a dropped connection."""
    statement = settings.db_statement_timeout_ms / 1000
    deadline = settings.request_timeout_seconds
    if not deadline:
        return {
            "timeout": settings.db_pool_timeout_seconds,
            "command_timeout": max(statement, 1) + 5,
        }
    return {
        "timeout": min(settings.db_pool_timeout_seconds, deadline),
        "command_timeout": max(statement, deadline) + 1,
    }


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read: the same pool, in autocommit, so a read is one
    round trip instead of BEGIN, the query and COMMIT. Each statement sees its own snapshot."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        autoflush=False,
    )


async def get_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request, committed or rolled back at the edge."""
    sessionmaker = platform_state(connection.app).sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except ProblemError as exc:
            if exc.commit_changes:
                await session.commit()
                await _run_after_commit(session)
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
            await _run_after_commit(session)


AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "platform.after_commit"


def on_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the request's transaction has committed, before the response
    goes out (never when it rolls back): what must not be seen before the change is durable,
    such as invalidating a cache (platform_common.cache)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


async def _run_after_commit(session: AsyncSession) -> None:
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            # The change is committed: the client gets its answer, the failure a log line.
            logger.exception("an after-commit step failed")


async def get_read_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency for handlers that only read, or write at most one idempotent
    statement (users' just-in-time profile): nothing spans statements, so nothing to commit."""
    async with platform_state(connection.app).read_sessionmaker() as session:
        yield session
        # Each statement committed as it ran.
        await _run_after_commit(session)


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


# scope="function": commit before the response is sent, so a 2xx means the change is durable
# and a failed commit reaches the client as an error (the default "request" scope commits
# only after the response has gone out).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# What says the connection or the server is gone (or stopped answering), not that the query
# is wrong: the connection is dropped from the pool and the caller gets a 503.
# (A connection the server ended between two reads says so with a message asyncpg reads as
# an InternalClientError on the next statement.)
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
_tracer = trace.get_tracer(__name__)


class Reader:
    """One SQL statement with asyncpg directly, on a connection of the engine's pool
    (checked out and back as the session would, so the pool's metrics and bounds hold).

    Statements use asyncpg's `$1` parameters; asyncpg prepares each once per connection. A
    lost connection or a server that stopped answering is a 503 (the connection is dropped
    from the pool); the statement timeout is a 503 as well; any other database error is a
    bug and raised as is. With `traced`, each statement gets a client span like SQLAlchemy's.
    """

    def __init__(self, engine: AsyncEngine, *, traced: bool = False) -> None:
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.traced = traced
        url = engine.url
        self._span_attributes = {
            "db.system": "postgresql",
            "db.name": url.database or "",
            "net.peer.name": url.host or "",
        }

    async def one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """The first row, or None."""
        row: asyncpg.Record | None = await self._run(sql, args, many=False)
        return row

    async def all(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run(sql, args, many=True)
        return rows

    async def _run(self, sql: str, args: tuple[Any, ...], *, many: bool) -> Any:
        if not self.traced:
            return await self._execute(sql, args, many)
        with _tracer.start_as_current_span(
            sql.split(None, 1)[0],
            kind=SpanKind.CLIENT,
            attributes={**self._span_attributes, "db.statement": sql},
        ):
            return await self._execute(sql, args, many)

    async def _execute(self, sql: str, args: tuple[Any, ...], many: bool) -> Any:
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection
            try:
                if many:
                    return await driver.fetch(sql, *args)
                return await driver.fetchrow(sql, *args)
            except asyncpg.QueryCanceledError as exc:
                # The statement timeout: the connection is fine, the server is overloaded.
                raise DependencyUnavailable("The database did not answer in time.") from exc
            except _CONNECTION_ERRORS as exc:
                await conn.invalidate()
                raise DependencyUnavailable("The database is unavailable.") from exc
            except asyncio.CancelledError:
                # Cancelled mid-statement (the request's deadline): asyncpg may still be
                # waiting for the server's answer, so the connection is not reused.
                await asyncio.shield(conn.invalidate())
                raise


async def get_reader(connection: HTTPConnection) -> Reader:
    return platform_state(connection.app).reader


ReaderDep = Annotated[Reader, Depends(get_reader)]
