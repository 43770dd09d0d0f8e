"""An account deleted at auth, as orgs carries it out.

```
GET /internal/v1/orgs/users/{id}/deletion-blockers   before auth deletes: the slugs of the
                                                     orgs the user is the only owner of
                                                     while others are members (auth: 409)
DELETE /internal/v1/orgs/users/{id}                  auth's outbox, after (at least once)
  the account's lock, exclusive; a tombstone (deleted_users)
  per membership, its org locked (org id order):
    the only member   -> the org is deleted (its invitations with it)
    the only owner    -> the highest-ranked, longest-standing other member becomes owner
                         (others joined after auth's check: never an org without owner)
    then the membership goes; org-scoped tokens of everyone changed are revoked
```

Adding a member, accepting an invitation and creating an org take the same account lock,
shared, and refuse an account with a tombstone: a creation racing with the deletion either
commits first (and the deletion then removes it too) or sees the tombstone. The deletion is
idempotent: a replay finds the tombstone already there and no memberships left.

Invitations the deleted account created stay: they were issued on the org's behalf, and its
admins see and revoke them as any other. Invitations addressed to its email stay too: they
are for whoever holds that address.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orgs.cache import UserOrgsInvalidation
from orgs.errors import UserNotFound
from orgs.events import Actor, Target, record_event
from orgs.models import Organization
from orgs.repository import DeletedUserRepository, MembershipRepository, OrganizationRepository
from orgs.revocation import MemberTokenRevocation
from orgs.roles import OrgRole
from platform_common.account_locks import lock_account
from platform_common.clock import utcnow


async def refuse_deleted_account(db: AsyncSession, user_id: uuid.UUID) -> None:
    """Before anything makes the account a member: its lock, shared, until the commit;
    UserNotFound when the account has been deleted."""
    await lock_account(db, user_id, shared=True)
    if await DeletedUserRepository(db).is_deleted(user_id):
        raise UserNotFound(f"The account {user_id} has been deleted.")


class AccountDeletionService:
    def __init__(
        self, db: AsyncSession, user_orgs: UserOrgsInvalidation, tokens: MemberTokenRevocation
    ) -> None:
        self.db = db
        self.orgs = OrganizationRepository(db)
        self.members = MembershipRepository(db)
        self.user_orgs = user_orgs
        self.tokens = tokens

    async def blockers(self, user_id: uuid.UUID) -> list[str]:
        return await self.members.sole_owner_slugs(user_id)

    async def delete_account(self, user_id: uuid.UUID) -> None:
        await lock_account(self.db, user_id)
        await DeletedUserRepository(self.db).add(user_id, utcnow())
        changed: set[uuid.UUID] = {user_id}
        for membership in await self.members.of_user(user_id):
            org_id = membership.org_id
            if not await self.orgs.lock(org_id):
                continue  # deleted meanwhile
            member_ids = await self.members.user_ids(org_id)
            if user_id not in member_ids:
                continue  # removed meanwhile
            changed.update(member_ids)
            org = await self.orgs.get(org_id)
            assert org is not None  # locked above
            if member_ids == [user_id]:
                await self.tokens.revoke(self.db, org_id, member_ids)
                self._event("org.deleted", org, Target(type="org", id=str(org_id)))
                await self.orgs.delete(org_id)
                continue
            current = await self.members.get_for_user(org_id, user_id)
            assert current is not None
            if current.role == OrgRole.OWNER and await self.members.count_owners(org_id) == 1:
                successor = await self.members.successor(org_id, user_id)
                assert successor is not None
                await self.tokens.revoke(self.db, org_id, [successor.user_id])
                self._event(
                    "member.role_changed",
                    org,
                    Target(type="user", id=str(successor.user_id)),
                    role=OrgRole.OWNER.value,
                    old_role=str(successor.role),
                )
                await self.members.set_role(successor, OrgRole.OWNER)
            await self.tokens.revoke(self.db, org_id, [user_id])
            self._event(
                "member.removed",
                org,
                Target(type="user", id=str(user_id)),
                role=str(current.role),
                reason="account_deleted",
            )
            await self.members.remove(current)
        self.user_orgs.after_commit(self.db, changed)

    def _event(self, type: str, org: Organization, target: Target, **data: Any) -> None:
        """By the system: auth's deletion of the account, carried out here."""
        record_event(
            self.db,
            type=type,
            actor=Actor.system(),
            org_id=org.id,
            target=target,
            data={"slug": org.slug, **data},
        )
