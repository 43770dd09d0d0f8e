"""The users service's internal endpoint, as auth calls it: `PUT /internal/v1/users/{id}`.

auth authenticates with a service token it mints for itself (`svc:auth`, scope
`users:provision`), kept until two minutes before it expires. The call goes through the
app's `ServiceClient` (timeout, request id, trace context): a timeout or an unreachable or
failing users service raises its `ProblemError`; any other answer that is not 2xx raises
`UsersRefused`. Either way the outbox relay retries later.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from auth.tokens import TokenIssuer
from platform_common.clock import utcnow
from platform_common.http import ServiceClient

PROVISION_SCOPE = "users:provision"
SERVICE_NAME = "auth"
TOKEN_TTL = timedelta(minutes=15)
TOKEN_RENEW_BEFORE = timedelta(minutes=2)


class UsersRefused(Exception):
    """users answered, but did not apply the event."""


class UsersClient:
    def __init__(self, http: ServiceClient, issuer: TokenIssuer) -> None:
        self.http = http
        self.issuer = issuer
        self._token: tuple[str, datetime] | None = None

    def _authorization(self) -> str:
        now = utcnow()
        if self._token is None or self._token[1] - now < TOKEN_RENEW_BEFORE:
            token = self.issuer.service_token(
                name=SERVICE_NAME, scopes=[PROVISION_SCOPE], now=now, ttl=TOKEN_TTL
            )
            self._token = (token, now + TOKEN_TTL)
        return f"Bearer {self._token[0]}"

    async def apply_user_event(
        self, user_id: uuid.UUID, event_type: str, payload: dict[str, Any]
    ) -> None:
        """Hand one user event to users, which applies it idempotently (newer version wins)."""
        response = await self.http.request(
            "PUT",
            f"/internal/v1/users/{user_id}",
            json={"event": event_type, **payload},
            authorization=self._authorization(),
        )
        if response.status_code >= 300:
            raise UsersRefused(f"users answered {response.status_code}: {response.text[:200]}")
