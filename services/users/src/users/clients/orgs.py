"""The caller's organizations, from the orgs service (`GET /api/v1/orgs`).

The call goes through the app's `ServiceClient`, which forwards the caller's token, request
id and trace context and turns a timeout into `DependencyTimeout` and an unreachable or
failing orgs into `DependencyUnavailable`. Any answer but a 200 page of organizations is
`DependencyUnavailable` too; whether that fails the request is the caller's decision (`/me`
degrades).
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from platform_common.errors import DependencyUnavailable
from platform_common.http import ServiceClient
from users.schemas import OrganizationSummary

ORGS_PATH = "/api/v1/orgs"
# orgs pages are at most 100 long; /me shows the first page.
ORGS_PAGE_LIMIT = 100


class _OrgsPage(BaseModel):
    items: list[OrganizationSummary]


class OrgsClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def organizations_of_caller(self) -> list[OrganizationSummary]:
        """The first page of the caller's organizations, asked with the caller's own token."""
        response = await self.client.request("GET", ORGS_PATH, params={"limit": ORGS_PAGE_LIMIT})
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"The orgs service refused the request (HTTP {response.status_code})."
            )
        try:
            return _OrgsPage.model_validate_json(response.content).items
        except ValidationError as exc:
            raise DependencyUnavailable("The orgs service gave an unexpected answer.") from exc
