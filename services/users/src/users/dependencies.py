"""FastAPI dependencies of the users API, as `Annotated` aliases, one per resource.

```
OrgsClientDep    the call to orgs, over the app's ServiceClient for the "orgs" peer
UsersServiceDep  users' rules, given the orgs client and the shared caches (platform_common.cache)
ProvisionCaller  auth's outbox relay: a service token carrying `users:provision`
```

Handlers take these; none reads `request.app.state` itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from platform_common.cache import USER_CARDS, USER_ORGS, SharedCache
from platform_common.security import Principal, require_scope
from platform_common.state import PlatformStateDep
from users.clients.orgs import OrgsClient
from users.service import UsersService

PROVISION_SCOPE = "users:provision"


async def get_orgs_client(platform: PlatformStateDep) -> OrgsClient:
    return OrgsClient(platform.peer("orgs"))


OrgsClientDep = Annotated[OrgsClient, Depends(get_orgs_client)]


async def get_users_service(orgs: OrgsClientDep, platform: PlatformStateDep) -> UsersService:
    return UsersService(
        orgs, SharedCache(platform.redis, USER_ORGS), SharedCache(platform.redis, USER_CARDS)
    )


UsersServiceDep = Annotated[UsersService, Depends(get_users_service)]
ProvisionCaller = Annotated[Principal, Depends(require_scope(PROVISION_SCOPE))]
