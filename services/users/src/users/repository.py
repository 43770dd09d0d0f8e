"""All of users' SQL. Composable statements; no commits (the request edge commits)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from platform_common.db import Reader
from platform_common.repository import Repository
from users.models import DeletedUser, Profile


class ProfileReads:
    """The profile reads of the hot path, one statement each on asyncpg directly
    (platform_common.db.Reader): rows as mappings, not ORM objects."""

    # What a profile answer shows (schemas.ProfileRead).
    BY_ID = (
        "SELECT id, email, name, role, is_active, email_verified, created_at, updated_at "
        "FROM profiles WHERE id = $1"
    )

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def get(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        row = await self.reader.one(self.BY_ID, user_id)
        return dict(row) if row is not None else None


class ProfileRepository(Repository[Profile]):
    model = Profile

    async def reload(self, user_id: uuid.UUID) -> Profile | None:
        """The row as stored now: after a Core INSERT or UPDATE in this session, the identity
        map's copy may be stale."""
        return await self.session.get(Profile, user_id, populate_existing=True)

    async def insert_if_absent(self, values: dict[str, Any]) -> bool:
        """INSERT ... ON CONFLICT (id) DO NOTHING; True when this call created the row.

        Two concurrent first requests for one user both succeed: the loser's insert waits for
        the winner's transaction and then does nothing.
        """
        result = await self.session.execute(
            insert(Profile)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Profile.id])
            .returning(Profile.id)
        )
        return result.scalar_one_or_none() is not None

    async def update_if_newer(
        self, user_id: uuid.UUID, version: int, values: dict[str, Any]
    ) -> bool:
        """Apply auth-owned fields only when `version` is newer than what is stored."""
        result = await self.session.execute(
            update(Profile)
            .where(Profile.id == user_id, Profile.source_version < version)
            .values(source_version=version, **values)
            .returning(Profile.id)
        )
        return result.scalar_one_or_none() is not None

    async def delete(self, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(Profile).where(Profile.id == user_id).returning(Profile.id)
        )
        return result.scalar_one_or_none() is not None

    async def list_by_ids(self, ids: Sequence[uuid.UUID]) -> Sequence[Profile]:
        return await self.all(select(Profile).where(Profile.id.in_(ids)))

    def search_statement(self, q: str | None, is_active: bool | None) -> Select[Profile]:
        """The admin list's profiles, oldest first: `q` a case-insensitive substring of the
        name or email (its `%`, `_` and `/` match literally), `is_active` a filter."""
        statement = select(Profile).order_by(Profile.created_at, Profile.id)
        if q:
            # lower(column) LIKE, not ILIKE (what `icontains` renders on PostgreSQL): the
            # trigram indexes cover lower(column), and an index serves only its own expression.
            needle = q.lower()
            statement = statement.where(
                or_(
                    func.lower(Profile.name).contains(needle, autoescape=True),
                    func.lower(Profile.email).contains(needle, autoescape=True),
                )
            )
        if is_active is not None:
            statement = statement.where(Profile.is_active == is_active)
        return statement

    async def search(
        self, *, q: str | None, is_active: bool | None, offset: int, limit: int
    ) -> tuple[list[Profile], int]:
        return await self.paginate(self.search_statement(q, is_active), offset=offset, limit=limit)


class DeletedUserRepository(Repository[DeletedUser]):
    model = DeletedUser

    async def is_deleted(self, user_id: uuid.UUID) -> bool:
        return (
            await self.one_or_none(select(DeletedUser.id).where(DeletedUser.id == user_id))
            is not None
        )

    async def add(self, user_id: uuid.UUID, deleted_at: datetime) -> None:
        """Idempotent: a replayed deletion keeps the first tombstone."""
        await self.session.execute(
            insert(DeletedUser)
            .values(id=user_id, deleted_at=deleted_at)
            .on_conflict_do_nothing(index_elements=[DeletedUser.id])
        )
