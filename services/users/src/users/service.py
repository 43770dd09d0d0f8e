"""users' rules: profile provisioning, the caller's view of itself, lookups and search.

```
profile row (id = auth's user id)
  created by   whichever comes first:
                 - PUT /internal/v1/users/{id} (auth's outbox: user.registered, ...)
                 - the user's first GET/PATCH /me (just in time, from the token's claims)
               both with INSERT ... ON CONFLICT DO NOTHING, so they race safely
  email, role, is_active   auth's; an event applies them only when its `version` is newer
  name                     users' once the row exists; events never overwrite it
deleted by     DELETE /internal/v1/users/{id} (auth's outbox: user.deleted), leaving a
               tombstone (deleted_users): later events answer 410 and a still-valid token
               cannot provision the profile again (404); both creations and the deletion
               take the account's advisory lock (platform_common.account_locks)
```

No FastAPI here; the request edge commits or rolls back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from platform_common.account_locks import lock_account
from platform_common.cache import SharedCache
from platform_common.clock import utcnow
from platform_common.db import on_commit
from platform_common.errors import DependencyTimeout, DependencyUnavailable
from platform_common.security import Principal
from users.clients.orgs import OrgsClient
from users.errors import EventIdMismatch, ProfileNotFound, UserDeleted
from users.events import Actor, record_user_event
from users.models import Profile
from users.repository import DeletedUserRepository, ProfileReads, ProfileRepository
from users.schemas import OrganizationSummary, ProfileUpdate, UserEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Me:
    profile: Profile | dict[str, Any]  # a direct read's row, or the profile just provisioned
    # None when orgs could not answer: the profile is still served (degraded).
    organizations: list[OrganizationSummary] | None


_ORGANIZATIONS = TypeAdapter(list[OrganizationSummary])


class UsersService:
    def __init__(
        self,
        orgs: OrgsClient,
        user_orgs: SharedCache,
        user_cards: SharedCache,
        *,
        profiles: ProfileReads,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.orgs = orgs
        # The hot reads, straight on asyncpg; `sessions` for the rare provisioning.
        self.profiles = profiles
        self.sessions = sessions
        # Each user's organizations as orgs last answered, invalidated by orgs on change.
        self.user_orgs = user_orgs
        # Names and emails orgs shows on member lists: invalidated here on every change.
        self.user_cards = user_cards

    # The caller ----------------------------------------------------------------------------

    async def get_or_provision(self, db: AsyncSession, principal: Principal) -> Profile:
        """The caller's profile, created from the token's claims when auth's event is late."""
        profiles = ProfileRepository(db)
        profile = await profiles.get(principal.user_id)
        if profile is not None:
            return profile
        if not principal.email or not principal.name:
            raise ProfileNotFound("No profile exists for this account yet.")
        await lock_account(db, principal.user_id, shared=True)
        if await DeletedUserRepository(db).is_deleted(principal.user_id):
            raise ProfileNotFound("This account has been deleted.")
        now = utcnow()
        await profiles.insert_if_absent(
            {
                "id": principal.user_id,
                "email": principal.email.lower(),
                "name": principal.name,
                "role": principal.role,
                "is_active": True,
                # 0: any event from auth is newer than what the token said.
                "source_version": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        profile = await profiles.reload(principal.user_id)
        if profile is None:  # pragma: no cover - the row was just inserted or already there
            raise ProfileNotFound
        return profile

    async def provision(self, principal: Principal) -> Profile:
        """`get_or_provision` in a transaction of its own: what the direct read did not find."""
        async with self.sessions() as db:
            profile = await self.get_or_provision(db, principal)
            await db.commit()
            return profile

    async def me(self, principal: Principal) -> Me:
        # orgs first: a slow orgs then does not hold a database connection while we wait.
        organizations = await self.organizations_of_caller(principal)
        profile = await self.profiles.get(principal.user_id)
        return Me(profile or await self.provision(principal), organizations)

    async def organizations_of_caller(
        self, principal: Principal
    ) -> list[OrganizationSummary] | None:
        """The caller's orgs, from the shared cache or else from orgs; None when orgs cannot
        say, so that /me degrades instead."""
        subject = str(principal.user_id)
        cached = await self.user_orgs.get_many([subject])
        if subject in cached.hits:
            return _ORGANIZATIONS.validate_json(cached.hits[subject])
        try:
            organizations = await self.orgs.organizations_of_caller()
        except (DependencyUnavailable, DependencyTimeout) as exc:
            logger.warning("orgs unavailable for /me: %s", exc.detail)
            return None
        await self.user_orgs.put_many(
            {subject: _ORGANIZATIONS.dump_json(organizations)}, cached.versions
        )
        return organizations

    async def update_me(
        self, db: AsyncSession, principal: Principal, data: ProfileUpdate
    ) -> Profile:
        profile = await self.get_or_provision(db, principal)
        if data.name is not None and data.name != profile.name:
            profile.name = data.name
            record_user_event(db, "user.updated", profile.id, fields=["name"])
            await db.flush()
            self._card_changed(db, profile.id)
        return profile

    def _card_changed(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        subjects = [str(user_id)]

        async def invalidate() -> None:
            await self.user_cards.invalidate(subjects)

        on_commit(db, invalidate)

    # Other profiles ------------------------------------------------------------------------

    async def get_profile(
        self, principal: Principal, user_id: uuid.UUID
    ) -> Profile | dict[str, Any]:
        """A profile as a ProfileRead shows it. One direct read; only the caller's own
        profile, not there yet, is provisioned (in a session of its own)."""
        own = user_id == principal.user_id
        # Anyone else's profile is 404, not 403: ids of other users are not confirmed.
        if not own and not principal.is_admin:
            raise ProfileNotFound
        profile = await self.profiles.get(user_id)
        if profile is not None:
            return profile
        if not own:
            raise ProfileNotFound
        return await self.provision(principal)

    async def lookup(self, db: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Profile]:
        """The profiles that exist, in the order asked, each once."""
        wanted = list(dict.fromkeys(ids))
        found = {p.id: p for p in await ProfileRepository(db).list_by_ids(wanted)}
        return [found[i] for i in wanted if i in found]

    async def list_profiles(
        self,
        db: AsyncSession,
        *,
        q: str | None,
        is_active: bool | None,
        offset: int,
        limit: int,
    ) -> tuple[list[Profile], int]:
        return await ProfileRepository(db).search(
            q=q.strip() if q else None, is_active=is_active, offset=offset, limit=limit
        )

    # Events from auth ----------------------------------------------------------------------

    async def apply_event(self, db: AsyncSession, user_id: uuid.UUID, event: UserEvent) -> Profile:
        """Idempotent: replays and out-of-order (older) events change nothing."""
        if event.id != user_id:
            raise EventIdMismatch
        await lock_account(db, user_id, shared=True)
        if await DeletedUserRepository(db).is_deleted(user_id):
            raise UserDeleted
        profiles = ProfileRepository(db)
        owned_by_auth = {
            "email": event.email.lower(),
            "role": event.role,
            "is_active": event.is_active,
            "email_verified": event.email_verified,
            "created_at": event.created_at,
        }
        created = await profiles.insert_if_absent(
            {
                "id": user_id,
                "name": event.name,
                "source_version": event.version,
                "updated_at": utcnow(),
                **owned_by_auth,
            }
        )
        if not created:
            await profiles.update_if_newer(user_id, event.version, owned_by_auth)
            self._card_changed(db, user_id)
        profile = await profiles.reload(user_id)
        if profile is None:  # pragma: no cover - inserted above or already there
            raise ProfileNotFound
        return profile

    async def delete_account(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        """auth's `user.deleted`: the profile goes (404, absent from lookups and lists) and
        a tombstone stays. Idempotent: a replay finds nothing more to delete."""
        await lock_account(db, user_id)
        await DeletedUserRepository(db).add(user_id, utcnow())
        if await ProfileRepository(db).delete(user_id):
            record_user_event(db, "user.deleted", user_id, actor=Actor.system())
        self._card_changed(db, user_id)
