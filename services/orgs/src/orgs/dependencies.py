"""FastAPI dependencies of the orgs API, as `Annotated` aliases, one per resource; they
validate and chain.

```
UsersClientDep         the call to users, over the app's ServiceClient for the "users" peer
UserOrgsInvalidationDep  invalidates users' cache of a user's org list after a commit
OrgsSettingsDep        the settings the app was built with
OrganizationServiceDep / MemberServiceDep (+ users) / InvitationServiceDep (+ settings)
CurrentUser (401 without a valid user token; an org-scoped token is a user token too)
  -> get_org_access(slug)      404 `not_found` unless the caller is a member (or a
                               platform admin, who acts as an owner everywhere, with a
                               plain user token); 403 `org_mismatch` for an org-scoped
                               token of another org
     -> require_permission(p)  403 `forbidden` unless the caller's role grants `p`
                               (platform_common.permissions), narrowed to an org-scoped
                               token's permissions: CanReadOrg, CanUpdateOrg, CanDeleteOrg,
                               CanWriteMembers, CanWriteInvitations
  -> readable_org(p)          the same checks for a read permission, and the org with its
                               member count, in one dependency and one direct read (no
                               session): OrgReadable, MembersReadable
MemberViewsDep                 the members page from direct reads and the shared cache
MembershipReader               auth's service token with `orgs:memberships:read`
AccountDeleter                 auth's service token with `orgs:users:delete`
```

Handlers take these; none reads `request.app.state` itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from starlette.requests import HTTPConnection

from orgs.cache import UserOrgsInvalidation
from orgs.clients.users import UsersClient
from orgs.config import OrgsSettings
from orgs.repository import OrgReads
from orgs.revocation import MemberTokenRevocation
from orgs.service import (
    AccountDeletionService,
    InvitationService,
    MemberService,
    MemberViews,
    OrgAccess,
    OrganizationService,
    OrganizationViews,
    ReadAccess,
)
from platform_common.cache import USER_CARDS, SharedCache
from platform_common.db import SessionDep
from platform_common.security import (
    CurrentUser,
    Principal,
    check_permission,
    permission_rule,
    require_scope,
)
from platform_common.state import PlatformStateDep, platform_state
from platform_common.token_docs import documents

MEMBERSHIPS_SCOPE = "orgs:memberships:read"
USERS_DELETE_SCOPE = "orgs:users:delete"


async def get_users_client(platform: PlatformStateDep) -> UsersClient:
    return UsersClient(platform.peer("users"), SharedCache(platform.redis, USER_CARDS))


UsersClientDep = Annotated[UsersClient, Depends(get_users_client)]


async def get_orgs_settings(platform: PlatformStateDep) -> OrgsSettings:
    settings = platform.settings
    assert isinstance(settings, OrgsSettings)
    return settings


OrgsSettingsDep = Annotated[OrgsSettings, Depends(get_orgs_settings)]


async def get_user_orgs_invalidation(platform: PlatformStateDep) -> UserOrgsInvalidation:
    return UserOrgsInvalidation(platform.redis)


UserOrgsInvalidationDep = Annotated[UserOrgsInvalidation, Depends(get_user_orgs_invalidation)]


async def get_member_token_revocation(platform: PlatformStateDep) -> MemberTokenRevocation:
    return MemberTokenRevocation(platform.revocations)


MemberTokenRevocationDep = Annotated[MemberTokenRevocation, Depends(get_member_token_revocation)]


async def get_organization_service(
    db: SessionDep, user_orgs: UserOrgsInvalidationDep, tokens: MemberTokenRevocationDep
) -> OrganizationService:
    return OrganizationService(db, user_orgs, tokens)


async def get_member_service(
    db: SessionDep,
    users: UsersClientDep,
    user_orgs: UserOrgsInvalidationDep,
    tokens: MemberTokenRevocationDep,
) -> MemberService:
    return MemberService(db, users, user_orgs, tokens)


async def get_invitation_service(
    request: Request,
    db: SessionDep,
    settings: OrgsSettingsDep,
    user_orgs: UserOrgsInvalidationDep,
) -> InvitationService:
    return InvitationService(db, settings, user_orgs, getattr(request.app.state, "mailer", None))


async def get_account_deletion_service(
    db: SessionDep, user_orgs: UserOrgsInvalidationDep, tokens: MemberTokenRevocationDep
) -> AccountDeletionService:
    return AccountDeletionService(db, user_orgs, tokens)


AccountDeletionServiceDep = Annotated[AccountDeletionService, Depends(get_account_deletion_service)]
OrganizationServiceDep = Annotated[OrganizationService, Depends(get_organization_service)]
MemberServiceDep = Annotated[MemberService, Depends(get_member_service)]
InvitationServiceDep = Annotated[InvitationService, Depends(get_invitation_service)]


MEMBER_RULE = (
    "a member of the org (others: 404 `not_found`); an org-scoped token must be for this "
    "org (another org's: 403 `org_mismatch`)"
)
SlugPath = Annotated[str, Path(description="The organization's slug")]


@documents(MEMBER_RULE)
async def get_org_access(
    slug: SlugPath,
    principal: CurrentUser,
    orgs: OrganizationServiceDep,
) -> OrgAccess:
    return await orgs.resolve(principal, slug)


def readable_org(permission: str) -> Callable[..., Awaitable[ReadAccess]]:
    """For the hot reads: what `require_permission(permission)` checks, resolved with one
    direct read instead of a session and two queries."""

    @documents(MEMBER_RULE, permission_rule(permission))
    async def dependency(
        slug: SlugPath, principal: CurrentUser, connection: HTTPConnection
    ) -> ReadAccess:
        views = OrganizationViews(OrgReads(platform_state(connection.app).reader))
        return await views.access(principal, slug, permission)

    return dependency


OrgReadable = Annotated[ReadAccess, Depends(readable_org("org:read"))]
MembersReadable = Annotated[ReadAccess, Depends(readable_org("members:read"))]


async def get_member_views(connection: HTTPConnection) -> MemberViews:
    platform = platform_state(connection.app)
    return MemberViews(
        OrgReads(platform.reader),
        UsersClient(platform.peer("users"), SharedCache(platform.redis, USER_CARDS)),
    )


MemberViewsDep = Annotated[MemberViews, Depends(get_member_views)]


OrgAccessDep = Annotated[OrgAccess, Depends(get_org_access)]


def require_permission(permission: str) -> Callable[[OrgAccess], Awaitable[OrgAccess]]:
    """A dependency admitting members whose access grants `permission`."""

    @documents(permission_rule(permission))
    async def dependency(access: OrgAccessDep) -> OrgAccess:
        check_permission(access.permissions, permission)
        return access

    return dependency


CanReadOrg = Annotated[OrgAccess, Depends(require_permission("org:read"))]
CanUpdateOrg = Annotated[OrgAccess, Depends(require_permission("org:update"))]
CanDeleteOrg = Annotated[OrgAccess, Depends(require_permission("org:delete"))]
CanWriteMembers = Annotated[OrgAccess, Depends(require_permission("members:write"))]
CanWriteInvitations = Annotated[OrgAccess, Depends(require_permission("invitations:write"))]
MembershipReader = Annotated[Principal, Depends(require_scope(MEMBERSHIPS_SCOPE))]
AccountDeleter = Annotated[Principal, Depends(require_scope(USERS_DELETE_SCOPE))]
