"""Deleting an account (`DELETE /me`), across auth, users and orgs.

```
DELETE /me {current_password}      a login session's token only (403 insufficient_scope)
  password checked                 403 invalid_credentials
  orgs asked which orgs block it   409 last_owner {orgs: [slug, ...]}; 503/504 orgs down
  the last active platform admin   409 last_admin
  the row locked, re-read          a concurrent deletion won: 401 invalid_token
  one transaction:
    users row -> tombstone         email, name, password scrubbed, deleted_at set: the email
                                   can register again; the row keeps its ended sessions,
                                   the durable record the revocation keys are rebuilt from
    personal access tokens deleted the services' PAT caches expire within 5 s
    every session ended            revocation keys written before the commit: tokens fail
                                   at every service within 5 s
    outbox: user.deleted x 2       one for users (the profile goes), one for orgs (its
                                   memberships go, and the orgs it was the only member of)
```

The outbox relay (auth.outbox) delivers both events at least once, each service on its own
back-off, so a service that is down catches up when it is back; both apply them
idempotently and keep a tombstone so that nothing re-creates what was deleted. orgs is
asked before the row lock is taken, so no lock is held across a call to another service;
an org that gains a member between that answer and the event is handled by orgs (another
member is made owner), never left without an owner.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth.clients.orgs import OrgsClient
from auth.errors import AccountGone, LastAdmin, LastOwnerOfOrgs, WrongPassword
from auth.events import record_user_event
from auth.models import OutboxEvent, User
from auth.passwords import PasswordHasher
from auth.repository import OutboxRepository, PersonalAccessTokenRepository, UserRepository
from auth.service.sessions import SessionService
from platform_common.clock import utcnow
from platform_common.mail import Mailer

DESTINATIONS = ("users", "orgs")
# Never an address anyone registers: the `.invalid` TLD is reserved (RFC 2606).
TOMBSTONE_DOMAIN = "deleted.invalid"
# Not an Argon2 hash: no password ever verifies against it.
NO_PASSWORD = "!deleted"  # noqa: S105 - a marker, not a secret


def deletion_events(user: User) -> list[OutboxEvent]:
    """`user.deleted` for each service that keeps something of the account. The payload
    holds no personal data: only the id and when."""
    assert user.deleted_at is not None
    payload = {
        "id": str(user.id),
        "deleted_at": user.deleted_at.isoformat(),
        "version": int(user.deleted_at.timestamp() * 1_000_000),
    }
    return [
        OutboxEvent(
            event_type="user.deleted",
            destination=destination,
            aggregate_id=user.id,
            payload=payload,
        )
        for destination in DESTINATIONS
    ]


class AccountDeletionService:
    def __init__(
        self,
        *,
        hasher: PasswordHasher,
        sessions: SessionService,
        orgs: OrgsClient,
        mailer: Mailer | None = None,
    ) -> None:
        self.hasher = hasher
        self.sessions = sessions
        self.orgs = orgs
        self.mailer = mailer

    async def delete(self, db: AsyncSession, user_id: uuid.UUID, current_password: str) -> None:
        users = UserRepository(db)
        user = await users.get(user_id)
        if user is None or user.deleted_at is not None or not user.is_active:
            raise AccountGone("The account no longer exists.")
        valid, _ = await self.hasher.verify(current_password, user.password_hash)
        if not valid:
            raise WrongPassword("The current password is incorrect.")
        blockers = await self.orgs.deletion_blockers(user_id)
        if blockers:
            raise LastOwnerOfOrgs(sorted(blockers))

        if user.role == "admin":
            await users.lock_admin_changes()  # as disabling does: never the last admin
            if await users.other_active_admins(user_id) == 0:
                raise LastAdmin
        # Of two concurrent deletions the second waits here, then finds the tombstone.
        user = await users.get_for_update(user_id)
        if user is None or user.deleted_at is not None:
            raise AccountGone("The account no longer exists.")
        now = utcnow()
        record_user_event(db, "user.deleted", user.id)
        # Nothing more goes to the address: queued mails and the tokens they carry go too.
        if self.mailer is not None:
            await self.mailer.discard_unsent(db, user.email)
        await users.delete_account_tokens(user_id)
        user.deleted_at = now
        user.updated_at = now
        user.is_active = False
        user.email = f"{user.id.hex}@{TOMBSTONE_DOMAIN}"
        user.name = ""
        user.password_hash = NO_PASSWORD
        await db.flush()
        await PersonalAccessTokenRepository(db).delete_all_for_user(user_id)
        outbox = OutboxRepository(db)
        for event in deletion_events(user):
            await outbox.add(event)
        # Last: the revocation keys are written before the commit (see auth.service.sessions).
        await self.sessions.end_sessions(db, user_id, reason="account_deleted")
