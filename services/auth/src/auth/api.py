"""auth's HTTP API (under /api/v1/auth). Handlers are thin: dependencies in, one call out."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status

from auth import oauth2
from auth.dependencies import (
    AccountDeletionDep,
    AccountMailDep,
    AccountServiceDep,
    ClientBasicDep,
    ClientCredentialsDep,
    ClientInfoDep,
    KeyRingDep,
    OrgTokenServiceDep,
    PersonalTokenServiceDep,
    ServiceClientCaller,
    SessionServiceDep,
    SettingsDep,
    TokenActionCaller,
    TokenActionForm,
    TokenIntrospectionDep,
    TokenRequestForm,
    WakesOutbox,
    request_session,
)
from auth.schemas import (
    AccountDeletion,
    IntrospectionAnswer,
    LoginRequest,
    LoginTokens,
    OpenIDConfiguration,
    OrgToken,
    OrgTokenRequest,
    PasswordChange,
    PersonalTokenCreate,
    PersonalTokenCreated,
    PersonalTokenRead,
    RefreshRequest,
    ServiceToken,
    SessionRead,
    StandInToken,
    TokenPair,
    TokenRequest,
    UserCreate,
    UserRead,
)
from platform_common.db import SessionDep
from platform_common.events import Actor
from platform_common.pagination import Page, PageParamsDep
from platform_common.security import (
    CurrentSessionUser,
    InvalidToken,
    RequireAdmin,
    require_admin,
)
from platform_common.state import PlatformStateDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
internal_router = APIRouter(prefix="/internal/v1/auth", tags=["internal"])

# Endpoints of the account's own security take a login session's token only.
SESSION_ONLY: dict[int | str, dict[str, Any]] = {
    403: {
        "description": "`insufficient_scope`: a personal access token or an org-scoped token "
        "cannot do this"
    }
}


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses={409: {"description": "email_taken"}, 422: {"description": "weak_password"}},
    dependencies=[WakesOutbox],
)
async def register(data: UserCreate, db: SessionDep, account_mail: AccountMailDep) -> Any:
    """Mails a verification link to the address (auth.api_mail)."""
    return await account_mail.register(db, data)


@router.post("/login", response_model=LoginTokens, responses={429: {"description": "rate_limited"}})
async def login(
    data: LoginRequest, db: SessionDep, sessions: SessionServiceDep, client: ClientInfoDep
) -> Any:
    return await sessions.login(db, data.email, data.password, client, data.device_token)


@router.post("/refresh", response_model=TokenPair)
async def refresh(request: Request, data: RefreshRequest, sessions: SessionServiceDep) -> Any:
    # An ordinary rotation is one statement that commits on its own: no session. Any other
    # token is checked step by step in the request's session (as SessionDep's).
    pair = await sessions.rotate(data.refresh_token)
    if pair is not None:
        return pair
    async with request_session(request) as db:
        return await sessions.refresh_checked(db, data.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(data: RefreshRequest, db: SessionDep, sessions: SessionServiceDep) -> None:
    await sessions.logout(db, data.refresh_token)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=SESSION_ONLY)
async def logout_all(user: CurrentSessionUser, db: SessionDep, sessions: SessionServiceDep) -> None:
    await sessions.logout_all(db, user.user_id)


@router.get("/sessions", response_model=Page[SessionRead], responses=SESSION_ONLY)
async def list_sessions(
    user: CurrentSessionUser, db: SessionDep, sessions: SessionServiceDep, page: PageParamsDep
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


@router.delete(
    "/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses=SESSION_ONLY
)
async def end_session(
    session_id: uuid.UUID, user: CurrentSessionUser, db: SessionDep, sessions: SessionServiceDep
) -> None:
    await sessions.end_session(db, user.user_id, session_id)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, responses=SESSION_ONLY)
async def change_password(
    data: PasswordChange, user: CurrentSessionUser, db: SessionDep, accounts: AccountServiceDep
) -> None:
    current = uuid.UUID(user.session_id) if user.session_id else None
    await accounts.change_password(
        db, user.user_id, current, data.current_password, data.new_password
    )


@router.post(
    "/org-token",
    response_model=OrgToken,
    tags=["org tokens"],
    summary="Get an access token scoped to one organization",
    responses={
        **SESSION_ONLY,
        404: {"description": "`org_not_found`: no such org, or the caller is not a member"},
        503: {"description": "`dependency_unavailable`: orgs is unreachable or failing"},
        504: {"description": "`dependency_timeout`: orgs did not answer in time"},
    },
)
async def org_token(
    data: OrgTokenRequest, user: CurrentSessionUser, db: SessionDep, org_tokens: OrgTokenServiceDep
) -> Any:
    """**Accepts** a user's login-session access token; neither a personal access token
    nor an org-scoped token (403 `insufficient_scope`). The answer is a short-lived
    access token (`AUTH_ORG_TOKEN_TTL_SECONDS`, 300 s) of the same session, with the claims
    `org_id`, `org_slug`, `org_role` and `permissions` (the role's, from the platform's one
    role-to-permission table) and `org_checked_at`. The membership is read from orgs at
    that moment. When the member's role changes, the member leaves or the org is deleted,
    the token fails at every service within seconds (401 `invalid_token`); ending the
    session (logout, password change) ends it too."""
    return await org_tokens.issue(db, user, data.org)


# Personal access tokens -----------------------------------------------------------------

PAT_TAGS: list[str | Enum] = ["personal access tokens"]


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=PersonalTokenCreated,
    tags=PAT_TAGS,
    summary="Create a personal access token",
    responses=SESSION_ONLY,
)
async def create_personal_token(
    data: PersonalTokenCreate,
    user: CurrentSessionUser,
    db: SessionDep,
    personal_tokens: PersonalTokenServiceDep,
) -> Any:
    """**Accepts** a login session's access token only. The answer holds the `ipt_...`
    token, shown only this once (only its SHA-256 is stored). It is accepted as
    `Authorization: Bearer ipt_...` by every service, with its owner's rights narrowed to
    its `scopes` (null: all of them, but never the account's own security), until it
    expires (`expires_in_days`, 1 to 365) or is deleted; a deletion is seen everywhere
    within 5 seconds."""
    return await personal_tokens.create(db, user.user_id, data)


@router.get(
    "/tokens",
    response_model=Page[PersonalTokenRead],
    tags=PAT_TAGS,
    summary="List the caller's personal access tokens",
    responses=SESSION_ONLY,
)
async def list_personal_tokens(
    user: CurrentSessionUser,
    db: SessionDep,
    personal_tokens: PersonalTokenServiceDep,
    page: PageParamsDep,
) -> Any:
    """Newest first, without the secrets. `last_used_at` is recorded at most once a minute."""
    rows, total = await personal_tokens.list_tokens(
        db, user.user_id, offset=page.offset, limit=page.limit
    )
    return Page[PersonalTokenRead].build(
        [PersonalTokenRead.model_validate(row) for row in rows], total, page
    )


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=PAT_TAGS,
    summary="Delete a personal access token",
    responses={**SESSION_ONLY, 404: {"description": "`not_found`: none of the caller's"}},
)
async def delete_personal_token(
    token_id: uuid.UUID,
    user: CurrentSessionUser,
    db: SessionDep,
    personal_tokens: PersonalTokenServiceDep,
) -> None:
    """It fails at every service within 5 seconds (401 `invalid_token`)."""
    await personal_tokens.delete(db, user.user_id, token_id)


@internal_router.post(
    "/personal-tokens/exchange",
    response_model=StandInToken,
    summary="Vouch for a personal access token (for the platform's services)",
)
async def exchange_personal_token(
    request: Request, db: SessionDep, personal_tokens: PersonalTokenServiceDep
) -> Any:
    """The bearer is the `ipt_...` token itself. 200: a minute-long signed token of its
    owner with its scopes and `pat_id` (platform_common.pat_exchange); 401 otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidToken("Send the personal access token as the bearer.")
    return await personal_tokens.exchange(db, token.strip())


# RFC 7662 introspection, RFC 7009 revocation -------------------------------------------

TOKEN_ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credentials, or `invalid_client`: wrong client credentials"},
}


