"""auth's own service credentials: a service token (`svc:auth`) it mints for itself with the
scopes a peer's internal endpoint requires, kept until two minutes before it expires."""

from __future__ import annotations

from datetime import datetime, timedelta

from auth.tokens import TokenIssuer
from platform_common.clock import utcnow

SERVICE_NAME = "auth"
TOKEN_TTL = timedelta(minutes=15)
TOKEN_RENEW_BEFORE = timedelta(minutes=2)


class SelfIssuedCredentials:
    def __init__(self, issuer: TokenIssuer, scopes: list[str]) -> None:
        self.issuer = issuer
        self.scopes = scopes
        self._token: tuple[str, datetime] | None = None

    def authorization(self) -> str:
        """The `Authorization` header value for a call to the peer."""
        now = utcnow()
        if self._token is None or self._token[1] - now < TOKEN_RENEW_BEFORE:
            token = self.issuer.service_token(
                name=SERVICE_NAME, scopes=self.scopes, now=now, ttl=TOKEN_TTL
            )
            self._token = (token, now + TOKEN_TTL)
        return f"Bearer {self._token[0]}"
