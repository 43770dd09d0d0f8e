"""A per-account transaction lock, for what must not interleave with an account's deletion.

users and orgs each keep a tombstone of deleted accounts. The deletion takes the account's
lock exclusively, writes the tombstone and deletes what the service held; whatever creates
something for an account (a profile provisioned from a token, a membership) takes the lock
shared and checks the tombstone first. So a creation either commits before the deletion,
which then deletes it too, or sees the tombstone; concurrent creations do not wait for each
other. PostgreSQL advisory locks, released at the end of the transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

# The first key of the two-key advisory lock: "acct", unique to this use.
ACCOUNT_LOCK_SPACE = 0x61636374


def _key(user_id: uuid.UUID) -> int:
    # Any 32 bits of the id: a collision only makes two accounts wait for each other.
    return int.from_bytes(user_id.bytes[:4], "big", signed=True)


async def lock_account(db: AsyncSession, user_id: uuid.UUID, *, shared: bool = False) -> None:
    """Take the account's lock until the transaction ends (shared: for creations)."""
    lock = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
    await db.execute(select(lock(ACCOUNT_LOCK_SPACE, _key(user_id))))
