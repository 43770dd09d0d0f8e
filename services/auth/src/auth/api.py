"""auth's HTTP API (under /api/v1/auth). Handlers are thin: dependencies in, one call out."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Request, Response, status
from fastapi.responses import JSONResponse

from auth.dependencies import (
    AccountServiceDep,
    ClientCredentialsDep,
    ClientInfoDep,
    SessionServiceDep,
)
from auth.errors import AccountDisabled, InvalidClient, InvalidCredentials, InvalidRefreshToken
from auth.schemas import (
    LoginRequest,
    OpenIDConfiguration,
    PasswordChange,
    RefreshRequest,
    ServiceToken,
    SessionRead,
    TokenPair,
    UserCreate,
    UserRead,
)
from auth.throttle import LoginRateLimited
from platform_common.db import SessionDep
from platform_common.pagination import Page, PageParamsDep
from platform_common.security import CurrentUser, RequireAdmin

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses={409: {"description": "email_taken"}, 422: {"description": "weak_password"}},
)
async def register(
    data: UserCreate,
    db: SessionDep,
    accounts: AccountServiceDep,
    background: BackgroundTasks,
    request: Request,
) -> Any:
    user = await accounts.register(db, data)
    # Background tasks run once the response is out, after the session has committed.
    background.add_task(request.app.state.outbox.wake)
    return user


@router.post("/login", response_model=TokenPair, responses={429: {"description": "rate_limited"}})
async def login(
    data: LoginRequest, db: SessionDep, sessions: SessionServiceDep, client: ClientInfoDep
) -> Any:
    return await sessions.login(db, data.email, data.password, client)


@router.post("/refresh", response_model=TokenPair)
async def refresh(data: RefreshRequest, db: SessionDep, sessions: SessionServiceDep) -> Any:
    return await sessions.refresh(db, data.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(data: RefreshRequest, db: SessionDep, sessions: SessionServiceDep) -> None:
    await sessions.logout(db, data.refresh_token)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(user: CurrentUser, db: SessionDep, sessions: SessionServiceDep) -> None:
    await sessions.logout_all(db, user.user_id)


@router.get("/sessions", response_model=Page[SessionRead])
async def list_sessions(
    user: CurrentUser, db: SessionDep, sessions: SessionServiceDep, page: PageParamsDep
) -> Any:
    rows, total = await sessions.list_sessions(
        db, user.user_id, offset=page.offset, limit=page.limit
    )
    items = [
        SessionRead.model_validate(row).model_copy(
            update={"current": str(row.id) == user.session_id}
        )
        for row in rows
    ]
    return Page[SessionRead].build(items, total, page)


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def end_session(
    session_id: uuid.UUID, user: CurrentUser, db: SessionDep, sessions: SessionServiceDep
) -> None:
    await sessions.end_session(db, user.user_id, session_id)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    data: PasswordChange, user: CurrentUser, db: SessionDep, accounts: AccountServiceDep
) -> None:
    current = uuid.UUID(user.session_id) if user.session_id else None
    await accounts.change_password(
        db, user.user_id, current, data.current_password, data.new_password
    )


@router.post("/users/{user_id}/disable", status_code=status.HTTP_204_NO_CONTENT)
async def disable_user(
    user_id: uuid.UUID,
    _: RequireAdmin,
    db: SessionDep,
    accounts: AccountServiceDep,
    background: BackgroundTasks,
    request: Request,
) -> None:
    await accounts.set_active(db, user_id, active=False)
    background.add_task(request.app.state.outbox.wake)


@router.post("/users/{user_id}/enable", status_code=status.HTTP_204_NO_CONTENT)
async def enable_user(
    user_id: uuid.UUID,
    _: RequireAdmin,
    db: SessionDep,
    accounts: AccountServiceDep,
    background: BackgroundTasks,
    request: Request,
) -> None:
    await accounts.set_active(db, user_id, active=True)
    background.add_task(request.app.state.outbox.wake)


@router.get("/jwks.json", tags=["keys"])
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    # Short cache: verifiers refetch on an unknown kid anyway, so rotations propagate.
    response.headers["Cache-Control"] = "public, max-age=60"
    keys: dict[str, Any] = request.app.state.keyring.jwks()
    return keys


@router.get("/.well-known/openid-configuration", response_model=OpenIDConfiguration, tags=["keys"])
async def openid_configuration(request: Request) -> Any:
    issuer = request.app.state.settings.jwt_issuer
    return OpenIDConfiguration(
        issuer=issuer,
        jwks_uri=f"{issuer}/jwks.json",
        token_endpoint=f"{issuer}/token",
        grant_types_supported=["password", "refresh_token", "client_credentials"],
        token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"],
        id_token_signing_alg_values_supported=request.app.state.keyring.algorithms,
        response_types_supported=["token"],
        subject_types_supported=["public"],
        scopes_supported=sorted(
            {s for c in request.app.state.settings.service_clients.values() for s in c.scopes}
        ),
    )


# OAuth2 token endpoint ---------------------------------------------------------------------


def oauth_error(
    status_code: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status_code,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


@router.post(
    "/token",
    response_model=TokenPair | ServiceToken,
    summary="OAuth2 token endpoint (password, refresh_token, client_credentials)",
    responses={
        400: {"description": "RFC 6749 error"},
        401: {"description": "RFC 6749 error"},
        429: {"description": "RFC 6749 error `slow_down`, with `Retry-After`"},
    },
)
async def token(
    request: Request,
    db: SessionDep,
    sessions: SessionServiceDep,
    clients: ClientCredentialsDep,
    client: ClientInfoDep,
    grant_type: Annotated[str | None, Form()] = None,
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> Any:
    try:
        if grant_type == "password":
            if not username or not password:
                return oauth_error(400, "invalid_request", "username and password are required")
            return await sessions.login(db, username, password, client)
        if grant_type == "refresh_token":
            if not refresh_token:
                return oauth_error(400, "invalid_request", "refresh_token is required")
            return await sessions.refresh(db, refresh_token)
        if grant_type == "client_credentials":
            basic = _basic_credentials(request)
            cid, secret = basic if basic else (client_id, client_secret)
            if not cid or not secret:
                return oauth_error(
                    401,
                    "invalid_client",
                    "client authentication is required",
                    {"WWW-Authenticate": 'Basic realm="auth"'},
                )
            return clients.issue(cid, secret, scope)
    except (InvalidCredentials, InvalidRefreshToken, AccountDisabled) as exc:
        return oauth_error(400, "invalid_grant", exc.detail)
    except InvalidClient as exc:
        return oauth_error(
            401, "invalid_client", exc.detail, {"WWW-Authenticate": 'Basic realm="auth"'}
        )
    except LoginRateLimited as exc:
        return oauth_error(429, "slow_down", exc.detail, {"Retry-After": str(exc.retry_after)})
    if not grant_type:
        return oauth_error(400, "invalid_request", "grant_type is required")
    return oauth_error(400, "unsupported_grant_type", f"grant_type '{grant_type}' is not supported")
