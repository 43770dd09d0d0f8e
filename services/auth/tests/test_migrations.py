"""auth's migrations: upgrade, downgrade, upgrade again, and no drift from the models."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from auth.migrate import MIGRATIONS
from auth.models import Base
from platform_common import migrations
from platform_testing import Backends


async def test_upgrade_downgrade_upgrade_without_drift(backends: Backends) -> None:
    url = await backends.create_database("auth_migrations")
    config = migrations.alembic_config(MIGRATIONS, url)
    await asyncio.to_thread(command.upgrade, config, "head")
    await asyncio.to_thread(command.downgrade, config, "base")
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
    await asyncio.to_thread(command.upgrade, config, "head")

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    await engine.dispose()
