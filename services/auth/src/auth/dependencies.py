"""FastAPI dependencies of the auth API, as `Annotated` aliases: one a resource the app
holds in its state, so that no handler reads `request.app.state`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from auth.config import AuthSettings
from auth.keys import KeyRing
from auth.outbox import OutboxRelay
from auth.service import AccountService, ClientCredentials, ClientInfo, SessionService


def _app_state(name: str) -> Callable[[Request], Any]:
    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    return get


def get_client_info(request: Request) -> ClientInfo:
    # request.client is the real peer: behind the ingress, uvicorn/gunicorn resolve it from
    # X-Forwarded-For for the trusted proxies only (forwarded_allow_ips).
    return ClientInfo(
        user_agent=request.headers.get("user-agent"),
        address=request.client.host if request.client else None,
    )


SettingsDep = Annotated[AuthSettings, Depends(_app_state("settings"))]
KeyRingDep = Annotated[KeyRing, Depends(_app_state("keyring"))]
OutboxDep = Annotated[OutboxRelay, Depends(_app_state("outbox"))]
SessionServiceDep = Annotated[SessionService, Depends(_app_state("session_service"))]
AccountServiceDep = Annotated[AccountService, Depends(_app_state("account_service"))]
ClientCredentialsDep = Annotated[ClientCredentials, Depends(_app_state("client_credentials"))]
ClientInfoDep = Annotated[ClientInfo, Depends(get_client_info)]
