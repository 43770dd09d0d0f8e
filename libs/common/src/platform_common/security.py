"""The FastAPI side of authentication: who is calling, as dependencies.

```
get_principal       Bearer token -> TokenVerifier (platform_common.verification) -> Principal
CurrentPrincipal    any verified caller, user or service
CurrentUser         users only (403 for services); a personal access token is its user
CurrentSessionUser  users with a plain login session's token: the account's own security
                    (its PATs, org tokens, password, email, sessions, deletion) is never open
                    to a personal access token or an org-scoped token (403
                    `insufficient_scope`)
require_user_scope(s)  for a personal access token, 403 `insufficient_scope` unless it has
                    scope `s`; any other token passes
RequireAdmin        platform administrators only
require_scope(s)    service tokens carrying scope `s`
CurrentOrgMember    an org-scoped token for the org the path names (`{org}`: slug or id);
                    403 `org_token_required` for any other token, 403 `org_mismatch` for
                    a token of another org
require_permission(p)  CurrentOrgMember whose token grants permission `p`
                    (platform_common.permissions); 403 `forbidden` otherwise
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from platform_common.errors import Forbidden, Unauthorized
from platform_common.permissions import ADMIN_SCOPE, OUTSIDE_ANY_ORG, PAT_SCOPES, PERMISSIONS
from platform_common.state import platform_state
from platform_common.token_docs import (
    ADMIN,
    ANY_BEARER,
    SESSION_USER,
    USER,
    documents,
    service_scope_rule,
)
from platform_common.verification import (
    SERVICE_SUBJECT_PREFIX,
    InvalidToken,
    JWKSKeySource,
    KeySource,
    Principal,
    StaticKeySource,
    TokenVerifier,
)

__all__ = [
    "SERVICE_SUBJECT_PREFIX",
    "CurrentOrgMember",
    "CurrentPrincipal",
    "CurrentSessionUser",
    "CurrentUser",
    "InsufficientScope",
    "InvalidToken",
    "JWKSKeySource",
    "KeySource",
    "MissingPermission",
    "NotAuthenticated",
    "OrgMismatch",
    "OrgTokenRequired",
    "Principal",
    "RequireAdmin",
    "StaticKeySource",
    "TokenVerifier",
    "check_permission",
    "get_principal",
    "require_admin",
    "require_permission",
    "require_scope",
    "require_user_scope",
    "verified_bearer",
]


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"

    def __init__(self, detail: str = "Authentication required.") -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = "Bearer"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


class OrgTokenRequired(Forbidden, code="org_token_required", title="Org-scoped token required"):
    declared_detail = "This endpoint takes an org-scoped token (POST /api/v1/auth/org-token)."


class OrgMismatch(Forbidden, code="org_mismatch", title="Token for another organization"):
    declared_detail = "This access token is scoped to another organization."


class MissingPermission(Forbidden, code="forbidden"): ...


# The Swagger UI's "Authorize" button logs in through auth's OAuth2 token endpoint; the path
# is the one the ingress routes, so it works from every service's docs behind the ingress.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token", auto_error=False, scheme_name="OAuth2 password"
)


_BEARER_OUTCOME = "platform.bearer_outcome"


async def _bearer_outcome(request: Request) -> Principal | InvalidToken | None:
    """The request's bearer token verified, once per request (the rate limiter and the
    endpoint's own dependencies share it): its principal, why it is not valid, or None."""
    # In the scope itself: the scope's "state" may be shared with the lifespan's.
    scope = request.scope
    if _BEARER_OUTCOME in scope:
        outcome: Principal | InvalidToken | None = scope[_BEARER_OUTCOME]
        return outcome
    token = await oauth2_scheme(request)
    outcome = None
    if token:
        verifier = platform_state(request.app).verifier
        assert verifier is not None, "the app's lifespan has not started"
        try:
            outcome = await verifier.verify(token)
        except InvalidToken as exc:
            outcome = exc
    scope[_BEARER_OUTCOME] = outcome
    return outcome


