"""The orgs service's internal membership lookup, as auth calls it to issue org-scoped tokens:
`GET /internal/v1/orgs/memberships/{user_id}?org=<slug or id>`.

auth authenticates with its own service credentials (`svc:auth`, scope
`orgs:memberships:read`). The call goes through the app's `ServiceClient`: a timeout (the
`AUTH_HTTP_TIMEOUT_SECONDS` deadline) is 504 `dependency_timeout`, an unreachable or failing
orgs 503 `dependency_unavailable`, and the caller's request id and trace context travel with
it. 404 means "not a member" (or no such org: the caller cannot tell them apart); any other
answer is orgs being unavailable.

Account deletion uses two more internal endpoints (scope `orgs:users:delete`):
`GET /internal/v1/orgs/users/{user_id}/deletion-blockers` (the slugs of the orgs the user is
the last owner of while they have other members) before the deletion, and
`DELETE /internal/v1/orgs/users/{user_id}` from the outbox relay afterwards (idempotent).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from auth.clients.service_token import SelfIssuedCredentials
from auth.tokens import TokenIssuer
from platform_common.errors import DependencyUnavailable
from platform_common.http import ServiceClient

MEMBERSHIPS_SCOPE = "orgs:memberships:read"
USERS_DELETE_SCOPE = "orgs:users:delete"


class OrgsRefused(Exception):
    """orgs answered, but did not apply the event (the outbox relay retries)."""


class DeletionBlockers(BaseModel):
    orgs: list[str]


class Membership(BaseModel):
    """A user's membership as orgs answers it."""

    org_id: uuid.UUID
    org_slug: str
    role: Literal["owner", "admin", "member", "viewer"]


class OrgsClient:
    def __init__(self, http: ServiceClient, issuer: TokenIssuer) -> None:
        self.http = http
        self.credentials = SelfIssuedCredentials(issuer, [MEMBERSHIPS_SCOPE])
        # Each call with the one scope it needs.
        self.deletion_credentials = SelfIssuedCredentials(issuer, [USERS_DELETE_SCOPE])

    async def membership(self, user_id: uuid.UUID, org: str) -> Membership | None:
        """The user's membership in `org` (a slug or an id); None when it is not a member."""
        response = await self.http.request(
            "GET",
            f"/internal/v1/orgs/memberships/{user_id}",
            params={"org": org},
            authorization=self.credentials.authorization(),
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"The orgs service refused the membership lookup (HTTP {response.status_code})."
            )
        try:
            return Membership.model_validate_json(response.content)
        except ValidationError as exc:
            raise DependencyUnavailable("The orgs service gave an unexpected answer.") from exc

    async def deletion_blockers(self, user_id: uuid.UUID) -> list[str]:
        """The slugs of the orgs the user is the last owner of while others are members."""
        response = await self.http.request(
            "GET",
            f"/internal/v1/orgs/users/{user_id}/deletion-blockers",
            authorization=self.deletion_credentials.authorization(),
        )
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"The orgs service refused the deletion check (HTTP {response.status_code})."
            )
        try:
            return DeletionBlockers.model_validate_json(response.content).orgs
        except ValidationError as exc:
            raise DependencyUnavailable("The orgs service gave an unexpected answer.") from exc

    async def apply_user_event(
        self, user_id: uuid.UUID, event_type: str, payload: dict[str, Any]
    ) -> None:
        """The outbox relay's delivery: orgs only hears of deletions (its memberships go,
        and the orgs the user was the only member of); it applies them idempotently."""
        if event_type != "user.deleted":
            return
        response = await self.http.request(
            "DELETE",
            f"/internal/v1/orgs/users/{user_id}",
            authorization=self.deletion_credentials.authorization(),
        )
        if response.status_code >= 300:
            raise OrgsRefused(f"orgs answered {response.status_code}: {response.text[:200]}")
