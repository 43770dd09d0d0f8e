"""orgs' migrations: upgrade, downgrade, upgrade on a fresh database, and no drift."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from orgs.migrate import MIGRATIONS
from orgs.models import Base, Membership, Organization
from platform_common import migrations
from platform_testing import Backends

TABLES = {
    "organizations",
    "memberships",
    "invitations",
    "deleted_users",
    "mail_outbox",
    "events",
    "webhooks",
    "webhook_messages",
    "webhook_deliveries",
}


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _check_constraints(connection: Connection) -> set[str]:
    names = set()
    for table in ("memberships", "invitations"):
        names |= {c["name"] for c in inspect(connection).get_check_constraints(table)}
    return names


async def test_upgrade_downgrade_upgrade_without_drift(backends: Backends) -> None:
    url = await backends.create_database("orgs_migrations")
    config = migrations.alembic_config(MIGRATIONS, url)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
            assert await conn.run_sync(_check_constraints) >= {
                "ck_memberships_role_valid",
                "ck_invitations_role_valid",
            }

        await asyncio.to_thread(command.downgrade, config, "base")
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()

        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
            assert await conn.run_sync(_drift) == []
    finally:
        await engine.dispose()


async def test_role_check_constraint_is_enforced(backends: Backends) -> None:
    url = await backends.create_database("orgs_constraints")
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        org_id = uuid.uuid4()
        async with engine.begin() as conn:
            await conn.execute(insert(Organization).values(id=org_id, name="A", slug="ab"))
        for values in (
            {"role": "superuser", "user_id": uuid.uuid4()},  # CHECK constraint
            {"role": "member", "user_id": None},  # NOT NULL
        ):
            with pytest.raises(IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(
                        insert(Membership).values(id=uuid.uuid4(), org_id=org_id, **values)
                    )
        user_id = uuid.uuid4()
        async with engine.begin() as conn:
            await conn.execute(
                insert(Membership).values(
                    id=uuid.uuid4(), org_id=org_id, user_id=user_id, role="owner"
                )
            )
        with pytest.raises(IntegrityError):  # unique (org_id, user_id)
            async with engine.begin() as conn:
                await conn.execute(
                    insert(Membership).values(
                        id=uuid.uuid4(), org_id=org_id, user_id=user_id, role="viewer"
                    )
                )
    finally:
        await engine.dispose()
