"""FastAPI dependencies of the users API, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from platform_common.security import Principal, require_scope
from users.service import UsersService

PROVISION_SCOPE = "users:provision"


def get_users_service(request: Request) -> UsersService:
    service: UsersService = request.app.state.users_service
    return service


UsersServiceDep = Annotated[UsersService, Depends(get_users_service)]
# auth's outbox relay: a service token carrying `users:provision`.
ProvisionCaller = Annotated[Principal, Depends(require_scope(PROVISION_SCOPE))]
