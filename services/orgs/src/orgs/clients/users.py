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

from platform_common.cache import SharedCache
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
    def __init__(self, client: ServiceClient, cards: SharedCache) -> None:
        self.client = client
        # Cards users has handed out before, invalidated by users when a profile changes.
        self.cards = cards

    async def lookup(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, UserProfile]:
        """The profiles of the ids that exist; unknown ids are simply absent. Cards in the
        shared cache are not asked again; the others are, in one call, and then cached."""
        if not ids:
            return {}
        if len(ids) > MAX_LOOKUP_IDS:
            raise ValueError(f"at most {MAX_LOOKUP_IDS} ids per lookup")
        cached = await self.cards.get_many([str(user_id) for user_id in ids])
        found = {
            uuid.UUID(subject): UserProfile.model_validate_json(card)
            for subject, card in cached.hits.items()
        }
        missing = [user_id for user_id in ids if str(user_id) not in cached.hits]
        if missing:
            fetched = await self._fetch(missing)
            await self.cards.put_many(
                {
                    str(user_id): card.model_dump_json().encode()
                    for user_id, card in fetched.items()
                },
                cached.versions,
            )
            found.update(fetched)
        return found

    async def _fetch(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, UserProfile]:
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