@router.post(
    "/introspect",
    response_model=IntrospectionAnswer,
    response_model_exclude_none=True,
    tags=["token introspection"],
    summary="RFC 7662 token introspection (service clients)",
    responses={
        **TOKEN_ACTION_ERRORS,
        403: {"description": "`forbidden`: the caller is a user, not a service client"},
    },
    openapi_extra={"security": [{"client_secret_basic": []}, {"OAuth2 password": []}]},
)
async def introspect(
    form: TokenActionForm,
    _: ServiceClientCaller,
    db: SessionDep,
    platform: PlatformStateDep,
    introspection: TokenIntrospectionDep,
    response: Response,
) -> Any:
    """**Accepts** a service client: its client credentials (Basic header or
    `client_id`/`client_secret` in the form) or a service token as the bearer. Answers
    `{"active": false}` for an unknown, expired, revoked or forged token of any kind, and
    for an active one `active: true` with its claims (`sub`, `scope`, `exp`, `iat`, ...,
    the org claims of an org-scoped token) and `token_kind`: `access_token`,
    `org_access_token`, `personal_access_token` or `refresh_token`."""
    response.headers["Cache-Control"] = "no-store"
    assert platform.verifier is not None
    return await introspection.introspect(db, platform.verifier, form.token)


@router.post(
    "/revoke",
    status_code=status.HTTP_200_OK,
    response_class=Response,
    tags=["token introspection"],
    summary="RFC 7009 token revocation (the token's owner, or service clients)",
    responses={
        200: {"description": "Revoked, or nothing to revoke (an empty body)", "content": None},
        **TOKEN_ACTION_ERRORS,
        403: {"description": "`insufficient_scope`: a personal access token cannot revoke"},
    },
    openapi_extra={"security": [{"client_secret_basic": []}, {"OAuth2 password": []}]},
)
async def revoke(
    form: TokenActionForm,
    caller: TokenActionCaller,
    db: SessionDep,
    platform: PlatformStateDep,
    introspection: TokenIntrospectionDep,
) -> Response:
    """**Accepts** a service client (as for `/introspect`), which may revoke any token, or
    a user's login-session token, which revokes only the user's own tokens. A refresh or
    access token ends its session (its access tokens fail everywhere within 5 s); a
    personal access token is deleted (fails everywhere within 5 s). The answer is 200
    whatever the token (unknown, already revoked, someone else's), per RFC 7009."""
    assert platform.verifier is not None
    await introspection.revoke(db, platform.verifier, form.token, caller)
    return Response(status_code=status.HTTP_200_OK, headers={"Cache-Control": "no-store"})


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the caller's account",
    dependencies=[WakesOutbox],
    responses={
        401: {"description": "`invalid_token`: the account was deleted meanwhile"},
        403: {
            "description": "`invalid_credentials`: wrong `current_password`; "
            "`insufficient_scope`: a personal access token or an org-scoped token"
        },
        409: {
            "description": "`last_owner`: the last owner of orgs that have other members "
            "(their slugs in `orgs`); `last_admin`: the last active platform admin"
        },
        503: {"description": "`dependency_unavailable`: orgs is unreachable or failing"},
        504: {"description": "`dependency_timeout`: orgs did not answer in time"},
    },
)
async def delete_me(
    data: AccountDeletion,
    user: CurrentSessionUser,
    db: SessionDep,
    deletion: AccountDeletionDep,
) -> None:
    """**Accepts** a login session's access token only. Every session and personal access
    token of the account fails at every service within 5 seconds; its profile is deleted
    at users and its memberships at orgs, with every org it was the only member of (both
    carried by auth's outbox, so a service that is down catches up when it is back); the
    email can register again at once. Refused with 409 `last_owner`, listing the slugs in
    `orgs`, while the account is the last owner of an org that has other members."""
    await deletion.delete(db, user.user_id, data.current_password)


