"""All of auth's SQL, on `platform_common.repository.Repository`. Composable statements; no
commits (the request edge commits)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.models import (
    AccountToken,
    OutboxEvent,
    PersonalAccessToken,
    RefreshToken,
    User,
    UserSession,
)
from platform_common.repository import Repository
from platform_common.text import has_nul

# pg_advisory_xact_lock key of auth's admin changes (any fixed number unique to auth).
ADMIN_CHANGES_LOCK = 0x61757468


class UserRepository(Repository[User]):
    model = User

    async def get_by_email(self, email: str) -> User | None:
        if has_nul(email):
            return None  # no stored email has one, and PostgreSQL cannot compare it
        # A deleted account's tombstone is nobody's: its scrubbed email never logs in.
        return await self.one_or_none(
            select(User).where(User.email == email.lower(), User.deleted_at.is_(None))
        )

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def get_for_update(self, user_id: uuid.UUID) -> User | None:
        """The row as committed now, locked until the transaction ends (account deletion)."""
        return await self.one_or_none(
            select(User)
            .where(User.id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def lock_admin_changes(self) -> None:
        """Serialise, until the transaction ends, every change that can take away an active
        admin: two admins disabling each other at once then count one after the other."""
        await self.session.execute(select(func.pg_advisory_xact_lock(ADMIN_CHANGES_LOCK)))

    async def other_active_admins(self, user_id: uuid.UUID) -> int:
        return await self.count(
            select(User.id).where(User.role == "admin", User.is_active, User.id != user_id)
        )

    async def delete_account_tokens(self, user_id: uuid.UUID) -> None:
        """The account's mailed tokens (verification, reset, email change), used or not."""
        await self.session.execute(delete(AccountToken).where(AccountToken.user_id == user_id))