async def verified_bearer(request: Request) -> Principal | None:
    """The caller's principal when it sent a valid token; None otherwise (an endpoint that
    requires one answers 401 through get_principal)."""
    outcome = await _bearer_outcome(request)
    return outcome if isinstance(outcome, Principal) else None


@documents(ANY_BEARER)
async def get_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    if not token:
        raise NotAuthenticated
    outcome = await _bearer_outcome(request)
    if isinstance(outcome, InvalidToken):
        raise outcome
    assert outcome is not None
    return outcome


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


@documents(USER)
async def get_current_user(principal: CurrentPrincipal) -> Principal:
    if principal.is_service:
        raise Forbidden("This endpoint is for users, not services.")
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


@documents(ADMIN)
async def require_admin(principal: CurrentUser) -> Principal:
    if not principal.is_admin:
        raise Forbidden("Platform administrators only.")
    if principal.via_pat and ADMIN_SCOPE not in principal.scopes:
        raise InsufficientScope(f"This personal access token lacks the '{ADMIN_SCOPE}' scope.")
    return principal


RequireAdmin = Annotated[Principal, Depends(require_admin)]


@documents(SESSION_USER)
async def get_session_user(principal: CurrentUser) -> Principal:
    # Neither a PAT nor a token scoped to one org may reach beyond itself: minting PATs or
    # other orgs' tokens, or changing the account's credentials, with one would escape its
    # narrowing.
    if principal.via_pat or principal.org is not None:
        kind = "A personal access token" if principal.via_pat else "An org-scoped token"
        raise InsufficientScope(f"{kind} cannot do this; use a login session's access token.")
    return principal


CurrentSessionUser = Annotated[Principal, Depends(get_session_user)]


def require_user_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency narrowing personal access tokens to those carrying `scope`
    (platform_common.permissions.PAT_SCOPES); other callers pass, but for the scopes that
    act outside any one org (creating or joining an org), which an org-scoped token lacks."""
    if scope not in PAT_SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    outside_orgs = scope in OUTSIDE_ANY_ORG
    rule = f"a personal access token needs the scope `{scope}`" + (
        "; an org-scoped token gets 403 `insufficient_scope`" if outside_orgs else ""
    )

    @documents(rule)
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.via_pat and scope not in principal.scopes:
            raise InsufficientScope(f"This personal access token lacks the '{scope}' scope.")
        if outside_orgs and principal.org is not None:
            raise InsufficientScope("An org-scoped token acts only within its org.")
        return principal

    return dependency


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits only service tokens carrying `scope`."""

    @documents(service_scope_rule(scope))
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.is_service or scope not in principal.scopes:
            raise InsufficientScope(f"This endpoint requires a service token with '{scope}'.")
        return principal

    return dependency


def check_permission(permissions: frozenset[str], permission: str) -> None:
    """403 `forbidden` unless `permission` is among the caller's `permissions`."""
    if permission not in permissions:
        raise MissingPermission(f"This requires the '{permission}' permission in the org.")


def permission_rule(permission: str) -> str:
    return (
        f"the permission `{permission}` in the org (platform_common.permissions: from the "
        "caller's role, narrowed by an org-scoped token's permissions or a personal access "
        "token's scopes)"
    )


ORG_PATH_PARAM = "org"


@documents("an org-scoped token for the org in the path (others: 403)")
async def get_org_member(request: Request, principal: CurrentPrincipal) -> Principal:
    """The caller, holding an org-scoped token for the org in the path (`{org}`, its slug or
    id). Nothing is asked of orgs: the token says it, and revocation markers keep it true
    within seconds (platform_common.revocation)."""
    if principal.org is None:
        raise OrgTokenRequired
    org = request.path_params.get(ORG_PATH_PARAM)
    if not isinstance(org, str) or not principal.org.matches(org):
        raise OrgMismatch
    return principal


CurrentOrgMember = Annotated[Principal, Depends(get_org_member)]


def require_permission(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting an org-scoped token for the path's org that grants
    `permission`: `Depends(require_permission("members:write"))`."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    @documents(permission_rule(permission))
    async def dependency(member: CurrentOrgMember) -> Principal:
        assert member.org is not None
        check_permission(member.org.permissions, permission)
        return member

    return dependency
