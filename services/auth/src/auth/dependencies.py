"""FastAPI dependencies of the auth API, as `Annotated` aliases: one per resource the app
holds in its state, so that no handler reads `request.app.state`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Form, Request
from fastapi.security import HTTPBasicCredentials

from auth.config import AuthSettings
from auth.errors import InvalidClient
from auth.keys import KeyRing
from auth.oauth2 import client_secret_basic
from auth.outbox import OutboxRelay
from auth.schemas import TokenActionRequest, TokenRequest
from auth.service import (
    AccountDeletionService,
    AccountService,
    ClientCredentials,
    ClientInfo,
    OrgTokenService,
    PersonalTokenService,
    SessionService,
)
from auth.service.account_mail import AccountMailService
from auth.service.introspection import Revoker, TokenIntrospection
from platform_common.client_address import ClientAddressDep
from platform_common.db import get_session
from platform_common.errors import Forbidden
from platform_common.security import get_principal, get_session_user, oauth2_scheme
from platform_common.state import platform_state

# The request's session exactly as `SessionDep` gives it (platform_common.db.get_session:
# committed when the block ends, rolled back when it raises unless the error commits its
# changes), opened only where a handler needs one (`async with request_session(request) as
# db`): on the paths that do not, a request costs no session and no commit at all.
request_session = contextlib.asynccontextmanager(get_session)


def _app_state(name: str) -> Callable[[Request], Any]:
    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    return get


async def get_client_info(request: Request, address: ClientAddressDep) -> ClientInfo:
    # The address per the contract: X-Forwarded-For only through *_TRUSTED_PROXIES.
    return ClientInfo(user_agent=request.headers.get("user-agent"), address=address)


async def get_settings(request: Request) -> AuthSettings:
    settings = platform_state(request.app).settings
    assert isinstance(settings, AuthSettings)
    return settings


SettingsDep = Annotated[AuthSettings, Depends(get_settings)]
KeyRingDep = Annotated[KeyRing, Depends(_app_state("keyring"))]
OutboxDep = Annotated[OutboxRelay, Depends(_app_state("outbox"))]
SessionServiceDep = Annotated[SessionService, Depends(_app_state("session_service"))]
AccountServiceDep = Annotated[AccountService, Depends(_app_state("account_service"))]
AccountDeletionDep = Annotated[
    AccountDeletionService, Depends(_app_state("account_deletion_service"))
]
ClientCredentialsDep = Annotated[ClientCredentials, Depends(_app_state("client_credentials"))]
OrgTokenServiceDep = Annotated[OrgTokenService, Depends(_app_state("org_token_service"))]
PersonalTokenServiceDep = Annotated[
    PersonalTokenService, Depends(_app_state("personal_token_service"))
]
ClientInfoDep = Annotated[ClientInfo, Depends(get_client_info)]
# The OAuth2 token request: its form, and the client's Basic credentials when it sent them.
TokenRequestForm = Annotated[TokenRequest, Form()]
ClientBasicDep = Annotated[HTTPBasicCredentials | None, Depends(client_secret_basic)]
TokenActionForm = Annotated[TokenActionRequest, Form()]
TokenIntrospectionDep = Annotated[TokenIntrospection, Depends(_app_state("token_introspection"))]
AccountMailDep = Annotated[AccountMailService, Depends(_app_state("account_mail"))]


async def token_action_caller(
    request: Request,
    basic: ClientBasicDep,
    clients: ClientCredentialsDep,
    form: TokenActionForm,
) -> Revoker:
    """Who calls /introspect or /revoke: a service client (client credentials in the Basic
    header or the form, or a service token as the bearer), else the user of a login
    session's token; 401 without credentials, 401 `invalid_client` for wrong ones."""
    client_id, secret = (
        (basic.username, basic.password) if basic else (form.client_id, form.client_secret)
    )
    if client_id and secret:
        try:
            clients.authenticate(client_id, secret)
        except InvalidClient as exc:
            exc.headers["WWW-Authenticate"] = 'Basic realm="auth"'
            raise
        return Revoker(user_id=None)
    principal = await get_principal(request, await oauth2_scheme(request))
    if principal.is_service:
        return Revoker(user_id=None)
    return Revoker(user_id=(await get_session_user(principal)).user_id)


async def service_client(caller: Annotated[Revoker, Depends(token_action_caller)]) -> Revoker:
    if caller.user_id is not None:
        raise Forbidden("Token introspection is for service clients.")
    return caller


TokenActionCaller = Annotated[Revoker, Depends(token_action_caller)]
ServiceClientCaller = Annotated[Revoker, Depends(service_client)]


async def wake_outbox(background: BackgroundTasks, outbox: OutboxDep) -> None:
    """For routes that write user events: the relay delivers them at once, not at its next
    poll. Background tasks run once the response is out, after the session has committed,
    and not at all when the route fails."""
    background.add_task(outbox.wake)


WakesOutbox = Depends(wake_outbox)
