"""The OAuth2 token endpoint's logic (RFC 6749); the route itself stays in `auth.api`.

```
grant_type            needs                                 calls                      answer
password              username, password                    SessionService.login       TokenPair
refresh_token         refresh_token                         SessionService.refresh     TokenPair
client_credentials    client (Basic header, else the form)  ClientCredentials.issue    ServiceToken
```

OAuth2 clients expect errors in RFC 6749's own form, `{"error", "error_description"}` with
`Cache-Control: no-store`, not problem+json:

```
400 invalid_request          a parameter is missing (or the form cannot be parsed: auth.app)
400 unsupported_grant_type   any other grant_type
400 invalid_grant            wrong credentials, a disabled account, a bad or reused refresh token
401 invalid_client           no, unknown or wrong client credentials, or scopes beyond the client's
429 slow_down                login throttling, with Retry-After
```
"""

from __future__ import annotations

import base64
import binascii

from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from auth.errors import AccountDisabled, InvalidClient, InvalidCredentials, InvalidRefreshToken
from auth.schemas import LoginTokens, ServiceToken, TokenPair, TokenRequest
from auth.service import ClientCredentials, ClientInfo, SessionService
from auth.throttle import LoginRateLimited

GRANT_TYPES = ["password", "refresh_token", "client_credentials"]
CLIENT_CHALLENGE = {"WWW-Authenticate": 'Basic realm="auth"'}


def oauth_error(
    status_code: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status_code,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


class ClientSecretBasic(HTTPBasic):
    """`client_secret_basic` (RFC 6749 2.3.1): FastAPI's HTTPBasic, so that OpenAPI and the
    Swagger UI know the scheme, but a malformed header counts as no header instead of a
    problem+json 401: the client may still authenticate in the form, and a refusal stays an
    RFC 6749 `invalid_client`. The pair is decoded as UTF-8 (RFC 7617) from strict base64,
    where HTTPBasic accepts only ASCII and skips stray characters."""

    async def __call__(  # type: ignore[override]
        self, request: HTTPConnection
    ) -> HTTPBasicCredentials | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, separator, secret = decoded.partition(":")
        return HTTPBasicCredentials(username=client_id, password=secret) if separator else None


client_secret_basic = ClientSecretBasic(
    auto_error=False,
    scheme_name="client_secret_basic",
    description="A service's OAuth2 client credentials, for `grant_type=client_credentials`.",
)


async def grant(
    form: TokenRequest,
    basic: HTTPBasicCredentials | None,
    *,
    db: AsyncSession,
    sessions: SessionService,
    clients: ClientCredentials,
    client: ClientInfo,
) -> LoginTokens | TokenPair | ServiceToken | JSONResponse:
    """Answer a token request: the tokens, or the RFC 6749 error."""
    try:
        if form.grant_type == "password":
            if not form.username or not form.password:
                return oauth_error(400, "invalid_request", "username and password are required")
            return await sessions.login(db, form.username, form.password, client, form.device_token)
        if form.grant_type == "refresh_token":
            if not form.refresh_token:
                return oauth_error(400, "invalid_request", "refresh_token is required")
            return await sessions.refresh(db, form.refresh_token)
        if form.grant_type == "client_credentials":
            return client_credentials(form, basic, clients)
    except (InvalidCredentials, InvalidRefreshToken, AccountDisabled) as exc:
        return oauth_error(400, "invalid_grant", exc.detail)
    except LoginRateLimited as exc:
        return oauth_error(429, "slow_down", exc.detail, {"Retry-After": str(exc.retry_after)})
    if not form.grant_type:
        return oauth_error(400, "invalid_request", "grant_type is required")
    return oauth_error(
        400, "unsupported_grant_type", f"grant_type '{form.grant_type}' is not supported"
    )


def client_credentials(
    form: TokenRequest, basic: HTTPBasicCredentials | None, clients: ClientCredentials
) -> ServiceToken | JSONResponse:
    """The client_credentials grant: needs no database, so `auth.api.token` serves it
    without a session."""
    client_id, secret = (
        (basic.username, basic.password) if basic else (form.client_id, form.client_secret)
    )
    if not client_id or not secret:
        return oauth_error(
            401, "invalid_client", "client authentication is required", CLIENT_CHALLENGE
        )
    try:
        return clients.issue(client_id, secret, form.scope)
    except InvalidClient as exc:
        return oauth_error(401, "invalid_client", exc.detail, CLIENT_CHALLENGE)
