"""Organizations: resolving a slug for a caller, and creating, listing, renaming and deleting."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orgs.cache import UserOrgsInvalidation
from orgs.errors import OrgNotFound, SlugTaken
from orgs.events import Target, record_org_event
from orgs.models import Membership, Organization
from orgs.repository import MembershipRepository, OrganizationRepository, OrgReads
from orgs.revocation import MemberTokenRevocation
from orgs.roles import OrgRole
from orgs.schemas import SLUG_PATTERN
from orgs.service.account_deletion import refuse_deleted_account
from platform_common.pagination import PageParams
from platform_common.permissions import permissions_for
from platform_common.security import OrgMismatch, Principal, check_permission

SLUG_RE = re.compile(SLUG_PATTERN)


@dataclass(frozen=True)
class OrgAccess:
    """An org resolved for a caller who may see it.

    With an org-scoped token the caller acts with the token's role and permissions (never
    more than its membership's), and a platform admin is then an ordinary member; with a
    personal access token, with its role's permissions that are among the token's scopes."""

    org: Organization
    role: OrgRole | None  # the caller's membership; None only for a platform admin
    principal: Principal

    @property
    def as_platform_admin(self) -> bool:
        return self.principal.is_admin and self.principal.org is None

    def narrowed(self, role: OrgRole) -> OrgRole:
        """`role`, lowered to the org-scoped token's role if the caller holds one."""
        if self.principal.org is None:
            return role
        token_role = OrgRole(self.principal.org.role)
        return token_role if token_role.rank < role.rank else role

    @property
    def effective_role(self) -> OrgRole:
        if self.as_platform_admin:
            return OrgRole.OWNER
        assert self.role is not None
        return self.narrowed(self.role)

    @property
    def permissions(self) -> frozenset[str]:
        granted = permissions_for(self.effective_role.value)
        if self.principal.org is not None:
            granted &= self.principal.org.permissions
        if self.principal.via_pat:  # a personal access token's scopes narrow it further
            granted &= self.principal.scopes
        return granted


@dataclass(frozen=True)
class OrgView:
    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime
    role: OrgRole | None
    member_count: int | None = None

    @classmethod
    def of(
        cls, org: Organization, role: OrgRole | None, member_count: int | None = None
    ) -> OrgView:
        return cls(org.id, org.name, org.slug, org.created_at, role, member_count)


def check_slug(principal: Principal, slug: str) -> None:
    """OrgMismatch for an org-scoped token of another org; OrgNotFound for a slug no org
    can have (and some, a NUL, PostgreSQL cannot even compare)."""
    if principal.org is not None and not principal.org.matches(slug):
        raise OrgMismatch
    if not SLUG_RE.fullmatch(slug):
        raise OrgNotFound


def access_of(org: Organization, role: OrgRole | None, principal: Principal) -> OrgAccess:
    access = OrgAccess(org, role, principal)
    if role is None and not access.as_platform_admin:
        raise OrgNotFound  # non-members learn nothing, not even that the org exists
    return access


@dataclass(frozen=True)
class ReadAccess:
    """An org resolved for a caller who may read it (OrganizationViews), with its size."""

    access: OrgAccess
    member_count: int

    @property
    def view(self) -> OrgView:
        return OrgView.of(self.access.org, self.access.role, self.member_count)


class OrganizationViews:
    """The reads of an org's page and its members' page, each resolved in one direct read
    (orgs.repository.OrgReads), no session: the checks of `OrganizationService.resolve`
    and the permission's."""

    def __init__(self, reads: OrgReads) -> None:
        self.reads = reads

    async def access(self, principal: Principal, slug: str, permission: str) -> ReadAccess:
        check_slug(principal, slug)
        row = await self.reads.org_for_caller(slug, principal.user_id)
        if row is None:
            raise OrgNotFound
        # Detached: only read, as OrgAccess and OrgView read an org.
        org = Organization(
            id=row["id"], name=row["name"], slug=row["slug"], created_at=row["created_at"]
        )
        role = OrgRole(row["role"]) if row["role"] is not None else None
        access = access_of(org, role, principal)
        check_permission(access.permissions, permission)
        return ReadAccess(access, row["member_count"])


class OrganizationService:
    def __init__(
        self, db: AsyncSession, user_orgs: UserOrgsInvalidation, tokens: MemberTokenRevocation
    ) -> None:
        self.db = db
        self.orgs = OrganizationRepository(db)
        self.members = MembershipRepository(db)
        self.user_orgs = user_orgs
        self.tokens = tokens

    async def create(self, principal: Principal, name: str, slug: str) -> OrgView:
        await refuse_deleted_account(self.db, principal.user_id)
        org = Organization(id=uuid.uuid4(), name=name, slug=slug)
        owner = Membership(user_id=principal.user_id, role=OrgRole.OWNER.value)
        if not await self.orgs.add_with_owner(org, owner):
            raise SlugTaken(f"The slug '{slug}' is already taken.")
        record_org_event(self.db, "org.created", principal, org, _org_target(org), name=name)
        self.user_orgs.after_commit(self.db, [principal.user_id])
        return OrgView.of(org, OrgRole.OWNER)

    async def list_for(self, principal: Principal, page: PageParams) -> tuple[list[OrgView], int]:
        rows, total = await self.orgs.list_for_user(
            principal.user_id, offset=page.offset, limit=page.limit
        )
        return [OrgView.of(org, OrgRole(role)) for org, role in rows], total

    async def resolve(self, principal: Principal, slug: str) -> OrgAccess:
        """The org and the caller's role in it; OrgNotFound unless the caller may see it,
        OrgMismatch for an org-scoped token of another org."""
        check_slug(principal, slug)
        org = await self.orgs.get_by_slug(slug)
        if org is None:
            raise OrgNotFound
        return access_of(org, await self.members.role_of(org.id, principal.user_id), principal)

    async def membership_of(self, user_id: uuid.UUID, org: str) -> tuple[Organization, OrgRole]:
        """A user's membership in an org named by slug or id (auth's org-scoped tokens);
        OrgNotFound when there is none."""
        try:
            found = await self.orgs.get(uuid.UUID(org))
        except ValueError:
            found = await self.orgs.get_by_slug(org) if SLUG_RE.fullmatch(org) else None
        role = await self.members.role_of(found.id, user_id) if found is not None else None
        if found is None or role is None:
            raise OrgNotFound
        return found, role

    async def get(self, access: OrgAccess) -> OrgView:
        count = await self.members.count_members(access.org.id)
        return OrgView.of(access.org, access.role, count)

    async def rename(self, access: OrgAccess, name: str) -> OrgView:
        old_name = access.org.name
        await self.orgs.rename(access.org, name)
        record_org_event(
            self.db,
            "org.updated",
            access.principal,
            access.org,
            _org_target(access.org),
            name=name,
            old_name=old_name,
        )
        self.user_orgs.after_commit(self.db, await self.members.user_ids(access.org.id))
        return await self.get(access)

    async def delete(self, access: OrgAccess) -> None:
        members = await self.members.user_ids(access.org.id)
        await self.tokens.revoke(self.db, access.org.id, members)
        await self.orgs.delete(access.org.id)
        record_org_event(
            self.db, "org.deleted", access.principal, access.org, _org_target(access.org)
        )
        self.user_orgs.after_commit(self.db, members)


def _org_target(org: Organization) -> Target:
    return Target(type="org", id=str(org.id))
