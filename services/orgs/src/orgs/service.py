"""orgs' rules: who may do what to an organization, its members and its invitations.

```
caller --slug--> OrgAccess(org, caller's role)          404 for non-members (never 403)
              -> effective role: the membership role, or owner for a platform admin
              -> per action: minimum role (403), "no granting above your own role",
                 "only an owner touches owners", "never zero owners" (409 last_owner)
```

What must hold under concurrency is enforced by the database: the unique (org, user)
constraint makes one of two simultaneous adds fail (409 already_member); changes that can
remove an owner lock the org row first and then re-read the caller's and the target's
roles and count the owners, so two owners demoting each other at once run one after the
other and the second is refused. Accepting an invitation is one conditional UPDATE.

Services never commit: the request's session dependency commits when the handler returns
and rolls back when it raises.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from orgs.config import OrgsSettings
from orgs.errors import (
    AlreadyMember,
    EmailMismatch,
    InvitationAlreadyAccepted,
    InvitationExpired,
    InvitationNotFound,
    InvitationRevoked,
    InvitationUsed,
    LastOwner,
    MemberNotFound,
    NotAllowed,
    OrgNotFound,
    SlugTaken,
    UserNotFound,
)
from orgs.models import Invitation, Membership, Organization
from orgs.repository import InvitationRepository, MembershipRepository, OrganizationRepository
from orgs.roles import Role
from orgs.schemas import SLUG_PATTERN
from orgs.users_directory import UserProfile, UsersDirectory
from platform_common.pagination import PageParams
from platform_common.security import Principal

SLUG_RE = re.compile(SLUG_PATTERN)


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_invitation_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class OrgAccess:
    """An org resolved for a caller who may see it."""

    org: Organization
    role: Role | None  # the caller's membership; None only for a platform admin
    principal: Principal

    @property
    def effective_role(self) -> Role:
        if self.principal.is_admin:
            return Role.OWNER
        assert self.role is not None
        return self.role


@dataclass(frozen=True)
class OrgView:
    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime
    role: Role | None
    member_count: int | None = None

    @classmethod
    def of(cls, org: Organization, role: Role | None, member_count: int | None = None) -> OrgView:
        return cls(org.id, org.name, org.slug, org.created_at, role, member_count)


@dataclass(frozen=True)
class MemberView:
    user_id: uuid.UUID
    name: str | None
    email: str | None
    role: Role
    joined_at: datetime

    @classmethod
    def of(cls, membership: Membership, profile: UserProfile | None) -> MemberView:
        return cls(
            membership.user_id,
            profile.name if profile else None,
            profile.email if profile else None,
            Role(membership.role),
            membership.joined_at,
        )


@dataclass(frozen=True)
class InvitationIssued:
    invitation: Invitation
    token: str

    # Flattened for the response model.
    @property
    def id(self) -> uuid.UUID:
        return self.invitation.id

    @property
    def email(self) -> str:
        return self.invitation.email

    @property
    def role(self) -> str:
        return self.invitation.role

    @property
    def created_at(self) -> datetime:
        return self.invitation.created_at

    @property
    def expires_at(self) -> datetime:
        return self.invitation.expires_at


def _check_grant(actor: Role, role: Role) -> None:
    if role == Role.OWNER and actor != Role.OWNER:
        raise NotAllowed("Only an owner can grant the owner role.")
    if role.rank > actor.rank:
        raise NotAllowed("You cannot grant a role above your own.")


def _check_manage(actor: Role, target: Role) -> None:
    if target == Role.OWNER and actor != Role.OWNER:
        raise NotAllowed("Only an owner can change or remove an owner.")
    if target.rank > actor.rank:
        raise NotAllowed("You cannot change a member whose role is above your own.")


def _authorize_change(actor: Role, target: Role, role: Role) -> None:
    if not actor.at_least(Role.ADMIN):
        raise NotAllowed("Only an admin or owner can change roles.")
    _check_manage(actor, target)
    _check_grant(actor, role)


def _authorize_removal(actor: Role, target: Role) -> None:
    if not actor.at_least(Role.ADMIN):
        raise NotAllowed("Only an admin or owner can remove other members.")
    _check_manage(actor, target)


class OrgsService:
    def __init__(self, settings: OrgsSettings, users: UsersDirectory) -> None:
        self.settings = settings
        self.users = users

    # Organizations --------------------------------------------------------------------

    async def create_org(
        self, db: AsyncSession, principal: Principal, name: str, slug: str
    ) -> OrgView:
        org = Organization(id=uuid.uuid4(), name=name, slug=slug)
        owner = Membership(user_id=principal.user_id, role=Role.OWNER.value)
        if not await OrganizationRepository(db).add_with_owner(org, owner):
            raise SlugTaken(f"The slug '{slug}' is already taken.")
        return OrgView.of(org, Role.OWNER)

    async def list_orgs(
        self, db: AsyncSession, principal: Principal, page: PageParams
    ) -> tuple[list[OrgView], int]:
        rows, total = await OrganizationRepository(db).list_for_user(
            principal.user_id, offset=page.offset, limit=page.limit
        )
        return [OrgView.of(org, Role(role)) for org, role in rows], total

    async def resolve(self, db: AsyncSession, principal: Principal, slug: str) -> OrgAccess:
        """The org and the caller's role in it; OrgNotFound unless the caller may see it."""
        if not SLUG_RE.fullmatch(slug):
            # No org has such a slug, and some (a NUL) PostgreSQL cannot even compare.
            raise OrgNotFound
        org = await OrganizationRepository(db).get_by_slug(slug)
        if org is None:
            raise OrgNotFound
        role = await MembershipRepository(db).role_of(org.id, principal.user_id)
        if role is None and not principal.is_admin:
            raise OrgNotFound  # non-members learn nothing, not even that the org exists
        return OrgAccess(org, role, principal)

    async def get_org(self, db: AsyncSession, access: OrgAccess) -> OrgView:
        count = await MembershipRepository(db).count(access.org.id)
        return OrgView.of(access.org, access.role, count)

    async def rename_org(self, db: AsyncSession, access: OrgAccess, name: str) -> OrgView:
        org = await OrganizationRepository(db).rename(access.org, name)
        count = await MembershipRepository(db).count(org.id)
        return OrgView.of(org, access.role, count)

    async def delete_org(self, db: AsyncSession, access: OrgAccess) -> None:
        await OrganizationRepository(db).delete(access.org.id)

    # Members --------------------------------------------------------------------------

    async def list_members(
        self, db: AsyncSession, access: OrgAccess, page: PageParams
    ) -> tuple[list[MemberView], int]:
        rows, total = await MembershipRepository(db).list_for_org(
            access.org.id, offset=page.offset, limit=page.limit
        )
        # One batched lookup per page (a page holds at most 100, the lookup's limit).
        profiles = await self.users.lookup([row.user_id for row in rows])
        return [MemberView.of(row, profiles.get(row.user_id)) for row in rows], total

    async def add_member(
        self, db: AsyncSession, access: OrgAccess, user_id: uuid.UUID, role: Role
    ) -> MemberView:
        _check_grant(access.effective_role, role)
        profile = (await self.users.lookup([user_id])).get(user_id)
        if profile is None:
            raise UserNotFound(f"The users service knows no user {user_id}.")
        membership = Membership(org_id=access.org.id, user_id=user_id, role=role.value)
        if not await MembershipRepository(db).add(membership):
            raise AlreadyMember(f"User {user_id} is already a member.")
        return MemberView.of(membership, profile)

    async def change_role(
        self, db: AsyncSession, access: OrgAccess, user_id: uuid.UUID, role: Role
    ) -> MemberView:
        members = MembershipRepository(db)
        target = await members.get(access.org.id, user_id)
        if target is None:
            raise MemberNotFound
        _authorize_change(access.effective_role, Role(target.role), role)
        # Fetched before the lock: no lock is ever held across a call to another service.
        profile = (await self.users.lookup([user_id])).get(user_id)

        target = await self._lock_and_reload_target(db, access, user_id)
        if target.role == Role.OWNER and role != Role.OWNER:
            await self._ensure_another_owner(members, access.org.id)
        _authorize_change(await self._current_role(db, access), Role(target.role), role)
        await members.set_role(target, role)
        return MemberView.of(target, profile)

    async def remove_member(self, db: AsyncSession, access: OrgAccess, user_id: uuid.UUID) -> None:
        members = MembershipRepository(db)
        target = await members.get(access.org.id, user_id)
        if target is None:
            raise MemberNotFound
        leaving = not access.principal.is_admin and user_id == access.principal.user_id
        if not leaving:
            _authorize_removal(access.effective_role, Role(target.role))

        target = await self._lock_and_reload_target(db, access, user_id)
        if target.role == Role.OWNER:
            await self._ensure_another_owner(members, access.org.id)
        if not leaving:
            _authorize_removal(await self._current_role(db, access), Role(target.role))
        await members.remove(target)

    # The checks above run twice: first with the caller's role as the request found it (so
    # that plain refusals are a 403), then again under the org's row lock with everything
    # re-read, because a concurrent request may have changed the target, the number of
    # owners or the caller's own role meanwhile. Under the lock the owner count comes first:
    # of two owners demoting or removing each other at once, the second gets 409 last_owner.

    async def _lock_and_reload_target(
        self, db: AsyncSession, access: OrgAccess, user_id: uuid.UUID
    ) -> Membership:
        if not await OrganizationRepository(db).lock(access.org.id):
            raise OrgNotFound
        target = await MembershipRepository(db).get(access.org.id, user_id)
        if target is None:
            raise MemberNotFound
        return target

    @staticmethod
    async def _current_role(db: AsyncSession, access: OrgAccess) -> Role:
        if access.principal.is_admin:
            return Role.OWNER
        role = await MembershipRepository(db).role_of(access.org.id, access.principal.user_id)
        if role is None:
            raise OrgNotFound  # the caller was removed while this request waited
        return role

    @staticmethod
    async def _ensure_another_owner(members: MembershipRepository, org_id: uuid.UUID) -> None:
        if await members.count_owners(org_id) <= 1:
            raise LastOwner

    # Invitations ----------------------------------------------------------------------

    async def invite(
        self, db: AsyncSession, access: OrgAccess, email: str, role: Role
    ) -> InvitationIssued:
        _check_grant(access.effective_role, role)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        invitation = Invitation(
            id=uuid.uuid4(),
            org_id=access.org.id,
            email=email.lower(),
            role=role.value,
            token_hash=hash_invitation_token(token),
            invited_by=access.principal.user_id,
            created_at=now,
            expires_at=now + timedelta(days=self.settings.invitation_ttl_days),
        )
        await InvitationRepository(db).add(invitation)
        return InvitationIssued(invitation, token)

    async def list_invitations(
        self, db: AsyncSession, access: OrgAccess, page: PageParams
    ) -> tuple[list[Invitation], int]:
        rows, total = await InvitationRepository(db).list_pending(
            access.org.id, utcnow(), offset=page.offset, limit=page.limit
        )
        return list(rows), total

    async def revoke_invitation(
        self, db: AsyncSession, access: OrgAccess, invitation_id: uuid.UUID
    ) -> None:
        invitations = InvitationRepository(db)
        if await invitations.revoke(access.org.id, invitation_id, utcnow()):
            return
        invitation = await invitations.get(access.org.id, invitation_id)
        if invitation is None:
            raise InvitationNotFound
        if invitation.accepted_at is not None:
            raise InvitationAlreadyAccepted("The invitation has already been accepted.")
        # Already revoked: revoking again changes nothing (idempotent 204).

    async def accept_invitation(
        self, db: AsyncSession, principal: Principal, token: str
    ) -> MemberView:
        invitations = InvitationRepository(db)
        invitation = await invitations.get_by_token_hash(hash_invitation_token(token))
        if invitation is None:
            raise InvitationNotFound
        if (principal.email or "").lower() != invitation.email:
            raise EmailMismatch("The invitation was sent to another email address.")
        now = utcnow()
        if not await invitations.claim(invitation.id, principal.user_id, now):
            invitation = await invitations.get(invitation.org_id, invitation.id)
            _raise_unusable(invitation)
        membership = Membership(
            org_id=invitation.org_id, user_id=principal.user_id, role=invitation.role
        )
        # On failure the request rolls back, claim included: the invitation stays open.
        if not await MembershipRepository(db).add(membership):
            raise AlreadyMember("You are already a member of this organization.")
        # The caller's own name and email come with its token: no call to users needed.
        return MemberView(
            principal.user_id,
            principal.name,
            principal.email,
            Role(membership.role),
            membership.joined_at,
        )


def _raise_unusable(invitation: Invitation | None) -> NoReturn:
    if invitation is None:
        raise InvitationNotFound
    if invitation.revoked_at is not None:
        raise InvitationRevoked("The invitation has been revoked.")
    if invitation.accepted_at is not None:
        raise InvitationUsed("The invitation has already been used.")
    raise InvitationExpired("The invitation has expired.")