class UserSessionRepository(Repository[UserSession]):
    model = UserSession

    async def add(self, user_session: UserSession, refresh: RefreshToken) -> None:
        self.session.add(user_session)
        await self.session.flush()
        self.session.add(refresh)
        await self.session.flush()

    @staticmethod
    def _live(now: datetime) -> Select[UserSession]:
        return select(UserSession).where(
            UserSession.ended_at.is_(None), UserSession.expires_at > now
        )

    async def get_live(self, session_id: uuid.UUID, now: datetime) -> UserSession | None:
        return await self.one_or_none(self._live(now).where(UserSession.id == session_id))

    async def list_live(
        self, user_id: uuid.UUID, now: datetime, *, offset: int, limit: int
    ) -> tuple[list[UserSession], int]:
        statement = (
            self._live(now)
            .where(UserSession.user_id == user_id)
            .order_by(UserSession.created_at.desc(), UserSession.id)
        )
        return await self.paginate(statement, offset=offset, limit=limit)

    async def end(
        self,
        *,
        user_id: uuid.UUID,
        now: datetime,
        reason: str,
        session_ids: Sequence[uuid.UUID] | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        """End live sessions of a user (all, the given ones, or all but `keep`); their ids."""
        statement = (
            update(UserSession)
            .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
            .returning(UserSession.id)
        )
        if session_ids is not None:
            statement = statement.where(UserSession.id.in_(session_ids))
        if keep is not None:
            statement = statement.where(UserSession.id != keep)
        result = await self.session.execute(statement)
        return list(result.scalars().all())

    async def ended_since(self, since: datetime) -> list[tuple[uuid.UUID, datetime]]:
        """(id, ended_at) of every session ended at or after `since`: the durable record the
        revocation keys in Redis are rebuilt from."""
        result = await self.session.execute(
            select(UserSession.id, UserSession.ended_at).where(UserSession.ended_at >= since)
        )
        return [(sid, ended_at) for sid, ended_at in result.all() if ended_at is not None]

    async def touch(self, session_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(UserSession).where(UserSession.id == session_id).values(last_used_at=now)
        )


@dataclass(frozen=True)
class Rotation:
    """What a rotated refresh token's new access token is issued from: its session and the
    session's user."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    email: str
    email_verified: bool
    name: str


# The whole of an ordinary rotation in one statement: the presented token is retired (when it
# is unused and unexpired, its session live and its user active), its successor inserted
# with the session's expiry, and the session's last use recorded. No row: one of those
# conditions does not hold, and nothing was changed. A concurrent rotation of the same token
# waits for the row and then finds it retired (no row), as `mark_rotated` does.
_ROTATE = text(
    """
    WITH rotated AS (
        UPDATE refresh_tokens AS rt SET rotated_at = CAST(:now AS timestamptz)
        FROM sessions AS s JOIN users AS u ON u.id = s.user_id
        WHERE rt.token_hash = :token_hash
          AND rt.rotated_at IS NULL
          AND rt.expires_at > CAST(:now AS timestamptz)
          AND s.id = rt.session_id
          AND s.ended_at IS NULL
          AND s.expires_at > CAST(:now AS timestamptz)
          AND u.is_active
        RETURNING rt.session_id, s.expires_at, u.id AS user_id, u.role, u.email,
                  u.email_verified, u.name
    ), issued AS (
        INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
        SELECT CAST(:new_id AS uuid), session_id, CAST(:new_hash AS varchar),
               CAST(:now AS timestamptz), expires_at
        FROM rotated
    ), touched AS (
        UPDATE sessions SET last_used_at = CAST(:now AS timestamptz)
        FROM rotated WHERE sessions.id = rotated.session_id
    )
    SELECT session_id, user_id, role, email, email_verified, name FROM rotated
    """
)


class RefreshTokenRepository(Repository[RefreshToken]):
    model = RefreshToken

    async def rotate(
        self, token_hash: str, new_id: uuid.UUID, new_hash: str, now: datetime
    ) -> Rotation | None:
        """An ordinary rotation in one statement (`_ROTATE`), in the session's transaction;
        None when the token is not one that rotates plainly (unknown, used, expired, its
        session ended, its user disabled): nothing has been changed then."""
        params = {"token_hash": token_hash, "new_id": new_id, "new_hash": new_hash, "now": now}
        row = (await self.session.execute(_ROTATE, params)).first()
        return Rotation(*row) if row is not None else None

    @staticmethod
    async def rotate_autocommitted(
        autocommit: AsyncEngine, token_hash: str, new_id: uuid.UUID, new_hash: str, now: datetime
    ) -> Rotation | None:
        """`rotate` on a connection of its own in autocommit (`autocommit`: the engine with
        isolation_level AUTOCOMMIT): the statement commits as it runs, so a rotation is a
        single round trip (no BEGIN, no COMMIT) and holds no row lock past it."""
        params = {"token_hash": token_hash, "new_id": new_id, "new_hash": new_hash, "now": now}
        async with autocommit.connect() as conn:
            row = (await conn.execute(_ROTATE, params)).first()
        return Rotation(*row) if row is not None else None

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        return await self.one_or_none(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )

    async def mark_rotated(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Atomically retire a token; False when it had already been used (a reuse or a race)."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
            .returning(RefreshToken.id)
        )
        return result.scalar_one_or_none() is not None

    async def add(self, token: RefreshToken) -> None:
        self.session.add(token)
        await self.session.flush()


class PersonalAccessTokenRepository(Repository[PersonalAccessToken]):
    model = PersonalAccessToken

    async def add(self, token: PersonalAccessToken) -> None:
        self.session.add(token)
        await self.session.flush()

    async def list_for_user(
        self, user_id: uuid.UUID, *, offset: int, limit: int
    ) -> tuple[list[PersonalAccessToken], int]:
        statement = (
            select(PersonalAccessToken)
            .where(PersonalAccessToken.user_id == user_id)
            .order_by(PersonalAccessToken.created_at.desc(), PersonalAccessToken.id)
        )
        return await self.paginate(statement, offset=offset, limit=limit)

    async def get_live_by_hash(
        self, token_hash: str, now: datetime
    ) -> tuple[PersonalAccessToken, User] | None:
        """The unexpired token and its active owner."""
        result = await self.session.execute(
            select(PersonalAccessToken, User)
            .join(User, User.id == PersonalAccessToken.user_id)
            .where(
                PersonalAccessToken.token_hash == token_hash,
                PersonalAccessToken.expires_at > now,
                User.is_active,
            )
        )
        row = result.one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def delete_for_user(self, user_id: uuid.UUID, token_id: uuid.UUID) -> bool:
        """Delete one of the user's tokens; False when it has none with that id."""
        deleted = await self.session.scalar(
            delete(PersonalAccessToken)
            .where(PersonalAccessToken.id == token_id, PersonalAccessToken.user_id == user_id)
            .returning(PersonalAccessToken.id)
        )
        return deleted is not None

    async def delete_all_for_user(self, user_id: uuid.UUID) -> int:
        result = await self.session.execute(
            delete(PersonalAccessToken)
            .where(PersonalAccessToken.user_id == user_id)
            .returning(PersonalAccessToken.id)
        )
        return len(result.all())

    async def delete_by_hash(self, token_hash: str) -> tuple[uuid.UUID, uuid.UUID] | None:
        """Delete the token with this hash; its (id, user id), or None when there is none."""
        result = await self.session.execute(
            delete(PersonalAccessToken)
            .where(PersonalAccessToken.token_hash == token_hash)
            .returning(PersonalAccessToken.id, PersonalAccessToken.user_id)
        )
        row = result.one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def touch(self, token_id: uuid.UUID, now: datetime, not_since: datetime) -> None:
        """Record a use, unless one was recorded after `not_since` (at most once a minute)."""
        await self.session.execute(
            update(PersonalAccessToken)
            .where(
                PersonalAccessToken.id == token_id,
                or_(
                    PersonalAccessToken.last_used_at.is_(None),
                    PersonalAccessToken.last_used_at < not_since,
                ),
            )
            .values(last_used_at=now)
        )


class OutboxRepository(Repository[OutboxEvent]):
    model = OutboxEvent

    async def add(self, event: OutboxEvent) -> None:
        self.session.add(event)
        await self.session.flush()

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many events wait for delivery, and when the oldest of them was written."""
        row = (
            await self.session.execute(
                select(func.count(), func.min(OutboxEvent.created_at)).where(
                    OutboxEvent.delivered_at.is_(None)
                )
            )
        ).one()
        return int(row[0]), row[1]

    async def pending_deletions(self) -> int:
        """Deleted accounts with an event not yet delivered to some service."""
        count = await self.session.scalar(
            select(func.count(func.distinct(OutboxEvent.aggregate_id))).where(
                OutboxEvent.delivered_at.is_(None), OutboxEvent.event_type == "user.deleted"
            )
        )
        return int(count or 0)

    async def claim_due(self, now: datetime, limit: int) -> Sequence[OutboxEvent]:
        """Pending events whose time has come, oldest first, locked against other workers."""
        return await self.all(
            select(OutboxEvent)
            .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at <= now)
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
