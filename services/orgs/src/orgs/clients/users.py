"""Names and emails of users, from the users service (`POST /api/v1/users/lookup`).

One call per batch of at most 100 ids (a page of members is at most 100). The call goes
through the app's `ServiceClient`, which forwards the caller's token, request id and trace
context and turns a timeout into 504 `dependency_timeout` and an unreachable or failing
users service into 503 `dependency_unavailable`. A 4xx answer or a body that is not the
expected list is treated as unavailable too: orgs cannot do its job without the answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from platform_common.errors import DependencyUnavailable
from platform_common.http import ServiceClient

LOOKUP_PATH = "/api/v1/users/lookup"
MAX_LOOKUP_IDS = 100


class UserProfile(BaseModel):
    """A user as the lookup answers: its id, name and email."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    name: str
    email: str


_LOOKUP_ANSWER = TypeAdapter(list[UserProfile])


class UsersClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def lookup(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, UserProfile]:
        """The profiles of the ids that exist; unknown ids are simply absent."""
        if not ids:
            return {}
        if len(ids) > MAX_LOOKUP_IDS:
            raise ValueError(f"at most {MAX_LOOKUP_IDS} ids per lookup")
        response = await self.client.request(
            "POST", LOOKUP_PATH, json={"ids": [str(user_id) for user_id in ids]}
        )
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"The users service refused the lookup (HTTP {response.status_code})."
            )
        try:
            profiles = _LOOKUP_ANSWER.validate_json(response.content)
        except ValidationError as exc:
            raise DependencyUnavailable("The users service gave an unexpected answer.") from exc
        return {profile.id: profile for profile in profiles}
