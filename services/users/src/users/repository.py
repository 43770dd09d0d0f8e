"""All of users' SQL. Composable statements; no commits (the request edge commits)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from users.models import Profile

LIKE_ESCAPE = "\\"


def contains_pattern(q: str) -> str:
    """`%q%` for LIKE, with the wildcards in `q` matched literally."""
    escaped = (
        q.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


class ProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> Profile | None:
        # populate_existing: a row changed by a Core UPDATE in this session is read afresh.
        result = await self.session.execute(
            select(Profile).where(Profile.id == user_id).execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def insert_if_absent(self, values: dict[str, Any]) -> bool:
        """INSERT ... ON CONFLICT (id) DO NOTHING; True when this call created the row.

        Two concurrent first requests for one user both succeed: the loser's insert waits for
        the winner's transaction and then does nothing.
        """
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            statement: Any = postgresql.insert(Profile).values(**values)
        elif dialect == "sqlite":
            statement = sqlite.insert(Profile).values(**values)
        else:  # pragma: no cover - only the two supported backends
            raise RuntimeError(f"unsupported database dialect {dialect!r}")
        statement = statement.on_conflict_do_nothing(index_elements=[Profile.id]).returning(
            Profile.id
        )
        result = await self.session.execute(statement)
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

    async def list_by_ids(self, ids: Sequence[uuid.UUID]) -> Sequence[Profile]:
        result = await self.session.execute(select(Profile).where(Profile.id.in_(ids)))
        return result.scalars().all()

    def _search(self, q: str | None, is_active: bool | None) -> Select[Profile]:
        statement = select(Profile)
        if q:
            # lower(column) is what the trigram indexes cover, so PostgreSQL can use them.
            pattern = contains_pattern(q.lower())
            statement = statement.where(
                or_(
                    func.lower(Profile.name).ilike(pattern, escape=LIKE_ESCAPE),
                    func.lower(Profile.email).ilike(pattern, escape=LIKE_ESCAPE),
                )
            )
        if is_active is not None:
            statement = statement.where(Profile.is_active == is_active)
        return statement

    async def search(
        self, *, q: str | None, is_active: bool | None, offset: int, limit: int
    ) -> tuple[Sequence[Profile], int]:
        statement = self._search(q, is_active)
        total = await self.session.execute(select(func.count()).select_from(statement.subquery()))
        rows = await self.session.execute(
            statement.order_by(Profile.created_at, Profile.id).offset(offset).limit(limit)
        )
        return rows.scalars().all(), int(total.scalar_one())
