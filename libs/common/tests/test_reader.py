"""The direct reader (platform_common.db.Reader): one statement on asyncpg through the
engine's pool, with the session's failure behaviour: a lost connection or a statement
timeout is a 503 and the pool keeps no broken connection; a wrong query is a bug, raised."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from platform_common.db import Reader, create_engine
from platform_common.errors import DependencyUnavailable
from platform_common.metrics import PlatformMetrics
from platform_common.settings import ServiceSettings


def settings(url: str, **extra: object) -> ServiceSettings:
    return ServiceSettings(database_url=url, db_pool_size=1, db_max_overflow=0, **extra)


async def test_rows_and_no_row(demo_database_url: str) -> None:
    engine = create_engine(settings(demo_database_url))
    reader = Reader(engine)
    try:
        row = await reader.one("SELECT $1::int AS n, $2::text AS s", 7, "x")
        assert row is not None and dict(row) == {"n": 7, "s": "x"}
        assert await reader.one("SELECT 1 WHERE false") is None
        rows = await reader.all("SELECT generate_series(1, $1) AS n", 3)
        assert [r["n"] for r in rows] == [1, 2, 3]
        # Autocommit: nothing is left open on the pooled connection.
        pid = await reader.one("SELECT pg_backend_pid() AS pid")
        assert pid is not None
        observer = await asyncpg.connect(demo_database_url.replace("+asyncpg", ""))
        try:
            state = await observer.fetchval(
                "SELECT state FROM pg_stat_activity WHERE pid = $1", pid["pid"]
            )
        finally:
            await observer.close()
        assert state == "idle"
    finally:
        await engine.dispose()


async def test_a_lost_connection_is_a_503_and_the_next_read_gets_a_new_one(
    demo_database_url: str,
) -> None:
    registry = CollectorRegistry()
    metrics = PlatformMetrics(registry)
    engine = create_engine(settings(demo_database_url), metrics=metrics)
    reader = Reader(engine)
    try:
        first = await reader.one("SELECT pg_backend_pid() AS pid")
        assert first is not None
        # The server ends the pooled connection (a restart, a failover, an admin).
        killer = await asyncpg.connect(demo_database_url.replace("+asyncpg", ""))
        await killer.execute("SELECT pg_terminate_backend($1)", first["pid"])
        await killer.close()
        with pytest.raises(DependencyUnavailable):
            await reader.one("SELECT 1 AS one")
        again = await reader.one("SELECT pg_backend_pid() AS pid")
        assert again is not None and again["pid"] != first["pid"]
        assert registry.get_sample_value("db_pool_connections_in_use") == 0
    finally:
        await engine.dispose()


async def test_the_statement_timeout_is_a_503(demo_database_url: str) -> None:
    engine = create_engine(settings(demo_database_url, db_statement_timeout_ms=100))
    reader = Reader(engine)
    try:
        with pytest.raises(DependencyUnavailable):
            await reader.one("SELECT pg_sleep(2)")
        assert await reader.one("SELECT 1 AS one") is not None  # the connection is fine
    finally:
        await engine.dispose()


async def test_a_wrong_query_is_raised_as_it_is(demo_database_url: str) -> None:
    engine = create_engine(settings(demo_database_url))
    reader = Reader(engine)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await reader.one("SELECT * FROM no_such_table")
        assert await reader.one("SELECT 1 AS one") is not None
    finally:
        await engine.dispose()


async def test_a_read_cancelled_midway_leaves_no_busy_connection_in_the_pool(
    demo_database_url: str,
) -> None:
    engine = create_engine(settings(demo_database_url))
    reader = Reader(engine)
    try:
        task = asyncio.create_task(reader.one("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The one pooled connection was dropped, not handed on mid-statement.
        started = asyncio.get_running_loop().time()
        assert await reader.one("SELECT 1 AS one") is not None
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await engine.dispose()
