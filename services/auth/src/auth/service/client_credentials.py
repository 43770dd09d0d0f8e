"""Other services' OAuth2 client-credentials grant: a service token for a known client.

Clients are configured with the SHA-256 of their secret only (`AUTH_SERVICE_CLIENTS`).
"""

from __future__ import annotations

from datetime import timedelta

from auth.config import AuthSettings, ServiceClient
from auth.errors import InvalidClient
from auth.schemas import ServiceToken
from auth.tokens import TokenIssuer
from platform_common.clock import utcnow
from platform_common.opaque_tokens import matches_hash

# Compared against for an unknown client, so that its answer takes as long as a known one's.
_NO_SECRET_HASH = "0" * 64


class ClientCredentials:
    def __init__(self, settings: AuthSettings, *, issuer: TokenIssuer) -> None:
        self.clients = settings.service_clients
        self.issuer = issuer
        self.ttl = timedelta(seconds=settings.service_token_ttl_seconds)

    def authenticate(self, client_id: str, client_secret: str) -> ServiceClient:
        """The client these credentials are; InvalidClient otherwise."""
        client = self.clients.get(client_id)
        expected = client.secret_sha256 if client else _NO_SECRET_HASH
        if not matches_hash(client_secret, expected) or client is None:
            raise InvalidClient("Unknown client or wrong secret.")
        return client

    def issue(self, client_id: str, client_secret: str, scope: str | None) -> ServiceToken:
        client = self.authenticate(client_id, client_secret)
        requested = set(scope.split()) if scope else set(client.scopes)
        if not requested <= set(client.scopes):
            raise InvalidClient("The client may not request these scopes.")
        token = self.issuer.service_token(
            name=client_id, scopes=sorted(requested), now=utcnow(), ttl=self.ttl
        )
        return ServiceToken(
            access_token=token,
            expires_in=int(self.ttl.total_seconds()),
            scope=" ".join(sorted(requested)),
        )
