"""The generic repository every service's repositories build on.

```
Repository[ModelT]            session, model
  get(id)                     by primary key (the identity map first), or None
  one_or_none(statement)      the single scalar a statement selects, or None
  all(statement)              every scalar it selects
  count(statement)            how many rows it would return, counted by the server
  paginate(statement, ...)    (one page of scalars, the total): two queries, and the count
                              never loads rows
```

Repositories hold all SQL as composable `select()` statements and never commit: the request
edge (`platform_common.db.get_session`) commits or rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

ModelT = TypeVar("ModelT")
RowT = TypeVar("RowT")


class Repository(Generic[ModelT]):
    model: type[ModelT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id_: Any) -> ModelT | None:
        return await self.session.get(self.model, id_)

    async def one_or_none(self, statement: Select[RowT]) -> RowT | None:
        result = await self.session.scalars(statement)
        return result.one_or_none()

    async def all(self, statement: Select[RowT]) -> Sequence[RowT]:
        result = await self.session.scalars(statement)
        return result.all()

    async def count(self, statement: Select[*tuple[Any, ...]]) -> int:
        # ORDER BY is dropped: it changes nothing in a count and costs a sort.
        counted = select(func.count()).select_from(statement.order_by(None).subquery())
        result = await self.session.execute(counted)
        return int(result.scalar_one())

    async def paginate(
        self, statement: Select[RowT], *, offset: int, limit: int
    ) -> tuple[list[RowT], int]:
        """One page of what `statement` selects (give it its ORDER BY), and the total."""
        rows, total = await self.paginate_rows(statement, offset=offset, limit=limit)
        return [row[0] for row in rows], total

    async def paginate_rows(
        self, statement: Select[*tuple[Any, ...]], *, offset: int, limit: int
    ) -> tuple[list[Any], int]:
        """As `paginate`, for statements that select several columns: whole rows."""
        total = await self.count(statement)
        if total == 0 or offset >= total:
            return [], total
        result = await self.session.execute(statement.offset(offset).limit(limit))
        return list(result.all()), total
