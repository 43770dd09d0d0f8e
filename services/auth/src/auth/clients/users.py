"""The users service's internal endpoint, as auth calls it: `PUT /internal/v1/users/{id}`
(`DELETE` for `user.deleted`: the profile goes, and later events about it are answered 410,
which counts as delivered: there is nothing left to apply them to).

auth authenticates with a service token it mints for itself (`svc:auth`, scope
`users:provision`), kept until two minutes before it expires. The call goes through the
app's `ServiceClient` (timeout, request id, trace context): a timeout or an unreachable or
failing users service raises its `ProblemError`; any other answer that is not 2xx raises
`UsersRefused`. Either way the outbox relay retries later.
"""

from __future__ import annotations

import uuid
from typing import Any

from auth.clients.service_token import SelfIssuedCredentials
from auth.tokens import TokenIssuer
from platform_common.http import ServiceClient

PROVISION_SCOPE = "users:provision"


class UsersRefused(Exception):
    """users answered, but did not apply the event."""


class UsersClient:
    def __init__(self, http: ServiceClient, issuer: TokenIssuer) -> None:
        self.http = http
        self.credentials = SelfIssuedCredentials(issuer, [PROVISION_SCOPE])

    async def apply_user_event(
        self, user_id: uuid.UUID, event_type: str, payload: dict[str, Any]
    ) -> None:
        """Hand one user event to users, which applies it idempotently (newer version wins)."""
        deleted = event_type == "user.deleted"
        response = await self.http.request(
            "DELETE" if deleted else "PUT",
            f"/internal/v1/users/{user_id}",
            json=None if deleted else {"event": event_type, **payload},
            authorization=self.credentials.authorization(),
        )
        if response.status_code == 410:
            return  # the account has been deleted there: nothing to apply the event to
        if response.status_code >= 300:
            raise UsersRefused(f"users answered {response.status_code}: {response.text[:200]}")
