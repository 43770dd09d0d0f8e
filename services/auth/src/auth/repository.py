"""All of auth's SQL. Composable statements; no commits (the request edge commits)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import OutboxEvent, RefreshToken, Session, User
from platform_common.text import has_nul


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        if has_nul(email):
            return None  # no stored email has one, and PostgreSQL cannot compare it
        result = await self.session.execute(select(User).where(User.email == email.lower()))
        return result.scalar_one_or_none()

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def count_admins(self) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(User).where(User.role == "admin")
        )
        return int(result.scalar_one())


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, auth_session: Session, refresh: RefreshToken) -> None:
        self.session.add(auth_session)
        await self.session.flush()
        self.session.add(refresh)
        await self.session.flush()

    async def get_live(self, session_id: uuid.UUID, now: datetime) -> Session | None:
        result = await self.session.execute(
            select(Session).where(
                Session.id == session_id, Session.ended_at.is_(None), Session.expires_at > now
            )
        )
        return result.scalar_one_or_none()

    def _live_for_user(self, user_id: uuid.UUID, now: datetime):  # type: ignore[no-untyped-def]
        return select(Session).where(
            Session.user_id == user_id, Session.ended_at.is_(None), Session.expires_at > now
        )

    async def list_live(
        self, user_id: uuid.UUID, now: datetime, *, offset: int, limit: int
    ) -> tuple[Sequence[Session], int]:
        statement = self._live_for_user(user_id, now)
        total = await self.session.execute(select(func.count()).select_from(statement.subquery()))
        rows = await self.session.execute(
            statement.order_by(Session.created_at.desc(), Session.id).offset(offset).limit(limit)
        )
        return rows.scalars().all(), int(total.scalar_one())

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
            update(Session)
            .where(Session.user_id == user_id, Session.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
            .returning(Session.id)
        )
        if session_ids is not None:
            statement = statement.where(Session.id.in_(session_ids))
        if keep is not None:
            statement = statement.where(Session.id != keep)
        result = await self.session.execute(statement)
        return list(result.scalars().all())

    async def touch(self, session_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(Session).where(Session.id == session_id).values(last_used_at=now)
        )


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )
        return result.scalar_one_or_none()

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


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, event: OutboxEvent) -> None:
        self.session.add(event)
        await self.session.flush()

    async def claim_due(self, now: datetime, limit: int) -> Sequence[OutboxEvent]:
        """Pending events whose time has come, oldest first, locked against other workers."""
        statement = (
            select(OutboxEvent)
            .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at <= now)
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
            .limit(limit)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        result = await self.session.execute(statement)
        return result.scalars().all()

    async def count_pending(self) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
        )
        return int(result.scalar_one())
