"""orgs' side of the shared cache of each user's organizations (`platform_common.cache`):
users serves `GET /users/me` from it; orgs invalidates a user's entry once a change that
alters that user's list has committed (membership added, re-roled or removed; an org created,
renamed or deleted)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from platform_common.cache import USER_ORGS, SharedCache
from platform_common.db import on_commit


class UserOrgsInvalidation:
    def __init__(self, redis: Redis) -> None:
        self.cache = SharedCache(redis, USER_ORGS)

    def after_commit(self, db: AsyncSession, user_ids: Iterable[uuid.UUID]) -> None:
        subjects = [str(user_id) for user_id in user_ids]

        async def invalidate() -> None:
            await self.cache.invalidate(subjects)

        on_commit(db, invalidate)
