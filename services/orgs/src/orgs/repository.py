"""All of orgs' SQL. Composable statements; no commits (the request edge commits).

Reads that must see other transactions' latest commits after a lock is taken use
`populate_existing`, so an object already in the session's identity map is refreshed
instead of being returned as it was first loaded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orgs.models import Invitation, Membership, Organization
from orgs.roles import Role


class OrganizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_with_owner(self, org: Organization, owner: Membership) -> bool:
        """Insert an org and its first owner; False when the slug is taken (unique index)."""
        try:
            async with self.session.begin_nested():
                self.session.add(org)
                await self.session.flush()
                owner.org_id = org.id
                self.session.add(owner)
                await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def get_by_slug(self, slug: str) -> Organization | None:
        result = await self.session.execute(select(Organization).where(Organization.slug == slug))
        return result.scalar_one_or_none()

    async def lock(self, org_id: uuid.UUID) -> bool:
        """Take the org's lock until the transaction ends; False when the org is gone.

        Every change that can remove an owner takes this lock first, so such changes to one
        org run one after the other and each counts the owners the previous one left.
        PostgreSQL: a row lock (SELECT ... FOR UPDATE). SQLite has no row locks and ignores
        FOR UPDATE, so there a no-op UPDATE of the row takes the database's write lock,
        which likewise holds off every other writer until this transaction ends.
        """
        if self.session.get_bind().dialect.name == "sqlite":
            statement: Any = (
                update(Organization)
                .where(Organization.id == org_id)
                .values(slug=Organization.slug)
                .returning(Organization.id)
            )
        else:
            statement = select(Organization.id).where(Organization.id == org_id).with_for_update()
        result = await self.session.execute(statement)
        return result.scalar_one_or_none() is not None

    async def rename(self, org: Organization, name: str) -> Organization:
        org.name = name
        await self.session.flush()
        return org

    async def delete(self, org_id: uuid.UUID) -> None:
        # Memberships and invitations go with it (ON DELETE CASCADE).
        await self.session.execute(delete(Organization).where(Organization.id == org_id))

    async def list_for_user(
        self, user_id: uuid.UUID, *, offset: int, limit: int
    ) -> tuple[list[tuple[Organization, str]], int]:
        statement = (
            select(Organization, Membership.role)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == user_id)
        )
        total = await self.session.execute(select(func.count()).select_from(statement.subquery()))
        rows = await self.session.execute(
            statement.order_by(Organization.slug).offset(offset).limit(limit)
        )
        return [(org, role) for org, role in rows], int(total.scalar_one())


class MembershipRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def role_of(self, org_id: uuid.UUID, user_id: uuid.UUID) -> Role | None:
        result = await self.session.execute(
            select(Membership.role).where(
                Membership.org_id == org_id, Membership.user_id == user_id
            )
        )
        role = result.scalar_one_or_none()
        return Role(role) if role is not None else None

    async def get(self, org_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
        result = await self.session.execute(
            select(Membership)
            .where(Membership.org_id == org_id, Membership.user_id == user_id)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def add(self, membership: Membership) -> bool:
        """Insert in a savepoint; False when (org, user) already exists (unique constraint).

        The savepoint keeps the request's transaction usable after the violation.
        """
        try:
            async with self.session.begin_nested():
                self.session.add(membership)
                await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def set_role(self, membership: Membership, role: Role) -> Membership:
        membership.role = role.value
        await self.session.flush()
        return membership

    async def remove(self, membership: Membership) -> None:
        await self.session.execute(delete(Membership).where(Membership.id == membership.id))

    async def count(self, org_id: uuid.UUID) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(Membership).where(Membership.org_id == org_id)
        )
        return int(result.scalar_one())

    async def count_owners(self, org_id: uuid.UUID) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(Membership)
            .where(Membership.org_id == org_id, Membership.role == Role.OWNER.value)
        )
        return int(result.scalar_one())

    async def list_for_org(
        self, org_id: uuid.UUID, *, offset: int, limit: int
    ) -> tuple[Sequence[Membership], int]:
        statement = select(Membership).where(Membership.org_id == org_id)
        total = await self.session.execute(select(func.count()).select_from(statement.subquery()))
        rows = await self.session.execute(
            statement.order_by(Membership.joined_at, Membership.id).offset(offset).limit(limit)
        )
        return rows.scalars().all(), int(total.scalar_one())


class InvitationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, invitation: Invitation) -> Invitation:
        self.session.add(invitation)
        await self.session.flush()
        return invitation

    def _pending(self, org_id: uuid.UUID, now: datetime) -> Select[Invitation]:
        return select(Invitation).where(
            Invitation.org_id == org_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )

    async def list_pending(
        self, org_id: uuid.UUID, now: datetime, *, offset: int, limit: int
    ) -> tuple[Sequence[Invitation], int]:
        statement = self._pending(org_id, now)
        total = await self.session.execute(select(func.count()).select_from(statement.subquery()))
        rows = await self.session.execute(
            statement.order_by(Invitation.created_at.desc(), Invitation.id)
            .offset(offset)
            .limit(limit)
        )
        return rows.scalars().all(), int(total.scalar_one())

    async def get(self, org_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation)
            .where(Invitation.org_id == org_id, Invitation.id == invitation_id)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def get_by_token_hash(self, token_hash: str) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation)
            .where(Invitation.token_hash == token_hash)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def revoke(self, org_id: uuid.UUID, invitation_id: uuid.UUID, now: datetime) -> bool:
        """Revoke an open invitation of the org; False if unknown, accepted or revoked."""
        result = await self.session.execute(
            update(Invitation)
            .where(
                Invitation.org_id == org_id,
                Invitation.id == invitation_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(Invitation.id)
        )
        return result.scalar_one_or_none() is not None

    async def claim(self, invitation_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> bool:
        """Mark an invitation accepted, atomically: of two concurrent claims one wins.

        On PostgreSQL the loser's UPDATE waits for the winner's row lock, then re-checks
        the WHERE clause against the committed row and matches nothing.
        """
        result = await self.session.execute(
            update(Invitation)
            .where(
                Invitation.id == invitation_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
            .values(accepted_at=now, accepted_by=user_id)
            .returning(Invitation.id)
        )
        return result.scalar_one_or_none() is not None
