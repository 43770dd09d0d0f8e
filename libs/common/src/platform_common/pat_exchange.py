"""How users, orgs (and any service of the platform) have auth vouch for a personal access
token: `POST /internal/v1/auth/personal-tokens/exchange` with the PAT as the bearer. auth
answers 200 `{access_token}` (a signed token of the PAT's user and scopes, a minute long) or
401. The verifier caches the outcome for a few seconds (`platform_common.verification`).

The call goes through a `ServiceClient`: a timeout is 504 `dependency_timeout`, an
unreachable or failing auth 503 `dependency_unavailable`, and the request id and trace
context travel with it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from platform_common.errors import DependencyUnavailable
from platform_common.http import ServiceClient
from platform_common.verification import InvalidToken

EXCHANGE_PATH = "/internal/v1/auth/personal-tokens/exchange"


def auth_origin(jwks_url: str) -> str:
    """auth's base URL, from its JWKS URL (both are auth's; the internal path is not routed
    by the ingress, so it is asked directly, as the JWKS is)."""
    parts = urlsplit(jwks_url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


class HttpPatExchanger:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def exchange(self, token: str) -> str:
        response = await self.client.request("POST", EXCHANGE_PATH, authorization=f"Bearer {token}")
        if response.status_code == 401:
            raise InvalidToken("The personal access token is not valid.")
        try:
            access_token = response.json()["access_token"] if response.status_code == 200 else None
        except (ValueError, KeyError, TypeError):
            access_token = None
        if not isinstance(access_token, str):
            raise DependencyUnavailable(
                f"auth could not check the personal access token (HTTP {response.status_code})."
            )
        return access_token
