"""users' migrations: upgrade, downgrade, upgrade again, and no drift from the models."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from platform_common import migrations
from platform_testing import Backends
from users.migrate import MIGRATIONS
from users.models import Profile


def _tables_and_indexes(connection: Connection) -> tuple[set[str], set[str]]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    indexes = (
        {ix["name"] for ix in inspector.get_indexes("profiles")} if "profiles" in tables else set()
    )
    return tables, {name for name in indexes if name}


def _drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Profile.metadata))


async def test_upgrade_downgrade_upgrade_without_drift(backends: Backends) -> None:
    url = await backends.create_database("users_migrations")
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url)
        async with engine.connect() as conn:
            tables, indexes = await conn.run_sync(_tables_and_indexes)
            assert "profiles" in tables
            assert {
                "ix_profiles_created_at_id",
                "ix_profiles_is_active_created_at_id",
                "ix_profiles_name_trgm",
                "ix_profiles_email_trgm",
            } <= indexes
            assert await conn.run_sync(_drift) == []

        config = migrations.alembic_config(MIGRATIONS, url)
        await asyncio.to_thread(command.downgrade, config, "base")
        async with engine.connect() as conn:
            tables, _ = await conn.run_sync(_tables_and_indexes)
            assert tables <= {"alembic_version"}

        await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url)
        async with engine.connect() as conn:
            assert await conn.run_sync(_drift) == []
    finally:
        await engine.dispose()