# Both answer 204, are for platform admins only, and publish a user event.
ACCOUNT_STATE_ROUTE: dict[str, Any] = {
    "status_code": status.HTTP_204_NO_CONTENT,
    "dependencies": [Depends(require_admin), WakesOutbox],
}


@router.post(
    "/users/{user_id}/disable",
    **ACCOUNT_STATE_ROUTE,
    responses={409: {"description": "`last_admin`: the last active platform admin"}},
)
async def disable_user(
    user_id: uuid.UUID, admin: RequireAdmin, db: SessionDep, accounts: AccountServiceDep
) -> None:
    await accounts.set_active(db, user_id, active=False, actor=Actor.user(admin.user_id))


@router.post("/users/{user_id}/enable", **ACCOUNT_STATE_ROUTE)
async def enable_user(
    user_id: uuid.UUID, admin: RequireAdmin, db: SessionDep, accounts: AccountServiceDep
) -> None:
    await accounts.set_active(db, user_id, active=True, actor=Actor.user(admin.user_id))


@router.get("/jwks.json", tags=["keys"])
async def jwks(keyring: KeyRingDep, response: Response) -> dict[str, Any]:
    # Short cache: verifiers refetch on an unknown kid anyway, so rotations propagate.
    response.headers["Cache-Control"] = "public, max-age=60"
    return keyring.jwks()


