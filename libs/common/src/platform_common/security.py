"""The FastAPI side of authentication: who is calling, as dependencies.

```
get_principal       Bearer token -> TokenVerifier (platform_common.verification) -> Principal
CurrentPrincipal    any verified caller, user or service
CurrentUser         users only (403 for services)
RequireAdmin        platform administrators only
require_scope(s)    service tokens carrying scope `s`
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from platform_common.errors import Forbidden, Unauthorized
from platform_common.state import platform_state
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
    "CurrentPrincipal",
    "CurrentUser",
    "InsufficientScope",
    "InvalidToken",
    "JWKSKeySource",
    "KeySource",
    "NotAuthenticated",
    "Principal",
    "RequireAdmin",
    "StaticKeySource",
    "TokenVerifier",
    "get_principal",
    "require_admin",
    "require_scope",
    "verified_bearer",
]


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"

    def __init__(self, detail: str = "Authentication required.") -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = "Bearer"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


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


async def get_current_user(principal: CurrentPrincipal) -> Principal:
    if principal.is_service:
        raise Forbidden("This endpoint is for users, not services.")
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


async def require_admin(principal: CurrentUser) -> Principal:
    if not principal.is_admin:
        raise Forbidden("Platform administrators only.")
    return principal


RequireAdmin = Annotated[Principal, Depends(require_admin)]


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits only service tokens carrying `scope`."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.is_service or scope not in principal.scopes:
            raise InsufficientScope(f"This endpoint requires a service token with '{scope}'.")
        return principal

    return dependency
