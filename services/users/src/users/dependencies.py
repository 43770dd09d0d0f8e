"""FastAPI dependencies of the users API, as `Annotated` aliases, one per resource.

```
UsersServiceDep  users' rules, given the orgs client (over the app's ServiceClient for the
                 "orgs" peer), the shared caches (platform_common.cache) and the direct
                 reader (platform_common.db.Reader)
ProvisionCaller  auth's outbox relay: a service token carrying `users:provision`
```

Handlers take these; none reads `request.app.state` itself. Each is one dependency with no
dependencies of its own: FastAPI resolves every node of the tree on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from platform_common.cache import USER_CARDS, USER_ORGS, SharedCache
from platform_common.security import Principal, require_scope
from platform_common.state import platform_state
from users.clients.orgs import OrgsClient
from users.repository import ProfileReads
from users.service import UsersService

PROVISION_SCOPE = "users:provision"


async def get_users_service(connection: HTTPConnection) -> UsersService:
    platform = platform_state(connection.app)
    return UsersService(
        OrgsClient(platform.peer("orgs")),
        SharedCache(platform.redis, USER_ORGS),
        SharedCache(platform.redis, USER_CARDS),
        profiles=ProfileReads(platform.reader),
        sessions=platform.sessionmaker,
    )


UsersServiceDep = Annotated[UsersService, Depends(get_users_service)]
ProvisionCaller = Annotated[Principal, Depends(require_scope(PROVISION_SCOPE))]
