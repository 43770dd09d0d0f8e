"""FastAPI dependencies of the orgs API, as `Annotated` aliases, one per resource; they
validate and chain.

```
UsersClientDep         the call to users, over the app's ServiceClient for the "users" peer
UserOrgsInvalidationDep  invalidates users' cache of a user's org list after a commit
OrgsSettingsDep        the settings the app was built with
OrganizationServiceDep / MemberServiceDep (+ users) / InvitationServiceDep (+ settings)
CurrentUser (401 without a valid user token)
  -> get_org_access(slug)      404 `not_found` unless the caller is a member (or a
                               platform admin, who acts as an owner everywhere)
     -> require_role(minimum)  403 `forbidden` when the caller's role is too low:
                               ViewerAccess, MemberAccess, AdminAccess, OwnerAccess
```

Handlers take these; none reads `request.app.state` itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path

from orgs.cache import UserOrgsInvalidation
from orgs.clients.users import UsersClient
from orgs.config import OrgsSettings
from orgs.errors import NotAllowed
from orgs.roles import OrgRole
from orgs.service import InvitationService, MemberService, OrgAccess, OrganizationService
from platform_common.cache import USER_CARDS, SharedCache
from platform_common.db import SessionDep
from platform_common.security import CurrentUser
from platform_common.state import PlatformStateDep


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


async def get_organization_service(
    db: SessionDep, user_orgs: UserOrgsInvalidationDep
) -> OrganizationService:
    return OrganizationService(db, user_orgs)


async def get_member_service(
    db: SessionDep, users: UsersClientDep, user_orgs: UserOrgsInvalidationDep
) -> MemberService:
    return MemberService(db, users, user_orgs)


async def get_invitation_service(
    db: SessionDep, settings: OrgsSettingsDep, user_orgs: UserOrgsInvalidationDep
) -> InvitationService:
    return InvitationService(db, settings, user_orgs)


OrganizationServiceDep = Annotated[OrganizationService, Depends(get_organization_service)]
MemberServiceDep = Annotated[MemberService, Depends(get_member_service)]
InvitationServiceDep = Annotated[InvitationService, Depends(get_invitation_service)]


async def get_org_access(
    slug: Annotated[str, Path(description="The organization's slug")],
    principal: CurrentUser,
    orgs: OrganizationServiceDep,
) -> OrgAccess:
    return await orgs.resolve(principal, slug)


OrgAccessDep = Annotated[OrgAccess, Depends(get_org_access)]


def require_role(minimum: OrgRole) -> Callable[[OrgAccess], Awaitable[OrgAccess]]:
    """A dependency admitting members whose role is `minimum` or higher."""

    async def dependency(access: OrgAccessDep) -> OrgAccess:
        if not access.effective_role.at_least(minimum):
            raise NotAllowed(f"This requires the {minimum.value} role or higher in the org.")
        return access

    return dependency


ViewerAccess = Annotated[OrgAccess, Depends(require_role(OrgRole.VIEWER))]
MemberAccess = Annotated[OrgAccess, Depends(require_role(OrgRole.MEMBER))]
AdminAccess = Annotated[OrgAccess, Depends(require_role(OrgRole.ADMIN))]
OwnerAccess = Annotated[OrgAccess, Depends(require_role(OrgRole.OWNER))]
