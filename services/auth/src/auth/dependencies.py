"""FastAPI dependencies of the auth API, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from auth.service import AuthService, ClientInfo


def get_auth_service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


def get_client_info(request: Request) -> ClientInfo:
    # request.client is the real peer: behind the ingress, uvicorn/gunicorn resolve it from
    # X-Forwarded-For for the trusted proxies only (forwarded_allow_ips).
    return ClientInfo(
        user_agent=request.headers.get("user-agent"),
        address=request.client.host if request.client else None,
    )


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
ClientInfoDep = Annotated[ClientInfo, Depends(get_client_info)]
