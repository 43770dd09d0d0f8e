"""Members: listing them with names from the users service, adding, re-roling, removing.

The checks of a change or removal run twice: first with the caller's role as the request
found it (so that plain refusals are a 403), then again under the org's row lock with
everything re-read, because a concurrent request may have changed the target, the number of
owners or the caller's own role meanwhile. Under the lock the owner count comes first: of
two owners demoting or removing each other at once, the second gets 409 last_owner.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orgs.cache import UserOrgsInvalidation
from orgs.clients.users import UserProfile, UsersClient
from orgs.errors import AlreadyMember, LastOwner, MemberNotFound, OrgNotFound, UserNotFound
from orgs.events import Target, record_org_event
from orgs.models import Membership
from orgs.repository import MembershipRepository, OrganizationRepository, OrgReads
from orgs.revocation import MemberTokenRevocation
from orgs.roles import OrgRole, authorize_change, authorize_removal, check_grant
from orgs.service.account_deletion import refuse_deleted_account
from orgs.service.organizations import OrgAccess, ReadAccess
from platform_common.pagination import PageParams
from platform_common.security import check_permission


@dataclass(frozen=True)
class MemberView:
    user_id: uuid.UUID
    name: str | None
    email: str | None
    role: OrgRole
    joined_at: datetime

    @classmethod
    def of(cls, membership: Membership, profile: UserProfile | None) -> MemberView:
        return cls(
            membership.user_id,
            profile.name if profile else None,
            profile.email if profile else None,
            OrgRole(membership.role),
            membership.joined_at,
        )


class MemberViews:
    """The members page without a session: one direct read for the page (the org and its
    total came with the caller's access, orgs.service.OrganizationViews) and the names
    from the users client's shared cache (null for a user the users service no longer
    knows)."""

    def __init__(self, reads: OrgReads, users: UsersClient) -> None:
        self.reads = reads
        self.users = users

    async def page(self, org: ReadAccess, page: PageParams) -> tuple[list[MemberView], int]:
        total = org.member_count
        if total == 0 or page.offset >= total:
            return [], total
        rows = await self.reads.members_page(
            org.access.org.id, offset=page.offset, limit=page.limit
        )
        profiles = await self.users.lookup([row["user_id"] for row in rows])
        views = []
        for row in rows:
            profile = profiles.get(row["user_id"])
            views.append(
                MemberView(
                    row["user_id"],
                    profile.name if profile else None,
                    profile.email if profile else None,
                    OrgRole(row["role"]),
                    row["joined_at"],
                )
            )
        return views, total


class MemberService:
    def __init__(
        self,
        db: AsyncSession,
        users: UsersClient,
        user_orgs: UserOrgsInvalidation,
        tokens: MemberTokenRevocation,
    ) -> None:
        self.db = db
        self.orgs = OrganizationRepository(db)
        self.members = MembershipRepository(db)
        self.users = users
        self.user_orgs = user_orgs
        self.tokens = tokens

    async def add(self, access: OrgAccess, user_id: uuid.UUID, role: OrgRole) -> MemberView:
        check_grant(access.effective_role, role)
        profile = (await self.users.lookup([user_id])).get(user_id)
        if profile is None:
            raise UserNotFound(f"The users service knows no user {user_id}.")
        await refuse_deleted_account(self.db, user_id)
        membership = Membership(org_id=access.org.id, user_id=user_id, role=role.value)
        if not await self.members.add(membership):
            raise AlreadyMember(f"User {user_id} is already a member.")
        record_org_event(
            self.db,
            "member.added",
            access.principal,
            access.org,
            _user_target(user_id),
            user_id=str(user_id),
            role=role.value,
        )
        self.user_orgs.after_commit(self.db, [user_id])
        return MemberView.of(membership, profile)

    async def change_role(self, access: OrgAccess, user_id: uuid.UUID, role: OrgRole) -> MemberView:
        target = await self._target(access, user_id)
        authorize_change(access.effective_role, OrgRole(target.role), role)
        # Fetched before the lock: no lock is ever held across a call to another service.
        profile = (await self.users.lookup([user_id])).get(user_id)

        target = await self._lock_and_reload_target(access, user_id)
        if target.role == OrgRole.OWNER and role != OrgRole.OWNER:
            await self._ensure_another_owner(access)
        authorize_change(await self._current_role(access), OrgRole(target.role), role)
        await self.tokens.revoke(self.db, access.org.id, [user_id])
        old_role = target.role
        await self.members.set_role(target, role)
        record_org_event(
            self.db,
            "member.role_changed",
            access.principal,
            access.org,
            _user_target(user_id),
            user_id=str(user_id),
            role=role.value,
            old_role=old_role,
        )
        self.user_orgs.after_commit(self.db, [user_id])
        return MemberView.of(target, profile)

    async def remove(self, access: OrgAccess, user_id: uuid.UUID) -> None:
        target = await self._target(access, user_id)
        leaving = not access.as_platform_admin and user_id == access.principal.user_id
        if not leaving:
            check_permission(access.permissions, "members:write")
            authorize_removal(access.effective_role, OrgRole(target.role))

        target = await self._lock_and_reload_target(access, user_id)
        if target.role == OrgRole.OWNER:
            await self._ensure_another_owner(access)
        if not leaving:
            authorize_removal(await self._current_role(access), OrgRole(target.role))
        await self.tokens.revoke(self.db, access.org.id, [user_id])
        await self.members.remove(target)
        record_org_event(
            self.db,
            "member.removed",
            access.principal,
            access.org,
            _user_target(user_id),
            user_id=str(user_id),
            role=target.role,
            left=leaving,
        )
        self.user_orgs.after_commit(self.db, [user_id])

    async def _target(self, access: OrgAccess, user_id: uuid.UUID) -> Membership:
        target = await self.members.get_for_user(access.org.id, user_id)
        if target is None:
            raise MemberNotFound
        return target

    async def _lock_and_reload_target(self, access: OrgAccess, user_id: uuid.UUID) -> Membership:
        if not await self.orgs.lock(access.org.id):
            raise OrgNotFound
        return await self._target(access, user_id)

    async def _current_role(self, access: OrgAccess) -> OrgRole:
        if access.as_platform_admin:
            return OrgRole.OWNER
        role = await self.members.role_of(access.org.id, access.principal.user_id)
        if role is None:
            raise OrgNotFound  # the caller was removed while this request waited
        return access.narrowed(role)

    async def _ensure_another_owner(self, access: OrgAccess) -> None:
        if await self.members.count_owners(access.org.id) <= 1:
            raise LastOwner


def _user_target(user_id: uuid.UUID) -> Target:
    return Target(type="user", id=str(user_id))
