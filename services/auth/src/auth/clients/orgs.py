"""The orgs service's internal membership lookup, as auth calls it to issue org-scoped tokens:
`GET /internal/v1/orgs/memberships/{user_id}?org=<slug or id>`.

auth authenticates with its own service credentials (`svc:auth`, scope
`orgs:memberships:read`). The call goes through the app's `ServiceClient`: a timeout (the
`AUTH_HTTP_TIMEOUT_SECONDS` deadline) is 504 `dependency_timeout`, an unreachable or failing
orgs 503 `dependency_unavailable`, and the caller's request id and trace context travel with
it. 404 means "not a member" (or no such org: the caller cannot tell them apart); any other
answer is orgs being unavailable.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ValidationError

from auth.clients.service_token import SelfIssuedCredentials
from auth.tokens import TokenIssuer
from platform_common.errors import DependencyUnavailable
from platform_common.http import ServiceClient

MEMBERSHIPS_SCOPE = "orgs:memberships:read"


class Membership(BaseModel):
    """A user's membership as orgs answers it."""

    org_id: uuid.UUID
    org_slug: str
    role: Literal["owner", "admin", "member", "viewer"]


class OrgsClient:
    def __init__(self, http: ServiceClient, issuer: TokenIssuer) -> None:
        self.http = http
        self.credentials = SelfIssuedCredentials(issuer, [MEMBERSHIPS_SCOPE])

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
