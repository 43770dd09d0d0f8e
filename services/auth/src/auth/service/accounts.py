"""Accounts: registration, password change, disabling and enabling, the platform admin.

Every change another service must know about writes an `OutboxEvent` in the same
transaction (see auth.outbox); ending sessions goes through `SessionService`.
"""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.emails import normalize_email
from auth.errors import (
    EmailTaken,
    InvalidCredentials,
    LastAdmin,
    UserNotFound,
    WrongPassword,
)
from auth.events import Actor, record_user_event
from auth.models import OutboxEvent, User
from auth.passwords import PasswordHasher, check_password_policy
from auth.repository import OutboxRepository, UserRepository
from auth.schemas import UserCreate
from auth.service.sessions import SessionService
from platform_common.clock import utcnow


def user_event(event_type: str, user: User) -> OutboxEvent:
    return OutboxEvent(
        event_type=event_type,
        aggregate_id=user.id,
        payload={
            "id": str(user.id),
            "email": user.email,
            "name": user.name,
            "role": user.role,
            "is_active": user.is_active,
            "email_verified": user.email_verified,
            "created_at": user.created_at.isoformat(),
            "version": int(utcnow().timestamp() * 1_000_000),
        },
    )


class AccountService:
    def __init__(self, *, hasher: PasswordHasher, sessions: SessionService) -> None:
        self.hasher = hasher
        self.sessions = sessions

    async def register(
        self, db: AsyncSession, data: UserCreate, *, role: str = "user", verified: bool = False
    ) -> User:
        email = normalize_email(str(data.email))
        check_password_policy(data.password, email)
        users = UserRepository(db)
        if await users.get_by_email(email) is not None:
            raise EmailTaken("An account with this email already exists.")
        now = utcnow()
        user = User(
            id=uuid.uuid4(),
            email=email,
            name=data.name.strip(),
            password_hash=await self.hasher.hash(data.password),
            role=role,
            is_active=True,
            email_verified=verified,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        try:
            # A savepoint, so that a concurrent registration of the same email becomes a 409
            # and the session stays usable.
            async with db.begin_nested():
                await users.add(user)
                await OutboxRepository(db).add(user_event("user.registered", user))
                record_user_event(db, "user.registered", user.id, email=user.email, role=role)
        except IntegrityError as exc:
            raise EmailTaken("An account with this email already exists.") from exc
        return user

    async def change_password(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        current_session: uuid.UUID | None,
        current_password: str,
        new_password: str,
    ) -> None:
        user = await UserRepository(db).get(user_id)
        if user is None or not user.is_active:
            raise InvalidCredentials("The account is not active.")
        valid, _ = await self.hasher.verify(current_password, user.password_hash)
        if not valid:
            raise WrongPassword("The current password is incorrect.")
        check_password_policy(new_password, user.email)
        user.password_hash = await self.hasher.hash(new_password)
        user.password_changed_at = utcnow()
        record_user_event(db, "password.changed", user.id)
        await self.sessions.end_sessions(
            db, user.id, reason="password_changed", keep=current_session
        )

    async def set_active(
        self, db: AsyncSession, user_id: uuid.UUID, active: bool, *, actor: Actor | None = None
    ) -> User:
        users = UserRepository(db)
        if not active:
            await users.lock_admin_changes()
        # Locked: an account being deleted meanwhile is seen deleted, never enabled again.
        user = await users.get_for_update(user_id)
        if user is None or user.deleted_at is not None:
            raise UserNotFound("No such user.")
        if not active and user.is_active and user.role == "admin":
            await db.refresh(user)  # as of now, under the lock
            if await users.other_active_admins(user.id) == 0:
                raise LastAdmin
        if user.is_active != active:
            user.is_active = active
            user.updated_at = utcnow()
            await OutboxRepository(db).add(
                user_event("user.enabled" if active else "user.disabled", user)
            )
            kind = "user.enabled" if active else "user.disabled"
            record_user_event(db, kind, user.id, actor=actor or Actor.system(), email=user.email)
        if not active:
            await self.sessions.end_sessions(db, user.id, reason="disabled", actor=actor)
        return user

    async def ensure_admin(
        self, db: AsyncSession, email: str, password: str, name: str = "Platform admin"
    ) -> tuple[User, bool]:
        """Create the platform admin, or promote and re-enable an existing account."""
        existing = await UserRepository(db).get_by_email(email)
        if existing is not None:
            changed = (
                existing.role != "admin" or not existing.is_active or not existing.email_verified
            )
            existing.role = "admin"
            existing.is_active = True
            # Seeded by the operator: its address is taken as verified (no mail).
            existing.email_verified = True
            if changed:
                await OutboxRepository(db).add(user_event("user.updated", existing))
            return existing, False
        user = await self.register(
            db,
            UserCreate(email=email, password=password, name=name),
            role="admin",
            verified=True,
        )
        return user, True
