"""All of orgs' SQL, on the shared `Repository` base. Composable statements; no commits (the
request edge commits).

Reads that must see other transactions' latest commits after a lock is taken use
`populate_existing`, so an object already in the session's identity map is refreshed
instead of being returned as it was first loaded.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from orgs.models import DeletedUser, Invitation, Membership, Organization
from orgs.roles import OrgRole
from platform_common.db import Reader
from platform_common.repository import Repository

ModelT = TypeVar("ModelT")
RowT = TypeVar("RowT")


class _OrgsRepository(Repository[ModelT]):
    async def insert_unless_duplicate(self, *rows: object) -> bool:
        """Insert `rows` in a savepoint; False when a unique constraint refuses them.

        The savepoint keeps the request's transaction usable after the violation.
        """
        try:
            async with self.session.begin_nested():
                for row in rows:
                    self.session.add(row)
                    await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def fresh(self, statement: Select[RowT]) -> RowT | None:
        """As `one_or_none`, refreshing an object the session already holds."""
        return await self.one_or_none(statement.execution_options(populate_existing=True))


class OrganizationRepository(_OrgsRepository[Organization]):
    model = Organization

    async def add_with_owner(self, org: Organization, owner: Membership) -> bool:
        """Insert an org and its first owner; False when the slug is taken (unique index)."""
        owner.org_id = org.id
        return await self.insert_unless_duplicate(org, owner)

    async def get_by_slug(self, slug: str) -> Organization | None:
        return await self.one_or_none(select(Organization).where(Organization.slug == slug))

    async def lock(self, org_id: uuid.UUID) -> bool:
        """Take the org's row lock until the transaction ends; False when the org is gone.

        Every change that can remove an owner takes this lock first, so such changes to one
        org run one after the other and each counts the owners the previous one left.
        """
        statement = select(Organization.id).where(Organization.id == org_id).with_for_update()
        return await self.one_or_none(statement) is not None

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
            .order_by(Organization.slug)
        )
        return await self.paginate_rows(statement, offset=offset, limit=limit)


class MembershipRepository(_OrgsRepository[Membership]):
    model = Membership

    async def role_of(self, org_id: uuid.UUID, user_id: uuid.UUID) -> OrgRole | None:
        role = await self.one_or_none(
            select(Membership.role).where(
                Membership.org_id == org_id, Membership.user_id == user_id
            )
        )
        return OrgRole(role) if role is not None else None

    async def get_for_user(self, org_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
        return await self.fresh(
            select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
        )

    async def add(self, membership: Membership) -> bool:
        """False when (org, user) already exists (unique constraint)."""
        return await self.insert_unless_duplicate(membership)

    async def set_role(self, membership: Membership, role: OrgRole) -> Membership:
        membership.role = role.value
        await self.session.flush()
        return membership

    async def remove(self, membership: Membership) -> None:
        await self.session.execute(delete(Membership).where(Membership.id == membership.id))

    @staticmethod
    def _of_org(org_id: uuid.UUID) -> Select[Membership]:
        return select(Membership).where(Membership.org_id == org_id)

    async def user_ids(self, org_id: uuid.UUID) -> list[uuid.UUID]:
        result = await self.session.execute(
            select(Membership.user_id).where(Membership.org_id == org_id)
        )
        return list(result.scalars().all())

    async def count_members(self, org_id: uuid.UUID) -> int:
        return await self.count(self._of_org(org_id))

    async def count_owners(self, org_id: uuid.UUID) -> int:
        return await self.count(self._of_org(org_id).where(Membership.role == OrgRole.OWNER.value))

    async def of_user(self, user_id: uuid.UUID) -> list[Membership]:
        """Every membership of the user, in org id order (the order their orgs are locked)."""
        statement = (
            select(Membership).where(Membership.user_id == user_id).order_by(Membership.org_id)
        )
        return list(await self.all(statement.execution_options(populate_existing=True)))

    async def successor(self, org_id: uuid.UUID, leaving: uuid.UUID) -> Membership | None:
        """Who becomes owner when the last owner's account is deleted: the member with the
        highest role, the longest-standing first."""
        rank = case({role.value: role.rank for role in OrgRole}, value=Membership.role, else_=0)
        return await self.fresh(
            self._of_org(org_id)
            .where(Membership.user_id != leaving)
            .order_by(rank.desc(), Membership.joined_at, Membership.id)
            .limit(1)
        )

    async def sole_owner_slugs(self, user_id: uuid.UUID) -> list[str]:
        """The slugs of the orgs the user is the only owner of while others are members."""
        other = aliased(Membership)
        owners = (
            select(func.count(other.id))
            .where(other.org_id == Membership.org_id, other.role == OrgRole.OWNER.value)
            .scalar_subquery()
        )
        members = (
            select(func.count(other.id)).where(other.org_id == Membership.org_id).scalar_subquery()
        )
        statement = (
            select(Organization.slug)
            .join(Membership, Membership.org_id == Organization.id)
            .where(
                Membership.user_id == user_id,
                Membership.role == OrgRole.OWNER.value,
                owners == 1,
                members > 1,
            )
            .order_by(Organization.slug)
        )
        return list((await self.session.scalars(statement)).all())


class DeletedUserRepository(_OrgsRepository[DeletedUser]):
    model = DeletedUser

    async def is_deleted(self, user_id: uuid.UUID) -> bool:
        found = await self.one_or_none(select(DeletedUser.id).where(DeletedUser.id == user_id))
        return found is not None

    async def add(self, user_id: uuid.UUID, deleted_at: datetime) -> None:
        """Idempotent: a replayed deletion keeps the first tombstone."""
        await self.session.execute(
            insert(DeletedUser)
            .values(id=user_id, deleted_at=deleted_at)
            .on_conflict_do_nothing(index_elements=[DeletedUser.id])
        )


class InvitationRepository(_OrgsRepository[Invitation]):
    model = Invitation

    async def add(self, invitation: Invitation) -> Invitation:
        self.session.add(invitation)
        await self.session.flush()
        return invitation

    async def org_slug(self, org_id: uuid.UUID) -> str | None:
        statement = select(Organization.slug).where(Organization.id == org_id)
        return await self.one_or_none(statement)

    async def list_pending(
        self, org_id: uuid.UUID, now: datetime, *, offset: int, limit: int
    ) -> tuple[list[Invitation], int]:
        statement = (
            select(Invitation)
            .where(Invitation.org_id == org_id, *_OPEN, Invitation.expires_at > now)
            .order_by(Invitation.created_at.desc(), Invitation.id)
        )
        return await self.paginate(statement, offset=offset, limit=limit)

    async def get_in_org(self, org_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation | None:
        return await self.fresh(
            select(Invitation).where(Invitation.org_id == org_id, Invitation.id == invitation_id)
        )

    async def get_by_token_hash(self, token_hash: str) -> Invitation | None:
        return await self.fresh(select(Invitation).where(Invitation.token_hash == token_hash))

    async def revoke(self, org_id: uuid.UUID, invitation_id: uuid.UUID, now: datetime) -> bool:
        """Revoke an open invitation of the org; False if unknown, accepted or revoked."""
        return await self._close(
            (Invitation.org_id == org_id, Invitation.id == invitation_id), revoked_at=now
        )

    async def claim(self, invitation_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> bool:
        """Mark an invitation accepted, atomically: of two concurrent claims one wins.

        The loser's UPDATE waits for the winner's row lock, then re-checks the WHERE clause
        against the committed row and matches nothing.
        """
        return await self._close(
            (Invitation.id == invitation_id, Invitation.expires_at > now),
            accepted_at=now,
            accepted_by=user_id,
        )

    async def _close(self, where: tuple[ColumnElement[bool], ...], **values: Any) -> bool:
        """Set `values` on the open invitation matching `where`, in one conditional UPDATE;
        False when none matched."""
        closed = await self.session.scalar(
            update(Invitation).where(*where, *_OPEN).values(**values).returning(Invitation.id)
        )
        return closed is not None


# Neither accepted nor revoked (it may still have expired).
_OPEN = (Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))


class OrgReads:
    """The org reads of the hot path, one statement each on asyncpg directly
    (platform_common.db.Reader): what several ORM queries in a transaction read, in one
    round trip and one snapshot."""

    # The org, the caller's role in it (NULL for a non-member) and its member count.
    ORG_FOR_CALLER = (
        "SELECT o.id, o.name, o.slug, o.created_at, "
        "(SELECT m.role FROM memberships m WHERE m.org_id = o.id AND m.user_id = $2) AS role, "
        "(SELECT count(*) FROM memberships m WHERE m.org_id = o.id) AS member_count "
        "FROM organizations o WHERE o.slug = $1"
    )

    # A page of an org's members, oldest membership first.
    MEMBERS_PAGE = (
        "SELECT user_id, role, joined_at FROM memberships WHERE org_id = $1 "
        "ORDER BY joined_at, id OFFSET $2 LIMIT $3"
    )

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def members_page(
        self, org_id: uuid.UUID, *, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        return [
            dict(row) for row in await self.reader.all(self.MEMBERS_PAGE, org_id, offset, limit)
        ]

    async def org_for_caller(self, slug: str, user_id: uuid.UUID) -> dict[str, Any] | None:
        row = await self.reader.one(self.ORG_FOR_CALLER, slug, user_id)
        return dict(row) if row is not None else None