@router.get("/.well-known/openid-configuration", response_model=OpenIDConfiguration, tags=["keys"])
async def openid_configuration(settings: SettingsDep, keyring: KeyRingDep) -> Any:
    issuer = settings.jwt_issuer
    return OpenIDConfiguration(
        issuer=issuer,
        jwks_uri=f"{issuer}/jwks.json",
        token_endpoint=f"{issuer}/token",
        introspection_endpoint=f"{issuer}/introspect",
        revocation_endpoint=f"{issuer}/revoke",
        grant_types_supported=oauth2.GRANT_TYPES,
        token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"],
        id_token_signing_alg_values_supported=keyring.algorithms,
        response_types_supported=["token"],
        subject_types_supported=["public"],
        scopes_supported=sorted({s for c in settings.service_clients.values() for s in c.scopes}),
    )


# OAuth2 token endpoint (the grants and RFC 6749 errors: auth.oauth2) --------------------


@router.post(
    "/token",
    response_model=LoginTokens | TokenPair | ServiceToken,
    summary="OAuth2 token endpoint (password, refresh_token, client_credentials)",
    responses={
        400: {"description": "RFC 6749 error"},
        401: {"description": "RFC 6749 error"},
        429: {"description": "RFC 6749 error `slow_down`, with `Retry-After`"},
    },
    # Appended to the Basic scheme FastAPI lists: client authentication is optional, since
    # only client_credentials needs it, and then in the Basic header or in the form.
    openapi_extra={"security": [{}]},
)
async def token(
    request: Request,
    basic: ClientBasicDep,
    sessions: SessionServiceDep,
    clients: ClientCredentialsDep,
    client: ClientInfoDep,
    # A default, so that OpenAPI shows the body as optional: a missing one is an RFC 6749
    # invalid_request, not a 422.
    form: TokenRequestForm = TokenRequest(),
) -> Any:
    if form.grant_type == "client_credentials":  # the clients are settings: no database
        return oauth2.client_credentials(form, basic, clients)
    async with request_session(request) as db:
        return await oauth2.grant(
            form, basic, db=db, sessions=sessions, clients=clients, client=client
        )
