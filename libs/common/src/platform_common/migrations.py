"""Alembic plumbing shared by the services' migration environments.

Each service keeps its own revisions under `<svc>/migrations/`; its `env.py` is two lines
that call `run_env(metadata, default_url)`. Migrations run with a synchronous connection
inside an async engine (asyncpg), on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from platform_common.observability import setup_logging
from platform_common.settings import ServiceSettings

logger = logging.getLogger("platform_common.migrations")


def alembic_config(script_location: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # Kept out of the ini options: configparser would choke on '%' in passwords.
    config.attributes["database_url"] = url
    return config


def _configure_and_run(connection: Connection, metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_env(metadata: MetaData, default_url: Callable[[], str]) -> None:
    """Body of every service's env.py."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection, metadata)
        return
    url = config.attributes.get("database_url") or default_url()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.begin() as conn:
            await conn.run_sync(_configure_and_run, metadata)
        await engine.dispose()

    asyncio.run(run_async())


def upgrade(script_location: Path, url: str, revision: str = "head") -> None:
    """Run from synchronous code (the `<svc>-migrate` command)."""
    command.upgrade(alembic_config(script_location, url), revision)


def migrate_command(
    get_settings: Callable[[], ServiceSettings], script_location: Path
) -> Callable[[], int]:
    """A service's `<svc>-migrate` entry point."""

    def main() -> int:
        migrate_service(get_settings(), script_location)
        return 0

    return main


def migrate_service(settings: ServiceSettings, script_location: Path) -> None:
    """The body of every `<svc>-migrate` command: the service's database to the latest
    revision. Runs as its own step (a Kubernetes Job, `make up`), never at app start-up;
    idempotent."""
    setup_logging(settings)
    upgrade(script_location, settings.resolved_database_url())
    logger.info("%s database is at the latest revision", settings.service_name)


async def run_on_connection(
    connection: AsyncConnection, script_location: Path, action: Callable[[Config], None]
) -> None:
    """Run an alembic command on an already open async connection (tests, start-up)."""

    def _run(sync_connection: Connection) -> None:
        config = alembic_config(script_location, "")
        config.attributes["connection"] = sync_connection
        action(config)

    await connection.run_sync(_run)
