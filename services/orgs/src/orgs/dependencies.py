"""FastAPI dependencies of the orgs API, as `Annotated` aliases that validate and chain.

```
CurrentUser (401 without a valid user token)
  -> get_org_access(slug)      404 `not_found` unless the caller is a member (or a
                               platform admin, who acts as an owner everywhere)
     -> require_role(minimum)  403 `forbidden` when the caller's role is too low
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from orgs.errors import NotAllowed
from orgs.roles import Role
from orgs.service import OrgAccess, OrgsService
from platform_common.db import SessionDep
from platform_common.security import CurrentUser


def get_orgs_service(request: Request) -> OrgsService:
    service: OrgsService = request.app.state.orgs_service
    return service


OrgsServiceDep = Annotated[OrgsService, Depends(get_orgs_service)]


async def get_org_access(
    slug: Annotated[str, Path(description="The organization's slug")],
    principal: CurrentUser,
    db: SessionDep,
    orgs: OrgsServiceDep,
) -> OrgAccess:
    return await orgs.resolve(db, principal, slug)


OrgAccessDep = Annotated[OrgAccess, Depends(get_org_access)]


def require_role(minimum: Role) -> Callable[[OrgAccess], Awaitable[OrgAccess]]:
    """A dependency admitting members whose role is `minimum` or higher."""

    async def dependency(access: OrgAccessDep) -> OrgAccess:
        if not access.effective_role.at_least(minimum):
            raise NotAllowed(f"This requires the {minimum.value} role or higher in the org.")
        return access

    return dependency


ViewerAccess = Annotated[OrgAccess, Depends(require_role(Role.VIEWER))]
MemberAccess = Annotated[OrgAccess, Depends(require_role(Role.MEMBER))]
AdminAccess = Annotated[OrgAccess, Depends(require_role(Role.ADMIN))]
OwnerAccess = Annotated[OrgAccess, Depends(require_role(Role.OWNER))]
