"""The account's lifecycle by mail: verifying the address, a forgotten password, changing
the email, and the new-sign-in notice.

Each flow mails a single-use token (`AccountToken`: random, only its SHA-256 stored, of one
`kind`, with a lifetime from the settings). The mail is queued in auth's mail outbox in the
same transaction (platform_common.mail), so it exists exactly when the change does. Redeeming
locks the token's row: two concurrent uses cannot both succeed.

```
token          400 invalid_token   unknown, or of another kind
               410 token_expired   expired, or already used (also: superseded by a newer one)
```

A change the users service must see (verified, new email) writes a `user.updated` event in
auth's outbox to users (auth.outbox).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.config import AuthSettings
from auth.emails import normalize_email
from auth.errors import (
    AccountTokenExpired,
    AlreadyVerified,
    EmailTaken,
    InvalidAccountToken,
    InvalidCredentials,
    WrongPassword,
)
from auth.events import record_user_event
from auth.forgot_throttle import ForgotThrottle
from auth.models import AccountToken, User, UserSession
from auth.passwords import PasswordHasher, check_password_policy
from auth.repository import OutboxRepository, UserRepository
from auth.schemas import UserCreate
from auth.service.accounts import AccountService, user_event
from auth.service.sessions import ClientInfo, SessionService
from platform_common.clock import utcnow
from platform_common.mail import Mailer
from platform_common.opaque_tokens import hash_token, new_token
from platform_common.text import has_nul

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a kind of token, not a secret
CHANGE_EMAIL = "change_email"


class AccountMailService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        hasher: PasswordHasher,
        accounts: AccountService,
        sessions: SessionService,
        mailer: Mailer,
        forgot_throttle: ForgotThrottle,
    ) -> None:
        self.hasher = hasher
        self.accounts = accounts
        self.sessions = sessions
        self.mailer = mailer
        self.forgot_throttle = forgot_throttle
        self.settings = settings
        self.ttl = {
            VERIFY_EMAIL: timedelta(seconds=settings.verify_email_token_ttl_seconds),
            RESET_PASSWORD: timedelta(seconds=settings.password_reset_token_ttl_seconds),
            CHANGE_EMAIL: timedelta(seconds=settings.email_change_token_ttl_seconds),
        }

    # Tokens ------------------------------------------------------------------------------

    async def _issue(
        self, db: AsyncSession, user: User, kind: str, new_email: str | None = None
    ) -> str:
        """A new token of `kind` for the user; earlier unused ones of that kind stop working
        (only the newest mail's link does)."""
        now = utcnow()
        await db.execute(
            update(AccountToken)
            .where(
                AccountToken.user_id == user.id,
                AccountToken.kind == kind,
                AccountToken.used_at.is_(None),
            )
            .values(used_at=now)
        )
        token = new_token()
        db.add(
            AccountToken(
                id=uuid.uuid4(),
                user_id=user.id,
                kind=kind,
                token_hash=token.hash,
                new_email=new_email,
                created_at=now,
                expires_at=now + self.ttl[kind],
            )
        )
        await db.flush()
        return token.value

    async def _redeem(self, db: AsyncSession, token: str, kind: str) -> tuple[AccountToken, User]:
        """The token's row (locked) and its user, or 400/410; marks it used."""
        if has_nul(token):
            raise InvalidAccountToken
        stored = await db.scalar(
            select(AccountToken)
            .where(AccountToken.token_hash == hash_token(token), AccountToken.kind == kind)
            .with_for_update()
        )
        if stored is None:
            raise InvalidAccountToken
        now = utcnow()
        if stored.used_at is not None or stored.expires_at <= now:
            raise AccountTokenExpired
        user = await UserRepository(db).get(stored.user_id)
        if user is None or not user.is_active:
            raise InvalidAccountToken
        stored.used_at = now
        return stored, user

    def _minutes(self, kind: str) -> int:
        return int(self.ttl[kind].total_seconds() // 60)

    # Verification ------------------------------------------------------------------------

    async def register(self, db: AsyncSession, data: UserCreate) -> User:
        """Registration, and the verification mail in the same transaction."""
        user = await self.accounts.register(db, data)
        await self._send_verification(db, user)
        return user

    async def _send_verification(self, db: AsyncSession, user: User) -> None:
        token = await self._issue(db, user, VERIFY_EMAIL)
        await self.mailer.enqueue(
            db,
            user.email,
            "verify_email",
            name=user.name,
            email=user.email,
            hours=self._minutes(VERIFY_EMAIL) // 60,
            link=self.mailer.link(self.settings.verify_email_path, token),
        )

    async def request_verification(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        user = await UserRepository(db).get(user_id)
        if user is None or not user.is_active:
            raise InvalidCredentials("The account is not active.")
        if user.email_verified:
            raise AlreadyVerified
        await self._send_verification(db, user)

    async def verify(self, db: AsyncSession, token: str) -> None:
        _, user = await self._redeem(db, token, VERIFY_EMAIL)
        await self._mark_verified(db, user)

    async def _mark_verified(self, db: AsyncSession, user: User) -> None:
        if not user.email_verified:
            user.email_verified = True
            user.updated_at = utcnow()
            record_user_event(db, "user.verified", user.id, email=user.email)
            await OutboxRepository(db).add(user_event("user.updated", user))

    # Forgotten password ------------------------------------------------------------------

    async def forgot_password(self, db: AsyncSession, email: str, client: ClientInfo) -> None:
        """Mails a reset token when an active account has this address; nothing otherwise.
        The caller answers the same either way (and pads the time, see the route)."""
        email = normalize_email(email)
        await self.forgot_throttle.before_request(email, client.address)
        user = await UserRepository(db).get_by_email(email)
        if user is None or not user.is_active:
            return
        token = await self._issue(db, user, RESET_PASSWORD)
        await self.mailer.enqueue(
            db,
            user.email,
            "password_reset",
            name=user.name,
            email=user.email,
            minutes=self._minutes(RESET_PASSWORD),
            link=self.mailer.link(self.settings.password_reset_path, token),
        )

    async def reset_password(self, db: AsyncSession, token: str, new_password: str) -> None:
        """A new password from a reset token: every session ends (its tokens fail at every
        service within seconds). The mail reached the address, so it counts as verified. A
        weak password (422) leaves the token usable."""
        _, user = await self._redeem(db, token, RESET_PASSWORD)
        # A refusal rolls the request back: the token stays usable.
        check_password_policy(new_password, user.email)
        user.password_hash = await self.hasher.hash(new_password)
        user.password_changed_at = utcnow()
        record_user_event(db, "password.changed", user.id, reason="reset")
        await self._mark_verified(db, user)
        await self.sessions.end_sessions(db, user.id, reason="password_reset")

    # Email change ------------------------------------------------------------------------

    async def change_email(
        self, db: AsyncSession, user_id: uuid.UUID, new_email: str, current_password: str
    ) -> None:
        users = UserRepository(db)
        user = await users.get(user_id)
        if user is None or not user.is_active:
            raise InvalidCredentials("The account is not active.")
        valid, _ = await self.hasher.verify(current_password, user.password_hash)
        if not valid:
            raise WrongPassword("The current password is incorrect.")
        new_email = normalize_email(new_email)
        if new_email == user.email or await users.get_by_email(new_email) is not None:
            raise EmailTaken("An account with this email already exists.")
        token = await self._issue(db, user, CHANGE_EMAIL, new_email=new_email)
        context = {"name": user.name, "email": user.email, "new_email": new_email}
        await self.mailer.enqueue(
            db,
            new_email,
            "email_change_confirm",
            minutes=self._minutes(CHANGE_EMAIL),
            link=self.mailer.link(self.settings.email_change_path, token),
            **context,
        )
        await self.mailer.enqueue(db, user.email, "email_change_notice", **context)

    async def confirm_email_change(self, db: AsyncSession, token: str) -> None:
        stored, user = await self._redeem(db, token, CHANGE_EMAIL)
        assert stored.new_email is not None
        old_email = user.email
        users = UserRepository(db)
        if await users.get_by_email(stored.new_email) is not None:
            raise EmailTaken("An account with this email already exists.")
        user.email = stored.new_email
        user.email_verified = True
        user.updated_at = utcnow()
        try:
            # A savepoint: another account taking the address meanwhile is a 409.
            async with db.begin_nested():
                await db.flush()
        except IntegrityError as exc:
            raise EmailTaken("An account with this email already exists.") from exc
        record_user_event(db, "email.changed", user.id, old_email=old_email, new_email=user.email)
        await OutboxRepository(db).add(user_event("user.updated", user))

    # New sign-in notice ------------------------------------------------------------------

    async def notice_new_sign_in(self, db: AsyncSession, user: User, client: ClientInfo) -> None:
        """With AUTH_NEW_SIGN_IN_NOTICE: a mail when the account logs in from a client address
        and user agent it has no session from (not on its first login)."""
        if not self.settings.new_sign_in_notice:
            return
        user_agent = (client.user_agent or "")[:512] or None
        seen = await db.execute(
            select(UserSession.client_address, UserSession.user_agent).where(
                UserSession.user_id == user.id
            )
        )
        pairs = {(address, agent) for address, agent in seen.all()}
        if not pairs or (client.address, user_agent) in pairs:
            return
        await self.mailer.enqueue(
            db,
            user.email,
            "new_sign_in",
            name=user.name,
            email=user.email,
            when=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
            address=client.address or "unknown",
            user_agent=user_agent or "unknown",
        )
