"""orgs' side of org-scoped token revocation (`platform_common.revocation`): when a member's
role changes, the member leaves or the org is deleted, every org-scoped token of that member
for that org stops working at every service.

The marker is written twice: before the commit, so that a Redis failure fails the change
(503, nothing changed) rather than leaving old tokens valid, and again after the commit,
with a later time, so that a token auth minted from a membership read that still saw the
old role (read before the commit, signed after the first mark) is refused as well. A
failure of the second write is logged; that narrow race then lasts at most the token's
short lifetime.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from platform_common.db import on_commit
from platform_common.errors import DependencyUnavailable
from platform_common.revocation import RevocationStore

logger = logging.getLogger(__name__)


class MemberTokenRevocation:
    def __init__(self, store: RevocationStore) -> None:
        self.store = store

    async def revoke(
        self, db: AsyncSession, org_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
    ) -> None:
        org, users = str(org_id), [str(user_id) for user_id in user_ids]
        try:
            await self.store.revoke_org_tokens(org, users)
        except RedisError as exc:
            raise DependencyUnavailable(
                "Org-scoped tokens cannot be revoked now; nothing was changed."
            ) from exc

        async def again() -> None:
            try:
                await self.store.revoke_org_tokens(org, users)
            except RedisError:
                logger.exception("org-scoped tokens of %d members not marked again", len(users))

        on_commit(db, again)
